"""The audit chain: append-only triggers, verify, checkpoints against truncation and rewrites."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError

from registry import service
from registry.audit import chain
from registry.db import Database
from registry.models import AuditEvent, AuditHead
from registry.schemas import Actor


def _events(db: Database, admin: Actor, n: int) -> None:
    for i in range(n):
        service.create_team(db, admin, f"team-{i}")


def _drop_triggers(db: Database) -> None:
    with db.transaction() as s:
        if db.dialect == "sqlite":
            s.execute(text("DROP TRIGGER audit_events_no_update"))
            s.execute(text("DROP TRIGGER audit_events_no_delete"))
        else:
            s.execute(text("DROP TRIGGER audit_events_append_only ON audit_events"))


def _rehash_from(db: Database, seq: int) -> None:
    """Recompute every hash from ``seq`` on and fix the head: a consistent forgery."""
    with db.transaction() as s:
        prev = s.scalar(text("SELECT hash FROM audit_events WHERE seq = :q"), {"q": seq - 1})
        rows = s.query(AuditEvent).filter(AuditEvent.seq >= seq).order_by(AuditEvent.seq).all()
        for row in rows:
            digest = chain.event_hash(
                prev,
                seq=row.seq,
                at=row.at,
                actor=row.actor,
                action=row.action,
                model=row.model,
                version=row.version,
                payload=row.payload,
            )
            s.execute(
                update(AuditEvent)
                .where(AuditEvent.seq == row.seq)
                .values(prev_hash=prev, hash=digest)
            )
            prev = digest
        s.execute(update(AuditHead).values(hash=prev))


class TestAppendOnly:
    def test_update_refused(self, database: Database, admin: Actor) -> None:
        """The trigger refuses UPDATE of an audit event."""
        _events(database, admin, 1)
        with pytest.raises(DBAPIError, match="append-only"), database.transaction() as s:
            s.execute(text("UPDATE audit_events SET actor = 'mallory'"))

    def test_delete_refused(self, database: Database, admin: Actor) -> None:
        """The trigger refuses DELETE of an audit event."""
        _events(database, admin, 1)
        with pytest.raises(DBAPIError, match="append-only"), database.transaction() as s:
            s.execute(text("DELETE FROM audit_events"))

    def test_truncate_refused_on_postgresql(self, database: Database, admin: Actor) -> None:
        """PostgreSQL also refuses TRUNCATE (SQLite has none)."""
        if database.dialect != "postgresql":
            pytest.skip("TRUNCATE exists only on PostgreSQL")
        _events(database, admin, 1)
        with pytest.raises(DBAPIError, match="append-only"), database.transaction() as s:
            s.execute(text("TRUNCATE audit_events"))


class TestVerify:
    def test_empty_and_valid_chain(self, database: Database, admin: Actor) -> None:
        """An empty log and a log of 5 events both verify."""
        assert service.verify_audit(database, admin).ok
        _events(database, admin, 5)
        report = service.verify_audit(database, admin)
        assert (report.ok, report.checked, report.head_seq) == (True, 5, 5)
        assert report.head_hash == service.export_checkpoint(database, admin).hash

    def test_verify_in_small_batches(self, database: Database, admin: Actor) -> None:
        """Batching does not change the result."""
        _events(database, admin, 7)
        with database.read() as s:
            assert chain.verify(s, batch_size=2).checked == 7

    def test_tampered_row_found_at_its_seq(self, database: Database, admin: Actor) -> None:
        """Editing one event's payload through raw SQL is reported at that seq."""
        _events(database, admin, 5)
        _drop_triggers(database)
        with database.transaction() as s:
            s.execute(
                update(AuditEvent).where(AuditEvent.seq == 3).values(payload={"after": "forged"})
            )
        report = service.verify_audit(database, admin)
        assert (report.ok, report.first_bad_seq, report.checked) == (False, 3, 2)
        assert "does not match its hash" in (report.reason or "")

    def test_deleted_middle_row_is_a_gap(self, database: Database, admin: Actor) -> None:
        """A deleted event in the middle is reported as missing."""
        _events(database, admin, 4)
        _drop_triggers(database)
        with database.transaction() as s:
            s.execute(text("DELETE FROM audit_events WHERE seq = 2"))
        report = service.verify_audit(database, admin)
        assert (report.ok, report.first_bad_seq) == (False, 2)

    def test_tail_truncation_found_by_head_and_checkpoint(
        self, database: Database, admin: Actor
    ) -> None:
        """Deleting the tail is caught by the head, or by a checkpoint once the head is fixed."""
        _events(database, admin, 5)
        checkpoint = service.export_checkpoint(database, admin)
        _drop_triggers(database)
        with database.transaction() as s:
            s.execute(text("DELETE FROM audit_events WHERE seq > 3"))
        report = service.verify_audit(database, admin)
        assert (report.ok, report.first_bad_seq) == (False, 4)
        with database.transaction() as s:
            h = s.scalar(text("SELECT hash FROM audit_events WHERE seq = 3"))
            s.execute(update(AuditHead).values(seq=3, hash=h))
        alone = service.verify_audit(database, admin)  # the chain is consistent on its own…
        assert (alone.ok, alone.first_bad_seq, alone.table) == (False, None, "teams")  # …not tables
        report = service.verify_audit(database, admin, checkpoint=checkpoint)
        assert (report.ok, report.first_bad_seq) == (False, 4)  # …nor the checkpoint
        assert "truncated" in (report.reason or "")

    def test_rewritten_history_found_by_checkpoint(self, database: Database, admin: Actor) -> None:
        """A forged but re-hashed history verifies alone, and fails against an older checkpoint."""
        _events(database, admin, 5)
        checkpoint = service.export_checkpoint(database, admin)
        _drop_triggers(database)
        with database.transaction() as s:
            s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
        _rehash_from(database, 2)
        assert service.verify_audit(database, admin).ok
        report = service.verify_audit(database, admin, checkpoint=checkpoint)
        assert (report.ok, report.first_bad_seq) == (False, 5)
        assert "rewritten" in (report.reason or "")
