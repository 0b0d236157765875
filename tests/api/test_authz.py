"""Authorisation: every route declares a rule, and the role × route matrix holds."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from registry import service
from registry.api import create_app
from registry.api.app import check_routes_declare_rules
from registry.api.deps import ALERTMANAGER, Authz, rule_of
from registry.config import canonicalize
from registry.loop_schemas import RollbackPolicyIn
from registry.schemas import Actor, AlertIn, PolicyRules
from tests.api.conftest import CLI_ADMIN, Registry, make_settings, remote_version_body


def alert(fingerprint: str, version: str = "1", status: str = "firing") -> AlertIn:
    """Return an alert on model mm naming ``version`` and the image encoder."""
    return AlertIn.model_validate({
        "status": status,
        "labels": {"alertname": "Drift", "model": "mm", "version": version,
                   "module": "image_encoder"},
        "startsAt": "2026-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    })


V1 = "/api/v1"
V2_CONFIG_HASH = canonicalize(remote_version_body(2)["config"]).hash
PUBLIC_ALLOWLIST = {"/healthz", "/readyz", "/sign-in", "/static/{name}", "/docs", "/redoc"}
REF = "format=npz-v1&n_samples=3&modules=image_encoder"

# (method, template, concrete path, JSON body or raw bytes) → status for
# (no token, reader, maintainer, admin, other team's maintainer).
MATRIX: list[tuple[str, str, str, Any, tuple[int, int, int, int, int]]] = [
    ("POST", "/api/v1/models", f"{V1}/models", {"name": "fresh"}, (401, 403, 201, 201, 201)),
    ("GET", "/api/v1/models", f"{V1}/models", None, (401, 200, 200, 200, 200)),
    ("GET", "/api/v1/models/{name}", f"{V1}/models/mm", None, (401, 200, 200, 200, 404)),
    ("POST", "/api/v1/models/{name}/versions", f"{V1}/models/mm/versions",
     remote_version_body(3), (401, 403, 201, 201, 404)),
    ("GET", "/api/v1/models/{name}/versions", f"{V1}/models/mm/versions", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/versions/{version}", f"{V1}/models/mm/versions/1", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/diff", f"{V1}/models/mm/diff?from=1&to=2", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/aliases/{alias}", f"{V1}/models/mm/aliases/production", None,
     (401, 200, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}", f"{V1}/models/mm/aliases/staging",
     {"version": 1}, (401, 403, 200, 200, 404)),
    ("POST", "/api/v1/models/{name}/aliases/{alias}/rollback",
     f"{V1}/models/mm/aliases/production/rollback", {}, (401, 403, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/aliases", f"{V1}/models/mm/aliases", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/aliases/{alias}/history",
     f"{V1}/models/mm/aliases/production/history", None, (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/versions/{version}/tags", f"{V1}/models/mm/versions/1/tags",
     None, (401, 200, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/versions/{version}/tags", f"{V1}/models/mm/versions/1/tags",
     {"tags": {"dataset": "coco"}}, (401, 403, 200, 200, 404)),
    ("DELETE", "/api/v1/models/{name}/versions/{version}/tags/{key}",
     f"{V1}/models/mm/versions/1/tags/run", None, (401, 403, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/versions/{version}/stage", f"{V1}/models/mm/versions/1/stage",
     {"stage": "deprecated"}, (401, 403, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/policies", f"{V1}/models/mm/policies", None,
     (401, 200, 200, 200, 404)),
    # Policies are an admin's: another team's maintainer is refused by role before the lookup.
    ("PUT", "/api/v1/models/{name}/policies/{alias}", f"{V1}/models/mm/policies/production",
     {"approvals": 1}, (401, 403, 403, 200, 403)),
    ("DELETE", "/api/v1/models/{name}/policies/{alias}", f"{V1}/models/mm/policies/staging",
     None, (401, 403, 403, 200, 403)),
    ("PUT", "/api/v1/models/{name}/free-aliases", f"{V1}/models/mm/free-aliases",
     {"free_aliases": True}, (401, 403, 403, 200, 403)),
    ("GET", "/api/v1/models/{name}/versions/{version}/approvals",
     f"{V1}/models/mm/versions/1/approvals", None, (401, 200, 200, 200, 404)),
    ("POST", "/api/v1/models/{name}/versions/{version}/approvals",
     f"{V1}/models/mm/versions/2/approvals", {"alias": "staging"}, (401, 403, 201, 201, 404)),
    ("DELETE", "/api/v1/models/{name}/versions/{version}/approvals/{alias}",
     f"{V1}/models/mm/versions/1/approvals/staging", None, (401, 403, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/versions/{version}/reference",
     f"{V1}/models/mm/versions/1/reference?{REF}", b"profile-bytes", (401, 403, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/versions/{version}/reference",
     f"{V1}/models/mm/versions/2/reference", None, (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/versions/{version}/reference/info",
     f"{V1}/models/mm/versions/2/reference/info", None, (401, 200, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/schema", f"{V1}/models/mm/schema",
     {"document": {"type": "object"}}, (401, 403, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/schema", f"{V1}/models/mm/schema", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/schema/versions", f"{V1}/models/mm/schema/versions", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/schema/versions/{version}",
     f"{V1}/models/mm/schema/versions/1", None, (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/schema/diff", f"{V1}/models/mm/schema/diff?from=1&to=1",
     None, (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/audit", f"{V1}/audit", None, (401, 200, 200, 200, 200)),
    ("GET", "/api/v1/audit/verify", f"{V1}/audit/verify", None, (401, 200, 200, 200, 200)),
    # User tokens never open the webhook: it takes the separate alerts token.
    ("POST", "/api/v1/alerts", f"{V1}/alerts",
     {"version": "4", "groupKey": "g", "status": "firing", "receiver": "r", "alerts": []},
     (401, 401, 401, 401, 401)),
    ("GET", "/api/v1/incidents", f"{V1}/incidents", None, (401, 200, 200, 200, 200)),
    ("GET", "/api/v1/incidents/{incident_id}", f"{V1}/incidents/1", None,
     (401, 200, 200, 200, 404)),
    ("POST", "/api/v1/incidents/{incident_id}/acknowledge", f"{V1}/incidents/1/acknowledge", {},
     (401, 403, 200, 200, 404)),
    ("POST", "/api/v1/incidents/{incident_id}/resolve", f"{V1}/incidents/1/resolve",
     {"note": "fixed"}, (401, 403, 200, 200, 404)),
    ("POST", "/api/v1/incidents/{incident_id}/reopen", f"{V1}/incidents/2/reopen", {},
     (401, 403, 200, 200, 404)),
    ("POST", "/api/v1/incidents/{incident_id}/link", f"{V1}/incidents/1/link", {"move": 1},
     (401, 403, 200, 200, 404)),
    # Heartbeats: a plain reader is refused by the service (it needs the deployments scope).
    ("POST", "/api/v1/models/{name}/deployments", f"{V1}/models/mm/deployments",
     {"instance": "pod-1", "version": 2, "config_hash": V2_CONFIG_HASH},
     (401, 403, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/deployments", f"{V1}/models/mm/deployments", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/status", f"{V1}/models/mm/status", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/api/v1/models/{name}/rollback-policies", f"{V1}/models/mm/rollback-policies",
     None, (401, 200, 200, 200, 404)),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}/rollback-policy",
     f"{V1}/models/mm/aliases/production/rollback-policy", {"dry_run": True},
     (401, 403, 200, 200, 404)),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}/rollback-policy",
     f"{V1}/models/mm/aliases/production/rollback-policy", None, (401, 403, 204, 204, 404)),
    ("GET", "/api/v1/models/{name}/auto-rollbacks", f"{V1}/models/mm/auto-rollbacks", None,
     (401, 200, 200, 200, 404)),
    ("GET", "/healthz", "/healthz", None, (200, 200, 200, 200, 200)),
    ("GET", "/readyz", "/readyz", None, (200, 200, 200, 200, 200)),
    ("GET", "/metrics", "/metrics", None, (401, 403, 403, 200, 403)),
]
CALLERS = (None, "reader", "maintainer", "admin", "other")

# The web UI: the same callers signed in with their token (a session cookie; form posts carry
# the session's CSRF token). No session: pages redirect to sign-in (303), posts are 401.
PAGE_MATRIX: list[tuple[str, str, str, dict[str, str] | None, tuple[int, ...]]] = [
    ("GET", "/", "/", None, (303, 200, 200, 200, 200)),
    ("GET", "/sign-in", "/sign-in", None, (200, 200, 200, 200, 200)),
    # Without the sign-in form's CSRF token the token is not even looked at.
    ("POST", "/sign-in", "/sign-in", {"token": "mmgov_x"}, (403, 403, 403, 403, 403)),
    ("POST", "/sign-out", "/sign-out", {}, (401, 303, 303, 303, 303)),
    ("GET", "/models/{name}", "/models/mm", None, (303, 200, 200, 200, 404)),
    ("GET", "/models/{name}/versions/{version}", "/models/mm/versions/2", None,
     (303, 200, 200, 200, 404)),
    ("GET", "/models/{name}/diff", "/models/mm/diff?a=1&b=2", None, (303, 200, 200, 200, 404)),
    ("GET", "/models/{name}/health", "/models/mm/health", None, (303, 200, 200, 200, 404)),
    ("GET", "/audit", "/audit", None, (303, 200, 200, 200, 200)),
    ("GET", "/incidents", "/incidents", None, (303, 200, 200, 200, 200)),
    ("POST", "/models/{name}/promote", "/models/mm/promote", {"version": "1", "alias": "staging"},
     (401, 403, 303, 303, 404)),
    ("POST", "/models/{name}/aliases/{alias}/rollback", "/models/mm/aliases/production/rollback",
     {}, (401, 403, 303, 303, 404)),
    ("POST", "/models/{name}/versions/{version}/approve", "/models/mm/versions/2/approve",
     {"alias": "staging"}, (401, 403, 303, 303, 404)),
    ("POST", "/incidents/{incident_id}/acknowledge", "/incidents/1/acknowledge", {},
     (401, 403, 303, 303, 404)),
    ("POST", "/incidents/{incident_id}/resolve", "/incidents/1/resolve", {"note": "fixed"},
     (401, 403, 303, 303, 404)),
    ("GET", "/static/{name}", "/static/mmgov.css", None, (200, 200, 200, 200, 200)),
    ("GET", "/docs", "/docs", None, (200, 200, 200, 200, 200)),
    ("GET", "/redoc", "/redoc", None, (200, 200, 200, 200, 200)),
]
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


def sign_in(client: TestClient, secret: str) -> str:
    """Sign ``client`` in with ``secret`` through the sign-in form; return its CSRF token."""
    form = client.get("/sign-in")
    found = _CSRF.search(form.text)
    assert found, form.text
    r = client.post("/sign-in", data={"csrf": found.group(1), "token": secret, "next": "/"},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/incidents")
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def _app_operations(app: FastAPI) -> dict[tuple[str, str], APIRoute]:
    ops = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            for method in route.methods:
                ops[(method, context.path)] = route
    return ops


class TestFailClosed:
    def test_every_route_declares_a_rule(self, registry_db: Registry):
        """Walking app.routes: each route has exactly one Authz rule; public ones allowlisted."""
        app = create_app(make_settings(registry_db), db=registry_db.db)
        ops = _app_operations(app)
        assert ops
        for (method, path), route in ops.items():
            rule = rule_of(route)
            assert rule is not None, f"{method} {path} has no Authz rule"
            if rule is Authz.public:
                assert path in PUBLIC_ALLOWLIST, f"{method} {path} is public"

    def test_matrix_covers_every_route(self, registry_db: Registry):
        """The matrix below names every operation of the app, so a new route needs a row."""
        app = create_app(make_settings(registry_db), db=registry_db.db)
        rows = [*MATRIX, *PAGE_MATRIX]
        assert set(_app_operations(app)) == {(m, t) for m, t, *_ in rows}

    def test_route_without_rule_refused(self):
        """An app with a route that declares no rule does not build."""
        app = FastAPI()

        @app.get("/open")
        def _open() -> dict[str, str]:
            return {}

        with pytest.raises(RuntimeError, match="declares no Authz rule"):
            check_routes_declare_rules(app)


@pytest.fixture
def populated(registry_db: Registry) -> Registry:
    """Model mm (team alpha) with versions 1 and 2, production 1 → 2, a reference on v2, a tag
    run=a on v1, incidents 1 (open) and 2 (resolved) on v1, alias staging declared and v1
    approved for it by alpha's maintainer and admin, a config schema (v1) set after the
    versions, and a dry-run rollback policy on production."""
    from registry.weights import inspect_weights

    for epochs in (1, 2):
        body = remote_version_body(epochs)
        service.register_version(
            registry_db.db, CLI_ADMIN, model="mm", team="alpha",
            config=canonicalize(body["config"]),
            weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
        )
    for version in (1, 2):
        service.promote(registry_db.db, CLI_ADMIN, model="mm", version=version, alias="production")
    service.attach_reference(registry_db.db, CLI_ADMIN, model="mm", version=2, fmt="npz-v1",
                             blob=b"ref", n_samples=3, modules=["image_encoder"])
    service.set_tags(registry_db.db, CLI_ADMIN, model="mm", version=1, tags={"run": "a"})
    service.record_alerts(registry_db.db, ALERTMANAGER, [alert("one"), alert("two")])
    service.resolve_incident(registry_db.db, CLI_ADMIN, 2, note="gone")
    service.set_policy(registry_db.db, CLI_ADMIN, model="mm", alias="staging",
                       rules=PolicyRules())
    for role in ("maintainer", "admin"):
        approver = Actor(name=f"alpha/{role}", team="alpha", role=role)
        service.approve(registry_db.db, approver, model="mm", version=1, alias="staging")
    service.set_schema(registry_db.db, CLI_ADMIN, model="mm", schema={"type": "object"})
    service.set_rollback_policy(registry_db.db, CLI_ADMIN, model="mm", alias="production",
                                rules=RollbackPolicyIn(dry_run=True))
    return registry_db


@pytest.mark.parametrize("caller_index", range(len(CALLERS)), ids=[str(c) for c in CALLERS])
@pytest.mark.parametrize("row", MATRIX, ids=[f"{m} {t}" for m, t, *_ in MATRIX])
def test_matrix(populated: Registry, row: tuple, caller_index: int):
    """Each caller gets the expected status on each route (other team's models are 404)."""
    method, _template, path, body, expected = row
    caller = CALLERS[caller_index]
    app = create_app(make_settings(populated), db=populated.db)
    headers = populated.headers(caller)
    kwargs: dict[str, Any] = {"headers": headers}
    if isinstance(body, bytes):
        kwargs["content"] = body
        headers["Content-Type"] = "application/octet-stream"
    elif body is not None:
        kwargs["json"] = body
    with TestClient(app) as client:
        r = client.request(method, path, **kwargs)
    assert r.status_code == expected[caller_index], r.text
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("caller_index", range(len(CALLERS)), ids=[str(c) for c in CALLERS])
@pytest.mark.parametrize("row", PAGE_MATRIX, ids=[f"{m} {t}" for m, t, *_ in PAGE_MATRIX])
def test_page_matrix(populated: Registry, row: tuple, caller_index: int):
    """Each signed-in caller gets the expected status on each page and form (as on the API)."""
    method, _template, path, form, expected = row
    caller = CALLERS[caller_index]
    app = create_app(make_settings(populated), db=populated.db)
    with TestClient(app) as client:
        csrf = sign_in(client, populated.tokens[caller]) if caller else ""
        data = None if form is None else {"csrf": csrf, **form}
        if path == "/sign-in" and method == "POST":
            data = form  # no sign-in CSRF token
        r = client.request(method, path, data=data, follow_redirects=False)
    assert r.status_code == expected[caller_index], r.text[:2000]
    if r.status_code == 303 and caller is None:
        assert r.headers["location"].startswith("/sign-in?next=")
    if r.status_code >= 400 and not path.startswith("/static"):
        assert r.headers["content-type"].startswith("text/html")
