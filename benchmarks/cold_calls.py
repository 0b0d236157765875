"""What a call costs inside a forward (cache-cold) against the same call repeated at once (warm).

Run: `.venv/bin/python benchmarks/cold_calls.py [--forwards N]`. A forward hook on the
reference model's text encoder runs one probe per forward, twice in a row, timing each run with
`perf_counter_ns`: the first run finds the caches full of the model's weights (the forward has
just streamed them through), the second finds them warm. Probes rotate across forwards, so each
one's first run follows model code, not another probe. Prints the median of each, in µs.

This is why the hooks touch as few distinct objects as they can (see `instrumentation/hooks.py`
and `instrumentation/drift/pooling.py`): on this machine most of a hook's cost inside a model
is cache misses, not bytecodes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from examples.multimodal import build_model, load_config  # noqa: E402
from instrumentation.drift import DriftMonitor, create_detector  # noqa: E402
from instrumentation.logs import configure_logging  # noqa: E402


def probes(dim: int, monitor: DriftMonitor) -> dict[str, Callable[[torch.Tensor], Any]]:
    """The calls measured, each given the encoder's output ``[B, T, D]`` (nothing runs ahead)."""
    row = np.zeros((1, dim), dtype=np.float32)
    profiler_enabled = torch.autograd._profiler_enabled  # type: ignore[attr-defined]
    return {
        "time.perf_counter_ns()": lambda out: time.perf_counter_ns(),
        "torch.autograd._profiler_enabled() (pybind)": lambda out: profiler_enabled(),
        "np.isfinite(row).all(axis=1)": lambda out: np.isfinite(row).all(axis=1),
        "out[:, 0] (a view op)": lambda out: out[:, 0],
        "torch.select_copy(out, 1, 0)": lambda out: torch.select_copy(out, 1, 0),
        "DriftMonitor.observe(out)": monitor.observe,
    }


def main(argv: list[str] | None = None) -> int:
    """Time every probe cold and warm inside real forwards and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--forwards", type=int, default=1200,
                        help="forwards (the probes take turns)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    configure_logging(json=True, level="ERROR")
    config = load_config(REPO / "configs" / "model.yaml")
    model = build_model(config)
    dim = int(config["fusion"]["hidden_size"])
    reference = np.random.default_rng(0).standard_normal((1000, dim))
    # A window larger than every sample observed: no scoring inside the timed calls.
    monitor = DriftMonitor(create_detector("mean_shift", reference, window=500),
                           module="text_encoder", model_name="bench", version=1,
                           window=10**9, background=False)
    table = probes(dim, monitor)
    names = list(table)
    cold: dict[str, list[int]] = {n: [] for n in names}
    warm: dict[str, list[int]] = {n: [] for n in names}
    calls = [0]
    perf = time.perf_counter_ns

    def hook(_module: torch.nn.Module, _args: Any, out: torch.Tensor) -> None:
        name = names[calls[0] % len(names)]
        calls[0] += 1
        probe = table[name]
        t0 = perf()
        probe(out)
        t1 = perf()
        probe(out)
        t2 = perf()
        cold[name].append(t1 - t0)
        warm[name].append(t2 - t1)

    handle = model.text_encoder.register_forward_hook(hook)
    size = int(config["image_encoder"]["image_size"])
    batch = {"pixel_values": torch.randn(1, 3, size, size),
             "input_ids": torch.randint(0, 1000, (1, 16)),
             "attention_mask": torch.ones(1, 16, dtype=torch.long)}
    with torch.inference_mode():
        for _ in range(args.forwards):
            model(**batch)
    handle.remove()
    print(f"torch {torch.__version__}, 1 thread; batch 1 / seq 16; median µs over "
          f"{args.forwards // len(names)} forwards per probe\n")
    print("| call | inside a forward (cold) | repeated at once (warm) | ratio |")
    print("|---|---|---|---|")
    for name in names:
        c, w = statistics.median(cold[name]) / 1e3, statistics.median(warm[name]) / 1e3
        print(f"| {name} | {c:.2f} | {w:.2f} | {c / w:.1f}× |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
