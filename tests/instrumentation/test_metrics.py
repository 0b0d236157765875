"""Tests for the metric definitions, the per-thread hot counters and the multiprocess replay."""

from __future__ import annotations

import bisect
import gc
import itertools
import random
import threading

import pytest
from prometheus_client import CollectorRegistry, Histogram

from instrumentation import DriftSnapshot, instrument
from instrumentation._counters import HOT_STRIDE, HotCounters
from instrumentation._flusher import MultiprocessMetrics, replayed_observations
from instrumentation.metrics import (
    DOC,
    LATENCY_BOUNDS_NS,
    LATENCY_BUCKETS,
    bucket_index,
)
from tests.instrumentation._models import TinyMultimodal, inputs


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
        assert len(counters.totals()) == 3 * HOT_STRIDE  # counters only, no state words

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


class TestReplayedObservations:
    @pytest.mark.parametrize("seed", range(5))
    def test_replay_fills_the_same_buckets_and_sum(self, seed: int) -> None:
        """Observing the replayed values gives the counted buckets and the counted sum."""
        rng = random.Random(seed)
        latencies_ns = [rng.choice([rng.randrange(0, 10**5), rng.randrange(10**5, 2 * 10**10)])
                        for _ in range(300)] + list(LATENCY_BOUNDS_NS)
        counts = [0] * (len(LATENCY_BUCKETS) + 1)
        for ns in latencies_ns:
            counts[bucket_index(ns)] += 1
        total = sum(latencies_ns) / 1e9
        histogram = Histogram("h", "h", registry=(registry := CollectorRegistry()),
                              buckets=LATENCY_BUCKETS)
        for value in replayed_observations(counts, total):
            histogram.observe(value)
        cumulative = [registry.get_sample_value("h_bucket", {"le": le})
                      for le in [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]]
        assert cumulative == list(itertools.accumulate(counts))
        assert registry.get_sample_value("h_sum") == pytest.approx(total, rel=1e-12)


class _Drift:
    """A drift observer with a fixed snapshot."""

    def observe(self, output: object) -> None:
        """Accept every output."""

    def snapshot(self) -> DriftSnapshot:
        return DriftSnapshot(score=0.5, windows=2, alarms=1)


class TestOneTypePerMetric:
    def test_scrape_and_multiprocess_modes_export_the_same_types(self) -> None:
        """Every family has the same name and type from the collector and the flusher's metrics."""
        registry = CollectorRegistry()
        model = TinyMultimodal().eval()
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        drift={"text_encoder": _Drift()}, sample_every=1):
            model(*inputs())
            scraped = {family.name: family.type for family in registry.collect()}
        mp = MultiprocessMetrics.get()
        metrics = [mp.calls, mp.errors, mp.latency, mp.nonfinite, mp.own, *mp.gauges,
                   mp.drift_score, mp.drift_windows, mp.drift_alarms]
        flushed = {family.name: family.type for m in metrics for family in m.collect()}
        assert scraped == flushed
        assert scraped["mmgov_drift_windows"] == "counter"
        assert len(scraped) == len(DOC)
