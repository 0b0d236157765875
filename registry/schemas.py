"""Plain pydantic schemas the service returns and accepts; ORM rows never leave the service."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from registry.diff import PipelineChanges

Role = Literal["reader", "maintainer", "admin"]
Stage = Literal["active", "deprecated", "archived"]
T = TypeVar("T")


class Unset(enum.Enum):
    """Type of ``UNSET``: "the caller does not check the alias's current version"."""

    UNSET = "UNSET"


UNSET = Unset.UNSET
"""Sentinel for ``expected_version``: skip the check (``None`` means "expect no alias yet")."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Actor(_Frozen):
    """Who calls the service: a person or token, its team (None for admins without one), role."""

    name: str
    team: str | None = None
    role: Role
    scope: str | None = None
    """``deployments``: a reader token of a serving process that may also post heartbeats."""


class Page(_Frozen, Generic[T]):
    """One page of a keyset-paginated listing; pass ``next_cursor`` back for the next page."""

    items: list[T]
    next_cursor: str | None = None


class ModelInfo(_Frozen):
    name: str
    team: str | None
    description: str
    latest_version: int | None
    created_at: datetime
    created_by: str


class VersionInfo(_Frozen):
    model: str
    version: int
    semver: str | None
    config: dict[str, Any]
    config_hash: str
    weights_uri: str
    weights_sha256: str
    weights_bytes: int | None
    module_hashes: dict[str, str]
    parent_version: int | None
    note: str
    created_by: str
    created_at: datetime
    schema_version: int | None = None
    weights_format: str | None = None
    module_grouping: dict[str, Any] | None = None
    weights_shards: dict[str, str] | None = None
    pipeline: dict[str, Any] | None = None
    stage: Stage = "active"
    aliases: list[str] = Field(default_factory=list)
    """The aliases pointing at this version now (filled by `get_version` and `list_versions`)."""
    tags: dict[str, str] = Field(default_factory=dict)


class SchemaInfo(_Frozen):
    """One version of a model's config schema; ``document`` is None when it was removed."""

    model: str
    version: int
    document: dict[str, Any] | None
    schema_hash: str | None
    note: str
    created_by: str
    created_at: datetime
    current: bool


class WeightsCheck(_Frozen):
    """A weights file compared with what the registry recorded for a version."""

    model: str
    version: int
    path: str
    ok: bool
    expected_sha256: str
    actual_sha256: str
    size_bytes: int | None
    modules_ok: list[str]
    modules_changed: list[str]
    modules_missing: list[str]
    modules_unexpected: list[str]
    shards_changed: list[str] = Field(default_factory=list)
    shards_missing: list[str] = Field(default_factory=list)
    pipeline: PipelineChanges | None = None


class RegisterResult(_Frozen):
    version: VersionInfo
    created: bool


class AliasInfo(_Frozen):
    model: str
    alias: str
    version: int
    previous_version: int | None
    updated_at: datetime
    updated_by: str


class AliasMoveInfo(_Frozen):
    """One move of an alias to ``version`` from ``from_version``; audit event ``audit_seq``."""

    id: int
    model: str
    alias: str
    version: int
    from_version: int | None
    action: Literal["promote", "rollback"]
    actor: str
    reason: str
    at: datetime
    audit_seq: int


class AliasHistory(_Frozen):
    """Moves of one alias newest first; with ``at``, only the move in force at that moment."""

    model: str
    alias: str
    at: datetime | None = None
    version_at: int | None = None
    items: list[AliasMoveInfo]
    next_cursor: str | None = None


class SoakRule(_Frozen):
    """The candidate served ``alias`` for at least ``seconds`` without an incident."""

    alias: str
    seconds: int


class PolicyRules(_Frozen):
    """What a promotion to a protected alias must pass; every rule is optional."""

    min_role: Role | None = None
    require_reference: bool = False
    no_open_incident: bool = False
    soak: SoakRule | None = None
    approvals: int = 0


class PolicyInfo(_Frozen):
    """One version of an alias's policy; ``rules`` None: the alias is no longer declared."""

    model: str
    alias: str
    version: int
    rules: PolicyRules | None
    note: str
    created_by: str
    created_at: datetime


class ApprovalInfo(_Frozen):
    id: int
    model: str
    version: int
    alias: str
    approver: str
    note: str
    created_at: datetime
    withdrawn_at: datetime | None
    withdrawn_by: str | None


class TagInfo(_Frozen):
    model: str
    version: int
    key: str
    value: str
    created_by: str
    created_at: datetime


class ResolvedAlias(_Frozen):
    """What an alias serves; ``version.aliases`` and ``tags`` stay empty (one-row hot path)."""

    model: str
    alias: str
    version: VersionInfo
    updated_at: datetime


class AuditEventInfo(_Frozen):
    seq: int
    at: datetime
    actor: str
    action: str
    model: str | None
    version: int | None
    payload: dict[str, Any]
    prev_hash: str
    hash: str


class Checkpoint(_Frozen):
    """The audit head at one moment; keep it outside the database to detect later rewrites."""

    seq: int
    hash: str


class AuditReport(_Frozen):
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    reason: str | None = None


class ReferenceInfo(_Frozen):
    model: str
    version: int
    format: str
    sha256: str
    size_bytes: int
    n_samples: int
    modules: list[str]
    created_by: str
    created_at: datetime


class ReferenceBlob(_Frozen):
    info: ReferenceInfo
    blob: bytes


class AlertIn(BaseModel):
    """One alert of an Alertmanager (v4) webhook payload."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL")
    fingerprint: str = Field(min_length=1, max_length=128)


class IncidentInfo(_Frozen):
    id: int
    fingerprint: str
    status: Literal["open", "resolved"]
    alertname: str
    model: str | None
    version: int | None
    module: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    resolution_note: str | None = None
    answered_by_move: int | None = None


class TeamInfo(_Frozen):
    name: str
    created_at: datetime
    created_by: str


class TokenInfo(_Frozen):
    id: int
    team: str
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None
    scope: str | None = None


__all__ = [
    "UNSET",
    "Actor",
    "AlertIn",
    "AliasHistory",
    "AliasInfo",
    "AliasMoveInfo",
    "ApprovalInfo",
    "AuditEventInfo",
    "AuditReport",
    "Checkpoint",
    "IncidentInfo",
    "ModelInfo",
    "Page",
    "PolicyInfo",
    "PolicyRules",
    "ReferenceBlob",
    "ReferenceInfo",
    "RegisterResult",
    "ResolvedAlias",
    "Role",
    "SchemaInfo",
    "SoakRule",
    "Stage",
    "TagInfo",
    "TeamInfo",
    "TokenInfo",
    "Unset",
    "VersionInfo",
    "WeightsCheck",
]
