"""Routes for incidents: list with filters, show, acknowledge, resolve, reopen, link."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from registry import service
from registry.api.deps import ActorDep, DbDep, MaintainerDep
from registry.api.routers._params import (
    MAX_INT,
    Cursor,
    Limit,
    ModelFilter,
    Moment,
    cursor_text,
    link_next,
)
from registry.api.schemas import (
    IncidentLink,
    IncidentNote,
    IncidentPublic,
    IncidentReopen,
    IncidentResolve,
)

router = APIRouter(prefix="/incidents", tags=["incidents"])
IncidentId = Annotated[int, Path(ge=1, le=MAX_INT)]


@router.get("", response_model=list[IncidentPublic])
def list_incidents(
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    model: ModelFilter = None,
    status: Literal["open", "acknowledged", "resolved"] | None = None,
    module: Annotated[str | None, Query(max_length=128, pattern=r"^[^\x00]*$")] = None,
    version: Annotated[
        int | None, Query(ge=1, le=MAX_INT, description="Without `model`: of any model.")
    ] = None,
    since: Annotated[Moment | None, Query(description="Started at or after.")] = None,
    until: Annotated[Moment | None, Query(description="Started at or before.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> list[IncidentPublic]:
    """List incidents newest first, filtered by model, version, status, module, start time;
    `Link: rel="next"` names the next page."""
    page = service.list_incidents(
        db, actor, model=model, status=status, module=module, version=version,
        since=since, until=until, limit=limit, cursor=cursor_text(cursor),
    )
    link_next(request, response, page.next_cursor)
    return [IncidentPublic.model_validate(i.model_dump()) for i in page.items]


@router.get("/{incident_id}", response_model=IncidentPublic)
def get_incident(incident_id: IncidentId, db: DbDep, actor: ActorDep) -> IncidentPublic:
    """Return one incident (404 for another team's)."""
    return IncidentPublic.model_validate(
        service.get_incident(db, actor, incident_id).model_dump()
    )


@router.post("/{incident_id}/acknowledge", response_model=IncidentPublic)
def acknowledge(
    incident_id: IncidentId, body: IncidentNote, db: DbDep, actor: MaintainerDep
) -> IncidentPublic:
    """Record that someone is on the incident (409 when resolved or acknowledged)."""
    info = service.acknowledge_incident(db, actor, incident_id, note=body.note)
    return IncidentPublic.model_validate(info.model_dump())


@router.post("/{incident_id}/resolve", response_model=IncidentPublic)
def resolve(
    incident_id: IncidentId, body: IncidentResolve, db: DbDep, actor: MaintainerDep
) -> IncidentPublic:
    """Resolve by hand with a note (409 when already resolved)."""
    info = service.resolve_incident(db, actor, incident_id, note=body.note)
    return IncidentPublic.model_validate(info.model_dump())


@router.post("/{incident_id}/reopen", response_model=IncidentPublic)
def reopen(
    incident_id: IncidentId, body: IncidentReopen, db: DbDep, actor: MaintainerDep
) -> IncidentPublic:
    """Reopen a resolved incident (409 when open, or its fingerprint is open again)."""
    info = service.reopen_incident(db, actor, incident_id, reason=body.reason)
    return IncidentPublic.model_validate(info.model_dump())


@router.post("/{incident_id}/link", response_model=IncidentPublic)
def link(
    incident_id: IncidentId, body: IncidentLink, db: DbDep, actor: MaintainerDep
) -> IncidentPublic:
    """Link the incident to the alias move (promotion or rollback) that answered it."""
    info = service.link_incident(db, actor, incident_id, move=body.move)
    return IncidentPublic.model_validate(info.model_dump())


__all__ = ["router"]
