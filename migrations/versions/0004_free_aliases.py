"""Declared-only aliases: ``models.free_aliases``.

A model with ``free_aliases`` false accepts a new alias only if the alias is declared (it has a
policy); one with ``free_aliases`` true accepts any alias. Existing models keep their behaviour:
free if they declare no alias, declared-only otherwise.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _declaring_models() -> set[int]:
    """Ids of the models whose newest policy of some alias has rules (a declared alias)."""
    policies = sa.table(
        "alias_policies",
        sa.column("model_id", sa.Integer()),
        sa.column("alias", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column(
            "rules",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
        ),
    )
    newest: dict[tuple[int, str], object] = {}
    rows = op.get_bind().execute(
        sa.select(policies.c.model_id, policies.c.alias, policies.c.rules).order_by(
            policies.c.version
        )
    )
    for model_id, alias, rules in rows:
        newest[(model_id, alias)] = rules
    return {model_id for (model_id, _), rules in newest.items() if rules is not None}


def upgrade() -> None:
    op.add_column(
        "models",
        sa.Column("free_aliases", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    models = sa.table("models", sa.column("id", sa.Integer()), sa.column("free_aliases"))
    declaring = _declaring_models()
    update = sa.update(models).values(free_aliases=True)
    if declaring:
        update = update.where(models.c.id.not_in(declaring))
    op.get_bind().execute(update)


def downgrade() -> None:
    op.drop_column("models", "free_aliases")
