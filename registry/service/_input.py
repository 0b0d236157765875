"""Checks of callers' input shared by the services: slugs, keyset cursors and page limits."""

from __future__ import annotations

import re

from registry.errors import InvalidInput
from registry.schemas import MAX_INT4
from registry.text import readable

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CURSOR = re.compile(r"[0-9]{1,19}")  # ASCII digits: "²".isdigit() is True
MAX_INT8 = 9_223_372_036_854_775_807
"""Largest value of the 64-bit columns (audit sequence numbers)."""


def check_slug(value: str, what: str) -> str:
    """Return ``value`` if it is a slug (lowercase letters, digits, ``.``, ``_``, ``-``; ≤ 64).

    Raises:
        InvalidInput: naming ``what`` and the rule.
    """
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def parse_cursor(cursor: str | None, *, maximum: int = MAX_INT4) -> int | None:
    """Return the integer keyset position in ``cursor`` (``maximum``: its column's largest).

    Raises:
        InvalidInput: if the cursor is not a decimal integer in 1..``maximum``.
    """
    if cursor is None:
        return None
    if not _CURSOR.fullmatch(cursor) or not 1 <= int(cursor) <= maximum:
        raise InvalidInput(f"invalid cursor {readable(cursor)[:40]!r}: use a next_cursor")
    return int(cursor)


def parse_name_cursor(cursor: str | None) -> str | None:
    """Return the name keyset position in ``cursor`` (listings ordered by a slug name).

    Raises:
        InvalidInput: if the cursor is not a slug.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, str) or _SLUG.fullmatch(cursor) is None:
        raise InvalidInput(f"invalid cursor {cursor!r}: pass back a next_cursor")
    return cursor


def check_limit(limit: int, maximum: int = 1000) -> int:
    """Return ``limit`` if it lies in 1..maximum.

    Raises:
        InvalidInput: otherwise.
    """
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, got {limit}")
    return limit
