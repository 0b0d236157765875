"""Runtime attestation: in-memory module hashes agree with the registry's, and the info series."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from prometheus_client import CollectorRegistry
from safetensors.torch import save_file
from torch import nn

from examples.multimodal import build_model, load_config, save_weights
from instrumentation.attestation import Attestation, module_hashes, module_of
from registry.weights import ModuleGrouping, inspect_weights

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"


@pytest.fixture(scope="module")
def reference() -> nn.Module:
    """The reference multimodal model built from configs/model.yaml."""
    torch.manual_seed(0)
    return build_model(load_config(CONFIG))


class TestModuleHashes:
    @pytest.mark.parametrize(
        "grouping",
        [ModuleGrouping(), ModuleGrouping(depth=2),
         ModuleGrouping(depth=3, patterns=("text_encoder.embeddings.*", "fusion*"))],
        ids=["depth1", "depth2", "patterns"],
    )
    def test_reference_model_agrees_with_registry_weights(
        self, reference: nn.Module, tmp_path: Path, grouping: ModuleGrouping
    ):
        """The hashes of the loaded reference model equal `inspect_weights` of its file."""
        path = save_weights(reference, tmp_path / "w.safetensors")
        registered = inspect_weights(str(path), grouping=grouping).module_hashes
        assert module_hashes(reference, grouping.to_json()) == registered
        assert len(registered) >= 3

    def test_dtypes_and_scalars_agree(self, tmp_path: Path):
        """bf16, int64, bool, 0-d and empty tensors hash as the registry hashes the file."""
        state = {
            "a.bf16": torch.randn(3, 4).to(torch.bfloat16),
            "a.idx": torch.arange(5),
            "b.mask": torch.tensor([True, False, True]),
            "b.scale": torch.tensor(2.5),
            "c.empty": torch.zeros(0, 3),
            "d.half": torch.randn(7).half(),
        }
        save_file(state, str(tmp_path / "x.safetensors"))
        registered = inspect_weights(str(tmp_path / "x.safetensors")).module_hashes
        assert module_hashes(state) == registered

    def test_one_changed_value_changes_only_its_module(self, reference: nn.Module):
        """Changing one weight in memory changes that module's hash and no other."""
        before = module_hashes(reference)
        param = next(reference.fusion_layer.parameters())
        with torch.no_grad():
            param.view(-1)[0] += 1.0
        try:
            after = module_hashes(reference)
        finally:
            with torch.no_grad():
                param.view(-1)[0] -= 1.0
        assert [m for m in before if before[m] != after[m]] == ["fusion_layer"]

    def test_module_of_follows_the_registry(self):
        """Grouping of tensor names matches `ModuleGrouping.module_of`."""
        grouping = ModuleGrouping(depth=2, patterns=("vision_model.encoder.*",))
        for name in ("vision_model.encoder.layers.0.q.weight", "text_projection.weight",
                     "logit_scale", "a.b.c.d"):
            assert module_of(name, grouping.to_json()) == grouping.module_of(name)


class TestAttestation:
    def test_info_series_and_heartbeat(self, reference: nn.Module):
        """One mmgov_model_info series with the identity; removed on close."""
        registry = CollectorRegistry()
        att = Attestation(reference, model_name="mm", version=3, config_hash="c" * 64,
                          alias="production", prometheus_registry=registry)
        labels = {"model": "mm", "version": "3", "config_hash": "c" * 64, "alias": "production"}
        assert registry.get_sample_value("mmgov_model_info", labels) == 1.0
        body = att.heartbeat("pod-1")
        assert body["version"] == 3
        assert body["module_hashes"] == module_hashes(reference)
        assert att.differs_from(body["module_hashes"]) == []
        assert att.differs_from({**body["module_hashes"], "text_encoder": "0" * 64}) == [
            "text_encoder"
        ]
        att.close()
        assert registry.get_sample_value("mmgov_model_info", labels) is None
