"""The admin HTTP API: a FastAPI app factory over `registry.service`."""

from __future__ import annotations

from registry.api.app import create_app
from registry.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
