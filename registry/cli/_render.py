"""The one output path of every command (table, or --json; a page's `more:` footer) and the one
error path (one line on stderr, JSON under --json, and the exit code)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import typer
from pydantic import BaseModel

from registry import db as dbmod
from registry.cli._context import CliState, state
from registry.errors import InvalidInput, NotFound, RegistryError
from registry.schemas import Page
from registry.text import readable


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    """One table cell: ``-`` for None, a datetime to the second, else ``str``."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows as aligned text columns under ``headers``."""
    cells = [[cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(ctx: typer.Context, data: Any, human: str) -> None:
    """Print ``data`` as JSON under --json, else the human-readable text."""
    if state(ctx).json:
        typer.echo(json.dumps(_plain(data), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        typer.echo(human)


def more(next_cursor: str | None) -> str:
    """The line under a table that says how to ask for the next page (none on the last)."""
    return f"\nmore: --cursor {next_cursor}" if next_cursor is not None else ""


def emit_page(
    ctx: typer.Context, page: Page[Any], headers: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """Print a page: ``{items, next_cursor}`` under --json, else a table and its `more:` line."""
    emit(ctx, page, table(headers, rows) + more(page.next_cursor))


def print_error(json_mode: bool, detail: str, *, kind: str, exit_code: int, **extra: Any) -> None:
    """Print one error line on stderr: ``error: …``, or a JSON object under --json."""
    if json_mode:
        body = {"error": kind, "detail": detail, "exit_code": exit_code, **extra}
        typer.echo(json.dumps(body, sort_keys=True, ensure_ascii=False), err=True)
    else:
        typer.echo(f"error: {detail}", err=True)


def fail(ctx: typer.Context, detail: str, *, kind: str, exit_code: int = 1) -> typer.Exit:
    """Print one error line (JSON under --json) and return the `typer.Exit` to raise."""
    obj = ctx.find_root().obj
    print_error(isinstance(obj, CliState) and obj.json, detail, kind=kind, exit_code=exit_code)
    return typer.Exit(exit_code)


def _error_kind(exc: Exception) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type(exc).__name__).lstrip("_")


def error_exit(obj: CliState | None, exc: Exception) -> typer.Exit:
    """Print the error line of an exception a command raised; return the `typer.Exit` to raise.

    A RegistryError exits 2 for invalid input, else 1 (a NotFound names the database looked
    at); anything else is a bug or an error nobody classified: still one line, exit 1.
    """
    json_mode = obj is not None and obj.json
    if not isinstance(exc, RegistryError):
        first = readable(str(exc)).strip().splitlines()
        detail = f"unexpected {type(exc).__name__}: {first[0][:300] if first else ''}"
        print_error(json_mode, detail, kind="unexpected", exit_code=1)
        return typer.Exit(1)
    detail = exc.detail
    extra: dict[str, str] = {}
    if obj is not None and obj.opened and isinstance(exc, NotFound):
        # "model not found" alone hides that the wrong database was looked at.
        extra["database"] = dbmod.describe_url(obj.url)
        if not json_mode:
            detail = f"{detail} (database {extra['database']})"
    code = 2 if isinstance(exc, InvalidInput) else 1
    print_error(json_mode, detail, kind=_error_kind(exc), exit_code=code, **extra)
    return typer.Exit(code)
