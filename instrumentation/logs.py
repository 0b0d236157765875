"""structlog configuration (JSON, once) and request context carried into every event."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import structlog

__all__ = [
    "bind_request_context",
    "clear_request_context",
    "configure_logging",
    "get_logger",
    "request_context_fields",
]

LOGGER_NAME = "mmgov.instrumentation"

_configured: tuple[bool, str] | None = None
_configure_lock = threading.Lock()


def configure_logging(*, json: bool = True, level: str = "INFO") -> None:
    """Configure structlog for one JSON object per line on stderr, once.

    Calling again with the same arguments changes nothing; other arguments reconfigure.

    Raises:
        ValueError: `level` is not a logging level name.
    """
    global _configured
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(
            f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    with _configure_lock:
        if _configured == (json, level.upper()):
            return
        renderer: structlog.typing.Processor = (
            structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
        )
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                renderer,
            ],
            wrapper_class=structlog.make_filtering_bound_logger(numeric),
            logger_factory=structlog.PrintLoggerFactory(sys.stderr),
            # Not cached: structlog.testing.capture_logs must still see our events after first use,
            # and nothing logs per call on the hot path, so caching would buy nothing.
            cache_logger_on_first_use=False,
        )
        _configured = (json, level.upper())


def bind_request_context(**kv: Any) -> None:
    """Bind key-values (e.g. request_id) to the current context; every later event carries them."""
    structlog.contextvars.bind_contextvars(**kv)


def clear_request_context() -> None:
    """Forget everything bound with `bind_request_context` in the current context."""
    structlog.contextvars.clear_contextvars()


def request_context_fields() -> dict[str, Any]:
    """Return the bound request context, to put into events explicitly.

    Events merge it themselves so that it is present even when a caller's structlog
    configuration (or `structlog.testing.capture_logs`) has no `merge_contextvars` processor.
    """
    return structlog.contextvars.get_contextvars()


def get_logger() -> Any:
    """Return the instrumentation's structlog logger (resolved lazily at each call)."""
    return structlog.get_logger(LOGGER_NAME)
