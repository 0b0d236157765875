"""How a command gets its database and actor: the `CliState` the root callback builds."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field

import typer

from registry import db as dbmod
from registry.schemas import Actor


@dataclass
class CliState:
    """Global options, and the database opened on first use.

    Commands that can start a registry (`register`, `team create`; `serve` opens its own) use
    `db`, which creates and migrates a new SQLite file; every other command uses `existing_db`,
    which never creates a file or directory and says which database it looked for.
    """

    url: str
    actor: Actor
    json: bool
    url_given: bool = False
    """Whether --db was given on the command line (the demo uses its own database otherwise)."""
    _db: dbmod.Database | None = field(default=None, repr=False)

    @property
    def opened(self) -> bool:
        """Whether a command opened the database."""
        return self._db is not None

    def _open(self, *, create: bool) -> dbmod.Database:
        if self._db is None:
            self._db = dbmod.open_database(self.url, create=create)
        return self._db

    @property
    def db(self) -> dbmod.Database:
        """The database for a change, created (embedded SQLite) and checked to be at head."""
        return self._open(create=True)

    @property
    def existing_db(self) -> dbmod.Database:
        """The database, checked to be at head; a missing SQLite file is an error."""
        return self._open(create=False)

    def close(self) -> None:
        """Dispose of the database's connections, if it was opened."""
        if self._db is not None:
            self._db.dispose()


def state(ctx: typer.Context) -> CliState:
    """Return the CLI state of the running command."""
    found = ctx.find_root().obj
    assert isinstance(found, CliState)
    return found


def os_user() -> str:
    """The OS user name (the default actor), or ``unknown``."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
