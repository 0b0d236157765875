"""`mmgov token …`: create, revoke and list API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit
from registry.cli._render import emit, emit_page

group = typer.Typer(no_args_is_help=True, help="API tokens.")


@group.command("create")
def token_create(
    ctx: typer.Context,
    team: Annotated[str, typer.Option("--team", help="Team the token acts for.")],
    role: Annotated[str, typer.Option("--role", help="reader, maintainer or admin.")],
    name: Annotated[str, typer.Option(help="Label of the token.")] = "cli",
    scope: Annotated[
        str | None,
        typer.Option(help="deployments: a reader token that may also post heartbeats."),
    ] = None,
) -> None:
    """Create an API token and print its secret (shown only this once)."""
    s = state(ctx)
    info, secret = service.create_token(
        s.existing_db, s.actor, team=team, role=role, name=name, scope=scope
    )
    data = {**info.model_dump(mode="json"), "secret": secret}
    shown = f"{role}, scope {scope}" if scope else role
    emit(ctx, data, f"token {info.id} ({team}, {shown}); secret, shown only once:\n{secret}")


@group.command("revoke")
def token_revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument()]) -> None:
    """Revoke an API token."""
    s = state(ctx)
    revoked = service.revoke_token(s.existing_db, s.actor, token_id)
    emit(ctx, revoked, f"token {token_id} revoked")


@group.command("list")
def token_list(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List API tokens oldest first (never their secrets)."""
    s = state(ctx)
    page = service.list_tokens(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [
        (t.id, t.team, t.name, t.role, t.prefix, t.created_at, t.revoked_at) for t in page.items
    ]
    emit_page(ctx, page, ["ID", "TEAM", "NAME", "ROLE", "PREFIX", "CREATED", "REVOKED"], rows)
