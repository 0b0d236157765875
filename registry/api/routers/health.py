"""Liveness and readiness probes (public)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from registry.api.deps import PUBLIC, DbDep
from registry.api.problems import problem_response
from registry.api.schemas import HealthPublic
from registry.db import head_revision

router = APIRouter(tags=["health"], dependencies=[PUBLIC])


@router.get("/healthz", response_model=HealthPublic)
async def healthz() -> HealthPublic:
    """The process is up."""
    return HealthPublic(status="ok")


@router.get(
    "/readyz",
    response_model=HealthPublic,
    responses={503: {"description": "Database unreachable or not at migration head"}},
)
def readyz(db: DbDep) -> HealthPublic | Response:
    """The database is reachable and at the migration head (else a 503 problem)."""
    try:
        current = db.current_revision()
    except Exception as exc:  # any driver error means "not ready", reported, not raised
        return problem_response(503, "Not ready", f"database unreachable: {type(exc).__name__}")
    head = head_revision()
    if current != head:
        return problem_response(
            503, "Not ready", f"database at revision {current or 'none'}, code expects {head}"
        )
    return HealthPublic(status="ready", revision=current)
