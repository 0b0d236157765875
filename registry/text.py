"""Text every backend, JSON body and header can carry: checks on the way in, repair on the way out.

A Python ``str`` may hold lone surrogates (``"\\ud800"`` from a JSON or YAML escape) and NUL;
neither is valid in UTF-8, in PostgreSQL text or in JSONB. Input holding them is refused at the
boundary; rows written before that check are read back with U+FFFD in their place.
"""

from __future__ import annotations

import re
from typing import Any

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Return why ``value`` cannot be stored (a NUL, a lone surrogate), or None if it can."""
    if "\x00" in value:
        return "NUL characters are not allowed"
    if _LONE_SURROGATE.search(value):
        return "lone surrogates are not valid Unicode"
    return None


def data_problem(value: Any, where: str, *, depth: int = 0) -> str | None:
    """Return ``"path: why"`` for the first key or string in JSON data that cannot be stored.

    Walks dicts and lists (at most 256 levels deep; deeper data is itself refused).
    """
    if depth > 256:
        return f"{where}: nested too deeply"
    if isinstance(value, str):
        why = text_problem(value)
        return f"{where}: {why}" if why else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (why := text_problem(key)):
                return f"{where}: a key: {why}"
            found = data_problem(item, f"{where}.{readable(str(key))}", depth=depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = data_problem(item, f"{where}[{i}]", depth=depth + 1)
            if found:
                return found
    return None


def readable(value: str) -> str:
    """Return ``value`` with lone surrogates and NUL replaced by U+FFFD (safe to encode)."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return _LONE_SURROGATE.sub("\ufffd", value)


def readable_data(value: Any) -> Any:
    """Return JSON data with every key and string made ``readable`` (the same object if clean)."""
    if isinstance(value, str):
        return readable(value)
    if isinstance(value, dict):
        return {readable(k) if isinstance(k, str) else k: readable_data(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [readable_data(v) for v in value]
    return value


__all__ = ["data_problem", "readable", "readable_data", "text_problem"]
