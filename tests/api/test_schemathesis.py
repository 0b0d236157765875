"""Property tests from the app's own OpenAPI with every schemathesis check, on both databases.

No 5xx, schema-conformant bodies, headers and status codes, schema-valid requests accepted and
schema-violating ones refused. A few operations judge schema-valid input by rules the schema
cannot state (they are listed in `SEMANTIC_422` with the reason); for those alone a 422 is not
counted against `positive_data_acceptance`. Every other check still runs on them.
"""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from registry import service
from registry.api import ApiSettings, create_app
from registry.config import canonicalize
from registry.db import open_database, upgrade
from registry.weights import inspect_weights
from tests.api.conftest import ALERTS_TOKEN, CLI_ADMIN, remote_version_body
from tests.conftest import PG_URL_TEMPLATE, _create_pg_database, _drop_pg_database

SEMANTIC_422 = {
    # The config is checked against the model's JSON Schema, which is data, and the weights URI
    # against the server's roots: neither can be written into the OpenAPI schema.
    ("POST", "/api/v1/models/{name}/versions"),
    # The document must itself be a valid JSON Schema (checked against its metaschema).
    ("PUT", "/api/v1/models/{name}/schema"),
    # `at` must not lie in the future: a bound relative to the clock.
    ("GET", "/api/v1/models/{name}/aliases/{alias}/history"),
    # One tag key given twice with two values: a rule across array items.
    ("GET", "/api/v1/models/{name}/versions"),
    # A soak duration must lie between 1 second and 365 days, however it is written.
    ("PUT", "/api/v1/models/{name}/policies/{alias}"),
    # The upload is parsed (npz members against the modules and sample count).
    ("PUT", "/api/v1/models/{name}/versions/{version}/reference"),
}


def _seeded_app(url: str) -> FastAPI:
    """The app over a database with team alpha, model mm (versions 1-2, production at 1)."""
    db = open_database(url)
    service.create_team(db, CLI_ADMIN, "alpha")
    _, secret = service.create_token(db, CLI_ADMIN, team="alpha", role="admin", name="st")
    for epochs in (1, 2):
        body = remote_version_body(epochs)
        service.register_version(
            db, CLI_ADMIN, model="mm", team="alpha", config=canonicalize(body["config"]),
            weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
        )
    service.promote(db, CLI_ADMIN, model="mm", version=1, alias="production")
    app = create_app(
        ApiSettings(database_url=url, alerts_token=ALERTS_TOKEN, token_cache_seconds=60), db=db
    )
    app.state.st_admin_secret = secret
    atexit.register(db.dispose)
    return app


def _postgresql_url() -> str:
    name = _create_pg_database()
    atexit.register(_drop_pg_database, name)  # after the engine is disposed (LIFO)
    url = PG_URL_TEMPLATE.format(dbname=name)
    upgrade(url)
    return url


# Each operation's examples share one database per kind; schemathesis builds the cases at import.
SQLITE = schemathesis.openapi.from_asgi(
    "/openapi.json",
    _seeded_app(f"sqlite:///{Path(tempfile.mkdtemp(prefix='mmgov-st-')) / 'st.db'}"),
)
POSTGRESQL = schemathesis.openapi.from_asgi("/openapi.json", _seeded_app(_postgresql_url()))
CHECKED = settings(max_examples=20, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def _call(case: schemathesis.Case) -> None:
    app = case.operation.app
    token = ALERTS_TOKEN if case.path == "/api/v1/alerts" else app.state.st_admin_secret
    excluded = [positive_data_acceptance] if (case.method, case.path) in SEMANTIC_422 else []
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                           excluded_checks=excluded)


@pytest.mark.slow
@SQLITE.parametrize()
@CHECKED
def test_api_conforms_sqlite(case: schemathesis.Case) -> None:
    """On SQLite, generated requests with an admin token pass every check."""
    _call(case)


@pytest.mark.slow
@POSTGRESQL.parametrize()
@CHECKED
def test_api_conforms_postgresql(case: schemathesis.Case) -> None:
    """On PostgreSQL, generated requests with an admin token pass every check."""
    _call(case)
