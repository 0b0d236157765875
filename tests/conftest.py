"""Shared fixtures: every database test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from registry.config import CanonicalConfig, canonicalize
from registry.db import Database, upgrade
from registry.schemas import Actor
from registry.weights import WeightsInfo

PG_ADMIN_DSN = os.environ.get(
    "MMGOV_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
)
PG_URL_TEMPLATE = os.environ.get(
    "MMGOV_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
)


def _create_pg_database() -> str:
    name = f"mmgov_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def _drop_pg_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a new, empty database: a SQLite file, or a PostgreSQL database made for this test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mmgov.db'}"
        return
    name = _create_pg_database()
    try:
        yield PG_URL_TEMPLATE.format(dbname=name)
    finally:
        _drop_pg_database(name)


# --- registry fixtures (database at head, actors) ----------------------


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    """A registry Database on a fresh database migrated to head (SQLite and PostgreSQL)."""
    upgrade(db_url)
    db = Database(db_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def admin() -> Actor:
    """The actor the CLI uses: an admin without a team."""
    return Actor(name="alice", team=None, role="admin")


def _make_config(epochs: int = 1, **extra: object) -> CanonicalConfig:
    raw: dict[str, object] = {
        "model": {"name": "demo", "version": "1.0.0"},
        "image_encoder": {"type": "clip_vision"},
        "text_encoder": {"type": "minilm"},
        "fusion_type": "concat",
        "training": {"epochs": epochs, "learning_rate": 2e-5},
        **extra,
    }
    return canonicalize(raw)


def _make_weights(tag: str = "a", modules: dict[str, str] | None = None) -> WeightsInfo:
    return WeightsInfo(
        uri=f"s3://bucket/{tag}.safetensors",
        sha256=hashlib.sha256(tag.encode()).hexdigest(),
        size_bytes=None,
        module_hashes=modules or {},
    )


@pytest.fixture
def make_config() -> Callable[..., CanonicalConfig]:
    """Factory of small valid configs; a different ``epochs`` gives a different hash."""
    return _make_config


@pytest.fixture
def make_weights() -> Callable[..., WeightsInfo]:
    """Factory of remote weights whose sha256 depends on ``tag``."""
    return _make_weights


def write_safetensors(
    path: Path, tag: str = "a", modules: tuple[str, ...] = ("vision", "text")
) -> Path:
    """Write a small real safetensors file (one U8 tensor per module, bytes derived from ``tag``).

    Returns:
        ``path``.
    """
    import json

    tensors = {f"{m}.w": hashlib.sha256(f"{tag}/{m}".encode()).digest() for m in modules}
    header: dict[str, object] = {}
    offset = 0
    for name, data in tensors.items():
        header[name] = {
            "dtype": "U8",
            "shape": [len(data)],
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + b"".join(tensors.values()))
    return path
