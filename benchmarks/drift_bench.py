"""Drift detectors: false-alarm rate, power and CPU cost against alibi-detect and Evidently.

Run: ``.venv/bin/python benchmarks/drift_bench.py [--quick] [--no-real] [--no-external]``;
prints markdown tables. ``--grid [--grid-refs N] [--grid-windows K] [--grid-pool-refs M]
[--grid-data gaussian,digits,texts]`` prints only the false-alarm rate of every windowed
detector by window (32, 64, 128, 500) and reference size (256, 384, 1,000, 5,000) on the
Gaussian, digits and text data (issue 15): per cell, N independently drawn references with K
null windows each on Gaussian data, M (default 2 N) with K / 5 each on the finite pools, every
detector calibrated on the same references and scoring the same windows. The sequential
detector is measured by ``benchmarks/drift_stream.py``.

The comparison detectors run only when installed, never as dependencies of mmgov
(alibi-detect is under the Business Source License since 2024; Evidently needs ``pandas<3``).
``make compare-venv`` installs them, with the CPU build of torch pinned by ``constraints.txt``,
in a separate venv inside the repository (ignored by git)::

    make compare-venv
    PYTHONPATH=. .venv-compare/drift/bin/python benchmarks/drift_bench.py

alibi-detect pins numpy < 2, whose bundled OpenBLAS 0.3.23 may not know a recent CPU and fall
back to its slowest kernels (the BLAS line printed first then says ``Prescott``; float32
matrix products ran 4-5x slower here). Name the core type then, e.g.
``OPENBLAS_CORETYPE=SkylakeX`` on AVX-512 machines, so that every method gets a fast BLAS.

Design (issue 6): a reference of 1,000 samples and windows of 500. Data sets: Gaussian with a
random non-isotropic covariance at d = 384 and 768 (shifts of the mean by 0.05 sigma on every
dimension and by 0.25/0.5/1 sigma along one random unit direction, variance x1.05/1.1/1.2);
sklearn's digits through the reference model's image encoder (class-prior change, pixel
noise); MiniLM text embeddings of caption pairs (topic change to finance). For every data set
several references are drawn independently (real data: disjoint random splits of the pool) and
each detector is calibrated on each; the false-alarm rate is the mean over references of the
share of null windows flagged, and its standard error is taken over references (clustered by
reference), because a test calibrated for 5 % marginally still alarms more or less often with
one given reference (its mean is off by its own sampling error). Real data come from finite
pools: the 500-row windows of one reference are drawn from the 797 digits (3,000 captions) left
after it, so they overlap heavily and all share that reference's luck; those data sets get
hundreds of references with few windows each. A finite pool also widens the null a little
against an endless stream: its covariance is a sample covariance of the pool, whose squared
eigenvalues sum to more than the population's by about ``E||y||^4 / N`` (measured on Gaussian
data, a pool of 1,797 rows raises the nominal 2.5 % of the mean part to 3.5 %), so real-data
rates read somewhat high. Shifted windows are drawn per reference too. Every detector sees the same
windows; the slow ones see a prefix of them (the counts are printed). CPU time is single-thread
(BLAS and torch pinned to one thread before they load) and measured per check with
``time.thread_time``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread pins above must precede numpy's import
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrumentation.drift import DETECTORS, DriftMonitor, create_detector  # noqa: E402
from instrumentation.drift.calibration import per_part_rate  # noqa: E402

N_REF = 1000
WINDOW = 500
Sampler = Callable[[np.random.Generator], np.ndarray]
# A verdict, and for our detectors the parts of the score (mean / scale) on the score's scale.
Flag = Callable[[np.ndarray], tuple[bool, dict[str, float]]]


@dataclass(frozen=True)
class Budget:
    """How many references a method is calibrated on and windows it scores per reference.

    ``refs`` x ``null_per_ref`` for endless (synthetic) data; ``pool_refs`` x ``pool_per_ref``
    for finite pools, whose windows of one reference are strongly correlated.
    """

    refs: int
    null_per_ref: int
    shift_refs: int
    shift_per_ref: int
    pool_refs: int = 0
    pool_per_ref: int = 0

    def null_design(self, finite_pool: bool) -> tuple[int, int]:
        """References and null windows per reference for a data set.

        Returns:
            ``(refs, windows per reference)``.
        """
        if finite_pool and self.pool_refs:
            return self.pool_refs, self.pool_per_ref
        return self.refs, self.null_per_ref


@dataclass
class Method:
    """A detector under test: ``build(reference) -> flag(window)``."""

    name: str
    build: Callable[[np.ndarray], Flag]
    budget: Budget
    ours: bool = False
    check_s: dict[int, list[float]] = field(default_factory=dict)
    calib_s: dict[int, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Draw:
    """One independently drawn reference, its null-window sampler and shifted samplers."""

    reference: np.ndarray
    null: Sampler
    shifted: dict[str, Sampler]


@dataclass(frozen=True)
class Scenario:
    """A data set: ``draw(rng)`` gives a fresh reference with its samplers."""

    name: str
    dim: int
    conditions: tuple[str, ...]
    draw: Callable[[np.random.Generator], Draw]
    finite_pool: bool = False


def _ours(name: str) -> Callable[[np.ndarray], Flag]:
    def build(reference: np.ndarray) -> Flag:
        detector = create_detector(name, reference, window=WINDOW)

        def flag(window: np.ndarray) -> tuple[bool, dict[str, float]]:
            result = detector.score(window)
            parts = {k: float(v) for k, v in result.detail.items() if k in ("mean", "scale")}
            return result.score > 1.0, parts

        return flag

    return build


def _alibi(kind: str) -> Callable[[np.ndarray], Flag]:
    def build(reference: np.ndarray) -> Flag:
        from alibi_detect.cd import LSDDDrift, MMDDrift

        cls = MMDDrift if kind == "mmd" else LSDDDrift
        cd = cls(reference.astype(np.float32), backend="pytorch", p_val=0.05, n_permutations=100)
        return lambda window: (
            bool(cd.predict(window.astype(np.float32))["data"]["is_drift"]),
            {},
        )

    return build


def _evidently(kind: str) -> Callable[[np.ndarray], Flag]:
    """Evidently >= 0.7: the drift method that ``metrics.EmbeddingsDrift`` runs, called directly.

    ``Report([EmbeddingsDrift(...)]).run(...)`` computes exactly this call and then a t-SNE
    picture of both samples, tens of seconds per window; ``evidently_report_smoke`` runs the
    full report once to show that the adapter matches it.
    """

    def build(reference: np.ndarray) -> Flag:
        import pandas as pd
        from evidently.metrics.embeddings import MMDDriftMethod, ModelDriftMethod

        # Defaults of EmbeddingsDrift: the classifier method (threshold AUC 0.55 without
        # bootstrap for references of >= 1,000 rows); MMD with its bootstrap threshold.
        method = ModelDriftMethod() if kind == "model" else MMDDriftMethod(bootstrap=True)
        cols = [f"e{i}" for i in range(reference.shape[1])]
        ref_df = pd.DataFrame(reference, columns=cols)

        def flag(window: np.ndarray) -> tuple[bool, dict[str, float]]:
            # The model method adds a target column to the frames it is given: pass copies.
            _, drifted, _ = method(pd.DataFrame(window, columns=cols), ref_df.copy())
            return bool(drifted), {}

        return flag

    return build


def evidently_report_smoke(reference: np.ndarray, window: np.ndarray) -> str:
    """Run Evidently's own ``Report`` with ``EmbeddingsDrift`` once, against the adapter.

    Returns:
        A line with both drift scores and the report's wall time.
    """
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import EmbeddingsDrift
    from evidently.metrics.embeddings import ModelDriftMethod

    cols = [f"e{i}" for i in range(reference.shape[1])]
    definition = DataDefinition(numerical_columns=cols, embeddings={"emb": cols})

    def dataset(x: np.ndarray) -> Any:
        return Dataset.from_pandas(pd.DataFrame(x, columns=cols), data_definition=definition)

    start = time.perf_counter()
    metric = EmbeddingsDrift(embeddings_name="emb", drift_method=ModelDriftMethod())
    snapshot = Report([metric]).run(dataset(window), dataset(reference))
    wall = time.perf_counter() - start
    report_score = snapshot.dict()["metrics"][0]["value"]
    direct, _, _ = ModelDriftMethod()(
        pd.DataFrame(window, columns=cols), pd.DataFrame(reference, columns=cols)
    )
    return (
        f"Evidently Report(EmbeddingsDrift, model): score {report_score:.4f}, adapter "
        f"{direct:.4f}; the report took {wall:.1f} s wall (t-SNE rendering included)"
    )


def methods(external: bool, quick: bool) -> list[Method]:
    """Our catalog plus the installed comparisons (a skip line for each missing one).

    Returns:
        The methods to run, ours first.
    """
    if quick:
        ours = Budget(4, 40, 2, 5, pool_refs=20, pool_per_ref=4)
        cheap = Budget(refs=2, null_per_ref=20, shift_refs=2, shift_per_ref=5)
        slow = Budget(refs=1, null_per_ref=4, shift_refs=1, shift_per_ref=2)
        slower = slow
    else:
        # Finite pools (797 digits left after a reference): the windows of one reference overlap
        # heavily, so the false-alarm rate varies mostly by reference; hundreds of references
        # with 4 windows each give a standard error of about 0.7 points (synthetic: 0.6).
        ours = Budget(160, 12, 4, 5, pool_refs=500, pool_per_ref=4)
        cheap = Budget(refs=10, null_per_ref=20, shift_refs=4, shift_per_ref=5)
        slow = Budget(refs=2, null_per_ref=10, shift_refs=2, shift_per_ref=3)
        slower = Budget(refs=2, null_per_ref=5, shift_refs=2, shift_per_ref=1)
    windowed = [n for n in sorted(DETECTORS) if n != "sequential"]  # drift_stream.py has it
    found = [Method(f"mmgov {n}", _ours(n), ours, ours=True) for n in windowed]
    if not external:
        return found
    try:
        import alibi_detect  # noqa: F401

        found.append(Method("alibi-detect MMDDrift (torch, 100 perms)", _alibi("mmd"), slow))
        found.append(Method("alibi-detect LSDDDrift (torch, 100 perms)", _alibi("lsdd"), cheap))
    except ImportError:
        print("skip: alibi-detect not installed (see module docstring)", file=sys.stderr)
    try:
        import evidently  # noqa: F401

        found.append(Method("Evidently model-based (AUC > 0.55)", _evidently("model"), cheap))
        found.append(Method("Evidently MMD (bootstrap threshold)", _evidently("mmd"), slower))
    except ImportError:
        print("skip: evidently not installed (see module docstring)", file=sys.stderr)
    return found


def gaussian_scenario(d: int, seed: int) -> Scenario:
    """Synthetic Gaussian data with a random non-isotropic covariance.

    Returns:
        The scenario (references are fresh draws of the same distribution).
    """
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) * rng.uniform(0.1, 1.0, d) / np.sqrt(d)
    sigma = np.sqrt((mixing**2).sum(axis=1))
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    sigma_u = float(np.linalg.norm(mixing.T @ u))

    def draw(n: int, scale: float = 1.0, shift: Any = 0.0) -> Sampler:
        return lambda r: (r.standard_normal((n, d)) * scale) @ mixing.T + shift

    shifted: dict[str, Sampler] = {"mean 0.05σ all dims": draw(WINDOW, shift=0.05 * sigma)}
    for size in (0.25, 0.5, 1.0):
        shifted[f"mean {size}σ one dir"] = draw(WINDOW, shift=size * sigma_u * u)
    for factor in (1.05, 1.1, 1.2):
        shifted[f"var x{factor}"] = draw(WINDOW, scale=float(np.sqrt(factor)))
    return Scenario(
        f"gaussian d={d}",
        d,
        tuple(shifted),
        lambda r: Draw(draw(N_REF)(r), draw(WINDOW), shifted),
    )


def _subset(pool: np.ndarray) -> Sampler:
    return lambda r: pool[r.choice(pool.shape[0], WINDOW, replace=False)]


def _mix(base: np.ndarray, other: np.ndarray, share: float) -> Sampler:
    k = round(WINDOW * share)

    def sample(r: np.random.Generator) -> np.ndarray:
        a = base[r.choice(base.shape[0], WINDOW - k, replace=False)]
        b = other[r.choice(other.shape[0], k, replace=other.shape[0] < k)]
        return np.concatenate([a, b])

    return sample


def real_scenarios(
    quick: bool, seed: int, pools: dict[str, np.ndarray] | None = None
) -> Iterator[Scenario]:
    """Digits through the image encoder and MiniLM texts, from the reference model.

    ``pools``, when given, receives each data set's in-distribution embeddings by name.

    Returns:
        Scenarios (none when examples.multimodal or its data cannot load).
    """
    pools = {} if pools is None else pools
    try:
        import torch

        import examples.multimodal as mm
        from instrumentation.drift.pooling import pool_output
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
    clean = embed_images(images)
    noisy = {}
    for sd in (8.0, 24.0):
        pixels = np.clip(images + rng.normal(0.0, sd, images.shape), 0, 255).astype(np.uint8)
        noisy[sd] = embed_images(pixels)

    def draw_digits(r: np.random.Generator) -> Draw:
        order = r.permutation(len(images))
        ref, rest = order[:N_REF], order[N_REF:]
        low = labels[rest] < 5  # digits 0-4 three times as likely as 5-9: 375 + 125 per window
        shifted = {"class prior 3:1": _mix(clean[rest][~low], clean[rest][low], 0.75)}
        shifted |= {f"pixel noise σ={sd:g}/255": _subset(noisy[sd][rest]) for sd in noisy}
        return Draw(clean[ref], _subset(clean[rest]), shifted)

    pools["digits (image encoder, d=384)"] = clean
    digit_conditions = ("class prior 3:1", *(f"pixel noise σ={sd:g}/255" for sd in noisy))
    yield Scenario("digits (image encoder, d=384)", 384, digit_conditions, draw_digits, True)

    def pairs(topic: str, n: int) -> list[str]:
        lines = mm.load_texts(topic)
        picks = rng.integers(0, len(lines), (n, 2))
        return [f"{lines[a]} {lines[b]}" for a, b in picks]

    def embed_texts(texts: list[str]) -> np.ndarray:
        rows = []
        with torch.no_grad():
            for i in range(0, len(texts), 128):
                enc = pre.tokenizer(
                    texts[i : i + 128],
                    padding=True,
                    truncation=True,
                    max_length=64,
                    return_tensors="pt",
                )
                out = model.text_encoder(enc["input_ids"], enc["attention_mask"])
                rows.append(pool_output(out, "cls"))
        return np.concatenate(rows)

    captions = embed_texts(pairs("captions", N_REF + (1500 if quick else 3000)))
    finance = embed_texts(pairs("finance", 500 if quick else 1000))

    def draw_texts(r: np.random.Generator) -> Draw:
        order = r.permutation(len(captions))
        ref, rest = captions[order[:N_REF]], captions[order[N_REF:]]
        shifted = {f"topic: {p:.0%} finance": _mix(rest, finance, p) for p in (0.1, 0.3)}
        return Draw(ref, _subset(rest), shifted)

    pools["texts (MiniLM, d=384)"] = captions
    text_conditions = ("topic: 10% finance", "topic: 30% finance")
    yield Scenario("texts (MiniLM, d=384)", 384, text_conditions, draw_texts, True)


def timed(fn: Callable[[], Any], into: list[float]) -> Any:
    """Call ``fn`` and append its single-thread CPU seconds to ``into``.

    Returns:
        What ``fn`` returned.
    """
    start = time.thread_time()
    out = fn()
    into.append(time.thread_time() - start)
    return out


@dataclass
class Tally:
    """Per method: share of null windows flagged per reference, and hits per condition."""

    fpr: list[float] = field(default_factory=list)
    null_windows: int = 0
    part_fpr: dict[str, list[float]] = field(default_factory=dict)
    hits: dict[str, list[bool]] = field(default_factory=dict)


def run_scenario(scenario: Scenario, all_methods: list[Method], seed: int) -> dict[str, Tally]:
    """Flag rates per method and condition; slower methods see a prefix of the same windows.

    Returns:
        ``{method name: Tally}``.
    """
    tallies = {m.name: Tally(hits={c: [] for c in scenario.conditions}) for m in all_methods}
    design = {m.name: m.budget.null_design(scenario.finite_pool) for m in all_methods}
    n_refs = max(refs for refs, _ in design.values())
    for r in range(n_refs):
        rng = np.random.default_rng([seed, scenario.dim, len(scenario.name), r])
        drawn = scenario.draw(rng)
        active = [m for m in all_methods if r < design[m.name][0]]
        flags: dict[str, Flag] = {}
        for m in active:
            into = m.calib_s.setdefault(scenario.dim, [])
            flags[m.name] = timed(lambda m=m, ref=drawn.reference: m.build(ref), into)
        windows = [drawn.null(rng) for _ in range(max(design[m.name][1] for m in active))]
        for m in active:
            into = m.check_s.setdefault(scenario.dim, [])
            flag = flags[m.name]
            per_ref = design[m.name][1]
            verdicts = [timed(lambda w=w, f=flag: f(w), into) for w in windows[:per_ref]]
            tally = tallies[m.name]
            tally.fpr.append(float(np.mean([hit for hit, _ in verdicts])))
            tally.null_windows += len(verdicts)
            for part in verdicts[0][1]:
                rate = float(np.mean([parts[part] > 1.0 for _, parts in verdicts]))
                tally.part_fpr.setdefault(part, []).append(rate)
        shifting = [m for m in active if r < m.budget.shift_refs]
        if not shifting:
            continue
        k = max(m.budget.shift_per_ref for m in shifting)
        for cond in scenario.conditions:
            windows = [drawn.shifted[cond](rng) for _ in range(k)]
            for m in shifting:
                flag = flags[m.name]
                tallies[m.name].hits[cond] += [
                    flag(w)[0] for w in windows[: m.budget.shift_per_ref]
                ]
    return tallies


def print_table(scenario: Scenario, tallies: dict[str, Tally], all_methods: list[Method]) -> None:
    """Print one markdown table: methods as rows, FPR and conditions as columns."""
    print(f"\n### {scenario.name} (share of windows flagged; n = windows)\n")
    head = " | ".join(scenario.conditions)
    print(
        "| method | FPR mean ± se over refs, refs × windows | parts: mean / scale (nominal "
        f"{per_part_rate(0.05, 2):.3f}) | {head} |"
    )
    print("|---|---|---|" + "---|" * len(scenario.conditions))
    for m in all_methods:
        t = tallies[m.name]
        mean, se = fpr_and_se(t.fpr)
        fpr = f"{mean:.3f} ± {se:.3f}, {len(t.fpr)} × {t.null_windows // len(t.fpr)}"
        parts = (
            " / ".join(
                f"{fpr_and_se(v)[0]:.3f} ± {fpr_and_se(v)[1]:.3f}" for v in t.part_fpr.values()
            )
            or "–"
        )
        cells = [f"{np.mean(t.hits[c]):.2f} (n={len(t.hits[c])})" for c in scenario.conditions]
        print(f"| {m.name} | {fpr} | {parts} | " + " | ".join(cells) + " |")


def fpr_and_se(per_ref: list[float]) -> tuple[float, float]:
    """Mean false-alarm rate over references and its standard error clustered by reference.

    Returns:
        ``(mean, standard error)``; the error is NaN for a single reference.
    """
    f = np.array(per_ref)
    se = float(f.std(ddof=1) / np.sqrt(len(f))) if len(f) > 1 else float("nan")
    return float(f.mean()), se


def goals(
    results: list[tuple[Scenario, dict[str, Tally]]], all_methods: list[Method], dims: list[int]
) -> None:
    """Print the issue's goals against the measurements, one line each."""
    print("\n### Goals (issue 6)\n")
    for m in (m for m in all_methods if m.ours):
        fprs = [(s.name, *fpr_and_se(t[m.name].fpr)) for s, t in results]
        off = [f"{n} {v:.3f} ± {se:.3f}" for n, v, se in fprs if abs(v - 0.05) > 0.02]
        # Outside by more than two standard errors: the miss is not sampling noise.
        sure = [f"{n} {v:.3f} ± {se:.3f}" for n, v, se in fprs if abs(v - 0.05) - 0.02 > 2 * se]
        verdict = "yes" if not off else "no (" + "; ".join(off) + ")"
        if off and not sure:
            verdict = "within two standard errors (" + "; ".join(off) + ")"
        print(f"- {m.name}: FPR within 0.05 ± 0.02 on every data set: {verdict}")
        alibi = [a for a in all_methods if a.name.startswith("alibi")]
        if alibi:
            worse = []
            for s, t in results:
                for c in s.conditions:
                    best = max(float(np.mean(t[a.name].hits[c])) for a in alibi)
                    ours = float(np.mean(t[m.name].hits[c]))
                    if ours < best:
                        worse.append(f"{s.name} / {c}: {ours:.2f} < {best:.2f}")
            print(
                f"- {m.name}: power ≥ best alibi-detect detector on every condition: "
                + ("yes" if not worse else "no (" + "; ".join(worse) + ")")
            )
        costs = {d: statistics.median(m.check_s[d]) * 1e3 for d in dims if d in m.check_s}
        print(
            f"- {m.name}: ≤ 5 ms single-thread per check at 500 × 768: "
            + (
                f"{'yes' if costs.get(768, 0.0) <= 5.0 else 'no'} ({costs.get(768, 0.0):.2f} ms)"
                if 768 in costs
                else "not measured"
            )
        )
        calib = max(max(v) for v in m.calib_s.values())
        print(
            f"- {m.name}: calibration < 10 s: {'yes' if calib < 10 else 'no'} (max {calib:.2f} s)"
        )


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


GRID_WINDOWS = (32, 64, 128, 500)
GRID_REFS = (256, 384, 1000, 5000)


def grid_cell(
    names: list[str],
    draw: Callable[[np.random.Generator, int, int, int], Any],
    n_ref: int,
    window: int,
    refs: int,
    per_ref: int,
    seed: int,
) -> dict[str, tuple[float, float]] | None:
    """False-alarm rate of every windowed detector at one window and reference size.

    ``draw(rng, n_ref, window, per_ref)`` gives a reference and ``per_ref`` null windows (None
    when the pool is too small). Each reference is drawn independently; every detector is
    calibrated on the same references and scores the same windows.

    Returns:
        ``{detector: (mean, standard error over references)}``, or None when the cell cannot
        be drawn.
    """
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(refs):
        rng = np.random.default_rng([seed, n_ref, window, r])
        drawn = draw(rng, n_ref, window, per_ref)
        if drawn is None:
            return None
        reference, windows = drawn
        for name in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the size warning is what the grid measures
                detector = create_detector(name, reference, window=window, seed=r)
            rates[name].append(float(np.mean([detector.score(w).score > 1.0 for w in windows])))
    return {name: fpr_and_se(v) for name, v in rates.items()}


def grid_sources(
    no_real: bool, quick: bool, seed: int
) -> list[tuple[str, Callable[[np.random.Generator, int, int, int], Any], bool]]:
    """The grid's data sets: Gaussian at d = 384 (endless) and the finite real pools.

    Returns:
        ``(name, draw, finite)`` per data set.
    """
    d = 384
    mixing_rng = np.random.default_rng(seed + d)
    mixing = mixing_rng.standard_normal((d, d)) * mixing_rng.uniform(0.1, 1.0, d) / np.sqrt(d)

    mixing32 = mixing.astype(np.float32)  # windows are scored in float32 anyway

    def gaussian(r: np.random.Generator, n: int, m: int, k: int) -> Any:
        return r.standard_normal((n, d)) @ mixing.T, [
            r.standard_normal((m, d), dtype=np.float32) @ mixing32.T for _ in range(k)
        ]

    out: list[tuple[str, Callable[[np.random.Generator, int, int, int], Any], bool]] = [
        (f"gaussian d={d}", gaussian, False)
    ]
    if no_real:
        return out
    pools: dict[str, np.ndarray] = {}
    for _ in real_scenarios(quick, seed, pools):
        pass
    for pool_name, pool in pools.items():

        def finite(r: np.random.Generator, n: int, m: int, k: int, pool: Any = pool) -> Any:
            if n + m > pool.shape[0]:
                return None
            order = r.permutation(pool.shape[0])
            rest = pool[order[n:]]
            return pool[order[:n]], [
                rest[r.choice(rest.shape[0], m, replace=False)] for _ in range(k)
            ]

        out.append((pool_name, finite, True))
    return out


def run_grid(args: argparse.Namespace) -> None:
    """Print the window x reference-size false-alarm grid of every windowed detector."""
    names = [n for n in sorted(DETECTORS) if n != "sequential"]
    if args.quick:
        refs, per_ref, pool_refs, pool_per_ref = 6, 10, 12, 3
    else:
        refs, per_ref = args.grid_refs, args.grid_windows
        pool_refs = args.grid_pool_refs or 2 * args.grid_refs
        pool_per_ref = max(args.grid_windows // 5, 2)
    print(
        f"\n## False alarms by window and reference size (nominal 0.05; mean ± se over "
        f"references; {refs} references × {per_ref} windows per cell on Gaussian data, "
        f"{pool_refs} × {pool_per_ref} on the finite pools)\n"
    )
    off = []
    for data_name, draw, finite in grid_sources(args.no_real, args.quick, args.seed):
        if args.grid_data and not any(data_name.startswith(k) for k in args.grid_data.split(",")):
            continue
        n_refs, n_win = (pool_refs, pool_per_ref) if finite else (refs, per_ref)
        table: dict[tuple[str, int], list[str]] = {}
        for n_ref in GRID_REFS:
            for w in GRID_WINDOWS:
                got = grid_cell(names, draw, n_ref, w, n_refs, n_win, args.seed)
                for name in names:
                    if got is None:
                        table.setdefault((name, n_ref), []).append("– (pool too small)")
                        continue
                    mean, se = got[name]
                    table.setdefault((name, n_ref), []).append(f"{mean:.3f} ± {se:.3f}")
                    if abs(mean - 0.05) - 0.02 > 2 * se:
                        off.append(f"{data_name} {name} n={n_ref} w={w}: {mean:.3f} ± {se:.3f}")
                print(f"  {data_name} n={n_ref} w={w}: {got}", file=sys.stderr, flush=True)
        print(f"\n### {data_name}\n")
        print("| detector | reference | " + " | ".join(f"window {w}" for w in GRID_WINDOWS) + " |")
        print("|---|---|" + "---|" * len(GRID_WINDOWS))
        for name in names:
            for n_ref in GRID_REFS:
                print(f"| {name} | {n_ref} | " + " | ".join(table[name, n_ref]) + " |", flush=True)
    print(
        "\n- every cell within 0.05 ± 0.02 (up to two standard errors): "
        + ("yes" if not off else "no (" + "; ".join(off) + ")")
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables.

    Returns:
        Process exit code.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="d=384 only, fewer windows")
    parser.add_argument("--no-real", action="store_true", help="skip the reference-model data")
    parser.add_argument("--no-external", action="store_true", help="skip alibi/Evidently")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--grid", action="store_true", help="only the window x reference-size false-alarm grid"
    )
    parser.add_argument("--grid-refs", type=int, default=40, help="references per grid cell")
    parser.add_argument(
        "--grid-windows", type=int, default=40, help="null windows per reference in a grid cell"
    )
    parser.add_argument(
        "--grid-pool-refs", type=int, default=0, help="references per cell on the finite pools"
    )
    parser.add_argument(
        "--grid-data", default="", help="only these grid data sets (gaussian, digits, texts)"
    )
    args = parser.parse_args(argv)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        threadpool_limits(1)
        for pool in (p for p in threadpool_info() if p["user_api"] == "blas"):
            print(
                f"BLAS: {pool['internal_api']} {pool['version']} ({pool.get('architecture')}), "
                f"{pool['num_threads']} thread(s), numpy {np.__version__}"
            )
    except ImportError:
        pass
    started = time.perf_counter()
    if args.grid:
        run_grid(args)
        print(f"\nwall time {time.perf_counter() - started:.0f} s")
        return 0
    dims = [384] if args.quick else [384, 768]
    all_methods = methods(not args.no_external, args.quick)
    print(f"reference n={N_REF}, window={WINDOW}, nominal false-alarm rate 0.05 per window")
    print(
        "\n| method | null: refs × windows (synthetic) | null: refs × windows (finite pools) "
        "| shifted: refs × windows |"
    )
    print("|---|---|---|---|")
    for m in all_methods:
        b = m.budget
        pool = "{} × {}".format(*b.null_design(True))
        print(
            f"| {m.name} | {b.refs} × {b.null_per_ref} | {pool} | "
            f"{b.shift_refs} × {b.shift_per_ref} |"
        )
    print(
        "\nSlow comparisons score fewer windows (a prefix of the same ones) to keep the run "
        "near 20 minutes on 2 cores; their rates are correspondingly coarse."
    )
    scenarios: list[Scenario] = [gaussian_scenario(d, args.seed + d) for d in dims]
    if not args.no_real:
        scenarios += list(real_scenarios(args.quick, args.seed))
    results = []
    for scenario in scenarios:
        tallies = run_scenario(scenario, all_methods, args.seed)
        print_table(scenario, tallies, all_methods)
        results.append((scenario, tallies))
    print(f"\n### Single-thread CPU cost (window {WINDOW}, reference {N_REF})\n")
    head = " | ".join(f"median ms/check d={d} | calibration s d={d}" for d in dims)
    print(f"| method | {head} |")
    print("|---|" + "---|---|" * len(dims))
    for m in all_methods:
        cells = " | ".join(
            f"{statistics.median(m.check_s[d]) * 1e3:.1f} | {statistics.median(m.calib_s[d]):.2f}"
            for d in dims
        )
        print(f"| {m.name} | {cells} |")
    for d in dims:
        print(f"\nDriftMonitor.observe: {observe_cost(d):.2f} µs/sample at d={d} (batches of 32)")
    if any(m.name.startswith("Evidently") for m in all_methods):
        rng = np.random.default_rng(args.seed)
        ref, win = rng.standard_normal((N_REF, 384)), rng.standard_normal((WINDOW, 384)) + 0.05
        print("\n" + evidently_report_smoke(ref, win))
    goals(results, all_methods, dims)
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
