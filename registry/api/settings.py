"""API settings read from `MMGOV_*` environment variables, built by the app factory per app."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.config import ConfigLimits
from registry.db import default_url

MAX_PAGE_SIZE = 500
"""The largest `limit` a listing accepts; larger ones are a 422, not a silent clamp."""


class ApiSettings(BaseSettings):
    """Everything the admin API reads from its environment (prefix ``MMGOV_``)."""

    model_config = SettingsConfigDict(env_prefix="MMGOV_", extra="ignore", frozen=True)

    database_url: str = Field(default_factory=default_url)
    weights_roots: str = ""
    """Local weights directories accepted over HTTP, ``os.pathsep``-separated; none by default."""
    max_body_bytes: int = Field(default=1 << 20, ge=1)
    max_reference_bytes: int = Field(default=64 << 20, ge=1)
    max_config_bytes: int = Field(default=ConfigLimits.max_bytes, ge=1)
    """Largest config (YAML text or canonical JSON) a registration may carry."""
    max_config_depth: int = Field(default=ConfigLimits.max_depth, ge=1, le=256)
    """Deepest nesting of a YAML config (JSON configs: at most 64, see `registry.config`)."""
    max_config_parse_seconds: float = Field(default=ConfigLimits.max_seconds, gt=0)
    """Most CPU time one YAML config may take to parse before it is refused."""
    config_parse_isolated: bool = True
    """Parse YAML configs in a worker process, so a large one does not hold the server's GIL."""
    metrics_token: SecretStr | None = None
    """Bearer token `/metrics` requires; unset, `/metrics` needs a reader token or better."""
    metrics_token_file: Path | None = None
    alerts_token: SecretStr | None = None
    alerts_token_file: Path | None = None
    no_auth: bool = False
    """Every request acts as a local admin; `mmgov serve` allows it on loopback only."""
    token_cache_seconds: float = Field(default=2.0, ge=0)
    """How long an authenticated token is trusted without a query (bounds revocation delay)."""
    session_key: SecretStr | None = None
    """Signs the web UI's session cookies and CSRF tokens (at least 16 characters). Unset: a
    random key per app, so sessions end when the server restarts (`mmgov serve` makes one key
    for all its workers)."""
    session_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    """How long a web UI sign-in lasts."""
    prometheus_url: str | None = None
    """Prometheus' base URL (e.g. ``http://127.0.0.1:9090``): the web UI's drift and health
    charts query its HTTP API; unset, the charts say how to set it."""
    prometheus_timeout: float = Field(default=2.0, gt=0, le=30)
    """Seconds a chart waits for Prometheus before showing the error instead."""
    heartbeat_min_interval: float = Field(default=1.0, ge=0)
    """Seconds: a serving instance's heartbeats closer together than this are refused (429)."""

    def weights_root_paths(self) -> list[Path]:
        """Return the configured weights roots as paths (empty: every local path is refused)."""
        return [Path(p) for p in self.weights_roots.split(os.pathsep) if p.strip()]

    def config_limits(self) -> ConfigLimits:
        """Return the bounds on one config that registrations are held to."""
        return ConfigLimits(
            max_bytes=self.max_config_bytes,
            max_depth=self.max_config_depth,
            max_seconds=self.max_config_parse_seconds,
            isolated=self.config_parse_isolated,
        )

    def metrics_secret(self) -> str | None:
        """Return the scrape token of `/metrics` from the setting or its file, None if unset.

        Raises:
            OSError: if ``metrics_token_file`` is set but cannot be read.
        """
        if self.metrics_token is not None:
            return self.metrics_token.get_secret_value() or None
        if self.metrics_token_file is not None:
            return self.metrics_token_file.read_text(encoding="utf-8").strip() or None
        return None

    def alerts_secret(self) -> str | None:
        """Return the Alertmanager webhook token from the setting or its file, None if unset.

        Raises:
            OSError: if ``alerts_token_file`` is set but cannot be read.
        """
        if self.alerts_token is not None:
            return self.alerts_token.get_secret_value() or None
        if self.alerts_token_file is not None:
            return self.alerts_token_file.read_text(encoding="utf-8").strip() or None
        return None


__all__ = ["MAX_PAGE_SIZE", "ApiSettings"]
