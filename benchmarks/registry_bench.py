"""Registry service throughput and latency, in-process, on SQLite or PostgreSQL (issue 2's goals).

Run: ``.venv/bin/python benchmarks/registry_bench.py [--db URL] [--versions N] [--big M]
[--rounds R] [--quick]``; ``--governance`` runs ``benchmarks/governance_bench.py`` (issue 14's
goals) with the same ``--db``, ``--rounds``, ``--versions`` and ``--big`` instead.

What it does, all through ``registry.service`` like a real caller:

1. Registers ``--versions`` (1,000) versions of one model sequentially: each call is the one
   ``register_version`` call the API makes, with the config as a dict (the reference model's
   config, checked against its JSON Schema) and a remote weights URI with a supplied sha256 (so
   no file hashing dominates). Reported as versions/s and p50/p99 per call. The same again for a
   model without a schema registering the seed's config.yaml layout, and the schema check alone
   (``check_config`` on the reference config) timed call by call.
   On SQLite the same again on a new file with ``MMGOV_SQLITE_SYNCHRONOUS=FULL`` (every commit
   synced to disk, as MLflow's SQLite store does; our default syncs at WAL checkpoints).
2. Measures, in ``--rounds`` interleaved rounds (one call of each operation per round, so load from
   other processes hits every operation alike): get a version by number, resolve an alias, promote
   (alternating between two versions, so each one writes), list versions (keyset pages of 50:
   the first page and a deep page from the middle) and diff two versions.
3. Populates the same model up to ``--big`` (100,000) versions with a bulk insert through
   SQLAlchemy core into the same tables (benchmark-only: no audit events for those rows, which
   the measured operations never read), bulk-fills a control model with ``--versions`` versions
   in the same database, and measures step 2 on both, interleaved call by call. "Listing does not
   slow down" compares the big model with the control: same database, same moments, so load
   from other processes cancels out (the ratio against step 2 is printed beside it).

``--db`` defaults to a fresh temporary SQLite file. Any other URL should name a throwaway
database: it is migrated to head and keeps the benchmark's team and model afterwards.

The goals are printed next to the figures. MLflow's figures are the issue's (MLflow 3.x measured
on this machine) unless ``--mlflow-python`` names a Python that can import ``mlflow``
(default ``.venv-compare/mlflow/bin/python`` of this repository, built by ``make compare-venv``):
MLflow's own registry store is then measured in a
subprocess on a temporary SQLite file (PostgreSQL only with ``--mlflow-db``, because MLflow's
``model_versions`` table would collide with ours in one database).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MLFLOW_PYTHON = ROOT / ".venv-compare" / "mlflow" / "bin" / "python"
"""The comparison venv `make compare-venv` builds (ignored by git)."""
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, update  # noqa: E402 - after the path insert

from registry import service  # noqa: E402
from registry.config import canonical_json, canonicalize, parse_yaml, sha256_hex  # noqa: E402
from registry.config_schema import check_config, compile_schema  # noqa: E402
from registry.db import SQLITE_SYNCHRONOUS_ENV, Database, upgrade  # noqa: E402
from registry.models import Model, ModelVersion, utcnow  # noqa: E402
from registry.schemas import Actor  # noqa: E402
from registry.service import WeightsSource  # noqa: E402

REFERENCE_CONFIG = ROOT / "configs" / "model.yaml"
REFERENCE_SCHEMA = ROOT / "configs" / "model.schema.json"
SEED_CONFIG = ROOT / "examples" / "clip" / "config.yaml"
"""The seed's config.yaml: its own layout, registered without a schema."""
SCHEMA_CHECK_GOAL_MS = 0.1
ADMIN = Actor(name="bench-admin", team=None, role="admin")
PAGE = 50
"""Versions per listed page (the API's default)."""
BULK_BATCH = 5_000

MLFLOW_REFERENCE = {
    "register_sqlite": 310.0,
    "register_postgresql": 150.0,
    "get_by_alias_ms": 1.75,
    "set_alias_ms": 14.0,
}
"""MLflow 3.x registry figures from issue 2, measured on this machine."""
GOAL_FACTOR = 5.0
"""Sequential registration must be at least this many times MLflow's."""
RESOLVE_GOAL_MS = 0.3
LISTING_GOAL_RATIO = 1.5
"""Listing "does not slow down" from 1k to 100k: p50 ratio at most this (shared-machine noise)."""

OPERATIONS = (
    "get version",
    "resolve alias",
    "promote",
    "list first page",
    "list deep page",
    "diff",
)


@dataclass
class Stats:
    """Latencies of one operation at one size."""

    operation: str
    versions: int
    latencies: list[float]
    wall: float
    control: bool = False
    """Measured on the control model (``--versions`` versions beside the big one)."""

    @property
    def size(self) -> str:
        """The versions column: the count, marked for the control model."""
        return f"{self.versions:,}" + (" (control)" if self.control else "")

    @property
    def rate(self) -> float:
        """Calls per second over the time spent in the calls."""
        return len(self.latencies) / self.wall if self.wall else 0.0

    def percentile_ms(self, q: float) -> float:
        """Return the ``q`` quantile (0..1) in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if q == 0.5:
            return 1000 * statistics.median(ordered)
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Bench:
    """One model on one database: registers, populates, gives its measured calls."""

    def __init__(
        self, db: Database, dialect: str, *, control: bool = False, layout: str = "reference"
    ) -> None:
        self.db = db
        self.dialect = dialect
        suffix = uuid.uuid4().hex[:8]
        self.team, self.model = f"bench-{suffix}", f"bench-{suffix}"
        self.actor = Actor(name="bench", team=self.team, role="maintainer")
        self.layout = layout
        source = REFERENCE_CONFIG if layout == "reference" else SEED_CONFIG
        self.seed: dict[str, Any] = parse_yaml(source.read_text(encoding="utf-8"))
        self.count = 0
        self.control = control

    def _config(self, i: int) -> dict[str, Any]:
        # What a caller would send: the seed config with one changed value (a fresh dict).
        return {**self.seed, "training": {**self.seed["training"], "epochs": i}}

    @staticmethod
    def _weights(i: int) -> tuple[str, str]:
        return f"s3://models/bench/{i}.safetensors", hashlib.sha256(b"w%d" % i).hexdigest()

    def register(self, n: int) -> Stats:
        """Register versions 1..n one after the other, like a real caller."""
        service.create_team(self.db, ADMIN, self.team)
        if self.layout == "reference":
            schema = json.loads(REFERENCE_SCHEMA.read_text(encoding="utf-8"))
            service.set_schema(self.db, self.actor, model=self.model, schema=schema)
        latencies = []
        start = time.perf_counter()
        for i in range(1, n + 1):
            t0 = time.perf_counter()
            uri, digest = self._weights(i)
            result = service.register_version(
                self.db,
                self.actor,
                model=self.model,
                config=self._config(i),
                weights=WeightsSource(uri=uri, sha256=digest),
                note=f"bench {i}",
            )
            latencies.append(time.perf_counter() - t0)
            assert result.created, f"version {i} already existed"
            assert result.version.version == i
            assert (result.version.schema_version is not None) == (self.layout == "reference")
        wall = time.perf_counter() - start
        self.count = n
        service.promote(self.db, self.actor, model=self.model, version=n, alias="production")
        name = "register" if self.layout == "reference" else "register (seed config, no schema)"
        return Stats(name, n, latencies, wall)

    def populate(self, total: int) -> None:
        """Bulk-insert versions up to ``total`` (core INSERTs into the same tables; no audit)."""
        template = canonicalize(self._config(0)).data
        with self.db.transaction() as session:
            model_id = session.scalars(select(Model.id).where(Model.name == self.model)).one()
            now = utcnow()
            batch: list[dict[str, Any]] = []
            for i in range(self.count + 1, total + 1):
                config = {**template, "training": {**template["training"], "epochs": i}}
                uri, digest = self._weights(i)
                batch.append({
                    "model_id": model_id, "version": i, "semver": "1.0.0", "config": config,
                    "config_hash": sha256_hex(canonical_json(config)), "weights_uri": uri,
                    "weights_sha256": digest, "weights_bytes": None, "module_hashes": {},
                    "parent_version": i - 1, "note": "bulk", "created_by": "bench-bulk",
                    "created_at": now,
                })  # fmt: skip
                if len(batch) == BULK_BATCH or i == total:
                    session.execute(insert(ModelVersion), batch)
                    batch = []
            session.execute(update(Model).where(Model.id == model_id).values(next_version=total))
        if self.dialect == "postgresql":  # fresh planner statistics, as autovacuum would give
            with self.db.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE model_versions")
        self.count = total

    def calls(self) -> dict[str, Callable[[], object]]:
        """One call of each measured operation at the model's current size."""
        n, db, actor, model = self.count, self.db, self.actor, self.model
        deep, deep_items = str(n // 2), min(PAGE, n // 2 - 1)
        flip = [n - 1, n]

        def promote() -> None:
            flip.reverse()
            service.promote(db, actor, model=model, version=flip[0], alias="production")

        def deep_page() -> None:
            assert len(service.list_versions(db, actor, model, cursor=deep).items) == deep_items

        return {
            "get version": lambda: service.get_version(db, actor, model, n // 3 + 1),
            "resolve alias": lambda: service.resolve_alias(db, actor, model, "production"),
            "promote": promote,
            "list first page": lambda: service.list_versions(db, actor, model, limit=PAGE),
            "list deep page": deep_page,
            "diff": lambda: service.diff_versions(db, actor, model, 1, n),
        }


def measure_schema_check(rounds: int) -> Stats:
    """Time `check_config` of the reference config against its schema, call by call."""
    schema = compile_schema(json.loads(REFERENCE_SCHEMA.read_text(encoding="utf-8")))
    config = parse_yaml(REFERENCE_CONFIG.read_text(encoding="utf-8"))
    for _ in range(50):
        check_config(schema, config, source="bench")
    latencies = []
    for _ in range(max(rounds, 1_000)):
        t0 = time.perf_counter()
        check_config(schema, config, source="bench")
        latencies.append(time.perf_counter() - t0)
    return Stats("schema check (reference config)", 1, latencies, sum(latencies))


def measure(benches: Sequence[Bench], rounds: int) -> list[list[Stats]]:
    """Run every operation of every bench ``rounds`` times, interleaved; one list per bench.

    Each round runs each operation once per bench; the order of operations rotates from round to
    round (so no operation always follows the write, promote) and the benches alternate, so load
    from other processes hits every figure alike.
    """
    calls = [bench.calls() for bench in benches]
    for per_bench in calls:  # warm caches and compiled statements
        for call in per_bench.values():
            call()
    names = list(OPERATIONS)
    latencies: list[dict[str, list[float]]] = [{name: [] for name in names} for _ in benches]
    for r in range(rounds):
        order = list(range(len(benches)))
        if r % 2:
            order.reverse()
        for name in names[r % len(names) :] + names[: r % len(names)]:
            for b in order:
                t0 = time.perf_counter()
                calls[b][name]()
                latencies[b][name].append(time.perf_counter() - t0)
    return [
        [Stats(name, bench.count, lat[name], sum(lat[name]), bench.control) for name in names]
        for bench, lat in zip(benches, latencies, strict=True)
    ]


_MLFLOW_SCRIPT = """
import json, sys, time
from mlflow.tracking import MlflowClient
uri, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri, registry_uri=uri)
client.create_registered_model("bench")
start = time.perf_counter()
for i in range(n):
    client.create_model_version("bench", source=f"s3://models/bench/{i}", run_id=None)
register = n / (time.perf_counter() - start)
def timed(call):
    out = []
    for i in range(rounds):
        t0 = time.perf_counter(); call(i); out.append(time.perf_counter() - t0)
    out.sort()
    return 1000 * out[len(out) // 2]
set_ms = timed(lambda i: client.set_registered_model_alias("bench", "production", str(n - i % 2)))
get_ms = timed(lambda i: client.get_model_version_by_alias("bench", "production"))
print(json.dumps({"register": register, "set_alias_ms": set_ms, "get_by_alias_ms": get_ms}))
"""


def measure_mlflow(python: str, url: str, n: int, rounds: int) -> dict[str, float] | str:
    """Measure MLflow's registry store in a subprocess; return its figures or why not."""
    if not Path(python).exists():
        return f"{python} not found"
    probe = subprocess.run([python, "-c", "import mlflow"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"mlflow not importable by {python}"
    done = subprocess.run(
        [python, "-c", _MLFLOW_SCRIPT, url, str(n), str(min(rounds, 200))],
        capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        return "MLflow run failed: " + (done.stderr.strip().splitlines() or ["?"])[-1]
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _verdict(ok: bool) -> str:
    return "met" if ok else "**SHORT**"


def _p50(phase: list[Stats], operation: str) -> float:
    return next(s for s in phase if s.operation == operation).percentile_ms(0.5)


def render(
    dialect: str,
    register: Stats,
    phases: list[list[Stats]],
    mlflow: dict[str, float] | str,
    register_full: Stats | None = None,
    register_seed: Stats | None = None,
    schema_check: Stats | None = None,
) -> str:
    """Return the markdown report: the figures table, then each goal with its verdict.

    ``phases`` is the first measurement, then (after the bulk insert) the big model and the
    control model measured interleaved.
    """
    measured = isinstance(mlflow, dict)
    ml = mlflow if isinstance(mlflow, dict) else {
        "register": MLFLOW_REFERENCE[f"register_{dialect}"],
        "get_by_alias_ms": MLFLOW_REFERENCE["get_by_alias_ms"],
        "set_alias_ms": MLFLOW_REFERENCE["set_alias_ms"],
    }  # fmt: skip
    source = "measured in this run" if measured else f"issue 2's figures ({mlflow})"
    register_goal = GOAL_FACTOR * ml["register"]
    mlflow_column = {
        "register": f"{ml['register']:.0f} versions/s",
        "resolve alias": f"get-by-alias {ml['get_by_alias_ms']:.2f} ms",
        "promote": f"set-alias {ml['set_alias_ms']:.1f} ms",
    }
    goal_column = {
        "register": f"≥ {register_goal:,.0f} versions/s",
        "resolve alias": f"p50 < {RESOLVE_GOAL_MS} ms",
        "list first page": f"p50 big/control ≤ {LISTING_GOAL_RATIO}",
        "list deep page": f"p50 big/control ≤ {LISTING_GOAL_RATIO}",
    }
    lines = [
        f"Registry service in-process on {dialect}; MLflow: {source}.",
        "",
        "| operation | versions | calls | ops/s | p50 ms | p99 ms | goal | MLflow |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    extra = [s for s in (register_seed, register_full, schema_check) if s is not None]
    for stats in [register, *extra, *(s for phase in phases for s in phase)]:
        p50, p99 = stats.percentile_ms(0.5), stats.percentile_ms(0.99)
        goal = "" if stats.control else goal_column.get(stats.operation, "")
        lines.append(
            f"| {stats.operation} | {stats.size} | {len(stats.latencies):,} "
            f"| {stats.rate:,.0f} | {p50:.3f} | {p99:.3f} "
            f"| {goal} | {mlflow_column.get(stats.operation, '')} |"
        )
    lines += ["", "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines.append(
        f"| sequential registration ≥ {GOAL_FACTOR:.0f}× MLflow ({ml['register']:.0f}/s) "
        f"| ≥ {register_goal:,.0f} versions/s | {register.rate:,.0f} versions/s "
        f"({register.rate / ml['register']:.1f}×) | {_verdict(register.rate >= register_goal)} |"
    )
    if register_seed is not None:
        lines.append(
            f"| seed config.yaml without a schema ≥ {GOAL_FACTOR:.0f}× MLflow "
            f"| ≥ {register_goal:,.0f} versions/s | {register_seed.rate:,.0f} versions/s "
            f"({register_seed.rate / ml['register']:.1f}×) "
            f"| {_verdict(register_seed.rate >= register_goal)} |"
        )
    if schema_check is not None:
        p50 = schema_check.percentile_ms(0.5)
        lines.append(
            f"| schema validation per registration | p50 ≤ {SCHEMA_CHECK_GOAL_MS} ms "
            f"| {p50:.3f} ms | {_verdict(p50 <= SCHEMA_CHECK_GOAL_MS)} |"
        )
    if register_full is not None:
        lines.append(
            f"| the same with every commit synced (synchronous=FULL, as MLflow's SQLite store) "
            f"| (not a goal) | {register_full.rate:,.0f} versions/s "
            f"({register_full.rate / ml['register']:.1f}×) | – |"
        )
    for phase in phases:
        if phase[0].control:
            continue
        p50 = _p50(phase, "resolve alias")
        lines.append(
            f"| resolve alias p50 in-process, {phase[0].versions:,} versions "
            f"| < {RESOLVE_GOAL_MS} ms | {p50:.3f} ms | {_verdict(p50 < RESOLVE_GOAL_MS)} |"
        )
    if len(phases) == 3:
        first, big, control = phases
        for name in ("list first page", "list deep page"):
            ratio = _p50(big, name) / _p50(control, name)
            before = _p50(big, name) / _p50(first, name)
            lines.append(
                f"| {name}: no slowdown {control[0].versions:,} → {big[0].versions:,} versions "
                f"| p50 ratio ≤ {LISTING_GOAL_RATIO} | {ratio:.2f} interleaved with the control "
                f"({before:.2f} against the run before the bulk insert) "
                f"| {_verdict(ratio <= LISTING_GOAL_RATIO)} |"
            )
    return "\n".join(lines)


def register_synced(tmp: Path, n: int) -> Stats:
    """Register ``n`` versions on a new SQLite file with ``MMGOV_SQLITE_SYNCHRONOUS=FULL``.

    Our default (WAL, synchronous NORMAL) syncs at checkpoints; MLflow's SQLite store (rollback
    journal, synchronous FULL) syncs every commit, so this row compares like with like.
    """
    previous = os.environ.get(SQLITE_SYNCHRONOUS_ENV)
    os.environ[SQLITE_SYNCHRONOUS_ENV] = "FULL"
    try:
        url = f"sqlite:///{tmp / 'registry-full.db'}"
        upgrade(url)
        db = Database(url)
    finally:
        if previous is None:
            del os.environ[SQLITE_SYNCHRONOUS_ENV]
        else:
            os.environ[SQLITE_SYNCHRONOUS_ENV] = previous
    try:
        stats = Bench(db, db.dialect).register(n)
    finally:
        db.dispose()
    stats.operation = "register (synchronous=FULL)"
    return stats


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``--quick`` shrinks every size for a smoke run)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--db", help="database URL (default: a fresh temporary SQLite file)")
    parser.add_argument("--versions", type=int, default=1_000, help="versions registered")
    parser.add_argument("--big", type=int, default=100_000, help="versions after the bulk insert")
    parser.add_argument("--rounds", type=int, default=1_000, help="calls per operation and size")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 / 200 / 20")
    parser.add_argument("--mlflow-python", default=str(MLFLOW_PYTHON),
                        help="a Python with mlflow, measured in a subprocess "
                        "(default: .venv-compare/mlflow/bin/python)")  # fmt: skip
    parser.add_argument("--mlflow-db", help="MLflow's database (default: temporary SQLite file)")
    parser.add_argument("--no-mlflow", action="store_true", help="print the issue's figures")
    parser.add_argument("--governance", action="store_true",
                        help="run benchmarks/governance_bench.py instead (issue 14)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick:
        args.versions, args.big, args.rounds = 40, 200, 20
    if args.versions < 3 or args.rounds < 1:
        parser.error("--versions must be at least 3 and --rounds at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the markdown report."""
    args = parse_args(argv)
    if args.governance:
        from benchmarks import governance_bench

        forwarded = ["--rounds", str(args.rounds), "--small", str(args.versions),
                     "--big", str(args.big), *(["--db", args.db] if args.db else [])]  # fmt: skip
        governance_bench.main(["--quick"] if args.quick else forwarded)
        return
    tmp = Path(tempfile.mkdtemp(prefix="mmgov-registry-bench-"))
    url = args.db or f"sqlite:///{tmp / 'registry.db'}"
    try:
        upgrade(url)
        db = Database(url)
        try:
            bench = Bench(db, db.dialect)
            register = bench.register(args.versions)
            register_seed = Bench(db, db.dialect, layout="seed").register(args.versions)
            schema_check = measure_schema_check(args.rounds)
            phases = measure([bench], args.rounds)
            if args.big > args.versions:
                started = time.perf_counter()
                bench.populate(args.big)
                control = Bench(db, db.dialect, control=True)
                control.register(3)
                control.populate(args.versions)
                took = time.perf_counter() - started
                print(f"bulk insert to {args.big:,} versions: {took:.1f} s (not measured)",
                      file=sys.stderr)  # fmt: skip
                phases += measure([bench, control], args.rounds)
        finally:
            db.dispose()
        register_full = register_synced(tmp, args.versions) if db.dialect == "sqlite" else None
        mlflow: dict[str, float] | str = "not measured: --no-mlflow"
        if not args.no_mlflow:
            mlflow_url = args.mlflow_db or (
                f"sqlite:///{tmp / 'mlflow.db'}" if db.dialect == "sqlite" else None
            )
            mlflow = (
                measure_mlflow(args.mlflow_python, mlflow_url, args.versions, args.rounds)
                if mlflow_url
                else "not measured: MLflow on PostgreSQL needs --mlflow-db"
            )
        print(
            render(
                db.dialect, register, phases, mlflow, register_full, register_seed, schema_check
            )
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
