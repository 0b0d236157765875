"""Alembic migrations: build from empty, tear down, and match the ORM models exactly."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from registry import db as dbmod
from registry import service
from registry.models import GENESIS_HASH, Base
from registry.schemas import Actor, PolicyRules


def _tables(url: str) -> set[str]:
    engine = dbmod.create_db_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _diff(url: str) -> list[object]:
    engine = dbmod.create_db_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(ctx, Base.metadata))
    finally:
        engine.dispose()


class TestMigrations:
    def test_upgrade_from_empty_builds_every_table(self, db_url: str) -> None:
        """`upgrade` creates every ORM table and seeds the audit head."""
        dbmod.upgrade(db_url)
        assert set(Base.metadata.tables) <= _tables(db_url)
        database = dbmod.Database(db_url)
        try:
            assert database.current_revision() == dbmod.head_revision()
            with database.read() as s:
                row = s.execute(text("SELECT id, seq, hash FROM audit_head")).one()
            assert tuple(row) == (1, 0, GENESIS_HASH)
        finally:
            database.dispose()

    def test_models_match_migrated_schema(self, db_url: str) -> None:
        """compare_metadata finds no difference between the ORM and the migrated database."""
        dbmod.upgrade(db_url)
        assert _diff(db_url) == []

    def test_downgrade_to_base_and_up_again(self, db_url: str) -> None:
        """`downgrade base` drops everything (triggers too) and `upgrade` rebuilds it."""
        dbmod.upgrade(db_url)
        dbmod.downgrade(db_url, "base")
        assert _tables(db_url) <= {"alembic_version"}
        engine = dbmod.create_db_engine(db_url)
        try:
            with engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    n = conn.execute(
                        text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")
                    ).scalar_one()
                else:
                    n = conn.execute(
                        text("SELECT count(*) FROM pg_proc WHERE proname = 'mmgov_refuse_change'")
                    ).scalar_one()
            assert n == 0
        finally:
            engine.dispose()
        dbmod.upgrade(db_url)
        assert _diff(db_url) == []

    def test_0004_keeps_each_models_alias_behaviour(
        self, db_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Re-applied to old rows, 0004 frees the models that declare no alias, only them."""
        dbmod.upgrade(db_url)
        database = dbmod.Database(db_url)
        admin = Actor(name="alice", team=None, role="admin")
        try:
            service.create_model(database, admin, name="declares", team=None)
            service.create_model(database, admin, name="removed", team=None)
            service.remove_policy(database, admin, model="removed", alias="staging")
            service.remove_policy(database, admin, model="removed", alias="production")
            monkeypatch.setenv(service.DEFAULT_ALIASES_ENV, "")
            service.create_model(database, admin, name="bare", team=None)
            service.set_policy(database, admin, model="bare", alias="qa", rules=PolicyRules())
            service.remove_policy(database, admin, model="bare", alias="qa")
            service.create_model(database, admin, name="declares-later", team=None)
            service.set_policy(database, admin, model="declares-later", alias="qa",
                               rules=PolicyRules(approvals=1))
        finally:
            database.dispose()
        dbmod.downgrade(db_url, "0003")
        dbmod.upgrade(db_url)
        database = dbmod.Database(db_url)
        try:
            free = {m.name: m.free_aliases for m in service.list_models(database, admin).items}
        finally:
            database.dispose()
        assert free == {"bare": True, "declares": False, "declares-later": False, "removed": True}
