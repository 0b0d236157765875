"""Every Prometheus metric of the instrumentation, defined once, and the collectors for them."""

from __future__ import annotations

import bisect
import operator
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, runtime_checkable

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

__all__ = [
    "BUCKET_BY_BIT_LENGTH",
    "CALLS",
    "DRIFT_ALARMS",
    "DRIFT_SCORE",
    "DRIFT_WINDOWS",
    "ERRORS",
    "HOT_STRIDE",
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
    "HotCounters",
    "ModuleSlot",
    "MultiprocessMetrics",
    "SlotsCollector",
    "SlotsFlusher",
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
    """Return `bisect_left(LATENCY_BOUNDS_NS, ns)` for `0 <= ns < 2**64`; hooks inline this."""
    i = BUCKET_BY_BIT_LENGTH[ns.bit_length()]
    return i + 1 if ns > LATENCY_BOUNDS_NS_PADDED[i] else i


_DOC = {
    CALLS: "Forward calls of an instrumented module (failed calls included).",
    ERRORS: "Forward calls that raised, attributed to the innermost instrumented module.",
    LATENCY: "Wall-clock latency of successful forward calls.",
    NONFINITE: "Sampled outputs that contained NaN or Inf values.",
    OUTPUT_MEAN: "Mean of the module's output tensor at the last sampled call.",
    OUTPUT_STD: "Standard deviation of the module's output tensor at the last sampled call.",
    OUTPUT_NORM: "L2 norm of the module's output tensor at the last sampled call.",
    INSTRUMENTATION_ERRORS: "Failures inside mmgov's own hooks (never raised into the model).",
    DRIFT_SCORE: "Latest drift score of the module's embeddings (1.0 = alarm threshold).",
    DRIFT_WINDOWS: "Drift windows evaluated.",
    DRIFT_ALARMS: "Drift windows whose score crossed the alarm threshold.",
}


@runtime_checkable
class DriftObserver(Protocol):
    """The part of `instrumentation.drift.DriftMonitor` the hooks rely on."""

    def observe(self, output: Any) -> None: ...

    def snapshot(self) -> Any: ...


@dataclass(eq=False)
class ModuleSlot:
    """What is counted off the hot path for one instrumented module (changed under the lock).

    Successful calls and their latency live in `HotCounters` at position `index`.
    """

    path: str
    # Position in HotCounters; -1 for the root marker, which only has instrumentation errors.
    index: int = -1
    failed_calls: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    nonfinite: int = 0
    instrumentation_errors: int = 0
    # Last sampled statistics (mean, std, norm); None until the first sample is read back.
    stats: tuple[float, float, float] | None = None

    @property
    def exported(self) -> bool:
        """False for the root marker: only its instrumentation errors are exported."""
        return self.index >= 0


# One module's block in a thread's array: the latency sum in ns, then one count per bucket (+Inf
# last). Successful calls are the sum of the bucket counts, so the hot path adds two ints.
HOT_STRIDE = 1 + len(LATENCY_BUCKETS) + 1


class _ThreadToken:
    """Lives in a thread's `threading.local` state: once it is gone, so is the thread."""

    __slots__ = ("__weakref__",)


class HotCounters:
    """Latency sums and bucket counts of every module, in one plain-int list per thread.

    Each list has a single writer, its own thread, so the hot path adds into it without a lock
    and counts stay exact under concurrent threads; readers add the lists up. The first `CONTROL`
    entries of each list are not counters: the hooks keep the thread's root-call state there
    (mode, sampling countdown, a flag for state to reset), so one lookup fetches counters and
    state. Lists of finished threads are folded into one on the next read or new thread.
    """

    CONTROL = 3

    def __init__(self, n_modules: int) -> None:
        self.size = self.CONTROL + n_modules * HOT_STRIDE
        self._lock = threading.Lock()  # guards the registry of lists, never the lists themselves
        self._live: list[tuple[weakref.ref[_ThreadToken], list[int]]] = []
        self._finished = [0] * self.size

    @staticmethod
    def offset(index: int) -> int:
        """Return where module `index`'s block (latency sum, then buckets) starts in a list."""
        return HotCounters.CONTROL + index * HOT_STRIDE

    def for_this_thread(self) -> tuple[list[int], _ThreadToken]:
        """Return a zeroed list for the calling thread and the token to keep in its local state."""
        token, counts = _ThreadToken(), [0] * self.size
        with self._lock:
            self._fold_finished()
            self._live.append((weakref.ref(token), counts))
        return counts, token

    @property
    def live_threads(self) -> int:
        """Lists still held for threads that may write to them."""
        with self._lock:
            self._fold_finished()
            return len(self._live)

    def totals(self) -> list[int]:
        """Return the element-wise sum over every thread, past and present (control words too)."""
        with self._lock:
            self._fold_finished()
            total = list(self._finished)
            # list[:] is one C-level copy under the GIL: a consistent view of that thread's list.
            views = [counts[:] for _, counts in self._live]
        for view in views:
            total = list(map(operator.add, total, view))
        return total

    def _fold_finished(self) -> None:
        live = []
        for token, counts in self._live:
            if token() is None:  # its thread ended: nobody writes `counts` any more
                self._finished = list(map(operator.add, self._finished, counts))
            else:
                live.append((token, counts))
        self._live = live


class _Row(NamedTuple):
    """One module's values, read together for one scrape or flush."""

    slot: ModuleSlot
    calls: int
    latency_buckets: list[int]
    latency_sum_ns: int
    errors: dict[str, int]
    nonfinite: int
    instrumentation_errors: int
    stats: tuple[float, float, float] | None


def _read_rows(
    slots: Sequence[ModuleSlot], counters: HotCounters, lock: threading.Lock
) -> list[_Row]:
    hot = counters.totals()
    rows = []
    with lock:
        for s in slots:
            buckets, sum_ns = [0] * (len(LATENCY_BUCKETS) + 1), 0
            if s.exported:
                start = HotCounters.offset(s.index)
                sum_ns, buckets = hot[start], hot[start + 1 : start + HOT_STRIDE]
            rows.append(_Row(
                s, sum(buckets) + s.failed_calls, buckets, sum_ns, dict(s.errors), s.nonfinite,
                s.instrumentation_errors, s.stats,
            ))
    return rows


def _label_values(model: str, version: str, slot: ModuleSlot) -> list[str]:
    return [model, version, slot.path]


class SlotsCollector:
    """Turns the slots of one `Instrumentation` into metric families at scrape time.

    The hot path only adds two ints into its thread's list (against 11-16 µs per call for updating
    prometheus_client children), and this collector pays the conversion once per scrape.
    """

    def __init__(
        self,
        *,
        model: str,
        version: str,
        slots: Sequence[ModuleSlot],
        counters: HotCounters,
        lock: threading.Lock,
        drift: Callable[[], Iterable[tuple[str, float | None, int, int]]],
        before_collect: Callable[[], None],
    ) -> None:
        self._model = model
        self._version = version
        self._slots = tuple(slots)
        self._counters = counters
        self._lock = lock
        self._drift = drift
        self._before_collect = before_collect

    def collect(self) -> Iterator[Metric]:
        """Yield every family, each thread's counts and the cold fields copied once per scrape."""
        self._before_collect()
        # Drift first: a failing snapshot() counts an instrumentation error this very scrape shows.
        drift_rows = list(self._drift())
        copies = _read_rows(self._slots, self._counters, self._lock)
        calls = CounterMetricFamily(CALLS, _DOC[CALLS], labels=LABELS)
        errors = CounterMetricFamily(ERRORS, _DOC[ERRORS], labels=(*LABELS, "error_type"))
        latency = HistogramMetricFamily(LATENCY, _DOC[LATENCY], labels=LABELS)
        nonfinite = CounterMetricFamily(NONFINITE, _DOC[NONFINITE], labels=LABELS)
        own = CounterMetricFamily(
            INSTRUMENTATION_ERRORS, _DOC[INSTRUMENTATION_ERRORS], labels=LABELS
        )
        gauges = [GaugeMetricFamily(n, _DOC[n], labels=LABELS) for n in
                  (OUTPUT_MEAN, OUTPUT_STD, OUTPUT_NORM)]
        for slot, n_calls, buckets, sum_ns, errs, n_nonfinite, n_own, stats in copies:
            lv = _label_values(self._model, self._version, slot)
            if n_own or slot.exported:
                own.add_metric(lv, n_own)
            if not slot.exported:
                continue
            calls.add_metric(lv, n_calls)
            for error_type, count in sorted(errs.items()):
                errors.add_metric([*lv, error_type], count)
            cumulative, acc = [], 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), buckets, strict=True):
                acc += count
                cumulative.append((_bucket_label(bound), float(acc)))
            latency.add_metric(lv, cumulative, sum_value=sum_ns / 1e9)
            nonfinite.add_metric(lv, n_nonfinite)
            if stats is not None:
                for gauge, value in zip(gauges, stats, strict=True):
                    gauge.add_metric(lv, value)
        yield from (calls, errors, latency, nonfinite, own, *gauges)
        yield from self._drift_families(drift_rows)

    def _drift_families(
        self, rows: Iterable[tuple[str, float | None, int, int]]
    ) -> Iterator[Metric]:
        score = GaugeMetricFamily(DRIFT_SCORE, _DOC[DRIFT_SCORE], labels=LABELS)
        windows = CounterMetricFamily(DRIFT_WINDOWS, _DOC[DRIFT_WINDOWS], labels=LABELS)
        alarms = CounterMetricFamily(DRIFT_ALARMS, _DOC[DRIFT_ALARMS], labels=LABELS)
        for path, value, n_windows, n_alarms in rows:
            lv = [self._model, self._version, path]
            if value is not None:
                score.add_metric(lv, value)
            windows.add_metric(lv, n_windows)
            alarms.add_metric(lv, n_alarms)
        yield from (score, windows, alarms)


def _bucket_label(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


class MultiprocessMetrics:
    """Real prometheus_client metrics that slots are flushed into in multiprocess mode.

    `MultiProcessCollector` only sees values that prometheus_client itself wrote to the
    PROMETHEUS_MULTIPROC_DIR files, never custom collectors, so each process periodically adds
    the growth of its slots since the last flush into these metrics. Create one per process:
    two objects with the same name would overwrite each other's file entries.
    """

    _instance: MultiprocessMetrics | None = None
    _instance_lock = threading.Lock()

    def __init__(self) -> None:
        # registry=None: in multiprocess mode the values live in files, not in a registry.
        self.calls = Counter(CALLS, _DOC[CALLS], LABELS, registry=None)
        self.errors = Counter(ERRORS, _DOC[ERRORS], (*LABELS, "error_type"), registry=None)
        self.latency = Histogram(
            LATENCY, _DOC[LATENCY], LABELS, registry=None, buckets=LATENCY_BUCKETS
        )
        self.nonfinite = Counter(NONFINITE, _DOC[NONFINITE], LABELS, registry=None)
        self.own = Counter(
            INSTRUMENTATION_ERRORS, _DOC[INSTRUMENTATION_ERRORS], LABELS, registry=None
        )
        self.gauges = tuple(
            Gauge(n, _DOC[n], LABELS, registry=None, multiprocess_mode="mostrecent")
            for n in (OUTPUT_MEAN, OUTPUT_STD, OUTPUT_NORM)
        )
        self.drift_score = Gauge(
            DRIFT_SCORE, _DOC[DRIFT_SCORE], LABELS, registry=None, multiprocess_mode="mostrecent"
        )
        self.drift_windows = Gauge(
            DRIFT_WINDOWS, _DOC[DRIFT_WINDOWS], LABELS, registry=None,
            multiprocess_mode="mostrecent",
        )
        self.drift_alarms = Gauge(
            DRIFT_ALARMS, _DOC[DRIFT_ALARMS], LABELS, registry=None,
            multiprocess_mode="mostrecent",
        )

    @classmethod
    def get(cls) -> MultiprocessMetrics:
        """Return the process-wide instance, creating it on first use."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


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
        drift: Callable[[], Iterable[tuple[str, float | None, int, int]]],
    ) -> None:
        self._model = model
        self._version = version
        self._slots = tuple(slots)
        self._counters = counters
        self._lock = lock
        self._drift = drift
        self._flushed = {id(s): _Flushed() for s in self._slots}
        self._flush_lock = threading.Lock()
        self._metrics = MultiprocessMetrics.get()

    def flush(self) -> None:
        """Write the deltas; safe to call from a timer thread and from `detach()` concurrently."""
        m = self._metrics
        with self._flush_lock:
            current = _read_rows(self._slots, self._counters, self._lock)
            for slot, calls, buckets, sum_ns, errs, nonfinite, own, stats in current:
                done = self._flushed[id(slot)]
                lv = _label_values(self._model, self._version, slot)
                if calls > done.calls:
                    m.calls.labels(*lv).inc(calls - done.calls)
                for error_type, count in errs.items():
                    delta = count - done.errors.get(error_type, 0)
                    if delta:
                        m.errors.labels(*lv, error_type).inc(delta)
                if sum_ns != done.latency_sum_ns or buckets != done.latency_buckets:
                    child = m.latency.labels(*lv)
                    # Histogram has no public "add n observations to bucket i"; its per-bucket
                    # values are what observe() increments, so adding to them keeps the files exact.
                    for i, (new, old) in enumerate(zip(buckets, done.latency_buckets, strict=True)):
                        if new > old:
                            child._buckets[i].inc(new - old)
                    child._sum.inc((sum_ns - done.latency_sum_ns) / 1e9)
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
                m.drift_windows.labels(*lv).set(windows)
                m.drift_alarms.labels(*lv).set(alarms)
