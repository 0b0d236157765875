"""The closed loop's costs (issue 17's goals), in one run on SQLite or PostgreSQL.

Run: ``.venv/bin/python benchmarks/loop_bench.py [--db URL] [--runs N] [--hash-repeats R]``

1. In-memory module hashes of the reference model (configs/model.yaml): the time of
   `instrumentation.attestation.module_hashes` against plain `hashlib.sha256` over the same
   tensor bytes (one digest per tensor, no grouping, no JSON), interleaved, median of
   ``--hash-repeats``. Goal: ≥ 70 % of hashlib's throughput.
2. Alert → the serving process reports the previous version, over real HTTP on loopback: the
   sidecar as its own process (`mmgov serve`) and, in this process, a `ServingLoop` polling
   production every 20 ms with heartbeats (so loading a version never competes with the
   sidecar for this interpreter's lock). Each run promotes v2, waits until the loop reports
   it, then posts a firing alert to the Alertmanager webhook; the automatic rollback policy
   (cool-down 0) moves production back to v1 inside the webhook's transaction. Timed per run:
   webhook request → answer (the sidecar's part: the alias has moved when it answers; goal
   p50 ≤ 50 ms), → the loop serves v1 (poll + load + verify), → the registry has the heartbeat
   naming v1. p50 over ``--runs``.
   Beside it, per run, the same webhook with an alert no policy matches: the floor (HTTP,
   validation, the incident's own transaction) that the rollback adds to.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402 - after the path insert
import torch  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from examples.multimodal import build_model, load_config, save_weights  # noqa: E402
from examples.serving import ServingLoop  # noqa: E402
from instrumentation.attestation import module_hashes  # noqa: E402
from registry import db as dbmod  # noqa: E402
from registry import service  # noqa: E402
from registry.client import RegistryClient  # noqa: E402
from registry.config import canonicalize  # noqa: E402
from registry.loop_schemas import RollbackPolicyIn  # noqa: E402
from registry.schemas import Actor  # noqa: E402
from registry.serve_process import serve, wait_until  # noqa: E402

ADMIN = Actor(name="bench-admin", role="admin")
CONFIG = ROOT / "configs" / "model.yaml"
HASH_GOAL = 0.70
SIDECAR_GOAL_MS = 50.0
ALERTS = "bench-alerts-token"


def _hashlib_only(state: dict[str, torch.Tensor]) -> None:
    for tensor in state.values():
        flat = tensor.detach().contiguous().reshape(-1)
        if flat.numel():
            data: Any = flat.view(torch.uint8).numpy()
            hashlib.sha256(memoryview(data)).hexdigest()


def bench_hashing(repeats: int) -> dict[str, float]:
    """Time `module_hashes` and plain hashlib over the reference model's tensors, interleaved."""
    torch.manual_seed(0)
    model = build_model(load_config(CONFIG))
    state = model.state_dict()
    size = sum(t.numel() * t.element_size() for t in state.values())
    ours, plain = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        module_hashes(state)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        _hashlib_only(state)
        plain.append(time.perf_counter() - start)
    t_ours, t_plain = statistics.median(ours), statistics.median(plain)
    return {
        "bytes": float(size),
        "ours_ms": 1000 * t_ours,
        "hashlib_ms": 1000 * t_plain,
        "ours_mbs": size / t_ours / 1e6,
        "hashlib_mbs": size / t_plain / 1e6,
        "ratio": t_plain / t_ours,
    }


def _alert(version: int, alertname: str = "MMGovEmbeddingDrift") -> dict[str, Any]:
    started = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    return {
        "version": "4", "groupKey": "g", "status": "firing", "receiver": "mmgov",
        "alerts": [{
            "status": "firing",
            "labels": {"alertname": alertname, "model": "bench",
                       "version": str(version), "severity": "warning"},
            "annotations": {}, "startsAt": started, "fingerprint": uuid.uuid4().hex,
        }],
    }


def _wait(what: str, predicate: Callable[[], bool], timeout: float = 60.0) -> float:
    """Return the `time.perf_counter` at which ``predicate`` held (polled every millisecond)."""
    return wait_until(what, lambda: predicate() and time.perf_counter(), timeout=timeout,
                      interval=0.001)


def bench_loop(url: str, runs: int, work: Path) -> dict[str, list[float]]:
    """Time alert → alias moved → loop serves v1 → heartbeat recorded, ``runs`` times."""
    dbmod.upgrade(url)
    db = dbmod.open_database(url)
    name = "bench"
    if name in {m.name for m in service.list_models(db, ADMIN, limit=500).items}:
        raise SystemExit(f"model {name!r} exists in {dbmod.safe_url(url)}: use an empty database")
    service.create_team(db, ADMIN, "bench")
    base = load_config(CONFIG)
    for i in (1, 2):
        raw = copy.deepcopy(base)
        raw["training"]["epochs"] = 100 + i
        torch.manual_seed(i)
        weights = save_weights(build_model(raw), work / f"v{i}.safetensors")
        service.register_version(db, ADMIN, model=name, team="bench", config=canonicalize(raw),
                                 weights=service.WeightsSource(uri=str(weights)))
    service.promote(db, ADMIN, model=name, version=1, alias="production")
    service.promote(db, ADMIN, model=name, version=2, alias="production")
    service.set_rollback_policy(db, ADMIN, model=name, alias="production", rules=RollbackPolicyIn(
        alertnames=["MMGovEmbeddingDrift"], cooldown_seconds=0,
    ))
    _, token = service.create_token(db, ADMIN, team="bench", role="reader", name="pod",
                                    scope="deployments")
    sidecar = ExitStack()
    api_url, _ = sidecar.enter_context(serve(url, env={
        "MMGOV_ALERTS_TOKEN": ALERTS, "MMGOV_HEARTBEAT_MIN_INTERVAL": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }))
    registry = CollectorRegistry()
    client = RegistryClient(api_url, token, prometheus_registry=registry)
    loop = ServingLoop(client, name, prometheus_registry=registry, instance="bench-pod",
                       heartbeat_interval=5.0)
    webhook = httpx.Client(headers={"Authorization": f"Bearer {ALERTS}"})
    out: dict[str, list[float]] = {"floor": [], "sidecar": [], "swapped": [], "reported": []}

    def reported(version: int) -> bool:
        last = loop.last_heartbeat
        return last is not None and last.get("version") == version

    try:
        loop.start(interval=0.02)
        for _ in range(runs):
            if loop.current.version != 2:
                service.promote(db, ADMIN, model=name, version=2, alias="production")
            _wait("v2 reported", lambda: reported(2))
            # The floor: the same webhook opening an incident no policy matches.
            start = time.perf_counter()
            webhook.post(f"{api_url}/api/v1/alerts", json=_alert(2, "Unmatched")).raise_for_status()
            out["floor"].append(time.perf_counter() - start)
            start = time.perf_counter()
            r = webhook.post(f"{api_url}/api/v1/alerts", json=_alert(2))
            answered = time.perf_counter()
            r.raise_for_status()
            swapped = _wait("the loop serving v1", lambda: loop.current.version == 1)
            done = _wait("v1 reported", lambda: reported(1))
            out["sidecar"].append(answered - start)
            out["swapped"].append(swapped - start)
            out["reported"].append(done - start)
        moved = [d for d in service.list_auto_rollbacks(db, ADMIN, name)
                 if d.outcome == "rolled_back"]
        if len(moved) != runs:
            raise SystemExit(f"expected {runs} automatic rollbacks, found {len(moved)}")
    finally:
        loop.close()
        client.close()
        webhook.close()
        sidecar.close()
        db.dispose()
    return out


def _p50_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both measurements and print their table; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--hash-repeats", type=int, default=15)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    hashing = bench_hashing(args.hash_repeats)
    with tempfile.TemporaryDirectory(prefix="mmgov-loop-bench-") as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.db'}"
        loop = bench_loop(url, args.runs, Path(tmp))
    dialect = "postgresql" if url.startswith("postgres") else "sqlite"
    print(f"## closed loop, {dialect}, {args.runs} runs; hashing {args.hash_repeats} repeats\n")
    print("| measure | p50 | goal |")
    print("|---|---|---|")
    mb = hashing["bytes"] / 1e6
    print(f"| module hashes of the reference model ({mb:.1f} MB) | {hashing['ours_ms']:.1f} ms, "
          f"{hashing['ours_mbs']:.0f} MB/s | |")
    print(f"| hashlib.sha256 over the same bytes | {hashing['hashlib_ms']:.1f} ms, "
          f"{hashing['hashlib_mbs']:.0f} MB/s | |")
    ok = "met" if hashing["ratio"] >= HASH_GOAL else "NOT met"
    print(f"| module hashes vs hashlib throughput | {100 * hashing['ratio']:.0f} % | "
          f"≥ {100 * HASH_GOAL:.0f} % ({ok}) |")
    sidecar = _p50_ms(loop["sidecar"])
    ok = "met" if sidecar <= SIDECAR_GOAL_MS else "NOT met"
    print(f"| webhook → alias moved (sidecar) | {sidecar:.1f} ms | ≤ {SIDECAR_GOAL_MS:.0f} ms "
          f"({ok}) |")
    print(f"| webhook opening an incident no policy matches (floor) | "
          f"{_p50_ms(loop['floor']):.1f} ms | |")
    print(f"| webhook → loop serves v1 (poll 20 ms, load, verify) | "
          f"{_p50_ms(loop['swapped']):.1f} ms | |")
    print(f"| webhook → heartbeat naming v1 recorded | {_p50_ms(loop['reported']):.1f} ms | |")
    return {"hashing": hashing, "loop": {k: _p50_ms(v) for k, v in loop.items()}}


if __name__ == "__main__":
    main()
