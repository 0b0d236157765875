"""Load a model config from YAML, validate it, and give it one canonical JSON form and hash."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from yaml.constructor import ConstructorError

from registry.errors import ConfigError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "CanonicalConfig",
    "ModelConfig",
    "canonical_json",
    "canonicalize",
    "load_config_file",
    "load_config_text",
    "parse_yaml",
    "sha256_hex",
]

MAX_DEPTH = 64
"""Deepest nesting a config or canonicalised value may have (also stops alias cycles)."""

MAX_NODES = 100_000
"""Most values a config may expand to; stops YAML alias bombs before they are serialised."""


# --- canonical JSON ------------------------------------------------------------------------------


def canonical_json(obj: Any) -> str:
    """Serialise plain JSON data to its one canonical text.

    Keys sorted, separators ``(",", ":")``, UTF-8 text kept as is (``ensure_ascii=False``), floats
    in Python's shortest round-trip form (so ``1e-05`` and ``0.00001`` are the same text) and
    ``-0.0`` written as ``0.0``. Tuples serialise as lists. The audit log hashes its events with
    this function too, so its output must never change for the same input.

    Returns:
        The canonical JSON text.

    Raises:
        ConfigError: for NaN or infinite floats, non-string mapping keys, values that are not
            JSON data (sets, bytes, dates, objects), strings that cannot be encoded as UTF-8, or
            nesting deeper than ``MAX_DEPTH``; the message names the dotted path.
    """
    plain = _checked_plain(obj, MAX_NODES * 100)
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(data: str | bytes) -> str:
    """Hash text (encoded as UTF-8) or bytes.

    Returns:
        The sha256 digest as 64 lowercase hex characters.

    Raises:
        ConfigError: if ``data`` is text that cannot be encoded as UTF-8 (lone surrogates).
    """
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ConfigError(f"text cannot be encoded as UTF-8: {exc.reason}") from exc
    return hashlib.sha256(data).hexdigest()


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _NotJsonData(Exception):
    """Raised inside `_plain`; the path is collected on the way out, so only errors pay for it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []  # innermost key first


def _plain(obj: Any, depth: int, budget: list[int]) -> Any:
    """Check that ``obj`` is JSON data and return a normalised copy (the budget is shared)."""
    if depth > MAX_DEPTH:
        raise _NotJsonData(f"nesting deeper than {MAX_DEPTH} levels (or a cyclic alias)")
    budget[0] -= 1
    if budget[0] < 0:
        raise _NotJsonData("config expands to too many values (alias bomb?)")
    # bool before int: bool is a subclass of int and must stay a JSON boolean.
    if obj is None or isinstance(obj, bool | int):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise _NotJsonData("NaN and infinite numbers are not allowed")
        return 0.0 if obj == 0 else obj  # -0.0 and 0.0 are one value
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise _NotJsonData("string is not valid UTF-8 text") from exc
        return obj
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            if not isinstance(key, str):
                error = _NotJsonData(f"keys must be strings, got {type(key).__name__}")
                error.path.append(str(key))
                raise error
            try:
                out[key] = _plain(value, depth + 1, budget)
            except _NotJsonData as error:
                error.path.append(key)
                raise
        return out
    if isinstance(obj, list | tuple):
        items: list[Any] = []
        for index, value in enumerate(obj):
            try:
                items.append(_plain(value, depth + 1, budget))
            except _NotJsonData as error:
                error.path.append(index)
                raise
        return items
    raise _NotJsonData(f"{type(obj).__name__} is not JSON data")


def _checked_plain(obj: Any, budget: int) -> Any:
    """Return `_plain`'s copy of ``obj``, or raise ConfigError naming the dotted path."""
    try:
        return _plain(obj, 0, [budget])
    except _NotJsonData as error:
        where = _dotted(tuple(reversed(error.path)))
        raise ConfigError(f"{where}: {error.reason}") from error.__cause__


# --- YAML ----------------------------------------------------------------------------------------

_FLOAT_TAG = "tag:yaml.org,2002:float"
_INT_TAG = "tag:yaml.org,2002:int"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 resolvers we drop: they turn `yes`/`on`/`NO` into booleans, `1:30` into 90, `010`
# into 8, dates into date objects (not JSON) and `=` into an unconstructable value.
_DROPPED_TAGS = {
    _FLOAT_TAG,
    _INT_TAG,
    _BOOL_TAG,
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema for scalars and duplicate keys refused."""

    # PyYAML's own design: resolvers are a class attribute each Loader subclass copies.
    yaml_implicit_resolvers = {  # noqa: RUF012
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, str):
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"keys must be strings, found {type(key).__name__} {key!r}",
                        key_node.start_mark,
                    )
                if key in seen:
                    raise ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _construct_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    value = str(loader.construct_scalar(node)).replace("_", "")  # type: ignore[arg-type]
    sign = -1 if value.startswith("-") else 1
    digits = value.lstrip("+-")
    if digits.startswith("0o"):
        return sign * int(digits[2:], 8)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)  # YAML 1.2: a leading zero is still decimal


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    value = str(loader.construct_scalar(node)).replace("_", "").lower()  # type: ignore[arg-type]
    sign = -1.0 if value.startswith("-") else 1.0
    digits = value.lstrip("+-")
    if digits == ".inf":
        return sign * math.inf
    if digits == ".nan":
        return math.nan
    return sign * float(digits)


def _add_resolver(tag: str, pattern: str, first: str) -> None:
    _Yaml12Loader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first))


_add_resolver(_BOOL_TAG, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_add_resolver(_INT_TAG, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_add_resolver(
    _FLOAT_TAG,
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    "-+.0123456789",
)
_Yaml12Loader.add_constructor(_INT_TAG, _construct_int)
_Yaml12Loader.add_constructor(_FLOAT_TAG, _construct_float)


def parse_yaml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse one YAML document with the YAML 1.2 core schema into a mapping.

    Unquoted ``2e-5`` is a float, quoted ``"2e-5"`` stays a string, ``yes``/``on`` stay strings,
    and dates stay strings. Only safe tags are constructed.

    Returns:
        The top-level mapping (string keys).

    Raises:
        ConfigError: ``"<source>:LINE:COL: message"`` (1-based) for a syntax error, a duplicate
            or non-string key; ``"<source>: ..."`` for an empty document or a top level that is
            not a mapping.
    """
    try:
        data = yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 -- a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if mark is None:
            raise ConfigError(f"{source}: {problem}") from exc
        raise ConfigError(f"{source}:{mark.line + 1}:{mark.column + 1}: {problem}") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise ConfigError(
            f"{source}:{line}:{column}: character U+{char:04X} is not allowed in YAML"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: {exc}") from exc
    if data is None:
        raise ConfigError(f"{source}: the config is empty; expected a mapping")
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(data).__name__}")
    return data


# --- schema --------------------------------------------------------------------------------------

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SEMVER = (
    r"^v?[0-9]+\.[0-9]+(?:\.[0-9]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)


def _int_from_integral_float(value: Any) -> Any:
    """Accept ``32.0`` for an integer field (it hashes as ``32``); ``32.5`` still fails."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def _version_must_be_text(value: Any) -> Any:
    """Explain the YAML trap: unquoted ``1.0`` is a number, not a version string."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f'a version must be a string; quote it in YAML, e.g. "{value}"')
    return value


IntLike = Annotated[int, BeforeValidator(_int_from_integral_float)]
Identifier = Annotated[str, Field(pattern=_IDENTIFIER)]


class _Section(BaseModel):
    # strict: a quoted "2e-5" must not silently become a number, nor "32" an integer.
    model_config = ConfigDict(strict=True, extra="allow")


class ModelSection(_Section):
    name: str | None = Field(default=None, min_length=1)
    version: Annotated[
        str | None, BeforeValidator(_version_must_be_text), Field(pattern=_SEMVER)
    ] = None


class EncoderSection(_Section):
    type: Identifier | None = None


class TrainingSection(_Section):
    batch_size: Annotated[IntLike, Field(gt=0)] | None = None
    learning_rate: Annotated[float, Field(gt=0)] | None = None
    epochs: Annotated[IntLike, Field(ge=0)] | None = None


class FusionSection(_Section):
    hidden_size: Annotated[IntLike, Field(gt=0)] | None = None
    num_heads: Annotated[IntLike, Field(gt=0)] | None = None
    dropout: Annotated[float, Field(ge=0, lt=1)] | None = None
    seed: IntLike | None = None


class MonitoringSection(_Section):
    pooling: Literal["cls", "mean"] | None = None
    drift_detector: Identifier | None = None
    window: Annotated[IntLike, Field(gt=0)] | None = None
    stride: Annotated[IntLike, Field(gt=0)] | None = None
    false_alarm_rate: Annotated[float, Field(gt=0, lt=1)] | None = None
    sample_every: Annotated[IntLike, Field(gt=0)] | None = None


class ModelConfig(_Section):
    """The known part of a model config; unknown keys are kept untouched."""

    image_encoder: EncoderSection
    text_encoder: EncoderSection
    fusion_type: Identifier
    model: ModelSection | None = None
    training: TrainingSection | None = None
    fusion: FusionSection | None = None
    monitoring: MonitoringSection | None = None


# --- canonical config ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CanonicalConfig:
    """A validated config in canonical form, with its hash."""

    data: dict[str, Any]
    canonical_json: str
    hash: str
    semver: str | None


def _dotted(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path = _join(path, part)
    return path or "<root>"


def canonicalize(raw: Mapping[str, Any]) -> CanonicalConfig:
    """Validate a parsed config and give it its canonical form and hash.

    Known keys are type-checked (integer fields accept integral floats such as ``32.0``; float
    fields turn ``1`` into ``1.0``), unknown keys are kept as they are, and keys that were not
    given are not added, so later schema fields never change an old config's hash.

    Returns:
        The canonical config; ``hash`` is the sha256 of ``canonical_json``.

    Raises:
        ConfigError: naming the dotted path, e.g. ``training.learning_rate: Input should be a
            valid number``, for schema violations, NaN/Inf, non-string keys or non-JSON values.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"<root>: the config must be a mapping, got {type(raw).__name__}")
    plain = _checked_plain(raw, MAX_NODES)
    try:
        validated = ModelConfig.model_validate(plain)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        message = f"{_dotted(first['loc'])}: {first['msg']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
        raise ConfigError(message) from exc
    text = canonical_json(validated.model_dump(exclude_unset=True))
    # Re-read the canonical text so `data` is exactly what was hashed.
    data: dict[str, Any] = json.loads(text)
    semver = validated.model.version if validated.model is not None else None
    return CanonicalConfig(data=data, canonical_json=text, hash=sha256_hex(text), semver=semver)


def load_config_text(text: str, *, source: str = "<string>") -> CanonicalConfig:
    """Parse, validate and canonicalise a YAML config.

    Returns:
        The canonical config.

    Raises:
        ConfigError: for YAML errors (``source:line:col``) and schema errors (dotted path,
            prefixed with ``source``).
    """
    raw = parse_yaml(text, source=source)
    try:
        return canonicalize(raw)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.detail}") from exc


def load_config_file(path: str | os.PathLike[str]) -> CanonicalConfig:
    """Read a YAML config file (UTF-8) and canonicalise it.

    Returns:
        The canonical config.

    Raises:
        ConfigError: if the file cannot be read or decoded, or as ``load_config_text``.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config: {exc.strerror or exc}") from exc
    return load_config_text(text, source=str(file))
