"""Routes for incidents recorded from alerts."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from registry import service
from registry.api.deps import ActorDep, DbDep
from registry.api.routers._params import ModelFilter
from registry.api.schemas import IncidentPublic

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentPublic])
def list_incidents(
    db: DbDep,
    actor: ActorDep,
    model: ModelFilter = None,
    status: Literal["open", "resolved"] | None = None,
) -> list[IncidentPublic]:
    """List incidents newest first, optionally for one model or one status."""
    found = service.list_incidents(db, actor, model=model, status=status)
    return [IncidentPublic.model_validate(i.model_dump()) for i in found]
