"""Where the counts live: one plain-int list per thread for the hot path, slots for the rest."""

from __future__ import annotations

import operator
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from instrumentation.metrics import LATENCY_BUCKETS

__all__ = ["HOT_STRIDE", "DriftRow", "HotCounters", "ModuleSlot", "Row", "read_rows"]

# One module's block in a thread's list: the latency sum in ns, then one count per bucket (+Inf
# last). Successful calls are the sum of the bucket counts, so the hot path adds two ints.
HOT_STRIDE = 1 + len(LATENCY_BUCKETS) + 1


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


class _ThreadToken:
    """Lives in a thread's `threading.local` state: once it is gone, so is the thread."""

    __slots__ = ("__weakref__",)


class HotCounters:
    """Latency sums and bucket counts of every module, in one plain-int list per thread.

    Each list has a single writer, its own thread, so the hot path adds into it without a lock
    and counts stay exact under concurrent threads; readers add the lists up. Every entry is a
    counter (no state is kept in these lists). Lists of finished threads are folded into one on
    the next read or new thread.
    """

    def __init__(self, n_modules: int) -> None:
        self.size = n_modules * HOT_STRIDE
        self._lock = threading.Lock()  # guards the registry of lists, never the lists themselves
        self._live: list[tuple[weakref.ref[_ThreadToken], list[int]]] = []
        self._finished = [0] * self.size

    @staticmethod
    def offset(index: int) -> int:
        """Return where module `index`'s block (latency sum, then buckets) starts in a list."""
        return index * HOT_STRIDE

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
        """Return the element-wise sum over every thread, past and present."""
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


class Row(NamedTuple):
    """One module's values, read together for one scrape or flush."""

    slot: ModuleSlot
    calls: int
    latency_buckets: list[int]
    latency_sum_ns: int
    errors: dict[str, int]
    nonfinite: int
    instrumentation_errors: int
    stats: tuple[float, float, float] | None


class DriftRow(NamedTuple):
    """One drift monitor's snapshot, as the metrics show it."""

    path: str
    score: float | None
    windows: int
    alarms: int


def read_rows(
    slots: Sequence[ModuleSlot], counters: HotCounters, lock: threading.Lock
) -> list[Row]:
    """Return every slot's values: the threads' counts added up, the cold fields copied."""
    hot = counters.totals()
    rows = []
    with lock:
        for s in slots:
            buckets, sum_ns = [0] * (len(LATENCY_BUCKETS) + 1), 0
            if s.exported:
                start = HotCounters.offset(s.index)
                sum_ns, buckets = hot[start], hot[start + 1 : start + HOT_STRIDE]
            rows.append(Row(
                s, sum(buckets) + s.failed_calls, buckets, sum_ns, dict(s.errors), s.nonfinite,
                s.instrumentation_errors, s.stats,
            ))
    return rows
