"""Routes for models: create, list (keyset pages), get."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import Limit, ModelName, NameCursor, link_next
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
def list_models(
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 50,
    cursor: NameCursor = None,
) -> list[ModelPublic]:
    """List the models the caller may see by name; `Link: rel="next"` names the next page."""
    page = service.list_models(db, actor, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [ModelPublic.model_validate(m.model_dump()) for m in page.items]


@router.get("/{name}", response_model=ModelPublic)
def get_model(name: ModelName, db: DbDep, actor: ActorDep) -> ModelPublic:
    """Return one model (another team's model is 404)."""
    return ModelPublic.model_validate(service.get_model(db, actor, name).model_dump())
