"""The multiprocess flusher: adds the growth of the counts into prometheus_client's own metrics.

`MultiProcessCollector` only sees values that prometheus_client itself wrote to the
PROMETHEUS_MULTIPROC_DIR files, never custom collectors, so each process periodically adds what
its slots gained since the last flush into real metrics, through their public methods only
(`inc`, `set`, `observe`), with the same types the scrape-time collector exports.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram

from instrumentation._counters import DriftRow, HotCounters, ModuleSlot, read_rows
from instrumentation.metrics import (
    CALLS,
    DOC,
    DRIFT_ALARMS,
    DRIFT_SCORE,
    DRIFT_WINDOWS,
    ERRORS,
    INSTRUMENTATION_ERRORS,
    LABELS,
    LATENCY,
    LATENCY_BUCKETS,
    NONFINITE,
    OUTPUT_MEAN,
    OUTPUT_NORM,
    OUTPUT_STD,
)

__all__ = ["MultiprocessMetrics", "SlotsFlusher", "replayed_observations"]


class MultiprocessMetrics:
    """Real prometheus_client metrics that slots are flushed into in multiprocess mode.

    Create one per process (`get()`): two objects with the same name would overwrite each other's
    file entries.
    """

    _instance: MultiprocessMetrics | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        # registry=None: in multiprocess mode the values live in files, not in a registry.
        self.calls = Counter(CALLS, DOC[CALLS], LABELS, registry=None)
        self.errors = Counter(ERRORS, DOC[ERRORS], (*LABELS, "error_type"), registry=None)
        self.latency = Histogram(
            LATENCY, DOC[LATENCY], LABELS, registry=None, buckets=LATENCY_BUCKETS
        )
        self.nonfinite = Counter(NONFINITE, DOC[NONFINITE], LABELS, registry=None)
        self.own = Counter(
            INSTRUMENTATION_ERRORS, DOC[INSTRUMENTATION_ERRORS], LABELS, registry=None
        )
        self.gauges = tuple(
            Gauge(n, DOC[n], LABELS, registry=None, multiprocess_mode="mostrecent")
            for n in (OUTPUT_MEAN, OUTPUT_STD, OUTPUT_NORM)
        )
        self.drift_score = Gauge(
            DRIFT_SCORE, DOC[DRIFT_SCORE], LABELS, registry=None, multiprocess_mode="mostrecent"
        )
        self.drift_windows = Counter(DRIFT_WINDOWS, DOC[DRIFT_WINDOWS], LABELS, registry=None)
        self.drift_alarms = Counter(DRIFT_ALARMS, DOC[DRIFT_ALARMS], LABELS, registry=None)

    @classmethod
    def get(cls) -> MultiprocessMetrics:
        """Return the process-wide instance, creating it on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


def replayed_observations(counts: Sequence[int], total: float) -> Iterator[float]:
    """Yield values that, observed, add `counts[i]` to bucket `i` and about `total` to the sum.

    A histogram's public API only observes single values, so the flush replays the latencies it
    counted: each value lies in its bucket (above the previous bound, at most its own), and the
    values add up to `total` (to float rounding) whenever `total` is one the counts allow, which
    the real latencies behind them guarantee. Yields `sum(counts)` values.
    """
    lows = (0.0, *(math.nextafter(b, math.inf) for b in LATENCY_BUCKETS))
    highs = (*LATENCY_BUCKETS, math.inf)
    residual = total - sum(n * low for n, low in zip(counts, lows, strict=True))
    for n, low, high in zip(counts, lows, highs, strict=True):
        room = high - low
        for _ in range(n):
            extra = min(max(residual, 0.0), room)
            residual -= extra
            yield min(low + extra, high)  # low + (high - low) may round one ulp past high


@dataclass
class _Flushed:
    calls: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    latency_sum_ns: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    nonfinite: int = 0
    own: int = 0


class SlotsFlusher:
    """Adds the growth of slots since the previous flush into `MultiprocessMetrics`."""

    def __init__(
        self,
        *,
        model: str,
        version: str,
        slots: Sequence[ModuleSlot],
        counters: HotCounters,
        lock: threading.Lock,
        drift: Callable[[], Iterable[DriftRow]],
    ) -> None:
        self._model = model
        self._version = version
        self._slots = tuple(slots)
        self._counters = counters
        self._lock = lock
        self._drift = drift
        self._flushed = {id(s): _Flushed() for s in self._slots}
        self._drift_flushed: dict[str, tuple[int, int]] = {}
        self._flush_lock = threading.Lock()
        self._metrics = MultiprocessMetrics.get()

    def flush(self) -> None:
        """Write the deltas; safe to call from a timer thread and from `detach()` concurrently."""
        m = self._metrics
        with self._flush_lock:
            current = read_rows(self._slots, self._counters, self._lock)
            for slot, calls, buckets, sum_ns, errs, nonfinite, own, stats in current:
                done = self._flushed[id(slot)]
                lv = [self._model, self._version, slot.path]
                if calls > done.calls:
                    m.calls.labels(*lv).inc(calls - done.calls)
                for error_type, count in errs.items():
                    delta = count - done.errors.get(error_type, 0)
                    if delta:
                        m.errors.labels(*lv, error_type).inc(delta)
                new = [b - a for a, b in zip(done.latency_buckets, buckets, strict=True)]
                if any(new):
                    child = m.latency.labels(*lv)
                    for value in replayed_observations(new, (sum_ns - done.latency_sum_ns) / 1e9):
                        child.observe(value)
                if nonfinite > done.nonfinite:
                    m.nonfinite.labels(*lv).inc(nonfinite - done.nonfinite)
                if own > done.own:
                    m.own.labels(*lv).inc(own - done.own)
                if stats is not None:
                    for gauge, value in zip(m.gauges, stats, strict=True):
                        gauge.labels(*lv).set(value)
                self._flushed[id(slot)] = _Flushed(calls, buckets, sum_ns, errs, nonfinite, own)
            for path, score, windows, alarms in self._drift():
                lv = [self._model, self._version, path]
                if score is not None:
                    m.drift_score.labels(*lv).set(score)
                old_windows, old_alarms = self._drift_flushed.get(path, (0, 0))
                if windows > old_windows:
                    m.drift_windows.labels(*lv).inc(windows - old_windows)
                if alarms > old_alarms:
                    m.drift_alarms.labels(*lv).inc(alarms - old_alarms)
                self._drift_flushed[path] = (max(windows, old_windows), max(alarms, old_alarms))
