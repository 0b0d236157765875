"""Property tests at the boundary (hypothesis), on both databases: hostile input is never a 5xx."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry import service
from registry.config import ConfigLimits, canonicalize, parse_yaml
from registry.errors import ConfigError, InvalidInput
from registry.text import data_problem, readable
from registry.weights import inspect_weights
from tests.api.conftest import ALERTS_TOKEN, CLI_ADMIN, Registry, remote_version_body
from tests.api.test_alerts import FIRING, V1

# Any code point, lone surrogates and NUL included: what a JSON escape can carry.
HOSTILE_TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF,
                                              blacklist_categories=()), max_size=300)
NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["²", "٣", "1e3", "0x10", " 1", "1 ", "+1", "2147483647", "2147483648"]),
)
TIMES = st.one_of(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                 timezones=st.sampled_from([UTC, timezone(timedelta(hours=-14)),
                                            timezone(timedelta(hours=14))]))
    .map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat()),  # naive
    st.sampled_from(["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "not a time",
                     "0001-01-01T00:00:00Z"]),
)
ALERTS = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["firing", "resolved", "pending"]),
        "labels": st.dictionaries(
            st.one_of(st.sampled_from(["model", "version", "module", "alertname"]),
                      HOSTILE_TEXT),
            st.one_of(HOSTILE_TEXT, NUMBERS, st.just("mm"), st.text(min_size=100, max_size=300)),
            max_size=6,
        ),
        "annotations": st.dictionaries(HOSTILE_TEXT, HOSTILE_TEXT, max_size=3),
        "startsAt": TIMES,
        "fingerprint": st.one_of(st.text(alphabet="0123456789abcdef", min_size=1, max_size=16),
                                 HOSTILE_TEXT),
    },
    optional={"endsAt": TIMES, "generatorURL": HOSTILE_TEXT},
)
PROPERTY = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


def _post(client: TestClient, alerts: list[dict[str, Any]]) -> Any:
    return client.post(f"{V1}/alerts", content=json.dumps({**FIRING, "alerts": alerts}),
                       headers={"Authorization": f"Bearer {ALERTS_TOKEN}",
                                "Content-Type": "application/json"})


class TestWebhookProperties:
    @PROPERTY
    @given(alerts=st.lists(ALERTS, min_size=1, max_size=5))
    def test_any_alerts_are_recorded_or_reported_never_5xx(
        self, alerts: list[dict[str, Any]], client: TestClient, registry_db: Registry
    ):
        """Every hostile batch gets 200; each alert is recorded or rejected; reads keep working."""
        r = _post(client, alerts)
        assert r.status_code == 200, r.text
        body = r.json()
        rejected = {x["index"] for x in body["rejected"]}
        assert rejected <= set(range(len(alerts)))
        assert len(body["incidents"]) <= len(alerts) - len(rejected)
        listed = client.get(f"{V1}/incidents", headers=registry_db.headers("admin"))
        assert listed.status_code == 200
        for incident in listed.json():
            json.dumps(incident).encode("utf-8")  # every stored text is valid Unicode
            assert data_problem(incident, "incident") is None


class TestTextProperties:
    @given(value=HOSTILE_TEXT)
    def test_data_problem_iff_not_storable(self, value: str):
        """A string is refused exactly when it holds NUL or cannot be encoded as UTF-8."""
        try:
            value.encode("utf-8")
            storable = "\x00" not in value
        except UnicodeEncodeError:
            storable = False
        assert (data_problem({"k": value}, "body") is None) == storable
        readable(value).encode("utf-8")  # repair always yields encodable text


class TestConfigProperties:
    @settings(max_examples=200, deadline=None)
    @given(text=st.one_of(
        HOSTILE_TEXT,
        st.recursive(st.sampled_from(["1", "a", "'x'", "2e-5", "*a", "&a b", "{}", "[]"]),
                     lambda inner: st.one_of(
                         inner.map(lambda t: f"[{t}]"),
                         st.tuples(inner, inner).map(lambda p: f"{{k: {p[0]}, j: {p[1]}}}"),
                         inner.map(lambda t: f"- {t}")),
                     max_leaves=200).map(lambda t: f"top: {t}"),
        st.integers(min_value=1, max_value=3000).map(lambda n: "a: " + "[" * n + "]" * n),
    ))
    def test_parse_yaml_raises_only_config_error(self, text: str):
        """Any text parses to a mapping or raises ConfigError (no RecursionError, no crash)."""
        try:
            data = parse_yaml(text, limits=ConfigLimits(max_depth=64, max_seconds=5))
        except ConfigError:
            return
        assert isinstance(data, dict)


class TestCursorProperties:
    @settings(max_examples=60, deadline=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(cursor=st.one_of(HOSTILE_TEXT, NUMBERS))
    def test_any_cursor_is_a_page_or_invalid_input(self, cursor: str, registry_db: Registry):
        """A cursor of any text gives a page or InvalidInput on both databases, never a DB error."""
        try:
            service.list_audit(registry_db.db, CLI_ADMIN, cursor=cursor)
            service.list_versions(registry_db.db, CLI_ADMIN, "mm", cursor=cursor)
        except InvalidInput:
            pass


@pytest.fixture(autouse=True)
def _model(request: pytest.FixtureRequest) -> None:
    """Version 1 of the model `mm` the alerts and cursors name (for database tests)."""
    if "registry_db" not in request.fixturenames:
        return
    registry_db: Registry = request.getfixturevalue("registry_db")
    body = remote_version_body(1)
    service.register_version(
        registry_db.db, CLI_ADMIN, model="mm", team="alpha", config=canonicalize(body["config"]),
        weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
    )
