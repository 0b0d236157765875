"""Fixtures for the admin API: a migrated database with two teams and a token per role."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from registry import service
from registry.api import ApiSettings, create_app
from registry.config import parse_yaml
from registry.db import Database, open_database
from registry.schemas import Actor

ROOT = Path(__file__).resolve().parents[2]
SEED_CONFIG = (ROOT / "configs" / "model.yaml").read_text(encoding="utf-8")
ALERTS_TOKEN = "alerts-webhook-secret"
CLI_ADMIN = Actor(name="test-admin", team=None, role="admin")
ROLES = ("reader", "maintainer", "admin", "other")
"""Token holders: reader/maintainer/admin of team alpha, and a maintainer of team beta."""


def config_dict(epochs: int = 10) -> dict[str, Any]:
    """Return the seed config as JSON, with ``training.epochs`` changed to vary the hash."""
    data = copy.deepcopy(parse_yaml(SEED_CONFIG))
    data["training"]["epochs"] = epochs
    return data


def remote_version_body(epochs: int = 10, **extra: Any) -> dict[str, Any]:
    """Return a register body with a remote weights URI (stored, never fetched)."""
    digest = hashlib.sha256(f"weights-{epochs}".encode()).hexdigest()
    return {
        "config": config_dict(epochs),
        "weights_uri": f"s3://models/mm/{epochs}.safetensors",
        "weights_sha256": digest,
        **extra,
    }


@dataclass
class Registry:
    """A migrated database, its URL and one bearer secret per role."""

    url: str
    db: Database
    tokens: dict[str, str]
    weights_root: Path

    def headers(self, role: str | None) -> dict[str, str]:
        """Return the Authorization header of ``role`` (none for None)."""
        return {} if role is None else {"Authorization": f"Bearer {self.tokens[role]}"}


@pytest.fixture
def registry_db(db_url: str, tmp_path: Path) -> Iterator[Registry]:
    """A migrated registry with teams alpha and beta and their tokens."""
    db = open_database(db_url) if db_url.startswith("sqlite") else _upgraded(db_url)
    service.create_team(db, CLI_ADMIN, "alpha")
    service.create_team(db, CLI_ADMIN, "beta")
    tokens = {}
    for role in ("reader", "maintainer", "admin"):
        _, tokens[role] = service.create_token(db, CLI_ADMIN, team="alpha", role=role, name=role)
    _, tokens["other"] = service.create_token(db, CLI_ADMIN, team="beta", role="maintainer",
                                              name="other")
    root = tmp_path / "weights"
    root.mkdir()
    try:
        yield Registry(url=db_url, db=db, tokens=tokens, weights_root=root)
    finally:
        db.dispose()


def _upgraded(url: str) -> Database:
    from registry.db import upgrade

    upgrade(url)
    return open_database(url)


def make_settings(reg: Registry, **overrides: Any) -> ApiSettings:
    """Return API settings for ``reg`` (no token cache, so revocations show at once)."""
    values: dict[str, Any] = {
        "database_url": reg.url,
        "alerts_token": ALERTS_TOKEN,
        "weights_roots": str(reg.weights_root),
        "token_cache_seconds": 0,
        **overrides,
    }
    return ApiSettings(**values)


@pytest.fixture
def client(registry_db: Registry) -> Iterator[TestClient]:
    """An in-process client of an app over ``registry_db``."""
    app = create_app(make_settings(registry_db), db=registry_db.db)
    with TestClient(app) as test_client:
        yield test_client
