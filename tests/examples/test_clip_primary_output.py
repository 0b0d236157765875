"""Statistics, drift monitors and reference capture read one tensor of a module's output."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from examples.clip.artifacts import MONITORED, batches
from examples.clip.data import make_pairs
from examples.clip.model import build_clip_model, build_image_processor, load_tokenizer
from instrumentation import instrument
from instrumentation._select import first_tensor
from instrumentation.drift import (
    Detector,
    DetectorResult,
    DriftMonitor,
    capture_reference,
    create_detector,
)
from instrumentation.drift.pooling import primary_output


class _Attrs:
    """An output object that is not a mapping but names its tensors as attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


class _Recording(Detector):
    """A real mean-shift detector that keeps every window it scores."""

    name = "recording"

    def __init__(self, reference: np.ndarray, window: int) -> None:
        self.inner = create_detector("mean_shift", reference, window=window, n_boot=50)
        self.dim, self.window = self.inner.dim, window
        self.windows: list[np.ndarray] = []

    def score(self, window: np.ndarray) -> DetectorResult:
        self.windows.append(np.array(window))
        return self.inner.score(window)


X = torch.arange(6.0).reshape(2, 3)
H = torch.ones(2, 4, 3)

CASES = [
    ("tensor", X, X),
    ("with pooling", BaseModelOutputWithPooling(last_hidden_state=H, pooler_output=X), X),
    ("pooler None", BaseModelOutputWithPooling(last_hidden_state=H, pooler_output=None), H),
    ("model output", BaseModelOutput(last_hidden_state=H), H),
    ("dict with pooler", {"last_hidden_state": H, "pooler_output": X}, X),
    ("dict", {"mask": "no tensor", "emb": X, "other": H}, X),
    ("tuple first is None", (None, X, H), X),
    ("list", [X, H], X),
    ("array", np.ones((2, 3)), None),  # first_tensor: not a torch tensor
    ("attributes", _Attrs(last_hidden_state=H, pooler_output=X), X),
    ("nothing", ("text", None), None),
    ("empty", (), None),
]


@pytest.mark.parametrize(("output", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_rule_for_statistics_and_drift(output: Any, expected: torch.Tensor | None) -> None:
    """`first_tensor` (statistics) is `primary_output` (drift, references) kept to torch."""
    picked = first_tensor(output)
    if expected is None:
        assert picked is None
    else:
        assert picked is expected
    primary = primary_output(output)
    if isinstance(output, np.ndarray):
        assert primary is output
    else:
        assert primary is picked


def test_a_clip_tower_is_read_at_its_pooler_output() -> None:
    """On a real CLIPModel, the sampled statistics, the monitor's rows and the reference profile
    all come from each tower's `pooler_output`, not from its `last_hidden_state`."""
    model = build_clip_model()
    tokenizer, processor = load_tokenizer(), build_image_processor()
    inputs = batches(make_pairs(16, seed=7), tokenizer, processor)
    batch = inputs[0]
    seen: dict[str, BaseModelOutputWithPooling] = {}
    handles = [
        model.get_submodule(m).register_forward_hook(
            lambda _mod, _in, out, m=m: seen.__setitem__(m, BaseModelOutputWithPooling(
                last_hidden_state=out.last_hidden_state.clone(),
                pooler_output=out.pooler_output.clone(),
            ))
        )
        for m in MONITORED
    ]
    with torch.no_grad():
        model(**batch)
    for handle in handles:
        handle.remove()

    profile = capture_reference(model, inputs, modules=list(MONITORED))
    registry = CollectorRegistry()
    detectors = {m: _Recording(profile.embeddings[m], window=16) for m in MONITORED}
    monitors = {
        m: DriftMonitor(detectors[m], module=m, model_name="clip", version=1, window=16,
                        background=False)
        for m in MONITORED
    }
    with instrument(model, model_name="clip", version=1, modules=list(MONITORED),
                    prometheus_registry=registry, sample_every=1, drift=monitors), \
            torch.no_grad():
        model(**batch)
        norms = {
            m: registry.get_sample_value(
                "mmgov_module_output_norm", {"model": "clip", "version": "1", "module": m}
            )
            for m in MONITORED
        }
    for module in MONITORED:
        pooled = seen[module].pooler_output
        hidden = seen[module].last_hidden_state
        assert pooled.shape == (16, 64)
        assert hidden.ndim == 3
        norm = norms[module]
        assert norm == pytest.approx(float(torch.linalg.vector_norm(pooled)), rel=1e-5)
        assert norm != pytest.approx(float(torch.linalg.vector_norm(hidden)), rel=1e-2)
        np.testing.assert_allclose(profile.embeddings[module][:16], pooled.numpy(), rtol=1e-5,
                                   atol=1e-6)
        snap = monitors[module].snapshot()
        assert (snap.samples, snap.invalid_samples, snap.errors, snap.windows) == (16, 0, 0, 1)
        (window,) = detectors[module].windows
        np.testing.assert_allclose(window, pooled.numpy(), rtol=1e-5, atol=1e-6)
        assert not np.allclose(window, hidden[:, 0].numpy(), atol=1e-3)
        monitors[module].close()
