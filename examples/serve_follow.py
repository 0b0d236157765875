"""A serving process that follows a registry alias: `ServingLoop`, heartbeats, `/metrics`, inputs.

Run ``python -m examples.serve_follow --help``. It serves whatever version ``--alias`` of
``--model-name`` points at through the sidecar at ``--registry`` (token in ``--token-file``: a
``deployments``-scoped one), swaps when the alias moves, posts heartbeats as ``--instance``,
serves `/metrics` on loopback and runs inference forever on the input stream of
`examples.serve_instrumented` (``reference`` or ``drifted`` digits, read from
``--control-file``). Once it serves, it writes ``--ready-file`` (JSON) atomically.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import torch
from prometheus_client import CollectorRegistry

from examples.multimodal import Preprocessor
from examples.serve_instrumented import InputStream, read_mode, write_ready
from examples.serving import ServingLoop
from instrumentation import configure_logging, start_metrics_server
from registry.client import RegistryClient


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line (``--help`` lists every option)."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.serve_follow", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--registry", required=True, help="sidecar base URL")
    parser.add_argument("--token-file", type=Path, required=True)
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--alias", default="production")
    parser.add_argument("--instance", default=f"pod-{os.getpid()}")
    parser.add_argument("--poll", type=float, default=0.2, help="alias poll interval (s)")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument("--metrics-port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--control-file", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between batches")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT.

    Returns:
        The process exit code (0 after a clean stop).
    """
    args = parse_args(argv)
    torch.set_num_threads(1)
    configure_logging(json=True)
    registry = CollectorRegistry()
    token = args.token_file.read_text(encoding="utf-8").strip()
    client = RegistryClient(args.registry, token, prometheus_registry=registry)
    loop = ServingLoop(client, args.model_name, alias=args.alias, prometheus_registry=registry,
                       instance=args.instance, heartbeat_interval=args.heartbeat)
    served = loop.start(interval=args.poll)
    stream = InputStream(Preprocessor.from_config(served.resolved.config),
                         batch_size=args.batch_size, seed=args.seed)
    server = start_metrics_server(args.metrics_port, registry=registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.ready_file is not None:
        write_ready(args.ready_file, {"metrics_port": server.server_port, "pid": os.getpid(),
                                      "version": served.version, "instance": args.instance})
    mode = "reference"
    try:
        while not stop.is_set():
            new_mode = read_mode(args.control_file, mode)
            if new_mode != mode:
                print(f"input stream: {mode} -> {new_mode}", flush=True)
                mode = new_mode
            loop.predict(stream.batch(mode))
            stop.wait(args.interval)
    finally:
        loop.close()
        client.close()
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
