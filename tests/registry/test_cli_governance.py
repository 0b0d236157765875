"""The governance commands (aliases, tags, stages, incidents, policies) on both databases."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.cli import app

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"
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
        mmgov("promote", "clip", "2", "--alias", "production")
        mmgov("promote", "clip", "2", "--alias", "staging")
        listed = mmgov("aliases", "clip")
        assert listed.splitlines()[0].split() == ["ALIAS", "VERSION", "MOVED", "BY"]
        assert [line.split()[:2] for line in listed.splitlines()[1:]] == [
            ["production", "2"],
            ["staging", "2"],
        ]
        history = json.loads(mmgov("--json", "aliases", "history", "clip", "production"))
        assert [(m["from_version"], m["version"]) for m in history["items"]] == [(1, 2), (None, 1)]
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
