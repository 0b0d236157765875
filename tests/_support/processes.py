"""Child processes of tests: binaries, process groups with logs, running the CLI to completion."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from registry.serve_process import CLI, stop_process

REPO = Path(__file__).resolve().parents[2]
LOG_TAIL_CHARS = 6000


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
        stop_process(self.popen, timeout)


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

    def exited(self) -> str | None:
        """Name the processes that have exited, or return None while all run (`wait_until`'s
        ``give_up``)."""
        dead = [p for p in self.started if not p.alive()]
        if not dead:
            return None
        return "exited early: " + ", ".join(f"{p.name} (exit {p.popen.returncode})" for p in dead)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `mmgov ARGS` to completion (at most 60 s) and return the result."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, check=False)


def python_env(**extra: str) -> dict[str, str]:
    """The environment for our own Python subprocesses: unbuffered, single-process metrics."""
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
    return env


PYTHON = sys.executable
