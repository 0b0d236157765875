"""The API's own Prometheus metrics, plus registry gauges read from the database at scrape time.

Metrics are created against an injected `CollectorRegistry` (one per app). Under several
workers `PROMETHEUS_MULTIPROC_DIR` is set before any worker starts, and `/metrics` merges every
worker's files with `MultiProcessCollector` instead of reading this process's registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry import service
from registry.db import Database
from registry.schemas import Actor

_SCRAPER = Actor(name="metrics", team=None, role="admin")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ApiMetrics:
    """The request counter and latency histogram of one app."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "mmgov_api_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "mmgov_api_request_duration_seconds",
            "HTTP request latency by route template and method.",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.alerts_rejected = Counter(
            "mmgov_api_alerts_rejected",
            "Alertmanager alerts refused one by one (bad timestamp, label, text).",
            registry=registry,
        )


class RegistryCollector(Collector):
    """Versions per model, the version each alias serves, and mismatching serving instances
    (live ones, per module: ``config`` for the config), queried at scrape time."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Yield the registry gauges (nothing when the database cannot be read)."""
        versions = GaugeMetricFamily(
            "mmgov_registry_versions", "Registered versions per model.", labels=["model"]
        )
        aliases = GaugeMetricFamily(
            "mmgov_registry_alias_version",
            "The version each alias of a model points at.",
            labels=["model", "alias"],
        )
        mismatch = GaugeMetricFamily(
            "mmgov_registry_deployment_mismatch",
            "Live serving instances whose loaded module (or config) differs from the registry.",
            labels=["model", "version", "module"],
        )
        try:
            cursor: str | None = None
            while True:
                page = service.list_models(self.db, _SCRAPER, limit=1000, cursor=cursor)
                for model in page.items:
                    versions.add_metric([model.name], float(model.latest_version or 0))
                    alias_cursor: str | None = None
                    while True:
                        listed = service.list_aliases(
                            self.db, _SCRAPER, model.name, limit=1000, cursor=alias_cursor
                        )
                        for alias in listed.items:
                            aliases.add_metric([model.name, alias.alias], float(alias.version))
                        if listed.next_cursor is None:
                            break
                        alias_cursor = listed.next_cursor
                    counts: dict[tuple[str, str], int] = {}
                    for d in service.list_deployments(self.db, _SCRAPER, model.name):
                        for module in [] if d.stale else d.mismatched:
                            key = (str(d.version), module)
                            counts[key] = counts.get(key, 0) + 1
                    for (version, module), n in sorted(counts.items()):
                        mismatch.add_metric([model.name, version, module], float(n))
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
        except Exception:  # a scrape must not fail because the database is down; readyz says so
            return
        yield versions
        yield aliases
        yield mismatch


def render(metrics: ApiMetrics, collector: RegistryCollector) -> tuple[bytes, str]:
    """Return the exposition body and content type for ``/metrics``.

    ``collector`` is already registered on ``metrics.registry`` in single-process mode.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        registry.register(collector)
    else:
        registry = metrics.registry
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Pure ASGI middleware counting requests by route template (bounded labels)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics, templates: dict[int, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            # FastAPI puts the route object in the scope; its full template includes prefixes.
            template = self.templates.get(id(route), "<unmatched>") if route else "<unmatched>"
            method = scope["method"] if template != "<unmatched>" else "other"
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - start)


__all__ = ["ApiMetrics", "MetricsMiddleware", "RegistryCollector", "render"]
