"""`mmgov aliases …`, `tag`, `untag`, `stage`, `incident …`: what served when, and its upkeep."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer.core import TyperGroup

from registry import service
from registry.cli import app, emit, state, table
from registry.errors import InvalidInput


class _AliasesGroup(TyperGroup):
    """`mmgov aliases MODEL` lists; `history` is a subcommand."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


aliases_app = typer.Typer(cls=_AliasesGroup, help="Aliases of a model: list, history (--at T).")
app.add_typer(aliases_app, name="aliases")


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


@aliases_app.command("list")
def aliases_list(
    ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """List MODEL's aliases: the version each serves, when and by whom it last moved."""
    s = state(ctx)
    found = service.list_aliases(s.existing_db, s.actor, model)
    rows = [(a.alias, a.version, a.updated_at, a.updated_by) for a in found]
    emit(ctx, found, table(["ALIAS", "VERSION", "MOVED", "BY"], rows))


@aliases_app.command("history")
def aliases_history(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    at: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="ISO 8601 moment (UTC unless a zone is given)."),
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="How many, newest first.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="Continue after a page (its next_cursor).")
    ] = None,
) -> None:
    """Every move of ALIAS newest first; with --at, the version it pointed at then."""
    s = state(ctx)
    moment = parse_moment(at) if at is not None else None
    found = service.alias_history(
        s.existing_db, s.actor, model, alias, at=moment, limit=limit, cursor=cursor
    )
    rows = [
        (m.id, m.at, m.action, m.from_version, m.version, m.actor, m.audit_seq, m.reason)
        for m in found.items
    ]
    text = table(["MOVE", "AT", "ACTION", "FROM", "TO", "BY", "AUDIT", "REASON"], rows)
    if moment is not None:
        text = f"{model}@{alias} at {moment.isoformat()}: version {found.version_at}\n{text}"
    elif found.next_cursor is not None:
        text += f"\nmore: --cursor {found.next_cursor}"
    emit(ctx, found, text)


def _tags_line(tags: list[Any]) -> str:
    return " ".join(f"{t.key}={t.value}" for t in tags) or "(no tags)"


@app.command("tag")
def tag(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    tags: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Tags to set.")],
) -> None:
    """Set tags on a version (audited; the version itself stays immutable)."""
    s = state(ctx)
    found = service.set_tags(
        s.db, s.actor, model=model, version=version, tags=service.parse_tags(tags) or {}
    )
    emit(ctx, found, f"{model} v{version}: {_tags_line(found)}")


@app.command("untag")
def untag(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Tag keys to remove.")],
) -> None:
    """Remove tags from a version (audited)."""
    s = state(ctx)
    found = service.remove_tags(s.db, s.actor, model=model, version=version, keys=keys)
    emit(ctx, found, f"{model} v{version}: {_tags_line(found)}")


@app.command("stage")
def stage(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    to: Annotated[str, typer.Argument(metavar="STAGE", help="active, deprecated or archived.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit event).")] = "",
) -> None:
    """Deprecate or archive a version (archived: final, and it can no longer be promoted)."""
    s = state(ctx)
    found = service.set_stage(
        s.db, s.actor, model=model, version=version, stage=to, reason=reason
    )
    emit(ctx, found, f"{model} v{version}: {found.stage}")


incident_app = typer.Typer(
    no_args_is_help=True,
    help="Incidents: list with filters, show, acknowledge, resolve, reopen, link to a move.",
)
app.add_typer(incident_app, name="incident")


def _incident_line(i: Any) -> str:
    state_ = "acknowledged" if i.status == "open" and i.acknowledged_at else i.status
    where = f"{i.model} v{i.version}" if i.version is not None else (i.model or "no model")
    return f"incident {i.id} ({i.alertname}, {where}): {state_}"


@incident_app.command("list")
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
) -> None:
    """List incidents newest first, with filters."""
    s = state(ctx)
    found = service.list_incidents(
        s.existing_db, s.actor, model=model, status=status, module=module, version=version,
        since=parse_moment(since, "--since") if since else None,
        until=parse_moment(until, "--until") if until else None,
    )
    rows = [
        (
            i.id,
            "acknowledged" if i.status == "open" and i.acknowledged_at else i.status,
            i.alertname, i.model, i.version, i.module, i.starts_at, i.ends_at,
            i.acknowledged_by or i.resolved_by,
        )
        for i in found
    ]
    headers = ["ID", "STATUS", "ALERT", "MODEL", "VERSION", "MODULE", "STARTS", "ENDS", "BY"]
    emit(ctx, found, table(headers, rows))


@incident_app.command("show")
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


@incident_app.command("ack")
def incident_ack(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    note: Annotated[str, typer.Option(help="What you are doing about it.")] = "",
) -> None:
    """Acknowledge an open incident."""
    s = state(ctx)
    i = service.acknowledge_incident(s.db, s.actor, incident_id, note=note)
    emit(ctx, i, f"{_incident_line(i)} by {i.acknowledged_by}")


@incident_app.command("resolve")
def incident_resolve(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    note: Annotated[str, typer.Option(help="Why it is resolved (required).")],
) -> None:
    """Resolve an incident by hand, with a note."""
    s = state(ctx)
    i = service.resolve_incident(s.db, s.actor, incident_id, note=note)
    emit(ctx, i, f"{_incident_line(i)} by {i.resolved_by}")


@incident_app.command("reopen")
def incident_reopen(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option(help="Why it is back.")] = "",
) -> None:
    """Reopen a resolved incident."""
    s = state(ctx)
    i = service.reopen_incident(s.db, s.actor, incident_id, reason=reason)
    emit(ctx, i, _incident_line(i))


@incident_app.command("link")
def incident_link(
    ctx: typer.Context,
    incident_id: Annotated[int, typer.Argument(metavar="ID")],
    move: Annotated[int, typer.Option(help="The alias move (MOVE in `aliases history`).")],
) -> None:
    """Link an incident to the promotion or rollback that answered it."""
    s = state(ctx)
    i = service.link_incident(s.db, s.actor, incident_id, move=move)
    emit(ctx, i, f"{_incident_line(i)}, answered by alias move {i.answered_by_move}")
