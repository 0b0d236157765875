"""A registry written by mmgov 0.1 (tests/fixtures/release_0_1) upgrades and keeps verifying."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from registry import service
from registry.config import canonical_json, sha256_hex
from registry.db import Database, head_revision, upgrade
from registry.schemas import Actor
from registry.service import WeightsSource
from tests.conftest import PG_URL_TEMPLATE, _create_pg_database, _drop_pg_database

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "release_0_1"
REFERENCE_SCHEMA = json.loads((ROOT / "configs" / "model.schema.json").read_text())
ADMIN = Actor(name="alice", team=None, role="admin")


@pytest.fixture(params=["sqlite", "postgresql"])
def release_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The 0.1 release's registry (a copy of its SQLite file, or its pg_dump restored), upgraded."""
    if request.param == "sqlite":
        shutil.copy(FIXTURE / "registry.db", tmp_path / "registry.db")
        url = f"sqlite:///{tmp_path / 'registry.db'}"
        name = None
    else:
        name = _create_pg_database()
        url = PG_URL_TEMPLATE.format(dbname=name)
        subprocess.run(
            [
                "psql",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                name,
                "-f",
                str(FIXTURE / "registry.pg.sql"),
            ],
            check=True,
            capture_output=True,
        )
    upgrade(url)
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()
        if name is not None:
            _drop_pg_database(name)


class TestUpgradeFrom01:
    def test_at_head_and_audit_chain_verifies(self, release_db: Database) -> None:
        """After `upgrade` the database is at head and the old chain still verifies."""
        assert release_db.current_revision() == head_revision()
        report = service.verify_audit(release_db, ADMIN)
        assert report.ok
        assert report.checked == report.head_seq > 0

    def test_stored_configs_still_hash_to_their_hashes(self, release_db: Database) -> None:
        """Every stored version's config hash is the hash of its stored canonical config."""
        page = service.list_versions(release_db, ADMIN, "mm-clip")
        assert [v.version for v in page.items] == [2, 1]
        for v in page.items:
            assert sha256_hex(canonical_json(v.config)) == v.config_hash
            assert (v.schema_version, v.weights_format, v.pipeline) == (None, None, None)

    def test_weights_still_verify(self, release_db: Database) -> None:
        """`verify` of each version against its fixture weights file says ok, module by module."""
        for number, tag in ((1, "a"), (2, "b")):
            check = service.check_weights(
                release_db,
                ADMIN,
                model="mm-clip",
                version=number,
                path=FIXTURE / f"weights_{tag}.safetensors",
            )
            assert check.ok
            assert check.modules_ok == ["fusion", "text", "vision"]

    def test_reregistering_stored_configs_creates_no_duplicate(self, release_db: Database) -> None:
        """With the reference schema, v2's file (learning_rate: 1, batch_size: 32.0) is v2 again."""
        service.set_schema(release_db, ADMIN, model="mm-clip", schema=REFERENCE_SCHEMA)
        again = service.register_version(
            release_db,
            ADMIN,
            model="mm-clip",
            config=(FIXTURE / "v2.yaml").read_text(),
            weights=WeightsSource(uri=str(FIXTURE / "weights_b.safetensors")),
        )
        assert (again.created, again.version.version) == (False, 2)
        assert again.version.config_hash == (
            "f22bf2705137d6418c23cba15818846e429ba8f101b1372a56fcda0ae3eb523e"
        )

    def test_plain_config_hashes_as_before_without_a_schema(self, release_db: Database) -> None:
        """v1's file, whose numbers needed no coercion, hashes as 0.1 hashed it, schema or not."""
        fresh = service.register_version(
            release_db,
            ADMIN,
            model="fresh",
            config=(FIXTURE / "v1.yaml").read_text(),
            weights=WeightsSource(uri=str(FIXTURE / "weights_a.safetensors")),
        )
        stored = service.get_version(release_db, ADMIN, "mm-clip", 1)
        assert fresh.version.config_hash == stored.config_hash

    def test_production_alias_survives(self, release_db: Database) -> None:
        """The alias history written by 0.1 (promote 1, promote 2, roll back) still resolves."""
        assert (
            service.resolve_alias(release_db, ADMIN, "mm-clip", "production").version.version == 1
        )

    def test_alias_history_is_backfilled_from_the_audit_log(self, release_db: Database) -> None:
        """0003 turns 0.1's alias events into moves: history and --at answer for old aliases."""
        history = service.alias_history(release_db, ADMIN, "mm-clip", "production")
        assert [(m.action, m.from_version, m.version) for m in history.items] == [
            ("rollback", 2, 1),
            ("promote", 1, 2),
            ("promote", None, 1),
        ]
        events = {e.seq: e for e in service.list_audit(release_db, ADMIN, limit=1000).items}
        for move in history.items:
            assert events[move.audit_seq].action == f"alias.{move.action}"
            assert events[move.audit_seq].payload["after"] == move.version
        second = history.items[1]
        at = service.alias_history(release_db, ADMIN, "mm-clip", "production", at=second.at)
        assert at.version_at == 2

    def test_old_model_keeps_free_aliases(self, release_db: Database) -> None:
        """0004 leaves a 0.1 model (it declares no alias) free: a new alias is still accepted."""
        assert service.get_model(release_db, ADMIN, "mm-clip").free_aliases is True
        assert service.list_policies(release_db, ADMIN, "mm-clip").items == []
        moved = service.promote(release_db, ADMIN, model="mm-clip", version=2, alias="canary")
        assert moved.version == 2
