"""Governance costs, in-process on SQLite or PostgreSQL (issue 14's goals), as ratios in one run.

Run: ``.venv/bin/python benchmarks/governance_bench.py [--db URL] [--rounds R] [--moves M]
[--small S] [--big B] [--quick]`` (``registry_bench.py --governance`` runs the same).

1. Promotion through a policy of four rules (min role, reference profile, no open incident, one
   approval) against an unprotected promotion, interleaved call by call; each call alternates
   between two versions so every one writes. Goal: p50 ratio ≤ 2.
2. ``alias_history(at=…)`` on an alias with ``--moves`` (10,000) moves (bulk-inserted into
   ``alias_moves``, benchmark-only: no audit events), at random moments. Goal: p50 < 1 ms.
   ``SELECT 1`` on the same kind of connection is timed beside it: the round-trip floor.
3. Listing the first page with a tag filter on a model with ``--big`` (100,000) versions against
   a control model with ``--small`` (1,000) in the same database, interleaved: a rare tag
   (20 versions) and a common one (every 10th version). Goal: p50 ratio ≤ 1.5 for both.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, literal, select, update  # noqa: E402 - after the path insert

from registry import service  # noqa: E402
from registry.db import Database, upgrade  # noqa: E402
from registry.models import Alias, AliasMove, Model, ModelVersion, VersionTag, utcnow  # noqa: E402
from registry.schemas import Actor, AlertIn, PolicyRules  # noqa: E402
from registry.weights import WeightsInfo  # noqa: E402

ADMIN = Actor(name="bench-admin", team=None, role="admin")
REVIEWER = Actor(name="bench-reviewer", team=None, role="admin")
PROMOTE_GOAL_RATIO = 2.0
AT_GOAL_MS = 1.0
TAG_GOAL_RATIO = 1.5
RARE_TAGGED = 20
COMMON_EVERY = 10
BATCH = 5_000
_FLOOR = select(literal(1))
FLOORS: list[list[float]] = []
"""``SELECT 1`` on a read connection, timed like the history reads: the database's floor."""


def _p50_ms(latencies: list[float]) -> float:
    return 1000 * statistics.median(latencies)


def _interleaved(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    for call in calls.values():  # warm caches and compiled statements
        call()
    out: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for r in range(rounds):
        for name in names if r % 2 else reversed(names):
            t0 = time.perf_counter()
            calls[name]()
            out[name].append(time.perf_counter() - t0)
    return out


def _model(db: Database, versions: int) -> str:
    name = f"gov-{uuid.uuid4().hex[:8]}"
    for i in range(1, versions + 1):
        service.register_version(
            db, ADMIN, model=name, config={"model": {"name": name}, "training": {"epochs": i}},
            weights=WeightsInfo(uri=f"s3://b/{name}/{i}", sha256=f"{i:064x}", size_bytes=None,
                                module_hashes={}),
        )  # fmt: skip
    return name


def measure_promotion(db: Database, rounds: int) -> dict[str, list[float]]:
    """p50s of an unprotected promotion and one through a four-rule policy, interleaved."""
    free, guarded = _model(db, 2), _model(db, 2)
    service.set_policy(db, ADMIN, model=guarded, alias="production", rules=PolicyRules(
        min_role="maintainer", require_reference=True, no_open_incident=True, approvals=1,
    ))  # fmt: skip
    for version in (1, 2):
        service.attach_reference(db, ADMIN, model=guarded, version=version, fmt="npz-v1",
                                 blob=b"ref", n_samples=1, modules=["vision"])  # fmt: skip
        service.approve(db, REVIEWER, model=guarded, version=version, alias="production")
    # A resolved incident on each version: the rule reads it and finds it closed.
    service.record_alerts(db, ADMIN, [
        AlertIn.model_validate({
            "status": s, "labels": {"model": guarded, "version": str(v)},
            "startsAt": "2026-01-01T00:00:00Z", "fingerprint": f"{guarded}-{v}",
        })
        for v in (1, 2) for s in ("firing", "resolved")
    ])  # fmt: skip
    flips = {free: [1, 2], guarded: [1, 2]}

    def promote(model: str) -> Callable[[], object]:
        def call() -> object:
            flips[model].reverse()
            return service.promote(db, ADMIN, model=model, version=flips[model][0],
                                   alias="production")  # fmt: skip

        return call

    return _interleaved(
        {"promote (unprotected)": promote(free), "promote (4-rule policy)": promote(guarded)},
        rounds,
    )


def measure_history_at(db: Database, moves: int, rounds: int) -> list[float]:
    """Latencies of `alias_history(at=…)` at random moments over ``moves`` moves."""
    model = _model(db, 2)
    service.promote(db, ADMIN, model=model, version=1, alias="production")
    start = utcnow() - timedelta(seconds=moves + 10)
    with db.transaction() as session:
        alias_id, model_id = session.execute(
            select(Alias.id, Alias.model_id).join(Model, Model.id == Alias.model_id)
            .where(Model.name == model)
        ).one()
        ids = list(session.scalars(
            select(ModelVersion.id).where(ModelVersion.model_id == model_id)
            .order_by(ModelVersion.version)
        ))  # fmt: skip
        # The bulk moves lie in the past, so the model is backdated before them (bench-only).
        session.execute(
            update(Model).where(Model.id == model_id).values(created_at=start - timedelta(1))
        )
        batch: list[dict[str, Any]] = []
        for i in range(moves):
            batch.append({
                "alias_id": alias_id, "version_id": ids[i % 2], "from_version_id": ids[1 - i % 2],
                "version": 1 + i % 2, "from_version": 2 - i % 2, "action": "promote",
                "actor": "bench-bulk", "reason": "",
                "at": start + timedelta(seconds=i), "audit_seq": 0,
            })  # fmt: skip
            if len(batch) == BATCH or i == moves - 1:
                session.execute(insert(AliasMove), batch)
                batch = []
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE alias_moves")
    rng = random.Random(14)
    latencies = []
    floor = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        with db.connect() as conn:
            conn.execute(_FLOOR).scalar_one()
        floor.append(time.perf_counter() - t0)
    FLOORS.append(floor)
    service.alias_history(db, ADMIN, model, "production", at=start + timedelta(seconds=5))
    for _ in range(rounds):
        at = start + timedelta(seconds=rng.uniform(0, moves))
        t0 = time.perf_counter()
        found = service.alias_history(db, ADMIN, model, "production", at=at)
        latencies.append(time.perf_counter() - t0)
        assert found.version_at is not None
    return latencies


def _bulk_model(db: Database, total: int) -> str:
    """A model with ``total`` bulk-inserted versions, 20 tagged rare=yes, every 10th common=yes."""
    model = _model(db, 1)
    with db.transaction() as session:
        model_id = session.scalars(select(Model.id).where(Model.name == model)).one()
        now = utcnow()
        batch: list[dict[str, Any]] = []
        for i in range(2, total + 1):
            batch.append({
                "model_id": model_id, "version": i, "semver": None, "config": {"i": i},
                "config_hash": f"{i:064x}", "weights_uri": f"s3://b/{i}", "weights_sha256":
                f"{i:064x}", "weights_bytes": None, "module_hashes": {}, "parent_version": None,
                "note": "bulk", "created_by": "bench-bulk", "created_at": now,
            })  # fmt: skip
            if len(batch) == BATCH or i == total:
                session.execute(insert(ModelVersion), batch)
                batch = []
        session.execute(update(Model).where(Model.id == model_id).values(next_version=total))
        ids: dict[int, int] = {
            version: pk
            for version, pk in session.execute(
                select(ModelVersion.version, ModelVersion.id)
                .where(ModelVersion.model_id == model_id)
            )
        }
        rare = {round(1 + k * (total - 1) / (RARE_TAGGED - 1)) for k in range(RARE_TAGGED)}
        tagged = [("rare", v) for v in sorted(rare)]
        tagged += [("common", v) for v in range(COMMON_EVERY, total + 1, COMMON_EVERY)]
        tags = [
            {"model_id": model_id, "version_id": ids[v], "version": v, "key": key,
             "value": "yes", "created_by": "bench-bulk", "created_at": now}
            for key, v in tagged
        ]  # fmt: skip
        for i in range(0, len(tags), BATCH):
            session.execute(insert(VersionTag), tags[i : i + BATCH])
    if db.dialect == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE model_versions")
            conn.exec_driver_sql("ANALYZE version_tags")
    return model


def measure_tag_listing(db: Database, small: int, big: int, rounds: int) -> dict[str, list[float]]:
    """First page with a tag filter on ``big`` and ``small`` versions, interleaved."""
    control, large = _bulk_model(db, small), _bulk_model(db, big)

    def listing(model: str, key: str) -> Callable[[], object]:
        return lambda: service.list_versions(db, ADMIN, model, limit=50, tags={key: "yes"})

    return _interleaved(
        {
            f"rare tag, {small:,}": listing(control, "rare"),
            f"rare tag, {big:,}": listing(large, "rare"),
            f"common tag, {small:,}": listing(control, "common"),
            f"common tag, {big:,}": listing(large, "common"),
        },
        rounds,
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def render(
    dialect: str,
    promotion: dict[str, list[float]],
    at: list[float],
    moves: int,
    tags: dict[str, list[float]],
    small: int,
    big: int,
) -> str:
    """The markdown report: p50/p99 per operation, then each goal with its verdict."""
    rows = ["| operation | p50 ms | p99 ms | calls |", "|---|---:|---:|---:|"]
    every = {**promotion, f"history --at, {moves:,} moves": at, **tags}
    if FLOORS:
        every["floor: SELECT 1 on a read connection"] = FLOORS[-1]
    for name, lat in every.items():
        ordered = sorted(lat)
        p99 = 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        rows.append(f"| {name} | {_p50_ms(lat):.3f} | {p99:.3f} | {len(lat)} |")
    free = _p50_ms(promotion["promote (unprotected)"])
    guarded = _p50_ms(promotion["promote (4-rule policy)"])
    ratio = guarded / free
    at_ms = _p50_ms(at)
    goals = ["", "| goal | target | measured | verdict |", "|---|---|---:|---|"]
    goals.append(f"| promotion through a 4-rule policy vs unprotected | p50 ratio ≤ "
                 f"{PROMOTE_GOAL_RATIO} | {ratio:.2f} | {_verdict(ratio <= PROMOTE_GOAL_RATIO)} |")
    goals.append(f"| history --at, {moves:,} moves | p50 < {AT_GOAL_MS} ms | {at_ms:.3f} ms | "
                 f"{_verdict(at_ms < AT_GOAL_MS)} |")  # fmt: skip
    for kind in ("rare", "common"):
        r = _p50_ms(tags[f"{kind} tag, {big:,}"]) / _p50_ms(tags[f"{kind} tag, {small:,}"])
        goals.append(f"| list with a {kind} tag filter: no slowdown {small:,} → {big:,} "
                     f"versions | p50 ratio ≤ {TAG_GOAL_RATIO} | {r:.2f} | "
                     f"{_verdict(r <= TAG_GOAL_RATIO)} |")  # fmt: skip
    head = f"governance, in-process on {dialect}"
    return "\n".join([head, "", *rows, *goals])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``--quick`` shrinks every size for a smoke run)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a fresh temporary SQLite file)")
    parser.add_argument("--rounds", type=int, default=1_000, help="calls per operation")
    parser.add_argument("--moves", type=int, default=10_000, help="moves of the history alias")
    parser.add_argument("--small", type=int, default=1_000, help="versions of the control model")
    parser.add_argument("--big", type=int, default=100_000, help="versions of the big model")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 / 200 / 600 / 2,000")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.moves, args.small, args.big = 20, 200, 600, 2_000
    if args.small < RARE_TAGGED or args.big < args.small or args.rounds < 1 or args.moves < 2:
        parser.error(f"need --small ≥ {RARE_TAGGED}, --big ≥ --small, --rounds ≥ 1, --moves ≥ 2")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the markdown report."""
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mmgov-governance-bench-"))
    url = args.db or f"sqlite:///{tmp / 'registry.db'}"
    try:
        upgrade(url)
        db = Database(url)
        try:
            promotion = measure_promotion(db, args.rounds)
            at = measure_history_at(db, args.moves, args.rounds)
            tags = measure_tag_listing(db, args.small, args.big, args.rounds)
        finally:
            db.dispose()
        print(render(db.dialect, promotion, at, args.moves, tags, args.small, args.big))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
