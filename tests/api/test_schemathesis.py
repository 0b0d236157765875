"""Property tests from the app's own OpenAPI: no 5xx, responses conform to the schema.

Runs on SQLite only: each operation's examples share one database, and on PostgreSQL the same
run takes several times longer without exercising different API code.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from registry import service
from registry.api import ApiSettings, create_app
from registry.config import canonicalize
from registry.db import open_database
from registry.weights import inspect_weights
from tests.api.conftest import ALERTS_TOKEN, CLI_ADMIN, remote_version_body

_DIR = Path(tempfile.mkdtemp(prefix="mmgov-st-"))
_DB = open_database(f"sqlite:///{_DIR / 'st.db'}")
service.create_team(_DB, CLI_ADMIN, "alpha")
_, ADMIN_SECRET = service.create_token(_DB, CLI_ADMIN, team="alpha", role="admin", name="st")
for _epochs in (1, 2):
    _body = remote_version_body(_epochs)
    service.register_version(
        _DB, CLI_ADMIN, model="mm", team="alpha", config=canonicalize(_body["config"]),
        weights=inspect_weights(_body["weights_uri"], sha256=_body["weights_sha256"]),
    )
service.promote(_DB, CLI_ADMIN, model="mm", version=1, alias="production")

APP = create_app(
    ApiSettings(database_url=_DB.url, alerts_token=ALERTS_TOKEN, token_cache_seconds=60),
    db=_DB,
)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_conforms(case: schemathesis.Case) -> None:
    """Generated requests with an admin token never get a 5xx and get schema-conformant bodies."""
    token = ALERTS_TOKEN if case.path == "/api/v1/alerts" else ADMIN_SECRET
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
