"""Deployments: serving instances report what they loaded; the registry compares and lists them.

A heartbeat names the instance, the version it serves and the sha256 of each module's tensors
as loaded in memory. The registry keeps one row per instance with its last heartbeat. A plain
refresh appends no audit event (it would drown the log); the first heartbeat, a change of
version and a change of what mismatches do. An instance whose loaded config or modules differ
from the registered version opens an incident (``MMGovLoadedModulesMismatch``).
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import InvalidInput, PermissionDenied, TooManyRequests
from registry.loop_schemas import (
    MAX_MODULES,
    AliasServing,
    DeploymentInfo,
    HeartbeatIn,
    ModelStatus,
)
from registry.models import Alias, Deployment, Incident, Model, ModelVersion, utcnow
from registry.schemas import Actor
from registry.service._access import visible_model
from registry.service._input import check_slug
from registry.service._lookup import version_row
from registry.service.incidents import open_incident

MIN_HEARTBEAT_INTERVAL = 1.0
"""Seconds: a heartbeat from an instance sooner than this after its last one is refused (429)."""
STALE_AFTER = 60.0
"""Seconds without a heartbeat after which `model_status` calls an instance stale."""
MISMATCH_ALERT = "MMGovLoadedModulesMismatch"
"""The alert name of the incident a mismatching instance opens."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_INSTANCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


def _check(heartbeat: HeartbeatIn) -> None:
    """Validate what pydantic already checks at the API, for callers that build it in code."""
    if not _INSTANCE.fullmatch(heartbeat.instance):
        raise InvalidInput(
            f"invalid instance {heartbeat.instance!r}: 1-128 letters, digits, '.', '_', ':', "
            "'@' or '-'"
        )
    if heartbeat.alias is not None:
        check_slug(heartbeat.alias, "alias name")
    if not _SHA256.fullmatch(heartbeat.config_hash):
        raise InvalidInput("config_hash must be 64 lowercase hex characters (a sha256)")
    if len(heartbeat.module_hashes) > MAX_MODULES:
        raise InvalidInput(f"a heartbeat reports at most {MAX_MODULES} module hashes")
    bad = [
        m for m, h in heartbeat.module_hashes.items()
        if not 1 <= len(m) <= 256 or not isinstance(h, str) or not _SHA256.fullmatch(h)
    ]
    if bad:
        raise InvalidInput(
            f"malformed module hashes for {bad[:3]!r}: each is a module name (1-256 "
            "characters) and 64 lowercase hex characters"
        )


def _mismatched(version: ModelVersion, heartbeat: HeartbeatIn) -> list[str]:
    out = ["config"] if heartbeat.config_hash != version.config_hash else []
    registered = version.module_hashes or {}
    if registered:  # remote weights record no module hashes: nothing to compare
        modules = set(registered) | set(heartbeat.module_hashes)
        out += sorted(m for m in modules if registered.get(m) != heartbeat.module_hashes.get(m))
    return out


def _info(model: str, row: Deployment, version: int, stale_after: float | None) -> DeploymentInfo:
    stale = stale_after is not None and utcnow() - row.last_heartbeat > timedelta(
        seconds=stale_after
    )
    return DeploymentInfo(
        model=model,
        instance=row.instance,
        alias=row.alias,
        version=version,
        config_hash=row.config_hash,
        matches=not row.mismatched,
        mismatched=list(row.mismatched),
        first_seen=row.first_seen,
        last_heartbeat=row.last_heartbeat,
        heartbeats=row.heartbeats,
        reported_by=row.reported_by,
        stale=stale,
    )


def record_heartbeat(
    db: Database,
    actor: Actor,
    *,
    model: str,
    heartbeat: HeartbeatIn,
    min_interval: float = MIN_HEARTBEAT_INTERVAL,
) -> DeploymentInfo:
    """Record one heartbeat of a serving instance of ``model``.

    Returns:
        The instance as recorded, with what mismatches the registered version.

    Raises:
        PermissionDenied: a reader token without the ``deployments`` scope.
        NotFound: the model (or another team's), or an unknown version.
        InvalidInput: malformed instance, alias or hashes.
        TooManyRequests: the instance's last heartbeat was less than ``min_interval`` ago.
    """
    if actor.role == "reader" and actor.scope != "deployments":
        raise PermissionDenied(
            f"{actor.name} may not post heartbeats: use a token with scope 'deployments'"
        )
    _check(heartbeat)

    def work(session: Session) -> DeploymentInfo:
        owner = visible_model(session, actor, model, lock=True)
        version = version_row(session, owner, heartbeat.version)
        row = session.scalars(
            select(Deployment).where(
                Deployment.model_id == owner.id, Deployment.instance == heartbeat.instance
            )
        ).one_or_none()
        now = utcnow()
        if row is not None and now - row.last_heartbeat < timedelta(seconds=min_interval):
            raise TooManyRequests(
                f"instance {heartbeat.instance!r} of model {model!r} sent a heartbeat "
                f"{(now - row.last_heartbeat).total_seconds():.2f} s ago; at most one per "
                f"{min_interval:g} s"
            )
        mismatched = _mismatched(version, heartbeat)
        if row is None:
            action = "deployment.register"
            row = Deployment(
                model_id=owner.id,
                instance=heartbeat.instance,
                first_seen=now,
                heartbeats=0,
            )
            session.add(row)
            before = None
        else:
            before = {
                "version": _number(session, row.version_id),
                "mismatched": list(row.mismatched),
                "alias": row.alias,
            }
            action = "deployment.change"
        row.alias, row.version_id = heartbeat.alias, version.id
        row.config_hash = heartbeat.config_hash
        row.module_hashes = dict(heartbeat.module_hashes)
        row.mismatched = mismatched
        row.last_heartbeat, row.heartbeats = now, row.heartbeats + 1
        row.reported_by = actor.name
        session.flush()
        after = {"version": version.version, "mismatched": mismatched, "alias": heartbeat.alias}
        if before != after:
            chain.append(
                session,
                actor=actor.name,
                action=action,
                model=model,
                version=version.version,
                payload={"instance": heartbeat.instance, "before": before, "after": after},
            )
            if mismatched and (before is None or before["mismatched"] != mismatched
                               or before["version"] != version.version):
                _open_mismatch(session, actor, owner, version, heartbeat, mismatched)
        return _info(model, row, version.version, None)

    return db.write(work)


def _open_mismatch(
    session: Session,
    actor: Actor,
    owner: Model,
    version: ModelVersion,
    heartbeat: HeartbeatIn,
    mismatched: list[str],
) -> None:
    fingerprint = f"deployment:{owner.id}:{heartbeat.instance}:{version.version}"[:128]
    already = session.scalars(
        select(Incident.id).where(Incident.fingerprint == fingerprint, Incident.status == "open")
    ).first()
    if already is not None:
        return
    shown = ", ".join(mismatched[:5]) + (f" and {len(mismatched) - 5} more"
                                         if len(mismatched) > 5 else "")
    open_incident(
        session,
        actor,
        fingerprint=fingerprint,
        model=owner,
        version=version,
        labels={
            "alertname": MISMATCH_ALERT,
            "model": owner.name,
            "version": str(version.version),
            "instance": heartbeat.instance,
            "severity": "critical",
        },
        annotations={
            "summary": f"instance {heartbeat.instance} of {owner.name} v{version.version} "
            f"loaded something else than the registered version: {shown}",
        },
        starts_at=utcnow(),
    )


def _number(session: Session, version_id: int) -> int:
    return session.scalars(select(ModelVersion.version).where(ModelVersion.id == version_id)).one()


def list_deployments(
    db: Database,
    actor: Actor,
    model: str,
    *,
    stale_after: float = STALE_AFTER,
    version: int | None = None,
) -> list[DeploymentInfo]:
    """Return the model's serving instances by name (those serving ``version`` if given), each
    marked stale or not.

    Raises:
        NotFound: model.
    """
    with db.read() as session:
        owner = visible_model(session, actor, model)
        query = (
            select(Deployment, ModelVersion.version)
            .join(ModelVersion, ModelVersion.id == Deployment.version_id)
            .where(Deployment.model_id == owner.id)
        )
        if version is not None:
            query = query.where(ModelVersion.version == version)
        found = session.execute(query.order_by(Deployment.instance)).all()
        return [_info(model, d, v, stale_after) for d, v in found]


def model_status(
    db: Database, actor: Actor, model: str, *, stale_after: float = STALE_AFTER
) -> ModelStatus:
    """Return what serves: each alias's version and instances, stale and mismatching instances.

    Raises:
        NotFound: model. InvalidInput: a negative ``stale_after``.
    """
    if stale_after < 0:
        raise InvalidInput("stale_after must be >= 0 seconds")
    deployments = list_deployments(db, actor, model, stale_after=stale_after)
    with db.read() as session:
        owner = visible_model(session, actor, model)
        aliases = session.execute(
            select(Alias.name, ModelVersion.version)
            .join(ModelVersion, ModelVersion.id == Alias.version_id)
            .where(Alias.model_id == owner.id)
            .order_by(Alias.name)
        ).all()
    live = [d for d in deployments if not d.stale]
    serving = [
        AliasServing(
            alias=name,
            version=version,
            instances=sum(1 for d in live if d.alias == name and d.version == version),
            serving_other=[d.instance for d in live if d.alias == name and d.version != version],
        )
        for name, version in aliases
    ]
    return ModelStatus(
        model=model,
        aliases=serving,
        deployments=deployments,
        stale=[d.instance for d in deployments if d.stale],
        mismatched=[d.instance for d in deployments if not d.matches],
        stale_after_seconds=stale_after,
    )


__all__ = [
    "MIN_HEARTBEAT_INTERVAL",
    "MISMATCH_ALERT",
    "STALE_AFTER",
    "list_deployments",
    "model_status",
    "record_heartbeat",
]
