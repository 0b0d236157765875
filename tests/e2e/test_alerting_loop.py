"""The alerting loop: drift → metrics → Prometheus → Alertmanager → sidecar incident → resolved.

Real processes on loopback: the admin API under uvicorn on a migrated database (SQLite and
PostgreSQL), the reference model instrumented in `examples.serve_instrumented`, Prometheus with
configs/alerts.yml and Alertmanager built from the example configs (intervals shortened).
"""

from __future__ import annotations

import functools
import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from registry.config import canonicalize, load_config_file, parse_yaml
from registry.db import Database, upgrade
from registry.schemas import Actor
from registry.service import create_team, create_token, register_version
from registry.weights import inspect_weights
from tests._support import (
    PYTHON,
    REPO,
    Processes,
    free_port,
    http_ok,
    python_env,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

MODEL = "e2e-mm"
TEAM = "ml-ops"
DRIFTED_MODULE = "image_encoder"
CONTROL_MODULE = "text_encoder"  # sees the same captions throughout: must raise nothing
ALERT = "MMGovEmbeddingDrift"
ADMIN = Actor(name="e2e", team=None, role="admin")

START_TIMEOUT = 60.0  # model build + reference capture on a busy 2-core machine
FIRE_TIMEOUT = 60.0  # `for: 10s` + scrape/evaluation/group waits of about a second each
RESOLVE_TIMEOUT = 60.0


def small_model_config(path: Path) -> Path:
    """Write configs/model.yaml with a shrunk image encoder and 50-sample drift windows."""
    config = parse_yaml((REPO / "configs" / "model.yaml").read_text(encoding="utf-8"))
    config["model"]["name"] = MODEL
    config["image_encoder"].update(
        image_size=32, patch_size=8, hidden_size=64, intermediate_size=128,
        num_hidden_layers=2, num_attention_heads=4,
    )
    config["text_encoder"]["max_length"] = 32
    config["fusion"].update(hidden_size=64, num_heads=4)
    config["monitoring"].update(window=50, stride=50, sample_every=10)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def prometheus_config(path: Path, *, metrics_port: int, alertmanager_port: int) -> Path:
    """Write the example Prometheus config with 1 s intervals, our targets and alerts.yml."""
    config = yaml.safe_load((REPO / "configs" / "prometheus.example.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (path.parent / "alerts.yml").write_bytes((REPO / "configs" / "alerts.yml").read_bytes())
    config["rule_files"] = ["alerts.yml"]
    config["alerting"]["alertmanagers"][0]["static_configs"] = [
        {"targets": [f"127.0.0.1:{alertmanager_port}"]}
    ]
    scrape = config["scrape_configs"][0]  # the serving process; the sidecar job is not needed
    scrape["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    config["scrape_configs"] = [scrape]
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def alertmanager_config(path: Path, *, sidecar_port: int, token_file: Path) -> Path:
    """Write the example Alertmanager config with 1 s grouping, pointed at our sidecar."""
    config = yaml.safe_load((REPO / "configs" / "alertmanager.example.yml").read_text())
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    webhook = config["receivers"][0]["webhook_configs"][0]
    webhook["url"] = f"http://127.0.0.1:{sidecar_port}/api/v1/alerts"
    webhook["http_config"]["authorization"]["credentials_file"] = str(token_file)
    assert webhook["send_resolved"] is True
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


@dataclass
class Loop:
    """The running loop: where to read incidents and how to switch the input stream."""

    api: str
    reader_headers: dict[str, str]
    control_file: Path
    prometheus: str
    version: int

    def set_mode(self, mode: str) -> None:
        """Switch the serving worker's input stream (it rereads the file every batch)."""
        tmp = self.control_file.with_name("mode.tmp")
        tmp.write_text(mode, encoding="utf-8")
        os.replace(tmp, self.control_file)

    def incidents(self, **params: str) -> list[dict[str, Any]]:
        """GET /api/v1/incidents with ``params``; fails on a non-200 answer."""
        response = httpx.get(
            f"{self.api}/api/v1/incidents",
            params={"model": MODEL, **params},
            headers=self.reader_headers,
            timeout=5.0,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        items: list[dict[str, Any]] = body["items"] if isinstance(body, dict) else body
        return items

    def prom_query(self, query: str) -> list[dict[str, Any]]:
        """Run an instant PromQL query; returns its result vector."""
        response = httpx.get(f"{self.prometheus}/api/v1/query", params={"query": query}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result


@pytest.fixture
def loop(
    db_url: str,
    tmp_path: Path,
    processes: Processes,
    prometheus_bin: str,
    alertmanager_bin: str,
) -> Loop:
    """Registry with the model at v1, sidecar, instrumented worker, Prometheus and Alertmanager."""
    model_config = small_model_config(tmp_path / "model.yaml")
    canonical = canonicalize(load_config_file(model_config))
    upgrade(db_url)
    db = Database(db_url)
    try:
        create_team(db, ADMIN, TEAM)
        registered = register_version(
            db, ADMIN, model=MODEL, config=canonical, team=TEAM, note="end-to-end alerting",
            weights=inspect_weights(
                "s3://mmgov-e2e/e2e-mm/v1.safetensors",
                sha256=hashlib.sha256(b"e2e-mm v1 weights").hexdigest(),
            ),
        )
        _, reader_secret = create_token(db, ADMIN, team=TEAM, role="reader", name="e2e-reader")
    finally:
        db.dispose()
    version = registered.version.version

    token_file = tmp_path / "alerts-token"
    token_file.write_text("e2e-alertmanager-secret\n", encoding="utf-8")
    token_file.chmod(0o600)
    control_file = tmp_path / "mode"
    control_file.write_text("reference", encoding="utf-8")
    ready_file = tmp_path / "worker-ready.json"
    ports = {name: free_port() for name in ("sidecar", "metrics", "prometheus", "alertmanager")}

    # Started together: the worker's model build overlaps the other processes' start-up.
    processes.start(
        "serving-worker",
        [
            PYTHON, "-m", "examples.serve_instrumented",
            "--config", str(model_config), "--model-name", MODEL, "--version", str(version),
            "--config-hash", canonical.hash,
            "--monitor", DRIFTED_MODULE, "--monitor", CONTROL_MODULE,
            "--metrics-port", str(ports["metrics"]), "--ready-file", str(ready_file),
            "--control-file", str(control_file),
        ],
        env=python_env(),
        cwd=REPO,
    )
    processes.start(
        "sidecar",
        [
            PYTHON, "-m", "uvicorn", "--factory", "registry.api:create_app",
            "--host", "127.0.0.1", "--port", str(ports["sidecar"]), "--log-level", "info",
        ],
        env=python_env(MMGOV_DATABASE_URL=db_url, MMGOV_ALERTS_TOKEN_FILE=str(token_file)),
        cwd=REPO,
    )
    am_dir = tmp_path / "alertmanager"
    am_dir.mkdir()
    processes.start(
        "alertmanager",
        [
            alertmanager_bin,
            f"--config.file={alertmanager_config(am_dir / 'alertmanager.yml', sidecar_port=ports['sidecar'], token_file=token_file)}",  # noqa: E501
            f"--storage.path={am_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
            "--cluster.listen-address=",
        ],
    )
    prom_dir = tmp_path / "prometheus"
    prom_dir.mkdir()
    prom_config = prometheus_config(
        prom_dir / "prometheus.yml",
        metrics_port=ports["metrics"],
        alertmanager_port=ports["alertmanager"],
    )
    processes.start(
        "prometheus",
        [
            prometheus_bin,
            f"--config.file={prom_config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
    )

    api = f"http://127.0.0.1:{ports['sidecar']}"
    prometheus = f"http://127.0.0.1:{ports['prometheus']}"
    for what, url in (
        ("sidecar", f"{api}/readyz"),
        ("alertmanager", f"http://127.0.0.1:{ports['alertmanager']}/-/ready"),
        ("prometheus", f"{prometheus}/-/ready"),
    ):
        wait_until(
            f"{what} to answer {url}", functools.partial(http_ok, url),
            timeout=START_TIMEOUT, give_up=processes.exited,
        )
    wait_until(
        "the serving worker to capture its reference and serve /metrics",
        ready_file.exists, timeout=START_TIMEOUT, give_up=processes.exited,
    )
    return Loop(
        api=api,
        reader_headers={"Authorization": f"Bearer {reader_secret}"},
        control_file=control_file,
        prometheus=prometheus,
        version=version,
    )


def test_drift_opens_an_incident_and_recovery_resolves_it(
    loop: Loop, processes: Processes
) -> None:
    """Drifted images open one incident on the model, version and module; clean ones resolve it."""
    started = time.monotonic()
    labels = f'model="{MODEL}",version="{loop.version}"'
    # The loop is live before the drift starts: Prometheus scrapes drift scores of both modules.
    wait_until(
        "Prometheus to scrape drift scores of both monitored modules",
        lambda: len(loop.prom_query(f"mmgov_drift_score{{{labels}}}")) == 2,
        timeout=START_TIMEOUT, give_up=processes.exited,
    )
    assert loop.incidents() == []

    loop.set_mode("drifted")
    drift_onset = time.monotonic()
    opened = wait_until(
        f"an open {ALERT} incident on {DRIFTED_MODULE}",
        lambda: [i for i in loop.incidents(status="open") if i["module"] == DRIFTED_MODULE],
        timeout=FIRE_TIMEOUT, interval=0.5, give_up=processes.exited,
    )
    time_to_incident = time.monotonic() - drift_onset
    assert len(opened) == 1
    incident = opened[0]
    assert incident["alertname"] == ALERT
    assert incident["model"] == MODEL
    assert incident["version"] == loop.version
    assert incident["labels"]["severity"] == "warning"
    assert incident["annotations"]["summary"] == (
        f"Embedding drift on {MODEL} v{loop.version} {DRIFTED_MODULE}"
    )
    assert incident["ends_at"] is None

    loop.set_mode("reference")
    recovery = time.monotonic()
    resolved = wait_until(
        f"incident {incident['id']} to be resolved",
        lambda: [i for i in loop.incidents(status="resolved") if i["id"] == incident["id"]],
        timeout=RESOLVE_TIMEOUT, interval=0.5, give_up=processes.exited,
    )
    time_to_resolved = time.monotonic() - recovery
    assert resolved[0]["ends_at"] is not None
    assert loop.incidents(status="open") == []
    # The text encoder saw the same captions throughout: no incident names it.
    assert all(i["module"] != CONTROL_MODULE for i in loop.incidents())
    print(
        f"\nalerting loop: drift onset → incident {time_to_incident:.1f}s, "
        f"recovery → resolved {time_to_resolved:.1f}s, "
        f"test body {time.monotonic() - started:.1f}s"
    )
