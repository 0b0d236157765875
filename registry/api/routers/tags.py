"""Routes for a version's tags and stage (deprecated, archived)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import SLUG, ModelName, VersionNumber
from registry.api.schemas import StageSet, TagPublic, TagsSet, VersionPublic

router = APIRouter(prefix="/models/{name}/versions/{version}", tags=["versions"])
TagKey = Annotated[str, Path(pattern=SLUG, description="The tag's key.")]


@router.get("/tags", response_model=list[TagPublic])
def list_tags(
    name: ModelName, version: VersionNumber, db: DbDep, actor: ActorDep
) -> list[TagPublic]:
    """List the version's tags by key."""
    found = service.list_tags(db, actor, model=name, version=version)
    return [TagPublic.model_validate(t.model_dump()) for t in found]


@router.put("/tags", response_model=list[TagPublic])
def set_tags(
    name: ModelName, version: VersionNumber, body: TagsSet, db: DbDep, actor: MaintainerDep
) -> list[TagPublic]:
    """Set tags on the version (audited); returns all its tags."""
    found = service.set_tags(db, actor, model=name, version=version, tags=body.tags)
    return [TagPublic.model_validate(t.model_dump()) for t in found]


@router.delete("/tags/{key}", response_model=list[TagPublic])
def remove_tag(
    name: ModelName, version: VersionNumber, key: TagKey, db: DbDep, actor: MaintainerDep
) -> list[TagPublic]:
    """Remove one tag (audited); returns the tags left."""
    found = service.remove_tags(db, actor, model=name, version=version, keys=[key])
    return [TagPublic.model_validate(t.model_dump()) for t in found]


@router.put("/stage", response_model=VersionPublic)
def set_stage(
    name: ModelName, version: VersionNumber, body: StageSet, db: DbDep, actor: MaintainerDep
) -> VersionPublic:
    """Deprecate or archive the version (409: archived is final, or an alias serves it)."""
    info = service.set_stage(
        db, actor, model=name, version=version, stage=body.stage, reason=body.reason
    )
    return VersionPublic.model_validate(info.model_dump())
