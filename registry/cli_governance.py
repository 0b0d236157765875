"""`mmgov aliases …`, `tag`, `untag`, `stage`: what served when, and tags and stages of versions."""

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


def parse_moment(raw: str) -> datetime:
    """Return the ISO 8601 moment ``raw`` (UTC when it names no zone; ``Z`` allowed).

    Raises:
        InvalidInput: not an ISO 8601 date or date-time.
    """
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--at {raw!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)"
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
