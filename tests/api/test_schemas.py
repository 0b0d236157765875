"""Config schemas over HTTP: set, read, diff, and registrations checked against them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from registry.models import AuditEvent, ModelSchema, ModelVersion
from tests.api.conftest import Registry

V1 = "/api/v1"
ROOT = Path(__file__).resolve().parents[2]
SEED_TEXT = (ROOT / "examples" / "clip" / "config.yaml").read_text()
REFERENCE_SCHEMA = json.loads((ROOT / "configs" / "model.schema.json").read_text())
WEIGHTS = ROOT / "tests" / "fixtures" / "release_0_1" / "weights_a.safetensors"
SCHEMA = {
    "type": "object",
    "properties": {
        "model": {
            "type": "object",
            "properties": {"fusion_type": {"enum": ["concat", "cross_attention"]}},
        },
        "training": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "batch_size": {"type": "integer"},
                "learning_rate": {"type": "number"},
                "epochs": {"type": "integer"},
            },
        },
    },
}


def _counts(reg: Registry) -> tuple[int, int, int]:
    with reg.db.read() as s:
        return tuple(  # type: ignore[return-value]
            s.scalar(select(func.count()).select_from(t)) or 0
            for t in (ModelVersion, ModelSchema, AuditEvent)
        )


def _seed_body(reg: Registry, text: str = SEED_TEXT) -> dict[str, object]:
    local = reg.weights_root / "seed.safetensors"
    if not local.exists():
        shutil.copy(WEIGHTS, local)
    return {"config_yaml": text, "weights_uri": str(local)}


class TestSchemaRoutes:
    def test_seed_config_registers_over_http(self, client: TestClient, registry_db: Registry):
        """The seed's config.yaml registers as it is (201), with local safetensors weights."""
        r = client.post(
            f"{V1}/models/seed/versions",
            json=_seed_body(registry_db),
            headers=registry_db.headers("maintainer"),
        )
        assert r.status_code == 201, r.text
        version = r.json()["version"]
        assert (version["semver"], version["weights_format"], version["schema_version"]) == (
            "v1.2.0",
            "safetensors",
            None,
        )

    def test_set_read_and_check_registration(self, client: TestClient, registry_db: Registry):
        """PUT a schema, GET it back, and a config breaking it is 422 listing every violation."""
        h = registry_db.headers("maintainer")
        put = client.put(
            f"{V1}/models/seed/schema", json={"document": SCHEMA, "note": "first"}, headers=h
        )
        assert put.status_code == 200, put.text
        assert (put.json()["version"], put.json()["current"]) == (1, True)
        got = client.get(f"{V1}/models/seed/schema", headers=registry_db.headers("reader"))
        assert got.json()["document"] == SCHEMA
        before = _counts(registry_db)
        bad = SEED_TEXT.replace("cross_attention", "gatd").replace("learning_rate", "learnig_rate")
        r = client.post(f"{V1}/models/seed/versions", json=_seed_body(registry_db, bad), headers=h)
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["title"] == "Invalid model config"
        assert [(e["path"], e["rule"]) for e in problem["errors"]] == [
            ("model.fusion_type", "enum"),
            ("training", "additionalProperties"),
        ]
        assert _counts(registry_db) == before
        ok = client.post(f"{V1}/models/seed/versions", json=_seed_body(registry_db), headers=h)
        assert ok.status_code == 201
        assert ok.json()["version"]["schema_version"] == 1

    def test_versions_diff_and_removal(self, client: TestClient, registry_db: Registry):
        """Schema versions list and diff by path; a null document removes the schema (204)."""
        h = registry_db.headers("maintainer")
        client.put(f"{V1}/models/seed/schema", json={"document": SCHEMA}, headers=h)
        client.put(
            f"{V1}/models/seed/schema",
            json={"document": {**SCHEMA, "required": ["model"]}},
            headers=h,
        )
        listed = client.get(f"{V1}/models/seed/schema/versions", headers=h).json()
        assert [(s["version"], s["current"]) for s in listed] == [(1, False), (2, True)]
        diff = client.get(f"{V1}/models/seed/schema/diff", params={"from": 1, "to": 2}, headers=h)
        assert [c["path"] for c in diff.json()["changes"]] == ["required"]
        removed = client.put(f"{V1}/models/seed/schema", json={"document": None}, headers=h)
        assert removed.status_code == 204
        assert client.get(f"{V1}/models/seed/schema", headers=h).status_code == 404
        assert client.get(f"{V1}/models/seed/schema/versions/1", headers=h).json()["version"] == 1

    def test_invalid_schema_is_422_and_nothing_written(
        self, client: TestClient, registry_db: Registry
    ):
        """A document that is not JSON Schema is refused naming the rule; nothing is written."""
        before = _counts(registry_db)
        r = client.put(
            f"{V1}/models/seed/schema",
            json={"document": {"type": 3}},
            headers=registry_db.headers("maintainer"),
        )
        assert r.status_code == 422
        assert "not a valid JSON Schema" in r.json()["detail"]
        assert _counts(registry_db) == before
        assert (
            client.get(f"{V1}/models/seed", headers=registry_db.headers("maintainer")).status_code
            == 404
        )

    def test_roles_and_teams(self, client: TestClient, registry_db: Registry):
        """Readers cannot set schemas (403); another team's maintainer sees no schema (404)."""
        client.put(
            f"{V1}/models/seed/schema",
            json={"document": SCHEMA},
            headers=registry_db.headers("maintainer"),
        )
        r = client.put(
            f"{V1}/models/seed/schema",
            json={"document": None},
            headers=registry_db.headers("reader"),
        )
        assert r.status_code == 403
        assert (
            client.get(f"{V1}/models/seed/schema", headers=registry_db.headers("other")).status_code
            == 404
        )
        assert client.get(f"{V1}/models/seed/schema").status_code == 401

    def test_not_weights_refused(self, client: TestClient, registry_db: Registry):
        """A YAML file given as weights is refused as not safetensors, naming the file."""
        fake = registry_db.weights_root / "config.yaml"
        fake.write_text(SEED_TEXT)
        r = client.post(
            f"{V1}/models/seed/versions",
            json={"config_yaml": SEED_TEXT, "weights_uri": str(fake)},
            headers=registry_db.headers("maintainer"),
        )
        assert r.status_code == 422
        assert "not a safetensors file" in r.json()["detail"]
        assert _counts(registry_db)[0] == 0

    def test_sharded_checkpoint_and_bad_index_over_http(
        self, client: TestClient, registry_db: Registry
    ):
        """A sharded directory under the roots registers; a shard outside its folder is 422."""
        from tests.registry.test_service_weights import _sharded

        ckpt = _sharded(registry_db.weights_root / "ckpt")
        h = registry_db.headers("maintainer")
        r = client.post(
            f"{V1}/models/byo/versions",
            json={"config_yaml": SEED_TEXT, "weights_uri": str(ckpt)},
            headers=h,
        )
        assert r.status_code == 201, r.text
        assert r.json()["version"]["weights_format"] == "safetensors-sharded"
        index = json.loads((ckpt / "model.safetensors.index.json").read_text())
        index["weight_map"]["proj.w"] = "../../outside.safetensors"
        (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
        before = _counts(registry_db)
        r = client.post(
            f"{V1}/models/byo/versions",
            json={"config_yaml": SEED_TEXT, "weights_uri": str(ckpt)},
            headers=h,
        )
        assert r.status_code == 422
        assert r.headers["content-type"] == "application/problem+json"
        assert "../../outside.safetensors" in r.json()["detail"]
        assert _counts(registry_db) == before
