"""Overhead of mmgov instrumentation on the reference model: paired bare/instrumented forwards.

Run: `.venv/bin/python benchmarks/hook_overhead.py [--pairs N]`. Bare and instrumented copies of
the same model run interleaved in one process; the overhead is the median of the paired
differences, reported as a percentage of the median bare forward and as µs per instrumented
module call. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.multimodal import build_model, load_config  # noqa: E402
from instrumentation import instrument  # noqa: E402

PROFILES: dict[str, list[str] | None] = {"default": None, "full-depth": ["**"]}
SHAPES = ((8, 64), (1, 16))


def make_batch(config: dict[str, Any], batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Return random model inputs of the given batch size and text length."""
    size = int(config["image_encoder"]["image_size"])
    return {
        "pixel_values": torch.randn(batch, 3, size, size),
        "input_ids": torch.randint(0, 1000, (batch, seq)),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
    }


def timed(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> int:
    """Return the wall time of one forward in ns."""
    start = time.perf_counter_ns()
    model(**batch)
    return time.perf_counter_ns() - start


def measure(
    bare: torch.nn.Module, config: dict[str, Any], profile: list[str] | None,
    batch: int, seq: int, pairs: int,
) -> dict[str, float]:
    """Return median bare time, median paired difference and module calls per forward."""
    inst_model = copy.deepcopy(bare)
    registry = CollectorRegistry()
    inputs = make_batch(config, batch, seq)
    with instrument(inst_model, model_name="bench", version=1, modules=profile,
                    prometheus_registry=registry) as handle, torch.inference_mode():
        for _ in range(3):  # warm-up both
            bare(**inputs)
            inst_model(**inputs)
        before = _calls(registry, handle.modules)
        inst_model(**inputs)
        calls_per_forward = _calls(registry, handle.modules) - before
        bare_ns, diffs = [], []
        for i in range(pairs):
            # Alternate which runs first so drifting machine load cancels out.
            if i % 2:
                b, t = timed(bare, inputs), timed(inst_model, inputs)
            else:
                t, b = timed(inst_model, inputs), timed(bare, inputs)
            bare_ns.append(b)
            diffs.append(t - b)
    base = statistics.median(bare_ns)
    diff = statistics.median(diffs)
    return {
        "bare_ms": base / 1e6,
        "overhead_pct": 100.0 * diff / base,
        "us_per_call": diff / 1e3 / calls_per_forward,
        "calls": calls_per_forward,
        "modules": len(handle.modules),
    }


def _calls(registry: CollectorRegistry, modules: tuple[str, ...]) -> float:
    total = 0.0
    for module in modules:
        labels = {"model": "bench", "version": "1", "module": module}
        total += registry.get_sample_value("mmgov_module_calls_total", labels) or 0.0
    return total


def main(argv: list[str] | None = None) -> int:
    """Measure every profile at every shape and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = load_config(REPO / "configs" / "model.yaml")
    bare = build_model(config)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.pairs} pairs per row\n")
    print("| profile | batch/seq | modules | calls/forward | bare ms | overhead % | µs/call |")
    print("|---|---|---|---|---|---|---|")
    for name, profile in PROFILES.items():
        for batch, seq in SHAPES:
            r = measure(bare, config, profile, batch, seq, args.pairs)
            print(f"| {name} | {batch}/{seq} | {r['modules']} | {r['calls']:.0f} | "
                  f"{r['bare_ms']:.2f} | {r['overhead_pct']:+.2f} | {r['us_per_call']:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
