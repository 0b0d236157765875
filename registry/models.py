"""SQLAlchemy 2.0 typed ORM tables of the registry; rows never leave the service layer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.expression import false

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Every constraint gets a predictable name, so migrations can address it on every dialect."""

GENESIS_HASH = "0" * 64
"""``prev_hash`` of the first audit event and the audit head's hash before any event."""

ROLES = ("reader", "maintainer", "admin")
STAGES = ("active", "deprecated", "archived")
"""A version's stage: deprecated ones still serve; archived ones can no longer be promoted."""


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON on SQLite, JSONB on PostgreSQL: both round-trip plain JSON data.
JSONType = JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base whose metadata names every constraint."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))


class Model(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Last version number handed out; bumped with UPDATE … RETURNING under the row lock.
    next_version: Mapped[int] = mapped_column(Integer, default=0)
    # The config schema registrations are checked against: a `model_schemas.version`, or None.
    schema_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))
    # Added by 0004: False means an alias may be created only if it is declared (a policy).
    free_aliases: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (CheckConstraint("next_version >= 0", name="next_version_non_negative"),)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[int] = mapped_column(Integer)
    semver: Mapped[str | None] = mapped_column(String(64))
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)
    config_hash: Mapped[str] = mapped_column(String(64))
    weights_uri: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    weights_bytes: Mapped[int | None] = mapped_column(BigInteger)
    module_hashes: Mapped[dict[str, str]] = mapped_column(JSONType)
    parent_version: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Added by 0002; None on versions registered before (their schema was the built-in layout).
    schema_version: Mapped[int | None] = mapped_column(Integer)
    weights_format: Mapped[str | None] = mapped_column(String(32))
    module_grouping: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    weights_shards: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    pipeline: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Added by 0003; the one mutable column (outside the immutability trigger): see STAGES.
    stage: Mapped[str] = mapped_column(String(16), default="active", server_default="active")

    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
        Index(None, "model_id", "config_hash"),
    )


class ModelSchema(Base):
    """One version of a model's config schema; ``document`` None records that it was removed."""

    __tablename__ = "model_schemas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    schema_hash: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class Alias(Base):
    __tablename__ = "aliases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    name: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("model_id", "name"),)


class AliasHistory(Base):
    """Every position an alias took; the un-rolled-back rows form the stack rollback pops."""

    __tablename__ = "alias_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id"), index=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    rolled_back_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint("action IN ('promote', 'rollback')", name="action_known"),
    )


class AliasMove(Base):
    """Every move of an alias (promote or rollback) with its audit event: what served when."""

    __tablename__ = "alias_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    from_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    # The version numbers, copied: `history --at` reads one row without joining versions.
    version: Mapped[int] = mapped_column(Integer)
    from_version: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "alias_id", "at"),)


class AliasPolicy(Base):
    """One version of an alias's promotion rules; ``rules`` None records that it was removed."""

    __tablename__ = "alias_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    note: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("model_id", "alias", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )


class Approval(Base):
    """A maintainer's approval of a version for an alias; withdrawn ones stay, marked."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    alias: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(128))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    withdrawn_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index(None, "version_id", "alias"),)


class VersionTag(Base):
    """A key=value tag of a version; the model and version number are copied for the index."""

    __tablename__ = "version_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    version: Mapped[int] = mapped_column(Integer)
    key: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(String(256))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (
        UniqueConstraint("version_id", "key"),
        Index(None, "model_id", "key", "value", "version"),
    )


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32), index=True)
    model: Mapped[str | None] = mapped_column(String(64), index=True)
    version: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the last seq and hash; updating it first serialises concurrent appends."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)


class ReferenceProfile(Base):
    __tablename__ = "reference_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), unique=True)
    format: Mapped[str] = mapped_column(String(64))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    n_samples: Mapped[int] = mapped_column(Integer)
    modules: Mapped[list[str]] = mapped_column(JSONType)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    alertname: Mapped[str] = mapped_column(String(128))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    module: Mapped[str | None] = mapped_column(String(128))
    labels: Mapped[dict[str, str]] = mapped_column(JSONType)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONType)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Added by 0003: the lifecycle people drive by hand.
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    answered_by_move: Mapped[int | None] = mapped_column(Integer)
    """The `AliasMove` (promotion or rollback) that answered the incident."""

    __table_args__ = (CheckConstraint("status IN ('open', 'resolved')", name="status_known"),)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    # Only the digest is stored; the prefix lets people recognise a token in listings.
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(24))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Added by 0006: "deployments" marks a reader token that may also post heartbeats.
    scope: Mapped[str | None] = mapped_column(String(32))

    __table_args__ = (
        CheckConstraint("role IN ('reader', 'maintainer', 'admin')", name="role_known"),
    )


class Deployment(Base):
    """One serving instance of a model: what it reported in its last heartbeat."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    instance: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str | None] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    config_hash: Mapped[str] = mapped_column(String(64))
    module_hashes: Mapped[dict[str, str]] = mapped_column(JSONType)
    # What differs from the registered version: "config" and/or module names; [] when it matches.
    mismatched: Mapped[list[str]] = mapped_column(JSONType)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    heartbeats: Mapped[int] = mapped_column(BigInteger, default=1)
    reported_by: Mapped[str] = mapped_column(String(128))

    __table_args__ = (UniqueConstraint("model_id", "instance"),)


class RollbackPolicy(Base):
    """When the sidecar rolls an alias back by itself: which alerts, how long firing, cool-down."""

    __tablename__ = "rollback_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id"), unique=True)
    alertnames: Mapped[list[str]] = mapped_column(JSONType)
    severities: Mapped[list[str]] = mapped_column(JSONType)
    min_firing_seconds: Mapped[int] = mapped_column(Integer)
    cooldown_seconds: Mapped[int] = mapped_column(Integer)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


AUTO_OUTCOMES = ("rolled_back", "dry_run", "cooldown", "no_target")


class AutoRollback(Base):
    """One decision of a rollback policy on one incident; unique, so it is never taken twice."""

    __tablename__ = "auto_rollbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias_id: Mapped[int] = mapped_column(ForeignKey("aliases.id"))
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    from_version: Mapped[int] = mapped_column(Integer)
    to_version: Mapped[int | None] = mapped_column(Integer)
    move_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("incident_id", "alias_id"),
        Index(None, "alias_id", "at"),
        CheckConstraint(
            "outcome IN ('rolled_back', 'dry_run', 'cooldown', 'no_target')", name="outcome_known"
        ),
    )


__all__ = [
    "AUTO_OUTCOMES",
    "GENESIS_HASH",
    "NAMING_CONVENTION",
    "ROLES",
    "STAGES",
    "Alias",
    "AliasHistory",
    "AliasMove",
    "AliasPolicy",
    "ApiToken",
    "Approval",
    "AuditEvent",
    "AuditHead",
    "AutoRollback",
    "Base",
    "Deployment",
    "Incident",
    "Model",
    "ModelSchema",
    "ModelVersion",
    "ReferenceProfile",
    "RollbackPolicy",
    "Team",
    "UTCDateTime",
    "VersionTag",
    "utcnow",
]
