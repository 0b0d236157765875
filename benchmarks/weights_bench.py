"""Hashing speed of ``inspect_weights`` against ``sha256sum`` on the same files, in one run.

Run: ``nice -n 10 .venv/bin/python benchmarks/weights_bench.py [--gib 1.0] [--shards 8]
[--repeats 5] [--dir DIR]``.

It writes, in a temporary directory (removed afterwards), a sharded checkpoint of about
``--gib`` GiB laid out as transformers' ``save_pretrained(max_shard_size=...)`` writes it
(``--shards`` shard files of random float32 tensors and ``model.safetensors.index.json``), and
one single safetensors file of the same tensors. Both are read once before timing so that every
timed run finds them in the page cache. Then, in ``--repeats`` rounds whose order alternates
(``sha256sum`` first in even rounds, last in odd ones), it times

- ``sha256sum`` (a subprocess over the index and every shard, or over the single file), the
  goal's reference;
- ``openssl dgst -sha256`` (a subprocess, if installed) and ``hashlib.file_digest`` in this
  process: one sha256 per byte with the CPU's SHA extensions, stricter references (coreutils'
  ``sha256sum`` may not use those extensions);
- ``inspect_weights`` with ``HASH_WORKERS`` = 1 (one thread) and 2 (shards on two threads; for
  the single file, its plain sha256 on a second thread beside the per-tensor hashes),

and prints a markdown table of medians and the speed ratios (reference seconds / ours; the goal
is >= 0.80 against sha256sum).
The single file needs two sha256 per byte (its plain sha256, which ``sha256sum`` and existing
versions agree on, and each tensor's, for module hashes); a sharded checkpoint needs one.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from registry import weights  # noqa: E402 - after the path insert

GOAL = 0.80
TENSORS_PER_SHARD = 16


def write_checkpoints(directory: Path, gib: float, shards: int) -> tuple[Path, Path]:
    """Write the sharded checkpoint and the single file; return the sharded dir and the file."""
    sharded, single = directory / "sharded", directory / "single"
    sharded.mkdir()
    single.mkdir()
    per_tensor = max(1, int(gib * (1 << 30) / (shards * TENSORS_PER_SHARD * 4)))
    rng = np.random.default_rng(0)
    weight_map: dict[str, str] = {}
    everything: dict[str, np.ndarray] = {}
    for shard in range(shards):
        name = f"model-{shard + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {
            f"layers.{shard}.block.{i}.weight": rng.standard_normal(per_tensor, dtype=np.float32)
            for i in range(TENSORS_PER_SHARD)
        }
        save_file(tensors, str(sharded / name), metadata={"format": "np"})
        weight_map.update(dict.fromkeys(tensors, name))
        everything.update(tensors)
    total = sum(a.nbytes for a in everything.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (sharded / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    save_file(everything, str(single / "model.safetensors"), metadata={"format": "np"})
    return sharded, single / "model.safetensors"


def sha256sum(files: Sequence[Path]) -> dict[str, str]:
    """Run ``sha256sum`` on the files; return file name -> digest."""
    done = subprocess.run(
        ["sha256sum", *map(str, files)], capture_output=True, text=True, check=True
    )
    return {
        Path(p).name: d for d, p in (line.split(maxsplit=1) for line in done.stdout.splitlines())
    }


def ours(target: Path, workers: int) -> weights.WeightsInfo:
    """``inspect_weights`` with ``HASH_WORKERS`` set to ``workers``."""
    saved = weights.HASH_WORKERS
    weights.HASH_WORKERS = workers
    try:
        return weights.inspect_weights(str(target))
    finally:
        weights.HASH_WORKERS = saved


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def file_digest(files: Sequence[Path]) -> None:
    """One plain sha256 per byte in this process: the floor a Python implementation can reach."""
    for path in files:
        with path.open("rb") as file:
            hashlib.file_digest(file, "sha256")


def openssl(files: Sequence[Path]) -> None:
    """``openssl dgst -sha256`` on the files (SHA extensions where the CPU has them)."""
    subprocess.run(
        ["openssl", "dgst", "-sha256", *map(str, files)], capture_output=True, check=True
    )


def measure(files: Sequence[Path], target: Path, repeats: int) -> dict[str, float]:
    """Median seconds of every reference and of ours per worker count, in alternating order."""
    calls: dict[str, Callable[[], object]] = {
        "sha256sum": lambda: sha256sum(files),
        "ours-1": lambda: ours(target, 1),
        "ours-2": lambda: ours(target, 2),
        "file_digest": lambda: file_digest(files),
    }
    if shutil.which("openssl"):
        calls["openssl"] = lambda: openssl(files)
    for call in calls.values():  # warm the page cache and the code paths
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for round_ in range(repeats):
        order = list(calls) if round_ % 2 == 0 else list(reversed(calls))
        for name in order:
            times[name].append(timed(calls[name]))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="checkpoint size (default 1)")
    parser.add_argument("--shards", type=int, default=8, help="shard files (default 8)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument("--dir", type=Path, default=None, help="where the temp dir goes")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="weights_bench_", dir=args.dir))
    try:
        sharded, single = write_checkpoints(work, args.gib, args.shards)
        index = sharded / "model.safetensors.index.json"
        shard_files = sorted(sharded.glob("*.safetensors"))
        sharded_files = [index, *shard_files]
        info = ours(sharded, 2)
        if set(info.shards) != {p.name for p in shard_files}:
            raise SystemExit("benchmark checkpoint was not read as sharded")
        if ours(single, 2).sha256 != sha256sum([single])[single.name]:
            raise SystemExit("single-file sha256 differs from sha256sum's")
        if ours(single, 1).module_hashes != info.module_hashes:
            raise SystemExit("module hashes differ between one file and shards")

        print(f"weights hashing, {args.repeats} rounds, medians in seconds; {os.cpu_count()} CPUs")
        print()
        print(
            "| case | threads | GiB | sha256sum | openssl | file_digest | inspect_weights "
            f"| speed vs sha256sum (goal >= {GOAL:.2f}) | vs openssl | vs file_digest |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for case, files, target in (
            (f"sharded, {len(shard_files)} shards + index", sharded_files, sharded),
            ("single file", [single], single),
        ):
            size = sum(p.stat().st_size for p in files)
            got = measure(files, target, args.repeats)
            ssl = got.get("openssl", float("nan"))
            for workers in (1, 2):
                seconds = got[f"ours-{workers}"]
                ratio = got["sha256sum"] / seconds
                print(
                    f"| {case} | {workers} | {size / (1 << 30):.3f} | {got['sha256sum']:.3f}"
                    f" | {ssl:.3f} | {got['file_digest']:.3f} | {seconds:.3f}"
                    f" | {ratio:.2f} {'met' if ratio >= GOAL else 'NOT met'}"
                    f" | {ssl / seconds:.2f} | {got['file_digest'] / seconds:.2f} |"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
