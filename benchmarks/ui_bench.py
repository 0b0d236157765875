"""Web UI pages in process at 1,000 and 100,000 versions, and one `mmgov serve` worker's memory.

Run: ``.venv/bin/python benchmarks/ui_bench.py [--small 1000] [--big 100000] [--rounds 200]``.

1. Builds two SQLite registries alike except for the size of model ``mm``: three versions
   registered through the service (aliases production and staging with history, a policy, an
   open incident, tags), then bulk-inserted up to ``--small`` and ``--big`` versions through
   SQLAlchemy core into the same tables (benchmark-only: no audit events for those rows, which
   the pages never read; the audit page's chain check, run on request, costs by events).
2. Signs a maintainer in on each (the real session cookie) and requests every page in
   ``--rounds`` interleaved rounds (one request of each page on each registry per round, so load
   from other processes hits both alike) through the app in process (httpx's ASGI transport).
   Prints p50/p95 per page and size, and the ratio big/small: the pages pass when p50 < 30 ms
   and the ratio ≤ 1.5.
3. Starts `mmgov serve` (one worker) on the big registry, requests every page 50 times over
   HTTP, and reads the worker's resident memory (VmRSS, and the peak VmHWM) from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, select, update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # registry and benchmarks._seed from this checkout

from benchmarks._seed import ADMIN, register, seed, version_body  # noqa: E402 - after the path insert
from registry import service  # noqa: E402
from registry.api import ApiSettings, create_app  # noqa: E402
from registry.config import canonical_json, canonicalize, sha256_hex  # noqa: E402
from registry.db import Database, open_database  # noqa: E402
from registry.models import Model, ModelVersion, utcnow  # noqa: E402
from registry.schemas import AlertIn, PolicyRules  # noqa: E402
from registry.serve_process import serve  # noqa: E402

BULK_BATCH = 2000
P50_BUDGET_MS = 30.0
RATIO_BUDGET = 1.5
RSS_BUDGET_MB = 200.0
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def pages(total: int) -> dict[str, str]:
    """The pages measured, by name; the deep page starts from the middle of the versions."""
    return {
        "models": "/",
        "model (first page)": "/models/mm",
        "model (deep page)": f"/models/mm?cursor={total // 2}",
        "version": "/models/mm/versions/2",
        "diff": "/models/mm/diff?a=1&b=3",
        "health (no Prometheus)": "/models/mm/health",
        "audit": "/audit",
        "incidents": "/incidents",
        FLOOR: "/healthz",
    }


FLOOR = "floor: GET /healthz (no page)"
"""Measured the same way in the same rounds: what the harness and this machine's load cost."""


def build(url: str, total: int) -> str:
    """Create the registry at ``url`` with model mm at ``total`` versions; return a token."""
    db = open_database(url)
    try:
        secret = seed(db)
        for epochs in (1, 2, 3):
            register(db, "mm", epochs)
        for version in (1, 2, 3):
            service.promote(db, ADMIN, model="mm", version=version, alias="production")
        service.promote(db, ADMIN, model="mm", version=3, alias="staging")
        service.set_policy(db, ADMIN, model="mm", alias="production",
                           rules=PolicyRules(require_reference=True))
        service.set_tags(db, ADMIN, model="mm", version=2, tags={"dataset": "coco"})
        service.record_alerts(db, ADMIN, [AlertIn.model_validate({
            "status": "firing", "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1",
            "labels": {"alertname": "Drift", "model": "mm", "version": "2",
                       "module": "image_encoder"},
        })])
        _populate(db, total)
    finally:
        db.dispose()
    return secret


def _populate(db: Database, total: int) -> None:
    template = canonicalize(version_body(1)["config"]).data
    with db.transaction() as session:
        model_id = session.scalars(select(Model.id).where(Model.name == "mm")).one()
        now = utcnow()
        batch: list[dict[str, Any]] = []
        for i in range(4, total + 1):
            config = {**template, "training": {**template["training"], "epochs": 100 + i}}
            batch.append({
                "model_id": model_id, "version": i, "semver": "1.0.0", "config": config,
                "config_hash": sha256_hex(canonical_json(config)),
                "weights_uri": f"s3://models/mm/{i}.safetensors",
                "weights_sha256": sha256_hex(str(i)), "weights_bytes": None,
                "module_hashes": {}, "parent_version": i - 1, "note": "bulk",
                "created_by": "bench-bulk", "created_at": now,
            })  # fmt: skip
            if len(batch) == BULK_BATCH or i == total:
                session.execute(insert(ModelVersion), batch)
                batch = []
        session.execute(update(Model).where(Model.id == model_id).values(next_version=total))


def signed_in(client: httpx.Client, secret: str) -> None:
    """Sign ``client`` in through the sign-in form."""
    token = _CSRF.search(client.get("/sign-in").text)
    assert token, "no CSRF token on the sign-in form"
    r = client.post("/sign-in", data={"csrf": token.group(1), "token": secret},
                    follow_redirects=False)
    assert r.status_code == 303, r.text


async def _signed_in(client: httpx.AsyncClient, secret: str) -> None:
    token = _CSRF.search((await client.get("/sign-in")).text)
    assert token, "no CSRF token on the sign-in form"
    r = await client.post("/sign-in", data={"csrf": token.group(1), "token": secret})
    assert r.status_code == 303, r.text


async def measure(
    apps: dict[int, Any], secrets: dict[int, str], rounds: int, warmup: int
) -> dict[tuple[str, int], list[float]]:
    """Request every page on every registry once per round; return latencies in ms.

    The app runs in this process, called through httpx's ASGI transport (no socket, no
    thread hop in the client): the time is the app's, its thread pool included.
    """
    clients = {
        size: httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                base_url="http://127.0.0.1")
        for size, app in apps.items()
    }
    found: dict[tuple[str, int], list[float]] = {}
    try:
        for size, client in clients.items():
            await _signed_in(client, secrets[size])
        for index in range(warmup + rounds):
            for size, client in clients.items():
                for name, path in pages(size).items():
                    start = time.perf_counter()
                    r = await client.get(path)
                    took = (time.perf_counter() - start) * 1000
                    if r.status_code != 200:
                        raise RuntimeError(f"{path} answered {r.status_code}: {r.text[:300]}")
                    if index >= warmup:  # warm-up: templates compile, caches fill
                        found.setdefault((name, size), []).append(took)
    finally:
        for client in clients.values():
            await client.aclose()
    return found


def _q(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


def report(latencies: dict[tuple[str, int], list[float]], small: int, big: int) -> bool:
    """Print the table; return whether every page met its budgets."""
    print(f"| page | p50 at {small:,} | p95 at {small:,} | p50 at {big:,} | p95 at {big:,} "
          f"| ratio p50 | verdict |")
    print("|---|---:|---:|---:|---:|---:|---|")
    ok_all = True
    for name in pages(small):
        s, b = latencies[(name, small)], latencies[(name, big)]
        s50, b50 = statistics.median(s), statistics.median(b)
        ratio = b50 / s50
        ok = max(s50, b50) < P50_BUDGET_MS and ratio <= RATIO_BUDGET
        if name != FLOOR:
            ok_all &= ok
        print(f"| {name} | {s50:.2f} ms | {_q(s, 95):.2f} ms | {b50:.2f} ms | {_q(b, 95):.2f} ms "
              f"| {ratio:.2f} | {'ok' if ok else 'FAIL'} |")
    return ok_all


def _rss_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure_rss(url: str, secret: str, total: int, requests: int) -> tuple[float, float]:
    """Serve the registry with one worker, request every page ``requests`` times; RSS in MiB."""
    with serve(url) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        signed_in(client, secret)
        for _ in range(requests):
            for name, path in pages(total).items():
                if name != FLOOR:
                    client.get(path).raise_for_status()
        return _rss_mb(proc.pid)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--rss-requests", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mmgov-ui-bench-") as tmp:
        urls = {size: f"sqlite:///{Path(tmp) / f'ui-{size}.db'}" for size in (args.small, args.big)}
        secrets: dict[int, str] = {}
        apps: dict[int, Any] = {}
        dbs: list[Database] = []
        for size, url in urls.items():
            start = time.perf_counter()
            secrets[size] = build(url, size)
            print(f"registry with {size:,} versions built in {time.perf_counter() - start:.1f} s"
                  " (not measured)", file=sys.stderr)
        for size, url in urls.items():
            db = Database(url)
            dbs.append(db)
            apps[size] = create_app(ApiSettings(database_url=url), db=db)
        try:
            latencies = asyncio.run(measure(apps, secrets, args.rounds,
                                            warmup=max(3, args.rounds // 20)))
        finally:
            for db in dbs:
                db.dispose()
        print(f"\nWeb UI pages in process, {args.rounds} interleaved rounds, SQLite "
              f"(budget: p50 < {P50_BUDGET_MS:.0f} ms, ratio ≤ {RATIO_BUDGET}):\n")
        ok = report(latencies, args.small, args.big)
        rss, peak = measure_rss(urls[args.big], secrets[args.big], args.big, args.rss_requests)
        rss_ok = peak < RSS_BUDGET_MB
        print(f"\n`mmgov serve`, 1 worker, {args.big:,} versions, after {args.rss_requests} "
              f"requests of each page: RSS {rss:.0f} MiB, peak {peak:.0f} MiB "
              f"(budget {RSS_BUDGET_MB:.0f} MB: {'ok' if rss_ok else 'FAIL'})")
        if not (ok and rss_ok):
            raise SystemExit(1)


if __name__ == "__main__":
    main()
