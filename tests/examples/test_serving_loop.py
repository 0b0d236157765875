"""The serving loop closes the loop over real HTTP: heartbeats, automatic rollback, follow-up."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from prometheus_client import CollectorRegistry

from examples.multimodal import build_model, save_weights
from examples.serving import ServingLoop
from examples.sidecar import ApiThread
from registry import db as dbmod
from registry import service
from registry.api import ApiSettings, create_app
from registry.client import IntegrityError, RegistryClient
from registry.config import canonicalize
from registry.loop_schemas import RollbackPolicyIn
from registry.schemas import Actor
from tests._support import wait_until

ADMIN = Actor(name="tester", role="admin")
ALERTS = "alerts-secret"


def _alert(fingerprint: str, version: int) -> dict[str, Any]:
    started = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    return {
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "mmgov",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": "MmgovDriftDetected", "model": "mm",
                       "version": str(version), "severity": "warning"},
            "annotations": {}, "startsAt": started, "fingerprint": fingerprint,
        }],
    }


@pytest.fixture
def sidecar(
    db_url: str, tmp_path: Path, seed_config: dict[str, Any]
) -> Iterator[tuple[str, str, dbmod.Database]]:
    """A real API on loopback over a registry with mm v1, v2 (production 1 → 2, a policy)."""
    dbmod.upgrade(db_url)
    db = dbmod.open_database(db_url)
    service.create_team(db, ADMIN, "alpha")
    for i in (1, 2):
        raw = copy.deepcopy(seed_config)
        raw["training"]["epochs"] = 10 + i
        torch.manual_seed(i)
        weights = save_weights(build_model(raw), tmp_path / f"v{i}.safetensors")
        service.register_version(db, ADMIN, model="mm", team="alpha", config=canonicalize(raw),
                                 weights=service.WeightsSource(uri=str(weights)))
        service.promote(db, ADMIN, model="mm", version=i, alias="production")
    service.set_rollback_policy(db, ADMIN, model="mm", alias="production", rules=RollbackPolicyIn(
        alertnames=["MmgovDriftDetected"], cooldown_seconds=3600,
    ))
    _, token = service.create_token(db, ADMIN, team="alpha", role="reader", name="pod",
                                    scope="deployments")
    settings = ApiSettings(database_url=db_url, alerts_token=ALERTS, heartbeat_min_interval=0.1,
                           token_cache_seconds=0)
    api = ApiThread(create_app(settings, db=db)).start()
    try:
        yield api.url, token, db
    finally:
        api.stop()
        db.dispose()


def _deployment(db: dbmod.Database) -> tuple[int, bool] | None:
    found = service.list_deployments(db, ADMIN, "mm")
    return (found[0].version, found[0].matches) if found else None


def test_alert_rolls_back_and_the_loop_reports_the_previous_version(
    sidecar: tuple[str, str, dbmod.Database]
):
    """v2 serves; a drift alert rolls production back to v1; the loop loads v1 and reports it
    with matching hashes; a second failure within the cool-down moves nothing."""
    url, token, db = sidecar
    registry = CollectorRegistry()
    client = RegistryClient(url, token, prometheus_registry=registry)
    loop = ServingLoop(client, "mm", prometheus_registry=registry, instance="pod-1",
                       heartbeat_interval=0.2)
    try:
        assert loop.start(interval=0.1).version == 2
        wait_until("deployment v2 to be reported serving", lambda: _deployment(db) == (2, True),
                   timeout=30, interval=0.05)
        r = httpx.post(f"{url}/api/v1/alerts", json=_alert("f1", 2),
                       headers={"Authorization": f"Bearer {ALERTS}"})
        assert r.status_code == 200, r.text
        assert service.resolve_alias(db, ADMIN, "mm", "production").version.version == 1
        assert loop.wait_for_version(1, timeout=30)
        wait_until("deployment v1 to be reported serving", lambda: _deployment(db) == (1, True),
                   timeout=30, interval=0.05)
        info = {s.labels["version"] for m in registry.collect() for s in m.samples
                if s.name == "mmgov_model_info"}
        assert info == {"1"}
        r = httpx.post(f"{url}/api/v1/alerts", json=_alert("f2", 1),
                       headers={"Authorization": f"Bearer {ALERTS}"})
        assert r.status_code == 200, r.text
        outcomes = [d.outcome for d in service.list_auto_rollbacks(db, ADMIN, "mm")]
        assert outcomes == ["cooldown", "rolled_back"]
        assert service.resolve_alias(db, ADMIN, "mm", "production").version.version == 1
        assert loop.current.version == 1
    finally:
        loop.close()
        client.close()


def test_loaded_modules_that_differ_are_refused(sidecar: tuple[str, str, dbmod.Database]):
    """A version whose registered module hashes are not what loads is refused at load."""
    url, token, _db = sidecar
    registry = CollectorRegistry()
    client = RegistryClient(url, token, prometheus_registry=registry)
    loop = ServingLoop(client, "mm", prometheus_registry=registry)
    try:
        resolved = client.resolve("mm", "production")
        forged = copy.copy(resolved)
        object.__setattr__(forged, "module_hashes",
                           {**resolved.module_hashes, "fusion_layer": "0" * 64})
        with pytest.raises(IntegrityError, match="fusion_layer"):
            loop.load(forged)
    finally:
        loop.close()
        client.close()
