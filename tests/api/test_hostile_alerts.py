"""The webhook under hostile alerts: each alert is judged alone, never a 5xx, nothing unreadable."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from registry import service
from registry.models import Incident
from registry.schemas import AlertIn
from tests.api.conftest import ALERTS_TOKEN, CLI_ADMIN, Registry
from tests.api.test_alerts import FIRING, V1, _setup

AUTH = {"Authorization": f"Bearer {ALERTS_TOKEN}"}


def _alert(i: int = 0, **changes: Any) -> dict[str, Any]:
    alert = copy.deepcopy(FIRING["alerts"][0])
    alert["fingerprint"] = f"{i:016x}"
    for key, value in changes.items():
        if key in ("labels", "annotations"):
            alert[key] = {**alert[key], **value}
        else:
            alert[key] = value
    return alert


def _post(client: TestClient, alerts: list[dict[str, Any]]) -> Any:
    # json.dumps escapes lone surrogates as \\ud800, as a hostile client would send them.
    body = json.dumps({**FIRING, "alerts": alerts})
    return client.post(f"{V1}/alerts", content=body,
                       headers={**AUTH, "Content-Type": "application/json"})


BAD_ALERTS = {
    "naive startsAt": {"startsAt": "2026-11-28T10:00:00"},
    "year 9999 at -14:00": {"startsAt": "9999-12-31T23:00:00-14:00"},
    "endsAt past year 9999": {"endsAt": "9999-12-31T20:00:00-14:00"},
    "200-character module": {"labels": {"module": "m" * 200}},
    "200-character alertname": {"labels": {"alertname": "a" * 200}},
    "lone surrogate annotation": {"annotations": {"summary": "drift \ud800"}},
    "lone surrogate label name": {"labels": {"\udfff": "x"}},
    "NUL in a label": {"labels": {"module": "text\x00encoder"}},
    "too many labels": {"labels": {f"l{i}": "v" for i in range(100)}},
    "long label value": {"labels": {"severity": "w" * 5000}},
    "not a status": {"status": "pending"},
    "surrogate fingerprint": {"fingerprint": "\ud800"},
}


class TestEachAlertAlone:
    @pytest.mark.parametrize("case", sorted(BAD_ALERTS))
    def test_bad_alert_rejected_good_one_recorded(
        self, case: str, client: TestClient, registry_db: Registry
    ):
        """A bad alert is reported back with 200 and the good one beside it becomes an incident."""
        _setup(client, registry_db)
        r = _post(client, [_alert(0), _alert(1, **BAD_ALERTS[case])])
        assert r.status_code == 200, r.text
        body = r.json()
        assert [i["fingerprint"] for i in body["incidents"]] == [f"{0:016x}"]
        assert [x["index"] for x in body["rejected"]] == [1]
        assert body["rejected"][0]["errors"], body
        listed = client.get(f"{V1}/incidents", headers=registry_db.headers("admin"))
        assert listed.status_code == 200
        assert [i["fingerprint"] for i in listed.json()] == [f"{0:016x}"]

    @pytest.mark.parametrize("label", ["²", "99999999999999999999", "2147483648", "-1", "0"])
    def test_version_label_not_a_version_links_the_model_only(
        self, label: str, client: TestClient, registry_db: Registry
    ):
        """A version label that is no 32-bit version number is recorded without a version link."""
        _setup(client, registry_db)
        r = _post(client, [_alert(0, labels={"version": label})])
        assert r.status_code == 200, r.text
        (incident,) = r.json()["incidents"]
        assert (incident["model"], incident["version"]) == ("mm", None)
        assert incident["labels"]["version"] == label

    def test_timestamps_are_normalised_to_utc(self, client: TestClient, registry_db: Registry):
        """An offset is converted to UTC and Alertmanager's zero endsAt means no end."""
        _setup(client, registry_db)
        r = _post(client, [_alert(0, startsAt="2026-11-28T00:30:00-14:00")])
        (incident,) = r.json()["incidents"]
        assert incident["starts_at"].startswith("2026-11-28T14:30:00")
        assert incident["ends_at"] is None

    def test_999_good_and_one_bad(self, client: TestClient, registry_db: Registry):
        """999 good alerts and one bad: 999 incidents, one rejection counted in the metric."""
        _setup(client, registry_db)
        alerts = [_alert(i) for i in range(999)]
        alerts.insert(500, _alert(999, startsAt="2026-11-28T10:00:00"))
        r = _post(client, alerts)
        assert r.status_code == 200, r.text
        assert len(r.json()["incidents"]) == 999
        assert [x["index"] for x in r.json()["rejected"]] == [500]
        assert r.json()["rejected"][0]["fingerprint"] == f"{999:016x}"
        listed = client.get(f"{V1}/incidents", params={"limit": 500},
                            headers=registry_db.headers("admin"))
        last = listed.json()[-1]["id"]
        rest = client.get(f"{V1}/incidents", params={"limit": 500, "cursor": last},
                          headers=registry_db.headers("admin"))
        assert len(listed.json()) + len(rest.json()) == 999
        metrics = client.get("/metrics", headers=registry_db.headers("admin")).text
        assert "mmgov_api_alerts_rejected_total 1.0" in metrics


class TestStoredText:
    def test_nothing_with_a_surrogate_is_committed(self, registry_db: Registry, client: TestClient):
        """The database holds no alert text with a lone surrogate after a hostile webhook."""
        _setup(client, registry_db)
        _post(client, [_alert(0, annotations={"x": "\ud800"}), _alert(1)])
        with registry_db.db.read() as session:
            rows = session.scalars(select(Incident)).all()
            assert [r.fingerprint for r in rows] == [f"{1:016x}"]
            assert all("\ud800" not in str(r.annotations) for r in rows)

    def test_surrogate_stored_before_the_check_reads_back_repaired(
        self, registry_db: Registry, client: TestClient
    ):
        """A row written by an older release with a lone surrogate lists as U+FFFD, not a 500."""
        if not registry_db.url.startswith("sqlite"):
            pytest.skip("PostgreSQL never accepted a lone surrogate")
        old = AlertIn.model_construct(
            status="firing", labels={"alertname": "X"}, annotations={"summary": "a\ud800b"},
            starts_at=AlertIn.model_validate(_alert(0)).starts_at, ends_at=None,
            generator_url=None, fingerprint="old",
        )
        service.record_alerts(registry_db.db, CLI_ADMIN, [old])
        r = client.get(f"{V1}/incidents", headers=registry_db.headers("admin"))
        assert r.status_code == 200, r.text
        assert r.json()[0]["annotations"] == {"summary": "a\ufffdb"}
