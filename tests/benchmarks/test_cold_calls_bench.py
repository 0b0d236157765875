"""benchmarks/cold_calls.py: a tiny run times every probe cold and warm (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "cold_calls.py"


@pytest.mark.slow
def test_tiny_run_prints_a_row_per_probe() -> None:
    """Six probes, each with a positive cold and warm median."""
    run = subprocess.run([sys.executable, str(BENCH), "--forwards", "12"],
                         capture_output=True, text=True, timeout=180, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [[c.strip() for c in line.split("|")[1:-1]]
            for line in run.stdout.splitlines() if line.startswith("| ")][1:]
    assert [r[0] for r in rows] == [
        "time.perf_counter_ns()", "torch.autograd._profiler_enabled() (pybind)",
        "np.isfinite(row).all(axis=1)", "out[:, 0] (a view op)", "torch.select_copy(out, 1, 0)",
        "DriftMonitor.observe(out)",
    ]
    for row in rows:
        assert float(row[1]) > 0, row
        assert float(row[2]) > 0, row
