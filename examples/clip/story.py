"""The governed story of a CLIP model: register, fine-tune, diff, monitor, promote, roll back."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from prometheus_client import CollectorRegistry
from transformers import CLIPModel

from examples.clip.artifacts import BATCH, FINETUNED, MONITORED, Artifacts, build_artifacts
from examples.clip.data import make_pairs
from instrumentation import instrument
from instrumentation.drift import ReferenceProfile, build_monitors
from registry import db as dbmod
from registry import service
from registry.errors import Conflict
from registry.schemas import Actor
from registry.service import WeightsSource

__all__ = [
    "ACTOR",
    "MONITORED",
    "StoryResult",
    "Verdict",
    "default_config_path",
    "run_clip_story",
    "story_ok",
]

ACTOR = Actor(name="clip-story", team=None, role="admin")
MODEL = "clip-team"
TEAM = "vision"
WINDOW = 32
SERVE_BATCHES = 4  # two windows per monitor
DRIFT_NOISE_STD = 80.0
FALSE_ALARM_RATE = 0.05


def default_config_path() -> Path:
    """Return the seed's ``examples/clip/config.yaml`` (registered verbatim).

    Raises:
        FileNotFoundError: the package is installed without it.
    """
    path = Path(__file__).resolve().with_name("config.yaml")
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --config PATH")
    return path


@dataclass(frozen=True)
class Verdict:
    """What one drift monitor said about a stream: windows scored, alarms, the last score."""

    windows: int
    alarms: int
    last_score: float | None


@dataclass
class StoryResult:
    """What the story did, as a user would check it."""

    database: str
    model: str
    workdir: str | None  # kept directory, None once cleaned up
    shards: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    config_hash: str = ""
    finetune_losses: list[float] = field(default_factory=list)
    modules_changed: list[str] = field(default_factory=list)
    modules_unchanged: list[str] = field(default_factory=list)
    weights_changed: bool = False
    pipeline_unchanged: bool = False
    reference_modules: list[str] = field(default_factory=list)
    reference_samples: int = 0
    output_std: dict[str, float] = field(default_factory=dict)
    in_distribution: dict[str, Verdict] = field(default_factory=dict)
    drifted: dict[str, Verdict] = field(default_factory=dict)
    production_history: list[int] = field(default_factory=list)
    audit_events: int = 0
    audit_ok: bool = False
    seconds: float = 0.0


@contextmanager
def _workdir(path: Path | None, keep: bool) -> Iterator[Path]:
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    made = Path(tempfile.mkdtemp(prefix="mmgov-clip-"))
    try:
        yield made
    finally:
        if not keep:
            shutil.rmtree(made, ignore_errors=True)


def _attach(db: dbmod.Database, version: int, profile: ReferenceProfile) -> None:
    service.attach_reference(
        db, ACTOR, model=MODEL, version=version, fmt=profile.FORMAT, blob=profile.to_bytes(),
        n_samples=profile.n_samples, modules=profile.modules,
    )


def _serve(
    model: CLIPModel,
    profile: ReferenceProfile,
    batches: list[dict[str, torch.Tensor]],
    *,
    version: int,
    config_hash: str,
) -> tuple[dict[str, Verdict], dict[str, float]]:
    """Run ``batches`` through the instrumented model with monitors calibrated on ``profile``."""
    monitors = build_monitors(
        profile, detector="mean_shift", window=WINDOW, false_alarm_rate=FALSE_ALARM_RATE,
        model_name=MODEL, version=version, background=False, seed=0,
    )
    registry = CollectorRegistry()
    with instrument(
        model, model_name=MODEL, version=version, config_hash=config_hash,
        modules=list(MONITORED), prometheus_registry=registry, sample_every=1, drift=monitors,
    ), torch.inference_mode():
        for batch in batches:
            model(**batch)
        stds = {
            m: float(registry.get_sample_value(
                "mmgov_module_output_std", {"model": MODEL, "version": str(version), "module": m}
            ) or float("nan"))
            for m in MONITORED
        }
    verdicts = {}
    for module, monitor in monitors.items():
        snap = monitor.snapshot()
        monitor.close()
        verdicts[module] = Verdict(
            windows=snap.windows, alarms=snap.alarms,
            last_score=None if snap.score is None else float(snap.score),
        )
    return verdicts, stds


def _verdict_line(verdicts: Mapping[str, Verdict]) -> str:
    return ", ".join(
        f"{m} {v.windows} windows {v.alarms} alarms (last score "
        f"{'-' if v.last_score is None else f'{v.last_score:.2f}'})"
        for m, v in verdicts.items()
    )


def run_clip_story(
    database_url: str | None = None,
    *,
    config_path: Path | None = None,
    workdir: Path | None = None,
    keep: bool = False,
    built: Artifacts | None = None,
    echo: Callable[[str], None] = print,
) -> StoryResult:
    """Govern a CLIP model end to end with the seed's config file as it is.

    Saves a sharded v1 and its pipeline, registers it, attaches its reference profile and
    promotes it to production; fine-tunes ``text_projection`` alone, registers v2, diffs v1..v2,
    attaches v2's profile, promotes it; serves v2 instrumented with drift monitors on an
    in-distribution stream and a noisy-image stream; rolls production back to v1 and verifies
    the audit chain. ``database_url`` defaults to a SQLite file in the work directory (which is
    then a temporary directory unless ``workdir`` or ``keep`` says otherwise). ``built`` reuses
    the checkpoints, pipeline and profiles of an earlier `build_artifacts` instead of making them.

    Returns:
        The result; ``workdir`` is None when the files were removed.

    Raises:
        RegistryError: a registry step was refused. FileNotFoundError: the config is missing.
        FileExistsError: ``workdir`` holds the database of an earlier story (and no
            ``database_url`` was given): a second story there would number its versions 3 and 4.
    """
    started = time.perf_counter()
    if workdir is not None and database_url is None and (workdir / "mmgov.db").exists():
        raise FileExistsError(
            f"{workdir} already holds a story's database (mmgov.db); remove it or pick another "
            "--workdir"
        )
    config_file = config_path or default_config_path()
    config_text = config_file.read_text(encoding="utf-8")
    keep = keep or workdir is not None
    with _workdir(workdir, keep) as work:
        url = database_url or f"sqlite:///{work / 'mmgov.db'}"
        dbmod.upgrade(url)
        db = dbmod.Database(url)
        result = StoryResult(database=dbmod.safe_url(url), model=MODEL,
                             workdir=str(work) if keep else None)
        try:
            _story(db, result, built or build_artifacts(work, echo), config_text,
                   config_file.name, echo)
        finally:
            db.dispose()
    result.seconds = time.perf_counter() - started
    return result


def _story(
    db: dbmod.Database,
    result: StoryResult,
    built: Artifacts,
    config_text: str,
    config_source: str,
    echo: Callable[[str], None],
) -> None:
    with contextlib.suppress(Conflict):  # a --database given may already have the team
        service.create_team(db, ACTOR, TEAM)
    result.shards = built.shards
    result.finetune_losses = built.losses
    pipeline = {name: str(path.resolve()) for name, path in built.pipeline.items()}

    v1 = service.register_version(
        db, ACTOR, model=MODEL, config=config_text, config_source=config_source,
        weights=WeightsSource(uri=str(built.v1.resolve())), pipeline=pipeline,
        note="random init, seed 0", team=TEAM,
    ).version
    result.versions.append(v1.version)
    result.config_hash = v1.config_hash
    _attach(db, v1.version, built.profile_v1)
    service.promote(db, ACTOR, model=MODEL, version=v1.version, alias="production")
    result.production_history.append(v1.version)
    echo(f"registered {MODEL} v{v1.version} (config {v1.config_hash[:12]}, "
         f"{len(v1.module_hashes)} module hashes), reference attached; production -> v1")

    v2 = service.register_version(
        db, ACTOR, model=MODEL, config=config_text, config_source=config_source,
        weights=WeightsSource(uri=str(built.v2.resolve())), pipeline=pipeline,
        note=f"fine-tuned {FINETUNED}", team=TEAM,
    ).version
    result.versions.append(v2.version)
    _attach(db, v2.version, built.profile_v2)
    diff = service.diff_versions(db, ACTOR, MODEL, v1.version, v2.version)
    result.weights_changed = diff.weights_changed
    result.modules_changed = list(diff.modules.changed)
    result.modules_unchanged = list(diff.modules.unchanged)
    result.pipeline_unchanged = _pipeline_unchanged(diff)
    echo(f"registered v{v2.version}; diff v{v1.version}..v{v2.version}: modules changed "
         f"{', '.join(result.modules_changed) or '-'}; unchanged "
         f"{', '.join(result.modules_unchanged) or '-'}; pipeline "
         f"{'unchanged' if result.pipeline_unchanged else 'CHANGED'}")

    service.promote(db, ACTOR, model=MODEL, version=v2.version, alias="production",
                    expected_version=v1.version)
    result.production_history.append(v2.version)
    # Monitor with what the registry holds: the profile as attached, read back.
    stored = service.get_reference(db, ACTOR, MODEL, v2.version)
    profile = ReferenceProfile.from_bytes(stored.blob)
    result.reference_modules = list(stored.info.modules)
    result.reference_samples = stored.info.n_samples
    clean = built.batches(make_pairs(BATCH * SERVE_BATCHES, seed=2))
    noisy = built.batches(make_pairs(BATCH * SERVE_BATCHES, seed=3, noise_std=DRIFT_NOISE_STD))
    model = built.model
    result.in_distribution, result.output_std = _serve(
        model, profile, clean, version=v2.version, config_hash=v2.config_hash)
    echo(f"production -> v{v2.version}, served with drift monitors; in-distribution: "
         f"{_verdict_line(result.in_distribution)}")
    result.drifted, _ = _serve(model, profile, noisy, version=v2.version,
                               config_hash=v2.config_hash)
    echo(f"noisy images: {_verdict_line(result.drifted)}")

    back = service.rollback(db, ACTOR, model=MODEL, alias="production",
                            expected_version=v2.version)
    result.production_history.append(back.version)
    report = service.verify_audit(db, ACTOR)
    result.audit_events, result.audit_ok = report.checked, report.ok
    echo(f"rolled back: production -> v{back.version}; audit chain "
         f"{'verified' if report.ok else 'BROKEN'} ({report.checked} events)")


def _pipeline_unchanged(diff: Any) -> bool:
    pipeline = getattr(diff, "pipeline", None)
    if pipeline is None:
        return False
    return not (pipeline.changed or pipeline.added or pipeline.removed
                or pipeline.components_added or pipeline.components_removed)


def story_ok(result: StoryResult) -> bool:
    """Whether the story came out as governed: the checks ``python -m examples.clip`` reports.

    Returns:
        True when only ``text_projection`` changed, the pipeline did not, in-distribution traffic
        raised no alarm, the noisy images alarmed the vision monitor, production is back on v1
        and the audit chain verifies.
    """
    first = result.versions[0] if result.versions else None
    return (
        len(result.shards) > 1
        and result.modules_changed == [FINETUNED]
        and result.pipeline_unchanged
        and all(v.windows > 0 and v.alarms == 0 for v in result.in_distribution.values())
        and result.drifted.get("vision_model", Verdict(0, 0, None)).alarms > 0
        and result.production_history[-1:] == [first]
        and result.audit_ok
    )
