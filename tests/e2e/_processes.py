"""Helpers of the end-to-end tests: free ports, binaries, process groups with logs, polling."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 6000


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(*names: str) -> str | None:
    """Return the path of the first of ``names`` found on PATH or in /usr/bin, else None."""
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/bin")
        if found:
            return found
    return None


@dataclass
class Process:
    """One started process, its log file, and how to stop it."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        """Return whether the process is still running."""
        return self.popen.poll() is None

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """Return the end of the process's combined stdout and stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"<no log: {exc}>"
        return text[-chars:]

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (its whole group), killing it when it does not exit in time."""
        if not self.alive():
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            self.popen.wait(timeout)


@dataclass
class Processes:
    """The processes of one test, started in their own process groups under ``root``."""

    root: Path
    started: list[Process] = field(default_factory=list)

    def start(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        """Start ``argv`` with its output in ``<root>/<name>.log``.

        Returns:
            The running process.
        """
        log_path = self.root / f"{name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd or self.root,
                env=dict(env) if env is not None else None,
                start_new_session=True,  # its own group: teardown kills its children too
            )
        proc = Process(name, popen, log_path)
        self.started.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop every process, newest first."""
        for proc in reversed(self.started):
            proc.stop()

    def logs(self) -> str:
        """Return the log tails of every process, each under a header."""
        parts = []
        for proc in self.started:
            state = "running" if proc.alive() else f"exited {proc.popen.returncode}"
            parts.append(f"===== {proc.name} ({state}) {proc.log_path} =====\n{proc.log_tail()}")
        return "\n".join(parts)

    def check_alive(self) -> None:
        """Raise AssertionError naming any process that has exited."""
        dead = [p for p in self.started if not p.alive()]
        if dead:
            names = ", ".join(f"{p.name} (exit {p.popen.returncode})" for p in dead)
            raise AssertionError(f"process(es) exited early: {names}")


def wait_until(
    what: str, check: Callable[[], Any], *, timeout: float, interval: float = 0.25,
    processes: Processes | None = None,
) -> Any:
    """Poll ``check`` until it returns a truthy value, at most ``timeout`` seconds.

    Exceptions from ``check`` count as "not yet" (the last one is reported on timeout).

    Returns:
        The first truthy value.

    Raises:
        AssertionError: on timeout, or as soon as one of ``processes`` has exited.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        if processes is not None:
            processes.check_alive()
        try:
            value = check()
        except Exception as exc:  # the service is not up yet, or answered badly: retry
            last, value = exc, None
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {type(last).__name__}: {last})" if last else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def http_ok(url: str, headers: Mapping[str, str] | None = None) -> bool:
    """Return whether GET ``url`` answers 200."""
    return httpx.get(url, headers=dict(headers or {}), timeout=2.0).status_code == 200


def python_env(**extra: str) -> dict[str, str]:
    """The environment for our own Python subprocesses: unbuffered, single-process metrics."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


PYTHON = sys.executable
