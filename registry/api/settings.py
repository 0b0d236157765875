"""API settings read from `MMGOV_*` environment variables, built by the app factory per app."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    alerts_token: SecretStr | None = None
    alerts_token_file: Path | None = None
    no_auth: bool = False
    """Every request acts as a local admin; `mmgov serve` allows it on loopback only."""
    token_cache_seconds: float = Field(default=2.0, ge=0)
    """How long an authenticated token is trusted without a query (bounds revocation delay)."""
    heartbeat_min_interval: float = Field(default=1.0, ge=0)
    """Seconds: a serving instance's heartbeats closer together than this are refused (429)."""

    def weights_root_paths(self) -> list[Path]:
        """Return the configured weights roots as paths (empty: every local path is refused)."""
        return [Path(p) for p in self.weights_roots.split(os.pathsep) if p.strip()]

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
