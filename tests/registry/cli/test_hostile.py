"""The CLI under hostile input: one line on stderr and an exit code ≠ 0, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from registry.cli import app

CLI = [sys.executable, "-c", "from registry.cli import main; main()"]


def _real(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


class TestNoTraceback:
    def test_long_actor_refused_before_any_write(self, db_url: str) -> None:
        """A 200-character MMGOV_ACTOR is one error line, exit 2, and creates nothing."""
        runner = CliRunner()
        assert runner.invoke(app, ["--db", db_url, "db", "upgrade"]).exit_code == 0
        result = runner.invoke(app, ["--db", db_url, "team", "create", "alpha"],
                               env={"MMGOV_ACTOR": "a" * 200})
        assert result.exit_code == 2
        assert "MMGOV_ACTOR" in _one_line(result.stderr)
        listed = runner.invoke(app, ["--db", db_url, "--json", "audit"])
        assert json.loads(listed.stdout)["items"] == []

    @pytest.mark.parametrize("value", ["²", "99999999999", "-1", "x"])
    def test_bad_expect_is_one_line(self, db_url: str, value: str) -> None:
        """`promote --expect ²` (or a number past int4) is a one-line error, exit 2."""
        runner = CliRunner()
        assert runner.invoke(app, ["--db", db_url, "db", "upgrade"]).exit_code == 0
        result = runner.invoke(app, ["--db", db_url, "promote", "mm", "1", "--alias",
                                     "production", "--expect", value])
        assert result.exit_code == 2, result.output
        assert "--expect" in _one_line(result.stderr)

    @pytest.mark.parametrize("url", [
        "foo://nowhere",
        "postgresql+psycopg://nobody@127.0.0.1:1/none",
        "sqlite:////nonexistent-dir/x/y.db",
        "postgresql://[::1",
    ])
    def test_bad_database_url_is_one_line(self, url: str) -> None:
        """A bad or unreachable database URL: one line from a real process, exit ≠ 0."""
        result = _real("--db", url, "models")
        assert result.returncode != 0
        _one_line(result.stderr)

    def test_bad_actor_text_real_process(self) -> None:
        """An actor with a NUL-free but over-long name fails the same way in a real process."""
        result = _real("--db", "sqlite:///:memory:", "models", env={"MMGOV_ACTOR": "é" * 129})
        assert result.returncode == 2
        _one_line(result.stderr)
