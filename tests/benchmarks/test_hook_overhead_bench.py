"""benchmarks/hook_overhead.py: a tiny run prints every row (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "hook_overhead.py"


@pytest.mark.slow
def test_tiny_run_measures_both_profiles_and_feeds_the_drift_monitors() -> None:
    """Four rows; the default profile's encoders feed drift monitors, full depth has none."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--pairs", "1"],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]]
            for line in run.stdout.splitlines() if line.startswith("| ")][1:]
    assert [(r[0], r[1]) for r in rows] == [
        ("default", "8/64"), ("default", "1/16"), ("full-depth", "8/64"), ("full-depth", "1/16"),
    ]
    by_row = {(r[0], r[1]): r for r in rows}
    # (warm-up + pairs + the call-count forward) x batch, for each of the two encoders.
    assert int(by_row[("default", "8/64")][-1]) == 2 * 8 * (3 + 1 + 1)
    assert int(by_row[("default", "1/16")][-1]) == 2 * 1 * (3 + 4 + 1)
    assert by_row[("full-depth", "1/16")][-1] == "0"
    assert by_row[("full-depth", "1/16")][3] == "174"  # calls per forward at full depth
