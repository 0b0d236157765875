"""benchmarks/weights_bench.py: a tiny run prints every row and removes its files (no timings)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "weights_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("weights_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _rows(output: str) -> list[list[str]]:
    """Cells of every markdown table row that is not the header or the rule."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def test_tiny_run_prints_every_case(
    bench: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Sharded and single file, one and two threads, each with a positive time and ratio."""
    assert (
        bench.main(["--gib", "0.002", "--shards", "3", "--repeats", "1", "--dir", str(tmp_path)])
        == 0
    )
    rows = _rows(capsys.readouterr().out)
    assert [(r[0], r[1]) for r in rows] == [
        ("sharded, 3 shards + index", "1"),
        ("sharded, 3 shards + index", "2"),
        ("single file", "1"),
        ("single file", "2"),
    ]
    for row in rows:
        assert len(row) == 10
        seconds = [float(cell) for cell in (row[3], row[5], row[6])]
        assert all(s > 0 for s in seconds)
        ratio = float(row[7].split()[0])
        # The times are printed to 1 ms: the ratio lies within what that rounding allows.
        low = (seconds[0] - 0.0005) / (seconds[2] + 0.0005)
        high = (seconds[0] + 0.0005) / max(seconds[2] - 0.0005, 1e-9)
        assert low - 0.005 <= ratio <= high + 0.005
        assert row[7].endswith(("met", "NOT met"))
    assert list(tmp_path.iterdir()) == []
