"""Keyset pages of the model and incident routes: limit, cursor, Link header, 422 bounds."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry import service
from registry.api import create_app
from registry.schemas import Actor, AlertIn, PolicyRules
from tests.api.conftest import Registry, make_settings

V1 = "/api/v1"


def alert(fingerprint: str) -> AlertIn:
    """Return a firing alert naming a model the registry does not have (an admin's incident)."""
    return AlertIn.model_validate({
        "status": "firing",
        "labels": {"alertname": "MmgovDrift", "model": "gone", "module": "text_encoder"},
        "startsAt": "2024-05-01T10:00:00Z",
        "fingerprint": fingerprint,
    })


class TestApiPages:
    @pytest.fixture
    def api(self, registry_db: Registry) -> TestClient:
        for i in range(3):
            service.create_model(registry_db.db, Actor(name="a", team=None, role="admin"),
                                 name=f"p{i}", team="alpha")
        return TestClient(create_app(make_settings(registry_db), db=registry_db.db))

    def test_models_pages_with_link_header(self, api: TestClient, registry_db: Registry):
        """limit/cursor page the models; Link rel=next names the next page."""
        h = registry_db.headers("reader")
        r = api.get(f"{V1}/models", params={"limit": 2}, headers=h)
        assert r.status_code == 200, r.text
        assert [m["name"] for m in r.json()] == ["p0", "p1"]
        assert 'cursor=p1>; rel="next"' in r.headers["link"]
        r = api.get(f"{V1}/models", params={"limit": 2, "cursor": "p1"}, headers=h)
        assert [m["name"] for m in r.json()] == ["p2"]
        assert "link" not in r.headers

    @pytest.mark.parametrize(
        "params",
        [{"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "Bad Name"},
         {"cursor": "a" * 65}],
    )
    def test_models_bad_paging_is_422(self, api: TestClient, registry_db: Registry, params):
        """Out-of-range limits and malformed cursors are 422 problems, never 500."""
        r = api.get(f"{V1}/models", params=params, headers=registry_db.headers("reader"))
        assert r.status_code == 422, r.text

    @pytest.mark.parametrize(
        "params",
        [{"limit": 0}, {"limit": 501}, {"cursor": "0"}, {"cursor": "abc"},
         {"cursor": "2147483648"}, {"cursor": "9999999999"}, {"cursor": "99999999999999"}],
    )
    def test_incidents_bad_paging_is_422(self, api: TestClient, registry_db: Registry, params):
        """An id cursor beyond 32 bits or not a positive integer is 422, never 500."""
        r = api.get(f"{V1}/incidents", params=params, headers=registry_db.headers("admin"))
        assert r.status_code == 422, r.text

    def test_incidents_page(self, api: TestClient, registry_db: Registry):
        """limit bounds the incident list; the Link header continues it."""
        service.record_alerts(registry_db.db, Actor(name="a", team=None, role="admin"),
                              [alert(f"fp{i}") for i in range(3)])
        h = registry_db.headers("admin")
        first = api.get(f"{V1}/incidents", params={"limit": 2}, headers=h)
        assert first.status_code == 200, first.text
        ids = [i["id"] for i in first.json()]
        assert len(ids) == 2
        rest = api.get(f"{V1}/incidents", params={"limit": 2, "cursor": ids[-1]}, headers=h)
        assert len(rest.json()) == 1
        assert rest.json()[0]["id"] < ids[-1]

    def test_openapi_states_the_bounds(self, api: TestClient):
        """The schema gives limit 1..500 and each cursor's bound: a name's pattern, an id's
        32-bit range."""
        spec = api.get("/openapi.json").json()
        for path, bound in ((f"{V1}/models", "pattern"), (f"{V1}/incidents", "maximum")):
            params = {p["name"]: p["schema"] for p in spec["paths"][path]["get"]["parameters"]}
            assert (params["limit"]["minimum"], params["limit"]["maximum"]) == (1, 500)
            cursor = params["cursor"]
            bounds = [s.get(bound) for s in cursor.get("anyOf", [cursor])]
            assert any(bounds), cursor
        params = spec["paths"][f"{V1}/incidents"]["get"]["parameters"]
        cursor = next(p["schema"] for p in params if p["name"] == "cursor")
        assert {"type": "integer", "minimum": 1, "maximum": 2147483647} in cursor["anyOf"]

    def test_per_model_listings_page_with_link_header(
        self, api: TestClient, registry_db: Registry
    ):
        """Aliases and policies of a model page by name; bad cursors are 422."""
        admin = Actor(name="a", team=None, role="admin")
        service.set_free_aliases(registry_db.db, admin, model="p0", free=True)
        h = registry_db.headers("admin")
        for alias in ("x", "y", "z"):
            service.set_policy(registry_db.db, admin, model="p0", alias=alias,
                               rules=PolicyRules())
        r = api.get(f"{V1}/models/p0/policies", params={"limit": 2}, headers=h)
        assert r.status_code == 200, r.text
        assert [p["alias"] for p in r.json()] == ["production", "staging"]
        assert 'cursor=staging>; rel="next"' in r.headers["link"]
        r = api.get(f"{V1}/models/p0/policies", params={"limit": 2, "cursor": "staging"},
                    headers=h)
        assert [p["alias"] for p in r.json()] == ["x", "y"]
        for path in ("aliases", "policies", "schema/versions", "versions/1/approvals"):
            r = api.get(f"{V1}/models/p0/{path}", params={"cursor": "Not A Cursor"}, headers=h)
            assert r.status_code == 422, (path, r.text)
