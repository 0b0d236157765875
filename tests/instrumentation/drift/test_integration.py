"""Drift monitors inside `instrument`: hook outputs reach observe, scores reach Prometheus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry
from torch import nn

from instrumentation.drift import ReferenceProfile, build_monitors, capture_reference

instrumentation = pytest.importorskip("instrumentation.hooks")


class Encoder(nn.Module):
    """[B, T, 4] -> [B, T, 6] token states, like a transformer encoder."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj = nn.Linear(4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = torch.tanh(self.proj(x))
        return out


class Model(nn.Module):
    """One encoder feeding a pooled head."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.encoder(x).mean(dim=1)
        return out


class TestInstrumentWithDrift:
    def test_shifted_inputs_raise_the_exported_drift_score(self) -> None:
        """Reference captured, monitors built, shifted traffic flagged in the scraped metrics."""
        model = Model()
        gen = torch.Generator().manual_seed(0)
        batches = [{"x": torch.randn(50, 5, 4, generator=gen)} for _ in range(8)]
        profile = ReferenceProfile.from_bytes(
            capture_reference(model, batches, modules=["encoder"]).to_bytes()
        )
        monitors = build_monitors(
            profile, window=100, model_name="m", version=1, background=False, n_boot=200
        )
        registry = CollectorRegistry()
        with instrumentation.instrument(
            model,
            model_name="m",
            version=1,
            modules=["encoder"],
            prometheus_registry=registry,
            drift=monitors,
        ):
            with torch.no_grad():
                for _ in range(4):
                    model(torch.randn(50, 5, 4, generator=gen) + 1.0)
            labels = {"model": "m", "version": "1", "module": "encoder"}
            score = registry.get_sample_value("mmgov_drift_score", labels)
        snap = monitors["encoder"].snapshot()
        assert snap.windows == 2
        assert snap.alarms == 2
        assert score is not None
        assert np.isclose(score, snap.score)
        assert score > 1.0
