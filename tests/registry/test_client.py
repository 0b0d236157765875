"""RegistryClient against a real uvicorn admin API on loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from examples.sidecar import ApiThread
from registry import service
from registry.api import ApiSettings, create_app
from registry.client import (
    IntegrityError,
    RegistryClient,
    ResolvedVersion,
    SidecarAuthError,
    SidecarNotFound,
    SidecarUnavailable,
    verify_weights,
)
from registry.config import load_config_file
from registry.db import Database, open_database, upgrade
from registry.schemas import Actor
from registry.service import WeightsSource
from tests.conftest import write_safetensors

ROOT = Path(__file__).resolve().parents[2]
ADMIN = Actor(name="test-admin", team=None, role="admin")
MODEL = "mm-demo"
WAIT_S = 10.0


@dataclass
class Sidecar:
    """A running API over a database with model ``mm-demo`` v1 (production) and v2."""

    db: Database
    server: ApiThread
    token: str
    weights: dict[int, Path]
    counter: list[int]


def _register(db: Database, tmp_path: Path, epochs: int) -> Path:
    raw = copy.deepcopy(load_config_file(ROOT / "configs" / "model.yaml"))
    raw["training"]["epochs"] = epochs
    path = write_safetensors(tmp_path / f"w{epochs}.safetensors", tag=str(epochs))
    service.register_version(
        db, ADMIN, model=MODEL, config=raw, weights=WeightsSource(uri=str(path)), team="alpha",
    )
    return path


@pytest.fixture
def sidecar(db_url: str, tmp_path: Path) -> Iterator[Sidecar]:
    """A real uvicorn server with the admin API; requests to it are counted."""
    if not db_url.startswith("sqlite"):
        upgrade(db_url)
    db = open_database(db_url)
    service.create_team(db, ADMIN, "alpha")
    _, token = service.create_token(db, ADMIN, team="alpha", role="reader", name="serving")
    weights = {1: _register(db, tmp_path, 10), 2: _register(db, tmp_path, 11)}
    service.promote(db, ADMIN, model=MODEL, version=1, alias="production")
    app = create_app(ApiSettings(database_url=db_url, token_cache_seconds=0), db=db)
    counter = [0]

    @app.middleware("http")
    async def count(request, call_next):  # type: ignore[no-untyped-def]
        counter[0] += 1
        return await call_next(request)

    server = ApiThread(app).start()
    try:
        yield Sidecar(db=db, server=server, token=token, weights=weights, counter=counter)
    finally:
        server.stop()
        db.dispose()


@pytest.fixture
def client(sidecar: Sidecar) -> Iterator[RegistryClient]:
    """A client with a fresh metric registry and a short timeout."""
    with RegistryClient(
        sidecar.server.url, sidecar.token, timeout=2.0, prometheus_registry=CollectorRegistry()
    ) as c:
        yield c


def _errors(client: RegistryClient, reason: str) -> float:
    return sum(
        s.value for m in client.errors.collect() for s in m.samples
        if s.name == "mmgov_sidecar_errors_total" and s.labels.get("reason") == reason
    )


class TestResolve:
    def test_resolve_then_304_returns_the_cached_version(
        self, sidecar: Sidecar, client: RegistryClient
    ) -> None:
        """A second resolve sends the ETag, gets a 304 and returns the same value."""
        first = client.resolve(MODEL, "production")
        assert first.version == 1
        assert first.etag
        assert first.weights_sha256 == hashlib.sha256(sidecar.weights[1].read_bytes()).hexdigest()
        before = sidecar.counter[0]
        second = client.resolve(MODEL, "production")
        assert second is first
        assert client.not_modified == 1
        assert sidecar.counter[0] == before + 1

    def test_promotion_changes_the_answer(self, sidecar: Sidecar, client: RegistryClient) -> None:
        """After a promotion the ETag no longer matches and the new version comes back."""
        client.resolve(MODEL, "production")
        service.promote(sidecar.db, ADMIN, model=MODEL, version=2, alias="production")
        assert client.resolve(MODEL, "production").version == 2
        assert client.not_modified == 0

    def test_wrong_token_is_an_auth_error(self, sidecar: Sidecar) -> None:
        """A token the registry does not know gives SidecarAuthError (401)."""
        with RegistryClient(sidecar.server.url, "mmgov_wrong", prometheus_registry=None) as c, \
                pytest.raises(SidecarAuthError, match="401"):
            c.resolve(MODEL, "production")

    def test_unknown_model_is_not_found(self, client: RegistryClient) -> None:
        """An unknown model gives SidecarNotFound (404)."""
        with pytest.raises(SidecarNotFound):
            client.resolve("no-such-model", "production")

    def test_reference_bytes_are_checked(self, sidecar: Sidecar, client: RegistryClient) -> None:
        """get_reference returns the stored format and bytes; a missing one is NotFound."""
        blob = b"reference-bytes" * 100
        service.attach_reference(sidecar.db, ADMIN, model=MODEL, version=1, fmt="test.v1",
                                 blob=blob, n_samples=3, modules=["image_encoder"])
        assert client.get_reference(MODEL, 1) == ("test.v1", blob)
        with pytest.raises(SidecarNotFound):
            client.get_reference(MODEL, 2)


class TestVerifyWeights:
    def test_matching_file_passes(self, sidecar: Sidecar, client: RegistryClient) -> None:
        """The registered file verifies against the resolved sha256."""
        resolved = client.resolve(MODEL, "production")
        client.verify_weights(resolved.weights_path, resolved.weights_sha256)

    def test_changed_file_is_refused(self, sidecar: Sidecar, client: RegistryClient) -> None:
        """A file whose bytes changed after registration raises IntegrityError."""
        resolved = client.resolve(MODEL, "production")
        resolved.weights_path.write_bytes(b"tampered")
        with pytest.raises(IntegrityError, match="sha256"):
            verify_weights(resolved.weights_path, resolved.weights_sha256)


class TestWatch:
    def test_calls_back_when_the_alias_moves(
        self, sidecar: Sidecar, client: RegistryClient
    ) -> None:
        """The watch reports the initial version, then the promoted one."""
        seen: list[int] = []
        first, moved = threading.Event(), threading.Event()

        def on_change(resolved: ResolvedVersion) -> None:
            seen.append(resolved.version)
            (moved if len(seen) > 1 else first).set()

        handle = client.watch(MODEL, "production", on_change, interval=0.05)
        try:
            assert first.wait(WAIT_S)
            service.promote(sidecar.db, ADMIN, model=MODEL, version=2, alias="production")
            assert moved.wait(WAIT_S)
        finally:
            handle.stop()
        assert seen == [1, 2]
        assert not handle.running

    def test_survives_a_sidecar_that_goes_down(
        self, sidecar: Sidecar, client: RegistryClient
    ) -> None:
        """With the server stopped the watch keeps its version, counts errors, keeps polling."""
        seen: list[int] = []
        first = threading.Event()

        def on_change(resolved: ResolvedVersion) -> None:
            seen.append(resolved.version)
            first.set()

        handle = client.watch(MODEL, "production", on_change, interval=0.02)
        try:
            assert first.wait(WAIT_S)
            sidecar.server.stop()
            counted = threading.Event()
            for _ in range(500):  # bounded: each round waits for the next poll, not a fixed time
                if _errors(client, "unavailable") >= 3:
                    counted.set()
                    break
                counted.wait(0.02)
            assert counted.is_set()
            assert handle.running
        finally:
            handle.stop()
        assert seen == [1]
        with pytest.raises(SidecarUnavailable):
            client.resolve(MODEL, "production")


def test_transport_double_maps_5xx_to_unavailable() -> None:
    """A 503 from the sidecar is SidecarUnavailable (a MockTransport stands in for it)."""
    transport = httpx.MockTransport(lambda _req: httpx.Response(503, json={"detail": "down"}))
    with RegistryClient("http://sidecar", "t", transport=transport,
                        prometheus_registry=CollectorRegistry()) as c, \
            pytest.raises(SidecarUnavailable, match="503"):
        c.resolve(MODEL, "production")
