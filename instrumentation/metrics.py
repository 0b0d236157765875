"""Every Prometheus metric of the instrumentation, defined once: names, help, labels, buckets.

The values are kept elsewhere, each in its own module: per-thread counts in
`instrumentation._counters`, the scrape-time collector in `instrumentation._collector`, the
multiprocess flusher in `instrumentation._flusher`. All of them export these names with these
types, in every mode.
"""

from __future__ import annotations

import bisect
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BUCKET_BY_BIT_LENGTH",
    "CALLS",
    "DOC",
    "DRIFT_ALARMS",
    "DRIFT_SCORE",
    "DRIFT_WINDOWS",
    "ERRORS",
    "INSTRUMENTATION_ERRORS",
    "LABELS",
    "LATENCY",
    "LATENCY_BOUNDS_NS",
    "LATENCY_BOUNDS_NS_PADDED",
    "LATENCY_BUCKETS",
    "NONFINITE",
    "OUTPUT_MEAN",
    "OUTPUT_NORM",
    "OUTPUT_STD",
    "DriftObserver",
    "DriftState",
    "bucket_index",
]

# Metric names (Prometheus conventions: base units, counters end in _total).
CALLS = "mmgov_module_calls_total"
ERRORS = "mmgov_module_errors_total"
LATENCY = "mmgov_module_latency_seconds"
NONFINITE = "mmgov_module_nonfinite_outputs_total"
OUTPUT_MEAN = "mmgov_module_output_mean"
OUTPUT_STD = "mmgov_module_output_std"
OUTPUT_NORM = "mmgov_module_output_norm"
INSTRUMENTATION_ERRORS = "mmgov_instrumentation_errors_total"
DRIFT_SCORE = "mmgov_drift_score"
DRIFT_WINDOWS = "mmgov_drift_windows_total"
DRIFT_ALARMS = "mmgov_drift_alarms_total"

LABELS = ("model", "version", "module")

# 0.1 ms … 10 s, roughly 1-2.5-5 per decade: resolves fast encoders and slow CPU batches alike.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Upper bounds in integer nanoseconds, compared with ints from perf_counter_ns.
LATENCY_BOUNDS_NS: tuple[int, ...] = tuple(round(b * 1e9) for b in LATENCY_BUCKETS)

# The bucket of a latency without a bisect call (which costs the hot path 2-3x more): at most one
# bound lies among the numbers of one bit length, because consecutive bounds are at least 2x apart.
# So the bounds below the smallest number of that bit length, plus one comparison with the next
# bound, count the bounds below `ns`. The padding bound makes that comparison safe past 10 s.
BUCKET_BY_BIT_LENGTH: tuple[int, ...] = tuple(
    bisect.bisect_left(LATENCY_BOUNDS_NS, 1 << (n - 1) if n else 0) for n in range(65)
)
LATENCY_BOUNDS_NS_PADDED: tuple[int, ...] = (*LATENCY_BOUNDS_NS, 1 << 64)


def bucket_index(ns: int) -> int:
    """`bisect_left(LATENCY_BOUNDS_NS, ns)` for `0 <= ns < 2**64` (the hot path inlines it)."""
    i = BUCKET_BY_BIT_LENGTH[ns.bit_length()]
    return i + 1 if ns > LATENCY_BOUNDS_NS_PADDED[i] else i


DOC = {
    CALLS: "Forward calls of an instrumented module (failed calls included).",
    ERRORS: "Forward calls that raised, attributed to the innermost instrumented module.",
    LATENCY: "Wall-clock latency of successful forward calls.",
    NONFINITE: "Successful forward calls whose output contained NaN or Inf (every call checked).",
    OUTPUT_MEAN: "Mean of the module's output tensor at the last sampled call.",
    OUTPUT_STD: "Standard deviation of the module's output tensor at the last sampled call.",
    OUTPUT_NORM: "L2 norm of the module's output tensor at the last sampled call.",
    INSTRUMENTATION_ERRORS: "Failures inside mmgov's own hooks (never raised into the model).",
    DRIFT_SCORE: "Latest drift score of the module's embeddings (1.0 = alarm threshold).",
    DRIFT_WINDOWS: "Drift windows evaluated.",
    DRIFT_ALARMS: "Drift windows whose score crossed the alarm threshold.",
}


class DriftState(Protocol):
    """What the metrics read from a drift monitor's snapshot (`DriftSnapshot` has more)."""

    @property
    def score(self) -> float | None: ...

    @property
    def windows(self) -> int: ...

    @property
    def alarms(self) -> int: ...


@runtime_checkable
class DriftObserver(Protocol):
    """The part of `instrumentation.drift.DriftMonitor` the hooks rely on."""

    def observe(self, output: Any) -> None: ...

    def snapshot(self) -> DriftState: ...
