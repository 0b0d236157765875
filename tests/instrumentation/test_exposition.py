"""Tests for instrumentation.exposition: HTTP server, ASGI app, multiprocess mode."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from instrumentation import DriftSnapshot, instrument, metrics_asgi_app, start_metrics_server
from instrumentation.metrics import DOC, DRIFT_SCORE, DRIFT_WINDOWS, INSTRUMENTATION_ERRORS
from tests.instrumentation._models import TinyMultimodal, inputs

REPO = Path(__file__).resolve().parents[2]
LINE = 'mmgov_module_calls_total{model="tiny",module="fusion_layer",version="3"} 2.0'


class TestServers:
    def test_http_server_on_loopback(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """A real HTTP scrape on 127.0.0.1 returns the module counters."""
        server = start_metrics_server(0, registry=registry)
        try:
            with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
                model(*inputs())
                model(*inputs())
                url = f"http://127.0.0.1:{server.server_port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as resp:
                    body = resp.read().decode()
        finally:
            server.shutdown()
            server.server_close()
        assert LINE in body

    def test_asgi_app_mounted_in_fastapi(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """The ASGI app mounted at /metrics serves the same exposition."""
        app = FastAPI()
        app.mount("/metrics", metrics_asgi_app(registry))
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            model(*inputs())
            model(*inputs())
            resp = TestClient(app).get("/metrics/")
        assert resp.status_code == 200
        assert LINE in resp.text

    def test_bad_port_refused(self) -> None:
        """A port outside 0..65535 is a ValueError."""
        with pytest.raises(ValueError, match="port"):
            start_metrics_server(70000)


class _FixedDrift:
    """A drift observer whose snapshot has a score, closed windows and alarms."""

    def observe(self, output: object) -> None:
        """Accept every output."""

    def snapshot(self) -> DriftSnapshot:
        return DriftSnapshot(score=0.5, windows=2, alarms=1)


def typed_run(registry: CollectorRegistry | None) -> bytes:
    """Forwards that give every family a value: calls, sampled gauges, drift, errors, NaN.

    Returns ``registry``'s exposition before detaching; with ``registry=None`` under
    ``PROMETHEUS_MULTIPROC_DIR`` it writes the multiprocess files and returns nothing.
    """
    model = TinyMultimodal().eval()
    with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                    drift={"text_encoder": _FixedDrift()}, sample_every=1):
        model(*inputs())
        model.fusion_layer.fail = RuntimeError("typed run")
        model.image_encoder.poison = True
        with pytest.raises(RuntimeError):
            model(*inputs())
        return b"" if registry is None else generate_latest(registry)


def _type_lines(exposition: bytes) -> set[str]:
    return {line for line in exposition.decode().splitlines() if line.startswith("# TYPE ")}


class TestMultiprocess:
    def test_type_lines_are_the_same_in_both_modes(self, tmp_path: Path) -> None:
        """The `# TYPE` lines of a scrape and of a multiprocess scrape agree, drift's included."""
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
        code = "from tests.instrumentation.test_exposition import typed_run; typed_run(None)"
        subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(tmp_path))
        multiprocess = _type_lines(generate_latest(merged))
        single = _type_lines(typed_run(CollectorRegistry()))
        assert len(single) == len(DOC)
        # A counter never incremented has no series in the multiprocess files: our own errors.
        assert single - multiprocess == {f"# TYPE {INSTRUMENTATION_ERRORS} counter"}
        assert multiprocess <= single
        assert f"# TYPE {DRIFT_WINDOWS} counter" in multiprocess
        assert f"# TYPE {DRIFT_SCORE} gauge" in multiprocess

    def test_two_worker_processes_are_summed(self, tmp_path: Path) -> None:
        """Two real processes write PROMETHEUS_MULTIPROC_DIR; the merged scrape sums them."""
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
               "PYTHONPATH": str(REPO)}
        workers = [
            subprocess.Popen([sys.executable, "-m", "tests.instrumentation._worker", ok, fail],
                             cwd=REPO, env=env)
            for ok, fail in (("5", "1"), ("7", "2"))
        ]
        assert [w.wait(timeout=120) for w in workers] == [0, 0]
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=str(tmp_path))
        labels = {"model": "tiny", "version": "3", "module": "fusion_layer"}
        assert merged.get_sample_value("mmgov_module_calls_total", labels) == 15
        assert merged.get_sample_value("mmgov_module_latency_seconds_count", labels) == 12
        errors = merged.get_sample_value(
            "mmgov_module_errors_total", {**labels, "error_type": "RuntimeError"}
        )
        assert errors == 3
        image_labels = {**labels, "module": "image_encoder"}
        assert merged.get_sample_value("mmgov_module_nonfinite_outputs_total", image_labels) == 3
        # A counter never incremented has no series in the multiprocess files.
        assert merged.get_sample_value("mmgov_module_nonfinite_outputs_total", labels) is None
        buckets = merged.get_sample_value(
            "mmgov_module_latency_seconds_bucket", {**labels, "le": "+Inf"}
        )
        assert buckets == 12
        assert 0 < merged.get_sample_value("mmgov_module_latency_seconds_sum", labels) < 12 * 10
        text_labels = {**labels, "module": "text_encoder"}
        assert merged.get_sample_value("mmgov_module_calls_total", text_labels) == 15
