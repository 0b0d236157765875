"""`mmgov demo`: register, promote, serve, monitor, break and roll back the reference model."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import structlog
import torch
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from examples.multimodal import (
    MODULE_NAMES,
    Preprocessor,
    build_model,
    load_digits_images,
    load_texts,
    save_weights,
)
from examples.multimodal.schema import config_schema
from examples.serving import ServingLoop
from examples.sidecar import ApiThread
from instrumentation import configure_logging, start_metrics_server
from instrumentation.drift import capture_reference
from registry import db as dbmod
from registry import service
from registry.api import ApiSettings, create_app
from registry.client import RegistryClient
from registry.config import CanonicalConfig, canonicalize, load_config_file
from registry.diff import render_diff
from registry.errors import Conflict
from registry.loop_schemas import RollbackPolicyIn
from registry.schemas import Actor, AlertIn

__all__ = ["DemoResult", "default_config_path", "latency_buckets", "render_summary", "run_demo"]

ACTOR = Actor(name="mmgov-demo", team=None, role="admin")
TEAM = "demo"
DRIFTED = "image_encoder"
"""The module the drifted stream (pixel noise) moves; the text encoder sees unchanged captions."""
MONITORED = ("image_encoder", "text_encoder")
DRIFT_ALERT = "MMGovEmbeddingDrift"
NOISE_STD = 96.0
BATCH = 32
REFERENCE_BATCHES = 12
WINDOW = 64
FALSE_ALARM_RATE = 0.01
SWAP_TIMEOUT_S = 60.0
V2_CHANGES = {"fusion_type": "cross_attention", "learning_rate": 1e-4}
STEPS = 5
INSTALL_SECONDS_ENV = "MMGOV_INSTALL_SECONDS"
"""Set by `make demo` to the seconds its install step took, so the demo can print the total."""


def default_config_path() -> Path:
    """Return ``configs/model.yaml`` of the source tree this package runs from.

    Raises:
        FileNotFoundError: the package is installed without the source tree.
    """
    path = Path(__file__).resolve().parents[1] / "configs" / "model.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --config PATH to a model config")
    return path


@dataclass
class DemoResult:
    """The figures the demo computed, also printed as its summary."""

    workdir: str
    database: str
    api_url: str
    kept: bool = False
    versions: list[int] = field(default_factory=list)
    config_changes: list[str] = field(default_factory=list)
    modules_changed: list[str] = field(default_factory=list)
    modules_unchanged: list[str] = field(default_factory=list)
    module_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    drift_scores: dict[str, float] = field(default_factory=dict)
    failure_log: dict[str, Any] = field(default_factory=dict)
    served_after_rollback: int | None = None
    audit_events: int = 0
    audit_listed: list[int] = field(default_factory=list)
    audit_ok: bool = False
    seconds: float = 0.0
    install_seconds: float | None = None
    removed_bytes: int | None = None


class _LogTee(io.StringIO):
    """Collects the JSON log lines structlog prints, so the demo can show the relevant ones."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.lines.extend(line for line in text.splitlines() if line.strip())
        return len(text)

    def find(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
        return found


class _Inputs:
    """Batches of sklearn digits paired with shipped captions, clean or under pixel noise."""

    def __init__(self, preprocess: Preprocessor, seed: int) -> None:
        self.preprocess = preprocess
        self.images, _ = load_digits_images()
        self.texts = load_texts("captions")
        self.rng = np.random.default_rng(seed)

    def batch(self, *, noisy: bool = False, size: int = BATCH) -> dict[str, torch.Tensor]:
        picks = self.rng.integers(0, len(self.images), size)
        images: npt.NDArray[np.uint8] = self.images[picks]
        if noisy:
            noise = self.rng.normal(0.0, NOISE_STD, images.shape)
            images = np.clip(images + noise, 0, 255).astype(np.uint8)
        texts = [self.texts[i] for i in self.rng.integers(0, len(self.texts), size)]
        return self.preprocess(list(images), texts)


class _Progress:
    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.n = 0

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.n += 1
        self.echo(f"[{self.n}/{STEPS}] {title} …")
        start = time.perf_counter()
        yield
        self.echo(f"[{self.n}/{STEPS}] done ({time.perf_counter() - start:.1f} s)")

    def detail(self, text: str) -> None:
        self.echo(f"      {text}")


def latency_buckets(buckets: list[tuple[float, float]]) -> tuple[float, float, float]:
    """Bucket bounds of the median and the slowest call from cumulative ``(le, count)`` buckets.

    A histogram of a few calls says only which buckets they fell in; interpolating quantiles
    inside a bucket would invent figures.

    Returns:
        ``(lower, upper)`` seconds of the bucket holding the median, and the upper bound of the
        bucket holding the slowest call (``inf`` past the last bucket).
    """
    buckets = sorted(buckets)
    total = buckets[-1][1] if buckets else 0.0
    if total == 0:
        return float("nan"), float("nan"), float("nan")
    lower, below, median = 0.0, 0.0, (float("nan"), float("nan"))
    for le, count in buckets:
        if count >= total / 2 and below < total / 2:
            median = (lower, le)
        if count >= total:
            return median[0], median[1], le
        lower, below = le, count
    return median[0], median[1], float("inf")


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float, str]]]:
    """Scrape a Prometheus endpoint.

    Returns:
        ``{family name: [(labels, value, sample name), …]}``.
    """
    text = httpx.get(url, timeout=10.0).text
    out: dict[str, list[tuple[dict[str, str], float, str]]] = {}
    for family in text_string_to_metric_families(text):
        out.setdefault(family.name, []).extend(
            (dict(s.labels), float(s.value), s.name) for s in family.samples
        )
    return out


def module_metrics(scraped: Mapping[str, Any], version: int) -> dict[str, dict[str, float]]:
    """Calls, latency (ms) and output stats per module of ``version`` from a scrape.

    ``mean_ms`` is exact (the histogram's sum over its count); ``p50_low_ms``/``p50_high_ms``
    bound the bucket of the median call and ``max_le_ms`` that of the slowest.

    Returns:
        ``{module: {"calls", "errors", "mean_ms", "p50_low_ms", "p50_high_ms", "max_le_ms",
        "mean", "std", "norm"}}``.
    """
    out: dict[str, dict[str, float]] = {}
    v = str(version)

    def rows(family: str, suffix: str = "") -> Iterator[tuple[dict[str, str], float]]:
        for labels, value, name in scraped.get(family, []):
            if labels.get("version") == v and (not suffix or name.endswith(suffix)):
                yield labels, value

    for labels, value in rows("mmgov_module_calls", "_total"):
        out.setdefault(labels["module"], {})["calls"] = value
    for module, stats in out.items():
        stats["errors"] = sum(
            value for labels, value in rows("mmgov_module_errors", "_total")
            if labels["module"] == module
        )
        buckets = [
            (float(labels["le"]), value)
            for labels, value in rows("mmgov_module_latency_seconds", "_bucket")
            if labels["module"] == module
        ]
        if buckets:
            low, high, slowest = latency_buckets(buckets)
            stats["p50_low_ms"], stats["p50_high_ms"] = low * 1e3, high * 1e3
            stats["max_le_ms"] = slowest * 1e3
        total = [v for labels, v in rows("mmgov_module_latency_seconds", "_sum")
                 if labels["module"] == module]
        count = [v for labels, v in rows("mmgov_module_latency_seconds", "_count")
                 if labels["module"] == module]
        if total and count and count[0] > 0:
            stats["mean_ms"] = total[0] / count[0] * 1e3
        for stat in ("mean", "std", "norm"):
            for labels, value in rows(f"mmgov_module_output_{stat}"):
                if labels["module"] == module:
                    stats[stat] = value
    return out


def drift_scores(scraped: Mapping[str, Any], version: int) -> dict[str, float]:
    """``mmgov_drift_score`` per module of ``version`` from a scrape."""
    return {
        labels["module"]: value
        for labels, value, _ in scraped.get("mmgov_drift_score", [])
        if labels.get("version") == str(version)
    }


def _register(
    db: dbmod.Database,
    name: str,
    config: CanonicalConfig,
    weights: Path,
    note: str,
    pipeline: Mapping[str, Path],
) -> int:
    result = service.register_version(
        db, ACTOR, model=name, config=config, weights=service.WeightsSource(uri=str(weights)),
        pipeline=pipeline, note=note, team=TEAM,
    )
    if not result.created:
        raise Conflict(f"model {name!r} already has this version; use another --model name")
    return result.version.version


def _tree_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _install_seconds() -> float | None:
    try:
        return float(os.environ[INSTALL_SECONDS_ENV])
    except (KeyError, ValueError):
        return None


def run_demo(
    *,
    db_url: str | None = None,
    keep: Path | None = None,
    config_path: Path | None = None,
    model_name: str | None = None,
    echo: Callable[[str], None] = print,
    threads: int = 2,
    started: float | None = None,
) -> DemoResult:
    """Run the five demo steps against a real admin API on loopback and print what happens.

    Weights and the SQLite file go to ``keep`` (made if missing, left in place), or else to a
    new temporary directory that is removed at the end, also when a step fails. ``started``
    (a `time.perf_counter` reading) is when the demo's own clock starts, e.g. before importing
    torch; default: now.

    Returns:
        The computed figures.

    Raises:
        RegistryError: the database refused a step (e.g. the model already exists there).
        SidecarError: the serving side could not talk to the API.
        RuntimeError: a swap or drift scoring did not finish in time.
    """
    started = time.perf_counter() if started is None else started
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    work = keep if keep is not None else Path(tempfile.mkdtemp(prefix="mmgov-demo-"))
    echo(f"mmgov demo: working directory {work}"
         f"{' (kept: --keep)' if keep is not None else ' (temporary: removed at the end)'}")
    removed: int | None = None
    try:
        result = _run(work, db_url=db_url, config_path=config_path, model_name=model_name,
                      echo=echo, threads=threads)
    finally:
        if keep is None:
            removed = _tree_bytes(work)
            shutil.rmtree(work, ignore_errors=True)
            echo(f"mmgov demo: removed {work} ({removed / 1e6:.0f} MB; "
                 "`mmgov demo --keep DIR` keeps the files)")
    result.kept = keep is not None
    result.removed_bytes = removed
    result.install_seconds = _install_seconds()
    result.seconds = time.perf_counter() - started
    return result


def _run(
    work: Path,
    *,
    db_url: str | None,
    config_path: Path | None,
    model_name: str | None,
    echo: Callable[[str], None],
    threads: int,
) -> DemoResult:
    torch.set_num_threads(threads)
    configure_logging(json=True)
    tee = _LogTee()
    # Keep the processors configure_logging set; only send the rendered lines to the tee.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(tee))
    url = db_url or f"sqlite:///{work / 'mmgov-demo.db'}"
    base = canonicalize(load_config_file(config_path or default_config_path()))
    name = model_name or str(base.data["model"]["name"])
    echo(f"mmgov demo: database {dbmod.safe_url(url)}"
         f"{'' if db_url is None else ' (yours: the demo model and its events stay there)'}")
    progress = _Progress(echo)

    dbmod.upgrade(url)
    db = dbmod.open_database(url)
    api: ApiThread | None = None
    loop: ServingLoop | None = None
    metrics_server: Any = None
    try:
        with progress.step("Building reference model v1, capturing its profile, registering"):
            if TEAM not in {t.name for t in service.list_teams(db, ACTOR, limit=1000).items}:
                service.create_team(db, ACTOR, TEAM)
            schema = service.set_schema(db, ACTOR, model=name, schema=config_schema(), team=TEAM,
                                        note="the reference model's schema")
            preprocess = Preprocessor.from_config(base.data)
            pipeline = preprocess.save_pretrained(work / "pipeline")
            inputs = _Inputs(preprocess, seed=0)
            model_v1 = build_model(base.data)
            weights_v1 = save_weights(model_v1, work / "v1.safetensors")
            reference_batches = [inputs.batch() for _ in range(REFERENCE_BATCHES)]
            profile_v1 = capture_reference(
                model_v1, reference_batches, modules=list(MONITORED),
                pooling=str(base.data.get("monitoring", {}).get("pooling", "cls")),
            )
            v1 = _register(db, name, base, weights_v1, "reference model", pipeline)
            ref = service.attach_reference(
                db, ACTOR, model=name, version=v1, fmt=profile_v1.FORMAT,
                blob=profile_v1.to_bytes(), n_samples=profile_v1.n_samples,
                modules=profile_v1.modules,
            )
            service.promote(db, ACTOR, model=name, version=v1, alias="production")
            progress.detail(f"registered {name} v{v1} config {base.hash[:12]} weights "
                            f"{weights_v1.name} pipeline {', '.join(pipeline)}, checked against "
                            f"config schema v{schema.version if schema else '-'}")
            progress.detail(f"reference profile: {ref.n_samples} samples × {ref.modules} "
                            f"format {ref.format} sha256 {ref.sha256[:12]}")
            progress.detail(f"production → v{v1}")

            _, token = service.create_token(db, ACTOR, team=TEAM, role="reader",
                                            name=f"serving-{int(time.time())}",
                                            scope="deployments")
            api = ApiThread(create_app(ApiSettings(database_url=url), db=db)).start()
            progress.detail(f"admin API on {api.url} (a deployments-scoped reader token for the "
                            "serving loop: it resolves aliases and posts heartbeats)")
            registry = CollectorRegistry()
            metrics_server = start_metrics_server(0, registry=registry)
            metrics_url = f"http://127.0.0.1:{metrics_server.server_port}/metrics"
            client = RegistryClient(api.url, token, prometheus_registry=registry)
            loop = ServingLoop(client, name, prometheus_registry=registry, drift_window=WINDOW,
                               false_alarm_rate=FALSE_ALARM_RATE, sample_every=1,
                               pipeline=pipeline, instance="demo-pod", heartbeat_interval=1.0)
            served = loop.start(interval=0.2)
            progress.detail(f"serving loop resolved production → v{served.version} through "
                            f"the API; weights sha256 and pipeline files verified; metrics on "
                            f"{metrics_url}")
        result = DemoResult(workdir=str(work), database=dbmod.safe_url(url), api_url=api.url,
                            versions=[v1])

        with progress.step("Registering v2 (changed fusion and learning rate) and diffing"):
            raw = copy.deepcopy(base.data)
            raw["fusion_type"] = V2_CHANGES["fusion_type"]
            raw["training"]["learning_rate"] = V2_CHANGES["learning_rate"]
            config_v2 = canonicalize(raw)
            model_v2 = build_model(config_v2.data)
            weights_v2 = save_weights(model_v2, work / "v2.safetensors")
            profile_v2 = capture_reference(model_v2, reference_batches, modules=list(MONITORED),
                                           pooling=profile_v1.pooling)
            v2 = _register(db, name, config_v2, weights_v2, "cross-attention fusion", pipeline)
            service.attach_reference(
                db, ACTOR, model=name, version=v2, fmt=profile_v2.FORMAT,
                blob=profile_v2.to_bytes(), n_samples=profile_v2.n_samples,
                modules=profile_v2.modules,
            )
            result.versions.append(v2)
            diff = service.diff_versions(db, ACTOR, name, v1, v2)
            result.config_changes = [c.path for c in diff.config_changes]
            result.modules_changed = diff.modules.changed
            result.modules_unchanged = diff.modules.unchanged
            progress.detail(f"registered {name} v{v2} config {config_v2.hash[:12]}")
            for line in render_diff(diff).splitlines():
                progress.detail(line)

        with progress.step(f"Promoting v{v2}; instrumented inference on real inputs"):
            service.promote(db, ACTOR, model=name, version=v2, alias="production",
                            expected_version=v1)
            if not loop.wait_for_version(v2, SWAP_TIMEOUT_S):
                raise RuntimeError(f"the serving loop did not swap to v{v2} in time")
            progress.detail(f"serving loop swapped to v{loop.current.version} (watch saw the "
                            "alias move)")
            for _ in range(WINDOW // BATCH):
                loop.predict(inputs.batch())
            if not loop.flush_drift():
                raise RuntimeError("drift scoring did not finish in time")
            scraped = scrape(metrics_url)
            result.module_metrics = module_metrics(scraped, v2)
            progress.detail(f"from {metrics_url} (version=\"{v2}\"); mean ms is the "
                            "histogram's sum/count (exact), the others are bucket bounds:")
            progress.detail(f"{'module':<14}{'calls':>6}{'mean ms':>9}{'median in (ms)':>17}"
                            f"{'max <= ms':>10}{'mean':>9}{'std':>9}{'norm':>9}")
            for module in MODULE_NAMES:
                s = result.module_metrics.get(module, {})
                median = f"({s.get('p50_low_ms', 0):g}, {s.get('p50_high_ms', 0):g}]"
                progress.detail(
                    f"{module:<14}{s.get('calls', 0):>6.0f}{s.get('mean_ms', 0):>9.2f}"
                    f"{median:>17}{s.get('max_le_ms', 0):>10g}{s.get('mean', 0):>9.4f}"
                    f"{s.get('std', 0):>9.4f}{s.get('norm', 0):>9.2f}"
                )
            clean = drift_scores(scraped, v2)
            progress.detail("drift score on clean inputs (1.0 = threshold): " + ", ".join(
                f"{m} {clean[m]:.2f}" for m in MONITORED if m in clean))

        with progress.step("Drifted input stream and an injected failure"):
            for _ in range(WINDOW // BATCH):
                loop.predict(inputs.batch(noisy=True))
            if not loop.flush_drift():
                raise RuntimeError("drift scoring did not finish in time")
            scraped = scrape(metrics_url)
            result.drift_scores = drift_scores(scraped, v2)
            progress.detail(f"digits under pixel noise (σ={NOISE_STD:.0f}/255), captions "
                            "unchanged:")
            for module in MONITORED:
                score = result.drift_scores.get(module, float("nan"))
                state = "ALARM (crossed threshold)" if score > 1.0 else "ok (below threshold)"
                progress.detail(f"  mmgov_drift_score{{module=\"{module}\"}} = {score:.2f}  "
                                f"{state}")
            # A fault inside fusion_layer's forward (its norm's pre-hook) is what the
            # instrumentation must trace to fusion_layer, not to its caller.
            norm = loop.current.model.get_submodule("fusion_layer.norm")
            fault = RuntimeError("injected fault: fusion norm unavailable")

            def fail_once(_module: Any, _args: Any) -> None:
                raise fault

            hook = norm.register_forward_pre_hook(fail_once)
            try:
                loop.predict(inputs.batch(size=4))
            except RuntimeError as exc:
                if exc is not fault:
                    raise
            finally:
                hook.remove()
            loop.predict(inputs.batch(size=4))  # the next batch succeeds
            failures = tee.find("module_forward_failed")
            if not failures:
                raise RuntimeError("the injected failure was not logged")
            result.failure_log = failures[-1]
            errors = module_metrics(scrape(metrics_url), v2)
            progress.detail("one batch failed inside fusion_layer; the structlog JSON line:")
            progress.detail(json.dumps(result.failure_log, sort_keys=True))
            progress.detail("mmgov_module_errors_total by module: " + ", ".join(
                f"{m} {errors.get(m, {}).get('errors', 0):.0f}" for m in MODULE_NAMES))

        with progress.step(f"Drift alert → automatic rollback to v{v1}; audit trail"):
            service.set_rollback_policy(db, ACTOR, model=name, alias="production",
                                        rules=RollbackPolicyIn(alertnames=[DRIFT_ALERT]))
            # What Alertmanager posts when MMGovEmbeddingDrift fires on the image encoder.
            [incident] = service.record_alerts(db, ACTOR, [AlertIn.model_validate({
                "status": "firing",
                "labels": {"alertname": DRIFT_ALERT, "model": name, "version": str(v2),
                           "module": "image_encoder", "severity": "warning"},
                "startsAt": datetime.now(UTC).isoformat(), "fingerprint": f"demo-drift-{v2}",
            })])
            decisions = service.list_auto_rollbacks(db, ACTOR, name)
            if not decisions or decisions[0].outcome != "rolled_back":
                raise RuntimeError("the rollback policy did not move production")
            progress.detail(f"incident {incident.id} ({DRIFT_ALERT} on v{v2} image_encoder) → "
                            f"policy rolled production back v{v2} → v{decisions[0].to_version} "
                            f"(move {decisions[0].move}, linked from the incident)")
            if not loop.wait_for_version(v1, SWAP_TIMEOUT_S):
                raise RuntimeError(f"the serving loop did not swap back to v{v1} in time")
            deadline = time.monotonic() + SWAP_TIMEOUT_S
            while not any(d.version == v1 and d.matches
                          for d in service.list_deployments(db, ACTOR, name)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the serving loop did not report v{v1} in time")
                time.sleep(0.05)  # bounded wait for the heartbeat the swap triggers
            progress.detail(f"heartbeat of demo-pod: v{v1}, in-memory module hashes match "
                            "the registered ones")
            loop.predict(inputs.batch())
            scraped = scrape(metrics_url)
            versions_seen = sorted({labels["version"] for labels, _, _ in
                                    scraped.get("mmgov_module_calls", [])})
            result.served_after_rollback = loop.current.version
            progress.detail(f"serving loop now serves v{loop.current.version}; module metrics "
                            f"carry version={','.join(versions_seen)}")
            events: list[Any] = []
            cursor: str | None = None
            while True:  # every event of the database, not only the model's (team, token …)
                page = service.list_audit(db, ACTOR, limit=100, cursor=cursor)
                events += page.items
                cursor = page.next_cursor
                if cursor is None:
                    break
            result.audit_listed = sorted(e.seq for e in events)
            progress.detail(f"audit log of {dbmod.safe_url(url)}: all {len(events)} events")
            width = max(len(e.model or "-") for e in events) + 2
            for event in sorted(events, key=lambda e: e.seq):
                progress.detail(f"#{event.seq:<3} {event.action:<18} {event.model or '-':<{width}}"
                                f"{'v' + str(event.version) if event.version else '-':<4}"
                                f"by {event.actor}  hash {event.hash[:12]}")
            report = service.verify_audit(db, ACTOR)
            result.audit_events = report.checked
            result.audit_ok = report.ok
            progress.detail(
                f"audit chain verified: {report.checked} events, head #{report.head_seq} "
                f"{report.head_hash[:12]}" if report.ok
                else f"audit chain BROKEN at #{report.first_bad_seq}: {report.reason}"
            )
        return result
    finally:
        if loop is not None:
            loop.client.close()
            loop.close()
        if metrics_server is not None:
            metrics_server.shutdown()
        if api is not None:
            api.stop()
        db.dispose()


def render_summary(result: DemoResult) -> str:
    """Return the demo's closing summary."""
    drift = ", ".join(f"{m} {s:.2f}" for m, s in result.drift_scores.items())
    failure = result.failure_log
    return "\n".join([
        "",
        "Summary",
        f"  versions registered:   {', '.join(f'v{v}' for v in result.versions)}",
        f"  config changes v1→v2:  {', '.join(result.config_changes)}",
        f"  weights changed:       {', '.join(result.modules_changed)}; unchanged: "
        f"{', '.join(result.modules_unchanged)}",
        f"  drift (threshold 1.0): {drift}",
        f"  failure traced to:     {failure.get('module')} ({failure.get('error_type')})",
        f"  after rollback:        serving v{result.served_after_rollback}",
        f"  audit chain:           {'verified' if result.audit_ok else 'BROKEN'} "
        f"({result.audit_events} events)",
        f"  database:              {result.database}",
        f"  files:                 {_files_line(result)}",
        f"  demo time:             {result.seconds:.1f} s",
        *([f"  install (make demo):   {result.install_seconds:.1f} s; install + demo "
           f"{result.install_seconds + result.seconds:.1f} s"]
          if result.install_seconds is not None else []),
    ])


def _files_line(result: DemoResult) -> str:
    if result.kept:
        return f"kept in {result.workdir}"
    return f"removed ({(result.removed_bytes or 0) / 1e6:.0f} MB in {result.workdir})"
