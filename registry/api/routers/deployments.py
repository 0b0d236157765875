"""Routes for the closed loop: heartbeats, deployments and status, automatic rollback policies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep, SettingsDep
from registry.api.routers._params import AliasName, ModelName
from registry.loop_schemas import (
    AutoRollbackInfo,
    DeploymentInfo,
    HeartbeatIn,
    ModelStatus,
    RollbackPolicyIn,
    RollbackPolicyInfo,
)
from registry.service.deployments import STALE_AFTER

router = APIRouter(prefix="/models/{name}", tags=["deployments"])
StaleAfter = Annotated[
    float, Query(ge=0, le=86400, description="Seconds without a heartbeat: stale.")
]


@router.post("/deployments", response_model=DeploymentInfo)
def heartbeat(
    name: ModelName, body: HeartbeatIn, db: DbDep, actor: ActorDep, settings: SettingsDep
) -> DeploymentInfo:
    """Record a serving instance's heartbeat (a `deployments`-scoped token or a maintainer)."""
    return service.record_heartbeat(
        db, actor, model=name, heartbeat=body, min_interval=settings.heartbeat_min_interval
    )


@router.get("/deployments", response_model=list[DeploymentInfo])
def list_deployments(
    name: ModelName, db: DbDep, actor: ActorDep, stale_after: StaleAfter = STALE_AFTER
) -> list[DeploymentInfo]:
    """List the model's serving instances with their last heartbeat."""
    return service.list_deployments(db, actor, name, stale_after=stale_after)


@router.get("/status", response_model=ModelStatus)
def model_status(
    name: ModelName, db: DbDep, actor: ActorDep, stale_after: StaleAfter = STALE_AFTER
) -> ModelStatus:
    """What serves: each alias's version and instances, stale and mismatching instances."""
    return service.model_status(db, actor, name, stale_after=stale_after)


@router.get("/rollback-policies", response_model=list[RollbackPolicyInfo])
def list_rollback_policies(
    name: ModelName, db: DbDep, actor: ActorDep
) -> list[RollbackPolicyInfo]:
    """List the model's automatic rollback policies."""
    return service.list_rollback_policies(db, actor, name)


@router.put("/aliases/{alias}/rollback-policy", response_model=RollbackPolicyInfo)
def set_rollback_policy(
    name: ModelName, alias: AliasName, body: RollbackPolicyIn, db: DbDep, actor: MaintainerDep
) -> RollbackPolicyInfo:
    """Create or replace the alias's automatic rollback policy (404 for an unknown alias)."""
    return service.set_rollback_policy(db, actor, model=name, alias=alias, rules=body)


@router.delete("/aliases/{alias}/rollback-policy", status_code=status.HTTP_204_NO_CONTENT)
def remove_rollback_policy(
    name: ModelName, alias: AliasName, db: DbDep, actor: MaintainerDep
) -> None:
    """Remove the alias's automatic rollback policy."""
    service.remove_rollback_policy(db, actor, model=name, alias=alias)


@router.get("/auto-rollbacks", response_model=list[AutoRollbackInfo])
def list_auto_rollbacks(
    name: ModelName, db: DbDep, actor: ActorDep
) -> list[AutoRollbackInfo]:
    """The decisions rollback policies took on the model's incidents, newest first."""
    return service.list_auto_rollbacks(db, actor, name)
