"""In-process tests of the admin API's routes, problems, limits and caching."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.models import ModelVersion
from tests.api.conftest import SEED_CONFIG, Registry, remote_version_body
from tests.conftest import write_safetensors

V1 = "/api/v1"


def _register(client: TestClient, reg: Registry, epochs: int, model: str = "mm") -> dict:
    r = client.post(f"{V1}/models/{model}/versions", json=remote_version_body(epochs),
                    headers=reg.headers("maintainer"))
    assert r.status_code in (200, 201), r.text
    return r.json()


def _count_versions(reg: Registry) -> int:
    with reg.db.read() as s:
        return s.scalar(select(func.count()).select_from(ModelVersion)) or 0


class TestVersions:
    def test_register_creates_then_is_idempotent(self, client: TestClient, registry_db: Registry):
        """First registration is 201 with version 1; the same config and weights again is 200."""
        h = registry_db.headers("maintainer")
        first = client.post(f"{V1}/models/mm/versions", json=remote_version_body(1), headers=h)
        assert first.status_code == 201
        assert first.json()["version"]["version"] == 1
        assert len(first.json()["version"]["config_hash"]) == 64
        again = client.post(f"{V1}/models/mm/versions", json=remote_version_body(1), headers=h)
        assert again.status_code == 200
        assert again.json()["created"] is False
        assert again.json()["version"]["version"] == 1
        model = client.get(f"{V1}/models/mm", headers=h).json()
        assert model["team"] == "alpha"

    def test_config_yaml_accepted(self, client: TestClient, registry_db: Registry):
        """A YAML config registers and hashes like the same config sent as JSON."""
        body = remote_version_body(10)
        as_json = client.post(f"{V1}/models/a/versions", json=body,
                              headers=registry_db.headers("maintainer")).json()
        body.pop("config")
        body["config_yaml"] = SEED_CONFIG
        as_yaml = client.post(f"{V1}/models/b/versions", json=body,
                              headers=registry_db.headers("maintainer")).json()
        assert as_yaml["version"]["config_hash"] == as_json["version"]["config_hash"]

    def test_both_or_neither_config_is_422(self, client: TestClient, registry_db: Registry):
        """Exactly one of config and config_yaml is required."""
        both = {**remote_version_body(1), "config_yaml": SEED_CONFIG}
        neither = remote_version_body(1)
        neither.pop("config")
        for body in (both, neither):
            r = client.post(f"{V1}/models/mm/versions", json=body,
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 422
            assert r.headers["content-type"] == "application/problem+json"
        assert _count_versions(registry_db) == 0

    def test_unknown_field_is_422_problem(self, client: TestClient, registry_db: Registry):
        """A field the API does not know is refused (no mass assignment)."""
        body = {**remote_version_body(1), "created_by": "mallory"}
        r = client.post(f"{V1}/models/mm/versions", json=body,
                        headers=registry_db.headers("maintainer"))
        assert r.status_code == 422
        problem = r.json()
        assert set(problem) >= {"type", "title", "status", "detail"}
        assert problem["status"] == 422
        assert "created_by" in problem["detail"]
        assert _count_versions(registry_db) == 0

    def test_hostile_weights_uri_422_and_nothing_written(
        self, client: TestClient, registry_db: Registry
    ):
        """Hostile URIs are 422 problems and leave the database unchanged."""
        for uri in ("file:///etc/passwd", "../../etc/passwd", "ftp://x/y", "s3://b/../../k",
                    "javascript:alert(1)", "http://169.254.169.254/latest"):
            body = {**remote_version_body(1), "weights_uri": uri}
            r = client.post(f"{V1}/models/mm/versions", json=body,
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 422, (uri, r.text)
            assert r.headers["content-type"] == "application/problem+json"
        assert _count_versions(registry_db) == 0
        assert client.get(f"{V1}/models", headers=registry_db.headers("admin")).json() == []

    def test_local_path_only_under_weights_roots(self, client: TestClient, registry_db: Registry,
                                                 tmp_path):
        """A local weights file is accepted inside MMGOV_WEIGHTS_ROOTS and refused outside."""
        inside = write_safetensors(registry_db.weights_root / "w.safetensors")
        outside = write_safetensors(tmp_path / "w.safetensors")
        h = registry_db.headers("maintainer")
        body = remote_version_body(1)
        body.pop("weights_sha256")
        r = client.post(f"{V1}/models/mm/versions", json={**body, "weights_uri": str(outside)},
                        headers=h)
        assert r.status_code == 422
        r = client.post(f"{V1}/models/mm/versions", json={**body, "weights_uri": str(inside)},
                        headers=h)
        assert r.status_code == 201, r.text
        assert r.json()["version"]["weights_sha256"] == (
            hashlib.sha256(inside.read_bytes()).hexdigest()
        )

    def test_pagination_with_link_header(self, client: TestClient, registry_db: Registry):
        """Pages follow next_cursor and the Link header, newest first, without gaps."""
        for epochs in range(1, 6):
            _register(client, registry_db, epochs)
        h = registry_db.headers("reader")
        seen: list[int] = []
        url: str | None = f"{V1}/models/mm/versions?limit=2"
        while url:
            r = client.get(url, headers=h)
            assert r.status_code == 200
            seen += [v["version"] for v in r.json()["items"]]
            link = r.headers.get("link")
            if r.json()["next_cursor"] is None:
                assert link is None
                url = None
            else:
                assert link is not None
                assert link.endswith('; rel="next"')
                url = link[1:link.index(">")]
        assert seen == [5, 4, 3, 2, 1]

    def test_page_size_capped(self, client: TestClient, registry_db: Registry):
        """A limit above 500 is a 422, not a silent clamp."""
        _register(client, registry_db, 1)
        r = client.get(f"{V1}/models/mm/versions?limit=501", headers=registry_db.headers("reader"))
        assert r.status_code == 422

    def test_diff(self, client: TestClient, registry_db: Registry):
        """The diff names the changed config path."""
        _register(client, registry_db, 1)
        _register(client, registry_db, 2)
        r = client.get(f"{V1}/models/mm/diff?from=1&to=2", headers=registry_db.headers("reader"))
        assert r.status_code == 200
        assert [c["path"] for c in r.json()["config_changes"]] == ["training.epochs"]
        assert r.json()["weights_changed"] is True


class TestAliases:
    def test_etag_and_304(self, client: TestClient, registry_db: Registry):
        """Resolving gives a strong ETag; If-None-Match gives a bodiless 304 until a promotion."""
        _register(client, registry_db, 1)
        _register(client, registry_db, 2)
        m, r = registry_db.headers("maintainer"), registry_db.headers("reader")
        assert client.put(f"{V1}/models/mm/aliases/production", json={"version": 1},
                          headers=m).status_code == 200
        first = client.get(f"{V1}/models/mm/aliases/production", headers=r)
        assert first.status_code == 200
        assert first.json()["version"] == 1
        etag = first.headers["etag"]
        assert etag.startswith('"')
        assert not etag.startswith("W/")
        assert set(first.json()) >= {"config", "config_hash", "weights_uri", "weights_sha256",
                                     "module_hashes", "updated_at"}
        cached = client.get(f"{V1}/models/mm/aliases/production",
                            headers={**r, "If-None-Match": etag})
        assert cached.status_code == 304
        assert cached.content == b""
        client.put(f"{V1}/models/mm/aliases/production", json={"version": 2}, headers=m)
        moved = client.get(f"{V1}/models/mm/aliases/production",
                           headers={**r, "If-None-Match": etag})
        assert moved.status_code == 200
        assert moved.json()["version"] == 2
        assert moved.headers["etag"] != etag

    def test_stale_expected_version_409(self, client: TestClient, registry_db: Registry):
        """Promotion with a stale expected_version is a 409 problem and changes nothing."""
        for e in (1, 2, 3):
            _register(client, registry_db, e)
        m = registry_db.headers("maintainer")
        url = f"{V1}/models/mm/aliases/production"
        assert client.put(url, json={"version": 1, "expected_version": None},
                          headers=m).status_code == 200
        assert client.put(url, json={"version": 2, "expected_version": 1},
                          headers=m).status_code == 200
        stale = client.put(url, json={"version": 3, "expected_version": 1}, headers=m)
        assert stale.status_code == 409
        assert stale.headers["content-type"] == "application/problem+json"
        assert client.get(url, headers=m).json()["version"] == 2

    def test_rollback(self, client: TestClient, registry_db: Registry):
        """Rollback moves the alias back to the previous version; stale expectation is 409."""
        _register(client, registry_db, 1)
        _register(client, registry_db, 2)
        m = registry_db.headers("maintainer")
        url = f"{V1}/models/mm/aliases/production"
        client.put(url, json={"version": 1}, headers=m)
        client.put(url, json={"version": 2}, headers=m)
        assert client.post(f"{url}/rollback", json={"expected_version": 1},
                           headers=m).status_code == 409
        back = client.post(f"{url}/rollback", json={}, headers=m)
        assert back.status_code == 200
        assert back.json()["version"] == 1
        assert back.json()["previous_version"] == 2


class TestLimits:
    def test_content_length_over_limit_413(self, client: TestClient, registry_db: Registry):
        """A declared body over MMGOV_MAX_BODY_BYTES is a 413 problem."""
        body = remote_version_body(1, note="x" * (1 << 20))
        r = client.post(f"{V1}/models/mm/versions", json=body,
                        headers=registry_db.headers("maintainer"))
        assert r.status_code == 413
        assert r.json()["status"] == 413
        assert _count_versions(registry_db) == 0

    def test_chunked_body_over_limit_413(self, client: TestClient, registry_db: Registry):
        """A streamed body without Content-Length is counted and refused past the limit."""

        def chunks():
            yield b'{"note": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}'

        r = client.post(f"{V1}/models/mm/versions", content=chunks(),
                        headers={**registry_db.headers("maintainer"),
                                 "Content-Type": "application/json"})
        assert r.status_code == 413
        assert _count_versions(registry_db) == 0


class TestReferences:
    def test_round_trip(self, client: TestClient, registry_db: Registry):
        """Uploaded bytes come back with format and sha256 headers (larger than 1 MiB is fine)."""
        _register(client, registry_db, 1)
        blob = bytes(range(256)) * 8192  # 2 MiB: above the JSON limit, below the upload limit
        query = "format=npz-v1&n_samples=10&modules=image_encoder"
        url = f"{V1}/models/mm/versions/1/reference?{query}"
        put = client.put(url, content=blob, headers={
            **registry_db.headers("maintainer"), "Content-Type": "application/octet-stream"})
        assert put.status_code == 200, put.text
        got = client.get(f"{V1}/models/mm/versions/1/reference",
                         headers=registry_db.headers("reader"))
        assert got.status_code == 200
        assert got.content == blob
        assert got.headers["x-reference-format"] == "npz-v1"
        assert got.headers["x-reference-sha256"] == hashlib.sha256(blob).hexdigest()

    def test_needs_octet_stream(self, client: TestClient, registry_db: Registry):
        """A reference sent as JSON is refused."""
        _register(client, registry_db, 1)
        r = client.put(f"{V1}/models/mm/versions/1/reference?format=x&n_samples=1&modules=a",
                       json={"a": 1}, headers=registry_db.headers("maintainer"))
        assert r.status_code == 422


class TestProbes:
    def test_healthz_readyz(self, client: TestClient):
        """Both probes answer 200 on a migrated database, without a token."""
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "ready"

    def test_readyz_503_behind_head(self, registry_db: Registry):
        """A database below the migration head makes /readyz a 503 problem."""
        from registry.api import create_app
        from registry.db import downgrade
        from tests.api.conftest import make_settings

        registry_db.db.dispose()
        downgrade(registry_db.url, "base")
        with TestClient(create_app(make_settings(registry_db))) as c:
            r = c.get("/readyz")
        assert r.status_code == 503
        assert r.headers["content-type"] == "application/problem+json"

    def test_metrics(self, client: TestClient, registry_db: Registry):
        """/metrics counts requests by route template and reads registry gauges at scrape time."""
        _register(client, registry_db, 1)
        client.put(f"{V1}/models/mm/aliases/production", json={"version": 1},
                   headers=registry_db.headers("maintainer"))
        text = client.get("/metrics", headers=registry_db.headers("admin")).text
        assert ('mmgov_api_requests_total{method="POST",route="/api/v1/models/{name}/versions",'
                'status="201"} 1.0') in text
        assert 'mmgov_registry_versions{model="mm"} 1.0' in text
        assert 'mmgov_registry_alias_version{alias="production",model="mm"} 1.0' in text
