"""Admin API latency: resolve an alias and register versions through a real `mmgov serve`.

Run: ``.venv/bin/python benchmarks/api_bench.py [--requests N] [--threads T] [--cap SECONDS]``.

Starts `mmgov serve` itself (1 and 4 workers, temp SQLite database) on loopback, then drives it
with keep-alive httpx clients: a fixed number of requests, stopped early at a time cap. Each call
is measured twice: its latency with one client (requests one after the other: p50/p99), and its
throughput with ``--threads`` clients at once (req/s; the p50 there includes queueing). Calls:
``GET …/aliases/production`` (fresh body, and the cheap ``If-None-Match`` → 304 poll) and
``POST …/versions`` (distinct configs, so each one writes). Governance (issue 14): ``PUT
…/aliases/production`` on an unprotected model and on one whose production alias has a policy of
four rules (min role, reference profile, no open incident, one approval), each call flipping
between two versions, and ``GET …/aliases/production/history?at=…``.

The floor is measured in the same run, the same way: the smallest ASGI app
(``benchmarks/_floor_app.py``) under uvicorn with the same event loop and HTTP parser, so the
client, the loopback and the server cost on this machine are in the table next to mmgov.

MLflow's ``GET /api/2.0/mlflow/registered-models/alias`` is measured the same way when
``mlflow`` is importable. It is not a dependency of mmgov; ``make compare-venv`` installs it with
mmgov in a separate venv inside the repository (ignored by git), which then runs this script::

    make compare-venv
    .venv-compare/mlflow/bin/python benchmarks/api_bench.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # registry and benchmarks._seed from this checkout

from benchmarks._seed import ADMIN, register, seed_production, version_body  # noqa: E402
from registry.db import Database  # noqa: E402
from registry.serve_process import free_port, http_ok, serve, stop_process, wait_until  # noqa: E402


def _setup(url: str) -> str:
    """Seed model mm (v1 in production) and `_setup_governance`; return a maintainer's secret."""
    from registry.db import open_database

    secret = seed_production(url)
    db = open_database(url)
    try:
        _setup_governance(db)
    finally:
        db.dispose()
    return secret


def _setup_governance(db: Database) -> None:
    """Models `free` and `guarded` (team bench, versions 1 and 2); guarded's production alias
    has a four-rule policy that both versions meet."""
    from registry import service
    from registry.schemas import Actor, PolicyRules

    reviewer = Actor(name="bench-reviewer", team=None, role="admin")
    for model in ("free", "guarded"):
        for epochs in (1, 2):
            register(db, model, epochs)
    service.set_policy(db, ADMIN, model="guarded", alias="production", rules=PolicyRules(
        min_role="maintainer", require_reference=True, no_open_incident=True, approvals=1,
    ))
    for version in (1, 2):
        service.attach_reference(db, ADMIN, model="guarded", version=version,
                                 fmt="npz-v1", blob=b"ref", n_samples=1, modules=["vision"])
        service.approve(db, reviewer, model="guarded", version=version, alias="production")


def load(
    base: str, call: Callable[[httpx.Client, int], httpx.Response], *, requests: int,
    threads: int, cap: float,
) -> dict[str, float]:
    """Run ``requests`` calls over ``threads`` keep-alive clients (stop at ``cap`` seconds)."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + cap

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=30) as client:
            call(client, -1)  # warm the connection: keep-alive is what is measured
            while time.monotonic() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = call(client, i)
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors += r.status_code >= 500

    start = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - start
    latencies.sort()
    return {
        "n": len(latencies),
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "rps": len(latencies) / wall,
        "errors": errors,
    }


def measure(
    name: str, base: str, call: Callable[[httpx.Client, int], httpx.Response], *, requests: int,
    args: argparse.Namespace,
) -> list[str]:
    """Latency with one client, then throughput with ``args.threads``: two table rows."""
    rows = []
    for threads in dict.fromkeys((1, args.threads)):
        r = load(base, call, requests=requests, threads=threads, cap=args.cap)
        rows.append(
            f"| {name} | {threads} | {r['n']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
            f"| {r['rps']:.0f} | {r['errors']:.0f} |"
        )
    return rows


def bench_mmgov(workers: int, args: argparse.Namespace, tmp: Path) -> Iterator[str]:
    """Measure one `mmgov serve --workers N` on a fresh SQLite database."""
    url = f"sqlite:///{tmp / f'bench-{workers}.db'}"
    secret = _setup(url)
    auth = {"Authorization": f"Bearer {secret}"}
    path = "/api/v1/models/mm/aliases/production"
    with serve(url, workers=workers) as (base, _proc):
        etag = httpx.get(base + path, headers=auth).headers["etag"]

        def resolve(c: httpx.Client, _i: int) -> httpx.Response:
            return c.get(path, headers=auth)

        def poll(c: httpx.Client, _i: int) -> httpx.Response:
            return c.get(path, headers={**auth, "If-None-Match": etag})

        written = iter(range(1000 * workers, 10**9))

        def register(c: httpx.Client, i: int) -> httpx.Response:
            if i < 0:
                return c.get("/healthz")
            return c.post("/api/v1/models/mm/versions", headers=auth,
                          json=version_body(next(written)))

        yield from measure(f"mmgov {workers}w resolve alias (200)", base, resolve,
                           requests=args.requests, args=args)
        yield from measure(f"mmgov {workers}w resolve alias (304)", base, poll,
                           requests=args.requests, args=args)
        yield from measure(f"mmgov {workers}w register version", base, register,
                           requests=args.writes, args=args)

        def promoting(model: str) -> Callable[[httpx.Client, int], httpx.Response]:
            def call(c: httpx.Client, i: int) -> httpx.Response:
                return c.put(f"/api/v1/models/{model}/aliases/production", headers=auth,
                             json={"version": 1 + i % 2})

            return call

        yield from measure(f"mmgov {workers}w promote (unprotected)", base, promoting("free"),
                           requests=args.writes, args=args)
        yield from measure(f"mmgov {workers}w promote (4-rule policy)", base,
                           promoting("guarded"), requests=args.writes, args=args)
        moment = httpx.get(base + path, headers=auth).json()["updated_at"]

        def history_at(c: httpx.Client, _i: int) -> httpx.Response:
            return c.get(path + "/history", params={"at": moment}, headers=auth)

        yield from measure(f"mmgov {workers}w alias history --at", base, history_at,
                           requests=args.requests, args=args)


def bench_floor(args: argparse.Namespace) -> list[str]:
    """Measure the smallest ASGI app under uvicorn (one worker): the machine's floor."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks._floor_app:app", "--app-dir", str(ROOT),
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
         "--loop", "uvloop", "--http", "httptools"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("the floor app", lambda: http_ok(base + "/"), timeout=30,
                   give_up=lambda: None if proc.poll() is None else f"exited {proc.returncode}")

        def get(c: httpx.Client, _i: int) -> httpx.Response:
            return c.get("/")

        return measure("floor: bare ASGI app, uvicorn 1w", base, get, requests=args.requests,
                       args=args)
    finally:
        stop_process(proc)


@contextmanager
def _mlflow_server(workers: int, tmp: Path) -> Iterator[str]:
    port = free_port()
    store = f"sqlite:///{tmp / f'mlflow-{workers}.db'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until("the MLflow server", lambda: http_ok(f"{base}/health"), timeout=120,
                   interval=0.2,
                   give_up=lambda: None if proc.poll() is None else f"exited {proc.returncode}")
        yield base
    finally:
        stop_process(proc, timeout=30)


def bench_mlflow(workers: int, args: argparse.Namespace, tmp: Path) -> list[str]:
    """Measure MLflow's get-by-alias REST call the same way."""
    with _mlflow_server(workers, tmp) as base:
        api = f"{base}/api/2.0/mlflow"
        httpx.post(f"{api}/registered-models/create", json={"name": "mm"}).raise_for_status()
        httpx.post(f"{api}/model-versions/create",
                   json={"name": "mm", "source": "s3://models/mm/1"}).raise_for_status()
        httpx.post(f"{api}/registered-models/alias",
                   json={"name": "mm", "alias": "production", "version": "1"}).raise_for_status()

        def resolve(c: httpx.Client, _i: int) -> httpx.Response:
            return c.get(f"{api}/registered-models/alias",
                         params={"name": "mm", "alias": "production"})

        return measure(f"MLflow {workers}w get-by-alias", base, resolve,
                       requests=args.requests, args=args)


def main() -> None:
    """Parse arguments, run the measurements, print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="GETs per measurement")
    parser.add_argument("--writes", type=int, default=200, help="POSTs per measurement")
    parser.add_argument("--threads", type=int, default=4, help="client threads")
    parser.add_argument("--cap", type=float, default=20.0, help="seconds per measurement, at most")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    tmp = Path(tempfile.mkdtemp(prefix="mmgov-bench-"))
    print(f"{os.cpu_count()} CPUs; keep-alive httpx clients on loopback; 1 client = latency, "
          f"{args.threads} clients = throughput\n")
    print("| measurement | clients | requests | p50 ms | p99 ms | req/s | 5xx |")
    print("|---|---|---|---|---|---|---|")
    try:
        for row in bench_floor(args):
            print(row, flush=True)
        for workers in args.workers:
            for row in bench_mmgov(workers, args, tmp):
                print(row, flush=True)
        if importlib.util.find_spec("mlflow") is None:
            print("\nMLflow not importable: skipped (see the module docstring to install it).")
        else:
            for workers in args.workers:
                for row in bench_mlflow(workers, args, tmp):
                    print(row, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
