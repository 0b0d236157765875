"""The Alertmanager webhook: each alert becomes (or resolves) an incident, or is reported back."""

from __future__ import annotations

from fastapi import APIRouter, Request

from registry import service
from registry.api.deps import AlertsDep, DbDep
from registry.api.schemas import AlertmanagerWebhook, AlertsRecordedPublic, IncidentPublic

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.post("", response_model=AlertsRecordedPublic)
def receive_alerts(
    request: Request, body: AlertmanagerWebhook, db: DbDep, actor: AlertsDep
) -> AlertsRecordedPublic:
    """Record a webhook payload (Bearer: the alerts token, not a user token).

    Bad alerts never fail the batch (Alertmanager retries a 5xx forever): they are listed in
    ``rejected`` and counted in ``mmgov_api_alerts_rejected_total``.
    """
    outcome = service.record_webhook(db, actor, body.alerts)
    request.app.state.metrics.alerts_rejected.inc(len(outcome.rejected))
    return AlertsRecordedPublic(
        received=len(body.alerts),
        incidents=[IncidentPublic.model_validate(i.model_dump()) for i in outcome.incidents],
        rejected=outcome.rejected,
    )
