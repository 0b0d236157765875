"""Tests for registry.diff: config and module diffs and their text rendering."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from registry.config import load_config_file
from registry.diff import (
    ConfigChange,
    ModuleDiff,
    VersionDiff,
    diff_configs,
    diff_modules,
    render_diff,
)

SEED = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"


def _kinds(changes: list[ConfigChange]) -> list[tuple[str, str]]:
    return [(c.path, c.kind) for c in changes]


class TestDiffConfigs:
    def test_identical_configs(self) -> None:
        """Equal configs have no changes."""
        config = load_config_file(SEED)
        assert diff_configs(config, copy.deepcopy(config)) == []

    def test_nested_change_added_removed(self) -> None:
        """Nested keys are named by dotted paths; changes come sorted by path."""
        old = {"training": {"learning_rate": 2e-5, "epochs": 10}, "fusion_type": "concat"}
        new = {"training": {"learning_rate": 1e-4, "warmup": 5}, "fusion_type": "concat"}
        changes = diff_configs(old, new)
        assert changes == [
            ConfigChange(path="training.epochs", kind="removed", old=10, new=None),
            ConfigChange(path="training.learning_rate", kind="changed", old=2e-5, new=1e-4),
            ConfigChange(path="training.warmup", kind="added", old=None, new=5),
        ]

    def test_whole_section_added_and_removed(self) -> None:
        """A new or dropped section is one entry carrying the whole value."""
        changes = diff_configs({"a": {"x": 1}}, {"b": {"y": 2}})
        assert changes == [
            ConfigChange(path="a", kind="removed", old={"x": 1}),
            ConfigChange(path="b", kind="added", new={"y": 2}),
        ]

    def test_dict_replaced_by_scalar(self) -> None:
        """A mapping replaced by a scalar is a single change, and the reverse too."""
        assert _kinds(diff_configs({"fusion": {"h": 1}}, {"fusion": "none"})) == [
            ("fusion", "changed")
        ]
        assert _kinds(diff_configs({"fusion": None}, {"fusion": {"h": 1}})) == [
            ("fusion", "changed")
        ]

    def test_lists_compared_whole(self) -> None:
        """A list that differs anywhere is one change of the whole list."""
        changes = diff_configs({"labels": [1, 2, 3]}, {"labels": [1, 2, 4]})
        assert changes == [
            ConfigChange(path="labels", kind="changed", old=[1, 2, 3], new=[1, 2, 4])
        ]
        assert diff_configs({"labels": [1, 2]}, {"labels": [1, 2]}) == []

    @pytest.mark.parametrize(("old", "new"), [(1, 1.0), (1, True), (0, False), ([1], [True])])
    def test_types_matter(self, old: Any, new: Any) -> None:
        """1, 1.0 and True differ, as they do in the config hash."""
        assert _kinds(diff_configs({"x": old}, {"x": new})) == [("x", "changed")]

    def test_none_value_vs_missing(self) -> None:
        """A key set to null differs from a missing key."""
        assert _kinds(diff_configs({}, {"x": None})) == [("x", "added")]


class TestDiffModules:
    def test_sorted_into_four_lists(self) -> None:
        """Modules are changed, unchanged, added or removed, each list sorted."""
        old = {"text_encoder": "1", "image_encoder": "2", "fusion_layer": "3", "head": "4"}
        new = {"text_encoder": "1", "image_encoder": "9", "fusion_layer": "3", "adapter": "5"}
        assert diff_modules(old, new) == ModuleDiff(
            changed=["image_encoder"],
            unchanged=["fusion_layer", "text_encoder"],
            added=["adapter"],
            removed=["head"],
        )

    def test_no_module_hashes(self) -> None:
        """Neither side with module hashes gives empty lists."""
        assert diff_modules({}, {}) == ModuleDiff(changed=[], unchanged=[], added=[], removed=[])


def _version_diff(**overrides: Any) -> VersionDiff:
    fields: dict[str, Any] = {
        "model": "mm-clip-minilm",
        "from_version": 1,
        "to_version": 2,
        "from_config_hash": "a" * 64,
        "to_config_hash": "b" * 64,
        "config_changes": [],
        "weights_changed": False,
        "modules": ModuleDiff(),
    }
    fields.update(overrides)
    return VersionDiff(**fields)


class TestRenderDiff:
    def test_full_rendering(self) -> None:
        """Config changes, weights and module lists render as documented."""
        old = {"training": {"learning_rate": 2e-5, "epochs": 10}, "fusion_type": "concat"}
        new = {"training": {"learning_rate": 1e-4}, "fusion_type": "gated", "tag": "2e-5"}
        diff = _version_diff(
            config_changes=diff_configs(old, new),
            weights_changed=True,
            modules=diff_modules({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"}),
        )
        assert render_diff(diff).splitlines() == [
            "mm-clip-minilm v1 -> v2",
            "config: aaaaaaaaaaaa -> bbbbbbbbbbbb (4 changes)",
            '  ~ fusion_type: "concat" -> "gated"',
            '  + tag: "2e-5"',
            "  - training.epochs: 10",
            "  ~ training.learning_rate: 2e-05 -> 0.0001",
            "weights changed: yes",
            "modules changed: b",
            "modules unchanged: a",
            "modules added: c",
            "modules removed: -",
        ]

    def test_nothing_changed(self) -> None:
        """Same config hash and weights say so."""
        text = render_diff(_version_diff(to_config_hash="a" * 64))
        assert "config: unchanged (aaaaaaaaaaaa)" in text
        assert "weights changed: no" in text
        assert "modules changed: -" in text

    def test_control_characters_stay_on_one_line(self) -> None:
        """A value with a newline cannot forge extra output lines."""
        diff = _version_diff(
            config_changes=diff_configs({"note": "a"}, {"note": "b\nweights changed: no"})
        )
        lines = render_diff(diff).splitlines()
        assert lines[2] == '  ~ note: "a" -> "b\\nweights changed: no"'
        assert lines.count("weights changed: no") == 1

    def test_diff_round_trips_as_json(self) -> None:
        """VersionDiff serialises to JSON and back unchanged (the API returns it)."""
        diff = _version_diff(
            config_changes=diff_configs({"x": {"y": 1}}, {"x": 2}),
            modules=diff_modules({"a": "1"}, {"a": "2"}),
        )
        assert VersionDiff.model_validate_json(diff.model_dump_json()) == diff
