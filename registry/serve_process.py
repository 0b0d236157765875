"""Run `mmgov serve` as a child process on a free loopback port, for integration tests.

For tests and benchmarks of code that talks to a real sidecar (mmgov's own, and users' own)::

    from registry.client import RegistryClient
    from registry.serve_process import serve

    with serve("sqlite:///mmgov.db", "--no-auth") as (url, process):
        RegistryClient(url, token=None).resolve("mm", "production")  # no token: --no-auth

`serve` starts the server in its own process group, waits until ``/readyz`` answers 200 (failing
fast, with the exit code, if the server exits first) and stops the group when the block ends.
`free_port`, `wait_until` and `stop_process` are the pieces it is made of, for other children
(Prometheus, a model server) that a test starts next to it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, TypeVar

import httpx

__all__ = ["READY_TIMEOUT", "Served", "free_port", "http_ok", "serve", "stop_process",
           "wait_until"]

CLI = (sys.executable, "-c", "from registry.cli import main; main()")
"""`mmgov` with the running interpreter (no console script needed on PATH)."""
READY_TIMEOUT = 60.0
"""Seconds `serve` waits for ``/readyz`` (migrating checks and worker start-up included)."""

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free on ``host`` a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(
    what: str, check: Callable[[], T], *, timeout: float, interval: float = 0.1,
    give_up: Callable[[], str | None] | None = None,
) -> T:
    """Poll ``check`` until it returns a truthy value, for at most ``timeout`` seconds.

    An exception from ``check`` counts as "not yet"; the last one is named on timeout. ``give_up``
    is asked before every try and ends the wait at once when it returns a reason (a process
    that exited, say).

    Returns:
        The first truthy value of ``check``.

    Raises:
        TimeoutError: ``check`` never returned a truthy value in time (names ``what`` and the
            last error).
        RuntimeError: ``give_up`` returned a reason (names ``what`` and the reason).
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        reason = give_up() if give_up is not None else None
        if reason:
            raise RuntimeError(f"gave up waiting for {what}: {reason}")
        try:
            value = check()
        except Exception as exc:  # not up yet, or it answered badly: try again
            last = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}{detail}")
        time.sleep(interval)


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """Return whether GET ``url`` answers 200 (within 2 s)."""
    return httpx.get(url, headers=dict(headers or {}), timeout=2.0).status_code == 200


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Stop ``process`` and its process group: SIGTERM, then SIGKILL after ``timeout`` seconds.

    For children started with ``start_new_session=True`` (so their own children go too).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


class Served(NamedTuple):
    """A running `mmgov serve`: its base URL and its process."""

    url: str
    process: subprocess.Popen[bytes]


@contextmanager
def serve(
    db_url: str, *extra: str, workers: int = 1, env: Mapping[str, str] | None = None,
    log: Path | None = None, timeout: float = READY_TIMEOUT,
) -> Iterator[Served]:
    """Run `mmgov serve` on a free loopback port until the block ends.

    ``extra`` are more `mmgov serve` options; ``env`` is added to this process's environment;
    the server's output goes to ``log`` (else nowhere).

    Yields:
        The server, once ``/readyz`` answers 200.

    Raises:
        RuntimeError: the server exited before it was ready.
        TimeoutError: it was not ready within ``timeout`` seconds.
    """
    port = free_port()
    with open(log or os.devnull, "wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own CLI, arguments from the caller
            [*CLI, "serve", "--db", db_url, "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers), "--log-level", "warning", *extra],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", process)
    try:
        wait_until(
            f"mmgov serve to answer {served.url}/readyz", lambda: http_ok(f"{served.url}/readyz"),
            timeout=timeout,
            give_up=lambda: None if process.poll() is None else f"exited {process.returncode}",
        )
        yield served
    finally:
        stop_process(process)
