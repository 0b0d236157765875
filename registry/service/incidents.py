"""Incidents: Alertmanager alerts recorded against the model, version and module they name.

A firing alert opens an incident unless one with the same fingerprint is already open (repeat
notifications only refresh its annotations); a resolved alert resolves the open incident with
its fingerprint, and is ignored when none is open.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.db import Database
from registry.models import Incident, Model, ModelVersion, Team, utcnow
from registry.schemas import Actor, AlertIn, IncidentInfo
from registry.service._common import can_see, require_writer, visible_model


def _info(session: Session, row: Incident) -> IncidentInfo:
    model = session.get(Model, row.model_id) if row.model_id is not None else None
    version = session.get(ModelVersion, row.version_id) if row.version_id is not None else None
    return IncidentInfo(
        id=row.id,
        fingerprint=row.fingerprint,
        status=row.status,
        alertname=row.alertname,
        model=model.name if model else None,
        version=version.version if version else None,
        module=row.module,
        labels=row.labels,
        annotations=row.annotations,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


_Links = dict[tuple[str | None, str], tuple[Model | None, ModelVersion | None]]


def _link(
    session: Session, actor: Actor, alert: AlertIn, cache: _Links
) -> tuple[Model | None, ModelVersion | None]:
    """Find the model and version the alert's labels name, if the actor may see them."""
    key = (alert.labels.get("model"), alert.labels.get("version", ""))
    if key not in cache:
        cache[key] = _find(session, actor, alert)
    return cache[key]


def _find(
    session: Session, actor: Actor, alert: AlertIn
) -> tuple[Model | None, ModelVersion | None]:
    name = alert.labels.get("model")
    model = session.scalars(select(Model).where(Model.name == name)).one_or_none() if name else None
    if model is None or not can_see(session, actor, model):
        return None, None
    raw = alert.labels.get("version", "")
    if not raw.isdigit():
        return model, None
    version = session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == int(raw)
        )
    ).one_or_none()
    return model, version


def _open(session: Session, fingerprint: str) -> Incident | None:
    return session.scalars(
        select(Incident)
        .where(Incident.fingerprint == fingerprint, Incident.status == "open")
        .order_by(Incident.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


def _record(session: Session, actor: Actor, alert: AlertIn, links: _Links) -> Incident | None:
    current = _open(session, alert.fingerprint)
    now = utcnow()
    if alert.status == "firing":
        if current is not None:
            current.annotations, current.updated_at = dict(alert.annotations), now
            return current
        model, version = _link(session, actor, alert, links)
        incident = Incident(
            fingerprint=alert.fingerprint,
            status="open",
            alertname=alert.labels.get("alertname", "unknown")[:128],
            model_id=model.id if model else None,
            version_id=version.id if version else None,
            module=(alert.labels.get("module") or None),
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
            ends_at=None,
            created_at=now,
            updated_at=now,
        )
        session.add(incident)
        session.flush()
        audit.append(
            session,
            actor=actor.name,
            action="incident.open",
            model=model.name if model else None,
            version=version.version if version else None,
            payload={
                "incident": incident.id,
                "fingerprint": alert.fingerprint,
                "alertname": incident.alertname,
                "module": incident.module,
            },
        )
        return incident
    if current is None:
        return None
    current.status, current.ends_at, current.updated_at = "resolved", alert.ends_at or now, now
    session.flush()
    model = session.get(Model, current.model_id) if current.model_id is not None else None
    version = session.get(ModelVersion, current.version_id) if current.version_id else None
    audit.append(
        session,
        actor=actor.name,
        action="incident.resolve",
        model=model.name if model else None,
        version=version.version if version else None,
        payload={"incident": current.id, "fingerprint": current.fingerprint},
    )
    return current


def record_alerts(db: Database, actor: Actor, alerts: list[AlertIn]) -> list[IncidentInfo]:
    """Record one Alertmanager webhook's alerts in one transaction.

    Alerts naming a model the actor may not see are recorded without a model link.

    Returns:
        The incidents opened, refreshed or resolved, in alert order.

    Raises:
        PermissionDenied: reader.
    """
    require_writer(actor)

    def work(session: Session) -> list[IncidentInfo]:
        links: _Links = {}  # one webhook's alerts usually name one model version
        touched = [_record(session, actor, alert, links) for alert in alerts]
        return [_info(session, i) for i in touched if i is not None]

    return db.write(work)


def list_incidents(
    db: Database, actor: Actor, *, model: str | None = None, status: str | None = None
) -> list[IncidentInfo]:
    """Return incidents newest first; non-admins see only those of their team's models.

    Raises:
        NotFound: unknown or invisible ``model``.
    """
    with db.read() as session:
        query = select(Incident)
        if model is not None:
            query = query.where(Incident.model_id == visible_model(session, actor, model).id)
        elif actor.role != "admin":
            own = (
                select(Model.id).join(Team, Team.id == Model.team_id).where(Team.name == actor.team)
            )
            query = query.where(Incident.model_id.in_(own))
        if status is not None:
            query = query.where(Incident.status == status)
        return [_info(session, r) for r in session.scalars(query.order_by(Incident.id.desc()))]


__all__ = ["list_incidents", "record_alerts"]
