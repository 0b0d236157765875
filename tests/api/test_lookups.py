"""The one-query alias lookup behind the API's polling path (and `resolve_alias`)."""

from __future__ import annotations

import pytest

from registry import service
from registry.config import canonicalize
from registry.errors import NotFound
from registry.schemas import Actor
from registry.service.lookups import lookup_alias
from registry.weights import inspect_weights
from tests.api.conftest import CLI_ADMIN, Registry, remote_version_body
from tests.api.test_authz import populated  # noqa: F401 - the fixture


def test_returns_the_version_the_alias_points_at(populated: Registry):  # noqa: F811
    """Admin and owner-team callers get the alias's version exactly as get_version returns it."""
    for actor in (CLI_ADMIN, Actor(name="r", team="alpha", role="reader")):
        resolved = lookup_alias(populated.db, actor, "mm", "production")
        (alias,) = service.list_aliases(populated.db, actor, "mm").items
        assert (resolved.model, resolved.alias, resolved.updated_at) == (
            "mm", "production", alias.updated_at)
        # The polled path reads one row: a version's aliases and tags are the listings' extras.
        full = service.get_version(populated.db, actor, "mm", alias.version)
        assert resolved.version == full.model_copy(update={"aliases": [], "tags": {}})
        assert service.resolve_alias(populated.db, actor, "mm", "production") == resolved


def test_not_found_and_isolation(populated: Registry):  # noqa: F811
    """Unknown alias, unknown model and another team's model are all NotFound."""
    other = Actor(name="o", team="beta", role="maintainer")
    with pytest.raises(NotFound, match="no alias"):
        lookup_alias(populated.db, CLI_ADMIN, "mm", "staging")
    with pytest.raises(NotFound, match="model 'nope'"):
        lookup_alias(populated.db, CLI_ADMIN, "nope", "production")
    with pytest.raises(NotFound, match="model 'mm' not found"):
        lookup_alias(populated.db, other, "mm", "production")


def test_caller_without_team_sees_no_teamless_model(registry_db: Registry):
    """A non-admin without a team sees no model, not even one without a team (like get_version)."""
    body = remote_version_body(1)
    service.register_version(
        registry_db.db, CLI_ADMIN, model="solo", config=canonicalize(body["config"]),
        weights=inspect_weights(body["weights_uri"], sha256=body["weights_sha256"]),
    )
    service.promote(registry_db.db, CLI_ADMIN, model="solo", version=1, alias="production")
    nobody = Actor(name="n", team=None, role="reader")
    with pytest.raises(NotFound, match="model 'solo' not found"):
        service.get_version(registry_db.db, nobody, "solo", 1)
    with pytest.raises(NotFound, match="model 'solo' not found"):
        lookup_alias(registry_db.db, nobody, "solo", "production")
    assert lookup_alias(registry_db.db, CLI_ADMIN, "solo", "production").version.version == 1
