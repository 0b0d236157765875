"""Keyset pages of every listing (models, teams, tokens, incidents, and per model: aliases,
policies, schemas, approvals): service and CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from registry import service
from registry.cli import app
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import InvalidInput
from registry.schemas import Actor, AlertIn, Page, PolicyRules


def alert(fingerprint: str) -> AlertIn:
    return AlertIn.model_validate({
        "status": "firing",
        "labels": {"alertname": "MmgovDrift", "model": "m0", "version": "1",
                   "module": "text_encoder"},
        "startsAt": "2024-05-01T10:00:00Z",
        "fingerprint": fingerprint,
    })


@pytest.fixture
def filled(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., object],
) -> Database:
    """Models m0..m4 (m0..m2 of team alpha), teams alpha, beta, default, gamma, five tokens and
    five incidents on m0 v1."""
    for team in ("alpha", "beta", "gamma"):
        service.create_team(database, admin, team)
    for i in range(5):
        service.register_version(database, admin, model=f"m{i}", config=make_config(i),
                                 weights=make_weights(str(i)), team="alpha" if i < 3 else None)
    for i in range(5):
        service.create_token(database, admin, team="beta", role="reader", name=f"t{i}")
    service.record_alerts(database, admin, [alert(f"fp{i}") for i in range(5)])
    return database


def _walk(fetch: Callable[[str | None], Page[Any]], key: Callable[[Any], object]) -> list[Any]:
    """Every item, page after page; each page but the last is full and names a cursor."""
    seen: list[Any] = []
    cursor: str | None = None
    while True:
        page = fetch(cursor)
        seen += [key(i) for i in page.items]
        if page.next_cursor is None:
            return seen
        assert len(page.items) == 2
        cursor = page.next_cursor


class TestServicePages:
    def test_models_by_name_in_pages(self, filled: Database, admin: Actor):
        """Two at a time, by name, no repeats; a team member pages through its own only."""
        names = _walk(lambda c: service.list_models(filled, admin, limit=2, cursor=c),
                      lambda m: m.name)
        assert names == ["m0", "m1", "m2", "m3", "m4"]
        member = Actor(name="al", team="alpha", role="reader")
        names = _walk(lambda c: service.list_models(filled, member, limit=2, cursor=c),
                      lambda m: m.name)
        assert names == ["m0", "m1", "m2"]
        assert service.list_models(filled, admin, limit=5).next_cursor is None

    def test_teams_tokens_incidents_in_pages(self, filled: Database, admin: Actor):
        """Teams by name, tokens oldest first, incidents newest first."""
        teams = _walk(lambda c: service.list_teams(filled, admin, limit=2, cursor=c),
                      lambda t: t.name)
        assert teams == ["alpha", "beta", "default", "gamma"]
        tokens = _walk(lambda c: service.list_tokens(filled, admin, limit=2, cursor=c),
                       lambda t: t.name)
        assert tokens == ["t0", "t1", "t2", "t3", "t4"]
        incidents = _walk(lambda c: service.list_incidents(filled, admin, limit=2, cursor=c),
                          lambda i: i.id)
        assert incidents == sorted(incidents, reverse=True)
        assert len(incidents) == 5

    @pytest.mark.parametrize("limit", [0, -1, 1001])
    def test_bad_limit(self, filled: Database, admin: Actor, limit: int):
        """A limit outside 1..1000 is refused by every listing."""
        for listing in (service.list_models, service.list_teams, service.list_tokens,
                        service.list_incidents):
            with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
                listing(filled, admin, limit=limit)

    def test_bad_cursor(self, filled: Database, admin: Actor):
        """An id cursor must be an integer in 1..2147483647; a name cursor a slug."""
        for bad in ("abc", "0", "-3", "2147483648", "99999999999999999999", "١٢"):
            for listing in (service.list_tokens, service.list_incidents):
                with pytest.raises(InvalidInput, match="invalid cursor"):
                    listing(filled, admin, cursor=bad)
        for bad in ("Bad Name", "", "x" * 65, "../m"):
            for listing in (service.list_models, service.list_teams):
                with pytest.raises(InvalidInput, match="invalid cursor"):
                    listing(filled, admin, cursor=bad)


def _cli(db: Database, *args: str, expect: int = 0) -> str:
    result = CliRunner().invoke(app, ["--db", db.url, "--actor", "tester", *args])
    assert result.exit_code == expect, (result.stdout, result.stderr)
    return result.stdout if expect == 0 else result.stderr


class TestCliPages:
    @pytest.mark.parametrize(
        ("command", "field", "expected"),
        [
            (["models"], "name", ["m0", "m1", "m2", "m3", "m4"]),
            (["team", "list"], "name", ["alpha", "beta", "default", "gamma"]),
            (["token", "list"], "name", ["t0", "t1", "t2", "t3", "t4"]),
            (["incidents"], "fingerprint", ["fp4", "fp3", "fp2", "fp1", "fp0"]),
            (["incident", "list"], "fingerprint", ["fp4", "fp3", "fp2", "fp1", "fp0"]),
        ],
    )
    def test_limit_cursor_json(
        self, filled: Database, command: list[str], field: str, expected: list[str]
    ):
        """--json returns items and next_cursor; --cursor continues; text names the cursor."""
        seen: list[str] = []
        cursor: list[str] = []
        while True:
            page = json.loads(_cli(filled, "--json", *command, "--limit", "2", *cursor))
            seen += [item[field] for item in page["items"]]
            if page["next_cursor"] is None:
                break
            cursor = ["--cursor", page["next_cursor"]]
        assert seen == expected
        text = _cli(filled, *command, "--limit", "2")
        first = json.loads(_cli(filled, "--json", *command, "--limit", "2"))["next_cursor"]
        assert text.rstrip().endswith(f"more: --cursor {first}")
        err = _cli(filled, *command, "--limit", "0", expect=2)
        assert "limit must be between 1 and 1000" in err
        err = _cli(filled, *command, "--cursor", "Not A Cursor", expect=2)
        assert "invalid cursor" in err


@pytest.fixture
def governed(filled: Database, admin: Actor) -> Database:
    """On m0: aliases a0..a4 (free aliases), policies p0..p4 besides the default declared ones,
    schema versions 1..5 and five approvals of v1 for p0."""
    service.set_free_aliases(filled, admin, model="m0", free=True)
    for i in range(5):
        service.promote(filled, admin, model="m0", version=1, alias=f"a{i}")
        service.set_policy(filled, admin, model="m0", alias=f"p{i}", rules=PolicyRules())
        service.set_schema(filled, admin, model="m0",
                           schema={"type": "object", "description": f"schema {i}"})
    for i in range(5):
        reviewer = Actor(name=f"reviewer{i}", team="alpha", role="maintainer")
        service.approve(filled, reviewer, model="m0", version=1, alias="p0")
    return filled


class TestPerModelPages:
    def test_aliases_policies_schemas_approvals_in_pages(self, governed: Database, admin: Actor):
        """Aliases and policies by name, schemas by version, approvals oldest first."""
        aliases = _walk(lambda c: service.list_aliases(governed, admin, "m0", limit=2, cursor=c),
                        lambda a: a.alias)
        assert aliases == ["a0", "a1", "a2", "a3", "a4"]
        policies = _walk(
            lambda c: service.list_policies(governed, admin, "m0", limit=2, cursor=c),
            lambda p: p.alias,
        )
        assert policies == ["p0", "p1", "p2", "p3", "p4", "production", "staging"]
        schemas = _walk(lambda c: service.list_schemas(governed, admin, "m0", limit=2, cursor=c),
                        lambda s: s.version)
        assert schemas == [1, 2, 3, 4, 5]
        approvals = _walk(
            lambda c: service.list_approvals(governed, admin, model="m0", version=1, limit=2,
                                             cursor=c),
            lambda a: a.approver,
        )
        assert approvals == [f"reviewer{i}" for i in range(5)]

    @pytest.mark.parametrize(
        ("command", "field", "expected"),
        [
            (["aliases", "list", "m0"], "alias", ["a0", "a1", "a2", "a3", "a4"]),
            (["policy", "list", "m0"], "alias",
             ["p0", "p1", "p2", "p3", "p4", "production", "staging"]),
            (["schema", "list", "m0"], "version", [1, 2, 3, 4, 5]),
            (["approvals", "m0", "1"], "approver", [f"reviewer{i}" for i in range(5)]),
        ],
    )
    def test_cli_limit_cursor(
        self, governed: Database, command: list[str], field: str, expected: list[object]
    ):
        """The per-model listings take --limit and --cursor like the others."""
        seen: list[object] = []
        cursor: list[str] = []
        while True:
            page = json.loads(_cli(governed, "--json", *command, "--limit", "2", *cursor))
            seen += [item[field] for item in page["items"]]
            if page["next_cursor"] is None:
                break
            cursor = ["--cursor", page["next_cursor"]]
        assert seen == expected
        assert "more: --cursor" in _cli(governed, *command, "--limit", "2")
        err = _cli(governed, *command, "--cursor", "Not A Cursor", expect=2)
        assert "invalid cursor" in err
