"""`mmgov team …`: create and list teams."""

from __future__ import annotations

from typing import Annotated

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit
from registry.cli._render import emit, emit_page

group = typer.Typer(no_args_is_help=True, help="Teams.")


@group.command("create")
def team_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Team.")]) -> None:
    """Create a team."""
    s = state(ctx)
    emit(ctx, service.create_team(s.db, s.actor, name), f"team {name} created")


@group.command("list")
def team_list(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List teams by name."""
    s = state(ctx)
    page = service.list_teams(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [(t.name, t.created_at, t.created_by) for t in page.items]
    emit_page(ctx, page, ["NAME", "CREATED", "BY"], rows)
