"""Incidents: `incidents` (a top-level command `registry.cli` registers) and the `incident`
group: list with filters, show, acknowledge, resolve, reopen, link to an alias move."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit, parse_moment
from registry.cli._render import emit, emit_page

group = typer.Typer(
    no_args_is_help=True,
    help="Incidents: list with filters, show, acknowledge, resolve, reopen, link to a move.",
)


def incidents(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's incidents.")] = None,
    status: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> None:
    """List incidents recorded from Alertmanager, newest first."""
    s = state(ctx)
    page = service.list_incidents(
        s.existing_db, s.actor, model=model, status=status, limit=limit, cursor=cursor
    )
    rows = [
        (i.id, i.status, i.alertname, i.model, i.version, i.module, i.starts_at, i.ends_at)
        for i in page.items
    ]
    headers = ["ID", "STATUS", "ALERT", "MODEL", "VERSION", "MODULE", "STARTS", "ENDS"]
    emit_page(ctx, page, headers, rows)


def _incident_line(i: Any) -> str:
    state_ = "acknowledged" if i.status == "open" and i.acknowledged_at else i.status
    where = f"{i.model} v{i.version}" if i.version is not None else (i.model or "no model")
    return f"incident {i.id} ({i.alertname}, {where}): {state_}"


@group.command("list")
def incident_list(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's incidents.")] = None,
    status: Annotated[
        str | None, typer.Option(help="open, acknowledged or resolved.")
    ] = None,
    module: Annotated[str | None, typer.Option(help="Only this module's.")] = None,
    version: Annotated[int | None, typer.Option(help="Only this version's (with --model).")] = None,
    since: Annotated[
        str | None, typer.Option(metavar="TIME", help="Started at or after (ISO 8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="TIME", help="Started at or before (ISO 8601).")
    ] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> None:
    """List incidents newest first, with filters."""
    s = state(ctx)
    page = service.list_incidents(
        s.existing_db, s.actor, model=model, status=status, module=module, version=version,
        since=parse_moment(since, "--since") if since else None,
        until=parse_moment(until, "--until") if until else None,
        limit=limit, cursor=cursor,
    )
    rows = [
        (
            i.id,
            "acknowledged" if i.status == "open" and i.acknowledged_at else i.status,
            i.alertname, i.model, i.version, i.module, i.starts_at, i.ends_at,
            i.acknowledged_by or i.resolved_by,
        )
        for i in page.items
    ]
    headers = ["ID", "STATUS", "ALERT", "MODEL", "VERSION", "MODULE", "STARTS", "ENDS", "BY"]
    emit_page(ctx, page, headers, rows)


@group.command("show")
def incident_show(
    ctx: typer.Context, incident_id: Annotated[int, typer.Argument(metavar="ID")]
) -> None:
    """Show one incident."""
    s = state(ctx)
    i = service.get_incident(s.existing_db, s.actor, incident_id)
    lines = [
        _incident_line(i),
        f"module:       {i.module or '-'}",
        f"started:      {i.starts_at.isoformat()}",
        f"ended:        {i.ends_at.isoformat() if i.ends_at else '-'}",
        f"acknowledged: {i.acknowledged_by or '-'}",
        f"resolved by:  {i.resolved_by or '-'}  {i.resolution_note or ''}".rstrip(),
        f"answered by:  {f'alias move {i.answered_by_move}' if i.answered_by_move else '-'}",
    ]
    emit(ctx, i, "\n".join(lines))


@group.command("ack")
def incident_ack(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    note: Annotated[str, typer.Option(help="What you are doing about it.")] = "",
) -> None:
    """Acknowledge an open incident."""
    s = state(ctx)
    i = service.acknowledge_incident(s.db, s.actor, incident_id, note=note)
    emit(ctx, i, f"{_incident_line(i)} by {i.acknowledged_by}")


@group.command("resolve")
def incident_resolve(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    note: Annotated[str, typer.Option(help="Why it is resolved (required).")],
) -> None:
    """Resolve an incident by hand, with a note."""
    s = state(ctx)
    i = service.resolve_incident(s.db, s.actor, incident_id, note=note)
    emit(ctx, i, f"{_incident_line(i)} by {i.resolved_by}")


@group.command("reopen")
def incident_reopen(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why it is back.")] = "",
) -> None:
    """Reopen a resolved incident."""
    s = state(ctx)
    i = service.reopen_incident(s.db, s.actor, incident_id, reason=reason)
    emit(ctx, i, _incident_line(i))


@group.command("link")
def incident_link(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    move: Annotated[int, typer.Option(help="The alias move (MOVE in `aliases history`).")],
) -> None:
    """Link an incident to the promotion or rollback that answered it."""
    s = state(ctx)
    i = service.link_incident(s.db, s.actor, incident_id, move=move)
    emit(ctx, i, f"{_incident_line(i)}, answered by alias move {i.answered_by_move}")
