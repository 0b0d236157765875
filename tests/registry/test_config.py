"""Tests for registry.config: YAML parsing, canonical form and hash (no layout imposed)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest

from registry.config import (
    CanonicalConfig,
    ConfigLimits,
    canonical_json,
    canonicalize,
    load_canonical_text,
    load_config_file,
    load_config_text,
    parse_yaml,
    semver_of,
    sha256_hex,
)
from registry.errors import ConfigError, InvalidInput

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "clip" / "config.yaml"
REFERENCE = ROOT / "configs" / "model.yaml"

MINIMAL = """\
image_encoder: {type: clip_vision}
text_encoder: {type: minilm}
fusion_type: concat
training:
  batch_size: 32
  learning_rate: 2e-5
  epochs: 10
"""


def _load(text: str, source: str = "<string>") -> CanonicalConfig:
    return canonicalize(load_config_text(text, source=source))


def _with(**sections: object) -> dict[str, object]:
    base: dict[str, object] = {
        "image_encoder": {"type": "clip_vision"},
        "text_encoder": {"type": "minilm"},
        "fusion_type": "concat",
    }
    base.update(sections)
    return base


class TestSeedConfig:
    def test_seed_config_yaml_registers_as_is(self) -> None:
        """The seed's config.yaml (its own layout, nested model section) canonicalises verbatim."""
        config = canonicalize(load_config_file(SEED))
        assert config.data == {
            "model": {
                "version": "v1.2.0",
                "image_encoder": "clip-vit-base-patch32",
                "text_encoder": "bert-base-uncased",
                "fusion_type": "cross_attention",
            },
            "training": {"batch_size": 32, "learning_rate": 2e-5, "epochs": 10},
        }
        assert config.semver == "v1.2.0"
        assert isinstance(config.data["training"]["learning_rate"], float)

    def test_hash_is_sha256_of_canonical_json(self) -> None:
        """The hash is the sha256 of the canonical JSON, which decodes to ``data``."""
        config = canonicalize(load_config_file(SEED))
        assert config.hash == hashlib.sha256(config.canonical_json.encode()).hexdigest()
        assert json.loads(config.canonical_json) == config.data
        assert config.hash == "cfbd49550a2472a1aa54c01c3038a68e75c23b093e8c1e002f79891dfc66ac07"

    def test_reference_config_hash_unchanged(self) -> None:
        """configs/model.yaml hashes exactly as the 0.1 release hashed it (no coercion needed)."""
        config = canonicalize(load_config_file(REFERENCE))
        assert config.hash == "b7a71fe627753d1e9d5f52fbb14a15744a65f4e95a7121a6fba2a8d300ad91d2"
        assert config.semver == "1.0.0"

    def test_file_and_text_agree(self) -> None:
        """Loading the file and loading its text give the same hash."""
        assert canonicalize(load_config_file(SEED)).hash == _load(SEED.read_text()).hash

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ({"model": {"version": "v1.2.0"}}, "v1.2.0"),
            ({"model": {"version": "2.3.4-rc.1"}}, "2.3.4-rc.1"),
            ({"model": {"version": "one"}}, None),
            ({"model": {"version": 1.0}}, None),
            ({"model": "x"}, None),
            ({"version": "1.0.0"}, None),
        ],
    )
    def test_semver_taken_from_model_version(
        self, data: dict[str, Any], expected: str | None
    ) -> None:
        """``model.version`` is the semver label when it is a semantic-version string."""
        assert semver_of(data) == expected


class TestNumbers:
    def test_numbers_kept_as_written_without_a_schema(self) -> None:
        """Without a schema 1 and 1.0 are different values (a schema decides, see its tests)."""
        assert canonicalize(_with(training={"learning_rate": 1})).hash != (
            canonicalize(_with(training={"learning_rate": 1.0})).hash
        )

    def test_exponent_equals_decimal(self) -> None:
        """Unquoted 2e-5 (a string to YAML 1.1) hashes like 0.00002."""
        a = _load(MINIMAL)
        b = _load(MINIMAL.replace("2e-5", "0.00002"))
        c = _load(MINIMAL.replace("2e-5", "2.0E-05"))
        assert a.hash == b.hash == c.hash
        assert a.data["training"]["learning_rate"] == 2e-5

    def test_quoted_exponent_stays_a_string(self) -> None:
        """A quoted "2e-5" is a string: in an unknown key it hashes differently from 2e-5."""
        number = _load(MINIMAL + "extra: 2e-5\n")
        text = _load(MINIMAL + 'extra: "2e-5"\n')
        assert number.data["extra"] == 2e-5
        assert text.data["extra"] == "2e-5"
        assert number.hash != text.hash

    def test_negative_zero_is_zero(self) -> None:
        """-0.0 and 0.0 have one canonical form."""
        assert canonical_json({"x": -0.0}) == canonical_json({"x": 0.0}) == '{"x":0.0}'

    @pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", ".NaN"])
    def test_nan_and_inf_rejected(self, value: str) -> None:
        """NaN and infinities cannot be hashed and are refused with their path."""
        with pytest.raises(ConfigError, match=r"extra\.x: NaN and infinite"):
            _load(MINIMAL + f"extra:\n  x: {value}\n")

    def test_yaml_1_2_scalars(self) -> None:
        """yes/on stay strings, 010 is ten, dates stay strings, 0x/0o ints parse."""
        data = parse_yaml(
            "a: yes\nb: on\nc: 010\nd: 2024-01-01\ne: 0x1f\nf: 0o17\ng: 1:30\nh: true"
        )
        assert data == {
            "a": "yes",
            "b": "on",
            "c": 10,
            "d": "2024-01-01",
            "e": 31,
            "f": 15,
            "g": "1:30",
            "h": True,
        }


class TestCanonicalForm:
    def test_key_order_and_whitespace_do_not_matter(self) -> None:
        """Reordered keys, flow style, comments and blank lines hash the same."""
        reordered = """\
# a comment
training: {epochs: 10,   learning_rate: 0.00002, batch_size: 32}

fusion_type:    concat
text_encoder:
    type: minilm
image_encoder:
    type: clip_vision
"""
        assert _load(reordered).hash == _load(MINIMAL).hash

    def test_value_change_changes_hash(self) -> None:
        """A different value gives a different hash."""
        assert (
            _load(MINIMAL).hash
            != _load(MINIMAL.replace("epochs: 10", "epochs: 11")).hash
        )

    def test_unknown_keys_kept(self) -> None:
        """Unknown keys at any level are kept as given."""
        config = canonicalize(
            _with(custom={"nested": [1, 2.5, "x"]}, training={"warmup_steps": 100})
        )
        assert config.data["custom"] == {"nested": [1, 2.5, "x"]}
        assert config.data["training"] == {"warmup_steps": 100}

    def test_absent_keys_not_added(self) -> None:
        """Optional schema fields that were not given do not appear (the hash stays stable)."""
        config = canonicalize(_with())
        assert set(config.data) == {"image_encoder", "text_encoder", "fusion_type"}
        assert config.semver is None

    def test_canonical_json_format(self) -> None:
        """Sorted keys, compact separators, UTF-8 text kept, shortest float form."""
        text = canonical_json({"b": 1e-05, "a": ["µ", 0.00001, True, None]})
        assert text == '{"a":["µ",1e-05,true,null],"b":1e-05}'

    def test_canonical_json_refuses_non_json(self) -> None:
        """Sets, bytes, non-string keys and NaN are refused with the path."""
        with pytest.raises(ConfigError, match=r"a\.b: set is not JSON data"):
            canonical_json({"a": {"b": {1}}})
        with pytest.raises(ConfigError, match="keys must be strings"):
            canonical_json({1: "x"})
        with pytest.raises(ConfigError, match=r"x\[1\]: NaN"):
            canonical_json({"x": [0, math.nan]})

    def test_canonical_json_refuses_cycles(self) -> None:
        """A cyclic structure is refused instead of recursing forever."""
        loop: list[object] = []
        loop.append(loop)
        with pytest.raises(ConfigError, match="nesting deeper"):
            canonical_json(loop)

    def test_sha256_hex(self) -> None:
        """Text is hashed as UTF-8; bytes as they are."""
        assert sha256_hex("µ") == hashlib.sha256("µ".encode()).hexdigest()
        assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
        with pytest.raises(ConfigError):
            sha256_hex("\ud800")


class TestYamlErrors:
    def test_syntax_error_names_line_and_column(self) -> None:
        """A syntax error says source:line:col, 1-based."""
        with pytest.raises(ConfigError) as info:
            parse_yaml("a: 1\nb: [1, 2\nc: 3\n", source="model.yaml")
        assert info.value.detail.startswith("model.yaml:3:")
        with pytest.raises(ConfigError, match=r"^bad\.yaml:2:5: mapping values"):
            parse_yaml("a: 1\nb: c: d\n", source="bad.yaml")

    def test_config_error_is_invalid_input(self) -> None:
        """ConfigError is an InvalidInput, so the API maps it to 422."""
        with pytest.raises(InvalidInput):
            parse_yaml("a: [")

    def test_duplicate_key_rejected(self) -> None:
        """A repeated key is an error at the repeat, not silently last-wins."""
        with pytest.raises(ConfigError, match=r"^m\.yaml:3:3: duplicate key 'epochs'"):
            parse_yaml("training:\n  epochs: 1\n  epochs: 2\n", source="m.yaml")

    def test_merge_keys_are_not_duplicates(self) -> None:
        """A YAML merge key may be overridden by an explicit key."""
        data = parse_yaml("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
        assert data["other"] == {"x": 1, "y": 3}

    @pytest.mark.parametrize(
        ("text", "kind"), [("- 1\n- 2\n", "list"), ("42\n", "int"), ("just text\n", "str")]
    )
    def test_top_level_must_be_mapping(self, text: str, kind: str) -> None:
        """A top level that is not a mapping is refused."""
        with pytest.raises(ConfigError, match=f"top level must be a mapping, got {kind}"):
            parse_yaml(text)

    def test_empty_document_rejected(self) -> None:
        """An empty file is not a config."""
        with pytest.raises(ConfigError, match="empty"):
            parse_yaml("# only a comment\n")

    def test_non_string_key_rejected(self) -> None:
        """Integer keys would collide with string keys in JSON and are refused."""
        with pytest.raises(ConfigError, match=r"^<string>:2:1: keys must be strings"):
            parse_yaml("a: 1\n1: b\n")

    def test_unsafe_tag_rejected(self) -> None:
        """Python object tags are never constructed."""
        with pytest.raises(ConfigError):
            parse_yaml("a: !!python/object/apply:os.system ['true']\n")

    def test_alias_bomb_refused(self) -> None:
        """Nested aliases that expand exponentially are refused before serialising."""
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        for i in range(1, 8):
            prev = f"*a{i - 1}"
            lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
        text = MINIMAL + "\n".join(lines) + "\n"
        with pytest.raises(ConfigError, match="too many values"):
            _load(text)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=r"nope\.yaml"):
            load_config_file(tmp_path / "nope.yaml")

    def test_non_utf8_file(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 is refused."""
        path = tmp_path / "latin1.yaml"
        path.write_bytes("a: é\n".encode("latin-1"))
        with pytest.raises(ConfigError, match="not UTF-8"):
            load_config_file(path)


class TestAnyLayout:
    @pytest.mark.parametrize(
        "raw",
        [
            {"a": 1},
            {"model": {"version": 1.0}},
            {"fusion_type": "gatd", "training": {"learnig_rate": 2e-5}},
            {"nested": {"deep": [1, {"x": None}]}},
        ],
    )
    def test_any_mapping_canonicalises(self, raw: dict[str, Any]) -> None:
        """Without a schema any mapping of JSON data is a config (the schema is per model)."""
        assert json.loads(canonicalize(raw).canonical_json) == raw

    def test_non_mapping_rejected(self) -> None:
        """canonicalize refuses a non-mapping."""
        with pytest.raises(ConfigError, match="must be a mapping"):
            canonicalize([1, 2])  # type: ignore[arg-type]

    def test_deep_nesting_refused_with_path(self) -> None:
        """Nesting past the limit is refused, not a RecursionError."""
        text = "a: " + "[" * 70 + "]" * 70
        with pytest.raises(ConfigError, match="nesting deeper"):
            _load(text)


@pytest.mark.parametrize("isolated", [False, True], ids=["here", "worker"])
def test_load_canonical_text_matches_canonicalize(isolated: bool) -> None:
    """load_canonical_text (in the worker or here) gives canonicalize's data, text, hash, semver."""
    text = REFERENCE.read_text(encoding="utf-8") + "extra: {b: -0.0, a: 1e-05, c: [yes, 010]}\n"
    found = load_canonical_text(text, source="cfg", limits=ConfigLimits(isolated=isolated))
    expected = canonicalize(load_config_text(text, source="cfg"))
    assert found == expected
    assert list(found.data) == list(expected.data)  # the config's own key order is kept
    assert found.hash == hashlib.sha256(found.canonical_json.encode()).hexdigest()


@pytest.mark.parametrize("isolated", [False, True], ids=["here", "worker"])
def test_load_canonical_text_errors_as_load_config_text(isolated: bool) -> None:
    """A bad config fails with load_config_text's message, wherever it is parsed."""
    text = "a: 1\nb: [1, 2\n"
    with pytest.raises(ConfigError) as expected:
        load_config_text(text, source="cfg")
    with pytest.raises(ConfigError) as found:
        load_canonical_text(text, source="cfg", limits=ConfigLimits(isolated=isolated))
    assert found.value.detail == expected.value.detail
