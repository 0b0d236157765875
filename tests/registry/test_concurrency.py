"""Concurrency: gap-free version numbers and an intact audit chain under parallel writers."""

from __future__ import annotations

import hashlib
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import pytest

from registry import service
from registry.config import canonicalize
from registry.db import Database
from registry.schemas import Actor
from registry.weights import WeightsInfo

N = 32
ADMIN = Actor(name="racer", team=None, role="admin")


def _register(url: str, i: int, db: Database | None = None) -> int:
    """Register config ``i`` of model `race`; opens its own Database unless one is given."""
    own = db is None
    database = db or Database(url)
    try:
        config = canonicalize(
            {
                "image_encoder": {"type": "clip_vision"},
                "text_encoder": {"type": "minilm"},
                "fusion_type": "concat",
                "training": {"epochs": i},
            }
        )
        weights = WeightsInfo(
            uri=f"s3://b/{i}",
            sha256=hashlib.sha256(str(i).encode()).hexdigest(),
            size_bytes=None,
            module_hashes={},
        )
        result = service.register_version(
            database, ADMIN, model="race", config=config, weights=weights
        )
        return result.version.version
    finally:
        if own:
            database.dispose()


def _check(database: Database, numbers: list[int]) -> None:
    assert sorted(numbers) == list(range(1, N + 1))
    page = service.list_versions(database, ADMIN, "race", limit=100)
    assert [v.version for v in page.items] == list(range(N, 0, -1))
    report = service.verify_audit(database, ADMIN)
    # One team.create of the 'default' owner and one model.create (whoever won each race),
    # plus one version.register per registration.
    assert (report.ok, report.checked) == (True, N + 2)


class TestConcurrentRegistration:
    def test_threads_register_first_model_and_32_versions(
        self, database: Database, db_url: str
    ) -> None:
        """32 threads registering a new model get versions 1..32, no error, one model.create."""
        with ThreadPoolExecutor(max_workers=N) as pool:
            numbers = list(pool.map(lambda i: _register(db_url, i, database), range(N)))
        _check(database, numbers)

    @pytest.mark.slow
    def test_processes_register_first_model_and_32_versions(
        self, database: Database, db_url: str
    ) -> None:
        """Spawned processes, each with its own Database, get versions 1..32 with no error."""
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=8, mp_context=ctx) as pool:
            numbers = list(pool.map(_register, [db_url] * N, range(N)))
        _check(database, numbers)


class TestConcurrentAudit:
    def test_32_concurrent_appends_form_a_valid_chain(self, database: Database) -> None:
        """32 threads appending (team.create) give seqs 1..32 and a chain that verifies."""
        with ThreadPoolExecutor(max_workers=N) as pool:
            list(pool.map(lambda i: service.create_team(database, ADMIN, f"t{i}"), range(N)))
        report = service.verify_audit(database, ADMIN)
        assert (report.ok, report.checked, report.head_seq) == (True, N, N)
        seqs = [e.seq for e in service.list_audit(database, ADMIN, limit=100).items]
        assert seqs == list(range(N, 0, -1))
