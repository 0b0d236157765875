"""Governance commands: `aliases`, `tag`/`untag`/`stage`, `incident …`, `policy …`, `approve`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # typer vendors click
from typer.core import TyperGroup

from registry import service
from registry.cli import PageCursor, PageLimit, app, emit, more, state, table
from registry.errors import InvalidInput
from registry.schemas import PolicyRules, SoakRule
from registry.service.policies import format_duration


class _AliasesGroup(TyperGroup):
    """`mmgov aliases MODEL` lists; `history` and `free` are subcommands."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


aliases_app = typer.Typer(
    cls=_AliasesGroup, help="Aliases of a model: list, history (--at T), free on|off."
)
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
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> None:
    """List MODEL's aliases by name: the version each serves, when and by whom it last moved."""
    s = state(ctx)
    page = service.list_aliases(s.existing_db, s.actor, model, limit=limit, cursor=cursor)
    rows = [(a.alias, a.version, a.updated_at, a.updated_by) for a in page.items]
    text = table(["ALIAS", "VERSION", "MOVED", "BY"], rows)
    emit(ctx, page, text + more(page.next_cursor))


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


@aliases_app.command("free")
def aliases_free(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    switch: Annotated[
        str, typer.Argument(metavar="on|off", help="on: any alias; off: declared ones only.")
    ],
    note: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Allow (on) or refuse (off) new aliases MODEL does not declare (admins; audited)."""
    s = state(ctx)
    if switch not in ("on", "off"):
        raise InvalidInput(f"{switch!r}: write on or off")
    found = service.set_free_aliases(s.db, s.actor, model=model, free=switch == "on", note=note)
    declared = ", ".join(found.declared) or "none"
    if found.free_aliases:
        text = f"{model}: free aliases on: any alias may be created (declared: {declared})"
    else:
        text = f"{model}: free aliases off: only declared aliases may be created ({declared})"
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
    emit(ctx, page, table(headers, rows) + more(page.next_cursor))


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


policy_app = typer.Typer(
    no_args_is_help=True,
    help="Protected aliases: declare an alias and the rules a promotion to it must pass.",
)
app.add_typer(policy_app, name="policy")


def _rules_text(rules: Any) -> str:
    if rules is None:
        return "(not declared)"
    parts = []
    if rules.min_role:
        parts.append(f"min-role={rules.min_role}")
    if rules.require_reference:
        parts.append("reference")
    if rules.no_open_incident:
        parts.append("no-open-incident")
    if rules.soak:
        parts.append(f"soak={rules.soak.alias}:{format_duration(rules.soak.seconds)}")
    if rules.approvals:
        parts.append(f"approvals={rules.approvals}")
    return " ".join(parts) or "(no rules)"


@policy_app.command("set")
def policy_set(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to declare, e.g. production.")],
    min_role: Annotated[
        str | None, typer.Option(help="Least role that may promote: maintainer or admin.")
    ] = None,
    require_reference: Annotated[
        bool, typer.Option("--require-reference", help="The candidate has a reference profile.")
    ] = False,
    no_open_incident: Annotated[
        bool, typer.Option("--no-open-incident", help="The candidate has no open incident.")
    ] = False,
    soak: Annotated[
        str | None,
        typer.Option(metavar="ALIAS:DURATION", help="Served ALIAS that long without incident."),
    ] = None,
    approvals: Annotated[
        int, typer.Option(metavar="N", help="Approvals by maintainers other than its registrant.")
    ] = 0,
    note: Annotated[str, typer.Option(help="Why the policy changes.")] = "",
) -> None:
    """Declare ALIAS of MODEL with the rules a promotion to it must pass (admins)."""
    s = state(ctx)
    if min_role is not None and min_role not in ("reader", "maintainer", "admin"):
        raise InvalidInput(f"--min-role {min_role!r}: use reader, maintainer or admin")
    soak_rule = None
    if soak is not None:
        soak_alias, sep, duration = soak.partition(":")
        if not sep:
            raise InvalidInput(f"--soak {soak!r}: write ALIAS:DURATION, e.g. staging:24h")
        soak_rule = SoakRule(alias=soak_alias, seconds=service.parse_duration(duration))
    rules = PolicyRules(
        min_role=min_role,
        require_reference=require_reference,
        no_open_incident=no_open_incident,
        soak=soak_rule,
        approvals=approvals,
    )
    found = service.set_policy(s.db, s.actor, model=model, alias=alias, rules=rules, note=note)
    emit(ctx, found, f"{model}@{alias}: policy v{found.version}: {_rules_text(found.rules)}")


@policy_app.command("list")
def policy_list(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> None:
    """List MODEL's declared aliases and their rules, by alias."""
    s = state(ctx)
    page = service.list_policies(s.existing_db, s.actor, model, limit=limit, cursor=cursor)
    rows = [(p.alias, p.version, _rules_text(p.rules), p.created_by, p.created_at)
            for p in page.items]
    text = table(["ALIAS", "POLICY", "RULES", "BY", "AT"], rows)
    emit(ctx, page, text + more(page.next_cursor))


@policy_app.command("remove")
def policy_remove(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to stop declaring.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Stop declaring ALIAS (its rules no longer apply)."""
    s = state(ctx)
    found = service.remove_policy(s.db, s.actor, model=model, alias=alias, note=note)
    emit(ctx, found, f"{model}@{alias}: policy v{found.version}: not declared")


@app.command("approve")
def approve(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    alias: Annotated[str, typer.Option("--alias", help="The alias it may go to.")],
    note: Annotated[str, typer.Option(help="Why.")] = "",
    withdraw: Annotated[bool, typer.Option("--withdraw", help="Withdraw your approval.")] = False,
) -> None:
    """Approve VERSION of MODEL for --alias (or --withdraw your approval); audited."""
    s = state(ctx)
    if withdraw:
        found = service.withdraw_approval(s.db, s.actor, model=model, version=version,
                                          alias=alias)
        emit(ctx, found, f"{model} v{version}: approval for {alias} by {found.approver} withdrawn")
        return
    found = service.approve(s.db, s.actor, model=model, version=version, alias=alias, note=note)
    emit(ctx, found, f"{model} v{version}: approved for {alias} by {found.approver}")


@app.command("approvals")
def approvals_list(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> None:
    """List the approvals of VERSION (withdrawn ones too), oldest first."""
    s = state(ctx)
    page = service.list_approvals(s.existing_db, s.actor, model=model, version=version,
                                  limit=limit, cursor=cursor)
    rows = [(a.alias, a.approver, a.created_at, a.withdrawn_at, a.note) for a in page.items]
    text = table(["ALIAS", "BY", "AT", "WITHDRAWN", "NOTE"], rows)
    emit(ctx, page, text + more(page.next_cursor))
