"""`mmgov demo` end to end as a subprocess on a new SQLite database."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MMGOV = Path(sys.executable).with_name("mmgov")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    """One run of `mmgov demo --json` in a fresh working directory."""
    workdir = tmp_path_factory.mktemp("demo")
    return subprocess.run(
        [str(MMGOV), "demo", "--workdir", str(workdir), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )


def _figures(run: subprocess.CompletedProcess[str]) -> dict[str, object]:
    last = run.stdout.strip().splitlines()[-1]
    data = json.loads(last)
    assert isinstance(data, dict)
    return data


@pytest.mark.slow
class TestDemo:
    def test_exits_zero_and_uses_a_new_sqlite_file(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """The demo succeeds and names the SQLite file it created."""
        assert demo_run.returncode == 0, demo_run.stderr
        assert re.search(r"database sqlite:///.*mmgov-demo\.db", demo_run.stdout)
        for n in range(1, 6):
            assert re.search(rf"\[{n}/5\] done \(\d+\.\d s\)", demo_run.stdout)

    def test_registers_two_versions_and_diffs_modules(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """v1 and v2 are registered; the diff names fusion_layer changed, encoders unchanged."""
        figures = _figures(demo_run)
        assert figures["versions"] == [1, 2]
        assert figures["modules_changed"] == ["fusion_layer"]
        assert sorted(figures["modules_unchanged"]) == ["image_encoder", "text_encoder"]  # type: ignore[arg-type]
        assert {"fusion_type", "training.learning_rate"} <= set(figures["config_changes"])  # type: ignore[arg-type]
        assert "modules changed: fusion_layer" in demo_run.stdout

    def test_metrics_come_from_the_scrape(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """Every module of v2 was called and has latency quantiles and output statistics."""
        metrics = _figures(demo_run)["module_metrics"]
        assert isinstance(metrics, dict)
        assert set(metrics) == {"image_encoder", "text_encoder", "fusion_layer"}
        for stats in metrics.values():
            assert stats["calls"] >= 1
            assert 0 < stats["p50_ms"] <= stats["p99_ms"]
            assert stats["norm"] > 0

    def test_drift_crosses_for_the_image_encoder_only(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """Pixel noise moves the image encoder above its threshold, not the text encoder."""
        scores = _figures(demo_run)["drift_scores"]
        assert isinstance(scores, dict)
        assert scores["image_encoder"] > 1.0
        assert scores["text_encoder"] < 1.0
        assert 'mmgov_drift_score{module="image_encoder"}' in demo_run.stdout

    def test_injected_failure_is_traced_to_fusion_layer(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """The JSON log line of the failed batch names fusion_layer and the version."""
        line = next(
            ln.strip() for ln in demo_run.stdout.splitlines() if '"module_forward_failed"' in ln
        )
        record = json.loads(line)
        assert record["module"] == "fusion_layer"
        assert record["error_type"] == "RuntimeError"
        assert record["version"] == "2"

    def test_rollback_is_seen_by_the_serving_loop_and_audit_verifies(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """After the rollback the loop serves v1 with v1 metric labels; the chain verifies."""
        figures = _figures(demo_run)
        assert figures["served_after_rollback"] == 1
        assert "module metrics carry version=1\n" in demo_run.stdout
        assert figures["audit_ok"] is True
        assert "alias.rollback" in demo_run.stdout
        assert re.search(r"audit chain verified: \d+ events", demo_run.stdout)


def test_bad_config_is_one_error_line(tmp_path: Path) -> None:
    """A config path that does not exist fails with exit code != 0 and one error line."""
    run = subprocess.run(
        [str(MMGOV), "demo", "--workdir", str(tmp_path), "--config", str(tmp_path / "no.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode != 0
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert "no.yaml" in errors[0]


@pytest.mark.slow
def test_demo_on_postgresql(tmp_path: Path) -> None:
    """`mmgov demo --db postgresql…` tells the same story on a new PostgreSQL database."""
    from tests.conftest import PG_URL_TEMPLATE, _create_pg_database, _drop_pg_database

    name = _create_pg_database()
    url = PG_URL_TEMPLATE.format(dbname=name)
    try:
        run = subprocess.run(
            [str(MMGOV), "demo", "--db", url, "--workdir", str(tmp_path), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
        )
    finally:
        _drop_pg_database(name)
    assert run.returncode == 0, run.stderr
    assert f"database postgresql+psycopg://postgres@127.0.0.1:5432/{name}" in run.stdout
    figures = _figures(run)
    assert figures["versions"] == [1, 2]
    assert figures["served_after_rollback"] == 1
    assert figures["audit_ok"] is True
