"""Instrumentation under torch.compile: graph breaks and forward time, bare vs instrumented.

Run: `.venv/bin/python benchmarks/compile_overhead.py [--pairs N] [--backend inductor]
[--profile default|full-depth]`. The reference model (examples/multimodal, `configs/model.yaml`)
is built twice from one seed: one copy stays bare, the other is instrumented with the profile
(default: the top-level encoders and fusion, as serving attaches them), then both are compiled
with the same backend. `torch._dynamo.explain` counts each one's graph breaks and prints the
reasons of the instrumented one; the goal is at most one added break per instrumented module call.
Forwards of the two compiled models then run interleaved (alternating which goes first) and the
ratio of the median thread CPU times is the overhead (goal ≤ 1.03). Prints a markdown table.
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
from instrumentation.logs import configure_logging  # noqa: E402

PROFILES: dict[str, list[str] | None] = {"default": None, "full-depth": ["**"]}
SHAPES = ((1, 16), (8, 64))
GOAL_RATIO = 1.03


def make_batch(config: dict[str, Any], batch: int, seq: int) -> dict[str, torch.Tensor]:
    """Return random model inputs of the given batch size and text length."""
    size = int(config["image_encoder"]["image_size"])
    return {
        "pixel_values": torch.randn(batch, 3, size, size),
        "input_ids": torch.randint(0, 1000, (batch, seq)),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
    }


def cpu_ns(model: Any, inputs: dict[str, torch.Tensor]) -> int:
    """Return the calling thread's CPU time of one forward in ns."""
    start = time.thread_time_ns()
    model(**inputs)
    return time.thread_time_ns() - start


def explain(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> Any:
    """Return `torch._dynamo.explain`'s report for one forward (after a reset)."""
    torch._dynamo.reset()
    return torch._dynamo.explain(model)(**inputs)


def calls_per_forward(registry: CollectorRegistry, modules: tuple[str, ...]) -> float:
    """Return the calls counted so far, summed over the instrumented modules."""
    total = 0.0
    for module in modules:
        labels = {"model": "bench", "version": "1", "module": module}
        total += registry.get_sample_value("mmgov_module_calls_total", labels) or 0.0
    return total


def main(argv: list[str] | None = None) -> int:
    """Explain, compile and time both models at each shape; print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--backend", default="inductor")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="default")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    configure_logging(json=True, level="ERROR")
    config = load_config(REPO / "configs" / "model.yaml")
    torch.manual_seed(0)
    bare = build_model(config).eval()
    instrumented = copy.deepcopy(bare)
    registry = CollectorRegistry()
    handle = instrument(instrumented, model_name="bench", version=1,
                        modules=PROFILES[args.profile], prometheus_registry=registry)
    print(f"torch {torch.__version__}, backend {args.backend}, profile {args.profile} "
          f"({len(handle.modules)} modules), {args.threads} thread(s); CPU = thread CPU time\n")
    rows = []
    with torch.inference_mode():
        first = make_batch(config, *SHAPES[0])
        before = calls_per_forward(registry, handle.modules)
        instrumented(**first)
        module_calls = int(calls_per_forward(registry, handle.modules) - before)
        bare_report, inst_report = explain(bare, first), explain(instrumented, first)
        print(f"graph breaks: bare {bare_report.graph_break_count}, instrumented "
              f"{inst_report.graph_break_count} (instrumented module calls per forward: "
              f"{module_calls})")
        for i, reason in enumerate(inst_report.break_reasons, 1):
            frame = reason.user_stack[-1] if reason.user_stack else None
            where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
            print(f"  break {i}: {reason.reason.splitlines()[0][:140]}{where}")
        # A call into a wrapper excluded from tracing splits the graph without a listed reason.
        print(f"  graphs: bare {bare_report.graph_count}, instrumented {inst_report.graph_count} "
              f"(ops per graph: {[len(ops) for ops in inst_report.ops_per_graph or []]})")
        torch._dynamo.reset()
        compiled_bare = torch.compile(bare, backend=args.backend)
        compiled_inst = torch.compile(instrumented, backend=args.backend)
        for batch, seq in SHAPES:
            inputs = make_batch(config, batch, seq)
            for _ in range(3):  # compile (first shape) and warm up both
                compiled_bare(**inputs)
                compiled_inst(**inputs)
            before = calls_per_forward(registry, handle.modules)
            bare_ns, inst_ns = [], []
            for i in range(args.pairs):
                if i % 2:
                    bare_ns.append(cpu_ns(compiled_bare, inputs))
                    inst_ns.append(cpu_ns(compiled_inst, inputs))
                else:
                    inst_ns.append(cpu_ns(compiled_inst, inputs))
                    bare_ns.append(cpu_ns(compiled_bare, inputs))
            counted = calls_per_forward(registry, handle.modules) - before
            ratio = statistics.median(inst_ns) / statistics.median(bare_ns)
            rows.append((batch, seq, statistics.median(bare_ns) / 1e6,
                         statistics.median(inst_ns) / 1e6, ratio, counted / args.pairs))
    handle.detach()
    print("\n| batch/seq | pairs | bare compiled CPU ms | instrumented compiled CPU ms | ratio "
          "| goal | calls counted per forward |")
    print("|---|---|---|---|---|---|---|")
    for batch, seq, bare_ms, inst_ms, ratio, counted in rows:
        print(f"| {batch}/{seq} | {args.pairs} | {bare_ms:.2f} | {inst_ms:.2f} | {ratio:.3f} "
              f"| ≤{GOAL_RATIO} | {counted:.0f} |")
    added = inst_report.graph_break_count - bare_report.graph_break_count
    print(f"\ngraph breaks added by instrumenting: {added} ≤ {module_calls} instrumented module "
          f"calls: {'yes' if added <= module_calls else 'NO'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
