"""The governance commands (aliases, tags, stages, incidents, policies) on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry import service
from registry.cli import app
from registry.db import Database
from registry.schemas import Actor, AlertIn

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "model.yaml"
Run = Callable[..., str]


@pytest.fixture
def mmgov(db_url: str) -> Run:
    """Run `mmgov` in-process as `tester`; return stdout (or stderr on failure)."""
    runner = CliRunner()

    def run(*args: str, expect: int = 0, actor: str = "tester") -> str:
        result = runner.invoke(app, ["--db", db_url, "--actor", actor, *args])
        assert result.exit_code == expect, (result.stdout, result.stderr)
        return result.stdout if expect == 0 else result.stderr

    run("db", "upgrade")
    for sha in ("a" * 64, "b" * 64, "c" * 64):
        run("register", str(CONFIG), "--model", "clip", "--weights", f"s3://b/{sha[:4]}",
            "--sha256", sha)
    return run


class TestAliasesCli:
    def test_list_history_at_and_columns(self, mmgov: Run) -> None:
        """`aliases`, `aliases history [--at]`, and the ALIASES column of versions and show."""
        mmgov("promote", "clip", "1", "--alias", "production")
        between = datetime.now(UTC).isoformat()
        mmgov("promote", "clip", "2", "--alias", "production", "--reason", "retrained")
        mmgov("promote", "clip", "2", "--alias", "staging")
        listed = mmgov("aliases", "clip")
        assert listed.splitlines()[0].split() == ["ALIAS", "VERSION", "MOVED", "BY"]
        assert [line.split()[:2] for line in listed.splitlines()[1:]] == [
            ["production", "2"],
            ["staging", "2"],
        ]
        history = json.loads(mmgov("--json", "aliases", "history", "clip", "production"))
        assert [(m["from_version"], m["version"], m["reason"]) for m in history["items"]] == [
            (1, 2, "retrained"),
            (None, 1, ""),
        ]
        at = mmgov("aliases", "history", "clip", "production", "--at", between)
        assert at.splitlines()[0].endswith(": version 1")
        versions = mmgov("versions", "clip")
        assert "ALIASES" in versions.splitlines()[0]
        assert versions.splitlines()[2].split()[:3] == ["2", "1.0.0", "production,staging"]
        assert "aliases:        production, staging" in mmgov("show", "clip", "2")

    def test_bad_at_is_one_line(self, mmgov: Run) -> None:
        """A --at that does not parse, or in the future: one error line, exit 2."""
        mmgov("promote", "clip", "1", "--alias", "production")
        err = mmgov("aliases", "history", "clip", "production", "--at", "yesterday", expect=2)
        assert err.strip() == (
            "error: --at 'yesterday' is not an ISO 8601 time (e.g. 2024-05-01T12:00:00Z)"
        )
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        err = mmgov("aliases", "history", "clip", "production", "--at", tomorrow, expect=2)
        assert "in the future" in err
        assert len(err.strip().splitlines()) == 1


class TestTagsCli:
    def test_tag_filter_untag_stage(self, mmgov: Run) -> None:
        """Tags set and removed, `versions --tag` filters, an archived version is not promoted."""
        assert mmgov("tag", "clip", "1", "dataset=coco", "run=7").strip() == (
            "clip v1: dataset=coco run=7"
        )
        mmgov("tag", "clip", "3", "dataset=coco")
        found = json.loads(mmgov("--json", "versions", "clip", "--tag", "dataset=coco"))
        assert [v["version"] for v in found["items"]] == [3, 1]
        assert mmgov("untag", "clip", "1", "run").strip() == "clip v1: dataset=coco"
        assert mmgov("stage", "clip", "1", "archived", "--reason", "old").strip() == (
            "clip v1: archived"
        )
        err = mmgov("promote", "clip", "1", "--alias", "production", expect=1)
        assert "v1 is archived" in err
        err = mmgov("tag", "clip", "1", "novalue", expect=2)
        assert "KEY=VALUE" in err


class TestIncidentCli:
    def test_ack_resolve_reopen_link_list(self, mmgov: Run, db_url: str) -> None:
        """The incident commands drive the lifecycle; the filters narrow `incident list`."""
        db = Database(db_url)
        try:
            service.record_alerts(db, Actor(name="am", role="admin"), [
                AlertIn.model_validate({
                    "status": "firing",
                    "labels": {"alertname": "Drift", "model": "clip", "version": "2",
                               "module": "vision"},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "fingerprint": "f1",
                })
            ])
        finally:
            db.dispose()
        assert mmgov("incident", "ack", "1").strip() == (
            "incident 1 (Drift, clip v2): acknowledged by tester"
        )
        err = mmgov("incident", "resolve", "1", "--note", " ", expect=2)
        assert err.strip() == "error: resolution needs a note saying why"
        assert "resolved by tester" in mmgov("incident", "resolve", "1", "--note", "retrained")
        listed = mmgov("incident", "list", "--model", "clip", "--version", "2",
                       "--status", "resolved")
        assert listed.splitlines()[1].split()[:2] == ["1", "resolved"]
        assert len(mmgov("incident", "list", "--module", "text").splitlines()) == 1
        err = mmgov("incident", "list", "--since", "soon", expect=2)
        assert "--since 'soon' is not an ISO 8601 time" in err
        assert mmgov("incident", "reopen", "1").strip() == "incident 1 (Drift, clip v2): open"
        mmgov("promote", "clip", "1", "--alias", "production")
        move = json.loads(mmgov("--json", "aliases", "history", "clip", "production"))["items"][0]
        out = mmgov("incident", "link", "1", "--move", str(move["id"]))
        assert out.strip().endswith(f"answered by alias move {move['id']}")
        assert f"alias move {move['id']}" in mmgov("incident", "show", "1")
        err = mmgov("incident", "resolve", "7", "--note", "x", expect=1)
        assert "incident 7 not found" in err


class TestPolicyCli:
    def test_policy_approve_and_refusal_lines(self, mmgov: Run) -> None:
        """A refused promotion prints one line per unmet rule; approvals by others let it in."""
        mmgov("policy", "set", "clip", "staging")
        out = mmgov("policy", "set", "clip", "production", "--require-reference",
                    "--approvals", "1", "--soak", "staging:1s")
        assert out.strip() == (
            "clip@production: policy v2: reference soak=staging:1s approvals=1"
        )
        err = mmgov("promote", "clip", "2", "--alias", "production", expect=1)
        lines = err.strip().splitlines()
        assert lines[0] == "error: promotion of clip v2 to 'production' refused, 3 rules unmet:"
        assert [line.split(":")[0] for line in lines[1:]] == [
            "- require_reference", "- approvals", "- soak"
        ]
        err = mmgov("promote", "clip", "2", "--alias", "prodution", expect=1)
        assert "alias 'prodution' is not declared for model 'clip' (declared: production, " \
            "staging); an admin either declares it (`mmgov policy set clip prodution`) or " \
            "allows free aliases (`mmgov aliases free clip on`)" in err
        err = mmgov("approve", "clip", "2", "--alias", "production", expect=1)
        assert "tester registered clip v2 and cannot approve it" in err
        out = mmgov("approve", "clip", "2", "--alias", "production", actor="reviewer")
        assert out.strip() == "clip v2: approved for production by reviewer"
        assert "reviewer" in mmgov("approvals", "clip", "2")
        err = mmgov("policy", "set", "clip", "production", "--soak", "staging:soon", expect=2)
        assert "duration 'soon' does not parse" in err
        err = mmgov("policy", "set", "clip", "production", "--soak", "stagin:1h", expect=2)
        assert "unknown alias 'stagin'" in err
        listed = mmgov("policy", "list", "clip")
        assert [line.split()[0] for line in listed.splitlines()[1:]] == ["production", "staging"]
        mmgov("policy", "remove", "clip", "production")
        err = mmgov("promote", "clip", "2", "--alias", "production", expect=1)
        assert "'production' is not declared for model 'clip' (declared: staging)" in err
        mmgov("promote", "clip", "2", "--alias", "staging")

    def test_aliases_free_on_and_off(self, mmgov: Run) -> None:
        """`aliases free MODEL on` admits any new alias; `off` declared ones only; audited."""
        err = mmgov("promote", "clip", "1", "--alias", "canary", expect=1)
        assert "alias 'canary' is not declared" in err
        out = mmgov("aliases", "free", "clip", "on", "--note", "trying things")
        assert out.strip() == (
            "clip: free aliases on: any alias may be created (declared: production, staging)"
        )
        assert json.loads(mmgov("--json", "models"))["items"][0]["free_aliases"] is True
        mmgov("promote", "clip", "1", "--alias", "canary")
        out = mmgov("aliases", "free", "clip", "off")
        assert out.strip() == (
            "clip: free aliases off: only declared aliases may be created (production, staging)"
        )
        assert "alias 'shadow' is not declared" in mmgov(
            "promote", "clip", "1", "--alias", "shadow", expect=1
        )
        err = mmgov("aliases", "free", "clip", "maybe", expect=2)
        assert "'maybe': write on or off" in err
        events = json.loads(mmgov("--json", "audit", "list", "--limit", "5"))["items"]
        assert [e["action"] for e in events].count("model.free_aliases") == 2
