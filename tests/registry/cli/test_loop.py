"""`mmgov status`, `mmgov auto-rollback …` and deployment-scoped tokens, on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import service
from registry.cli import app
from registry.db import Database
from registry.loop_schemas import HeartbeatIn
from registry.schemas import Actor, AlertIn

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "model.yaml"
ADMIN = Actor(name="tester", role="admin")
Run = Callable[..., str]


@pytest.fixture
def mmgov(db_url: str) -> Iterator[tuple[Run, Database]]:
    """Model clip with versions 1, 2; production 1 then 2; the CLI runner and the database."""
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> str:
        result = runner.invoke(app, ["--db", db_url, "--actor", "tester", *args])
        assert result.exit_code == expect, (result.stdout, result.stderr)
        return result.stdout if expect == 0 else result.stderr

    run("db", "upgrade")
    for sha in ("a" * 64, "b" * 64):
        run("register", str(CONFIG), "--model", "clip", "--weights", f"s3://b/{sha[:4]}",
            "--sha256", sha, "--note", sha[:4])
    run("promote", "clip", "1", "--alias", "production")
    run("promote", "clip", "2", "--alias", "production")
    db = Database(db_url)
    try:
        yield run, db
    finally:
        db.dispose()


class TestStatusCli:
    def test_status_lists_instances_and_mismatches(self, mmgov: tuple[Run, Database]) -> None:
        """Two instances, one with another config hash: status names it as differing."""
        run, db = mmgov
        good = service.get_version(db, ADMIN, "clip", 2).config_hash
        for instance, config_hash in (("pod-a", good), ("pod-b", "f" * 64)):
            service.record_heartbeat(db, ADMIN, model="clip", min_interval=0, heartbeat=HeartbeatIn(
                instance=instance, version=2, alias="production", config_hash=config_hash,
            ))
        out = run("status", "clip")
        assert out.splitlines()[1].split() == ["production", "2", "2", "-"]
        assert "DIFFERS: config" in out
        assert "mismatching instances: pod-b" in out
        data = json.loads(run("--json", "status", "clip"))
        assert data["mismatched"] == ["pod-b"]

    def test_status_of_unknown_model_fails(self, mmgov: tuple[Run, Database]) -> None:
        """An unknown model: exit code != 0 and one line naming it."""
        run, _db = mmgov
        assert "nope" in run("status", "nope", expect=1)


class TestAutoRollbackCli:
    def test_set_list_and_log(self, mmgov: tuple[Run, Database]) -> None:
        """A policy set from the shell acts on an alert; `log` shows the decision."""
        run, db = mmgov
        run("auto-rollback", "set", "clip", "production", "--alert", "Drift", "--cooldown", "1h")
        listed = run("auto-rollback", "list", "clip")
        assert listed.splitlines()[1].split() == ["production", "Drift", "any", "0", "1h", "no"]
        service.record_alerts(db, ADMIN, [AlertIn.model_validate({
            "status": "firing", "labels": {"alertname": "Drift", "model": "clip", "version": "2"},
            "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1",
        })])
        assert "rolled_back" in run("auto-rollback", "log", "clip")
        assert service.resolve_alias(db, ADMIN, "clip", "production").version.version == 1

    def test_policy_on_missing_alias_fails(self, mmgov: tuple[Run, Database]) -> None:
        """A policy naming an alias that does not exist: exit != 0, nothing stored."""
        run, db = mmgov
        err = run("auto-rollback", "set", "clip", "canary", expect=1)
        assert "has no alias 'canary'" in err
        assert service.list_rollback_policies(db, ADMIN, "clip") == []

    def test_scoped_token(self, mmgov: tuple[Run, Database]) -> None:
        """`token create --scope deployments` makes a reader token; another role is refused."""
        run, _db = mmgov
        run("team", "create", "serving")
        out = json.loads(run("--json", "token", "create", "--team", "serving", "--role",
                             "reader", "--scope", "deployments"))
        assert (out["role"], out["scope"]) == ("reader", "deployments")
        err = run("token", "create", "--team", "serving", "--role", "maintainer", "--scope",
                  "deployments", expect=2)
        assert "reader" in err
