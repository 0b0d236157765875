"""The Alertmanager webhook: each alert becomes (or resolves) an incident."""

from __future__ import annotations

from fastapi import APIRouter

from registry import service
from registry.api.deps import AlertsDep, DbDep
from registry.api.schemas import AlertmanagerWebhook, AlertsRecordedPublic, IncidentPublic

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.post("", response_model=AlertsRecordedPublic)
def receive_alerts(body: AlertmanagerWebhook, db: DbDep, actor: AlertsDep) -> AlertsRecordedPublic:
    """Record a webhook payload (Bearer: the alerts token, not a user token)."""
    incidents = service.record_alerts(db, actor, [a.to_alert_in() for a in body.alerts])
    return AlertsRecordedPublic(
        received=len(body.alerts),
        incidents=[IncidentPublic.model_validate(i.model_dump()) for i in incidents],
    )
