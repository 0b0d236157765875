"""Request and response bodies of the admin API; request bodies forbid unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.diff import SchemaDiff, VersionDiff
from registry.schemas import (
    UNSET,
    AlertRejected,
    AliasHistory,
    AliasInfo,
    ApprovalInfo,
    AuditEventInfo,
    AuditReport,
    FreeAliasesInfo,
    IncidentInfo,
    JsonBool,
    JsonInt,
    ModelInfo,
    PolicyInfo,
    ReferenceInfo,
    SchemaInfo,
    Stage,
    TagInfo,
    Unset,
    VersionInfo,
    VersionInt,
)
from registry.text import data_problem

TAG_VALUE = "^[^\\x00-\\x1f\\x7f-\\x9f]{1,256}$"
"""A tag value: 1-256 characters of valid text without control characters."""
_STORABLE_TEXT = "^[^\\x00]*$"
"""The JSON Schema pattern of request text without a stricter one: no NUL (lone surrogates are
refused too; JSON Schema regexes cannot name them, and generators do not produce them)."""


def _state_text_rule(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Add `_STORABLE_TEXT` to every string, and mapping key, without a pattern (clients see it).

    Fields the model checks item by item (`_Request._checked_per_item`) are left as they are:
    their items are judged one by one, so no item makes the request invalid.
    """
    skipped: frozenset[str] = getattr(cls, "_checked_per_item", frozenset())
    properties = schema.get("properties", {})
    stack: list[Any] = [v for k, v in properties.items() if k not in skipped]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "string" and "pattern" not in node and "format" not in node:
                node["pattern"] = _STORABLE_TEXT
            if node.get("type") == "object" and "properties" not in node:
                node.setdefault("propertyNames", {"pattern": _STORABLE_TEXT})  # a mapping's keys
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


class _Request(BaseModel):
    # No mass assignment: a field the API does not know is an error, not silently dropped.
    model_config = ConfigDict(extra="forbid", json_schema_extra=_state_text_rule)
    _checked_per_item: ClassVar[frozenset[str]] = frozenset()
    """Fields whose items are validated one by one later (the webhook's alerts)."""

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        # Neither database stores NUL, and no encoder carries a lone surrogate: refuse both here.
        if isinstance(data, dict):
            checked = {k: v for k, v in data.items() if k not in cls._checked_per_item}
            if why := data_problem(checked, "body"):
                raise ValueError(why)
        return data


class ModelCreate(_Request):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="A slug.")
    description: str = Field(default="", max_length=10_000)
    team: str | None = Field(default=None, description="Admins only; others get their own team.")


class VersionCreate(_Request):
    config: dict[str, Any] | None = Field(default=None, description="The config as JSON.")
    config_yaml: str | None = Field(
        default=None, max_length=1_000_000, description="The config as YAML text."
    )
    weights_uri: str = Field(
        min_length=1,
        max_length=4096,
        description="A safetensors file, a sharded checkpoint (directory or "
        "*.safetensors.index.json) under the server's weights roots, or a remote URI.",
    )
    weights_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    note: str = Field(default="", max_length=10_000)
    team: str | None = Field(default=None, description="Owner when this creates the model.")
    module_depth: JsonInt = Field(
        default=1, ge=1, le=8, description="Dotted name parts that make a module."
    )
    module_patterns: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list,
        max_length=64,
        description="Globs over tensor names, each making one module (tried before the depth).",
    )
    pipeline: (
        dict[
            Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")],
            Annotated[str, Field(min_length=1, max_length=4096)],
        ]
        | None
    ) = Field(
        default=None,
        max_length=16,
        description="Data pipeline directories under the weights roots, by component "
        "(e.g. tokenizer, image_processor).",
    )

    @model_validator(mode="after")
    def _exactly_one_config(self) -> VersionCreate:
        if (self.config is None) == (self.config_yaml is None):
            raise ValueError("give exactly one of `config` (JSON object) or `config_yaml` (text)")
        return self


class SchemaSet(_Request):
    document: dict[str, Any] | None = Field(
        description="A JSON Schema (draft 2020-12) object; null removes the schema."
    )
    note: str = Field(default="", max_length=10_000)
    team: str | None = Field(default=None, description="Owner when this creates the model.")


class SchemaPublic(SchemaInfo):
    pass


class SchemaDiffPublic(SchemaDiff):
    pass


class _ExpectsVersion(_Request):
    expected_version: VersionInt | None = Field(
        default=None,
        description="Refuse (409) unless the alias is at this version; null: expect no alias.",
    )

    def expected(self) -> int | Unset | None:
        """Return the expected version, or UNSET when the caller did not send the field."""
        return self.expected_version if "expected_version" in self.model_fields_set else UNSET


class AliasUpdate(_ExpectsVersion):
    version: VersionInt
    reason: str = Field(default="", max_length=10_000, description="Kept with the move.")


class RollbackRequest(_ExpectsVersion):
    to: VersionInt | None = None
    reason: str = Field(default="", max_length=10_000, description="Kept with the move.")


MAX_ALERTS_PER_WEBHOOK = 1_000
"""Alerts accepted in one webhook call; set Alertmanager's ``max_alerts`` to this (groups of mmgov
alerts hold one alert per serving instance, far fewer)."""


class AlertmanagerWebhook(_Request):
    """Alertmanager's webhook payload, version 4.

    Each alert is validated on its own (as `registry.schemas.AlertIn`): bad ones are reported in the
    response's ``rejected``, the others recorded, so one bad alert never loses a batch.
    """

    _checked_per_item = frozenset({"alerts"})

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: JsonInt = Field(default=0, ge=0, le=2**31 - 1)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[dict[str, Any]] = Field(
        max_length=MAX_ALERTS_PER_WEBHOOK,
        description="Alertmanager v4 alerts (status, labels, annotations, startsAt, endsAt, "
        "generatorURL, fingerprint); each is checked on its own.",
    )


class ModelPublic(ModelInfo):
    pass


class VersionPublic(VersionInfo):
    pass


class VersionsPublic(BaseModel):
    items: list[VersionPublic]
    next_cursor: str | None = None


class RegisterPublic(BaseModel):
    created: bool
    version: VersionPublic


class AliasPublic(AliasInfo):
    pass


class IncidentNote(_Request):
    note: str = Field(default="", max_length=10_000)


class IncidentResolve(_Request):
    note: str = Field(
        min_length=1,
        max_length=10_000,
        pattern=r"^[^\x00]*[^\x00\t\n\v\f\r ][^\x00]*$",
        description="Why it is resolved (not only blanks).",
    )


class IncidentReopen(_Request):
    reason: str = Field(default="", max_length=10_000)


class IncidentLink(_Request):
    move: JsonInt = Field(ge=1, le=2_147_483_647, description="The alias move (see its history).")


class SoakIn(_Request):
    alias: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$", description="e.g. staging")
    duration: str = Field(
        min_length=1, max_length=32, description="How long, e.g. 30m, 24h, 7d, 1h30m."
    )


class PolicySet(_Request):
    """The rules a promotion to the alias must pass; an empty body declares it without rules."""

    min_role: Literal["reader", "maintainer", "admin"] | None = None
    require_reference: JsonBool = False
    no_open_incident: JsonBool = False
    soak: SoakIn | None = None
    approvals: JsonInt = Field(default=0, ge=0, le=10)
    note: str = Field(default="", max_length=10_000)


class FreeAliasesSet(_Request):
    """Whether the model accepts aliases it does not declare."""

    free_aliases: JsonBool
    note: str = Field(default="", max_length=10_000)


class FreeAliasesPublic(FreeAliasesInfo):
    pass


class ApprovalIn(_Request):
    alias: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    note: str = Field(default="", max_length=10_000)


class PolicyPublic(PolicyInfo):
    pass


class ApprovalPublic(ApprovalInfo):
    pass


class TagsSet(_Request):
    tags: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")],
        Annotated[str, Field(min_length=1, max_length=256, pattern=TAG_VALUE)],
    ] = Field(
        min_length=1,
        max_length=64,
        description="Tags to set (a set key takes the value).",
        json_schema_extra={"additionalProperties": False},  # keys must match the pattern
    )


class StageSet(_Request):
    stage: Stage
    reason: str = Field(default="", max_length=10_000)


class TagPublic(TagInfo):
    pass


class AliasHistoryPublic(AliasHistory):
    pass


class ResolvedAliasPublic(BaseModel):
    model: str
    alias: str
    version: int
    semver: str | None
    config: dict[str, Any]
    config_hash: str
    weights_uri: str
    weights_sha256: str
    weights_bytes: int | None
    module_hashes: dict[str, str]
    updated_at: datetime
    schema_version: int | None = None
    weights_format: str | None = None
    module_grouping: dict[str, Any] | None = None
    pipeline: dict[str, Any] | None = None


class DiffPublic(VersionDiff):
    pass


class AuditEventPublic(AuditEventInfo):
    pass


class AuditEventsPublic(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None = None


class AuditReportPublic(AuditReport):
    pass


class IncidentPublic(IncidentInfo):
    pass


class AlertsRecordedPublic(BaseModel):
    received: int
    incidents: list[IncidentPublic]
    rejected: list[AlertRejected] = Field(
        default_factory=list, description="Alerts not recorded, by index, and why."
    )


class ReferencePublic(ReferenceInfo):
    pass


class Problem(BaseModel):
    """An RFC 9457 problem body, served as ``application/problem+json``."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text, "content": _PROBLEM_CONTENT}
    for status, text in (
        (400, "Malformed body (not JSON, or not UTF-8)"),
        (401, "Unauthenticated"),
        (403, "Permission denied"),
        (404, "Not found (or another team's)"),
        (409, "Conflict"),
        (413, "Body too large"),
        (422, "Invalid input"),
        (503, "Not ready"),
    )
}
"""Documented on every operation, so clients and schema tests know the problem bodies."""


class HealthPublic(BaseModel):
    status: str
    revision: str | None = None


__all__ = [
    "PROBLEM_RESPONSES",
    "AlertmanagerWebhook",
    "AlertsRecordedPublic",
    "AliasHistoryPublic",
    "AliasPublic",
    "AliasUpdate",
    "ApprovalIn",
    "ApprovalPublic",
    "AuditEventPublic",
    "AuditEventsPublic",
    "AuditReportPublic",
    "DiffPublic",
    "FreeAliasesPublic",
    "FreeAliasesSet",
    "HealthPublic",
    "IncidentLink",
    "IncidentNote",
    "IncidentPublic",
    "IncidentReopen",
    "IncidentResolve",
    "ModelCreate",
    "ModelPublic",
    "PolicyPublic",
    "PolicySet",
    "Problem",
    "ReferencePublic",
    "RegisterPublic",
    "ResolvedAliasPublic",
    "RollbackRequest",
    "SoakIn",
    "StageSet",
    "TagPublic",
    "TagsSet",
    "VersionCreate",
    "VersionPublic",
    "VersionsPublic",
]
