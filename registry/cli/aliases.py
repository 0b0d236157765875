"""Aliases: `promote`, `rollback` (top-level commands `registry.cli` registers), and the
`aliases` group: list, history (--at T), free on|off."""

from __future__ import annotations

from typing import Annotated

import typer

from registry import service
from registry.cli._app import DefaultListGroup
from registry.cli._context import state
from registry.cli._options import NewestLimit, PageCursor, PageLimit, parse_moment
from registry.cli._render import emit, emit_page, more, table
from registry.errors import InvalidInput
from registry.schemas import MAX_INT4, UNSET, Unset

group = typer.Typer(
    cls=DefaultListGroup, help="Aliases of a model: list, history (--at T), free on|off."
)
"""`mmgov aliases MODEL` lists; `history` and `free` are subcommands."""


def _expected(raw: str | None) -> int | Unset | None:
    if raw is None:
        return UNSET
    if raw.lower() == "none":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_INT4:
        raise InvalidInput(f"--expect takes a version number or 'none', got {raw[:40]!r}")
    return int(raw)


def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias, e.g. production.")],
    expect: Annotated[
        str | None, typer.Option(help="Version you believe is live now ('none': no alias yet).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias's history).")] = "",
) -> None:
    """Point ALIAS of model NAME at VERSION (refused, rule by rule, if its policy is unmet)."""
    s = state(ctx)
    a = service.promote(
        s.existing_db,
        s.actor,
        model=name,
        version=version,
        alias=alias,
        expected_version=_expected(expect),
        reason=reason,
    )
    was = f" (was {a.previous_version})" if a.previous_version is not None else ""
    emit(ctx, a, f"{name}@{alias} -> version {a.version}{was}")


def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move back.")],
    to: Annotated[int | None, typer.Option(help="Version to go back to.")] = None,
    expect: Annotated[str | None, typer.Option(help="Version you believe is live now.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias's history).")] = "",
) -> None:
    """Move ALIAS back to where it pointed before (or to --to)."""
    s = state(ctx)
    a = service.rollback(
        s.existing_db,
        s.actor,
        model=name,
        alias=alias,
        to=to,
        expected_version=_expected(expect),
        reason=reason,
    )
    emit(ctx, a, f"{name}@{alias} rolled back to version {a.version} (was {a.previous_version})")


@group.command("list")
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
    emit_page(ctx, page, ["ALIAS", "VERSION", "MOVED", "BY"], rows)


@group.command("history")
def aliases_history(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias, e.g. production.")],
    at: Annotated[
        str | None,
        typer.Option(metavar="TIME", help="ISO 8601 moment (UTC unless a zone is given)."),
    ] = None,
    limit: NewestLimit = 50,
    cursor: PageCursor = None,
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
    else:
        text += more(found.next_cursor)
    emit(ctx, found, text)


@group.command("free")
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
