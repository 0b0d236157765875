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
    cursor_text,
    link_next,
)
from registry.api.schemas import (
    DiffPublic,
    RegisterPublic,
    VersionCreate,
    VersionPublic,
    VersionsPublic,
)
from registry.schemas import Stage
from registry.service import WeightsSource
from registry.service.tags import parse_tag_filter
from registry.weights import ModuleGrouping

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
    """Register a version (201), or return the existing one when nothing changed (200).

    The config is checked against the model's schema; every violation is listed in the problem
    body's ``errors``. Local weights and pipeline directories must lie under the server's weights
    roots; remote URIs are recorded, never fetched.
    """
    config = body.config_yaml if body.config_yaml is not None else body.config
    assert config is not None  # the schema guarantees exactly one
    grouping = ModuleGrouping.from_json(
        {"depth": body.module_depth, "patterns": body.module_patterns}
    )
    result = service.register_version(
        db,
        actor,
        model=name,
        config=config,
        config_source="config_yaml" if body.config_yaml is not None else "config",
        weights=WeightsSource(uri=body.weights_uri, sha256=body.weights_sha256, grouping=grouping),
        pipeline=body.pipeline,
        note=body.note,
        team=body.team,
        allowed_roots=settings.weights_root_paths(),
        config_limits=settings.config_limits(),
    )
    if not result.created:
        response.status_code = status.HTTP_200_OK
    # From the attributes: model_dump would deep-copy the whole config (costly for a large one).
    version = VersionPublic.model_validate(result.version, from_attributes=True)
    return RegisterPublic(created=result.created, version=version)


@router.get("/versions", response_model=VersionsPublic)
def list_versions(
    name: ModelName,
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    tag: Annotated[
        list[Annotated[str, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}=[^\x00]{1,256}$")]]
        | None,
        Query(
            max_length=64,
            description="key=value: only versions carrying this tag (repeat for several).",
        ),
    ] = None,
    stage: Annotated[Stage | None, Query(description="Only versions in this stage.")] = None,
) -> VersionsPublic:
    """List versions newest first; follow ``next_cursor`` (or the Link header) for more."""
    page = service.list_versions(
        db, actor, name, limit=limit, cursor=cursor_text(cursor), tags=parse_tag_filter(tag),
        stage=stage,
    )
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
