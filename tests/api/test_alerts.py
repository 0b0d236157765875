"""The Alertmanager webhook: incidents from a documented v4 payload, resolution, its own token."""

from __future__ import annotations

import copy

from fastapi.testclient import TestClient

from registry.api.schemas import MAX_ALERTS_PER_WEBHOOK
from tests.api.conftest import ALERTS_TOKEN, Registry, remote_version_body

V1 = "/api/v1"
# Alertmanager's documented webhook format (version 4), as it posts it.
FIRING = {
    "version": "4",
    "groupKey": '{}:{alertname="MmgovDriftDetected"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "mmgov",
    "groupLabels": {"alertname": "MmgovDriftDetected"},
    "commonLabels": {"alertname": "MmgovDriftDetected", "model": "mm", "severity": "warning"},
    "commonAnnotations": {"summary": "embedding drift"},
    "externalURL": "http://alertmanager:9093",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "MmgovDriftDetected", "model": "mm", "version": "1",
                       "module": "text_encoder", "severity": "warning"},
            "annotations": {"summary": "embedding drift on text_encoder"},
            "startsAt": "2026-11-28T10:00:00.000Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus:9090/graph?g0.expr=mmgov_drift_score",
            "fingerprint": "a1b2c3d4e5f60718",
        }
    ],
}


def _post(client: TestClient, payload: dict, token: str | None) -> object:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return client.post(f"{V1}/alerts", json=payload, headers=headers)


def _setup(client: TestClient, reg: Registry) -> None:
    r = client.post(f"{V1}/models/mm/versions", json=remote_version_body(1),
                    headers=reg.headers("maintainer"))
    assert r.status_code == 201


class TestWebhook:
    def test_firing_then_resolved(self, client: TestClient, registry_db: Registry):
        """A firing payload opens an incident linked to model/version/module; resolved closes it."""
        _setup(client, registry_db)
        r = _post(client, FIRING, ALERTS_TOKEN)
        assert r.status_code == 200, r.text
        incidents = client.get(f"{V1}/incidents?model=mm",
                               headers=registry_db.headers("reader")).json()
        assert len(incidents) == 1
        incident = incidents[0]
        assert (incident["status"], incident["model"], incident["version"], incident["module"]) == (
            "open", "mm", 1, "text_encoder")
        resolved = copy.deepcopy(FIRING)
        resolved["status"] = "resolved"
        resolved["alerts"][0]["status"] = "resolved"
        resolved["alerts"][0]["endsAt"] = "2026-11-28T10:30:00Z"
        assert _post(client, resolved, ALERTS_TOKEN).status_code == 200
        after = client.get(f"{V1}/incidents?model=mm&status=resolved",
                           headers=registry_db.headers("reader")).json()
        assert [i["id"] for i in after] == [incident["id"]]
        assert client.get(f"{V1}/incidents?status=open",
                          headers=registry_db.headers("admin")).json() == []

    def test_wrong_or_missing_token_401_nothing_written(
        self, client: TestClient, registry_db: Registry
    ):
        """No token, a wrong one, or a user's admin token: 401 and no incident."""
        _setup(client, registry_db)
        for token in (None, "wrong", registry_db.tokens["admin"]):
            r = _post(client, FIRING, token)
            assert r.status_code == 401
            assert r.headers["content-type"] == "application/problem+json"
        assert client.get(f"{V1}/incidents", headers=registry_db.headers("admin")).json() == []

    def test_unknown_field_refused(self, client: TestClient, registry_db: Registry):
        """The payload schema forbids fields outside Alertmanager's format."""
        r = _post(client, {**FIRING, "extra": 1}, ALERTS_TOKEN)
        assert r.status_code == 422

    def test_many_alerts_share_links_and_too_many_are_refused(
        self, client: TestClient, registry_db: Registry
    ):
        """1,000 alerts of one version open 1,000 linked incidents; 1,001 get 422, none written."""
        _setup(client, registry_db)
        alert = FIRING["alerts"][0]
        payload = {**FIRING, "alerts": [
            {**alert, "fingerprint": f"{i:016x}"} for i in range(MAX_ALERTS_PER_WEBHOOK + 1)
        ]}
        r = _post(client, payload, ALERTS_TOKEN)
        assert r.status_code == 422
        assert client.get(f"{V1}/incidents", headers=registry_db.headers("admin")).json() == []
        payload["alerts"] = payload["alerts"][:MAX_ALERTS_PER_WEBHOOK]
        r = _post(client, payload, ALERTS_TOKEN)
        assert r.status_code == 200, r.text
        listed: list[dict[str, object]] = []
        url: str | None = f"{V1}/incidents?model=mm&limit=500"
        while url is not None:  # pages of 500 (the most a page holds), following Link: next
            page = client.get(url, headers=registry_db.headers("admin"))
            listed += page.json()
            url = page.links["next"]["url"] if "next" in page.links else None
        assert len(listed) == MAX_ALERTS_PER_WEBHOOK
        assert {(i["version"], i["module"]) for i in listed} == {(1, "text_encoder")}
