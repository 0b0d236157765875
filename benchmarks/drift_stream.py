"""Streaming drift: run length under no drift, detection delay, CPU per sample (issue 15).

Run: ``nice -n 10 .venv/bin/python benchmarks/drift_stream.py [--quick]
[--alibi-python .venv-compare/drift/bin/python] [--alibi-json FILE]``; prints markdown tables.
alibi's runs are slow (at ERL 10,000 its calibration alone takes minutes), so they can be run
apart, as ``.venv-compare/drift/bin/python benchmarks/drift_stream.py --alibi-worker
--targets 10000 --alibi-streams 10 --alibi-refs 1 > FILE`` (one JSON line per run; merge the
targets into one object), and read by ``--alibi-json FILE``; with ``--alibi-python`` the
file is written instead.

alibi-detect's online protocol: Gaussian data at d = 384 with a random non-isotropic covariance
(as in ``drift_bench.py``), a reference of 1,000 samples, every stream drifted from its first
sample, run length = samples until the first alarm. Targets: an expected run length (ERL) of
500 and of 10,000 samples. Null run lengths: median and mean over independent streams, each
with a freshly drawn reference for mmgov's ``sequential`` detector (its ERL is a mean over
references); delays on five shifts (the three quoted in issue 15 and two fainter ones). Streams
are cut at ``CAP`` x ERL samples (counted as that; the number cut is printed).

alibi-detect's ``MMDDriftOnline`` and ``LSDDDriftOnline`` (0.13, Business Source License: never a
dependency of mmgov) run only with ``--alibi-python``, a separate venv's interpreter, in a
subprocess that re-runs this file with ``--alibi-worker`` on the same streams (same seeds,
numpy only). ``make compare-venv`` builds it inside the repository (ignored by git), with the
CPU build of torch pinned by ``constraints.txt``.

alibi calibrates by simulating its statistic on the reference (seconds to minutes), so its
streams share a few references (``reset_state`` between streams); its window is 20 samples
and ``n_bootstraps`` the documented rule of a few times the ERL. CPU is single-thread
(``time.thread_time``), BLAS and torch pinned to one thread.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402 - the thread pins above must precede numpy's import
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
N_REF = 1000
CAP = 8
SHIFTS = (
    "mean 0.1σ all dims",
    "mean 0.5σ one dir",
    "var ×1.2",
    "mean 0.25σ one dir",
    "var ×1.05",
)
Draw = Callable[[np.random.Generator, int], np.ndarray]


def source(d: int, seed: int = 15) -> dict[str, Draw]:
    """Samplers of the null and of every shift, for one fixed random covariance.

    Returns:
        ``{"null": draw, shift name: draw}``; ``draw(rng, m)`` gives ``[m, d]`` float32 rows.
    """
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((d, d)) * rng.uniform(0.1, 1.0, d) / np.sqrt(d)
    sigma = np.sqrt((mixing**2).sum(axis=1))
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    sigma_u = float(np.linalg.norm(mixing.T @ u))

    def draw(scale: float = 1.0, shift: Any = 0.0) -> Draw:
        def sample(r: np.random.Generator, m: int) -> np.ndarray:
            rows = (r.standard_normal((m, d)) * scale) @ mixing.T + shift
            return np.asarray(rows, dtype=np.float32)

        return sample

    return {
        "null": draw(),
        SHIFTS[0]: draw(shift=0.1 * sigma),
        SHIFTS[1]: draw(shift=0.5 * sigma_u * u),
        SHIFTS[2]: draw(scale=float(np.sqrt(1.2))),
        SHIFTS[3]: draw(shift=0.25 * sigma_u * u),
        SHIFTS[4]: draw(scale=float(np.sqrt(1.05))),
    }


def run_length(
    step: Callable[[np.ndarray], bool], draw: Draw, rng: np.random.Generator, cap: int, chunk: int
) -> int:
    """Samples fed (``chunk`` at a time, drawn 256 at a time) until ``step`` first alarms.

    Returns:
        The run length, or ``cap`` when no alarm came first.
    """
    seen = 0
    while seen < cap:
        rows = draw(rng, 256)
        for i in range(0, 256, chunk):
            if step(rows[i : i + chunk]):
                return seen + i + chunk
        seen += 256
    return cap


def summary(lengths: list[int], cap: int) -> dict[str, float]:
    """Median, mean and number of streams cut at ``cap``.

    Returns:
        A dict of floats.
    """
    return {
        "median": float(np.median(lengths)),
        "mean": float(np.mean(lengths)),
        "n": float(len(lengths)),
        "cut": float(sum(v >= cap for v in lengths)),
    }


def ours(erl: int, n_null: int, n_shift: int) -> dict[str, Any]:
    """mmgov ``sequential``: a fresh reference per stream.

    Returns:
        ``{"null": summary, shift: summary, "calib_s": [...]}``.
    """
    from instrumentation.drift import SequentialDetector

    draws = source(DIM)
    out: dict[str, Any] = {"calib_s": []}
    for name, count in (("null", n_null), *((s, n_shift) for s in SHIFTS)):
        lengths = []
        for k in range(count):
            rng = np.random.default_rng([k, erl, len(name)])
            reference = draws["null"](rng, N_REF)
            start = time.thread_time()
            det = SequentialDetector(reference, expected_run_length=erl, seed=k)
            out["calib_s"].append(time.thread_time() - start)
            lengths.append(
                run_length(
                    lambda x, det=det: det.score(x).score > 1.0,
                    draws[name],
                    rng,
                    CAP * erl,
                    det.chunk,
                )
            )
        out[name] = summary(lengths, CAP * erl)
        print(f"  mmgov ERL {erl} {name}: {out[name]}", file=sys.stderr, flush=True)
    return out


def cpu_per_sample(d: int, n: int = 20_000) -> dict[str, float]:
    """Single-thread CPU per sample of ``sequential`` at ``d``: detector alone (chunks of 8) and
    through a ``DriftMonitor`` (batches of 32, scored on the calling thread), and calibration.

    Returns:
        ``{"score_us", "monitor_us", "calib_s"}``.
    """
    import logging

    import structlog

    from instrumentation.drift import DriftMonitor, SequentialDetector

    # The monitor logs every crossing; this measures cost, not alarms.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    draw = source(d)["null"]
    rng = np.random.default_rng(0)
    reference = draw(rng, N_REF)
    start = time.thread_time()
    det = SequentialDetector(reference, expected_run_length=10_000)
    calib = time.thread_time() - start
    rows = draw(rng, n)
    start = time.thread_time()
    for i in range(0, n, det.chunk):
        det.score(rows[i : i + det.chunk])
    score_us = (time.thread_time() - start) / n * 1e6
    det.reset()
    monitor = DriftMonitor(det, module="m", model_name="bench", version=1, background=False)
    start = time.thread_time()
    for i in range(0, n, 32):
        monitor.observe(rows[i : i + 32])
    monitor_us = (time.thread_time() - start) / n * 1e6
    return {"score_us": score_us, "monitor_us": monitor_us, "calib_s": calib}


def alibi_worker(erl: int, n_null: int, n_shift: int, refs: int) -> dict[str, Any]:
    """alibi-detect's online MMD and LSDD on the same kind of streams (run in its own venv).

    Returns:
        ``{detector: {"null": summary, shift: summary, "calib_s": [...], "us": [...]}}``.
    """
    import torch
    from alibi_detect.cd import LSDDDriftOnline, MMDDriftOnline

    torch.set_num_threads(1)
    draws = source(DIM)
    results: dict[str, Any] = {}
    for label, cls in (("MMDDriftOnline", MMDDriftOnline), ("LSDDDriftOnline", LSDDDriftOnline)):
        res: dict[str, Any] = {"calib_s": [], "us": []}
        detectors = []
        for k in range(refs):
            reference = draws["null"](np.random.default_rng([k, erl, 99]), N_REF)
            start = time.thread_time()
            detectors.append(
                cls(
                    reference,
                    ert=erl,
                    window_size=20,
                    backend="pytorch",
                    n_bootstraps=max(2500, 5 * erl),
                    verbose=False,
                )
            )
            res["calib_s"].append(time.thread_time() - start)
        for name, count in (("null", n_null), *((s, n_shift) for s in SHIFTS)):
            lengths = []
            for k in range(count):
                cd = detectors[k % refs]
                cd.reset_state()
                rng = np.random.default_rng([k, erl, len(name)])

                def step(x: np.ndarray, cd: Any = cd, res: dict[str, Any] = res) -> bool:
                    start = time.thread_time()
                    hit = bool(cd.predict(x[0])["data"]["is_drift"])
                    res["us"].append((time.thread_time() - start) * 1e6)
                    return hit

                lengths.append(run_length(step, draws[name], rng, CAP * erl, 1))
            res[name] = summary(lengths, CAP * erl)
            print(f"  {label} ERL {erl} {name}: {res[name]}", file=sys.stderr, flush=True)
        res["us"] = [statistics.median(res["us"])]  # per-call times: only the median goes back
        results[label] = res
    return results


def print_tables(erl: int, mine: dict[str, Any], alibi: dict[str, Any]) -> None:
    """One markdown table per target: detectors as rows."""
    print(f"\n### Expected run length {erl:,} (d = {DIM}, reference {N_REF})\n")
    head = " | ".join(f"delay: {s}" for s in SHIFTS)
    print(f"| detector | null run length: median / mean (streams, cut) | {head} | calibration s |")
    print("|---|---|" + "---|" * len(SHIFTS) + "---|")
    rows = [("mmgov sequential", mine)] + [(f"alibi-detect {k}", v) for k, v in alibi.items()]
    for label, res in rows:
        null = res["null"]
        cells = [
            f"{res[s]['median']:.0f}" + (f" ({res[s]['cut']:.0f} cut)" if res[s]["cut"] else "")
            for s in SHIFTS
        ]
        print(
            f"| {label} | {null['median']:.0f} / {null['mean']:.0f} ({null['n']:.0f}, "
            f"{null['cut']:.0f}) | "
            + " | ".join(cells)
            + f" | {statistics.median(res['calib_s']):.2f} |"
        )


def goals(erl: int, mine: dict[str, Any], alibi: dict[str, Any]) -> None:
    """The issue's goals for one target, one line each."""
    mean = mine["null"]["mean"]
    ok = abs(mean / erl - 1.0) <= 0.2
    print(
        f"- ERL {erl:,}: null mean run length within ±20 % of target: "
        f"{'yes' if ok else 'no'} ({mean:.0f}, {mean / erl - 1.0:+.0%})"
    )
    if alibi:
        slower = [
            f"{s}: {mine[s]['median']:.0f} vs {k} {v[s]['median']:.0f}"
            for s in SHIFTS
            for k, v in alibi.items()
            if mine[s]["median"] >= v[s]["median"]
        ]
        print(
            f"- ERL {erl:,}: median delay shorter than both alibi online detectors on every "
            f"shift: {'yes' if not slower else 'no (' + '; '.join(slower) + ')'}"
        )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables.

    Returns:
        Process exit code.
    """
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer streams")
    parser.add_argument("--targets", default="500,10000", help="expected run lengths")
    parser.add_argument("--alibi-python", help="interpreter of a venv with alibi-detect 0.13")
    parser.add_argument("--alibi-targets", default="500", help="targets alibi runs at")
    parser.add_argument("--alibi-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--alibi-streams", type=int, default=20, help="alibi streams per case")
    parser.add_argument("--alibi-refs", type=int, default=2, help="references alibi's share")
    parser.add_argument(
        "--alibi-json",
        help="file for alibi's results: written after a run with --alibi-python, read without",
    )
    args = parser.parse_args(argv)
    targets = [int(t) for t in args.targets.split(",")]
    n_null, n_shift = (50, 10) if args.quick else (100, 20)
    if args.alibi_worker:
        out = {
            str(t): alibi_worker(
                t, args.alibi_streams, max(args.alibi_streams // 2, 5), refs=args.alibi_refs
            )
            for t in targets
        }
        print(json.dumps(out))
        return 0
    sys.path.insert(0, str(ROOT))
    started = time.perf_counter()
    alibi: dict[str, Any] = {}
    if args.alibi_python:
        alibi_targets = args.alibi_targets
        proc = subprocess.run(
            [
                args.alibi_python,
                __file__,
                "--alibi-worker",
                "--targets",
                alibi_targets,
                "--alibi-streams",
                str(args.alibi_streams),
                "--alibi-refs",
                str(args.alibi_refs),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        sys.stderr.write(proc.stderr[-4000:])
        if proc.returncode == 0:
            alibi = json.loads(proc.stdout.strip().splitlines()[-1])
            if args.alibi_json:
                Path(args.alibi_json).write_text(json.dumps(alibi))
        else:
            print(f"alibi-detect worker failed (exit {proc.returncode})", file=sys.stderr)
    results = {t: ours(t, n_null, n_shift) for t in targets}
    if args.alibi_json and not args.alibi_python:
        # Read after mmgov's own streams: a worker run of the same file may still be writing it.
        try:
            alibi = json.loads(Path(args.alibi_json).read_text())
            print(f"alibi-detect results read from {args.alibi_json}", file=sys.stderr)
        except (OSError, ValueError) as exc:
            print(f"no alibi-detect results ({exc})", file=sys.stderr)
    for t in targets:
        print_tables(t, results[t], alibi.get(str(t), {}))
    print("\n### CPU per sample (single thread)\n")
    print(
        "| d | sequential.score (chunks of 8) µs | DriftMonitor.observe + scoring (batches of 32) "
        "µs | calibration s |"
    )
    print("|---|---|---|---|")
    for d in (384, 768):
        c = cpu_per_sample(d)
        print(f"| {d} | {c['score_us']:.2f} | {c['monitor_us']:.2f} | {c['calib_s']:.2f} |")
        if d == 768:
            cost768 = c
    for t, res in alibi.get(str(targets[0]), {}).items():
        print(f"\nalibi-detect {t}: {statistics.median(res['us']):.0f} µs per sample (d = {DIM})")
    print("\n### Goals (issue 15)\n")
    for t in targets:
        goals(t, results[t], alibi.get(str(t), {}))
    print(
        f"- ≤ 0.05 ms CPU per sample at d = 768: "
        f"{'yes' if cost768['monitor_us'] <= 50 else 'no'} ({cost768['monitor_us']:.1f} µs)"
    )
    calib = max(max(r["calib_s"]) for r in results.values())
    print(
        f"- calibration < 2 s at d = {DIM}: {'yes' if calib < 2 else 'no'} (max {calib:.2f} s); "
        f"at d = 768: {cost768['calib_s']:.2f} s"
    )
    print(f"\nwall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
