"""Config schemas per model, and what a version records of its weights format and pipeline.

Adds ``model_schemas`` (immutable, like versions), ``models.schema_version`` (the current one) and
five columns of ``model_versions``: the schema version checked against, the weights format, the
module grouping, the shards of a sharded checkpoint and the data pipeline. The immutability
trigger of ``model_versions`` is recreated to cover the new columns.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


_OLD_COLUMNS = (
    "model_id, version, semver, config, config_hash, weights_uri, weights_sha256, "
    "weights_bytes, module_hashes, parent_version, note, created_by, created_at"
)
_NEW_COLUMNS = (
    f"{_OLD_COLUMNS}, schema_version, weights_format, module_grouping, weights_shards, pipeline"
)
_SCHEMA_COLUMNS = "model_id, version, document, schema_hash, note, created_by, created_at"


def _sqlite_trigger(table: str, name: str, columns: str, what: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE UPDATE OF {columns} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{what} are immutable: UPDATE refused'); END"
    )


def _pg_trigger(table: str, name: str, columns: str) -> str:
    return (
        f"CREATE TRIGGER {name} BEFORE UPDATE OF {columns} ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION mmgov_refuse_change()"
    )


def _triggers(columns: str, with_schemas: bool) -> list[str]:
    sqlite = op.get_bind().dialect.name == "sqlite"
    drop = "DROP TRIGGER IF EXISTS model_versions_immutable" + (
        "" if sqlite else " ON model_versions"
    )
    if sqlite:
        create = [
            _sqlite_trigger("model_versions", "model_versions_immutable", columns, "model_versions")
        ]
        if with_schemas:
            create.append(
                _sqlite_trigger(
                    "model_schemas", "model_schemas_immutable", _SCHEMA_COLUMNS, "model_schemas"
                )
            )
    else:
        create = [_pg_trigger("model_versions", "model_versions_immutable", columns)]
        if with_schemas:
            create.append(_pg_trigger("model_schemas", "model_schemas_immutable", _SCHEMA_COLUMNS))
    return [drop, *create]


def upgrade() -> None:
    op.create_table(
        "model_schemas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", _json(), nullable=True),
        sa.Column("schema_hash", sa.String(length=64), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_model_schemas_version_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_schemas_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_schemas")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_schemas_model_id_version")),
    )
    op.add_column("models", sa.Column("schema_version", sa.Integer(), nullable=True))
    # Plain ADD COLUMN (no batch mode): SQLite supports it and keeps the table's triggers.
    op.add_column("model_versions", sa.Column("schema_version", sa.Integer(), nullable=True))
    op.add_column("model_versions", sa.Column("weights_format", sa.String(32), nullable=True))
    op.add_column("model_versions", sa.Column("module_grouping", _json(), nullable=True))
    op.add_column("model_versions", sa.Column("weights_shards", _json(), nullable=True))
    op.add_column("model_versions", sa.Column("pipeline", _json(), nullable=True))
    for statement in _triggers(_NEW_COLUMNS, with_schemas=True):
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.execute(
        "DROP TRIGGER IF EXISTS model_schemas_immutable" + ("" if sqlite else " ON model_schemas")
    )
    for statement in _triggers(_OLD_COLUMNS, with_schemas=False):
        op.execute(statement)
    # The old trigger names the old columns only, so dropping the new ones is allowed.
    for column in (
        "pipeline",
        "weights_shards",
        "module_grouping",
        "weights_format",
        "schema_version",
    ):
        op.drop_column("model_versions", column)
    op.drop_column("models", "schema_version")
    op.drop_table("model_schemas")
