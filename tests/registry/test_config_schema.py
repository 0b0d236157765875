"""Tests for registry.config_schema: JSON Schema checks, every violation listed, number forms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from registry.config import canonicalize, load_config_file, load_config_text
from registry.config_schema import MAX_SCHEMA_BYTES, check_config, compile_schema, compile_stored
from registry.errors import ConfigError, InvalidInput

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SCHEMA = json.loads((ROOT / "configs" / "model.schema.json").read_text())
FIXTURE = ROOT / "tests" / "fixtures" / "release_0_1"


def _reference(config: dict[str, Any]) -> dict[str, Any]:
    return check_config(compile_schema(REFERENCE_SCHEMA), config, source="cfg.yaml")


def _minimal(**sections: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "image_encoder": {
            "type": "clip_vision",
            "image_size": 64,
            "patch_size": 16,
            "hidden_size": 384,
            "intermediate_size": 1536,
            "num_hidden_layers": 4,
            "num_attention_heads": 6,
        },
        "text_encoder": {"type": "minilm"},
        "fusion_type": "concat",
    }
    base.update(sections)
    return base


class TestCompile:
    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ([1], "must be a JSON object"),
            (
                {"type": "nope"},
                r"not a valid JSON Schema \(draft 2020-12\): type: .* \(rule: anyOf\)",
            ),
            ({"minimum": "3"}, r"minimum: '3' is not of type 'number'"),
            ({"$ref": "https://example.com/s.json"}, "points outside the schema"),
            ({"properties": {"a": {"$ref": "other.json#/x"}}}, "points outside the schema"),
            ({"$schema": "http://json-schema.org/draft-07/schema#"}, r"\$schema must be"),
            ({"x": float("nan")}, "NaN"),
        ],
    )
    def test_bad_schemas_refused(self, document: Any, message: str) -> None:
        """What is not a usable draft 2020-12 schema is refused, naming the source and why."""
        with pytest.raises(InvalidInput, match=message):
            compile_schema(document, source="s.json")

    def test_too_large_refused(self) -> None:
        """A schema larger than the limit is refused before it is compiled."""
        big = {"description": "x" * MAX_SCHEMA_BYTES}
        with pytest.raises(InvalidInput, match="larger than"):
            compile_schema(big)

    def test_same_schema_compiles_once(self) -> None:
        """Compiling a schema again, or by its stored hash, returns the cached object."""
        first = compile_schema(REFERENCE_SCHEMA)
        assert compile_schema(dict(REFERENCE_SCHEMA)) is first
        assert compile_stored(REFERENCE_SCHEMA, first.hash).hash == first.hash


class TestViolations:
    def test_every_violation_listed_with_path_and_rule(self) -> None:
        """gatd and learnig_rate are both named, each with its dotted path and the rule."""
        config = _minimal(fusion_type="gatd", training={"learnig_rate": 2e-5, "epochs": -1})
        with pytest.raises(ConfigError) as caught:
            _reference(config)
        error = caught.value
        assert error.detail.startswith("cfg.yaml: 3 violations of the schema:\n")
        assert error.errors is not None
        assert [(e["path"], e["rule"]) for e in error.errors] == [
            ("fusion_type", "enum"),
            ("training", "additionalProperties"),
            ("training.epochs", "minimum"),
        ]
        assert "'learnig_rate' was unexpected" in error.detail
        assert '"gatd" is not one of "concat", "cross_attention" or "gated"' in error.detail

    def test_list_is_capped_with_a_count(self) -> None:
        """Hundreds of violations are listed up to a cap, then counted."""
        schema = compile_schema({"additionalProperties": {"type": "integer"}})
        with pytest.raises(ConfigError, match=r"(?s)300 violations.*and 250 more$") as caught:
            check_config(schema, {f"k{i:03}": "x" for i in range(300)}, source="c")
        assert caught.value.errors is not None
        assert len(caught.value.errors) == 300

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ({"training": {"batch_size": True}}, "training.batch_size"),
            ({"training": {"learning_rate": "2e-5"}}, "training.learning_rate"),
            ({"training": {"batch_size": 32.5}}, "training.batch_size"),
            ({"model": {"version": "one"}}, "model.version"),
            ({"model": {"version": 1.0}}, "model.version"),
            ({"monitoring": {"pooling": "max"}}, "monitoring.pooling"),
            ({"monitoring": {"drift_detector": "nope"}}, "monitoring.drift_detector"),
            ({"extra": 1}, "<root>"),
        ],
    )
    def test_reference_schema_keeps_the_old_rules(self, change: dict[str, Any], path: str) -> None:
        """What the built-in layout refused before, the reference model's schema refuses."""
        with pytest.raises(ConfigError) as caught:
            _reference(_minimal(**change))
        assert caught.value.errors is not None
        assert path in [e["path"] for e in caught.value.errors]

    @pytest.mark.parametrize("missing", ["image_encoder", "text_encoder", "fusion_type"])
    def test_reference_schema_requires_sections(self, missing: str) -> None:
        """The encoders and the fusion type are required by the reference schema."""
        config = _minimal()
        del config[missing]
        with pytest.raises(ConfigError, match=f'"{missing}" is a required property'):
            _reference(config)


class TestNumberForms:
    def test_integer_and_number_fixed_by_the_schema(self) -> None:
        """batch_size 32.0 becomes 32 and learning_rate 1 becomes 1.0: one hash either way."""
        a = _reference(_minimal(training={"batch_size": 32.0, "learning_rate": 1}))
        b = _reference(_minimal(training={"batch_size": 32, "learning_rate": 1.0}))
        assert a == b
        assert type(a["training"]["batch_size"]) is int
        assert type(a["training"]["learning_rate"]) is float
        assert canonicalize(a).hash == canonicalize(b).hash

    def test_refs_items_and_patterns_followed(self) -> None:
        """$ref into $defs, allOf, prefixItems/items and patternProperties all fix forms."""
        schema = compile_schema(
            {
                "$defs": {"n": {"type": "number"}, "i": {"type": "integer"}},
                "properties": {
                    "a": {"$ref": "#/$defs/n"},
                    "b": {"allOf": [{"$ref": "#/$defs/i"}]},
                    "c": {"prefixItems": [{"type": "integer"}], "items": {"type": "number"}},
                },
                "patternProperties": {"^lr_": {"type": "number"}},
                "additionalProperties": {"type": "integer"},
            }
        )
        out = check_config(
            schema, {"a": 1, "b": 2.0, "c": [3.0, 4], "lr_x": 5, "z": 6.0}, source="c"
        )
        assert json.dumps(out, sort_keys=True) == (
            '{"a": 1.0, "b": 2, "c": [3, 4.0], "lr_x": 5.0, "z": 6}'
        )

    def test_choices_and_unions_change_nothing(self) -> None:
        """anyOf/oneOf and type unions do not choose a form: the value stays as written."""
        schema = compile_schema(
            {
                "properties": {
                    "a": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                    "b": {"type": ["integer", "number"]},
                }
            }
        )
        assert check_config(schema, {"a": 2.0, "b": 1}, source="c") == {"a": 2.0, "b": 1}

    def test_recursive_ref_terminates(self) -> None:
        """A schema that refers to itself is walked as deep as the config, no deeper."""
        schema = compile_schema({"type": "object", "additionalProperties": {"$ref": "#"}})
        assert check_config(schema, {"a": {"b": {}}}, source="c") == {"a": {"b": {}}}

    def test_release_fixture_hashes_kept_with_the_reference_schema(self) -> None:
        """The 0.1 release's coerced config (learning_rate: 1, batch_size: 32.0) keeps its hash."""
        raw = load_config_file(FIXTURE / "v2.yaml")
        assert canonicalize(_reference(raw)).hash == (
            "f22bf2705137d6418c23cba15818846e429ba8f101b1372a56fcda0ae3eb523e"
        )
        # Without the schema the same text is a different config: the schema decides.
        assert canonicalize(load_config_text((FIXTURE / "v2.yaml").read_text())).hash != (
            "f22bf2705137d6418c23cba15818846e429ba8f101b1372a56fcda0ae3eb523e"
        )
