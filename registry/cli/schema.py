"""`mmgov schema …`: a model's config schema (JSON Schema 2020-12), versioned and audited."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import PageCursor, PageLimit
from registry.cli._render import emit, emit_page
from registry.config import read_config_file
from registry.diff import render_schema_diff

group = typer.Typer(
    no_args_is_help=True,
    help="Config schemas of models: set, show, list, diff, remove (JSON Schema 2020-12).",
)


@group.command("set")
def schema_set(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name (created if new).")],
    file: Annotated[Path, typer.Argument(help="The schema: a JSON (or YAML) file.")],
    note: Annotated[str, typer.Option(help="Why the schema changes.")] = "",
    team: Annotated[
        str | None, typer.Option(help="Owning team of a new model [default: 'default'].")
    ] = None,
) -> None:
    """Check FILE as a JSON Schema and make it MODEL's config schema (a new schema version)."""
    s = state(ctx)
    found = service.set_schema(
        s.db,
        s.actor,
        model=model,
        schema=read_config_file(file),
        source=str(file),
        note=note,
        team=team,
    )
    assert found is not None  # only a removal leaves no schema in force
    emit(
        ctx,
        found,
        f"{model}: config schema v{found.version} in force "
        f"(sha256 {(found.schema_hash or '')[:12]})",
    )


@group.command("remove")
def schema_remove(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    note: Annotated[str, typer.Option(help="Why the schema goes.")] = "",
) -> None:
    """Stop checking MODEL's configs (recorded as a schema version without a document)."""
    s = state(ctx)
    service.set_schema(s.existing_db, s.actor, model=model, schema=None, note=note)
    emit(ctx, {"model": model, "schema": None}, f"{model}: no config schema in force")


@group.command("show")
def schema_show(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        int | None, typer.Option(help="Schema version [default: the one in force].")
    ] = None,
) -> None:
    """Print a schema version of MODEL (the JSON document, after one header line)."""
    s = state(ctx)
    found = service.get_schema(s.existing_db, s.actor, model, version)
    status = "in force" if found.current else "not in force"
    header = (
        f"# {model} config schema v{found.version} ({status}), set by {found.created_by} "
        f"at {found.created_at:%Y-%m-%d %H:%M:%S}"
    )
    body = json.dumps(found.document, indent=2, sort_keys=True, ensure_ascii=False)
    emit(ctx, found, f"{header}\n{body}" if found.document is not None else f"{header}\n(removed)")


@group.command("list")
def schema_list(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    limit: PageLimit = 100,
    cursor: PageCursor = None,
) -> None:
    """List the schema versions of MODEL, oldest first."""
    s = state(ctx)
    page = service.list_schemas(s.existing_db, s.actor, model, limit=limit, cursor=cursor)
    rows = [
        (
            f"{i.version}{' *' if i.current else ''}",
            (i.schema_hash or "removed")[:12],
            i.created_at,
            i.created_by,
            i.note,
        )
        for i in page.items
    ]
    emit_page(ctx, page, ["VERSION", "SHA256", "CREATED", "BY", "NOTE"], rows)


@group.command("diff")
def schema_diff(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    a: Annotated[int, typer.Argument(help="From schema version.")],
    b: Annotated[int, typer.Argument(help="To schema version.")],
) -> None:
    """Show what changed between two schema versions of MODEL."""
    s = state(ctx)
    found = service.diff_schemas(s.existing_db, s.actor, model, a, b)
    emit(ctx, found, render_schema_diff(found))
