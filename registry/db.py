"""Database engine, sessions, retries and schema revision checks (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import Pool, QueuePool
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from registry.errors import DatabaseUnavailable, InvalidInput, SchemaNotAtHead

DEFAULT_URL = "sqlite:///./mmgov.db"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_POOL_SIZE = 8
"""SQLite connections kept open per engine; more are opened (and closed again) under bursts."""
SQLITE_SYNCHRONOUS_ENV = "MMGOV_SQLITE_SYNCHRONOUS"
"""``NORMAL`` (default) or ``FULL``: SQLite's ``synchronous`` setting for every connection."""
WRITE_RETRIES = 8
"""How often a write transaction is retried after a lock, serialisation or unique conflict."""

# PostgreSQL SQLSTATEs that mean "try again": serialization_failure, deadlock_detected.
_RETRYABLE_PG_CODES = frozenset({"40001", "40P01"})

T = TypeVar("T")
S = TypeVar("S")


def default_url() -> str:
    """Return ``MMGOV_DATABASE_URL`` when set, else the embedded SQLite file ``./mmgov.db``."""
    return os.environ.get("MMGOV_DATABASE_URL") or DEFAULT_URL


def safe_url(url: str) -> str:
    """Return ``url`` with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is reported by the caller
        return "<unparsable URL>"


def normalize_url(url: str) -> str:
    """Return ``url`` with ``postgres://`` and ``postgresql://`` spelled as the psycopg driver's.

    Both spellings are common (Heroku, libpq); SQLAlchemy would refuse the first and pick the
    uninstalled psycopg2 for the second.

    Raises:
        InvalidInput: if the URL cannot be parsed.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise InvalidInput(f"invalid database URL {url!r}: {exc}") from exc
    dialect, _, driver = parsed.drivername.partition("+")
    if dialect in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=f"postgresql+{driver or 'psycopg'}")
    return parsed.render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path | None:
    """Return the absolute file path of a SQLite URL, or None for any other database."""
    try:
        parsed = make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database).expanduser().absolute()


def describe_url(url: str) -> str:
    """Return ``url`` with the password masked, plus the absolute file of a SQLite URL."""
    path = sqlite_path(url)
    shown = safe_url(url)
    return f"{shown} ({path})" if path is not None and str(path) not in shown else shown


@contextmanager
def reachable(url: str) -> Iterator[None]:
    """Turn a failure to connect to ``url`` into one `DatabaseUnavailable` line.

    Raises:
        DatabaseUnavailable: the driver could not connect (server down, no such database, …).
    """
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        lines = str(exc.orig).splitlines() if exc.orig is not None else []
        reason = " ".join(" ".join(line.split()) for line in lines) or type(exc).__name__
        raise DatabaseUnavailable(f"cannot use database {describe_url(url)}: {reason}") from None


_POOLED_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_INHERITED_POOLS: list[Pool] = []
"""Pools a forked child inherited: kept referenced, so their connections are never closed there."""


def _drop_inherited_pools() -> None:
    # SQLAlchemy's recipe for pools across os.fork(): the child starts with empty pools
    # (dispose(close=False)) and never touches the parent's connections, not even to close them:
    # closing an inherited SQLite connection can checkpoint or unlink the parent's WAL, and
    # closing a PostgreSQL one would end the parent's session. Spawned processes inherit nothing.
    for engine in list(_POOLED_ENGINES):
        _INHERITED_POOLS.append(engine.pool)
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):  # POSIX only; nothing is inherited without fork
    os.register_at_fork(after_in_child=_drop_inherited_pools)


def sqlite_synchronous() -> str:
    """Return SQLite's ``synchronous`` level from ``MMGOV_SQLITE_SYNCHRONOUS`` (default NORMAL).

    In WAL mode ``NORMAL`` syncs the log at checkpoints, not at each commit: a committed
    transaction survives a crash of the process, and a power cut can lose the last ones but
    never corrupts the file (SQLite's recommended setting for WAL). ``FULL`` syncs every commit,
    so a power cut loses nothing committed; each commit then waits for the disk.

    Raises:
        InvalidInput: any other value.
    """
    value = os.environ.get(SQLITE_SYNCHRONOUS_ENV, "").strip().upper() or "NORMAL"
    if value not in ("NORMAL", "FULL"):
        raise InvalidInput(f"{SQLITE_SYNCHRONOUS_ENV} must be NORMAL or FULL, got {value!r}")
    return value


def _sqlite_connect_listener(synchronous: str) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy's pysqlite recipe: stop the driver's BEGIN handling, emit ours on `begin`.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.close()

    return on_connect


def _on_sqlite_begin(conn: Connection) -> None:
    # Writers take the database lock up front, so two writers never deadlock on an upgrade
    # from a shared to a reserved lock; readers stay deferred and run beside them under WAL.
    # Sent on the driver connection: a statement through SQLAlchemy costs ~10 µs more than the
    # BEGIN itself, on every transaction.
    begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get("mmgov_write") else "BEGIN"
    conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]


def create_db_engine(url: str, *, create: bool = True) -> Engine:
    """Create an engine for ``url`` with the registry's per-dialect settings.

    ``postgres://`` and ``postgresql://`` mean PostgreSQL through psycopg (`normalize_url`).
    With ``create`` a SQLite file's missing directory is made; without, nothing on disk changes.

    Returns:
        The engine.

    Raises:
        InvalidInput: if the URL cannot be parsed or names an unsupported database,
            ``MMGOV_SQLITE_SYNCHRONOUS`` is invalid, or a SQLite file's directory cannot be made.
    """
    parsed = make_url(normalize_url(url))
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise InvalidInput("SQLite needs a file path: an in-memory database is not shared")
        synchronous = sqlite_synchronous()
        if create:
            folder = Path(parsed.database).expanduser().parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InvalidInput(f"cannot create {folder} for {url}: {exc.strerror}") from exc
        # Pooled: opening a connection and running its pragmas costs ~0.5 ms, and closing the
        # last one checkpoints and removes the WAL, which cost more than the transaction.
        # Unbounded overflow: like the NullPool before it, a burst of threads never waits.
        # LIFO: a sequential caller keeps reusing one connection, whose page cache is warm
        # (FIFO would rotate through connections whose caches other writers made stale).
        engine = create_engine(
            parsed,
            poolclass=QueuePool,
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=-1,
            pool_use_lifo=True,
            connect_args={
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                "check_same_thread": False,  # the pool hands a connection to one thread at a time
            },
        )
        event.listen(engine, "connect", _sqlite_connect_listener(synchronous))
        event.listen(engine, "begin", _on_sqlite_begin)
    elif backend == "postgresql":
        engine = create_engine(parsed, pool_pre_ping=True, pool_size=5, max_overflow=10)
    else:
        raise InvalidInput(
            f"unsupported database {backend!r}: use sqlite:/// or postgresql:// (psycopg)"
        )
    _POOLED_ENGINES.add(engine)
    return engine


def _is_retryable(exc: BaseException) -> bool:
    """Return whether ``exc`` is a database error that a fresh try of the transaction resolves."""
    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if isinstance(exc, IntegrityError):
        # Unique races (two first promotions of one alias, …) resolve on a retry; other
        # integrity errors are bugs and would fail again.
        return code == "23505" or "UNIQUE constraint failed" in str(exc.orig)
    if code in _RETRYABLE_PG_CODES:
        return True
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()


_BACKOFF = wait_random_exponential(multiplier=0.01, max=0.32)
"""Full jitter: retry n waits uniform(0, min(10 ms · 2^(n-1), 320 ms)), so retrying writers do not
collide again in lockstep."""


def _retrying(
    begin: Callable[[], AbstractContextManager[S]], work: Callable[[S], T], retries: int
) -> T:
    def once() -> T:
        with begin() as handle:
            return work(handle)

    failed: list[BaseException] = []
    try:
        return once()  # the common case, without tenacity's ~20 µs of bookkeeping per call
    except DBAPIError as exc:
        if retries == 0 or not _is_retryable(exc):
            raise
        failed.append(exc)

    def attempt() -> T:
        if failed:
            raise failed.pop()  # tenacity's first attempt is the one that just failed
        return once()

    return Retrying(
        stop=stop_after_attempt(retries + 1),
        wait=_BACKOFF,
        retry=retry_if_exception(_is_retryable),
        reraise=True,
    )(attempt)


class Database:
    """An engine plus session factories: ``read()`` for queries, ``write()`` for changes."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        self.url = url
        self.engine = create_db_engine(url, create=create)
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(mmgov_write=True)
        # PostgreSQL reads through `connect` skip BEGIN and ROLLBACK: two round trips of four.
        # (Not on SQLite: resetting the isolation level would undo the pysqlite BEGIN recipe.)
        self._read_engine = (
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
            if self.engine.dialect.name == "postgresql"
            else self.engine
        )
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """The dialect name: ``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Yield a session in a read transaction that is rolled back at the end."""
        with self._reads() as session, session.begin():
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """Yield a Core connection for reads (hot paths that run prebuilt statements).

        No ORM session to set up. On SQLite the reads share one transaction, rolled back at the
        end; on PostgreSQL each statement reads its own snapshot (autocommit), so use it for one
        statement, or for rows that never change once written (versions).
        """
        with self._read_engine.connect() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session in a write transaction: committed on success, rolled back on error."""
        with self._writes() as session, session.begin():
            yield session

    def write(self, work: Callable[[Session], T], *, retries: int = WRITE_RETRIES) -> T:
        """Run ``work`` in one write transaction, retrying on lock/serialisation/unique errors.

        Each try starts from a rolled-back transaction, so ``work`` must do all its reads inside.

        Returns:
            What ``work`` returned.

        Raises:
            Whatever ``work`` raises; a database error that is still retryable after the last try.
        """
        return _retrying(self.transaction, work, retries)

    def current_revision(self) -> str | None:
        """Return the Alembic revision the database is at, or None for an unversioned one.

        Raises:
            DatabaseUnavailable: the database cannot be reached.
        """
        with reachable(self.url), self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def alembic_config() -> Config:
    """Return an Alembic config pointing at the ``migrations`` package, independent of the cwd."""
    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    return cfg


def head_revision() -> str:
    """Return the newest revision of the migrations."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships a revision
        raise RuntimeError("migrations have no head revision")
    return head


def _migrate(url: str, run: Callable[[Config], None]) -> None:
    engine = create_db_engine(url)
    try:
        # One write transaction: on SQLite BEGIN IMMEDIATE makes concurrent upgrades wait and
        # then find the schema at head, instead of both creating the tables.
        with reachable(url), engine.execution_options(mmgov_write=True).begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            run(cfg)
    finally:
        engine.dispose()


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: head); creates a SQLite file.

    Raises:
        DatabaseUnavailable: the database cannot be reached.
    """
    _migrate(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``base`` drops everything)."""
    _migrate(url, lambda cfg: command.downgrade(cfg, revision))


def _is_empty(db: Database) -> bool:
    with reachable(db.url), db.engine.connect() as conn:
        return not inspect(conn).get_table_names()


def missing_database_message(url: str) -> str:
    """Return the one line that says no database exists at ``url`` and how to make one."""
    return (
        f"no database at {describe_url(url)}: create it with `mmgov db upgrade` "
        "(or a write command such as `mmgov team create`), or choose another with --db "
        "or MMGOV_DATABASE_URL"
    )


def open_database(url: str | None = None, *, create: bool = True) -> Database:
    """Open the registry database and make sure its schema is at head.

    With ``create`` a missing or empty SQLite file (the embedded default on first use) is
    created and migrated; without, a missing SQLite file is an error and nothing is written.
    Any other database must already be at head.

    Returns:
        The opened database.

    Raises:
        SchemaNotAtHead: if the schema is behind or ahead of this code's migrations.
        DatabaseUnavailable: the database cannot be reached, or (without ``create``) a SQLite
            file does not exist.
        InvalidInput: if the URL is invalid or names an unsupported database.
    """
    url = url or default_url()
    path = sqlite_path(url)
    if not create and path is not None and not path.is_file():
        raise DatabaseUnavailable(missing_database_message(url))
    db = Database(url, create=create)
    head = head_revision()
    try:
        current = db.current_revision()
    except DatabaseUnavailable:
        db.dispose()
        raise
    if current == head:
        return db
    if create and current is None and db.dialect == "sqlite" and _is_empty(db):
        upgrade(db.url)
        return db
    db.dispose()
    raise SchemaNotAtHead(
        f"database {describe_url(db.url)} is at revision {current or 'none'}, code expects {head}: "
        "run `mmgov db upgrade`"
    )


__all__ = [
    "DEFAULT_URL",
    "Database",
    "alembic_config",
    "create_db_engine",
    "default_url",
    "describe_url",
    "downgrade",
    "head_revision",
    "missing_database_message",
    "normalize_url",
    "open_database",
    "reachable",
    "safe_url",
    "sqlite_path",
    "upgrade",
]
