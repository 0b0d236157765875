"""Models: `models` lists them (a model is created by its first `register`).

A plain function; `registry.cli` registers it as a top-level command.
"""

from __future__ import annotations

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit
from registry.cli._render import emit_page


def models(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List models by name."""
    s = state(ctx)
    page = service.list_models(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [(m.name, m.team, m.latest_version, m.created_at, m.description) for m in page.items]
    emit_page(ctx, page, ["NAME", "TEAM", "LATEST", "CREATED", "DESCRIPTION"], rows)
