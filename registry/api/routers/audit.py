"""Routes for the audit log: list (keyset pages) and verify the hash chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from registry import service
from registry.api.deps import ActorDep, DbDep
from registry.api.routers._params import Limit, ModelFilter, SeqCursor, cursor_text, link_next
from registry.api.schemas import AuditEventsPublic, AuditReportPublic

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=AuditEventsPublic)
def list_audit(
    request: Request,
    response: Response,
    db: DbDep,
    actor: ActorDep,
    model: ModelFilter = None,
    action: Annotated[
        str | None,
        Query(pattern=r"^[a-z_.]{1,64}$", description="Action prefix, e.g. `alias.`."),
    ] = None,
    limit: Limit = 100,
    cursor: SeqCursor = None,
) -> AuditEventsPublic:
    """List audit events newest first, optionally by action prefix (non-admins: their team's
    models only)."""
    page = service.list_audit(db, actor, model=model, action=action, limit=limit,
                              cursor=cursor_text(cursor))
    link_next(request, response, page.next_cursor)
    return AuditEventsPublic.model_validate(page.model_dump())


@router.get("/verify", response_model=AuditReportPublic)
def verify_audit(db: DbDep, actor: ActorDep) -> AuditReportPublic:
    """Recompute the hash chain; ``ok`` false names the first bad event."""
    return AuditReportPublic.model_validate(service.verify_audit(db, actor).model_dump())
