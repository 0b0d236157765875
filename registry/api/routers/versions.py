"""Routes for versions: register, list (keyset pages), get, diff."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep, SettingsDep
from registry.api.routers._params import (
    MAX_INT,
    Cursor,
    Limit,
    ModelName,
    VersionNumber,
    link_next,
)
from registry.api.schemas import (
    DiffPublic,
    RegisterPublic,
    VersionCreate,
    VersionPublic,
    VersionsPublic,
)
from registry.config import canonicalize, load_config_text
from registry.weights import inspect_weights

router = APIRouter(prefix="/models/{name}", tags=["versions"])


@router.post(
    "/versions",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisterPublic,
    responses={200: {"model": RegisterPublic, "description": "Unchanged: the existing version"}},
)
def register_version(
    name: ModelName,
    body: VersionCreate,
    response: Response,
    db: DbDep,
    actor: MaintainerDep,
    settings: SettingsDep,
) -> RegisterPublic:
    """Register a version (201), or return the existing one when nothing changed (200)."""
    if body.config_yaml is not None:
        config = load_config_text(body.config_yaml, source="config_yaml")
    else:
        assert body.config is not None  # the schema guarantees exactly one
        config = canonicalize(body.config)
    # Local paths only under the configured roots; remote URIs are stored, never fetched.
    weights = inspect_weights(
        body.weights_uri,
        sha256=body.weights_sha256.lower() if body.weights_sha256 else None,
        allowed_roots=settings.weights_root_paths(),
    )
    result = service.register_version(
        db, actor, model=name, config=config, weights=weights, note=body.note, team=body.team
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    return RegisterPublic.model_validate(result.model_dump())


@router.get("/versions", response_model=VersionsPublic)
def list_versions(
    name: ModelName,
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> VersionsPublic:
    """List versions newest first; follow ``next_cursor`` (or the Link header) for more."""
    page = service.list_versions(db, actor, name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return VersionsPublic.model_validate(page.model_dump())


@router.get("/versions/{version}", response_model=VersionPublic)
def get_version(
    name: ModelName, version: VersionNumber, db: DbDep, actor: ActorDep
) -> VersionPublic:
    """Return one version with its config and weights."""
    info = service.get_version(db, actor, name, version)
    return VersionPublic.model_validate(info.model_dump())


@router.get("/diff", response_model=DiffPublic)
def diff_versions(
    name: ModelName,
    db: DbDep,
    actor: ActorDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=MAX_INT)],
    to: Annotated[int, Query(ge=1, le=MAX_INT)],
) -> DiffPublic:
    """Return config, weights and module changes from version ``from`` to ``to``."""
    diff = service.diff_versions(db, actor, name, from_, to)
    return DiffPublic.model_validate(diff.model_dump())
