"""Fixtures of the web UI tests: the API's registry (teams, a token per role) and a client."""

from __future__ import annotations

from tests.api.conftest import registry_db  # noqa: F401 — the same registry as the API tests
