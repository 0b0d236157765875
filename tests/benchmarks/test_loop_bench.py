"""benchmarks/loop_bench.py: a tiny run on each database prints every row and goal."""

from __future__ import annotations

import pytest

from benchmarks import loop_bench


def test_tiny_run_prints_every_measure_and_goal(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every measure of issue 17 gets a row; the automatic rollbacks all happened."""
    figures = loop_bench.main(["--db", db_url, "--runs", "2", "--hash-repeats", "1"])
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    assert "module hashes vs hashlib throughput" in rows
    assert "webhook → alias moved (sidecar)" in rows
    assert "webhook → heartbeat naming v1 recorded" in rows
    assert figures["loop"]["reported"] >= figures["loop"]["sidecar"] > 0
