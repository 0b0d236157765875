"""Service: aliases — promote, expected-version checks, rollback along the history, resolve."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from registry import service
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.schemas import Actor
from registry.weights import WeightsInfo


@pytest.fixture
def three(
    database: Database,
    admin: Actor,
    make_config: Callable[..., CanonicalConfig],
    make_weights: Callable[..., WeightsInfo],
) -> Database:
    """A model `m` with versions 1, 2, 3."""
    for i in range(3):
        service.register_version(
            database, admin, model="m", config=make_config(i), weights=make_weights(str(i))
        )
    return database


def _actions(db: Database, admin: Actor) -> list[str]:
    return [e.action for e in reversed(service.list_audit(db, admin).items)]


class TestPromote:
    def test_promote_creates_then_moves_alias(self, three: Database, admin: Actor) -> None:
        """First promote creates the alias, the next moves it and reports the previous version."""
        a = service.promote(three, admin, model="m", version=1, alias="production")
        assert (a.version, a.previous_version) == (1, None)
        b = service.promote(three, admin, model="m", version=2, alias="production")
        assert (b.version, b.previous_version) == (2, 1)
        resolved = service.resolve_alias(three, admin, "m", "production")
        assert resolved.version.version == 2
        assert resolved.version.config["training"]["epochs"] == 1
        assert [x.alias for x in service.list_aliases(three, admin, "m").items] == ["production"]

    def test_promote_to_live_version_is_unaudited_noop(self, three: Database, admin: Actor) -> None:
        """Promoting to the version already live changes nothing and appends no event."""
        service.promote(three, admin, model="m", version=1, alias="production")
        before = _actions(three, admin)
        same = service.promote(three, admin, model="m", version=1, alias="production")
        assert same.version == 1
        assert _actions(three, admin) == before

    def test_expected_version_checked(self, three: Database, admin: Actor) -> None:
        """A stale expected_version is a Conflict; None means 'expect no alias yet'."""
        prod = {"model": "m", "alias": "production"}
        service.promote(three, admin, version=1, expected_version=None, **prod)
        with pytest.raises(Conflict, match="is at version 1"):
            service.promote(three, admin, version=2, expected_version=3, **prod)
        with pytest.raises(Conflict):
            service.promote(three, admin, version=2, expected_version=None, **prod)
        ok = service.promote(three, admin, version=2, expected_version=1, **prod)
        assert ok.version == 2

    def test_bad_alias_and_unknown_version(self, three: Database, admin: Actor) -> None:
        """Alias names are slugs; unknown versions are NotFound."""
        with pytest.raises(InvalidInput, match="alias name"):
            service.promote(three, admin, model="m", version=1, alias="Prod Uction")
        with pytest.raises(NotFound):
            service.promote(three, admin, model="m", version=9, alias="production")

    def test_promote_appends_event_with_before_after(self, three: Database, admin: Actor) -> None:
        """alias.promote records before and after."""
        service.promote(three, admin, model="m", version=1, alias="production")
        service.promote(three, admin, model="m", version=3, alias="production")
        event = service.list_audit(three, admin, model="m", limit=1).items[0]
        assert event.action == "alias.promote"
        assert event.payload == {"alias": "production", "before": 1, "after": 3}


class TestRollback:
    def test_rollback_walks_history_back(self, three: Database, admin: Actor) -> None:
        """1 → 2 → 3, then rollback twice gives 2, then 1; a third has nothing to go to."""
        for v in (1, 2, 3):
            service.promote(three, admin, model="m", version=v, alias="production")
        assert service.rollback(three, admin, model="m", alias="production").version == 2
        assert service.rollback(three, admin, model="m", alias="production").version == 1
        with pytest.raises(Conflict, match="nothing to roll back to"):
            service.rollback(three, admin, model="m", alias="production")
        assert _actions(three, admin)[-2:] == ["alias.rollback", "alias.rollback"]

    def test_rollback_then_promote_then_rollback(self, three: Database, admin: Actor) -> None:
        """After a rollback and a new promotion, rollback returns to the rolled-back-to version."""
        for v in (1, 2):
            service.promote(three, admin, model="m", version=v, alias="production")
        service.rollback(three, admin, model="m", alias="production")
        service.promote(three, admin, model="m", version=3, alias="production")
        assert service.rollback(three, admin, model="m", alias="production").version == 1

    def test_rollback_to_explicit_version(self, three: Database, admin: Actor) -> None:
        """`to` moves back to an earlier live version; unknown-to-the-alias versions conflict."""
        for v in (1, 3):
            service.promote(three, admin, model="m", version=v, alias="production")
        with pytest.raises(Conflict, match="never live"):
            service.rollback(three, admin, model="m", alias="production", to=2)
        with pytest.raises(Conflict, match="already at version 3"):
            service.rollback(three, admin, model="m", alias="production", to=3)
        back = service.rollback(three, admin, model="m", alias="production", to=1)
        assert (back.version, back.previous_version) == (1, 3)

    def test_rollback_expected_version_and_missing_alias(
        self, three: Database, admin: Actor
    ) -> None:
        """Stale expected_version conflicts; an unknown alias is NotFound."""
        for v in (1, 2):
            service.promote(three, admin, model="m", version=v, alias="production")
        with pytest.raises(Conflict):
            service.rollback(three, admin, model="m", alias="production", expected_version=1)
        back = service.rollback(three, admin, model="m", alias="production", expected_version=2)
        assert back.version == 1
        with pytest.raises(NotFound):
            service.rollback(three, admin, model="m", alias="staging")
