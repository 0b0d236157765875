"""Options and argument parsers shared by several resources' commands."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from registry.errors import InvalidInput

PageLimit = Annotated[int, typer.Option(metavar="N", help="How many at most (1-1000).")]
"""``--limit`` of a listing in a fixed order."""
NewestLimit = Annotated[int, typer.Option(metavar="N", help="How many, newest first.")]
"""``--limit`` of a listing newest first."""
PageCursor = Annotated[
    str | None, typer.Option(metavar="CURSOR", help="Continue after a page (its next_cursor).")
]
"""``--cursor`` of every listing."""


def parse_moment(raw: str, option: str = "--at") -> datetime:
    """Return the ISO 8601 moment ``raw`` (UTC when it names no zone; ``Z`` allowed).

    Raises:
        InvalidInput: not an ISO 8601 date or date-time.
    """
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"{option} {raw!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
