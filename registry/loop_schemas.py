"""Plain schemas of the closed loop: heartbeats, deployments, rollback policies, their decisions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.schemas import JsonBool, JsonInt, VersionInt

SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_MODULES = 1024
"""A heartbeat reports at most this many module hashes."""
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]
ModuleKey = Annotated[str, Field(min_length=1, max_length=256)]
AlertText = Annotated[
    str, Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
]
"""An alert name or severity a policy matches: 1-128 characters, no control character."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class HeartbeatIn(BaseModel):
    """What a serving instance reports: the version it serves and its in-memory module hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")
    version: VersionInt
    alias: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    config_hash: str = Field(pattern=SHA256_PATTERN)
    module_hashes: dict[ModuleKey, Sha256] = Field(default_factory=dict, max_length=MAX_MODULES)


class DeploymentInfo(_Frozen):
    """One serving instance as the registry last heard from it."""

    model: str
    instance: str
    alias: str | None
    version: int
    config_hash: str
    matches: bool
    """The loaded config and module hashes are the registered version's."""
    mismatched: list[str]
    """``config`` and/or the modules whose loaded hash differs from (or is missing in) the
    registered one."""
    first_seen: datetime
    last_heartbeat: datetime
    heartbeats: int
    reported_by: str
    stale: bool = False
    """No heartbeat for longer than the status call's ``stale_after``."""


class AliasServing(_Frozen):
    """An alias, the version it points at, and the instances that report serving it."""

    alias: str
    version: int
    instances: int
    serving_other: list[str]
    """Instances that name this alias but serve another version (still loading, or stuck)."""


class ModelStatus(_Frozen):
    """`mmgov status MODEL`: aliases, instances, stale and mismatching ones."""

    model: str
    aliases: list[AliasServing]
    deployments: list[DeploymentInfo]
    stale: list[str]
    mismatched: list[str]
    stale_after_seconds: float


class RollbackPolicyIn(BaseModel):
    """An alias's automatic rollback rule, as set by a maintainer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertnames: list[AlertText] = Field(default_factory=list, max_length=64)
    """Alert names that trigger it; empty: any alert on the version the alias serves."""
    severities: list[AlertText] = Field(default_factory=list, max_length=16)
    """``severity`` label values that trigger it; empty: any."""
    min_firing_seconds: JsonInt = Field(default=0, ge=0, le=7 * 86400)
    """How long the alert must have fired (from its ``startsAt``) before acting."""
    cooldown_seconds: JsonInt = Field(default=600, ge=0, le=30 * 86400)
    """At most one automatic move of the alias per this many seconds."""
    dry_run: JsonBool = False
    """Record what it would do, move nothing."""


class RollbackPolicyInfo(_Frozen):
    model: str
    alias: str
    alertnames: list[str]
    severities: list[str]
    min_firing_seconds: int
    cooldown_seconds: int
    dry_run: bool
    updated_by: str
    updated_at: datetime


class AutoRollbackInfo(_Frozen):
    """One decision a rollback policy took on an incident."""

    id: int
    model: str
    alias: str
    incident: int
    outcome: Literal["rolled_back", "dry_run", "cooldown", "no_target"]
    from_version: int
    to_version: int | None
    move: int | None
    detail: str
    at: datetime
    audit_seq: int


__all__ = [
    "MAX_MODULES",
    "SHA256_PATTERN",
    "AliasServing",
    "AutoRollbackInfo",
    "DeploymentInfo",
    "HeartbeatIn",
    "ModelStatus",
    "RollbackPolicyIn",
    "RollbackPolicyInfo",
]
