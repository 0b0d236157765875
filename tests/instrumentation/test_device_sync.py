"""No host-device synchronisation per call: proven on meta tensors here, on CUDA where there is one.

Meta tensors have shapes but no data: any read of their values on the host fails. A model on the
meta device therefore runs through the hooks exactly as on an accelerator, and every host read the
hooks make shows up (counted by a torch function mode, and as an instrumentation error when the
read fails). The CUDA test checks the same with torch's own sync detector.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from prometheus_client import CollectorRegistry

from instrumentation import instrument
from tests.instrumentation._host_reads import HostReads
from tests.instrumentation._models import TinyMultimodal

SAMPLE_EVERY = 5


def _own_errors(registry: CollectorRegistry) -> float:
    return sum(
        s.value
        for metric in registry.collect()
        if metric.name == "mmgov_instrumentation_errors"
        for s in metric.samples
        if s.name.endswith("_total")
    )


def test_meta_device_calls_never_read_the_host_between_sampling_periods() -> None:
    """Full depth, sampled stats on: one host read per sampling period, none on other calls."""
    model = TinyMultimodal().to("meta")
    image, text = torch.randn(2, 8, device="meta"), torch.randn(2, 8, device="meta")
    registry = CollectorRegistry()
    with instrument(model, model_name="tiny", version=1, modules=["**"],
                    sample_every=SAMPLE_EVERY, prometheus_registry=registry):
        reads = HostReads()
        with reads:
            for _ in range(SAMPLE_EVERY):  # call 0 is sampled: its stats stay on the device
                out = model(image, text)
        assert out.device.type == "meta"
        assert reads.calls == []

        with reads:
            model(image, text)  # next period: the previous period's stats are read back, once
        assert reads.calls == ["tolist"]
        # That read fails on meta tensors: counted as the instrumentation's own error, not
        # raised. The scrape below reads this period's stats (a second failing read, off the
        # forward path) and reports both.
        assert _own_errors(registry) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
def test_cuda_forward_syncs_at_most_once_per_sampling_period() -> None:
    """torch's sync detector sees no synchronisation on non-sampled instrumented calls."""
    model = TinyMultimodal().cuda()
    image, text = torch.randn(2, 8, device="cuda"), torch.randn(2, 8, device="cuda")
    periods = 4
    with instrument(model, model_name="tiny", version=1, modules=["**"],
                    sample_every=SAMPLE_EVERY, prometheus_registry=CollectorRegistry()):
        model(image, text)
        torch.cuda.synchronize()
        previous = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for _ in range(periods * SAMPLE_EVERY - 1):
                    model(image, text)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    syncs: list[Any] = [w for w in caught if "synchroniz" in str(w.message)]
    assert len(syncs) <= periods, [str(w.message) for w in syncs]
