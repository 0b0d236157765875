"""Plain pydantic schemas the service returns and accepts; ORM rows never leave the service."""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from registry.diff import PipelineChanges
from registry.text import readable, text_problem

Role = Literal["reader", "maintainer", "admin"]
Stage = Literal["active", "deprecated", "archived"]
T = TypeVar("T")


def _json_integer(value: Any) -> Any:
    # JSON Schema's integer: 3 and 3.0, never true or "3" (pydantic's lax mode takes both).
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


def _json_boolean(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]
JsonBool = Annotated[bool, BeforeValidator(_json_boolean)]
VersionInt = Annotated[int, Field(ge=1, le=2_147_483_647), BeforeValidator(_json_integer)]
"""A version number in a body: a JSON integer that fits the 32-bit column."""
"""Body fields as JSON Schema types them: no ``true`` for an integer, no ``"3"`` for either."""


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
    free_aliases: bool = False
    """True: any alias may be created; False: only declared ones (`PolicyInfo`)."""


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


class FreeAliasesInfo(_Frozen):
    """Whether a model accepts undeclared aliases, and the aliases it declares."""

    model: str
    free_aliases: bool
    declared: list[str]


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
    table: str | None = None
    """Set when the chain holds but this table disagrees with the replayed log."""


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


MAX_INT4 = 2_147_483_647
"""Largest value of the 32-bit integer columns (versions, ids): larger numbers are refused."""

MAX_ALERT_LABELS = 64
"""Labels (and, separately, annotations) one alert may carry."""
MAX_LABEL_VALUE = 1_024
MAX_ANNOTATION_VALUE = 10_000
_VERSION_LABEL = re.compile(r"[0-9]{1,10}")  # ASCII digits only: "²".isdigit() is True
_ALERTMANAGER_ZERO_YEAR = 1
"""Alertmanager sends ``endsAt: 0001-01-01T00:00:00Z`` for "no end yet"."""


def _checked_text_map(value: dict[str, str], limit: int) -> dict[str, str]:
    if len(value) > MAX_ALERT_LABELS:
        raise ValueError(f"at most {MAX_ALERT_LABELS} entries")
    for key, item in value.items():
        if not 1 <= len(key) <= 128:
            raise ValueError("names are 1 to 128 characters")
        if len(item) > limit:
            raise ValueError(f"{readable(key)!r} is longer than {limit} characters")
        for text in (key, item):
            if why := text_problem(text):
                raise ValueError(f"{readable(key)!r}: {why}")
    return value


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a timezone (RFC 3339, e.g. 2026-11-28T10:00:00Z)")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside years 1 to 9999 once converted to UTC") from None


class AlertIn(BaseModel):
    """One alert of an Alertmanager (v4) webhook payload, bounded and normalised.

    Timestamps need a timezone and are converted to UTC (Alertmanager's zero ``endsAt`` becomes
    None); labels and annotations are valid Unicode without NUL, bounded in count and length;
    ``alertname`` and ``module`` fit their columns.
    """

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: datetime | None = Field(default=None, alias="endsAt")
    generator_url: str | None = Field(default=None, alias="generatorURL", max_length=4096)
    fingerprint: str = Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        _checked_text_map(value, MAX_LABEL_VALUE)
        for name in ("alertname", "module"):
            if len(value.get(name, "")) > 128:
                raise ValueError(f"the {name} label is longer than 128 characters")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        return _checked_text_map(value, MAX_ANNOTATION_VALUE)

    @field_validator("generator_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and (why := text_problem(value)):
            raise ValueError(why)
        return value

    @field_validator("starts_at")
    @classmethod
    def _starts(cls, value: datetime) -> datetime:
        utc = _utc(value)
        assert utc is not None
        return utc

    @field_validator("ends_at")
    @classmethod
    def _ends(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.year == _ALERTMANAGER_ZERO_YEAR:
            return None
        return _utc(value)

    @property
    def version_number(self) -> int | None:
        """The ``version`` label as a version number, None unless ASCII digits in 1..2^31-1."""
        raw = self.labels.get("version", "")
        if not _VERSION_LABEL.fullmatch(raw) or not 1 <= int(raw) <= MAX_INT4:
            return None
        return int(raw)


class AlertRejected(_Frozen):
    """An alert of a webhook that was not recorded, and why (its input is never echoed)."""

    index: int
    fingerprint: str | None
    errors: list[dict[str, str]]


class AlertsOutcome(_Frozen):
    """What one webhook did: the incidents it touched and the alerts it refused."""

    incidents: list[IncidentInfo]
    rejected: list[AlertRejected]


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
    "MAX_INT4",
    "UNSET",
    "Actor",
    "AlertIn",
    "AlertRejected",
    "AlertsOutcome",
    "AliasHistory",
    "AliasInfo",
    "AliasMoveInfo",
    "ApprovalInfo",
    "AuditEventInfo",
    "AuditReport",
    "Checkpoint",
    "FreeAliasesInfo",
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
