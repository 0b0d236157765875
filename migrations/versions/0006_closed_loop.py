"""Closing the loop: serving instances and their heartbeats, automatic rollback policies and the
decisions they took, and deployment-scoped API tokens.

Adds ``deployments`` (one row per serving instance of a model: the version and hashes it last
reported), ``rollback_policies`` (one per alias), ``auto_rollbacks`` (one decision per incident
and alias: unique, so a restarted sidecar never acts twice on the same incident) and
``api_tokens.scope`` (``deployments``: a reader token that may also post heartbeats).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamp() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("instance", sa.String(length=128), nullable=False),
        sa.Column("alias", sa.String(length=64), nullable=True),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("module_hashes", _json(), nullable=False),
        sa.Column("mismatched", _json(), nullable=False),
        sa.Column("first_seen", _timestamp(), nullable=False),
        sa.Column("last_heartbeat", _timestamp(), nullable=False),
        sa.Column("heartbeats", sa.BigInteger(), nullable=False),
        sa.Column("reported_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_deployments_model_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"], ["model_versions.id"],
            name=op.f("fk_deployments_version_id_model_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint(
            "model_id", "instance", name=op.f("uq_deployments_model_id_instance")
        ),
    )
    op.create_table(
        "rollback_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("alertnames", _json(), nullable=False),
        sa.Column("severities", _json(), nullable=False),
        sa.Column("min_firing_seconds", sa.Integer(), nullable=False),
        sa.Column("cooldown_seconds", sa.Integer(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", _timestamp(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name=op.f("fk_rollback_policies_alias_id_aliases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollback_policies")),
        sa.UniqueConstraint("alias_id", name=op.f("uq_rollback_policies_alias_id")),
    )
    op.create_table(
        "auto_rollbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("alias_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("from_version", sa.Integer(), nullable=False),
        sa.Column("to_version", sa.Integer(), nullable=True),
        sa.Column("move_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("at", _timestamp(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('rolled_back', 'dry_run', 'cooldown', 'no_target')",
            name=op.f("ck_auto_rollbacks_outcome_known"),
        ),
        sa.ForeignKeyConstraint(
            ["alias_id"], ["aliases.id"], name=op.f("fk_auto_rollbacks_alias_id_aliases")
        ),
        sa.ForeignKeyConstraint(
            ["incident_id"], ["incidents.id"],
            name=op.f("fk_auto_rollbacks_incident_id_incidents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auto_rollbacks")),
        sa.UniqueConstraint(
            "incident_id", "alias_id", name=op.f("uq_auto_rollbacks_incident_id_alias_id")
        ),
    )
    op.create_index(
        op.f("ix_auto_rollbacks_alias_id_at"), "auto_rollbacks", ["alias_id", "at"], unique=False
    )
    op.add_column("api_tokens", sa.Column("scope", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("api_tokens", "scope")
    op.drop_index(op.f("ix_auto_rollbacks_alias_id_at"), table_name="auto_rollbacks")
    op.drop_table("auto_rollbacks")
    op.drop_table("rollback_policies")
    op.drop_table("deployments")
