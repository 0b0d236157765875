"""Power of two drift detectors on the same windows of one synthetic condition (paired).

Run: ``PYTHONPATH=. .venv-compare/drift/bin/python benchmarks/drift_paired.py
[--condition "mean 0.25σ one dir"] [--dim 384] [--refs 8] [--windows 8]
[--detectors mean_shift alibi-mmd]``.

`drift_bench.py` scores alibi-detect's MMDDrift on only a few windows per condition (0.8 s of
CPU each), so on a condition where both detectors flag a small share its comparison is coarse.
This script draws ``--refs`` references of the Gaussian scenario and ``--windows`` shifted windows
per reference, and scores every window with each detector, so the rates compare like with like.
Detectors: ``mean_shift``, ``mmd_rff``, ``ks`` (ours) and ``alibi-mmd``, ``alibi-lsdd`` (when
installed: ``make compare-venv`` builds that venv).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("drift_bench", HERE / "drift_bench.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["drift_bench"] = module  # dataclasses look their module up while defining
    spec.loader.exec_module(module)
    return module


def main() -> None:
    """Print each detector's share of flagged windows with its binomial standard error."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--condition", default="mean 0.25σ one dir")
    parser.add_argument("--dim", type=int, default=384, choices=(384, 768))
    parser.add_argument("--refs", type=int, default=8)
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--detectors", nargs="+", default=["mean_shift", "alibi-mmd"])
    parser.add_argument("--seed", type=int, default=12345)
    args = parser.parse_args()
    bench = _bench()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    builders: dict[str, Callable[[np.ndarray], Any]] = {}
    for name in args.detectors:
        builders[name] = bench._alibi(name[6:]) if name.startswith("alibi-") else bench._ours(name)
    scenario = bench.gaussian_scenario(args.dim, 0)
    if args.condition not in scenario.conditions:
        parser.error(f"unknown condition; valid: {', '.join(scenario.conditions)}")
    rng = np.random.default_rng(args.seed)
    hits: dict[str, list[bool]] = {name: [] for name in builders}
    for _ in range(args.refs):
        draw = scenario.draw(rng)
        flags = {name: build(draw.reference) for name, build in builders.items()}
        for _ in range(args.windows):
            window = draw.shifted[args.condition](rng)
            for name, flag in flags.items():
                hits[name].append(bool(flag(window)[0]))
    n = args.refs * args.windows
    print(f"gaussian d={args.dim}, {args.condition}: {args.refs} references x {args.windows} "
          f"windows, every detector on the same {n} windows")
    for name, flagged in hits.items():
        rate = sum(flagged) / n
        print(f"  {name}: {rate:.3f} ± {math.sqrt(rate * (1 - rate) / n):.3f}")


if __name__ == "__main__":
    main()
