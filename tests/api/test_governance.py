"""The governance routes over HTTP: aliases and their history, tags, stages, incidents, policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from tests.api.conftest import ALERTS_TOKEN, Registry, remote_version_body

V1 = "/api/v1"


def _setup(client: TestClient, reg: Registry, versions: int = 2) -> dict[str, str]:
    h = reg.headers("maintainer")
    for epochs in range(1, versions + 1):
        r = client.post(f"{V1}/models/mm/versions", json=remote_version_body(epochs), headers=h)
        assert r.status_code == 201, r.text
    return h


class TestAliases:
    def test_list_history_and_at(self, client: TestClient, registry_db: Registry):
        """The list names each alias; history lists moves with reasons; ?at= answers then."""
        h = _setup(client, registry_db)
        r = client.put(f"{V1}/models/mm/aliases/production", json={"version": 1}, headers=h)
        assert r.status_code == 200, r.text
        between = datetime.now(UTC)
        r = client.put(
            f"{V1}/models/mm/aliases/production", json={"version": 2, "reason": "retrained"},
            headers=h,
        )
        assert r.status_code == 200, r.text
        listed = client.get(f"{V1}/models/mm/aliases", headers=h).json()
        assert [(a["alias"], a["version"], a["updated_by"]) for a in listed] == [
            ("production", 2, "alpha/maintainer")
        ]
        history = client.get(f"{V1}/models/mm/aliases/production/history", headers=h).json()
        assert [(m["from_version"], m["version"], m["reason"]) for m in history["items"]] == [
            (1, 2, "retrained"),
            (None, 1, ""),
        ]
        at = client.get(
            f"{V1}/models/mm/aliases/production/history", params={"at": between.isoformat()},
            headers=h,
        )
        assert at.status_code == 200, at.text
        assert at.json()["version_at"] == 1
        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        bad = client.get(
            f"{V1}/models/mm/aliases/production/history", params={"at": future}, headers=h
        )
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        assert "in the future" in bad.json()["detail"]
        versions = client.get(f"{V1}/models/mm/versions", headers=h).json()["items"]
        assert [(v["version"], v["aliases"]) for v in versions] == [(2, ["production"]), (1, [])]


class TestTagsAndStages:
    def test_tag_filter_remove_and_archive(self, client: TestClient, registry_db: Registry):
        """Tags filter the listing; DELETE removes one; an archived version cannot be promoted."""
        h = _setup(client, registry_db, versions=3)
        for version in (1, 3):
            r = client.put(
                f"{V1}/models/mm/versions/{version}/tags", json={"tags": {"dataset": "coco"}},
                headers=h,
            )
            assert r.status_code == 200, r.text
        found = client.get(
            f"{V1}/models/mm/versions", params={"tag": "dataset=coco"}, headers=h
        ).json()["items"]
        assert [v["version"] for v in found] == [3, 1]
        assert found[0]["tags"] == {"dataset": "coco"}
        bad = client.get(f"{V1}/models/mm/versions", params={"tag": "dataset"}, headers=h)
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("query.tag.0: String should match pattern")
        r = client.delete(f"{V1}/models/mm/versions/3/tags/dataset", headers=h)
        assert r.status_code == 200
        assert r.json() == []
        r = client.put(
            f"{V1}/models/mm/versions/1/stage", json={"stage": "archived", "reason": "old"},
            headers=h,
        )
        assert r.status_code == 200
        assert r.json()["stage"] == "archived"
        refused = client.put(f"{V1}/models/mm/aliases/production", json={"version": 1}, headers=h)
        assert refused.status_code == 409
        assert "archived" in refused.json()["detail"]
        assert client.get(f"{V1}/models/mm/aliases", headers=h).json() == []


class TestIncidents:
    def test_lifecycle_over_http(self, client: TestClient, registry_db: Registry):
        """Acknowledge, resolve with a note, filter, reopen; a reader gets 403, nothing changes."""
        h = _setup(client, registry_db)
        alert = {
            "status": "firing",
            "labels": {"alertname": "Drift", "model": "mm", "version": "2", "module": "text"},
            "startsAt": "2026-01-01T00:00:00Z",
            "fingerprint": "f1",
        }
        webhook = {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r",
                   "alerts": [alert]}
        r = client.post(f"{V1}/alerts", json=webhook,
                        headers={"Authorization": f"Bearer {ALERTS_TOKEN}"})
        assert r.status_code == 200, r.text
        incident = r.json()["incidents"][0]["id"]
        reader = client.post(f"{V1}/incidents/{incident}/acknowledge", json={},
                             headers=registry_db.headers("reader"))
        assert reader.status_code == 403
        r = client.post(f"{V1}/incidents/{incident}/acknowledge", json={"note": "on it"},
                        headers=h)
        assert r.json()["acknowledged_by"] == "alpha/maintainer"
        empty = client.post(f"{V1}/incidents/{incident}/resolve", json={"note": ""}, headers=h)
        assert empty.status_code == 422
        r = client.post(f"{V1}/incidents/{incident}/resolve", json={"note": "fixed"}, headers=h)
        assert (r.json()["status"], r.json()["resolution_note"]) == ("resolved", "fixed")
        listed = client.get(
            f"{V1}/incidents", params={"model": "mm", "version": 2, "status": "resolved"},
            headers=h,
        ).json()
        assert [i["id"] for i in listed] == [incident]
        assert client.get(f"{V1}/incidents", params={"module": "vision"}, headers=h).json() == []
        r = client.post(f"{V1}/incidents/{incident}/reopen", json={}, headers=h)
        assert r.json()["status"] == "open"
        again = client.post(f"{V1}/incidents/{incident}/reopen", json={}, headers=h)
        assert again.status_code == 409


class TestPolicies:
    def test_refused_promotion_is_a_problem_listing_every_rule(
        self, client: TestClient, registry_db: Registry
    ):
        """409 problem+json with one `errors` entry per unmet rule; approvals make it pass."""
        h = _setup(client, registry_db)
        admin = registry_db.headers("admin")
        r = client.put(f"{V1}/models/mm/policies/staging", json={}, headers=admin)
        assert r.status_code == 200, r.text
        bad = client.put(
            f"{V1}/models/mm/policies/production",
            json={"soak": {"alias": "staging", "duration": "soon"}}, headers=admin,
        )
        assert bad.status_code == 422
        assert "does not parse" in bad.json()["detail"]
        r = client.put(
            f"{V1}/models/mm/policies/production",
            json={"min_role": "admin", "require_reference": True, "approvals": 1},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        assert r.json()["rules"]["approvals"] == 1
        refused = client.put(f"{V1}/models/mm/aliases/production", json={"version": 2},
                             headers=h)
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert [e["rule"] for e in refused.json()["errors"]] == [
            "min_role", "require_reference", "approvals"
        ]
        typo = client.put(f"{V1}/models/mm/aliases/prodution", json={"version": 2}, headers=h)
        assert [e["rule"] for e in typo.json()["errors"]] == ["declared"]
        # The maintainer registered v2, so only another one's approval counts.
        own = client.post(f"{V1}/models/mm/versions/2/approvals", json={"alias": "production"},
                          headers=h)
        assert own.status_code == 403
        r = client.post(f"{V1}/models/mm/versions/2/approvals", json={"alias": "production"},
                        headers=admin)
        assert r.status_code == 201, r.text
        r = client.put(
            f"{V1}/models/mm/versions/2/reference",
            params={"format": "npz-v1", "n_samples": 1, "modules": "image_encoder"},
            content=b"ref", headers={**admin, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 200, r.text
        ok = client.put(f"{V1}/models/mm/aliases/production", json={"version": 2}, headers=admin)
        assert ok.status_code == 200, ok.text
        listed = client.get(f"{V1}/models/mm/policies", headers=h).json()
        assert [p["alias"] for p in listed] == ["production", "staging"]
