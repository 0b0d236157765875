"""Reading and checking the audit log through the service: list, verify, checkpoint."""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.audit.replay import compare_state
from registry.db import Database
from registry.errors import InvalidInput
from registry.models import AuditEvent, Model, Team
from registry.schemas import Actor, AuditEventInfo, AuditReport, Checkpoint, Page
from registry.service._access import visible_model
from registry.service._input import MAX_INT8, check_limit, parse_cursor


def _info(row: AuditEvent) -> AuditEventInfo:
    return AuditEventInfo(
        seq=row.seq,
        at=row.at,
        actor=row.actor,
        action=row.action,
        model=row.model,
        version=row.version,
        payload=row.payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


_ACTION = re.compile(r"[a-z_.]{0,64}")
"""An action filter: a prefix of action names such as ``alias.promote``."""


def list_audit(
    db: Database,
    actor: Actor,
    *,
    model: str | None = None,
    action: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[AuditEventInfo]:
    """Return audit events newest first, those whose action starts with ``action`` if given
    (``alias.`` for every alias move); non-admins see only events of their team's models.

    Raises:
        NotFound: unknown or invisible ``model``. InvalidInput: bad action, limit or cursor.
    """
    check_limit(limit)
    before = parse_cursor(cursor, maximum=MAX_INT8)
    if action is not None and not _ACTION.fullmatch(action):
        raise InvalidInput(
            f"invalid action filter {action[:64]!r}: a prefix such as alias. or version.register"
        )
    with db.read() as session:
        query = select(AuditEvent)
        if model is not None:
            visible_model(session, actor, model)
            query = query.where(AuditEvent.model == model)
        elif actor.role != "admin":
            own = (
                select(Model.name)
                .join(Team, Team.id == Model.team_id)
                .where(Team.name == actor.team)
            )
            query = query.where(AuditEvent.model.in_(own))
        if action:
            query = query.where(AuditEvent.action.startswith(action, autoescape=True))
        if before is not None:
            query = query.where(AuditEvent.seq < before)
        rows = session.scalars(query.order_by(AuditEvent.seq.desc()).limit(limit + 1)).all()
        items = [_info(r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page[AuditEventInfo](items=items, next_cursor=str(items[-1].seq) if more else None)


def _older_checkpoints(session: Session, points: Sequence[Checkpoint], top: AuditReport
                       ) -> AuditReport | None:
    for point in points:
        found = session.scalar(select(AuditEvent.hash).where(AuditEvent.seq == point.seq))
        if point.seq > 0 and found != point.hash:
            return top.model_copy(update={
                "ok": False, "first_bad_seq": point.seq,
                "reason": f"hash differs from the checkpoint at seq {point.seq}: "
                "history up to it was rewritten",
            })
    return None


def verify_audit(
    db: Database,
    actor: Actor,
    *,
    checkpoint: Checkpoint | None = None,
    checkpoints: Sequence[Checkpoint] = (),
) -> AuditReport:
    """Recompute the whole chain, then replay it and compare the tables with what it says.

    Any role may; the report reveals hashes and counts, and to an admin the row that differs.
    ``checkpoints`` (signatures already checked, see ``registry.audit.signing``) must all match.

    Returns:
        The report; ``ok`` False names the first bad seq and the reason, or (chain intact)
        ``table`` and the first row that differs from the replayed log.
    """
    points = sorted([*checkpoints, *([checkpoint] if checkpoint else [])], key=lambda p: p.seq)
    with db.read() as session:
        # The chain is checked against the newest checkpoint (which also catches a truncated
        # tail); once it holds, each older one is one lookup.
        report = chain.verify(session, checkpoint=points[-1] if points else None)
        if not report.ok:
            return report
        older = _older_checkpoints(session, points[:-1], report)
        if older is not None:
            return older
        difference = compare_state(session)
    if difference is None:
        return report
    # The difference names models, aliases and tokens of every team: only an admin reads it.
    reason = str(difference) if actor.role == "admin" else (
        f"{difference.table}: a row differs from the audit log (an admin's verify names it)"
    )
    return report.model_copy(
        update={"ok": False, "first_bad_seq": difference.seq, "reason": reason,
                "table": difference.table}
    )


def export_checkpoint(db: Database, actor: Actor) -> Checkpoint:
    """Return the current audit head, to be kept outside the database."""
    with db.read() as session:
        return chain.head(session)


__all__ = ["export_checkpoint", "list_audit", "verify_audit"]
