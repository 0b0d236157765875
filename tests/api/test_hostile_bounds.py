"""Hostile bounds: numbers, strings and configs past their columns and limits are 4xx, not 500."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from registry import service
from registry.api import create_app
from registry.api.deps import PUBLIC
from registry.errors import InvalidInput
from tests._support import free_port, wait_until
from tests.api.conftest import CLI_ADMIN, Registry, make_settings, remote_version_body

V1 = "/api/v1"


def _deep_yaml(depth: int) -> str:
    return "a: " + "[" * depth + "]" * depth + "\n"


def _deep_block_yaml(depth: int) -> str:
    return "".join(f"{'  ' * i}k{i}:\n" for i in range(depth)) + f"{'  ' * depth}leaf: 1\n"


class TestNumbersAndCursors:
    @pytest.mark.parametrize(("path", "cursor"), [
        ("/audit", "9999999999999999999"),
        ("/audit", "²"),
        ("/models/mm/versions", "2147483648"),
        ("/models/mm/aliases/production/history", "2147483648"),
        ("/models/mm/versions", "٣"),
    ])
    def test_cursor_out_of_range_is_422(
        self, path: str, cursor: str, client: TestClient, registry_db: Registry
    ):
        """A cursor past its column (int8 audit seq, int4 versions) or not ASCII digits: 422."""
        h = registry_db.headers("admin")
        assert client.post(f"{V1}/models/mm/versions", json=remote_version_body(1),
                           headers=h).status_code == 201
        assert client.put(f"{V1}/models/mm/aliases/production", json={"version": 1},
                          headers=h).status_code == 200
        r = client.get(f"{V1}{path}", params={"cursor": cursor}, headers=h)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"

    def test_cursor_bounds_are_in_the_schema(self, client: TestClient):
        """OpenAPI states each cursor's range, so generated clients and fuzzers see it."""
        spec = client.get("/openapi.json").json()
        params = {p["name"]: p for p in spec["paths"][f"{V1}/audit"]["get"]["parameters"]}
        schema = params["cursor"]["schema"]["anyOf"][0]
        assert (schema["minimum"], schema["maximum"]) == (1, 2**63 - 1)
        params = {p["name"]: p for p in
                  spec["paths"][f"{V1}/models/{{name}}/versions"]["get"]["parameters"]}
        assert params["cursor"]["schema"]["anyOf"][0]["maximum"] == 2**31 - 1

    def test_service_cursor_bounds(self, registry_db: Registry):
        """The service refuses the same cursors for the CLI."""
        for cursor in ("9999999999999999999", "²", "0", "-1"):
            with pytest.raises(InvalidInput):
                service.list_audit(registry_db.db, CLI_ADMIN, cursor=cursor)


class TestActors:
    def test_token_name_longer_than_an_actor_refused(self, registry_db: Registry):
        """A token name whose team/name would not fit the 128-character actor is refused."""
        with pytest.raises(InvalidInput, match="token name"):
            service.create_token(registry_db.db, CLI_ADMIN, team="alpha", role="admin",
                                 name="t" * 128)
        with pytest.raises(InvalidInput):
            service.create_token(registry_db.db, CLI_ADMIN, team="alpha", role="admin",
                                 name="bad\ud800")
        _info, secret = service.create_token(registry_db.db, CLI_ADMIN, team="alpha",
                                             role="admin", name="t" * 63)
        actor = service.authenticate(registry_db.db, secret)
        service.create_team(registry_db.db, actor, "gamma")  # the actor fits every column
        assert len(actor.name) <= 128


class TestConfigLimits:
    @pytest.mark.parametrize("text", [_deep_yaml(1000), _deep_block_yaml(300),
                                      _deep_yaml(100_000)])
    def test_deep_yaml_is_422(self, text: str, client: TestClient, registry_db: Registry):
        """A 1,000-deep (or 100,000-deep) YAML config is a 422 naming the limit, not a 500."""
        body = {**remote_version_body(1), "config_yaml": text}
        del body["config"]
        r = client.post(f"{V1}/models/mm/versions", json=body,
                        headers=registry_db.headers("maintainer"))
        assert r.status_code == 422, r.text
        assert "nesting" in r.json()["detail"]

    @pytest.mark.parametrize("depth", [1000, 100_000])
    def test_deep_json_is_4xx(self, depth: int, client: TestClient, registry_db: Registry):
        """A deeply nested JSON config is refused with a 4xx, never a RecursionError 500."""
        body = json.dumps(remote_version_body(1))
        deep = '{"config": {"a": ' + "[" * depth + "]" * depth + "}, "
        text = body.replace('{"config": ', deep + '"x": ', 1)
        r = client.post(f"{V1}/models/mm/versions", content=text,
                        headers={**registry_db.headers("maintainer"),
                                 "Content-Type": "application/json"})
        assert 400 <= r.status_code < 500, r.text
        assert r.headers["content-type"] == "application/problem+json"

    def test_config_over_the_byte_limit(self, registry_db: Registry):
        """A config over MMGOV_MAX_CONFIG_BYTES is a 422 saying so; under it registers."""
        app = create_app(make_settings(registry_db, max_config_bytes=4096), db=registry_db.db)
        big = "\n".join(f"k{i}: {i}" for i in range(1000))
        with TestClient(app) as client:
            body = {**remote_version_body(1), "config_yaml": big}
            del body["config"]
            r = client.post(f"{V1}/models/mm/versions", json=body,
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 422
            assert "larger than 4096 bytes" in r.json()["detail"]
            json_body = {**remote_version_body(1), "config": {"k": "x" * 5000}}
            r = client.post(f"{V1}/models/mm/versions", json=json_body,
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 422
            r = client.post(f"{V1}/models/mm/versions", json=remote_version_body(1),
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 201, r.text

    def test_parse_time_limit(self, registry_db: Registry):
        """A config that takes longer than MMGOV_MAX_CONFIG_PARSE_SECONDS is a 422."""
        app = create_app(make_settings(registry_db, max_config_parse_seconds=1e-6),
                         db=registry_db.db)
        with TestClient(app) as client:
            body = {**remote_version_body(1),
                    "config_yaml": "\n".join(f"k{i}: [{i}, {i}]" for i in range(2000))}
            del body["config"]
            r = client.post(f"{V1}/models/mm/versions", json=body,
                            headers=registry_db.headers("maintainer"))
            assert r.status_code == 422
            assert "too long to parse" in r.json()["detail"]


@pytest.fixture
def live(registry_db: Registry) -> Iterator[str]:
    """A real uvicorn server on loopback over an app with a route that fails unexpectedly."""
    app: FastAPI = create_app(make_settings(registry_db), db=registry_db.db)

    def boom() -> dict[str, Any]:
        raise RuntimeError("a bug nobody handled")

    app.add_api_route("/boom", boom, dependencies=[PUBLIC])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until("uvicorn to start", lambda: server.started, timeout=30, interval=0.05,
               give_up=lambda: None if thread.is_alive() else "its thread ended")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class TestUnexpectedErrors:
    def test_500_is_a_problem_and_keeps_the_connection(self, live: str):
        """An unhandled error is a problem+json 500 and the keep-alive connection serves on."""
        host, port = live.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/boom")
        r = conn.getresponse()
        body = r.read()
        assert r.status == 500
        assert r.getheader("content-type") == "application/problem+json"
        assert json.loads(body)["status"] == 500
        assert b"a bug nobody handled" not in body
        sock = conn.sock
        assert sock is not None
        conn.request("GET", "/healthz")
        again = conn.getresponse()
        again.read()
        assert again.status == 200
        assert conn.sock is sock  # the same TCP connection: nothing was reset
        conn.close()


class TestParserProcess:
    def test_parser_worker_ends_with_the_server(self, registry_db: Registry):
        """The config-parser process a YAML post starts ends when the server is killed (-9)."""
        import os
        import signal
        from pathlib import Path

        import httpx

        from tests._support import serve

        with serve(registry_db.url) as (base, proc):
            body = {**remote_version_body(1), "config_yaml": "a: 1\n"}
            del body["config"]
            r = httpx.post(f"{base}{V1}/models/mm/versions", json=body, timeout=60,
                           headers=registry_db.headers("maintainer"))
            assert r.status_code == 201, r.text
            children = [c for task in Path(f"/proc/{proc.pid}/task").iterdir()
                        for c in (task / "children").read_text().split()]
            assert children, "the YAML config was parsed in a worker process"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

            def running() -> list[str]:
                return [c for c in children if Path(f"/proc/{c}/status").exists()
                        and "zombie" not in Path(f"/proc/{c}/status").read_text()]

            # The worker checks on its parent twice a second.
            wait_until(f"the parser workers {children} to end", lambda: not running(),
                       timeout=10, interval=0.2)
