"""benchmarks/api_bench.py: a tiny run against real servers prints every row (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "api_bench.py"


@pytest.mark.e2e
def test_tiny_run_prints_every_measurement_without_server_errors() -> None:
    """Floor, resolve (200 and 304) and register rows, each for 1 and 2 clients, no 5xx."""
    run = subprocess.run(
        [sys.executable, str(BENCH), "--requests", "6", "--writes", "3", "--threads", "2",
         "--workers", "1", "--cap", "20"],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ")]
    cells = {(r[0].strip(), r[1].strip()): r for r in rows[1:]}  # (measurement, clients)
    names = ["floor: bare ASGI app, uvicorn 1w", "mmgov 1w resolve alias (200)",
             "mmgov 1w resolve alias (304)", "mmgov 1w register version"]
    for name in names:
        for clients in ("1", "2"):
            row = cells[(name, clients)]
            assert int(row[2]) > 0, row  # requests measured
            assert row[6].strip() == "0", row  # no 5xx
    if "MLflow not importable" not in run.stdout:
        assert ("MLflow 1w get-by-alias", "1") in cells
