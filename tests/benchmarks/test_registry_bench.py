"""benchmarks/registry_bench.py: a tiny run on each database prints every row (no timing checks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "registry_bench.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    """The benchmark script, imported as a module."""
    spec = importlib.util.spec_from_file_location("registry_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _first_cells(output: str) -> list[tuple[str, str]]:
    """The first two cells of every markdown table row that is not a header or a rule."""
    rows = []
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and not cells[0].startswith("-"):
            rows.append((cells[0], cells[1]))
    return rows


class TestRegistryBench:
    def test_tiny_run_prints_every_operation_and_goal(
        self, bench: ModuleType, db_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """5 registered and 12 bulk-filled versions: a row per operation and size, every goal."""
        bench.main(["--db", db_url, "--versions", "5", "--big", "12", "--rounds", "2",
                    "--no-mlflow"])  # fmt: skip
        rows = _first_cells(capsys.readouterr().out)
        assert ("register", "5") in rows
        for operation in bench.OPERATIONS:
            assert (operation, "5") in rows
            assert (operation, "12") in rows
            assert (operation, "5 (control)") in rows
        goals = [goal for goal, _target in rows]
        assert any(goal.startswith("sequential registration") for goal in goals)
        assert "resolve alias p50 in-process, 5 versions" in goals
        assert "resolve alias p50 in-process, 12 versions" in goals
        assert "list first page: no slowdown 5 → 12 versions" in goals
        assert "list deep page: no slowdown 5 → 12 versions" in goals

    def test_quick_run_on_default_sqlite(
        self, bench: ModuleType, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--quick runs on a temporary SQLite file and says MLflow's figures are the issue's."""
        bench.main(["--quick", "--no-mlflow"])
        output = capsys.readouterr().out
        assert "in-process on sqlite" in output
        assert "issue 2's figures" in output
        assert ("register", "40") in _first_cells(output)
        assert ("register (synchronous=FULL)", "40") in _first_cells(output)

    def test_mlflow_without_its_python_is_explained(
        self, bench: ModuleType, tmp_path: Path
    ) -> None:
        """A missing MLflow interpreter gives a reason, not an error."""
        reason = bench.measure_mlflow(str(tmp_path / "no-python"), "sqlite:///x.db", 3, 1)
        assert reason == f"{tmp_path / 'no-python'} not found"
