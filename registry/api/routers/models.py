"""Routes for models: create, list, get."""

from __future__ import annotations

from fastapi import APIRouter, status

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import ModelName
from registry.api.schemas import ModelCreate, ModelPublic

router = APIRouter(prefix="/models", tags=["models"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ModelPublic)
def create_model(body: ModelCreate, db: DbDep, actor: MaintainerDep) -> ModelPublic:
    """Create an empty model; only an admin may name another team as owner."""
    info = service.create_model(
        db, actor, name=body.name, team=body.team, description=body.description
    )
    return ModelPublic.model_validate(info.model_dump())


@router.get("", response_model=list[ModelPublic])
def list_models(db: DbDep, actor: ActorDep) -> list[ModelPublic]:
    """List the models the caller may see."""
    return [ModelPublic.model_validate(m.model_dump()) for m in service.list_models(db, actor)]


@router.get("/{name}", response_model=ModelPublic)
def get_model(name: ModelName, db: DbDep, actor: ActorDep) -> ModelPublic:
    """Return one model (another team's model is 404)."""
    return ModelPublic.model_validate(service.get_model(db, actor, name).model_dump())
