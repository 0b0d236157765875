"""Through a real `mmgov serve` (uvicorn subprocess): smoke, concurrency, memory, refusals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests._support import run_cli, serve
from tests.api.conftest import Registry, remote_version_body

pytestmark = pytest.mark.e2e
V1 = "/api/v1"


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_smoke_and_memory(registry_db: Registry):
    """Routes answer through uvicorn with keep-alive; one worker stays under 200 MB RSS."""
    with serve(registry_db.url) as (base, proc), httpx.Client(base_url=base) as c:
        h = registry_db.headers("maintainer")
        assert c.get("/healthz").status_code == 200
        assert c.post(f"{V1}/models/mm/versions", json=remote_version_body(1),
                      headers=h).status_code == 201
        assert c.put(f"{V1}/models/mm/aliases/production", json={"version": 1},
                     headers=h).status_code == 200
        got = c.get(f"{V1}/models/mm/aliases/production", headers=h)
        assert got.status_code == 200
        assert got.json()["version"] == 1
        assert c.get(f"{V1}/models/mm/aliases/production",
                     headers={**h, "If-None-Match": got.headers["etag"]}).status_code == 304
        assert c.get(f"{V1}/models", headers={}).status_code == 401
        assert c.get("/metrics").status_code == 401
        assert "mmgov_registry_versions" in c.get(
            "/metrics", headers=registry_db.headers("admin")).text
        assert _rss_kib(proc.pid) < 200 * 1024


def test_32_concurrent_registrations(registry_db: Registry):
    """32 concurrent POSTs of distinct configs give versions 1..32 and no 5xx."""
    with serve(registry_db.url, workers=2) as (base, _proc):
        h = registry_db.headers("maintainer")

        def post(i: int) -> httpx.Response:
            with httpx.Client(base_url=base, timeout=60) as c:
                return c.post(f"{V1}/models/mm/versions", json=remote_version_body(100 + i),
                              headers=h)

        with ThreadPoolExecutor(max_workers=32) as pool:
            responses = list(pool.map(post, range(32)))
        assert [r.status_code for r in responses] == [201] * 32, [r.text for r in responses]
        assert sorted(r.json()["version"]["version"] for r in responses) == list(range(1, 33))
        with httpx.Client(base_url=base) as c:
            metrics = c.get("/metrics", headers=registry_db.headers("admin")).text
        # Multiprocess mode: both workers' counts are merged into one series.
        assert ('mmgov_api_requests_total{method="POST",route="/api/v1/models/{name}/versions",'
                'status="201"} 32.0') in metrics


def test_refuses_without_tokens(tmp_path: Path):
    """With no token in the database serve refuses to start unless --no-auth is given."""
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    result = run_cli("serve", "--db", url, "--port", "1")
    assert result.returncode != 0
    assert "no API token" in result.stderr


def test_no_auth_loopback_only(tmp_path: Path):
    """--no-auth refuses a non-loopback host; on loopback every request acts as admin."""
    url = f"sqlite:///{tmp_path / 'open.db'}"
    result = run_cli("serve", "--db", url, "--host", "0.0.0.0", "--no-auth")  # noqa: S104
    assert result.returncode != 0
    assert "refusing host" in result.stderr
    with serve(url, "--no-auth") as (base, _proc), httpx.Client(base_url=base) as c:
        assert c.post(f"{V1}/models", json={"name": "m"}).status_code == 201


def test_refuses_database_behind_head(registry_db: Registry):
    """A database not at the migration head is refused with a message naming the fix."""
    from registry.db import downgrade

    registry_db.db.dispose()
    downgrade(registry_db.url, "base")
    result = run_cli("serve", "--db", registry_db.url, "--port", "1")
    assert result.returncode != 0
    assert "mmgov db upgrade" in result.stderr
