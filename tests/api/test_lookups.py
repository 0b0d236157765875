"""The one-query alias lookup behind the API's polling path agrees with `resolve_alias`."""

from __future__ import annotations

import pytest

from registry import service
from registry.errors import NotFound
from registry.schemas import Actor
from registry.service.lookups import lookup_alias
from tests.api.conftest import CLI_ADMIN, Registry
from tests.api.test_authz import populated  # noqa: F401 - the fixture


def test_same_as_resolve_alias(populated: Registry):  # noqa: F811
    """Admin and owner-team callers get exactly what resolve_alias returns."""
    for actor in (CLI_ADMIN, Actor(name="r", team="alpha", role="reader")):
        assert lookup_alias(populated.db, actor, "mm", "production") == service.resolve_alias(
            populated.db, actor, "mm", "production")


def test_not_found_and_isolation(populated: Registry):  # noqa: F811
    """Unknown alias, unknown model and another team's model are all NotFound."""
    other = Actor(name="o", team="beta", role="maintainer")
    with pytest.raises(NotFound, match="no alias"):
        lookup_alias(populated.db, CLI_ADMIN, "mm", "staging")
    with pytest.raises(NotFound, match="model 'nope'"):
        lookup_alias(populated.db, CLI_ADMIN, "nope", "production")
    with pytest.raises(NotFound, match="model 'mm' not found"):
        lookup_alias(populated.db, other, "mm", "production")
