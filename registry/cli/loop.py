"""Closed-loop commands: `status MODEL` (what serves; a top-level command `registry.cli`
registers) and the `auto-rollback` group: set, list, remove, log."""

from __future__ import annotations

from typing import Annotated

import typer

from registry import service
from registry.cli._context import state
from registry.cli._render import emit, table
from registry.loop_schemas import RollbackPolicyIn
from registry.service.deployments import STALE_AFTER
from registry.service.policies import format_duration

group = typer.Typer(help="Automatic rollback policies of aliases, and what they decided.")


def _seconds(raw: str) -> int:
    """``0`` or a duration such as ``90s``, ``10m``, ``1h30m``."""
    return 0 if raw.strip() == "0" else service.parse_duration(raw)


def status(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    stale_after: Annotated[
        float, typer.Option(metavar="SECONDS", help="Silent this long: stale.")
    ] = STALE_AFTER,
) -> None:
    """What MODEL's fleet serves: each alias's version, every instance, stale and mismatching."""
    s = state(ctx)
    found = service.model_status(s.existing_db, s.actor, model, stale_after=stale_after)
    lines = [
        table(
            ["ALIAS", "VERSION", "INSTANCES", "ON ANOTHER VERSION"],
            [(a.alias, a.version, a.instances, ", ".join(a.serving_other) or "-")
             for a in found.aliases],
        ),
        "",
        table(
            ["INSTANCE", "ALIAS", "VERSION", "LOADED", "LAST HEARTBEAT", "STATE"],
            [
                (
                    d.instance,
                    d.alias or "-",
                    d.version,
                    "matches" if d.matches else "DIFFERS: " + ", ".join(d.mismatched),
                    d.last_heartbeat,
                    "stale" if d.stale else "live",
                )
                for d in found.deployments
            ],
        ),
    ]
    if found.mismatched:
        lines.append(f"\nmismatching instances: {', '.join(found.mismatched)}")
    if found.stale:
        lines.append(f"stale instances (> {stale_after:g} s): {', '.join(found.stale)}")
    emit(ctx, found, "\n".join(lines))


@group.command("set")
def auto_set(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="An existing alias, e.g. production.")],
    alert: Annotated[
        list[str] | None, typer.Option("--alert", help="Alert name that triggers (repeatable).")
    ] = None,
    severity: Annotated[
        list[str] | None, typer.Option("--severity", help="Severity label value (repeatable).")
    ] = None,
    firing: Annotated[
        str, typer.Option("--for", metavar="DURATION", help="Firing at least this long.")
    ] = "0",
    cooldown: Annotated[
        str, typer.Option(metavar="DURATION", help="At most one automatic move per this.")
    ] = "10m",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Record, never move.")] = False,
) -> None:
    """Roll ALIAS back automatically when a matching incident opens on the version it serves."""
    s = state(ctx)
    rules = RollbackPolicyIn(
        alertnames=alert or [],
        severities=severity or [],
        min_firing_seconds=_seconds(firing),
        cooldown_seconds=_seconds(cooldown),
        dry_run=dry_run,
    )
    info = service.set_rollback_policy(s.existing_db, s.actor, model=model, alias=alias,
                                       rules=rules)
    mode = " (dry run)" if info.dry_run else ""
    emit(ctx, info, f"automatic rollback of {model}/{alias} set{mode}")


@group.command("list")
def auto_list(
    ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model name.")]
) -> None:
    """List MODEL's automatic rollback policies."""
    s = state(ctx)
    found = service.list_rollback_policies(s.existing_db, s.actor, model)
    rows = [
        (p.alias, ", ".join(p.alertnames) or "any", ", ".join(p.severities) or "any",
         format_duration(p.min_firing_seconds) or "0", format_duration(p.cooldown_seconds) or "0",
         "yes" if p.dry_run else "no")
        for p in found
    ]
    emit(ctx, found, table(["ALIAS", "ALERTS", "SEVERITY", "FOR", "COOLDOWN", "DRY RUN"], rows))


@group.command("remove")
def auto_remove(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias.")],
) -> None:
    """Remove ALIAS's automatic rollback policy."""
    s = state(ctx)
    service.remove_rollback_policy(s.existing_db, s.actor, model=model, alias=alias)
    emit(ctx, {"model": model, "alias": alias, "removed": True},
         f"automatic rollback of {model}/{alias} removed")


@group.command("log")
def auto_log(ctx: typer.Context, model: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """The decisions automatic rollback took on MODEL's incidents, newest first."""
    s = state(ctx)
    found = service.list_auto_rollbacks(s.existing_db, s.actor, model)
    rows = [
        (d.at, d.alias, d.incident, d.outcome, d.from_version, d.to_version or "-",
         d.move or "-", d.detail)
        for d in found
    ]
    headers = ["AT", "ALIAS", "INCIDENT", "OUTCOME", "FROM", "TO", "MOVE", "DETAIL"]
    emit(ctx, found, table(headers, rows))
