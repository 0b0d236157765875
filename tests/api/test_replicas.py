"""Several `mmgov serve` processes on one database: invariants under load, revocation bound."""

from __future__ import annotations

import functools
import itertools
import random
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import select

from registry import service
from registry.models import Alias, AliasMove
from registry.schemas import Actor
from tests._support import serve, wait_until
from tests.api.conftest import Registry, remote_version_body

pytestmark = pytest.mark.e2e
V1 = "/api/v1"
ADMIN = Actor(name="test", team=None, role="admin")
TOKEN_CACHE_SECONDS = 1.0
ENV = {"MMGOV_TOKEN_CACHE_SECONDS": str(TOKEN_CACHE_SECONDS)}


def test_two_replicas_keep_every_invariant(registry_db: Registry) -> None:
    """Registrations and compare-and-set promotions spread over two servers lose nothing."""
    h = registry_db.headers("maintainer")
    with serve(registry_db.url, env=ENV) as (a, _), serve(registry_db.url, env=ENV) as (b, _):
        bases = [a, b]

        def register(i: int) -> httpx.Response:
            with httpx.Client(base_url=bases[i % 2], timeout=60) as c:
                return c.post(f"{V1}/models/mm/versions", json=remote_version_body(100 + i),
                              headers=h)

        with ThreadPoolExecutor(max_workers=16) as pool:
            made = list(pool.map(register, range(24)))
        assert [r.status_code for r in made] == [201] * 24, [r.text for r in made]
        assert sorted(r.json()["version"]["version"] for r in made) == list(range(1, 25))

        def promote(i: int) -> list[int]:
            """Read the alias on one replica, move it on the other; 409 when someone was first."""
            rng = random.Random(i)
            won = []
            with httpx.Client(timeout=60) as c:
                for _ in range(6):
                    read, write = bases[rng.randrange(2)], bases[rng.randrange(2)]
                    got = c.get(f"{read}{V1}/models/mm/aliases/production", headers=h)
                    current = got.json()["version"] if got.status_code == 200 else None
                    target = rng.choice([v for v in range(1, 25) if v != current])
                    r = c.put(f"{write}{V1}/models/mm/aliases/production", headers=h,
                              json={"version": target, "expected_version": current})
                    assert r.status_code in (200, 409), r.text
                    if r.status_code == 200:
                        won.append(target)
            return won

        with ThreadPoolExecutor(max_workers=12) as pool:
            wins = [v for won in pool.map(promote, range(12)) for v in won]
    assert wins, "no promotion succeeded"
    with registry_db.db.read() as s:
        moves = s.scalars(select(AliasMove).order_by(AliasMove.audit_seq)).all()
        final = s.scalars(select(Alias)).one()
        final_version = [m.version for m in moves if m.version_id == final.version_id][-1]
        chain = [(m.from_version, m.version) for m in moves]
    # Every acknowledged promotion is one move, each starting where the previous one ended.
    assert sorted(v for _, v in chain) == sorted(wins)
    assert chain[0][0] is None
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(chain))
    assert final_version == chain[-1][1]
    report = service.verify_audit(registry_db.db, ADMIN)
    assert report.ok, report.reason  # the chain, and the tables replayed from it


def test_revoked_token_refused_on_every_replica_within_the_cache_bound(
    registry_db: Registry,
) -> None:
    """After a revocation, each replica answers 401 within MMGOV_TOKEN_CACHE_SECONDS."""
    token, secret = service.create_token(registry_db.db, ADMIN, team="alpha", role="reader",
                                         name="short-lived")
    auth = {"Authorization": f"Bearer {secret}"}
    with (
        serve(registry_db.url, env=ENV) as (a, _),
        serve(registry_db.url, env=ENV) as (b, _),
        httpx.Client(timeout=10) as c,
    ):
        for base in (a, b):  # both caches now hold the token
            assert c.get(f"{base}{V1}/models", headers=auth).status_code == 200
        service.revoke_token(registry_db.db, ADMIN, token.id)
        revoked = time.monotonic()
        refused_after = {}

        def refused(base: str) -> bool:
            return c.get(f"{base}{V1}/models", headers=auth).status_code != 200

        for base in (a, b):
            wait_until(f"{base} to refuse the revoked token", functools.partial(refused, base),
                       timeout=TOKEN_CACHE_SECONDS + 2 - (time.monotonic() - revoked),
                       interval=0.05)
            refused_after[base] = time.monotonic() - revoked
        assert all(t <= TOKEN_CACHE_SECONDS + 0.5 for t in refused_after.values()), refused_after
