"""Overhead of mmgov instrumentation on the reference model: paired bare/instrumented forwards.

Run: `.venv/bin/python benchmarks/hook_overhead.py [--pairs N] [--threads T]`. Profiles: the
default one is what serving attaches (the top-level encoders and fusion, sampled statistics as
`configs/model.yaml` sets them, and drift monitors on both encoders built from a reference
profile captured from the model, scoring windows on their worker threads); full depth instruments
every module, without drift. Bare and
instrumented forwards of the same model object run interleaved (alternating which goes first; the
bare one has the wrappers lifted off for the moment); the overhead is the median of the paired
differences, as a percentage of the median bare forward and as µs per instrumented module call.
Each forward is timed twice: CPU time of the calling thread (the figure that counts: other
processes on a shared machine inflate it less than wall time when torch runs on one thread) and
wall time. The 95% interval of the CPU overhead is a bootstrap of the median. Prints a markdown
table with the goals of issue 3 next to the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.multimodal import build_model, load_config  # noqa: E402
from instrumentation import instrument  # noqa: E402
from instrumentation.drift import DriftMonitor, build_monitors, capture_reference  # noqa: E402
from instrumentation.logs import configure_logging  # noqa: E402

PROFILES: dict[str, list[str] | None] = {"default": None, "full-depth": ["**"]}
DRIFT_MODULES = ("image_encoder", "text_encoder")  # what the demo and serving monitor
REFERENCE_SAMPLES = 1000
# (batch, seq, pairs multiplier): the small shape is ~8x cheaper, so it affords 4x the pairs.
SHAPES = ((8, 64, 1), (1, 16, 4))


def make_batch(config: dict[str, Any], batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Return random model inputs of the given batch size and text length."""
    size = int(config["image_encoder"]["image_size"])
    return {
        "pixel_values": torch.randn(batch, 3, size, size),
        "input_ids": torch.randint(0, 1000, (batch, seq)),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
    }


def timed(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Return (thread CPU time, wall time) of one forward in ns."""
    cpu, wall = time.thread_time_ns(), time.perf_counter_ns()
    model(**batch)
    return time.thread_time_ns() - cpu, time.perf_counter_ns() - wall


@contextlib.contextmanager
def wrappers_lifted(model: torch.nn.Module, keep: set[int]) -> Iterator[None]:
    """Take the instrumentation's instance `forward`s off for a moment, then put them back.

    The bare run uses the very same module objects and tensors as the instrumented one, so a
    different memory layout of a copy cannot pass for overhead. `keep`: ids of modules whose
    instance forward predates instrumenting.
    """
    lifted = [(m, m.__dict__.pop("forward")) for m in model.modules()
              if id(m) not in keep and "forward" in m.__dict__]
    try:
        yield
    finally:
        for module, forward in lifted:
            module.__dict__["forward"] = forward


def drift_monitors(model: torch.nn.Module, config: dict[str, Any]) -> dict[str, DriftMonitor]:
    """Calibrated monitors for both encoders, as serving builds them from `monitoring:`."""
    monitoring = config.get("monitoring") or {}
    with torch.inference_mode():
        reference = capture_reference(
            model, [make_batch(config, 50, 16) for _ in range(REFERENCE_SAMPLES // 50)],
            modules=list(DRIFT_MODULES), pooling=str(monitoring.get("pooling", "cls")),
        )
    window = int(monitoring.get("window", 500))
    return build_monitors(
        reference, detector=str(monitoring.get("drift_detector", "mean_shift")), window=window,
        stride=int(monitoring.get("stride", window)),
        false_alarm_rate=float(monitoring.get("false_alarm_rate", 0.05)),
        model_name="bench", version=1,
    )


def measure(
    model: torch.nn.Module, config: dict[str, Any], profile: list[str] | None,
    batch: int, seq: int, pairs: int,
) -> dict[str, float]:
    """Return the overhead of instrumenting `model` with `profile` at one input shape."""
    registry = CollectorRegistry()
    inputs = make_batch(config, batch, seq)
    keep = {id(m) for m in model.modules() if "forward" in m.__dict__}
    default = profile is None
    monitors = drift_monitors(model, config) if default else {}
    sample_every = int((config.get("monitoring") or {}).get("sample_every", 100))

    def bare() -> tuple[int, int]:
        with wrappers_lifted(model, keep):
            return timed(model, inputs)

    with instrument(model, model_name="bench", version=1, modules=profile,
                    prometheus_registry=registry, drift=monitors,
                    sample_every=sample_every) as handle, torch.inference_mode():
        for _ in range(3):  # warm-up both
            bare()
            timed(model, inputs)
        before = _calls(registry, handle.modules)
        timed(model, inputs)
        calls_per_forward = _calls(registry, handle.modules) - before
        bare_cpu, bare_wall, cpu_diffs, wall_diffs = [], [], [], []
        for i in range(pairs):
            # Alternate which runs first so drifting machine load cancels out.
            if i % 2:
                b, t = bare(), timed(model, inputs)
            else:
                t, b = timed(model, inputs), bare()
            bare_cpu.append(b[0])
            bare_wall.append(b[1])
            cpu_diffs.append(t[0] - b[0])
            wall_diffs.append(t[1] - b[1])
        own = sum(registry.get_sample_value("mmgov_instrumentation_errors_total",
                                            {"model": "bench", "version": "1", "module": m}) or 0
                  for m in (*handle.modules, "<root>"))
        if own:
            raise RuntimeError(f"{own:.0f} instrumentation errors: the figures would not count")
    drift_samples = sum(m.snapshot().samples for m in monitors.values())
    for monitor in monitors.values():
        monitor.close()
    base_cpu, base_wall = statistics.median(bare_cpu), statistics.median(bare_wall)
    diff = statistics.median(cpu_diffs)
    low, high = _bootstrap_median(cpu_diffs)
    return {
        "bare_ms": base_cpu / 1e6,
        "overhead_pct": 100.0 * diff / base_cpu,
        "ci_low_pct": 100.0 * low / base_cpu,
        "ci_high_pct": 100.0 * high / base_cpu,
        "us_per_call": diff / 1e3 / calls_per_forward,
        "wall_overhead_pct": 100.0 * statistics.median(wall_diffs) / base_wall,
        "calls": calls_per_forward,
        "modules": len(handle.modules),
        "pairs": pairs,
        "drift_samples": drift_samples,
    }


def _bootstrap_median(values: list[int], rounds: int = 2000) -> tuple[float, float]:
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return medians[int(0.025 * rounds)], medians[int(0.975 * rounds) - 1]


def _calls(registry: CollectorRegistry, modules: tuple[str, ...]) -> float:
    total = 0.0
    for module in modules:
        labels = {"model": "bench", "version": "1", "module": module}
        total += registry.get_sample_value("mmgov_module_calls_total", labels) or 0.0
    return total


GOALS = {("default", 8): "≤0.5%", ("default", 1): "≤1%", ("full-depth", 1): "≤3%"}


def main(argv: list[str] | None = None) -> int:
    """Measure every profile at every shape and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=200,
                        help="paired forwards per batch-8 row (4x that at batch 1)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # Random inputs drift from the reference by design; the alarm events would interleave with
    # the table (their cost, one event per crossing on the monitors' threads, is negligible).
    configure_logging(json=True, level="ERROR")
    config = load_config(REPO / "configs" / "model.yaml")
    model = build_model(config)
    print(f"torch {torch.__version__}, {args.threads} thread(s); CPU = thread CPU time; "
          "goals: overhead as listed and ≤3 µs CPU per call\n")
    print("| profile | batch/seq | modules | calls/forward | pairs | bare CPU ms "
          "| CPU overhead % [95% CI] | goal | µs CPU/call | wall overhead % | drift samples |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, profile in PROFILES.items():
        for batch, seq, more in SHAPES:
            r = measure(model, config, profile, batch, seq, args.pairs * more)
            print(f"| {name} | {batch}/{seq} | {r['modules']} | {r['calls']:.0f} | {r['pairs']} | "
                  f"{r['bare_ms']:.2f} | {r['overhead_pct']:+.2f} "
                  f"[{r['ci_low_pct']:+.2f}, {r['ci_high_pct']:+.2f}] | "
                  f"{GOALS.get((name, batch), '—')} | {r['us_per_call']:+.2f} | "
                  f"{r['wall_overhead_pct']:+.2f} | {r['drift_samples']} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
