"""Per-model config schemas: JSON Schema (draft 2020-12) checks, and the number forms they fix.

A model may carry a JSON Schema; registration validates a config against the model's current
schema and lists every violation. A schema is checked against the draft 2020-12 metaschema by the
`jsonschema` library (whose messages name the rule a bad schema breaks); configs are validated
by `jsonschema-rs`, the Rust implementation of the same specification, because registration runs
it on every call (about 2 µs for the reference model's config, against 250 µs in Python).

A schema also decides the canonical form of numbers it types, so that a config hashes the same
however its numbers were written: where the schema says ``"type": "integer"`` an integral
``32.0`` becomes ``32``, and where it says ``"type": "number"`` an integer ``1`` becomes ``1.0``.
That is the coercion the registry applied to the reference model's fields before schemas were
data; a model without a schema keeps its numbers exactly as written.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from registry.config import plain_config, sha256_hex
from registry.errors import ConfigError, InvalidInput

__all__ = [
    "DRAFT_2020_12",
    "MAX_SCHEMA_BYTES",
    "MAX_VIOLATIONS_SHOWN",
    "ConfigSchema",
    "check_config",
    "compile_schema",
    "compile_stored",
]

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_SCHEMA_BYTES = 256 * 1024
"""Largest schema accepted, as canonical JSON."""
MAX_VIOLATIONS_SHOWN = 50
"""Violations listed in one error; a count says how many more there were."""
_MAX_MESSAGE = 240
_MAX_REF_HOPS = 32
_REF_KEYS = ("$ref", "$dynamicRef")


@dataclass(frozen=True)
class ConfigSchema:
    """A checked JSON Schema with its canonical text and hash, ready to validate configs."""

    document: dict[str, Any]
    canonical_json: str
    hash: str
    validator: jsonschema_rs.Draft202012Validator = field(compare=False, repr=False)


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def compile_schema(document: Any, *, source: str = "schema") -> ConfigSchema:
    """Check that ``document`` is a usable JSON Schema (draft 2020-12) and compile it.

    Returns:
        The compiled schema (cached by its hash: compiling the same schema twice is free).

    Raises:
        InvalidInput: naming ``source``, for a document that is not a JSON object of JSON data,
            larger than ``MAX_SCHEMA_BYTES``, declaring another ``$schema`` dialect, with a
            ``$ref`` that leaves the document, or that is not valid JSON Schema (the path and
            the rule it breaks).
    """
    if not isinstance(document, Mapping):
        raise InvalidInput(
            f"{source}: a schema must be a JSON object, got {type(document).__name__}"
        )
    try:
        plain = plain_config(document)
    except ConfigError as exc:
        raise InvalidInput(f"{source}: {exc.detail}") from exc
    text = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise InvalidInput(f"{source}: the schema is larger than {MAX_SCHEMA_BYTES} bytes")
    return _compile(text, source)


@functools.lru_cache(maxsize=256)
def _compile(text: str, source: str) -> ConfigSchema:
    plain: dict[str, Any] = json.loads(text)
    dialect = plain.get("$schema", DRAFT_2020_12)
    if dialect not in (DRAFT_2020_12, DRAFT_2020_12 + "#"):
        raise InvalidInput(f"{source}: $schema must be {DRAFT_2020_12!r}, got {dialect!r}")
    for ref in _refs(plain):
        if not ref.startswith("#"):
            raise InvalidInput(
                f"{source}: $ref {ref[:100]!r} points outside the schema; only local references "
                "('#/$defs/...') are allowed"
            )
    try:
        Draft202012Validator.check_schema(plain)
    except SchemaError as exc:
        where = _path(exc.absolute_path)
        raise InvalidInput(
            f"{source}: not a valid JSON Schema (draft 2020-12): {where}: "
            f"{_short(exc.message)} (rule: {exc.validator})"
        ) from None
    # Only local references are left (checked above), so the validator never fetches anything.
    validator = jsonschema_rs.Draft202012Validator(plain)
    return ConfigSchema(
        document=plain, canonical_json=text, hash=sha256_hex(text), validator=validator
    )


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out or "<root>"


def _short(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MAX_MESSAGE else message[: _MAX_MESSAGE - 3] + "..."


def _violation(error: jsonschema_rs.ValidationError) -> dict[str, str]:
    rule = error.schema_path[-1] if error.schema_path else "schema"
    return {
        "path": _path(error.instance_path),
        "message": _short(error.message),
        "rule": str(rule),
        "schema_path": _path(error.schema_path),
    }


def check_config(
    schema: ConfigSchema, data: dict[str, Any], *, source: str, label: str = "the schema"
) -> dict[str, Any]:
    """Validate a plain config against ``schema`` and fix the forms of the numbers it types.

    Returns:
        A copy of ``data`` with integral numbers under ``"type": "integer"`` as ints and
        integers under ``"type": "number"`` as floats.

    Raises:
        ConfigError: listing every violation (dotted path, message, the schema rule broken),
            in path order; ``errors`` holds them as data.
    """
    if not schema.validator.is_valid(data):
        errors = [_violation(e) for e in schema.validator.iter_errors(data)]
        errors.sort(key=lambda e: (e["path"], e["rule"], e["message"]))
        raise _violations(errors, source, label)
    coerced: dict[str, Any] = _coerce(schema.document, data, schema.document, 0)
    return coerced


def _violations(errors: list[dict[str, str]], source: str, label: str) -> ConfigError:
    shown = [f"  {e['path']}: {e['message']} (rule: {e['rule']})" for e in errors]
    more = len(shown) - MAX_VIOLATIONS_SHOWN
    shown = shown[:MAX_VIOLATIONS_SHOWN] + ([f"  ... and {more} more"] if more > 0 else [])
    noun = "violation" if len(errors) == 1 else "violations"
    return ConfigError(
        f"{source}: {len(errors)} {noun} of {label}:\n" + "\n".join(shown), errors=errors
    )


_SAFE_FLOAT_INT = 2**53


def _types(node: Mapping[str, Any]) -> set[str]:
    kind = node.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


def _pointer(root: Any, ref: str) -> Any:
    """Resolve a local ``#/a/b`` reference (None when it is an anchor or does not resolve)."""
    if ref in ("#", ""):
        return root
    if not ref.startswith("#/"):
        return None
    node = root
    for raw in ref[2:].split("/"):
        key = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isascii() and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node


def _coerce(node: Any, value: Any, root: Any, hops: int) -> Any:
    """Walk ``value`` along schema ``node``; only ``$ref``, ``allOf`` and the applicators that
    name one subschema per location are followed (``anyOf``/``oneOf`` choose nothing)."""
    if not isinstance(node, dict):
        return value
    ref = node.get("$ref")
    if isinstance(ref, str) and hops < _MAX_REF_HOPS:
        value = _coerce(_pointer(root, ref), value, root, hops + 1)
    for sub in node.get("allOf", ()) if isinstance(node.get("allOf"), list) else ():
        value = _coerce(sub, value, root, hops + 1) if hops < _MAX_REF_HOPS else value
    types = _types(node)
    if isinstance(value, float) and "integer" in types and "number" not in types:
        return int(value) if value.is_integer() and abs(value) < _SAFE_FLOAT_INT else value
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and "number" in types
        and "integer" not in types
        and abs(value) < _SAFE_FLOAT_INT
    ):
        return float(value)
    if isinstance(value, dict):
        return {
            key: _coerce(_property_schema(node, key), item, root, 0) for key, item in value.items()
        }
    if isinstance(value, list):
        prefix = node.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        rest = node.get("items")
        return [
            _coerce(prefix[i] if i < len(prefix) else rest, item, root, 0)
            for i, item in enumerate(value)
        ]
    return value


def _property_schema(node: Mapping[str, Any], key: str) -> Any:
    properties = node.get("properties")
    if isinstance(properties, dict) and key in properties:
        return properties[key]
    patterns = node.get("patternProperties")
    if isinstance(patterns, dict):
        for pattern, sub in patterns.items():
            try:
                if re.search(pattern, key):
                    return sub
            except re.error:  # check_schema accepted it as ECMA-262; Python may not
                continue
    return node.get("additionalProperties")


_STORED: dict[str, ConfigSchema] = {}
_STORED_MAX = 256


def compile_stored(document: dict[str, Any], schema_hash: str) -> ConfigSchema:
    """Compile a schema read back from the registry, cached by its stored hash.

    Registration calls this per request; the cache makes it a dictionary look-up.

    Returns:
        The compiled schema.

    Raises:
        InvalidInput: as `compile_schema` (a stored schema passed it once, so only on tampering).
    """
    found = _STORED.get(schema_hash)
    if found is None:
        found = compile_schema(document, source="stored schema")
        if len(_STORED) >= _STORED_MAX:
            _STORED.clear()
        _STORED[schema_hash] = found
    return found
