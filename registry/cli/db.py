"""`mmgov db …`: the database schema (upgrade, current revision)."""

from __future__ import annotations

import typer

from registry import db as dbmod
from registry.cli._context import state
from registry.cli._render import emit
from registry.errors import DatabaseUnavailable

group = typer.Typer(no_args_is_help=True, help="Database schema: upgrade, current revision.")


@group.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database to the newest schema."""
    s = state(ctx)
    dbmod.upgrade(s.url)
    emit(ctx, {"revision": dbmod.head_revision()}, f"database at {dbmod.head_revision()}")


@group.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the code's head revision."""
    s = state(ctx)
    path = dbmod.sqlite_path(s.url)
    if path is not None and not path.is_file():
        raise DatabaseUnavailable(dbmod.missing_database_message(s.url))
    database = dbmod.Database(s.url, create=False)
    try:
        current = database.current_revision()
    finally:
        database.dispose()
    head = dbmod.head_revision()
    data = {"current": current, "head": head, "at_head": current == head}
    emit(ctx, data, f"current {current or 'none'}, head {head}")
