"""Automatic rollback: an alias's policy moves it back when an incident opens on what it serves.

The decision runs inside the transaction that opens (or refreshes) the incident, so the incident,
the alias move and the audit events commit together or not at all. One decision per incident and
alias is stored under a unique constraint: a restarted sidecar, or Alertmanager repeating the
notification, never acts twice. Safety rules: the alias must still serve the incident's version
(the move checks the expected version), at most one automatic move per alias per cool-down, and
the target is the newest version that served the alias without an incident, is not archived and
has no open incident; without one, nothing moves (outcome ``no_target``). A dry-run policy
records what it would have done and moves nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import InvalidInput, NotFound
from registry.loop_schemas import AutoRollbackInfo, RollbackPolicyIn, RollbackPolicyInfo
from registry.models import (
    Alias,
    AliasMove,
    AutoRollback,
    Incident,
    Model,
    ModelVersion,
    RollbackPolicy,
    utcnow,
)
from registry.schemas import Actor
from registry.service._access import require_writer, visible_model
from registry.service._input import check_slug
from registry.service.aliases import rollback_in

AUTO_ACTOR = Actor(name="mmgov-auto-rollback", team=None, role="admin")
"""Who automatic moves are recorded as."""

_log = logging.getLogger("mmgov.auto_rollback")


# --- the decision --------------------------------------------------------------------------------


def consider_rollback(session: Session, incident: Incident) -> None:
    """Apply the rollback policies of the aliases serving ``incident``'s version, in ``session``.

    Never raises a registry error into the caller: recording the incident matters more than
    the automatic action (a failed action is logged, and retried on the next notification).
    """
    if incident.model_id is None or incident.version_id is None or incident.status != "open":
        return
    found = session.execute(
        select(RollbackPolicy, Alias)
        .join(Alias, Alias.id == RollbackPolicy.alias_id)
        .where(Alias.model_id == incident.model_id, Alias.version_id == incident.version_id)
        .order_by(Alias.name)
    ).all()
    for policy, alias in found:
        if not _matches(policy, incident):
            continue
        try:
            with session.begin_nested():
                _decide(session, policy, alias, incident)
        except Exception:  # the incident must be recorded whatever the policy does
            _log.exception("automatic rollback of alias %s failed on incident %s",
                           alias.name, incident.id)


def _matches(policy: RollbackPolicy, incident: Incident) -> bool:
    if policy.alertnames and incident.alertname not in policy.alertnames:
        return False
    if policy.severities and incident.labels.get("severity") not in policy.severities:
        return False
    firing = utcnow() - incident.starts_at
    return firing >= timedelta(seconds=policy.min_firing_seconds)


def _decide(session: Session, policy: RollbackPolicy, alias: Alias, incident: Incident) -> None:
    taken = session.scalars(
        select(AutoRollback.id).where(
            AutoRollback.incident_id == incident.id, AutoRollback.alias_id == alias.id
        )
    ).first()
    if taken is not None:
        return
    model = session.scalars(
        select(Model).where(Model.id == alias.model_id).with_for_update()
    ).one()
    session.refresh(alias)
    if alias.version_id != incident.version_id:
        return  # moved meanwhile: the incident is no longer about what the alias serves
    current = _number(session, alias.version_id)
    now = utcnow()
    counted = "dry_run" if policy.dry_run else "rolled_back"
    last = session.scalars(
        select(AutoRollback)
        .where(AutoRollback.alias_id == alias.id, AutoRollback.outcome == counted)
        .order_by(AutoRollback.at.desc())
        .limit(1)
    ).first()
    target: int | None = None
    move_id: int | None = None
    if last is not None and now - last.at < timedelta(seconds=policy.cooldown_seconds):
        outcome = "cooldown"
        detail = (
            f"alias {alias.name!r} was moved automatically at {last.at.isoformat()} "
            f"(incident {last.incident_id}); cool-down {policy.cooldown_seconds} s"
        )
    else:
        target = _last_good(session, alias)
        if target is None:
            outcome = "no_target"
            detail = (
                f"no earlier version served alias {alias.name!r} without incidents "
                "(or they are archived or have open incidents)"
            )
        elif policy.dry_run:
            outcome = "dry_run"
            detail = f"would roll alias {alias.name!r} back from {current} to {target}"
        else:
            outcome = "rolled_back"
            reason = (
                f"automatic rollback: incident {incident.id} ({incident.alertname}) "
                f"on version {current}"
            )
            _info, move_id = rollback_in(
                session, AUTO_ACTOR, model, alias=alias.name, to=target,
                expected_version=current, reason=reason,
            )
            detail = f"rolled alias {alias.name!r} back from {current} to {target}"
            incident.answered_by_move, incident.updated_at = move_id, now
    event = chain.append(
        session,
        actor=AUTO_ACTOR.name,
        action="alias.auto_rollback",
        model=model.name,
        version=current,
        payload={
            "alias": alias.name,
            "incident": incident.id,
            "alertname": incident.alertname,
            "outcome": outcome,
            "before": current,
            "after": target,
            "move": move_id,
            "detail": detail,
        },
    )
    if move_id is not None:
        chain.append(
            session,
            actor=AUTO_ACTOR.name,
            action="incident.link",
            model=model.name,
            version=current,
            payload={
                "incident": incident.id,
                "fingerprint": incident.fingerprint,
                "move": move_id,
                "alias": alias.name,
                "move_action": "rollback",
            },
        )
    session.add(
        AutoRollback(
            alias_id=alias.id,
            incident_id=incident.id,
            outcome=outcome,
            from_version=current,
            to_version=target,
            move_id=move_id,
            detail=detail,
            at=now,
            audit_seq=event.seq,
        )
    )
    session.flush()


def _number(session: Session, version_id: int) -> int:
    return session.scalars(select(ModelVersion.version).where(ModelVersion.id == version_id)).one()


def _last_good(session: Session, alias: Alias) -> int | None:
    """The newest earlier version that served ``alias`` with no incident starting meanwhile.

    It must not be archived and must have no open incident.
    """
    moves = session.execute(
        select(AliasMove.version_id, AliasMove.at)
        .where(AliasMove.alias_id == alias.id)
        .order_by(AliasMove.at, AliasMove.id)
    ).all()
    spells = [
        (m.version_id, m.at, moves[i + 1].at if i + 1 < len(moves) else None)
        for i, m in enumerate(moves)
    ]
    tried: set[int] = {alias.version_id}
    for version_id, _start, _end in reversed(spells):
        if version_id in tried:
            continue
        tried.add(version_id)
        version = session.get(ModelVersion, version_id)
        if version is None or version.stage == "archived":
            continue
        open_ = select(Incident.id).where(
            Incident.version_id == version_id, Incident.status == "open"
        )
        if session.scalars(open_.limit(1)).first() is not None:
            continue
        own = [(s, e) for v, s, e in spells if v == version_id]
        if any(_incident_during(session, version_id, s, e) for s, e in own):
            continue
        return version.version
    return None


def _incident_during(
    session: Session, version_id: int, start: datetime, end: datetime | None
) -> bool:
    query = select(Incident.id).where(
        Incident.version_id == version_id, Incident.starts_at >= start
    )
    if end is not None:
        query = query.where(Incident.starts_at < end)
    return session.scalars(query.limit(1)).first() is not None


# --- policies ------------------------------------------------------------------------------------


def _policy_info(model: str, alias: str, row: RollbackPolicy) -> RollbackPolicyInfo:
    return RollbackPolicyInfo(
        model=model,
        alias=alias,
        alertnames=list(row.alertnames),
        severities=list(row.severities),
        min_firing_seconds=row.min_firing_seconds,
        cooldown_seconds=row.cooldown_seconds,
        dry_run=row.dry_run,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # what RollbackPolicyIn's schema states


def _check_names(names: list[str], what: str) -> list[str]:
    for name in names:
        if not isinstance(name, str) or not 1 <= len(name) <= 128 or _CONTROL.search(name):
            raise InvalidInput(
                f"{what} must be 1-128 characters without control characters, got {name!r}"
            )
    return sorted(set(names))


def _existing_alias(session: Session, model: Model, alias: str) -> Alias:
    row = session.scalars(
        select(Alias).where(Alias.model_id == model.id, Alias.name == alias)
    ).one_or_none()
    if row is None:
        raise NotFound(
            f"model {model.name!r} has no alias {alias!r}: a rollback policy needs an alias "
            "that exists (promote a version to it first)"
        )
    return row


def set_rollback_policy(
    db: Database, actor: Actor, *, model: str, alias: str, rules: RollbackPolicyIn
) -> RollbackPolicyInfo:
    """Create or replace ``alias``'s automatic rollback policy.

    Returns:
        The policy in force.

    Raises:
        PermissionDenied: reader. NotFound: model, or an alias that does not exist.
        InvalidInput: bad alias name, alert name or severity.
    """
    require_writer(actor)
    check_slug(alias, "alias name")
    alertnames = _check_names(list(rules.alertnames), "alert names")
    severities = _check_names(list(rules.severities), "severities")

    def work(session: Session) -> RollbackPolicyInfo:
        row = visible_model(session, actor, model, lock=True)
        target = _existing_alias(session, row, alias)
        policy = session.scalars(
            select(RollbackPolicy).where(RollbackPolicy.alias_id == target.id)
        ).one_or_none()
        before = _policy_info(model, alias, policy).model_dump(mode="json") if policy else None
        if policy is None:
            policy = RollbackPolicy(alias_id=target.id)
            session.add(policy)
        policy.alertnames, policy.severities = alertnames, severities
        policy.min_firing_seconds = rules.min_firing_seconds
        policy.cooldown_seconds = rules.cooldown_seconds
        policy.dry_run = rules.dry_run
        policy.updated_by, policy.updated_at = actor.name, utcnow()
        session.flush()
        info = _policy_info(model, alias, policy)
        after = info.model_dump(mode="json", exclude={"updated_at", "updated_by"})
        if before is not None:
            before = {k: v for k, v in before.items() if k not in ("updated_at", "updated_by")}
        chain.append(
            session,
            actor=actor.name,
            action="rollback_policy.set",
            model=model,
            payload={"alias": alias, "before": before, "after": after},
        )
        return info

    return db.write(work)


def remove_rollback_policy(db: Database, actor: Actor, *, model: str, alias: str) -> None:
    """Remove ``alias``'s automatic rollback policy.

    Raises:
        PermissionDenied: reader. NotFound: model, alias, or no policy on it.
    """
    require_writer(actor)
    check_slug(alias, "alias name")

    def work(session: Session) -> None:
        row = visible_model(session, actor, model, lock=True)
        target = _existing_alias(session, row, alias)
        policy = session.scalars(
            select(RollbackPolicy).where(RollbackPolicy.alias_id == target.id)
        ).one_or_none()
        if policy is None:
            raise NotFound(f"alias {alias!r} of model {model!r} has no rollback policy")
        before = _policy_info(model, alias, policy).model_dump(mode="json")
        session.delete(policy)
        chain.append(
            session,
            actor=actor.name,
            action="rollback_policy.remove",
            model=model,
            payload={"alias": alias, "before": before},
        )

    db.write(work)


def list_rollback_policies(db: Database, actor: Actor, model: str) -> list[RollbackPolicyInfo]:
    """Return the model's automatic rollback policies by alias.

    Raises:
        NotFound: model.
    """
    with db.read() as session:
        row = visible_model(session, actor, model)
        found = session.execute(
            select(RollbackPolicy, Alias.name)
            .join(Alias, Alias.id == RollbackPolicy.alias_id)
            .where(Alias.model_id == row.id)
            .order_by(Alias.name)
        ).all()
        return [_policy_info(model, name, p) for p, name in found]


def list_auto_rollbacks(
    db: Database, actor: Actor, model: str, *, alias: str | None = None
) -> list[AutoRollbackInfo]:
    """Return the decisions rollback policies took on the model's incidents, newest first.

    Raises:
        NotFound: model.
    """
    with db.read() as session:
        row = visible_model(session, actor, model)
        query = (
            select(AutoRollback, Alias.name)
            .join(Alias, Alias.id == AutoRollback.alias_id)
            .where(Alias.model_id == row.id)
        )
        if alias is not None:
            query = query.where(Alias.name == alias)
        found = session.execute(query.order_by(AutoRollback.id.desc())).all()
        return [
            AutoRollbackInfo(
                id=d.id,
                model=model,
                alias=name,
                incident=d.incident_id,
                outcome=d.outcome,
                from_version=d.from_version,
                to_version=d.to_version,
                move=d.move_id,
                detail=d.detail,
                at=d.at,
                audit_seq=d.audit_seq,
            )
            for d, name in found
        ]


__all__ = [
    "AUTO_ACTOR",
    "consider_rollback",
    "list_auto_rollbacks",
    "list_rollback_policies",
    "remove_rollback_policy",
    "set_rollback_policy",
]
