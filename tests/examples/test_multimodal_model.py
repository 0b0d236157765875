"""Tests for examples.multimodal.model and config: building and running the reference model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from examples.multimodal import (
    MODULE_NAMES,
    ExampleConfigError,
    MultimodalModel,
    build_model,
    list_fusions,
    load_config,
)
from examples.multimodal.__main__ import main


class TestBuildModel:
    def test_children_are_the_three_modules(self, model: MultimodalModel) -> None:
        """The top-level children are exactly image_encoder, text_encoder, fusion_layer."""
        assert tuple(name for name, _ in model.named_children()) == MODULE_NAMES
        assert not model.training

    def test_forward_gives_one_finite_embedding_per_pair(
        self, model: MultimodalModel, batch: dict[str, torch.Tensor]
    ) -> None:
        """forward(pixel_values, input_ids, attention_mask) returns finite [batch, 384]."""
        with torch.no_grad():
            out = model(**batch)
        assert out.shape == (6, 384)
        assert torch.isfinite(out).all()

    def test_output_does_not_depend_on_batch_neighbours(
        self, model: MultimodalModel, batch: dict[str, torch.Tensor]
    ) -> None:
        """A sample's embedding is the same alone as inside a padded batch."""
        length = int(batch["attention_mask"][0].sum())
        single = {
            "pixel_values": batch["pixel_values"][:1],
            "input_ids": batch["input_ids"][:1, :length],
            "attention_mask": batch["attention_mask"][:1, :length],
        }
        with torch.no_grad():
            torch.testing.assert_close(model(**single)[0], model(**batch)[0], atol=1e-4, rtol=1e-4)

    @pytest.mark.parametrize("fusion_type", list_fusions())
    def test_every_fusion_type_builds_and_runs(
        self, config: dict[str, Any], batch: dict[str, torch.Tensor], fusion_type: str
    ) -> None:
        """Each catalog entry can be chosen by fusion_type and runs on a real batch."""
        config["fusion_type"] = fusion_type
        with torch.no_grad():
            out = build_model(config)(**batch)
        assert out.shape == (6, config["fusion"]["hidden_size"])
        assert torch.isfinite(out).all()

    def test_unknown_fusion_type_lists_valid_names(self, config: dict[str, Any]) -> None:
        """An unknown fusion_type raises ExampleConfigError naming the valid fusions."""
        config["fusion_type"] = "bilinear"
        with pytest.raises(ExampleConfigError, match=r"fusion_type.*concat.*cross_attention"):
            build_model(config)

    @pytest.mark.parametrize("missing", ["image_encoder", "text_encoder", "fusion"])
    def test_missing_section_is_named(self, config: dict[str, Any], missing: str) -> None:
        """A config without a model section raises ExampleConfigError naming it."""
        del config[missing]
        with pytest.raises(ExampleConfigError, match=missing):
            build_model(config)

    def test_bad_fusion_option_is_named(self, config: dict[str, Any]) -> None:
        """Fusion heads that do not divide the hidden size are reported under `fusion`."""
        config["fusion_type"] = "cross_attention"
        config["fusion"]["num_heads"] = 5
        with pytest.raises(ExampleConfigError, match=r"fusion: .*divisible"):
            build_model(config)


class TestLoadConfig:
    def test_is_a_plain_yaml_load(self, seed_config: dict[str, Any]) -> None:
        """The seed config loads as plain YAML: PyYAML leaves `2e-5` a string."""
        assert seed_config["fusion_type"] in list_fusions()
        assert seed_config["training"]["learning_rate"] == "2e-5"

    @pytest.mark.parametrize(("text", "match"), [("- a\n- b\n", "mapping"), ("a: [\n", "YAML")])
    def test_bad_document_is_rejected(self, tmp_path: Path, text: str, match: str) -> None:
        """A YAML list or broken YAML raises ExampleConfigError naming the file."""
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ExampleConfigError, match=match):
            load_config(path)


class TestSmokeEntry:
    def test_main_runs_one_batch(self, capsys: pytest.CaptureFixture[str]) -> None:
        """`python -m examples.multimodal` builds the model and prints the output shape."""
        config = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"
        assert main(["--config", str(config), "--fusion", "gated", "--batch", "2"]) == 0
        out = capsys.readouterr().out
        assert "output shape=(2, 384)" in out
        assert "finite=True" in out
