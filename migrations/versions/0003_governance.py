"""Governance: the moves of every alias, alias policies, approvals, tags, version stages, and the
incident lifecycle.

Adds ``alias_moves`` (one row per promote or rollback, naming its audit event; backfilled from the
audit log), ``alias_policies`` (versioned rules per alias), ``approvals``, ``version_tags``,
``model_versions.stage`` (active, deprecated, archived: outside the immutability trigger, which
names the content columns only) and the acknowledge/resolve columns of ``incidents``.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _backfill_moves() -> None:
    """One move per past alias.promote / alias.rollback event, so history covers old aliases."""
    conn = op.get_bind()
    events = sa.table(
        "audit_events",
        sa.column("seq", sa.BigInteger()),
        sa.column("at", _timestamp()),
        sa.column("actor", sa.String()),
        sa.column("action", sa.String()),
        sa.column("model", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("payload", _json()),
    )
    rows = conn.execute(
        sa.select(events)
        .where(events.c.action.in_(["alias.promote", "alias.rollback"]))
        .order_by(events.c.seq)
    ).all()
    if not rows:
        return
    aliases = {
        (m, a): i
        for i, m, a in conn.execute(
            sa.text("SELECT aliases.id, models.name, aliases.name FROM aliases "
                    "JOIN models ON models.id = aliases.model_id")
        )
    }
    versions = {
        (m, v): i
        for i, m, v in conn.execute(
            sa.text("SELECT model_versions.id, models.name, model_versions.version "
                    "FROM model_versions JOIN models ON models.id = model_versions.model_id")
        )
    }
    moves = sa.table(
        "alias_moves",
        sa.column("alias_id", sa.Integer()),
        sa.column("version_id", sa.Integer()),
        sa.column("from_version_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("from_version", sa.Integer()),
        sa.column("action", sa.String()),
        sa.column("actor", sa.String()),
        sa.column("reason", sa.Text()),
        sa.column("at", _timestamp()),
        sa.column("audit_seq", sa.BigInteger()),
    )
    values: list[dict[str, Any]] = []
    for row in rows:
        payload = row.payload or {}
        alias_id = aliases.get((row.model, payload.get("alias")))
        after = versions.get((row.model, payload.get("after")))
        if alias_id is None or after is None:
            continue
        values.append(
            {
                "alias_id": alias_id,
                "version_id": after,
                "from_version_id": versions.get((row.model, payload.get("before"))),
                "version": payload.get("after"),
                "from_version": payload.get("before"),
                "action": row.action.removeprefix("alias."),
                "actor": row.actor,
                "reason": "",
                "at": row.at,
                "audit_seq": row.seq,
            }
        )
    if values:
        op.bulk_insert(moves, values)  # type: ignore[arg-type]


def upgrade() -> None:
    op.create_table(
        "alias_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("from_version_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name=op.f("fk_alias_moves_alias_id_aliases")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"],
            name=op.f("fk_alias_moves_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["from_version_id"], ["model_versions.id"],
            name=op.f("fk_alias_moves_from_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_moves")),
    )
    op.create_index(
        op.f("ix_alias_moves_alias_id_at"), "alias_moves", ["alias_id", "at"], unique=False
    )
    op.create_table(
        "alias_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", _json(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_alias_policies_version_positive")),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_alias_policies_model_id_models")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alias_policies")),
        sa.UniqueConstraint(
            "model_id", "alias", "version", name=op.f("uq_alias_policies_model_id_alias_version")
        ),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=False),
        sa.Column("approver", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.Column("withdrawn_at", _timestamp(), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"],
            name=op.f("fk_approvals_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_index(
        op.f("ix_approvals_version_id_alias"), "approvals", ["version_id", "alias"], unique=False
    )
    op.create_table(
        "version_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=256), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_version_tags_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"],
            name=op.f("fk_version_tags_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_version_tags")),
        sa.UniqueConstraint("version_id", "key", name=op.f("uq_version_tags_version_id_key")),
    )
    # A tag filter walks this index newest version first: its cost follows the page, not the
    # number of versions or of tagged ones.
    op.create_index(
        op.f("ix_version_tags_model_id_key_value_version"),
        "version_tags",
        ["model_id", "key", "value", "version"],
        unique=False,
    )
    # Plain ADD COLUMN (no batch mode): SQLite keeps the immutability trigger, which names the
    # content columns only, so the stage can change while the version stays immutable.
    op.add_column(
        "model_versions",
        sa.Column("stage", sa.String(length=16), server_default="active", nullable=False),
    )
    op.add_column("incidents", sa.Column("acknowledged_at", _timestamp(), nullable=True))
    op.add_column("incidents", sa.Column("acknowledged_by", sa.String(128), nullable=True))
    op.add_column("incidents", sa.Column("resolved_by", sa.String(128), nullable=True))
    op.add_column("incidents", sa.Column("resolution_note", sa.Text(), nullable=True))
    op.add_column("incidents", sa.Column("answered_by_move", sa.Integer(), nullable=True))
    _backfill_moves()


def downgrade() -> None:
    for column in (
        "answered_by_move", "resolution_note", "resolved_by", "acknowledged_by", "acknowledged_at"
    ):
        op.drop_column("incidents", column)
    op.drop_column("model_versions", "stage")
    op.drop_index(op.f("ix_version_tags_model_id_key_value_version"), table_name="version_tags")
    op.drop_table("version_tags")
    op.drop_index(op.f("ix_approvals_version_id_alias"), table_name="approvals")
    op.drop_table("approvals")
    op.drop_table("alias_policies")
    op.drop_index(op.f("ix_alias_moves_alias_id_at"), table_name="alias_moves")
    op.drop_table("alias_moves")
