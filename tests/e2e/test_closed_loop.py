"""The closed loop: drift on v2 → Prometheus → Alertmanager → incident → production rolled back to
v1 by its policy → the serving process loads v1 and reports it, hashes matching → a second failure
within the cool-down moves nothing.

Real processes on loopback, as in test_alerting_loop: the sidecar under uvicorn (SQLite and
PostgreSQL), Prometheus with configs/alerts.yml, Alertmanager, and `examples.serve_follow` (a
`ServingLoop` following production with a deployments-scoped token).
"""

from __future__ import annotations

import copy
import functools
import os
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from examples.multimodal import Preprocessor, build_model, load_config, save_weights
from examples.serve_instrumented import InputStream
from instrumentation.drift import capture_reference
from registry import service
from registry.config import canonicalize
from registry.db import Database, upgrade
from registry.loop_schemas import RollbackPolicyIn
from registry.schemas import Actor
from tests._support import PYTHON, REPO, Processes, free_port, http_ok, python_env, wait_until
from tests.e2e.test_alerting_loop import (
    ALERT,
    CONTROL_MODULE,
    DRIFTED_MODULE,
    MODEL,
    START_TIMEOUT,
    TEAM,
    alertmanager_config,
    prometheus_config,
    small_model_config,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = Actor(name="e2e", team=None, role="admin")
FIRE_TIMEOUT = 90.0
FOLLOW_TIMEOUT = 30.0


def _register(db: Database, config_path: Path, work: Path) -> None:
    """Versions 1 and 2 with real weights and reference profiles; production 1 → 2; a policy."""
    base = load_config(config_path)
    for version in (1, 2):
        raw = copy.deepcopy(base)
        raw["training"]["epochs"] = version
        torch.manual_seed(version)
        model = build_model(raw)
        weights = save_weights(model, work / f"v{version}.safetensors")
        stream = InputStream(Preprocessor.from_config(raw), batch_size=10, seed=version)
        profile = capture_reference(
            model, [stream.batch("reference") for _ in range(40)],
            modules=[DRIFTED_MODULE, CONTROL_MODULE],
            pooling=str(raw["monitoring"].get("pooling", "cls")),
        )
        service.register_version(db, ADMIN, model=MODEL, team=TEAM, config=canonicalize(raw),
                                 weights=service.WeightsSource(uri=str(weights)))
        service.attach_reference(db, ADMIN, model=MODEL, version=version, fmt=profile.FORMAT,
                                 blob=profile.to_bytes(), n_samples=profile.n_samples,
                                 modules=profile.modules)
        service.promote(db, ADMIN, model=MODEL, version=version, alias="production")
    service.set_rollback_policy(db, ADMIN, model=MODEL, alias="production", rules=RollbackPolicyIn(
        alertnames=[ALERT], cooldown_seconds=3600,
    ))


def _state(db: Database) -> dict[str, Any]:
    deployments = service.list_deployments(db, ADMIN, MODEL)
    return {
        "production": service.resolve_alias(db, ADMIN, MODEL, "production").version.version,
        "deployments": [(d.instance, d.version, d.matches) for d in deployments],
        "decisions": [(d.outcome, d.from_version, d.to_version)
                      for d in service.list_auto_rollbacks(db, ADMIN, MODEL)],
    }


def test_drift_rolls_production_back_and_the_serving_process_follows(
    db_url: str, tmp_path: Path, processes: Processes, prometheus_bin: str,
    alertmanager_bin: str,
) -> None:
    """Drifted inputs on v2: production back to v1, the process reports v1 with matching hashes;
    drift on v1 within the cool-down is recorded and moves nothing."""
    config_path = small_model_config(tmp_path / "model.yaml")
    upgrade(db_url)
    db = Database(db_url)
    try:
        service.create_team(db, ADMIN, TEAM)
        _register(db, config_path, tmp_path)
        _, secret = service.create_token(db, ADMIN, team=TEAM, role="reader", name="pod",
                                         scope="deployments")
        token_file = tmp_path / "serving-token"
        token_file.write_text(secret, encoding="utf-8")
        alerts_file = tmp_path / "alerts-token"
        alerts_file.write_text("e2e-alertmanager-secret\n", encoding="utf-8")
        control_file = tmp_path / "mode"
        control_file.write_text("reference", encoding="utf-8")
        ready_file = tmp_path / "worker-ready.json"
        ports = {n: free_port() for n in ("sidecar", "metrics", "prometheus", "alertmanager")}
        api = f"http://127.0.0.1:{ports['sidecar']}"
        processes.start(
            "sidecar",
            [PYTHON, "-m", "uvicorn", "--factory", "registry.api:create_app",
             "--host", "127.0.0.1", "--port", str(ports["sidecar"]), "--log-level", "info"],
            env=python_env(MMGOV_DATABASE_URL=db_url, MMGOV_ALERTS_TOKEN_FILE=str(alerts_file),
                           MMGOV_HEARTBEAT_MIN_INTERVAL="0.2"),
            cwd=REPO,
        )
        am_dir, prom_dir = tmp_path / "alertmanager", tmp_path / "prometheus"
        am_dir.mkdir()
        prom_dir.mkdir()
        am_config = alertmanager_config(am_dir / "alertmanager.yml",
                                        sidecar_port=ports["sidecar"], token_file=alerts_file)
        processes.start("alertmanager", [
            alertmanager_bin, f"--config.file={am_config}", f"--storage.path={am_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['alertmanager']}", "--cluster.listen-address=",
        ])
        prom_config = prometheus_config(prom_dir / "prometheus.yml", metrics_port=ports["metrics"],
                                        alertmanager_port=ports["alertmanager"])
        processes.start("prometheus", [
            prometheus_bin, f"--config.file={prom_config}",
            f"--storage.tsdb.path={prom_dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ])
        wait_until("the sidecar", functools.partial(http_ok, f"{api}/readyz"),
                   timeout=START_TIMEOUT, give_up=processes.exited)
        processes.start(
            "serving-process",
            [PYTHON, "-m", "examples.serve_follow", "--registry", api,
             "--token-file", str(token_file), "--model-name", MODEL, "--instance", "pod-1",
             "--metrics-port", str(ports["metrics"]), "--ready-file", str(ready_file),
             "--control-file", str(control_file), "--heartbeat", "0.5"],
            env=python_env(), cwd=REPO,
        )
        for what, url in (
            ("alertmanager", f"http://127.0.0.1:{ports['alertmanager']}/-/ready"),
            ("prometheus", f"http://127.0.0.1:{ports['prometheus']}/-/ready"),
        ):
            wait_until(what, functools.partial(http_ok, url), timeout=START_TIMEOUT,
                       give_up=processes.exited)
        wait_until("the serving process to report v2 with matching hashes",
                   lambda: _state(db)["deployments"] == [("pod-1", 2, True)],
                   timeout=START_TIMEOUT, interval=0.2, give_up=processes.exited)

        tmp = control_file.with_name("mode.tmp")
        tmp.write_text("drifted", encoding="utf-8")
        os.replace(tmp, control_file)
        onset = time.monotonic()
        wait_until("production rolled back to v1",
                   lambda: _state(db)["production"] == 1,
                   timeout=FIRE_TIMEOUT, interval=0.2, give_up=processes.exited)
        rolled = time.monotonic()
        wait_until("the serving process to report v1 with matching hashes",
                   lambda: _state(db)["deployments"] == [("pod-1", 1, True)],
                   timeout=FOLLOW_TIMEOUT, interval=0.1, give_up=processes.exited)
        followed = time.monotonic()
        state = _state(db)
        assert state["decisions"] == [("rolled_back", 2, 1)]
        [incident] = [i for i in service.list_incidents(db, ADMIN, model=MODEL, version=2).items
                      if i.alertname == ALERT]
        move = service.alias_history(db, ADMIN, MODEL, "production").items[0]
        assert incident.answered_by_move == move.id
        assert f"incident {incident.id}" in move.reason

        # Still drifted, now on v1: its alert opens an incident within the cool-down.
        wait_until("a second automatic decision (cool-down)",
                   lambda: len(_state(db)["decisions"]) == 2,
                   timeout=FIRE_TIMEOUT, interval=0.5, give_up=processes.exited)
        state = _state(db)
        assert state["decisions"][0] == ("cooldown", 1, None)
        assert state["production"] == 1
        assert state["deployments"] == [("pod-1", 1, True)]
        print(f"\nclosed loop: drift onset → rolled back {rolled - onset:.1f}s, "
              f"→ serving process reports v1 {followed - rolled:.1f}s later")
    finally:
        db.dispose()
