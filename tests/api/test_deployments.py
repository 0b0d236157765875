"""The closed loop over HTTP: heartbeats with a scoped token, status, rollback policies, webhook."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry import service
from registry.api import create_app
from tests.api.conftest import ALERTS_TOKEN, CLI_ADMIN, Registry, make_settings, remote_version_body
from tests.api.test_alerts import FIRING

V1 = "/api/v1"


@pytest.fixture
def loop(registry_db: Registry) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app (heartbeats at most one per 60 s) with model `mm` v1, v2; production 1 then 2."""
    app = create_app(make_settings(registry_db, heartbeat_min_interval=60), db=registry_db.db)
    _, secret = service.create_token(
        registry_db.db, CLI_ADMIN, team="alpha", role="reader", name="serving",
        scope="deployments",
    )
    with TestClient(app) as client:
        h = registry_db.headers("maintainer")
        for epochs in (1, 2):
            r = client.post(f"{V1}/models/mm/versions", json=remote_version_body(epochs),
                            headers=h)
            assert r.status_code == 201, r.text
        for version in (1, 2):
            r = client.put(f"{V1}/models/mm/aliases/production", json={"version": version},
                           headers=h)
            assert r.status_code == 200, r.text
        yield client, {"Authorization": f"Bearer {secret}"}


def _beat(client: TestClient, version: int = 2, **change: object) -> dict[str, object]:
    found = service.get_version(client.app.state.db, CLI_ADMIN, "mm", version)
    return {"instance": "pod-1", "version": version, "alias": "production",
            "config_hash": found.config_hash, "module_hashes": {}, **change}


class TestHeartbeatRoute:
    def test_scoped_token_posts_and_status_lists(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """The deployments token posts; status shows the instance on production v2."""
        client, serving = loop
        r = client.post(f"{V1}/models/mm/deployments", json=_beat(client), headers=serving)
        assert r.status_code == 200, r.text
        assert r.json()["matches"] is True
        status = client.get(f"{V1}/models/mm/status", headers=registry_db.headers("reader"))
        assert status.status_code == 200, status.text
        assert status.json()["aliases"] == [
            {"alias": "production", "version": 2, "instances": 1, "serving_other": []}
        ]

    def test_flood_is_429_and_writes_nothing(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """A second heartbeat within the interval is a 429 problem; the row is unchanged."""
        client, serving = loop
        client.post(f"{V1}/models/mm/deployments", json=_beat(client), headers=serving)
        r = client.post(f"{V1}/models/mm/deployments", json=_beat(client, 1), headers=serving)
        assert r.status_code == 429, r.text
        assert r.json()["status"] == 429
        listed = client.get(f"{V1}/models/mm/deployments", headers=serving).json()
        assert [(d["version"], d["heartbeats"]) for d in listed] == [(2, 1)]

    @pytest.mark.parametrize(
        ("who", "change", "code"),
        [
            ("reader", {}, 403),
            ("other", {}, 404),
            ("serving", {"version": 9}, 404),
            ("serving", {"module_hashes": {"text": "not-a-hash"}}, 422),
            ("serving", {"config_hash": "0" * 63}, 422),
            ("serving", {"instance": "bad name with spaces"}, 422),
        ],
    )
    def test_bad_heartbeats(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry,
        who: str, change: dict[str, object], code: int,
    ):
        """Unscoped reader, another team, unknown version, malformed hashes: an error, no row."""
        client, serving = loop
        headers = serving if who == "serving" else registry_db.headers(who)
        r = client.post(f"{V1}/models/mm/deployments", json={**_beat(client), **change},
                        headers=headers)
        assert r.status_code == code, r.text
        assert client.get(f"{V1}/models/mm/deployments", headers=serving).json() == []


class TestRollbackPolicyRoutes:
    def test_webhook_alert_rolls_production_back(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """Policy set over HTTP; a drift alert on v2 through the webhook moves production to 1."""
        client, _serving = loop
        h = registry_db.headers("maintainer")
        r = client.put(f"{V1}/models/mm/aliases/production/rollback-policy",
                       json={"alertnames": ["MmgovDriftDetected"]}, headers=h)
        assert r.status_code == 200, r.text
        payload = copy.deepcopy(FIRING)
        payload["alerts"][0]["labels"]["version"] = "2"
        r = client.post(f"{V1}/alerts", json=payload,
                        headers={"Authorization": f"Bearer {ALERTS_TOKEN}"})
        assert r.status_code == 200, r.text
        alias = client.get(f"{V1}/models/mm/aliases/production", headers=h).json()
        assert alias["version"] == 1
        decisions = client.get(f"{V1}/models/mm/auto-rollbacks", headers=h).json()
        assert [(d["outcome"], d["from_version"], d["to_version"]) for d in decisions] == [
            ("rolled_back", 2, 1)
        ]

    def test_policy_for_missing_alias_is_404(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """A policy naming an alias that does not exist: 404, nothing stored."""
        client, _serving = loop
        h = registry_db.headers("maintainer")
        r = client.put(f"{V1}/models/mm/aliases/canary/rollback-policy", json={}, headers=h)
        assert r.status_code == 404, r.text
        assert client.get(f"{V1}/models/mm/rollback-policies", headers=h).json() == []

    def test_reader_cannot_set_a_policy(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """Setting a policy needs a maintainer."""
        client, serving = loop
        r = client.put(f"{V1}/models/mm/aliases/production/rollback-policy", json={},
                       headers=serving)
        assert r.status_code == 403, r.text


class TestMismatchMetric:
    def test_mismatching_instance_is_exported(
        self, loop: tuple[TestClient, dict[str, str]], registry_db: Registry
    ):
        """A heartbeat with another config hash shows on /metrics, per model, version, module."""
        client, serving = loop
        r = client.post(f"{V1}/models/mm/deployments",
                        json={**_beat(client), "config_hash": "e" * 64}, headers=serving)
        assert r.status_code == 200, r.text
        assert r.json()["mismatched"] == ["config"]
        text = client.get("/metrics", headers=registry_db.headers("admin")).text
        assert (
            'mmgov_registry_deployment_mismatch{model="mm",module="config",version="2"} 1.0'
            in text
        )
