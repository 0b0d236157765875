"""Hostile reference uploads over HTTP: a clear 422 each, nothing stored, names in a JSON body."""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.profile_check import MMGOV_PROFILE_FORMAT
from tests.api.conftest import Registry, remote_version_body
from tests.registry.test_reference_checks import profile_bytes

V1 = "/api/v1"
URL = f"{V1}/models/mm/versions/1/reference"


def _put(client: TestClient, reg: Registry, blob: bytes, modules: str,
         fmt: str = MMGOV_PROFILE_FORMAT, n: int = 8) -> int:
    r = client.put(f"{URL}?format={quote(fmt)}&n_samples={n}&modules={quote(modules)}",
                   content=blob, headers={**reg.headers("maintainer"),
                                          "Content-Type": "application/octet-stream"})
    if r.status_code != 200:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return r.status_code


@pytest.fixture
def one(client: TestClient, registry_db: Registry) -> TestClient:
    """Version 1 of model `mm`."""
    r = client.post(f"{V1}/models/mm/versions", json=remote_version_body(1),
                    headers=registry_db.headers("maintainer"))
    assert r.status_code == 201, r.text
    return client


class TestHostileUploads:
    @pytest.mark.parametrize("modules", ["模", "a\r\nX:1", "a,,b", "a b", "x" * 129])
    def test_bad_module_names_are_422(self, one: TestClient, registry_db: Registry,
                                      modules: str) -> None:
        """Module names that no header or backend carries safely are refused, nothing stored."""
        assert _put(one, registry_db, b"opaque", modules, fmt="vendor.v1") == 422
        assert one.get(URL, headers=registry_db.headers("reader")).status_code == 404

    def test_random_bytes_and_bad_profile_are_422(self, one: TestClient,
                                                  registry_db: Registry) -> None:
        """Random bytes as npz, and a profile whose sample count lies, are 422."""
        mods = "image_encoder,text_encoder.layers.0"
        assert _put(one, registry_db, os.urandom(1000), mods) == 422
        assert _put(one, registry_db, os.urandom(1000), "a", fmt="npz") == 422
        assert _put(one, registry_db, profile_bytes(n_samples=3), mods, n=3) == 422
        assert one.get(URL, headers=registry_db.headers("reader")).status_code == 404

    def test_modules_come_back_in_a_json_body(self, one: TestClient,
                                              registry_db: Registry) -> None:
        """GET …/reference/info lists the modules; the bytes route carries no module header."""
        mods = "image_encoder,text_encoder.layers.0"
        assert _put(one, registry_db, profile_bytes(), mods) == 200
        info = one.get(f"{URL}/info", headers=registry_db.headers("reader"))
        assert info.status_code == 200
        assert info.json()["modules"] == ["image_encoder", "text_encoder.layers.0"]
        assert info.json()["n_samples"] == 8
        raw = one.get(URL, headers=registry_db.headers("reader"))
        assert raw.status_code == 200
        assert "x-reference-modules" not in raw.headers

    @settings(max_examples=25, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(modules=st.text(min_size=1, max_size=40), blob=st.binary(min_size=1, max_size=512))
    def test_any_input_is_200_or_4xx(self, one: TestClient, registry_db: Registry,
                                     modules: str, blob: bytes) -> None:
        """Whatever the names and bytes, the answer is never a 5xx."""
        status = _put(one, registry_db, blob, modules, fmt="npz")
        assert status == 422 or (status == 400 and "\x00" in modules), status
