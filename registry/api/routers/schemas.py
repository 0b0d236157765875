"""Routes for a model's config schema: set (a new schema version), read, list, diff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import (
    MAX_INT,
    Cursor,
    Limit,
    ModelName,
    VersionNumber,
    cursor_text,
    link_next,
)
from registry.api.schemas import SchemaDiffPublic, SchemaPublic, SchemaSet

router = APIRouter(prefix="/models/{name}/schema", tags=["schemas"])


@router.put(
    "",
    response_model=SchemaPublic | None,
    responses={204: {"description": "The schema was removed (document null)"}},
)
def set_schema(
    name: ModelName, body: SchemaSet, response: Response, db: DbDep, actor: MaintainerDep
) -> SchemaPublic | None:
    """Make ``document`` the model's config schema (creates the model if new); null removes it.

    Registrations are checked against the schema in force from then on. Setting the schema that
    is already in force changes nothing.
    """
    found = service.set_schema(
        db, actor, model=name, schema=body.document, note=body.note, team=body.team
    )
    if found is None:
        response.status_code = status.HTTP_204_NO_CONTENT
        return None
    return SchemaPublic.model_validate(found.model_dump())


@router.get("", response_model=SchemaPublic)
def get_schema(name: ModelName, db: DbDep, actor: ActorDep) -> SchemaPublic:
    """Return the schema in force (404 when the model has none)."""
    return SchemaPublic.model_validate(service.get_schema(db, actor, name).model_dump())


@router.get("/versions", response_model=list[SchemaPublic])
def list_schemas(
    request: Request,
    response: Response,
    name: ModelName,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> list[SchemaPublic]:
    """Return the model's schema versions, oldest first (removals included); `Link: rel="next"`
    names the next page."""
    page = service.list_schemas(db, actor, name, limit=limit, cursor=cursor_text(cursor))
    link_next(request, response, page.next_cursor)
    return [SchemaPublic.model_validate(s.model_dump()) for s in page.items]


@router.get("/versions/{version}", response_model=SchemaPublic)
def get_schema_version(
    name: ModelName, version: VersionNumber, db: DbDep, actor: ActorDep
) -> SchemaPublic:
    """Return one schema version."""
    return SchemaPublic.model_validate(service.get_schema(db, actor, name, version).model_dump())


@router.get("/diff", response_model=SchemaDiffPublic)
def diff_schemas(
    name: ModelName,
    db: DbDep,
    actor: ActorDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_INT)],
    to: Annotated[int, Query(ge=1, le=MAX_INT)],
) -> SchemaDiffPublic:
    """Return what changed from schema version ``from`` to ``to``."""
    found = service.diff_schemas(db, actor, name, from_, to)
    return SchemaDiffPublic.model_validate(found.model_dump())
