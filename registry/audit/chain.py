"""The hash-chained audit log: append inside the caller's transaction, verify in batches."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from registry.config import canonical_json, sha256_hex
from registry.models import GENESIS_HASH, AuditEvent, AuditHead, utcnow
from registry.schemas import AuditReport, Checkpoint

VERIFY_BATCH = 500
"""Events read per query while verifying; bounds memory whatever the log's length."""


def _timestamp(at: datetime) -> str:
    # Microseconds survive both SQLite and PostgreSQL, so the text is stable across a round trip.
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(
    prev_hash: str,
    *,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    model: str | None,
    version: int | None,
    payload: dict[str, Any],
) -> str:
    """Hash one event: sha256 of ``prev_hash`` followed by the canonical JSON of its fields.

    Returns:
        64 lowercase hex characters.
    """
    fields = {
        "seq": seq,
        "at": _timestamp(at),
        "actor": actor,
        "action": action,
        "model": model,
        "version": version,
        "payload": payload,
    }
    return sha256_hex(prev_hash + canonical_json(fields))


# Built once and run on the caller's connection: appends sit on every write path, and building
# an ORM statement and flushing a unit of work per call cost more than running the SQL.
_BUMP_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + 1)
    .returning(AuditHead.seq, AuditHead.hash)
)
_INSERT_EVENT = insert(AuditEvent)
_SET_HEAD_HASH = update(AuditHead).where(AuditHead.id == 1).values(hash=bindparam("head_hash"))


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    model: str | None = None,
    version: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Checkpoint:
    """Append one event in the caller's (write) transaction, on its session's connection.

    Bumping the one-row head first takes its row lock (PostgreSQL) so concurrent appends queue up
    instead of reading the same "last" hash; SQLite writers are already serialised.

    Returns:
        The new head: the event's seq and hash (the event row is written).
    """
    body = payload or {}
    conn = session.connection()  # prebuilt Core statements: the hot path of every write
    seq, prev_hash = conn.execute(_BUMP_HEAD).one()
    at = utcnow()
    digest = event_hash(
        prev_hash,
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        model=model,
        version=version,
        payload=body,
    )
    conn.execute(
        _INSERT_EVENT,
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "model": model,
            "version": version,
            "payload": body,
            "prev_hash": prev_hash,
            "hash": digest,
        },
    )
    conn.execute(_SET_HEAD_HASH, {"head_hash": digest})
    return Checkpoint(seq=seq, hash=digest)


def head(session: Session) -> Checkpoint:
    """Return the audit head (last seq and hash; seq 0 and the genesis hash when empty)."""
    row = session.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).one()
    return Checkpoint(seq=row.seq, hash=row.hash)


def _bad(checked: int, top: Checkpoint, seq: int, reason: str) -> AuditReport:
    return AuditReport(
        ok=False,
        checked=checked,
        head_seq=top.seq,
        head_hash=top.hash,
        first_bad_seq=seq,
        reason=reason,
    )


def verify(
    session: Session, *, checkpoint: Checkpoint | None = None, batch_size: int = VERIFY_BATCH
) -> AuditReport:
    """Recompute the chain from the first event and compare with the head and a checkpoint.

    Returns:
        A report; ``ok`` False names the first bad seq and why: a gap, a broken link, a row whose
        content no longer matches its hash, a head that disagrees with the last row, or a
        checkpoint whose event is missing (tail truncated) or has another hash (history rewritten).
    """
    top = head(session)
    prev_hash, last_seq, checked = GENESIS_HASH, 0, 0
    checkpoint_seen = checkpoint is None or checkpoint.seq == 0
    while True:
        rows = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.seq > last_seq)
            .order_by(AuditEvent.seq)
            .limit(batch_size)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.seq != last_seq + 1:
                return _bad(checked, top, last_seq + 1, f"event {last_seq + 1} is missing")
            if row.prev_hash != prev_hash:
                return _bad(checked, top, row.seq, "prev_hash does not match the previous event")
            digest = event_hash(
                row.prev_hash,
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                model=row.model,
                version=row.version,
                payload=row.payload,
            )
            if digest != row.hash:
                return _bad(checked, top, row.seq, "content does not match its hash")
            if checkpoint is not None and row.seq == checkpoint.seq:
                if row.hash != checkpoint.hash:
                    return _bad(
                        checked,
                        top,
                        row.seq,
                        f"hash differs from the checkpoint at seq {checkpoint.seq}: "
                        "history up to it was rewritten",
                    )
                checkpoint_seen = True
            prev_hash, last_seq, checked = row.hash, row.seq, checked + 1
        session.expunge_all()  # keep memory bounded: verified rows are not needed again
    if checkpoint is not None and not checkpoint_seen:
        return _bad(
            checked,
            top,
            last_seq + 1,
            f"the log ends at seq {last_seq} but the checkpoint is at seq {checkpoint.seq}: "
            "tail truncated",
        )
    if (top.seq, top.hash) != (last_seq, prev_hash):
        return _bad(
            checked,
            top,
            last_seq + 1 if top.seq > last_seq else top.seq,
            f"audit head (seq {top.seq}) does not match the last event (seq {last_seq})",
        )
    return AuditReport(ok=True, checked=checked, head_seq=top.seq, head_hash=top.hash)


__all__ = ["VERIFY_BATCH", "append", "event_hash", "head", "verify"]
