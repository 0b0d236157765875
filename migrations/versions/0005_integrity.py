"""Integrity: REPLACE and replica mode can no longer bypass the append-only and immutable tables.

SQLite's ``INSERT OR REPLACE`` deletes the conflicting row without firing delete triggers (unless
``recursive_triggers`` is on) and inserts a new one, so it rewrote a version past the UPDATE
trigger and an audit event past the append-only ones: a BEFORE INSERT trigger now refuses an
insert over an existing version or event, and versions refuse DELETE. The version trigger also
names ``id``. On PostgreSQL the triggers become ``ENABLE ALWAYS``, so they fire under
``session_replication_role = replica`` too; whoever can drop a trigger can still change the
rows, which ``mmgov audit verify`` then reports (it compares the tables with the replayed log).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "model_id, version, semver, config, config_hash, weights_uri, weights_sha256, "
    "weights_bytes, module_hashes, parent_version, note, created_by, created_at, "
    "schema_version, weights_format, module_grouping, weights_shards, pipeline"
)

_SQLITE_UP = (
    "DROP TRIGGER IF EXISTS model_versions_immutable",
    f"CREATE TRIGGER model_versions_immutable BEFORE UPDATE OF id, {_COLUMNS} ON model_versions "
    "BEGIN SELECT RAISE(ABORT, 'model_versions are immutable: UPDATE refused'); END",
    "CREATE TRIGGER model_versions_no_replace BEFORE INSERT ON model_versions "
    "WHEN EXISTS (SELECT 1 FROM model_versions WHERE id = NEW.id "
    "OR (model_id = NEW.model_id AND version = NEW.version)) "
    "BEGIN SELECT RAISE(ABORT, 'model_versions are immutable: REPLACE refused'); END",
    "CREATE TRIGGER model_versions_no_delete BEFORE DELETE ON model_versions "
    "BEGIN SELECT RAISE(ABORT, 'model_versions are immutable: DELETE refused'); END",
    "CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events "
    "WHEN EXISTS (SELECT 1 FROM audit_events WHERE seq = NEW.seq OR hash = NEW.hash) "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: REPLACE refused'); END",
)
_SQLITE_DOWN = (
    "DROP TRIGGER IF EXISTS audit_events_no_replace",
    "DROP TRIGGER IF EXISTS model_versions_no_delete",
    "DROP TRIGGER IF EXISTS model_versions_no_replace",
    "DROP TRIGGER IF EXISTS model_versions_immutable",
    f"CREATE TRIGGER model_versions_immutable BEFORE UPDATE OF {_COLUMNS} ON model_versions "
    "BEGIN SELECT RAISE(ABORT, 'model_versions are immutable: UPDATE refused'); END",
)

_ALWAYS = (
    ("model_versions", "model_versions_immutable"),
    ("model_versions", "model_versions_no_delete"),
    ("model_schemas", "model_schemas_immutable"),
    ("audit_events", "audit_events_append_only"),
    ("audit_events", "audit_events_no_truncate"),
)
_PG_UP = (
    "DROP TRIGGER IF EXISTS model_versions_immutable ON model_versions",
    f"CREATE TRIGGER model_versions_immutable BEFORE UPDATE OF id, {_COLUMNS} ON model_versions "
    "FOR EACH ROW EXECUTE FUNCTION mmgov_refuse_change()",
    "CREATE TRIGGER model_versions_no_delete BEFORE DELETE ON model_versions "
    "FOR EACH ROW EXECUTE FUNCTION mmgov_refuse_change()",
    *(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}" for table, name in _ALWAYS),
)
_PG_DOWN = (
    *(f"ALTER TABLE {table} ENABLE TRIGGER {name}" for table, name in _ALWAYS),
    "DROP TRIGGER IF EXISTS model_versions_no_delete ON model_versions",
    "DROP TRIGGER IF EXISTS model_versions_immutable ON model_versions",
    f"CREATE TRIGGER model_versions_immutable BEFORE UPDATE OF {_COLUMNS} ON model_versions "
    "FOR EACH ROW EXECUTE FUNCTION mmgov_refuse_change()",
)


def _run(sqlite: Sequence[str], postgresql: Sequence[str]) -> None:
    for statement in sqlite if op.get_bind().dialect.name == "sqlite" else postgresql:
        op.execute(statement)


def upgrade() -> None:
    _run(_SQLITE_UP, _PG_UP)


def downgrade() -> None:
    _run(_SQLITE_DOWN, _PG_DOWN)
