"""Shared parameter types and the keyset pagination `Link` header."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from pydantic import BeforeValidator

from registry.api.settings import MAX_PAGE_SIZE

SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_INT = 2_147_483_647
"""Version numbers are 32-bit in the database; larger ones are refused as input."""
MAX_BIGINT = 9_223_372_036_854_775_807
"""Audit sequence numbers are 64-bit."""

ModelName = Annotated[str, Path(pattern=SLUG, description="The model's slug name.")]
AliasName = Annotated[str, Path(pattern=SLUG, description="The alias name, e.g. production.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_INT, description="`next_cursor` of the previous page.")
]
SeqCursor = Annotated[
    int | None, Query(ge=1, le=MAX_BIGINT, description="`next_cursor` of the previous page.")
]


_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _rfc3339(value: Any) -> Any:
    # pydantic also reads "0.5" as a Unix time; the schema (and people) mean a date-time.
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("use an RFC 3339 date-time with a timezone, e.g. 2026-11-28T10:00:00Z")
    return value


Moment = Annotated[datetime, BeforeValidator(_rfc3339)]
"""A date-time query parameter: RFC 3339 text only."""


def cursor_text(cursor: int | None) -> str | None:
    """Return the service's form of a validated cursor."""
    return None if cursor is None else str(cursor)


ModelFilter = Annotated[str | None, Query(pattern=SLUG)]
NameCursor = Annotated[
    str | None, Query(pattern=SLUG, description="The last name of the previous page.")
]


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    """Set ``Link: <url>; rel="next"`` on ``response`` when there is a next page."""
    if next_cursor is not None:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'


__all__ = [
    "MAX_BIGINT",
    "MAX_INT",
    "SLUG",
    "AliasName",
    "Cursor",
    "Limit",
    "ModelFilter",
    "ModelName",
    "Moment",
    "NameCursor",
    "SeqCursor",
    "VersionNumber",
    "cursor_text",
    "link_next",
]
