"""Governance: the `policy` group (protected aliases and their rules), and `approve`,
`approvals` (top-level commands `registry.cli` registers)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit
from registry.cli._render import emit, emit_page
from registry.errors import InvalidInput
from registry.schemas import PolicyRules, SoakRule
from registry.service.policies import format_duration

group = typer.Typer(
    no_args_is_help=True,
    help="Protected aliases: declare an alias and the rules a promotion to it must pass.",
)


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


@group.command("set")
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


@group.command("list")
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
    emit_page(ctx, page, ["ALIAS", "POLICY", "RULES", "BY", "AT"], rows)


@group.command("remove")
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
    emit_page(ctx, page, ["ALIAS", "BY", "AT", "WITHDRAWN", "NOTE"], rows)
