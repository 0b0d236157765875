"""Seed data of the benchmarks that drive a real `mmgov serve`: an admin, a team, versions.

Imported by the benchmarks as ``benchmarks._seed`` (they put the repository root on
``sys.path``); benchmarks never import ``tests``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from registry import service
from registry.config import canonicalize, parse_yaml
from registry.db import Database, open_database
from registry.schemas import Actor
from registry.weights import inspect_weights

ROOT = Path(__file__).resolve().parents[1]
SEED_CONFIG = (ROOT / "configs" / "model.yaml").read_text(encoding="utf-8")
ADMIN = Actor(name="bench-admin", team=None, role="admin")
TEAM = "bench"


def version_body(n: int) -> dict[str, Any]:
    """Return a register body: the seed config with ``training.epochs = n`` (a distinct hash)
    and a remote weights URI with a made-up digest (stored, never fetched)."""
    config = copy.deepcopy(parse_yaml(SEED_CONFIG))
    config["training"]["epochs"] = n
    return {"config": config, "weights_uri": f"s3://models/mm/{n}.safetensors",
            "weights_sha256": f"{n:064x}"}


def register(db: Database, model: str, n: int) -> None:
    """Register `version_body(n)` as the next version of ``model`` (team bench)."""
    body = version_body(n)
    service.register_version(
        db, ADMIN, model=model, team=TEAM, config=canonicalize(body["config"]),
        weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
    )


def seed(db: Database) -> str:
    """Create team bench with a maintainer token; return the token's secret."""
    service.create_team(db, ADMIN, TEAM)
    _, secret = service.create_token(db, ADMIN, team=TEAM, role="maintainer", name="bench")
    return secret


def seed_production(url: str) -> str:
    """`seed` the registry at ``url`` and promote model mm v1 to production; return the secret."""
    db = open_database(url)
    try:
        secret = seed(db)
        register(db, "mm", 1)
        service.promote(db, ADMIN, model="mm", version=1, alias="production")
    finally:
        db.dispose()
    return secret
