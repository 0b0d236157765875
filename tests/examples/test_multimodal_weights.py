"""Tests for examples.multimodal.weights: one safetensors file, module prefixes, round trip."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from torch import nn

from examples.multimodal import (
    MODULE_NAMES,
    MultimodalModel,
    WeightsMismatchError,
    build_model,
    load_weights,
    save_weights,
)


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as f:
        return {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open is not a dict


class TestSaveWeights:
    def test_names_carry_exactly_the_three_prefixes(
        self, model: MultimodalModel, tmp_path: Path
    ) -> None:
        """Every tensor name starts with image_encoder., text_encoder. or fusion_layer."""
        path = save_weights(model, tmp_path / "w.safetensors")
        assert path.is_absolute()
        assert path.is_file()
        names = _tensors(path).keys()
        assert {name.split(".", 1)[0] for name in names} == set(MODULE_NAMES)
        assert set(names) == set(model.state_dict())
        assert not list(tmp_path.glob(".*tmp"))

    def test_round_trip_restores_weights_and_outputs(
        self,
        model: MultimodalModel,
        config: dict[str, Any],
        batch: dict[str, torch.Tensor],
        tmp_path: Path,
    ) -> None:
        """Loading the file into a differently seeded model reproduces the saved one."""
        path = save_weights(model, tmp_path / "w.safetensors")
        config["fusion"]["seed"] = 99
        other = build_model(config)
        with torch.no_grad():
            assert not torch.allclose(other(**batch), model(**batch))
            assert load_weights(other, path) is other
            torch.testing.assert_close(other(**batch), model(**batch))

    def test_tied_tensors_are_saved_under_every_name(self, tmp_path: Path) -> None:
        """Modules sharing a parameter still save (safetensors refuses shared memory)."""
        shared = nn.Linear(4, 4)
        tied = nn.ModuleDict({"a": shared, "b": nn.Linear(4, 4)})
        tied["b"].weight = shared.weight
        path = save_weights(tied, tmp_path / "tied.safetensors")
        tensors = _tensors(path)
        assert set(tensors) == {"a.weight", "a.bias", "b.weight", "b.bias"}
        assert torch.equal(tensors["a.weight"], tensors["b.weight"])

    def test_wrong_suffix_is_rejected(self, tmp_path: Path) -> None:
        """Only .safetensors paths are written."""
        with pytest.raises(ValueError, match=r"\.safetensors"):
            save_weights(nn.Linear(2, 2), tmp_path / "w.bin")
        assert not list(tmp_path.iterdir())


class TestLoadWeights:
    def test_mismatch_is_refused_and_model_unchanged(self, tmp_path: Path) -> None:
        """A file for another architecture raises WeightsMismatchError and loads nothing."""
        path = save_weights(nn.Linear(3, 2), tmp_path / "small.safetensors")
        target = nn.Linear(4, 2)
        before = copy.deepcopy(target.state_dict())
        with pytest.raises(WeightsMismatchError, match="shape"):
            load_weights(target, path)
        assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())

    def test_missing_file_is_reported(self, tmp_path: Path) -> None:
        """A path that does not exist raises FileNotFoundError."""
        with pytest.raises(FileNotFoundError):
            load_weights(nn.Linear(2, 2), tmp_path / "nope.safetensors")


def test_fusion_type_change_only_changes_fusion_tensors(
    model: MultimodalModel, config: dict[str, Any], tmp_path: Path
) -> None:
    """Configs that differ only in fusion_type share encoder tensors; fusion tensors differ."""
    assert config["fusion_type"] != "gated"
    config["fusion_type"] = "gated"
    a = _tensors(save_weights(model, tmp_path / "concat.safetensors"))
    b = _tensors(save_weights(build_model(config), tmp_path / "gated.safetensors"))
    for prefix in ("image_encoder.", "text_encoder."):
        names = {n for n in a if n.startswith(prefix)}
        assert names
        assert names == {n for n in b if n.startswith(prefix)}
        for name in names:
            assert torch.equal(a[name], b[name]), name
    fusion_a = {n: t for n, t in a.items() if n.startswith("fusion_layer.")}
    fusion_b = {n: t for n, t in b.items() if n.startswith("fusion_layer.")}
    assert fusion_a
    assert fusion_b
    assert fusion_a.keys() != fusion_b.keys() or any(
        not torch.equal(t, fusion_b[n]) for n, t in fusion_a.items()
    )


def test_same_config_gives_byte_identical_files(
    model: MultimodalModel, seed_config: dict[str, Any], tmp_path: Path
) -> None:
    """Rebuilding from one config reproduces the weights file byte for byte (stable sha256)."""
    first = save_weights(model, tmp_path / "first.safetensors")
    second = save_weights(build_model(seed_config), tmp_path / "second.safetensors")
    assert first.read_bytes() == second.read_bytes()
