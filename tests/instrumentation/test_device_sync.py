"""No host-device synchronisation per call: proven on meta tensors here, on CUDA where there is one.

Meta tensors have shapes but no data: any read of their values on the host fails. A model on the
meta device therefore runs through the hooks exactly as on an accelerator, and every host read the
hooks make shows up (counted by a torch function mode, and as an instrumentation error when the
read fails). The CUDA test checks the same with torch's own sync detector.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from instrumentation import instrument
from instrumentation.drift import DriftMonitor, create_detector
from tests.instrumentation._host_reads import HostReads
from tests.instrumentation._models import TinyMultimodal

SAMPLE_EVERY = 5
WINDOW = 4  # two forwards of batch 2: windows close during the checked calls


def _monitors() -> dict[str, DriftMonitor]:
    reference = np.random.default_rng(0).standard_normal((200, 8))
    return {
        path: DriftMonitor(
            create_detector("mean_shift", reference, window=WINDOW, n_boot=50),
            module=path, model_name="tiny", version=1, window=WINDOW,
        )
        for path in ("image_encoder", "text_encoder")
    }


def _own_errors(registry: CollectorRegistry) -> float:
    return sum(
        s.value
        for metric in registry.collect()
        if metric.name == "mmgov_instrumentation_errors"
        for s in metric.samples
        if s.name.endswith("_total")
    )


def test_meta_device_calls_never_read_the_host_between_sampling_periods() -> None:
    """Full depth, sampled stats, drift and the non-finite probe of every call: one host read
    per sampling period (probes and statistics together), none otherwise.

    Drift windows close on the calling thread every two forwards; their rows reach the host on
    the monitors' worker threads (where the read of meta tensors fails and is counted).
    """
    model = TinyMultimodal().to("meta")
    image, text = torch.randn(2, 8, device="meta"), torch.randn(2, 8, device="meta")
    registry = CollectorRegistry()
    monitors = _monitors()
    with instrument(model, model_name="tiny", version=1, modules=["**"], drift=monitors,
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
    for monitor in monitors.values():
        assert monitor.flush(10)
        snap = monitor.snapshot()
        assert snap.samples == 2 * (SAMPLE_EVERY + 1)
        # Windows closed at samples 4, 8 and 12; each failed its read on the worker (or was
        # skipped while the worker was busy): none was read on the forward path.
        assert (snap.windows, snap.errors + snap.skipped_windows) == (0, 3)
        monitor.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (none here)")
def test_cuda_forward_syncs_at_most_once_per_sampling_period() -> None:
    """torch's sync detector: no sync on non-sampled calls (every call probed for NaN/Inf)."""
    model = TinyMultimodal().cuda()
    image, text = torch.randn(2, 8, device="cuda"), torch.randn(2, 8, device="cuda")
    periods = 4
    monitors = _monitors()
    with instrument(model, model_name="tiny", version=1, modules=["**"], drift=monitors,
                    sample_every=SAMPLE_EVERY, prometheus_registry=CollectorRegistry()):
        model(image, text)
        torch.cuda.synchronize()
        previous = torch.cuda.get_sync_debug_mode()
        caught: list[tuple[int, str]] = []  # (thread, message): the drift workers do sync

        def record(message: Any, *_args: Any, **_kwargs: Any) -> None:
            caught.append((threading.get_ident(), str(message)))

        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = record
                for _ in range(periods * SAMPLE_EVERY - 1):
                    model(image, text)
                for monitor in monitors.values():
                    assert monitor.flush(30)
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    main = threading.get_ident()
    syncs = [m for thread, m in caught if thread == main and "synchroniz" in m]
    assert len(syncs) <= periods, syncs
    for monitor in monitors.values():
        snap = monitor.snapshot()
        assert snap.samples == 2 * periods * SAMPLE_EVERY
        # A window closes every two forwards, and is scored on the worker.
        assert snap.windows + snap.skipped_windows == periods * SAMPLE_EVERY // 2
        assert snap.windows > 0
        assert snap.errors == 0
        monitor.close()
