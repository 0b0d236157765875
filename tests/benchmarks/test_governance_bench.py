"""benchmarks/governance_bench.py: a tiny run on each database prints every row and goal."""

from __future__ import annotations

import pytest

from benchmarks import governance_bench, registry_bench


def test_tiny_run_prints_every_operation_and_goal(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every operation and every goal of issue 14 gets a row (no timing checks)."""
    governance_bench.main(["--db", db_url, "--rounds", "3", "--moves", "30", "--small", "25",
                           "--big", "60"])  # fmt: skip
    out = capsys.readouterr().out
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")]
    for name in ("promote (unprotected)", "promote (4-rule policy)", "history --at, 30 moves",
                 "rare tag, 25", "rare tag, 60", "common tag, 25", "common tag, 60"):
        assert name in rows
    assert "promotion through a 4-rule policy vs unprotected" in rows
    assert "history --at, 30 moves" in rows
    assert "list with a rare tag filter: no slowdown 25 → 60 versions" in rows
    assert "list with a common tag filter: no slowdown 25 → 60 versions" in rows


def test_registry_bench_runs_it_with_governance(capsys: pytest.CaptureFixture[str]) -> None:
    """`registry_bench.py --governance --quick` prints the governance report."""
    registry_bench.main(["--governance", "--quick"])
    assert "governance, in-process on sqlite" in capsys.readouterr().out
