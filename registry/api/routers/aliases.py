"""Routes for aliases: resolve (cheap to poll, with ETag/304), promote, roll back, list, history."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep, run_read
from registry.api.routers._params import (
    AliasName,
    Cursor,
    Limit,
    ModelName,
    Moment,
    NameCursor,
    cursor_text,
    link_next,
)
from registry.api.schemas import (
    AliasHistoryPublic,
    AliasPublic,
    AliasUpdate,
    ResolvedAliasPublic,
    RollbackRequest,
)
from registry.schemas import ResolvedAlias
from registry.service.lookups import lookup_alias

router = APIRouter(prefix="/models/{name}/aliases", tags=["aliases"])


def _etag(resolved: ResolvedAlias) -> str:
    v = resolved.version
    state = "\0".join(
        [resolved.model, resolved.alias, str(v.version), v.config_hash, v.weights_sha256,
         resolved.updated_at.isoformat()]
    )
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    # If-None-Match uses the weak comparison: W/"x" matches "x".
    tags = (t.strip().removeprefix("W/") for t in if_none_match.split(","))
    return etag in tags


@router.get(
    "/{alias}",
    response_model=ResolvedAliasPublic,
    responses={304: {"description": "Not modified: the If-None-Match ETag is current"}},
)
async def resolve_alias(
    name: ModelName, alias: AliasName, request: Request, db: DbDep, actor: ActorDep
) -> Response:
    """Return the version an alias serves; send If-None-Match to get a bodiless 304."""
    resolved = await run_read(db, lookup_alias, db, actor, name, alias)
    etag = _etag(resolved)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    v = resolved.version
    body = {
        "model": resolved.model,
        "alias": resolved.alias,
        "version": v.version,
        "semver": v.semver,
        "config": v.config,
        "config_hash": v.config_hash,
        "weights_uri": v.weights_uri,
        "weights_sha256": v.weights_sha256,
        "weights_bytes": v.weights_bytes,
        "module_hashes": v.module_hashes,
        "updated_at": resolved.updated_at.isoformat(),
        "schema_version": v.schema_version,
        "weights_format": v.weights_format,
        "module_grouping": v.module_grouping,
        "pipeline": v.pipeline,
    }
    # Serialised by hand: this is the path serving processes poll, so skip response validation.
    return Response(
        json.dumps(body, separators=(",", ":")).encode(),
        media_type="application/json",
        headers=headers,
    )


@router.put("/{alias}", response_model=AliasPublic)
def promote(
    name: ModelName, alias: AliasName, body: AliasUpdate, db: DbDep, actor: MaintainerDep
) -> AliasPublic:
    """Point the alias at a version (409 when ``expected_version`` is stale)."""
    info = service.promote(
        db, actor, model=name, version=body.version, alias=alias,
        expected_version=body.expected(), reason=body.reason,
    )
    return AliasPublic.model_validate(info.model_dump())


@router.post("/{alias}/rollback", response_model=AliasPublic)
def rollback(
    name: ModelName, alias: AliasName, body: RollbackRequest, db: DbDep, actor: MaintainerDep
) -> AliasPublic:
    """Move the alias back to its previous version, or to ``to``."""
    info = service.rollback(
        db, actor, model=name, alias=alias, to=body.to, expected_version=body.expected(),
        reason=body.reason,
    )
    return AliasPublic.model_validate(info.model_dump())


@router.get("", response_model=list[AliasPublic])
def list_aliases(
    request: Request,
    response: Response,
    name: ModelName,
    db: DbDep,
    actor: ActorDep,
    limit: Limit = 100,
    cursor: NameCursor = None,
) -> list[AliasPublic]:
    """List the model's aliases by name: the version each serves, when and by whom it last
    moved; `Link: rel="next"` names the next page."""
    page = service.list_aliases(db, actor, name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [AliasPublic.model_validate(a.model_dump()) for a in page.items]


@router.get("/{alias}/history", response_model=AliasHistoryPublic)
def alias_history(
    name: ModelName,
    alias: AliasName,
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    at: Annotated[
        Moment | None,
        Query(description="A moment (with timezone): only the move in force then."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AliasHistoryPublic:
    """Every move of the alias newest first (promote, rollback: actor, reason, audit seq)."""
    found = service.alias_history(db, actor, name, alias, at=at, limit=limit,
                                 cursor=cursor_text(cursor))
    link_next(request, response, found.next_cursor)
    return AliasHistoryPublic.model_validate(found.model_dump())
