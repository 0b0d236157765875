"""An instrumented serving loop: reference model, drift monitors, `/metrics`, switchable inputs.

Run ``python -m examples.serve_instrumented --help``. The process builds the model of ``--config``,
captures a reference profile from reference-like traffic, instruments the model with the version
identity it is given and drift monitors calibrated on that profile, serves `/metrics` on loopback
and then runs inference forever on batches of sklearn digits and captions. The stream follows the
mode written in ``--control-file``: ``reference`` (digits as they are) or ``drifted`` (digits under
heavy pixel noise, which moves the image encoder's embeddings away from the reference). Once it
serves, it writes ``--ready-file`` (JSON with the metrics port) atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from prometheus_client import CollectorRegistry

from examples.multimodal import (
    MODULE_NAMES,
    Preprocessor,
    build_model,
    load_config,
    load_digits_images,
    load_texts,
)
from instrumentation import configure_logging, instrument, start_metrics_server
from instrumentation.drift import build_monitors, capture_reference

MODES = ("reference", "drifted")
NOISE_STD = 96.0
"""Standard deviation of the pixel noise of the drifted stream, on the 0-255 scale."""


class InputStream:
    """Endless batches of (digit image, caption) pairs, clean or under pixel noise."""

    def __init__(self, preprocess: Preprocessor, *, batch_size: int, seed: int) -> None:
        self.preprocess = preprocess
        self.batch_size = batch_size
        self.images, _labels = load_digits_images()
        self.texts = load_texts("captions")
        self.rng = np.random.default_rng(seed)

    def batch(self, mode: str) -> dict[str, torch.Tensor]:
        """Return the model inputs of one batch drawn at random in ``mode``.

        Raises:
            ValueError: unknown mode.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        picks = self.rng.integers(0, len(self.images), self.batch_size)
        images: npt.NDArray[np.uint8] = self.images[picks]
        if mode == "drifted":
            noise = self.rng.normal(0.0, NOISE_STD, images.shape)
            images = np.clip(images + noise, 0, 255).astype(np.uint8)
        texts = [self.texts[i] for i in self.rng.integers(0, len(self.texts), self.batch_size)]
        return self.preprocess(list(images), texts)


def read_mode(control_file: Path | None, current: str) -> str:
    """Return the mode in ``control_file``; keep ``current`` when it is absent or invalid."""
    if control_file is None:
        return current
    try:
        text = control_file.read_text(encoding="utf-8").strip()
    except OSError:
        return current
    return text if text in MODES else current


def write_ready(path: Path, info: Mapping[str, Any]) -> None:
    """Write ``info`` as JSON to ``path`` atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(info)), encoding="utf-8")
    os.replace(tmp, path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``--help`` lists every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.serve_instrumented", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--config", type=Path, default=Path("configs/model.yaml"))
    parser.add_argument("--model-name", help="defaults to the config's model.name")
    parser.add_argument("--version", default="1", help="registry version number being served")
    parser.add_argument("--config-hash", default=None)
    parser.add_argument(
        "--monitor", action="append", choices=MODULE_NAMES,
        help="module to watch for drift (repeatable; default: every top-level module)",
    )
    parser.add_argument("--metrics-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--metrics-addr", default="127.0.0.1")
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--control-file", type=Path, default=None)
    parser.add_argument("--reference-samples", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT.

    Returns:
        The process exit code (0 after a clean stop).
    """
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    configure_logging(json=True)
    config = load_config(args.config)
    monitoring: Mapping[str, Any] = config.get("monitoring") or {}
    model_name = args.model_name or str(config["model"]["name"])
    modules = args.monitor or list(MODULE_NAMES)
    window = int(monitoring.get("window", 500))

    model = build_model(config)
    stream = InputStream(Preprocessor.from_config(config), batch_size=args.batch_size,
                         seed=args.seed)
    n_ref_batches = max(1, -(-args.reference_samples // args.batch_size))
    reference = capture_reference(
        model,
        [stream.batch("reference") for _ in range(n_ref_batches)],
        modules=modules,
        pooling=str(monitoring.get("pooling", "cls")),
    )
    monitors = build_monitors(
        reference,
        detector=str(monitoring.get("drift_detector", "mean_shift")),
        window=window,
        stride=int(monitoring.get("stride", window)),
        false_alarm_rate=float(monitoring.get("false_alarm_rate", 0.05)),
        model_name=model_name,
        version=args.version,
        seed=args.seed,
    )
    registry = CollectorRegistry()
    handle = instrument(
        model,
        model_name=model_name,
        version=args.version,
        config_hash=args.config_hash,
        modules=list(MODULE_NAMES),
        prometheus_registry=registry,
        sample_every=int(monitoring.get("sample_every", 100)),
        drift=monitors,
    )
    server = start_metrics_server(args.metrics_port, addr=args.metrics_addr, registry=registry)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.ready_file is not None:
        write_ready(args.ready_file, {
            "metrics_port": server.server_port, "pid": os.getpid(), "model": model_name,
            "version": args.version, "modules": modules, "reference_samples": reference.n_samples,
        })
    print(f"serving metrics on {args.metrics_addr}:{server.server_port}", flush=True)

    mode = "reference"
    try:
        while not stop.is_set():
            new_mode = read_mode(args.control_file, mode)
            if new_mode != mode:
                print(f"input stream: {mode} -> {new_mode}", flush=True)
                mode = new_mode
            with torch.inference_mode():
                model(**stream.batch(mode))
            stop.wait(args.interval)
    finally:
        handle.detach()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
