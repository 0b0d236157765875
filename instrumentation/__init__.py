"""Instrumentation of multimodal PyTorch models: Prometheus metrics, structlog events, drift."""

from __future__ import annotations

from instrumentation.drift import (
    DETECTORS,
    MIN_REFERENCE,
    Detector,
    DetectorResult,
    DriftMonitor,
    DriftSnapshot,
    KSDetector,
    MeanShiftDetector,
    MMDRFFDetector,
    ReferenceProfile,
    ReferenceTooSmallWarning,
    SequentialDetector,
    build_monitors,
    capture_reference,
    create_detector,
    minimum_reference,
    register_detector,
)
from instrumentation.exposition import metrics_asgi_app, scrape_registry, start_metrics_server
from instrumentation.hooks import Instrumentation, instrument
from instrumentation.logs import bind_request_context, clear_request_context, configure_logging
from instrumentation.metrics import LATENCY_BUCKETS, DriftObserver

__all__ = [
    "DETECTORS",
    "LATENCY_BUCKETS",
    "MIN_REFERENCE",
    "Detector",
    "DetectorResult",
    "DriftMonitor",
    "DriftObserver",
    "DriftSnapshot",
    "Instrumentation",
    "KSDetector",
    "MMDRFFDetector",
    "MeanShiftDetector",
    "ReferenceProfile",
    "ReferenceTooSmallWarning",
    "SequentialDetector",
    "bind_request_context",
    "build_monitors",
    "capture_reference",
    "clear_request_context",
    "configure_logging",
    "create_detector",
    "instrument",
    "metrics_asgi_app",
    "minimum_reference",
    "register_detector",
    "scrape_registry",
    "start_metrics_server",
]
