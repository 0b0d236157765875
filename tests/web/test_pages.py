"""The web UI in process: sessions, CSRF, what readers see, refusals, paging, offline pages."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from registry import service
from registry.api import create_app
from registry.config import canonicalize
from registry.errors import InvalidInput
from registry.loop_schemas import HeartbeatIn
from registry.schemas import PolicyRules
from registry.weights import inspect_weights
from tests.api.conftest import CLI_ADMIN, Registry, make_settings, remote_version_body

_CSRF = re.compile(r'name="csrf" value="([^"]*)"')
PAGES = ["/", "/models/mm", "/models/mm/versions/1", "/models/mm/diff?a=1&b=2",
         "/models/mm/health", "/audit", "/incidents"]


def register(reg: Registry, *epochs: int) -> None:
    """Register versions of model mm (team alpha) with these epochs."""
    for e in epochs:
        body = remote_version_body(e)
        service.register_version(
            reg.db, CLI_ADMIN, model="mm", team="alpha", config=canonicalize(body["config"]),
            weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
        )


def sign_in(client: TestClient, secret: str) -> str:
    """Sign in through the form; return the session's CSRF token."""
    token = _CSRF.search(client.get("/sign-in").text)
    assert token
    r = client.post("/sign-in", data={"csrf": token.group(1), "token": secret},
                    follow_redirects=False)
    assert r.status_code == 303, r.text
    found = _CSRF.search(client.get("/incidents").text)
    assert found
    return found.group(1)


@pytest.fixture
def mm(registry_db: Registry) -> Registry:
    """Model mm with versions 1 and 2, production at 1."""
    register(registry_db, 1, 2)
    service.promote(registry_db.db, CLI_ADMIN, model="mm", version=1, alias="production")
    return registry_db


@pytest.fixture
def client(mm: Registry) -> Iterator[TestClient]:
    """A client of an app over ``mm`` (no Prometheus)."""
    with TestClient(create_app(make_settings(mm, session_seconds=600), db=mm.db)) as c:
        yield c


class TestSignIn:
    def test_cookie_attributes(self, client: TestClient, mm: Registry):
        """The session cookie is HttpOnly, SameSite=Strict, expiring, and not the token."""
        token = _CSRF.search(client.get("/sign-in").text)
        assert token
        r = client.post("/sign-in", data={"csrf": token.group(1), "token": mm.tokens["reader"]},
                        follow_redirects=False)
        cookie = next(h for h in r.headers.get_list("set-cookie") if "mmgov_session=" in h)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Max-Age=600" in cookie
        assert mm.tokens["reader"] not in cookie

    def test_bad_token(self, client: TestClient):
        """An unknown token is a 401 page that says what to do, and no session."""
        token = _CSRF.search(client.get("/sign-in").text)
        assert token
        r = client.post("/sign-in", data={"csrf": token.group(1), "token": "mmgov_nope"})
        assert r.status_code == 401
        assert "unknown or revoked" in r.text
        assert "mmgov_session" not in client.cookies

    def test_next_stays_local(self, client: TestClient, mm: Registry):
        """After sign-in the redirect goes to a local path, never another site."""
        token = _CSRF.search(client.get("/sign-in").text)
        assert token
        r = client.post("/sign-in", data={"csrf": token.group(1), "token": mm.tokens["reader"],
                                          "next": "//evil.example/x"}, follow_redirects=False)
        assert r.headers["location"] == "/"

    def test_revoked_token_ends_session(self, client: TestClient, mm: Registry):
        """Revoking the token sends the next page request back to sign-in."""
        sign_in(client, mm.tokens["maintainer"])
        assert client.get("/models/mm").status_code == 200
        tokens = service.list_tokens(mm.db, CLI_ADMIN).items
        token = next(t for t in tokens if t.name == "maintainer")
        service.revoke_token(mm.db, CLI_ADMIN, token.id)
        r = client.get("/models/mm", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/sign-in?next=%2Fmodels%2Fmm"

    def test_forged_cookie(self, client: TestClient):
        """A cookie that was not signed by the server is no session."""
        client.cookies.set("mmgov_session", "eyJ0IjoiYSJ9.AAAA")
        assert client.get("/", follow_redirects=False).status_code == 303

    def test_sign_out(self, client: TestClient, mm: Registry):
        """Signing out clears the session."""
        csrf = sign_in(client, mm.tokens["reader"])
        client.post("/sign-out", data={"csrf": csrf})
        assert client.get("/", follow_redirects=False).status_code == 303


class TestWriteControls:
    @pytest.mark.parametrize("page", ["/models/mm", "/incidents", "/models/mm/versions/1"])
    def test_reader_sees_none(self, client: TestClient, mm: Registry, page: str):
        """A reader's pages carry no form that changes anything (only sign-out)."""
        service.set_policy(mm.db, CLI_ADMIN, model="mm", alias="staging", rules=PolicyRules())
        _record_incident(mm)
        sign_in(client, mm.tokens["reader"])
        html = client.get(page).text
        actions = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', html)
        assert actions == ["/sign-out"]

    @pytest.mark.parametrize(("page", "action"), [
        ("/models/mm", "/models/mm/promote"),
        ("/models/mm", "/models/mm/aliases/production/rollback"),
        ("/incidents", "/incidents/1/resolve"),
        ("/models/mm/versions/1", "/models/mm/versions/1/approve"),
    ])
    def test_maintainer_sees_them(self, client: TestClient, mm: Registry, page: str, action: str):
        """A maintainer gets the forms."""
        service.set_policy(mm.db, CLI_ADMIN, model="mm", alias="staging", rules=PolicyRules())
        _record_incident(mm)
        sign_in(client, mm.tokens["maintainer"])
        assert f'action="{action}"' in client.get(page).text

    def test_missing_csrf_refused(self, client: TestClient, mm: Registry):
        """A maintainer's post without the CSRF token is a 403 and changes nothing."""
        sign_in(client, mm.tokens["maintainer"])
        r = client.post("/models/mm/promote", data={"version": "2", "alias": "production"})
        assert r.status_code == 403
        assert "CSRF" in r.text
        assert service.resolve_alias(mm.db, CLI_ADMIN, "mm", "production").version.version == 1


def _record_incident(reg: Registry) -> None:
    from registry.api.deps import ALERTMANAGER
    from registry.schemas import AlertIn

    service.record_alerts(reg.db, ALERTMANAGER, [AlertIn.model_validate({
        "status": "firing", "startsAt": "2026-01-01T00:00:00Z", "fingerprint": "f1",
        "labels": {"alertname": "Drift", "model": "mm", "version": "1", "module": "image_encoder"},
    })])


class TestPromote:
    def test_refusal_lists_every_rule(self, client: TestClient, mm: Registry):
        """A policy refusal names each unmet rule, and the alias does not move."""
        service.set_policy(mm.db, CLI_ADMIN, model="mm", alias="production", rules=PolicyRules(
            require_reference=True, no_open_incident=True, approvals=1))
        _record_incident(mm)
        service.promote(mm.db, CLI_ADMIN, model="mm", version=1, alias="production")
        csrf = sign_in(client, mm.tokens["maintainer"])
        _record_incident_on(mm, 2)
        r = client.post("/models/mm/promote", data={"csrf": csrf, "version": "2",
                                                    "alias": "production", "expected": "1"})
        assert r.status_code == 409
        for rule in ("require_reference", "no_open_incident", "approvals"):
            assert rule in r.text
        assert service.resolve_alias(mm.db, CLI_ADMIN, "mm", "production").version.version == 1

    def test_stale_expected_version(self, client: TestClient, mm: Registry):
        """A promotion that expected another current version is refused (409)."""
        csrf = sign_in(client, mm.tokens["maintainer"])
        r = client.post("/models/mm/promote", data={"csrf": csrf, "version": "2",
                                                    "alias": "production", "expected": "2"})
        assert r.status_code == 409
        assert service.resolve_alias(mm.db, CLI_ADMIN, "mm", "production").version.version == 1

    def test_promote_then_roll_back(self, client: TestClient, mm: Registry):
        """Promote moves the alias (audited); roll back moves it back."""
        csrf = sign_in(client, mm.tokens["maintainer"])
        r = client.post("/models/mm/promote", data={"csrf": csrf, "version": "2",
                                                    "alias": "production", "expected": "1",
                                                    "reason": "better"})
        assert r.status_code == 200  # followed to the model page
        assert "production now serves v2" in r.text
        assert service.resolve_alias(mm.db, CLI_ADMIN, "mm", "production").version.version == 2
        r = client.post("/models/mm/aliases/production/rollback",
                        data={"csrf": csrf, "expected": "2"})
        assert "rolled back to v1" in r.text
        actions = [e.action for e in service.list_audit(mm.db, CLI_ADMIN, limit=2).items]
        assert actions == ["alias.rollback", "alias.promote"]


def _record_incident_on(reg: Registry, version: int) -> None:
    from registry.api.deps import ALERTMANAGER
    from registry.schemas import AlertIn

    service.record_alerts(reg.db, ALERTMANAGER, [AlertIn.model_validate({
        "status": "firing", "startsAt": "2026-01-01T00:00:00Z", "fingerprint": f"v{version}",
        "labels": {"alertname": "Drift", "model": "mm", "version": str(version)},
    })])


class TestPages:
    def test_versions_keyset_pages(self, registry_db: Registry):
        """60 versions: 50 on the first page, a link to the next with the cursor, 10 there."""
        register(registry_db, *range(1, 61))
        app = create_app(make_settings(registry_db), db=registry_db.db)
        with TestClient(app) as client:
            sign_in(client, registry_db.tokens["reader"])
            first = client.get("/models/mm").text
            rows = re.findall(r'<a href="/models/mm/versions/(\d+)">v\d+</a>', first)
            assert rows[:2] == ["60", "59"]
            assert len(rows) == 50
            assert 'href="/models/mm?cursor=11" rel="next"' in first
            second = client.get("/models/mm?cursor=11").text
            rows = re.findall(r'<a href="/models/mm/versions/(\d+)">v\d+</a>', second)
            assert rows == [str(n) for n in range(10, 0, -1)]
            assert 'rel="next"' not in second

    @pytest.mark.parametrize("page", PAGES)
    def test_offline_and_locked_down(self, client: TestClient, mm: Registry, page: str):
        """Every page loads only local assets and carries a strict CSP."""
        sign_in(client, mm.tokens["reader"])
        r = client.get(page)
        assert r.status_code == 200
        assert not re.search(r'(src|href)="(https?:)?//', r.text)
        assert "default-src 'self'" in r.headers["content-security-policy"]

    def test_other_team_is_not_found(self, client: TestClient, mm: Registry):
        """Another team's maintainer gets 404 for mm's pages and sees no mm in the list."""
        sign_in(client, mm.tokens["other"])
        assert client.get("/models/mm").status_code == 404
        assert "/models/mm" not in client.get("/").text

    def test_health_without_prometheus(self, client: TestClient, mm: Registry):
        """Without MMGOV_PROMETHEUS_URL the health page says how to set it."""
        sign_in(client, mm.tokens["reader"])
        assert "MMGOV_PROMETHEUS_URL" in client.get("/models/mm/health").text

    def test_health_prometheus_down(self, mm: Registry):
        """An unreachable Prometheus is an error on each chart, not a failed page."""
        settings = make_settings(mm, prometheus_url="http://127.0.0.1:9", prometheus_timeout=0.5)
        with TestClient(create_app(settings, db=mm.db)) as client:
            sign_in(client, mm.tokens["reader"])
            r = client.get("/models/mm/health")
        assert r.status_code == 200
        assert r.text.count("did not answer") == 3

    def test_diff(self, client: TestClient, mm: Registry):
        """The diff page lists the changed config path with both values."""
        sign_in(client, mm.tokens["reader"])
        text = client.get("/models/mm/diff?a=1&b=2").text
        assert re.search(r'<tr class="changed"><td><code>training\.epochs</code>', text)

    def test_version_lists_its_serving_instances(self, client: TestClient, mm: Registry):
        """A version page names the instances whose heartbeat reports it, and what they load."""
        sign_in(client, mm.tokens["reader"])
        assert "No serving instance reports this version" in client.get(
            "/models/mm/versions/1").text
        v1 = service.get_version(mm.db, CLI_ADMIN, "mm", 1)
        for instance, config_hash in (("pod-a", v1.config_hash), ("pod-b", "e" * 64)):
            service.record_heartbeat(mm.db, CLI_ADMIN, model="mm", heartbeat=HeartbeatIn(
                instance=instance, version=1, alias="production", config_hash=config_hash,
            ), min_interval=0)
        text = client.get("/models/mm/versions/1").text
        assert re.search(r"<td>pod-a</td>\s*<td>production</td>\s*<td>matches", text)
        assert re.search(r"<td>pod-b</td>\s*<td>production</td>\s*<td><strong>differs: config",
                         text)
        assert "pod-a" not in client.get("/models/mm/versions/2").text

    def test_audit_action_filter_reads_the_whole_trail(self, client: TestClient, mm: Registry):
        """The action filter runs in the service, so its pages hold only matching events."""
        seen, cursor = [], None
        while True:
            page = service.list_audit(mm.db, CLI_ADMIN, action="alias.", limit=1, cursor=cursor)
            seen += [e.action for e in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == ["alias.promote"]  # the fixture's one promotion, among older events
        sign_in(client, mm.tokens["admin"])
        text = client.get("/audit?action=alias.").text
        assert re.findall(r"<td>(alias\.[a-z_]+|version\.[a-z_]+|model\.[a-z_]+)</td>", text) == [
            "alias.promote"
        ]
        assert client.get("/audit?action=Bad%20One").status_code == 422
        with pytest.raises(InvalidInput, match="invalid action filter"):
            service.list_audit(mm.db, CLI_ADMIN, action="50%")

    def test_audit_verified(self, client: TestClient, mm: Registry):
        """The audit page verifies the chain when asked."""
        sign_in(client, mm.tokens["admin"])
        assert "Chain verified" not in client.get("/audit").text
        assert "Chain verified" in client.get("/audit?verify=true").text

    def test_docs_offline(self, client: TestClient):
        """/docs and /redoc load their bundles from the package."""
        for page, asset in (("/docs", "/static/swagger-ui-bundle.js"),
                            ("/redoc", "/static/redoc.standalone.js")):
            text = client.get(page).text
            assert asset in text
            assert "cdn" not in text.lower()
            assert client.get(asset).status_code == 200


