"""`mmgov demo` end to end as a subprocess on a new SQLite database."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MMGOV = Path(sys.executable).with_name("mmgov")


@pytest.fixture(scope="module")
def temp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The TMPDIR of the demo run: where its temporary working directory goes."""
    return tmp_path_factory.mktemp("tmpdir")


@pytest.fixture(scope="module")
def demo_run(temp_root: Path) -> subprocess.CompletedProcess[str]:
    """One run of `mmgov demo --json` as `make demo` runs it: a temporary working directory."""
    env = {**os.environ, "TMPDIR": str(temp_root), "MMGOV_INSTALL_SECONDS": "12.5"}
    env.pop("MMGOV_DATABASE_URL", None)
    return subprocess.run(
        [str(MMGOV), "demo", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=400, check=False,
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

    def test_removes_its_temporary_directory_and_says_so(
        self, demo_run: subprocess.CompletedProcess[str], temp_root: Path
    ) -> None:
        """Nothing is left in TMPDIR; the output names the directory and the bytes removed."""
        figures = _figures(demo_run)
        # Importing torch's compiler stack makes an empty torchinductor_USER cache directory in
        # TMPDIR; it is torch's, empty, and shared by every torch process of the user.
        left = [p for p in temp_root.iterdir() if not p.name.startswith("torchinductor_")]
        assert left == []
        assert all(not any(p.iterdir()) for p in temp_root.iterdir())
        assert figures["kept"] is False
        assert isinstance(figures["removed_bytes"], int)
        assert figures["removed_bytes"] > 10_000_000  # two sets of weights and a database
        workdir = str(figures["workdir"])
        assert workdir.startswith(str(temp_root))
        assert f"mmgov demo: removed {workdir} (" in demo_run.stdout

    def test_prints_its_own_time_and_the_install_time(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """The summary has the demo's wall time and, from `make demo`, install + demo."""
        figures = _figures(demo_run)
        seconds = figures["seconds"]
        assert isinstance(seconds, float)
        assert f"demo time:             {seconds:.1f} s" in demo_run.stdout
        assert f"install + demo {12.5 + seconds:.1f} s" in demo_run.stdout

    def test_metrics_come_from_the_scrape(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """Every module of v2 was called: exact mean latency, bucket bounds, output statistics."""
        metrics = _figures(demo_run)["module_metrics"]
        assert isinstance(metrics, dict)
        assert set(metrics) == {"image_encoder", "text_encoder", "fusion_layer"}
        for stats in metrics.values():
            assert stats["calls"] >= 1
            assert stats["p50_low_ms"] < stats["p50_high_ms"] <= stats["max_le_ms"]
            # the exact mean lies within the buckets the calls fell in
            assert 0 < stats["mean_ms"] <= stats["max_le_ms"]
            assert stats["norm"] > 0
        assert "mean ms is the histogram's sum/count (exact), the others are bucket bounds" in (
            demo_run.stdout
        )

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

    def test_audit_listing_shows_every_event(
        self, demo_run: subprocess.CompletedProcess[str]
    ) -> None:
        """Every event the chain verified is listed, the team and token events included."""
        figures = _figures(demo_run)
        count = figures["audit_events"]
        assert isinstance(count, int)
        assert figures["audit_listed"] == list(range(1, count + 1))
        listed = re.findall(r"^\s+#(\d+)\s+(\S+)", demo_run.stdout, re.M)
        assert [int(n) for n, _ in listed] == list(range(1, count + 1))
        assert {"team.create", "token.create"} <= {action for _, action in listed}
        assert f"all {count} events" in demo_run.stdout


def test_bad_config_is_one_error_line(tmp_path: Path) -> None:
    """A config path that does not exist fails with exit code != 0 and one error line."""
    run = subprocess.run(
        [str(MMGOV), "demo", "--keep", str(tmp_path / "kept"), "--config",
         str(tmp_path / "no.yaml")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode != 0
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert "no.yaml" in errors[0]
    assert "Traceback" not in run.stderr
    as_json = subprocess.run(
        [str(MMGOV), "demo", "--config", str(tmp_path / "no.yaml"), "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "TMPDIR": str(tmp_path / "kept")},
    )
    assert as_json.returncode == run.returncode
    body = json.loads(as_json.stderr.strip())
    assert (body["error"], body["exit_code"]) == ("config_error", run.returncode)
    assert "no.yaml" in body["detail"]
    left = [p for p in (tmp_path / "kept").iterdir() if not p.name.startswith("torchinductor_")]
    assert left == []  # the failed run removed its temporary directory


@pytest.mark.slow
def test_demo_on_postgresql(tmp_path: Path) -> None:
    """`mmgov demo --db postgres://… --keep DIR`: the same story, and the files stay in DIR."""
    from tests.conftest import _create_pg_database, _drop_pg_database

    name = _create_pg_database()
    url = f"postgres://postgres@127.0.0.1:5432/{name}"  # the short spelling, after the command
    keep = tmp_path / "kept"
    try:
        run = subprocess.run(
            [str(MMGOV), "demo", "--db", url, "--keep", str(keep), "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=400, check=False,
        )
    finally:
        _drop_pg_database(name)
    assert run.returncode == 0, run.stderr
    assert f"database {url} (yours: the demo model and its events stay there)" in run.stdout
    figures = _figures(run)
    assert figures["versions"] == [1, 2]
    assert figures["served_after_rollback"] == 1
    assert figures["audit_ok"] is True
    assert figures["kept"] is True
    kept = sorted(p.name for p in keep.iterdir())
    assert kept == ["pipeline", "v1.safetensors", "v2.safetensors"]
