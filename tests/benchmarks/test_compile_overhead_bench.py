"""benchmarks/compile_overhead.py: a tiny run on the eager backend prints its rows (no timings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "compile_overhead.py"


@pytest.mark.slow
def test_tiny_run_counts_breaks_and_every_compiled_call() -> None:
    """Both shapes timed; graph breaks at most one per instrumented module call; calls counted."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--pairs", "2", "--backend", "eager"],
        capture_output=True, text=True, timeout=280, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]]
            for line in run.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r[0] for r in rows] == ["1/16", "8/64"]
    for row in rows:
        assert float(row[4]) > 0, row
        assert row[-1] == "3", row  # the three top-level modules, each call counted
    found = re.search(r"graph breaks: bare (\d+), instrumented (\d+) \(instrumented module calls "
                      r"per forward: (\d+)\)", run.stdout)
    assert found, run.stdout[-2000:]
    bare, instrumented, calls = map(int, found.groups())
    assert calls == 3
    assert instrumented - bare <= calls, run.stdout[-3000:]
    assert f"graph breaks added by instrumenting: {instrumented - bare} ≤ 3" in run.stdout
