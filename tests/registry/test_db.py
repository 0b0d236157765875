"""registry.db: schema-at-head checks, auto-upgrade of a new SQLite file, SQLite pragmas, pool."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from sqlalchemy import text

from registry import db as dbmod
from registry.errors import InvalidInput, SchemaNotAtHead


class TestOpenDatabase:
    def test_new_sqlite_file_is_upgraded_on_first_use(self, tmp_path: Path) -> None:
        """An empty SQLite file is migrated to head automatically."""
        database = dbmod.open_database(f"sqlite:///{tmp_path / 'new.db'}")
        try:
            assert database.current_revision() == dbmod.head_revision()
        finally:
            database.dispose()

    def test_empty_postgresql_is_refused(self, db_url: str) -> None:
        """Any database but a new SQLite file must be upgraded explicitly."""
        if db_url.startswith("sqlite"):
            pytest.skip("a new SQLite file is upgraded automatically")
        with pytest.raises(SchemaNotAtHead, match="mmgov db upgrade"):
            dbmod.open_database(db_url)

    def test_database_behind_head_is_refused(self, db_url: str) -> None:
        """A database downgraded to base (alembic_version empty, tables gone) is refused."""
        dbmod.upgrade(db_url)
        dbmod.downgrade(db_url, "base")
        engine = dbmod.create_db_engine(db_url)
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE stray (id INTEGER)"))
        engine.dispose()
        with pytest.raises(SchemaNotAtHead, match="run `mmgov db upgrade`"):
            dbmod.open_database(db_url)

    def test_at_head_opens(self, db_url: str) -> None:
        """After `upgrade`, open_database succeeds on both databases."""
        dbmod.upgrade(db_url)
        dbmod.open_database(db_url).dispose()

    def test_bad_urls(self) -> None:
        """Unsupported or in-memory URLs are InvalidInput."""
        with pytest.raises(InvalidInput):
            dbmod.Database("mysql://x/y")
        with pytest.raises(InvalidInput):
            dbmod.Database("sqlite://")


def _pragmas(path: Path, *names: str) -> dict[str, object]:
    """Open a new SQLite database at ``path`` and read the named pragmas on a pooled connection."""
    database = dbmod.open_database(f"sqlite:///{path}")
    try:
        with database.read() as s:
            return {name: s.scalar(text(f"PRAGMA {name}")) for name in names}
    finally:
        database.dispose()


class TestSqlitePragmas:
    def test_wal_foreign_keys_busy_timeout(self, tmp_path: Path) -> None:
        """Connections run in WAL mode with foreign keys on, a busy timeout, synchronous NORMAL."""
        assert _pragmas(
            tmp_path / "p.db", "journal_mode", "foreign_keys", "busy_timeout", "synchronous"
        ) == {
            "journal_mode": "wal",
            "foreign_keys": 1,
            "busy_timeout": dbmod.SQLITE_BUSY_TIMEOUT_MS,
            "synchronous": 1,  # NORMAL
        }

    def test_synchronous_full_from_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """MMGOV_SQLITE_SYNCHRONOUS=full makes every connection sync each commit."""
        monkeypatch.setenv(dbmod.SQLITE_SYNCHRONOUS_ENV, "full")
        assert _pragmas(tmp_path / "full.db", "synchronous") == {"synchronous": 2}  # FULL

    def test_bad_synchronous_value_is_refused(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Any value but NORMAL or FULL fails naming the variable, and creates no file."""
        monkeypatch.setenv(dbmod.SQLITE_SYNCHRONOUS_ENV, "OFF")
        with pytest.raises(InvalidInput, match="MMGOV_SQLITE_SYNCHRONOUS must be NORMAL or FULL"):
            dbmod.Database(f"sqlite:///{tmp_path / 'sub' / 'off.db'}")
        assert not (tmp_path / "sub").exists()

    def test_foreign_keys_enforced(self, tmp_path: Path) -> None:
        """A version pointing at a missing model is refused (foreign_keys=ON)."""
        database = dbmod.open_database(f"sqlite:///{tmp_path / 'fk.db'}")
        try:
            with pytest.raises(Exception, match="FOREIGN KEY"), database.transaction() as s:
                s.execute(
                    text(
                        "INSERT INTO aliases (model_id, name, version_id, updated_at, "
                        "updated_by) VALUES (99, 'x', 99, '2024-01-01', 'me')"
                    )
                )
        finally:
            database.dispose()


def _version_count(database: dbmod.Database) -> int:
    with database.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM model_versions")).scalar_one())


def _register_in_forked_child(database: dbmod.Database, parent_pool: object) -> None:
    from tests.registry.test_concurrency import _register

    assert database.engine.pool is not parent_pool  # the inherited pool was dropped
    _register(database.url, 2, database)


class TestSqlitePool:
    def test_sequential_sessions_reuse_one_connection(self, tmp_path: Path) -> None:
        """A caller's reads and writes one after the other run on one pooled SQLite connection."""
        database = dbmod.open_database(f"sqlite:///{tmp_path / 'pool.db'}")
        try:
            seen = set()
            for _ in range(3):
                with database.connect() as conn:
                    seen.add(id(conn.connection.dbapi_connection))
                with database.transaction() as session:
                    seen.add(id(session.connection().connection.dbapi_connection))
            assert len(seen) == 1
        finally:
            database.dispose()

    def test_dispose_closes_pooled_connections(self, tmp_path: Path) -> None:
        """After dispose no connection is open: the last close checkpointed and removed the WAL."""
        path = tmp_path / "dispose.db"
        database = dbmod.open_database(f"sqlite:///{path}")
        with database.transaction() as session:
            session.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))
        assert path.with_name("dispose.db-wal").exists()
        database.dispose()
        assert not path.with_name("dispose.db-wal").exists()

    def test_forked_child_opens_its_own_connections(self, db_url: str) -> None:
        """A child forked with pooled connections gets a fresh pool; the parent's keep working."""
        from tests.registry.test_concurrency import _register

        dbmod.upgrade(db_url)
        database = dbmod.Database(db_url)
        try:
            _register(db_url, 1, database)  # the pool now holds an open connection
            child = multiprocessing.get_context("fork").Process(
                target=_register_in_forked_child, args=(database, database.engine.pool)
            )
            child.start()
            child.join(timeout=120)
            assert child.exitcode == 0
            _register(db_url, 3, database)  # the parent's pooled connection still works
            assert _version_count(database) == 3
        finally:
            database.dispose()
