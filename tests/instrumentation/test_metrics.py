"""Tests for instrumentation.metrics: the latency bucket lookup and per-thread hot counters."""

from __future__ import annotations

import bisect
import gc
import itertools
import threading

from instrumentation.metrics import (
    HOT_STRIDE,
    LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS,
    HotCounters,
    bucket_index,
)


def _edge_latencies() -> list[int]:
    around_bounds = [b + d for b in LATENCY_BOUNDS_NS for d in (-1, 0, 1)]
    around_powers = [(1 << k) + d for k in range(64) for d in (-1, 0, 1)]
    return sorted({0, *around_bounds, *around_powers, (1 << 64) - 1} - {-1})


class TestBucketIndex:
    def test_matches_bisect_at_every_edge(self) -> None:
        """At, around and between every bound and power of two it equals bisect_left."""
        for ns in _edge_latencies():
            assert bucket_index(ns) == bisect.bisect_left(LATENCY_BOUNDS_NS, ns), ns

    def test_bounds_are_at_least_twice_apart(self) -> None:
        """The lookup's premise: at most one bound among the numbers of one bit length."""
        for low, high in itertools.pairwise(LATENCY_BOUNDS_NS):
            assert high >= 2 * low

    def test_past_the_last_bound_is_inf(self) -> None:
        """Anything above 10 s lands in the +Inf bucket."""
        assert bucket_index(LATENCY_BOUNDS_NS[-1] + 1) == len(LATENCY_BUCKETS)


class TestHotCounters:
    def test_totals_add_every_thread(self) -> None:
        """Counts written by several live threads add up."""
        counters = HotCounters(3)
        at = HotCounters.offset(2) + 1
        kept = []
        for n in (1, 2, 3):
            counts, token = counters.for_this_thread()
            counts[at] += n
            kept.append(token)
        assert counters.totals()[at] == 6
        assert counters.live_threads == 3
        assert len(counters.totals()) == HotCounters.CONTROL + 3 * HOT_STRIDE

    def test_finished_threads_are_folded_and_released(self) -> None:
        """Counts of threads that ended survive; their lists are no longer held as live."""
        counters = HotCounters(1)
        at = HotCounters.offset(0)

        class State(threading.local):
            def __init__(self) -> None:
                self.counts, self.token = counters.for_this_thread()

        state = State()

        def work() -> None:
            state.counts[at] += 10

        for _ in range(4):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        gc.collect()
        assert counters.totals()[at] == 40
        assert counters.live_threads == 1  # this thread's: creating the local initialised it
        assert counters.totals()[at] == 40
