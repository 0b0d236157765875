"""Serving the metrics: a standalone HTTP server, an ASGI app, and multiprocess-aware registries."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, make_asgi_app, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

__all__ = ["metrics_asgi_app", "scrape_registry", "start_metrics_server"]


def scrape_registry(registry: CollectorRegistry | None = None) -> CollectorRegistry:
    """Return the registry to expose: `registry` if given, else the process's default one.

    With `PROMETHEUS_MULTIPROC_DIR` set (several serving workers), the default is a fresh registry
    whose `MultiProcessCollector` sums every worker's metric files.
    """
    if registry is not None:
        return registry
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=multiproc_dir)  # type: ignore[no-untyped-call]
        return merged
    return REGISTRY


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry | None = None
) -> WSGIServer:
    """Serve `/metrics` over HTTP on a daemon thread; `port=0` picks a free port.

    Returns:
        The running server: `server.server_port` is the bound port, `server.shutdown()` stops it.

    Raises:
        OSError: the address cannot be bound.
        ValueError: `port` is outside 0..65535.
    """
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int in 0..65535, got {port!r}")
    server, _thread = start_http_server(port, addr=addr, registry=scrape_registry(registry))
    return server


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """Return an ASGI app serving the metrics, to mount e.g. at `/metrics` in FastAPI."""
    app: Callable[..., Any] = make_asgi_app(registry=scrape_registry(registry))
    return app
