"""Alias polls while two clients post the largest config the limits allow (issue 13's measure).

Run: ``.venv/bin/python benchmarks/hostile_load.py [--seconds S] [--db URL]``.

Starts `mmgov serve` (one worker, a temp SQLite database unless ``--db``) on loopback. One client
polls ``GET …/aliases/production`` with ``If-None-Match`` (the serving processes' poll, a 304)
one request after the other: first alone (quiet), then while two other processes each post,
back to back, a distinct YAML config of just under ``MMGOV_MAX_CONFIG_BYTES`` (the default
limit). Prints the poll p50/p99 both ways and their ratio, the posts done and their latency, and
the server's peak RSS (VmHWM), with the targets: p99 within 3x of quiet, RSS < 200 MB.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import tempfile
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # registry and benchmarks._seed from this checkout

from benchmarks._seed import SEED_CONFIG, seed_production  # noqa: E402 - after the path insert
from registry.config import DEFAULT_LIMITS  # noqa: E402
from registry.serve_process import serve  # noqa: E402

ALIAS = "/api/v1/models/mm/aliases/production"


def largest_config(tag: str, limit: int = DEFAULT_LIMITS.max_bytes) -> str:
    """Return the seed config plus filler, as close under ``limit`` UTF-8 bytes as lines allow."""
    lines = [SEED_CONFIG.rstrip("\n"), f"bench_tag: {tag}", "filler:"]
    size = sum(len(line) + 1 for line in lines)
    i = 0
    while True:
        line = f"  key_{i}: {{a: {i}, b: 'text {i}', c: [1.5e-5, 2, 3]}}"
        if size + len(line) + 1 > limit:
            return "\n".join(lines) + "\n"
        lines.append(line)
        size += len(line) + 1
        i += 1


def _poster(base: str, secret: str, index: int, stop: Event, done: multiprocessing.Queue) -> None:
    headers = {"Authorization": f"Bearer {secret}"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        n = 0
        while not stop.is_set():
            body = {"config_yaml": largest_config(f"p{index}-{n}"),
                    "weights_uri": f"s3://models/mm/{index}-{n}.safetensors",
                    "weights_sha256": f"{index:02x}{n:062x}"}
            t0 = time.perf_counter()
            r = client.post("/api/v1/models/mm/versions", json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            n += 1
    done.put((latencies, statuses))


def _polls(client: httpx.Client, headers: dict[str, str], seconds: float) -> list[float]:
    latencies = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        r = client.get(ALIAS, headers=headers)
        latencies.append(time.perf_counter() - t0)
        assert r.status_code == 304, r.status_code
    return latencies


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Per phase (default 20).")
    parser.add_argument("--db", help="Database URL (default: a temp SQLite file).")
    args = parser.parse_args()

    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp(prefix='mmgov-hl-')) / 'hl.db'}"
    secret = seed_production(url)
    size = len(largest_config("p0-0").encode())
    with serve(url) as (base, proc), httpx.Client(base_url=base, timeout=30) as client:
        auth = {"Authorization": f"Bearer {secret}"}
        etag = client.get(ALIAS, headers=auth).headers["etag"]
        poll = {**auth, "If-None-Match": etag}
        _polls(client, poll, 1.0)  # warm-up
        quiet = _polls(client, poll, args.seconds)
        rss_quiet = _rss_mb(proc.pid, "VmRSS")

        stop = multiprocessing.Event()
        done: multiprocessing.Queue = multiprocessing.Queue()
        posters = [multiprocessing.Process(target=_poster, args=(base, secret, i, stop, done))
                   for i in range(2)]
        for p in posters:
            p.start()
        time.sleep(1.0)  # both posters are under way
        loaded = _polls(client, poll, args.seconds)
        stop.set()
        results = [done.get(timeout=180) for _ in posters]
        for p in posters:
            p.join(timeout=60)
        peak = _rss_mb(proc.pid, "VmHWM")
        children = [c for task in Path(f"/proc/{proc.pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
        workers = [_rss_mb(int(c), "VmHWM") for c in children]

    post_latencies = [x for lat, _ in results for x in lat]
    statuses: dict[int, int] = {}
    for _, st in results:
        for code, n in st.items():
            statuses[code] = statuses.get(code, 0) + n
    q99, l99 = _pct(quiet, 99), _pct(loaded, 99)
    print(f"config posted: {size} bytes of YAML (limit {DEFAULT_LIMITS.max_bytes}), two clients")
    print(f"{'alias poll (304)':<24}{'p50 ms':>10}{'p99 ms':>10}{'polls':>8}")
    print(f"{'quiet':<24}{_pct(quiet, 50) * 1e3:>10.2f}{q99 * 1e3:>10.2f}{len(quiet):>8}")
    print(f"{'while posting':<24}{_pct(loaded, 50) * 1e3:>10.2f}{l99 * 1e3:>10.2f}{len(loaded):>8}")
    print(f"p99 ratio (loaded / quiet): {l99 / q99:.2f}  (target <= 3)")
    print(f"posts: {len(post_latencies)} ({statuses}), p50 "
          f"{statistics.median(post_latencies) * 1e3:.0f} ms")
    print(f"server RSS: {rss_quiet:.0f} MB quiet, peak {peak:.0f} MB  (target < 200 MB); "
          f"config parser process: peak {', '.join(f'{w:.0f}' for w in workers)} MB")


if __name__ == "__main__":
    main()
