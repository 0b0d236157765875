"""What tests need to run real servers: free ports, waiting until ready, child processes.

The port, wait and `mmgov serve` helpers are `registry.serve_process` (a feature of the package,
which the benchmarks use too); this package adds what only tests need on top of them.
"""

from __future__ import annotations

from registry.serve_process import Served, free_port, http_ok, serve, stop_process, wait_until
from tests._support.processes import (
    PYTHON,
    REPO,
    Process,
    Processes,
    find_binary,
    python_env,
    run_cli,
)

__all__ = [
    "PYTHON",
    "REPO",
    "Process",
    "Processes",
    "Served",
    "find_binary",
    "free_port",
    "http_ok",
    "python_env",
    "run_cli",
    "serve",
    "stop_process",
    "wait_until",
]
