"""Instrumentation of multimodal PyTorch models: Prometheus metrics, structlog events, drift."""

from __future__ import annotations

from instrumentation.exposition import metrics_asgi_app, scrape_registry, start_metrics_server
from instrumentation.hooks import Instrumentation, instrument
from instrumentation.logs import bind_request_context, clear_request_context, configure_logging
from instrumentation.metrics import LATENCY_BUCKETS, DriftObserver

__all__ = [
    "LATENCY_BUCKETS",
    "DriftObserver",
    "Instrumentation",
    "bind_request_context",
    "clear_request_context",
    "configure_logging",
    "instrument",
    "metrics_asgi_app",
    "scrape_registry",
    "start_metrics_server",
]
