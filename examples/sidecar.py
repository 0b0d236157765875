"""Run the admin API under uvicorn on a background thread, on a free loopback port (torch-free)."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

__all__ = ["ApiThread"]


class ApiThread:
    """A real uvicorn server for ``app`` on ``127.0.0.1:<free port>``, in a daemon thread.

    The socket is bound before the thread starts, so ``url`` is valid at once and a client that
    connects early waits in the listen backlog instead of being refused.
    """

    def __init__(self, app: Any, *, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]},
            name="mmgov-api", daemon=True,
        )

    def start(self, timeout: float = 20.0) -> ApiThread:
        """Start serving and wait until uvicorn reports it has started.

        Returns:
            ``self``.

        Raises:
            RuntimeError: uvicorn did not start within ``timeout`` seconds.
        """
        self._thread.start()
        waited = threading.Event()
        steps = int(timeout / 0.02)
        for _ in range(steps):
            if self._server.started:
                return self
            if not self._thread.is_alive():
                break
            waited.wait(0.02)  # uvicorn exposes a flag, not an event, so poll it (bounded)
        self.stop()
        raise RuntimeError(f"admin API did not start on {self.url} within {timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for the thread, and close the listening socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> ApiThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
