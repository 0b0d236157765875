"""`audit verify` replays the log and names the first table row changed behind the service."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from registry import service
from registry.config import CanonicalConfig
from registry.db import Database
from registry.profile_check import MMGOV_PROFILE_FORMAT
from registry.schemas import Actor
from registry.weights import WeightsInfo
from tests.registry.test_reference_checks import profile_bytes


@pytest.fixture
def busy(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., WeightsInfo],
) -> Database:
    """Teams, a model with two versions, production on v2, tags, a stage, tokens, a profile."""
    service.create_team(database, admin, "vision")
    service.create_team(database, admin, "audio")
    for epochs, tag in ((1, "a"), (2, "b")):
        service.register_version(database, admin, model="m", config=make_config(epochs),
                                 weights=make_weights(tag), team="vision")
    service.promote(database, admin, model="m", version=1, alias="production")
    service.promote(database, admin, model="m", version=2, alias="production")
    service.set_tags(database, admin, model="m", version=2, tags={"owner": "ada", "tier": "1"})
    service.remove_tags(database, admin, model="m", version=2, keys=["tier"])
    service.set_stage(database, admin, model="m", version=1, stage="deprecated")
    service.create_token(database, admin, team="vision", role="reader", name="ci")
    gone, _ = service.create_token(database, admin, team="vision", role="admin", name="old")
    service.revoke_token(database, admin, gone.id)
    service.attach_reference(database, admin, model="m", version=2, fmt=MMGOV_PROFILE_FORMAT,
                             blob=profile_bytes(), n_samples=8,
                             modules=["image_encoder", "text_encoder.layers.0"])
    assert service.verify_audit(database, admin).ok
    return database


def _drop_version_triggers(db: Database) -> None:
    """What an owner of the database can do (stands in for PostgreSQL replica mode too)."""
    with db.transaction() as s:
        suffix = "" if db.dialect == "sqlite" else " ON model_versions"
        s.execute(text(f"DROP TRIGGER model_versions_immutable{suffix}"))


def _version_id(db: Database, version: int) -> int:
    with db.read() as s:
        return int(s.scalar(text("SELECT id FROM model_versions WHERE version = :v"),
                            {"v": version}))


TAMPERING: dict[str, tuple[str, str, str]] = {
    # name: (SQL, table named, words in the reason)
    "alias repointed": ("UPDATE aliases SET version_id = {v1}", "aliases",
                        "m/production points at v1; the log says v2"),
    "token promoted": ("UPDATE api_tokens SET role = 'admin' WHERE name = 'ci'", "api_tokens",
                       "role is 'admin'; the log says 'reader'"),
    "token unrevoked": ("UPDATE api_tokens SET revoked_at = NULL WHERE name = 'old'",
                        "api_tokens", "revoked is False; the log says True"),
    "token digest swapped": ("UPDATE api_tokens SET token_sha256 = '{zeros}' WHERE name = 'ci'",
                             "api_tokens", "sha256 is"),
    "token inserted": (
        "INSERT INTO api_tokens (team_id, name, role, token_sha256, display_prefix, created_by, "
        "created_at) SELECT team_id, 'x', 'admin', '{zeros}', 'x', 'x', created_at "
        "FROM api_tokens WHERE name = 'ci'", "api_tokens", "the log never made it"),
    "team inserted": ("INSERT INTO teams (name, created_at, created_by) "
                      "SELECT 'rogue', created_at, 'x' FROM teams WHERE name = 'vision'",
                      "teams", "'rogue' is in the table"),
    "model moved": ("UPDATE models SET team_id = (SELECT id FROM teams WHERE name = 'audio')",
                    "models", "'m' belongs to 'audio'; the log says 'vision'"),
    "stage changed": ("UPDATE model_versions SET stage = 'active' WHERE version = 1",
                      "model_versions", "m v1 stage is 'active'; the log says 'deprecated'"),
    "tag changed": ("UPDATE version_tags SET value = 'eve'", "version_tags",
                    "is 'eve'; the log says 'ada'"),
    "tag added": ("INSERT INTO version_tags (model_id, version_id, version, key, value, "
                  "created_by, created_at) SELECT model_id, version_id, version, 'tier', '9', "
                  "'x', created_at FROM version_tags", "version_tags", "the log never made it"),
    "reference bytes": ("UPDATE reference_profiles SET blob = {blob}", "reference_profiles",
                        "bytes no longer match their sha256"),
    "reference digest": ("UPDATE reference_profiles SET sha256 = '{zeros}', blob = {blob}",
                         "reference_profiles", "sha256 is"),
}


class TestTamperingFound:
    @pytest.mark.parametrize("case", sorted(TAMPERING))
    def test_named(self, busy: Database, admin: Actor, case: str) -> None:
        """Each change made with SQL behind the service is reported with its table and row."""
        sql, table, words = TAMPERING[case]
        blob = "x'00'" if busy.dialect == "sqlite" else "'\\x00'::bytea"
        with busy.transaction() as s:
            s.execute(text(sql.format(v1=_version_id(busy, 1), zeros="0" * 64, blob=blob)))
        report = service.verify_audit(busy, admin)
        assert (report.ok, report.table) == (False, table), report.reason
        assert words in (report.reason or "")

    @pytest.mark.parametrize(
        ("column", "value", "words"),
        [
            ("weights_sha256", "'" + "f" * 64 + "'", "weights_sha256 is 'fff"),
            ("note", "'rewritten'", "note is 'rewritten'"),
            ("created_by", "'mallory'", "created_by is 'mallory'"),
            ("config", "'{\"epochs\": 99}'", "config no longer hashes to its config_hash"),
        ],
    )
    def test_immutable_fields_past_dropped_triggers(
        self, busy: Database, admin: Actor, column: str, value: str, words: str
    ) -> None:
        """With the trigger gone (or disabled), a rewritten version field is still found."""
        _drop_version_triggers(busy)
        with busy.transaction() as s:
            s.execute(text(f"UPDATE model_versions SET {column} = {value} WHERE version = 2"))
        report = service.verify_audit(busy, admin)
        assert (report.ok, report.table) == (False, "model_versions"), report.reason
        assert words in (report.reason or "")
        assert report.first_bad_seq is not None

    def test_only_an_admin_reads_the_names(self, busy: Database) -> None:
        """A maintainer learns that a table differs, not which model or alias."""
        with busy.transaction() as s:
            s.execute(text(f"UPDATE aliases SET version_id = {_version_id(busy, 1)}"))
        other = Actor(name="bob", team="audio", role="maintainer")
        report = service.verify_audit(busy, other)
        assert (report.ok, report.table) == (False, "aliases")
        assert "production" not in (report.reason or "")
        assert "'m'" not in (report.reason or "")

    def test_cli_names_the_difference(self, busy: Database, db_url: str) -> None:
        """`mmgov audit verify` exits 1 with one line naming the table, under --json too."""
        from tests._support import run_cli

        with busy.transaction() as s:
            s.execute(text(f"UPDATE aliases SET version_id = {_version_id(busy, 1)}"))
        done = run_cli("--db", db_url, "audit", "verify")
        assert done.returncode == 1
        assert "the tables disagree with the audit log: aliases: m/production points at v1" \
            in done.stderr + done.stdout
        done = run_cli("--db", db_url, "--json", "audit", "verify")
        assert done.returncode == 1
        error = json.loads(done.stderr.strip().splitlines()[-1])
        assert error["error"] == "audit_mismatch", done.stderr
        assert json.loads(done.stdout)["table"] == "aliases"


class TestReplaceRefused:
    def test_sqlite_insert_or_replace_of_a_version(self, busy: Database, admin: Actor) -> None:
        """SQLite `INSERT OR REPLACE` over a version (or an event) aborts; nothing changes."""
        if busy.dialect != "sqlite":
            pytest.skip("REPLACE is SQLite's")
        columns = ("id, model_id, version, semver, config, config_hash, weights_uri, "
                   "weights_sha256, weights_bytes, module_hashes, parent_version, note, "
                   "created_by, created_at, schema_version, weights_format, module_grouping, "
                   "weights_shards, pipeline, stage")
        forged = columns.replace("weights_sha256", "'" + "e" * 64 + "'")
        for sql in (
            f"INSERT OR REPLACE INTO model_versions ({columns}) SELECT {forged} "
            "FROM model_versions WHERE version = 2",
            "REPLACE INTO audit_events SELECT seq, at, 'mallory', action, model, version, "
            "payload, prev_hash, hash FROM audit_events WHERE seq = 3",
        ):
            with pytest.raises(DBAPIError, match="REPLACE refused"), busy.transaction() as s:
                s.execute(text(sql))
        assert service.verify_audit(busy, admin).ok

    def test_versions_refuse_delete(self, busy: Database) -> None:
        """A version row cannot be deleted (an alias-free one either)."""
        with pytest.raises(DBAPIError, match="refused"), busy.transaction() as s:
            s.execute(text("DELETE FROM model_versions WHERE version = 1"))

    def test_postgresql_replica_mode_keeps_the_triggers(self, busy: Database) -> None:
        """`session_replication_role = replica` no longer disables the immutability triggers."""
        if busy.dialect != "postgresql":
            pytest.skip("replica mode is PostgreSQL's")
        for sql in ("UPDATE model_versions SET weights_sha256 = 'x'",
                    "DELETE FROM audit_events", "TRUNCATE audit_events"):
            with busy.transaction() as s:
                s.execute(text("SET LOCAL session_replication_role = replica"))
                with pytest.raises(DBAPIError, match="refused"):
                    s.execute(text(sql))
