"""Signed checkpoints: `audit keygen`, `audit checkpoint` on a schedule, `audit verify --signed`."""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from registry import service
from registry.audit.signing import SignedCheckpoint
from registry.cli import app
from registry.db import Database
from registry.models import AuditEvent
from registry.schemas import Actor
from tests.registry.test_audit_chain import _drop_triggers, _events, _rehash_from


@dataclass
class Done:
    """What one in-process `mmgov` run returned."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None) -> Done:
    """Run `mmgov ARGS` in this process; an uncaught exception fails the test."""
    result = CliRunner().invoke(app, list(args), env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """A signing key made by `mmgov audit keygen`, and its public key."""
    private = tmp_path / "keys" / "audit.key"
    private.parent.mkdir()
    done = run_cli("audit", "keygen", str(private))
    assert done.returncode == 0, done.stderr
    return private, Path(f"{private}.pub")


def _checkpoint(db_url: str, key: Path, log: Path) -> None:
    done = run_cli("--db", db_url, "audit", "checkpoint", "--append", str(log),
                   env={"MMGOV_AUDIT_SIGNING_KEY": str(key)})
    assert done.returncode == 0, done.stderr


def _verify(db_url: str, log: Path, public: Path | None) -> tuple[int, str]:
    args = ["--db", db_url, "audit", "verify", "--signed", str(log)]
    if public is not None:
        args += ["--public-key", str(public)]
    done = run_cli(*args)
    return done.returncode, done.stdout + done.stderr


class TestKeys:
    def test_keygen_private_is_0600_and_never_overwritten(self, keys: tuple[Path, Path]) -> None:
        """The private key is readable by its owner only; a second keygen refuses to replace it."""
        private, public = keys
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert b"PUBLIC KEY" in public.read_bytes()
        before = private.read_bytes()
        done = run_cli("audit", "keygen", str(private))
        assert done.returncode != 0
        assert "refusing to overwrite" in done.stderr
        assert "Traceback" not in done.stderr
        assert private.read_bytes() == before


class TestSignedVerify:
    def test_checkpoints_hold(
        self, database: Database, admin: Actor, db_url: str, keys: tuple[Path, Path],
        tmp_path: Path,
    ) -> None:
        """Checkpoints appended on a schedule all verify while nothing is rewritten."""
        log = tmp_path / "checkpoints.jsonl"
        _events(database, admin, 3)
        _checkpoint(db_url, keys[0], log)
        service.create_team(database, admin, "later")
        _checkpoint(db_url, keys[0], log)
        lines = [SignedCheckpoint.model_validate_json(x) for x in log.read_text().splitlines()]
        assert [p.seq for p in lines] == [3, 4]
        code, out = _verify(db_url, log, keys[1])
        assert code == 0, out
        assert "signed checkpoints held: 2" in out

    def test_recomputed_chain_detected(
        self, database: Database, admin: Actor, db_url: str, keys: tuple[Path, Path],
        tmp_path: Path,
    ) -> None:
        """A rewrite re-hashed to a consistent chain passes plain verify, not the signed one."""
        log = tmp_path / "checkpoints.jsonl"
        _events(database, admin, 4)
        _checkpoint(db_url, keys[0], log)
        _drop_triggers(database)
        with database.transaction() as s:
            s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
        _rehash_from(database, 2)
        assert service.verify_audit(database, admin).ok
        code, out = _verify(db_url, log, keys[1])
        assert code == 1
        assert "hash differs from the checkpoint at seq 4" in out

    def test_forged_checkpoint_line_refused(
        self, database: Database, admin: Actor, db_url: str, keys: tuple[Path, Path],
        tmp_path: Path,
    ) -> None:
        """Editing a signed line (to match a forged head) breaks its signature."""
        log = tmp_path / "checkpoints.jsonl"
        _events(database, admin, 2)
        _checkpoint(db_url, keys[0], log)
        line = json.loads(log.read_text())
        line["hash"] = "f" * 64
        log.write_text(json.dumps(line) + "\n")
        code, out = _verify(db_url, log, keys[1])
        assert code == 1
        assert "signature of checkpoint seq 2 does not verify" in out
        assert "Traceback" not in out

    def test_other_key_and_missing_key_refused(
        self, database: Database, admin: Actor, db_url: str, keys: tuple[Path, Path],
        tmp_path: Path,
    ) -> None:
        """A checkpoint signed with another key, or no public key given: one error line each."""
        log = tmp_path / "checkpoints.jsonl"
        _events(database, admin, 1)
        other = tmp_path / "other.key"
        assert run_cli("audit", "keygen", str(other)).returncode == 0
        _checkpoint(db_url, other, log)
        code, out = _verify(db_url, log, keys[1])
        assert code == 1
        assert "is signed by key" in out
        code, out = _verify(db_url, log, None)
        assert code != 0
        assert "need --public-key" in out
        assert "Traceback" not in out
