"""Drift detectors: false-alarm rate, power and CPU cost against alibi-detect and Evidently.

Run: ``.venv/bin/python benchmarks/drift_bench.py [--quick] [--no-real]``; prints markdown tables.

Data: a reference of 1,000 samples and windows of 500 at d = 384 and 768, synthetic Gaussian with
a random non-isotropic covariance (FPR over null windows for several independently drawn
references, with the per-reference min-max), shifts of the mean (0.05 sigma on every dimension;
0.25/0.5/1 sigma along one random unit direction) and of the variance (x1.05/1.1/1.2); then real
embeddings from the reference model: sklearn digits through the image encoder (class-prior
change, pixel noise) and MiniLM text embeddings (topic change). Every detector sees the same
windows. CPU time is single-thread (BLAS pinned to one thread before numpy is imported).

Comparisons run only when installed, never as dependencies of mmgov. Install them in a separate
virtual environment (alibi-detect is BSL-licensed since 2024; Evidently needs pandas<3)::

    python -m venv /tmp/drift-cmp && /tmp/drift-cmp/bin/pip install -c constraints.txt \
        -e '.[ml]' 'alibi-detect[torch]' 'evidently<0.7' 'pandas<3'
    /tmp/drift-cmp/bin/python benchmarks/drift_bench.py
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread pins above must precede numpy's import
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrumentation.drift import DETECTORS, DriftMonitor, create_detector  # noqa: E402

N_REF = 1000
WINDOW = 500
Sampler = Callable[[np.random.Generator], np.ndarray]


@dataclass
class Method:
    """A detector under test: ``flag(window) -> bool`` built from a reference."""

    name: str
    build: Callable[[np.ndarray], Callable[[np.ndarray], bool]]
    check_s: list[float] = field(default_factory=list)
    calib_s: list[float] = field(default_factory=list)


@dataclass
class Scenario:
    """A data set: reference sampler, null sampler, shifted samplers by condition."""

    name: str
    references: list[tuple[np.ndarray, Sampler]]  # (reference, null-window sampler) per draw
    shifted: dict[str, Sampler]


def _ours(name: str) -> Callable[[np.ndarray], Callable[[np.ndarray], bool]]:
    def build(reference: np.ndarray) -> Callable[[np.ndarray], bool]:
        detector = create_detector(name, reference, window=WINDOW)
        return lambda window: detector.score(window).score > 1.0

    return build


def _alibi_mmd(reference: np.ndarray) -> Callable[[np.ndarray], bool]:
    from alibi_detect.cd import MMDDrift

    cd = MMDDrift(reference.astype(np.float32), backend="pytorch", p_val=0.05, n_permutations=100)
    return lambda window: bool(cd.predict(window.astype(np.float32))["data"]["is_drift"])


def _evidently(method: str) -> Callable[[np.ndarray], Callable[[np.ndarray], bool]]:
    def build(reference: np.ndarray) -> Callable[[np.ndarray], bool]:
        import pandas as pd
        from evidently import ColumnMapping
        from evidently.metrics import EmbeddingsDriftMetric
        from evidently.metrics.data_drift import embedding_drift_methods as edm
        from evidently.report import Report

        cols = [f"e{i}" for i in range(reference.shape[1])]
        ref_df = pd.DataFrame(reference, columns=cols)
        mapping = ColumnMapping(embeddings={"emb": cols})
        drift_method = getattr(edm, method)()

        def flag(window: np.ndarray) -> bool:
            report = Report(metrics=[EmbeddingsDriftMetric("emb", drift_method=drift_method)])
            report.run(
                reference_data=ref_df,
                current_data=pd.DataFrame(window, columns=cols),
                column_mapping=mapping,
            )
            return bool(report.as_dict()["metrics"][0]["result"]["drift_detected"])

        return flag

    return build


def methods(external: bool) -> list[Method]:
    """Our catalog plus the installed comparisons (a skip line for each missing one).

    Returns:
        The methods to run, ours first.
    """
    found = [Method(f"mmgov {name}", _ours(name)) for name in sorted(DETECTORS)]
    if not external:
        return found
    try:
        import alibi_detect  # noqa: F401

        found.append(Method("alibi MMDDrift (torch, 100 perms)", _alibi_mmd))
    except ImportError:
        print("skip: alibi-detect not installed (see module docstring)", file=sys.stderr)
    try:
        import evidently  # noqa: F401

        for method in ("model", "mmd", "ratio", "distance"):
            found.append(Method(f"Evidently {method}", _evidently(method)))
    except ImportError:
        print("skip: evidently not installed (see module docstring)", file=sys.stderr)
    return found


def gaussian_scenario(d: int, n_refs: int, seed: int) -> Scenario:
    """Synthetic Gaussian data with a random non-isotropic covariance.

    Returns:
        The scenario; shifted windows use the first reference's distribution.
    """
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) * rng.uniform(0.1, 1.0, d) / np.sqrt(d)
    sigma = np.sqrt((mixing**2).sum(axis=1))
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    sigma_u = float(np.linalg.norm(mixing.T @ u))

    def draw(n: int, scale: float = 1.0, shift: Any = 0.0) -> Sampler:
        return lambda r: (r.standard_normal((n, d)) * scale) @ mixing.T + shift

    refs = [(draw(N_REF)(rng), draw(WINDOW)) for _ in range(n_refs)]
    shifted: dict[str, Sampler] = {"mean 0.05σ all dims": draw(WINDOW, shift=0.05 * sigma)}
    for size in (0.25, 0.5, 1.0):
        shifted[f"mean {size}σ one dir"] = draw(WINDOW, shift=size * sigma_u * u)
    for factor in (1.05, 1.1, 1.2):
        shifted[f"var x{factor}"] = draw(WINDOW, scale=float(np.sqrt(factor)))
    return Scenario(f"gaussian d={d}", refs, shifted)


def _pool_sampler(pool: np.ndarray, weights: np.ndarray | None = None) -> Sampler:
    p = None if weights is None else weights / weights.sum()
    return lambda r: pool[r.choice(pool.shape[0], WINDOW, replace=False, p=p)]


def real_scenarios(quick: bool, seed: int) -> Iterator[Scenario]:
    """Digits through the image encoder and MiniLM texts from the reference model.

    Returns:
        Scenarios (none when examples.multimodal is unavailable).
    """
    try:
        import torch

        import examples.multimodal as mm
        from instrumentation._drift_pooling import pool_output
    except ImportError as exc:
        print(f"skip: real-data conditions ({exc})", file=sys.stderr)
        return
    torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[1]
    config = mm.load_config(root / "configs" / "model.yaml")
    model = mm.build_model(config)
    pre = mm.Preprocessor.from_config(config)
    rng = np.random.default_rng(seed)

    def embed_images(images: np.ndarray) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for i in range(0, len(images), 256):
                pixels = pre.image_processor(images=list(images[i : i + 256]), return_tensors="pt")
                rows.append(pool_output(model.image_encoder(pixels["pixel_values"]), "cls"))
        return np.concatenate(rows)

    images, labels = mm.load_digits_images()
    noisy = np.clip(images + rng.normal(0.0, 24.0, images.shape), 0, 255).astype(np.uint8)
    clean_emb, noisy_emb = embed_images(images), embed_images(noisy)
    ref_idx, rest = np.arange(N_REF), np.arange(N_REF, len(images))
    prior = np.where(labels[rest] < 5, 3.0, 1.0)  # digits 0-4 three times as likely
    yield Scenario(
        "digits (image encoder, d=384)",
        [(clean_emb[ref_idx], _pool_sampler(clean_emb[rest]))],
        {
            "class prior 3:1": _pool_sampler(clean_emb[rest], prior),
            "pixel noise σ=24/255": _pool_sampler(noisy_emb[rest]),
        },
    )

    def pairs(topic: str, n: int) -> list[str]:
        lines = mm.load_texts(topic)
        picks = rng.integers(0, len(lines), (n, 2))
        return [f"{lines[a]} {lines[b]}" for a, b in picks]

    def embed_texts(texts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for i in range(0, len(texts), 128):
                enc = pre.tokenizer(texts[i : i + 128], padding=True, truncation=True,
                                    max_length=64, return_tensors="pt")
                out = model.text_encoder(enc["input_ids"], enc["attention_mask"])
                rows.append(pool_output(out, "cls"))
        return np.concatenate(rows)

    n_pool = 1000 if quick else 2000
    captions = embed_texts(pairs("captions", N_REF + n_pool))
    other = embed_texts(pairs("finance", n_pool // 2))
    null_pool = captions[N_REF:]
    mixed = np.concatenate([null_pool, other])
    weights = np.concatenate([np.full(len(null_pool), 0.7 / len(null_pool)),
                              np.full(len(other), 0.3 / len(other))])
    yield Scenario(
        "texts (MiniLM, d=384)",
        [(captions[:N_REF], _pool_sampler(null_pool))],
        {"topic: 30 % finance": _pool_sampler(mixed, weights)},
    )


def timed(fn: Callable[[], Any], into: list[float]) -> Any:
    """Call ``fn`` and append its single-thread CPU seconds to ``into``.

    Returns:
        What ``fn`` returned.
    """
    start = time.thread_time()
    out = fn()
    into.append(time.thread_time() - start)
    return out


def run_scenario(
    scenario: Scenario, all_methods: list[Method], n_null: int, n_shift: int, seed: int
) -> dict[str, dict[str, str]]:
    """Flag rates per method and condition on identical windows.

    Returns:
        ``{method: {column: cell}}``.
    """
    table: dict[str, dict[str, str]] = {m.name: {} for m in all_methods}
    fprs: dict[str, list[float]] = {m.name: [] for m in all_methods}
    shifted_hits: dict[str, dict[str, list[bool]]] = {
        m.name: {c: [] for c in scenario.shifted} for m in all_methods
    }
    per_ref = max(1, -(-n_shift // len(scenario.references)))
    for r, (reference, null_sampler) in enumerate(scenario.references):
        flags = {
            m.name: timed(lambda m=m, ref=reference: m.build(ref), m.calib_s)
            for m in all_methods
        }
        rng = np.random.default_rng(seed + 1000 + r)
        null_hits: dict[str, list[bool]] = {m.name: [] for m in all_methods}
        for _ in range(n_null):
            window = null_sampler(rng)
            for m in all_methods:
                flag = flags[m.name]
                null_hits[m.name].append(timed(lambda f=flag, w=window: f(w), m.check_s))
        for m in all_methods:
            fprs[m.name].append(float(np.mean(null_hits[m.name])))
        if r == 0 or len(scenario.references) > 1:
            for cond, sampler in scenario.shifted.items():
                for _ in range(per_ref if len(scenario.references) > 1 else n_shift):
                    window = sampler(rng)
                    for m in all_methods:
                        shifted_hits[m.name][cond].append(flags[m.name](window))
    for m in all_methods:
        f = fprs[m.name]
        cell = f"{np.mean(f):.3f}" + (f" [{min(f):.2f}–{max(f):.2f}]" if len(f) > 1 else "")
        table[m.name]["FPR"] = cell
        for cond in scenario.shifted:
            table[m.name][cond] = f"{np.mean(shifted_hits[m.name][cond]):.2f}"
    return table


def observe_cost(d: int) -> float:
    """Median CPU microseconds per sample of ``DriftMonitor.observe`` (batches of 32, sync).

    Returns:
        Microseconds per sample, scoring excluded (no window completes during the timing).
    """
    rng = np.random.default_rng(0)
    detector = create_detector("mean_shift", rng.standard_normal((N_REF, d)), window=WINDOW)
    monitor = DriftMonitor(detector, module="m", model_name="bench", version=1, background=False)
    batch = rng.standard_normal((32, d)).astype(np.float32)
    costs: list[float] = []
    for _ in range(WINDOW // 32 - 1):
        timed(lambda: monitor.observe(batch), costs)
    return statistics.median(costs) / 32 * 1e6


def print_table(title: str, table: dict[str, dict[str, str]], all_methods: list[Method]) -> None:
    """Print one markdown table: methods as rows, FPR and conditions as columns."""
    columns = list(next(iter(table.values())))
    print(f"\n### {title}\n")
    print("| method | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    for m in all_methods:
        print(f"| {m.name} | " + " | ".join(table[m.name][c] for c in columns) + " |")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables.

    Returns:
        Process exit code.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d=384 only, fewer windows")
    parser.add_argument("--no-real", action="store_true", help="skip the reference-model data")
    parser.add_argument("--no-external", action="store_true", help="skip alibi/Evidently")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    dims = [384] if args.quick else [384, 768]
    n_refs, n_null, n_shift = (2, 40, 10) if args.quick else (5, 100, 20)
    all_methods = methods(not args.no_external)
    print(f"reference n={N_REF}, window={WINDOW}, nominal false-alarm rate 0.05; "
          f"{n_refs} references x {n_null} null windows, >= {n_shift} windows per shift")
    cost: dict[int, dict[str, tuple[float, float]]] = {}
    for d in dims:
        for m in all_methods:
            m.check_s.clear()
            m.calib_s.clear()
        scenario = gaussian_scenario(d, n_refs, args.seed + d)
        table = run_scenario(scenario, all_methods, n_null, n_shift, args.seed)
        print_table(scenario.name + " (share of windows flagged)", table, all_methods)
        cost[d] = {
            m.name: (statistics.median(m.check_s) * 1e3, max(m.calib_s)) for m in all_methods
        }
    if not args.no_real:
        for scenario in real_scenarios(args.quick, args.seed):
            table = run_scenario(scenario, all_methods, n_null, n_shift, args.seed)
            print_table(scenario.name + " (share of windows flagged)", table, all_methods)
    print(f"\n### Single-thread CPU cost (window {WINDOW}, reference {N_REF})\n")
    header = " | ".join(f"ms/check d={d} | calibration s d={d}" for d in dims)
    print(f"| method | {header} |")
    print("|---|" + "---|---|" * len(dims))
    for m in all_methods:
        cells = " | ".join(f"{cost[d][m.name][0]:.1f} | {cost[d][m.name][1]:.2f}" for d in dims)
        print(f"| {m.name} | {cells} |")
    for d in dims:
        print(f"\nDriftMonitor.observe: {observe_cost(d):.2f} µs/sample at d={d} (batches of 32)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
