"""Incidents: Alertmanager alerts recorded against the model, version and module they name.

A firing alert opens an incident unless one with the same fingerprint is already open (repeat
notifications only refresh its annotations); a resolved alert resolves the open incident with
its fingerprint, and is ignored when none is open.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import Alias, AliasMove, Incident, Model, ModelVersion, Team, utcnow
from registry.schemas import Actor, AlertIn, AlertRejected, AlertsOutcome, IncidentInfo, Page
from registry.service._access import can_see, require_writer, visible_model
from registry.service._input import check_limit, parse_cursor
from registry.service._lookup import version_row
from registry.service.auto_rollback import consider_rollback
from registry.text import readable, readable_data

_NOT_BLANK = re.compile("[^\x00\t\n\v\f\r ]")  # what the API schema states, too
STATUSES = ("open", "acknowledged", "resolved")
"""Status filters: ``acknowledged`` is an open incident someone acknowledged."""


def _info(session: Session, row: Incident) -> IncidentInfo:
    model = session.get(Model, row.model_id) if row.model_id is not None else None
    version = session.get(ModelVersion, row.version_id) if row.version_id is not None else None
    return IncidentInfo(
        id=row.id,
        # Rows written before text was checked at the boundary may hold lone surrogates.
        fingerprint=readable(row.fingerprint),
        status=row.status,
        alertname=readable(row.alertname),
        model=model.name if model else None,
        version=version.version if version else None,
        module=readable(row.module) if row.module is not None else None,
        labels=readable_data(row.labels),
        annotations=readable_data(row.annotations),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_by=row.resolved_by,
        resolution_note=row.resolution_note,
        answered_by_move=row.answered_by_move,
    )


_Links = dict[tuple[str | None, int | None], tuple[Model | None, ModelVersion | None]]


def _link(
    session: Session, actor: Actor, alert: AlertIn, cache: _Links
) -> tuple[Model | None, ModelVersion | None]:
    """Find the model and version the alert's labels name, if the actor may see them."""
    key = (alert.labels.get("model"), alert.version_number)
    if key not in cache:
        cache[key] = _find(session, actor, alert)
    return cache[key]


def _find(
    session: Session, actor: Actor, alert: AlertIn
) -> tuple[Model | None, ModelVersion | None]:
    name = alert.labels.get("model")
    if not name or len(name) > 64:  # longer names fit no model (String(64))
        return None, None
    model = session.scalars(select(Model).where(Model.name == name)).one_or_none()
    if model is None or not can_see(session, actor, model):
        return None, None
    number = alert.version_number
    if number is None:
        return model, None
    version = session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == number
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


def open_incident(
    session: Session,
    actor: Actor,
    *,
    fingerprint: str,
    model: Model | None,
    version: ModelVersion | None,
    labels: dict[str, str],
    annotations: dict[str, str],
    starts_at: datetime,
) -> Incident:
    """Open an incident in ``session`` with its audit event, then let rollback policies act.

    Every incident opens here (Alertmanager alerts, loaded-weights mismatches), so an alias's
    automatic rollback policy sees each one, whichever caller recorded it.

    Returns:
        The new incident (flushed).
    """
    now = utcnow()
    incident = Incident(
        fingerprint=fingerprint,
        status="open",
        alertname=labels.get("alertname", "unknown")[:128],
        model_id=model.id if model else None,
        version_id=version.id if version else None,
        module=(labels.get("module") or None),
        labels=labels,
        annotations=annotations,
        starts_at=starts_at,
        ends_at=None,
        created_at=now,
        updated_at=now,
    )
    session.add(incident)
    session.flush()
    chain.append(
        session,
        actor=actor.name,
        action="incident.open",
        model=model.name if model else None,
        version=version.version if version else None,
        payload={
            "incident": incident.id,
            "fingerprint": fingerprint,
            "alertname": incident.alertname,
            "module": incident.module,
        },
    )
    consider_rollback(session, incident)
    return incident


def _record(session: Session, actor: Actor, alert: AlertIn, links: _Links) -> Incident | None:
    current = _open(session, alert.fingerprint)
    now = utcnow()
    if alert.status == "firing":
        if current is not None:
            current.annotations, current.updated_at = dict(alert.annotations), now
            # A repeat notification: the alert may have fired long enough by now.
            consider_rollback(session, current)
            return current
        model, version = _link(session, actor, alert, links)
        return open_incident(
            session,
            actor,
            fingerprint=alert.fingerprint,
            model=model,
            version=version,
            labels=dict(alert.labels),
            annotations=dict(alert.annotations),
            starts_at=alert.starts_at,
        )
    if current is None:
        return None
    current.status, current.ends_at, current.updated_at = "resolved", alert.ends_at or now, now
    session.flush()
    model = session.get(Model, current.model_id) if current.model_id is not None else None
    version = session.get(ModelVersion, current.version_id) if current.version_id else None
    chain.append(
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


def _parse_alert(index: int, raw: Any) -> AlertIn | AlertRejected:
    try:
        return AlertIn.model_validate(raw)
    except ValidationError as exc:
        errors = [
            {"loc": readable(".".join(str(p) for p in e["loc"])) or "alert",
             "msg": readable(e["msg"])}
            for e in exc.errors(include_input=False, include_url=False)
        ]
    fingerprint = raw.get("fingerprint") if isinstance(raw, dict) else None
    if not isinstance(fingerprint, str) or not 0 < len(fingerprint) <= 128:
        fingerprint = None
    return AlertRejected(
        index=index, fingerprint=readable(fingerprint) if fingerprint else None, errors=errors
    )


def record_webhook(db: Database, actor: Actor, alerts: Sequence[Any]) -> AlertsOutcome:
    """Validate each alert of a webhook on its own and record the good ones in one transaction.

    An alert that fails validation (a naive or out-of-range timestamp, a lone surrogate, a
    label too long for its column…) is reported in ``rejected`` and changes nothing; the others
    are recorded as ``record_alerts`` does. A ``version`` label that is not a version number
    (ASCII digits, 1..2^31-1) leaves the incident without a version link.

    Returns:
        The incidents touched and the alerts refused, each in alert order.

    Raises:
        PermissionDenied: reader.
    """
    require_writer(actor)
    good: list[AlertIn] = []
    rejected: list[AlertRejected] = []
    for index, raw in enumerate(alerts):
        parsed = _parse_alert(index, raw)
        if isinstance(parsed, AlertIn):
            good.append(parsed)
        else:
            rejected.append(parsed)
    incidents = record_alerts(db, actor, good) if good else []
    return AlertsOutcome(incidents=incidents, rejected=rejected)


def list_incidents(
    db: Database,
    actor: Actor,
    *,
    model: str | None = None,
    status: str | None = None,
    module: str | None = None,
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[IncidentInfo]:
    """Return incidents newest first, ``limit`` at a time (keyset on the id); non-admins see
    only those of their team's models.

    ``status`` is open, acknowledged (open and acknowledged) or resolved; ``version`` without
    ``model`` matches that version number of any visible model; ``since``/``until`` bound when
    the incident started.

    Raises:
        NotFound: unknown or invisible ``model``, or no such version.
        InvalidInput: unknown status, a naive time (a reversed range is empty), a bad limit or
        cursor.
    """
    check_limit(limit)
    before = parse_cursor(cursor)
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}: use one of {', '.join(STATUSES)}")
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("--since and --until need a timezone (e.g. 2024-05-01T12:00:00Z)")
    if since is not None and until is not None and since > until:
        return Page(items=[])  # an empty range
    with db.read() as session:
        query = select(Incident)
        if model is not None:
            owner = visible_model(session, actor, model)
            query = query.where(Incident.model_id == owner.id)
            if version is not None:
                query = query.where(Incident.version_id == version_row(session, owner, version).id)
        else:
            if version is not None:  # that version number of any model the actor sees
                numbered = select(ModelVersion.id).where(ModelVersion.version == version)
                query = query.where(Incident.version_id.in_(numbered))
            if actor.role != "admin":
                own = select(Model.id).join(Team, Team.id == Model.team_id).where(
                    Team.name == actor.team
                )
                query = query.where(Incident.model_id.in_(own))
        if status == "acknowledged":
            query = query.where(Incident.status == "open", Incident.acknowledged_at.is_not(None))
        elif status is not None:
            query = query.where(Incident.status == status)
        if module is not None:
            query = query.where(Incident.module == module)
        if since is not None:
            query = query.where(Incident.starts_at >= since)
        if until is not None:
            query = query.where(Incident.starts_at <= until)
        if before is not None:
            query = query.where(Incident.id < before)
        rows = session.scalars(query.order_by(Incident.id.desc()).limit(limit + 1)).all()
        items = [_info(session, r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[IncidentInfo](items=items, next_cursor=str(items[-1].id) if more else None)


def _visible_incident(session: Session, actor: Actor, incident_id: int) -> Incident:
    """Return the incident, locked, if the actor may see it (unlinked ones: admins only).

    Raises:
        NotFound: no such incident, or one of another team (never leaked).
    """
    row = session.scalars(
        select(Incident).where(Incident.id == incident_id).with_for_update()
    ).one_or_none()
    if row is not None:
        model = session.get(Model, row.model_id) if row.model_id is not None else None
        if (model is None and actor.role == "admin") or (
            model is not None and can_see(session, actor, model)
        ):
            return row
    raise NotFound(f"incident {incident_id} not found")


def get_incident(db: Database, actor: Actor, incident_id: int) -> IncidentInfo:
    """Return one incident.

    Raises:
        NotFound: no such incident, or one of another team.
    """
    with db.read() as session:
        return _info(session, _visible_incident(session, actor, incident_id))


def _check_note(note: str, what: str, *, required: bool = False) -> str:
    if required and not _NOT_BLANK.search(note):
        raise InvalidInput(f"{what} needs a note saying why")
    if len(note) > 10_000 or "\x00" in note:
        raise InvalidInput(f"a {what} note is at most 10,000 characters, without NUL")
    return note


def _audit(session: Session, actor: Actor, row: Incident, action: str, **extra: object) -> None:
    info = _info(session, row)
    chain.append(
        session,
        actor=actor.name,
        action=action,
        model=info.model,
        version=info.version,
        payload={"incident": row.id, "fingerprint": row.fingerprint, **extra},
    )


def acknowledge_incident(
    db: Database, actor: Actor, incident_id: int, *, note: str = ""
) -> IncidentInfo:
    """Record that someone is on an open incident.

    Returns:
        The incident afterwards.

    Raises:
        PermissionDenied: reader. NotFound: no such incident, or another team's.
        Conflict: resolved, or acknowledged already. InvalidInput: note too long.
    """
    require_writer(actor)
    _check_note(note, "acknowledgement")

    def work(session: Session) -> IncidentInfo:
        row = _visible_incident(session, actor, incident_id)
        if row.status != "open":
            raise Conflict(f"incident {incident_id} is resolved: reopen it first")
        if row.acknowledged_at is not None:
            raise Conflict(
                f"incident {incident_id} was acknowledged by {row.acknowledged_by} "
                f"at {row.acknowledged_at.isoformat()}"
            )
        now = utcnow()
        row.acknowledged_at, row.acknowledged_by, row.updated_at = now, actor.name, now
        session.flush()
        _audit(session, actor, row, "incident.acknowledge", note=note)
        return _info(session, row)

    return db.write(work)


def resolve_incident(db: Database, actor: Actor, incident_id: int, *, note: str) -> IncidentInfo:
    """Resolve an open incident by hand, saying why in ``note``.

    Returns:
        The incident afterwards.

    Raises:
        PermissionDenied: reader. NotFound: no such incident, or another team's.
        Conflict: already resolved. InvalidInput: empty or too long note.
    """
    require_writer(actor)
    _check_note(note, "resolution", required=True)

    def work(session: Session) -> IncidentInfo:
        row = _visible_incident(session, actor, incident_id)
        if row.status == "resolved":
            raise Conflict(f"incident {incident_id} is already resolved")
        now = utcnow()
        row.status, row.ends_at, row.updated_at = "resolved", now, now
        row.resolved_by, row.resolution_note = actor.name, note
        session.flush()
        _audit(session, actor, row, "incident.resolve", note=note, by_hand=True)
        return _info(session, row)

    return db.write(work)


def reopen_incident(
    db: Database, actor: Actor, incident_id: int, *, reason: str = ""
) -> IncidentInfo:
    """Reopen a resolved incident (its acknowledgement and resolution are cleared).

    Returns:
        The incident afterwards.

    Raises:
        PermissionDenied: reader. NotFound: no such incident, or another team's.
        Conflict: it is open, or another incident with its fingerprint is open.
        InvalidInput: reason too long.
    """
    require_writer(actor)
    _check_note(reason, "reopening")

    def work(session: Session) -> IncidentInfo:
        row = _visible_incident(session, actor, incident_id)
        if row.status == "open":
            raise Conflict(f"incident {incident_id} is open")
        other = _open(session, row.fingerprint)
        if other is not None:
            raise Conflict(
                f"incident {other.id} with the same fingerprint is open: work on that one"
            )
        now = utcnow()
        row.status, row.ends_at, row.updated_at = "open", None, now
        row.acknowledged_at = row.acknowledged_by = row.resolved_by = None
        row.resolution_note = None
        session.flush()
        _audit(session, actor, row, "incident.reopen", reason=reason)
        return _info(session, row)

    return db.write(work)


def link_incident(db: Database, actor: Actor, incident_id: int, *, move: int) -> IncidentInfo:
    """Link an incident to the promotion or rollback (`alias history` move) that answered it.

    Returns:
        The incident afterwards.

    Raises:
        PermissionDenied: reader. NotFound: no such incident or move, or another team's.
        InvalidInput: the move is of another model than the incident's.
    """
    require_writer(actor)

    def work(session: Session) -> IncidentInfo:
        row = _visible_incident(session, actor, incident_id)
        found = session.execute(
            select(AliasMove.id, Alias.model_id, Alias.name, AliasMove.action)
            .join(Alias, Alias.id == AliasMove.alias_id)
            .where(AliasMove.id == move)
        ).one_or_none()
        moved = session.get(Model, found.model_id) if found is not None else None
        if found is None or moved is None or not can_see(session, actor, moved):
            raise NotFound(f"alias move {move} not found")
        if row.model_id is not None and found.model_id != row.model_id:
            raise InvalidInput(
                f"alias move {move} is of model {moved.name!r}, not of the incident's model"
            )
        row.answered_by_move, row.updated_at = move, utcnow()
        session.flush()
        _audit(session, actor, row, "incident.link", move=move, alias=found.name,
               move_action=found.action)
        return _info(session, row)

    return db.write(work)


__all__ = [
    "STATUSES",
    "acknowledge_incident",
    "get_incident",
    "link_incident",
    "list_incidents",
    "open_incident",
    "record_alerts",
    "record_webhook",
    "reopen_incident",
    "resolve_incident",
]
