"""Shared parameter types and the keyset pagination `Link` header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request, Response

from registry.api.settings import MAX_PAGE_SIZE

SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"
MAX_INT = 2_147_483_647
"""Version numbers are 32-bit in the database; larger ones are refused as input."""

ModelName = Annotated[str, Path(pattern=SLUG, description="The model's slug name.")]
AliasName = Annotated[str, Path(pattern=SLUG, description="The alias name, e.g. production.")]
VersionNumber = Annotated[int, Path(ge=1, le=MAX_INT)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9]{1,19}$")]
IdCursor = Annotated[
    str | None,
    Query(pattern=r"^[1-9][0-9]{0,9}$", description="The last id of the previous page."),
]
"""A 32-bit id; one above 2147483647 passes the pattern and is refused (422) by the service."""
ModelFilter = Annotated[str | None, Query(pattern=SLUG)]


def link_next(request: Request, response: Response, next_cursor: str | None) -> None:
    """Set ``Link: <url>; rel="next"`` on ``response`` when there is a next page."""
    if next_cursor is not None:
        url = request.url.include_query_params(cursor=next_cursor)
        response.headers["Link"] = f'<{url}>; rel="next"'


__all__ = [
    "MAX_INT",
    "SLUG",
    "AliasName",
    "Cursor",
    "IdCursor",
    "Limit",
    "ModelFilter",
    "ModelName",
    "VersionNumber",
    "link_next",
]
