"""Service: models and versions — numbering, idempotent registration, reads, diffs, auth."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text

from registry import service
from registry.audit import chain
from registry.config import CanonicalConfig
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from registry.models import AuditEvent, Model, ModelVersion
from registry.schemas import Actor
from registry.weights import WeightsInfo

MakeConfig = Callable[..., CanonicalConfig]
MakeWeights = Callable[..., WeightsInfo]


def _count(db: Database, table: type[object]) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(table))  # type: ignore[arg-type]


class TestRegister:
    def test_versions_number_from_one_and_link_parent(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Three registrations give versions 1, 2, 3, each with the previous as parent."""
        results = [
            service.register_version(
                database, admin, model="clip", config=make_config(i), weights=make_weights(str(i))
            )
            for i in range(3)
        ]
        assert [r.version.version for r in results] == [1, 2, 3]
        assert [r.version.parent_version for r in results] == [None, 1, 2]
        assert all(r.created for r in results)
        assert results[0].version.semver == "1.0.0"
        assert service.get_model(database, admin, "clip").latest_version == 3

    def test_same_config_and_weights_returns_latest_without_event(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Re-registering the latest config hash + weights sha256 is a no-op (created=False)."""
        first = service.register_version(
            database, admin, model="clip", config=make_config(1), weights=make_weights("w")
        )
        events = _count(database, AuditEvent)
        again = service.register_version(
            database, admin, model="clip", config=make_config(1), weights=make_weights("w")
        )
        assert again.created is False
        assert again.version == first.version
        assert _count(database, AuditEvent) == events

    def test_new_weights_same_config_is_new_version(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Changing only the weights makes a new version."""
        service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights("a")
        )
        r = service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights("b")
        )
        assert (r.created, r.version.version) == (True, 2)

    def test_first_registration_audits_model_create_and_version(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """A first registration appends model.create then version.register."""
        service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights()
        )
        page = service.list_audit(database, admin)
        assert [e.action for e in reversed(page.items)] == [
            "team.create",
            "model.create",
            "version.register",
        ]
        assert page.items[0].version == 1

    def test_bad_model_name_is_invalid_input(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Names must be slugs."""
        with pytest.raises(InvalidInput, match="model name"):
            service.register_version(
                database, admin, model="Bad Name!", config=make_config(), weights=make_weights()
            )

    def test_failure_before_audit_append_leaves_nothing(
        self,
        database: Database,
        admin: Actor,
        make_config: MakeConfig,
        make_weights: MakeWeights,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """If the audit append fails, the version row and the counter bump roll back with it."""
        service.register_version(
            database, admin, model="m", config=make_config(1), weights=make_weights("1")
        )
        events = _count(database, AuditEvent)

        def boom(*args: object, **kwargs: object) -> None:
            raise RuntimeError("injected audit failure")

        monkeypatch.setattr(chain, "append", boom)
        with pytest.raises(RuntimeError, match="injected"):
            service.register_version(
                database, admin, model="m", config=make_config(2), weights=make_weights("2")
            )
        monkeypatch.undo()
        assert _count(database, ModelVersion) == 1
        assert _count(database, AuditEvent) == events
        with database.read() as s:
            assert s.scalar(select(Model.next_version).where(Model.name == "m")) == 1
        assert (
            service.register_version(
                database, admin, model="m", config=make_config(2), weights=make_weights("2")
            ).version.version
            == 2
        )

    def test_versions_are_immutable_in_the_database(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """A trigger refuses UPDATE of a version's content columns."""
        service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights()
        )
        with (
            pytest.raises(Exception, match=r"immutable|append-only|refused"),
            database.transaction() as s,
        ):
            s.execute(text("UPDATE model_versions SET weights_uri = 'file:///evil'"))


class TestRead:
    def test_list_versions_is_keyset_paginated_newest_first(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Pages of 2 over 5 versions: 5 4 | 3 2 | 1."""
        for i in range(5):
            service.register_version(
                database, admin, model="m", config=make_config(i), weights=make_weights(str(i))
            )
        seen, cursor = [], None
        while True:
            page = service.list_versions(database, admin, "m", limit=2, cursor=cursor)
            seen.append([v.version for v in page.items])
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == [[5, 4], [3, 2], [1]]

    def test_bad_cursor_and_limit(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Garbage cursors and limits are InvalidInput."""
        service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights()
        )
        with pytest.raises(InvalidInput):
            service.list_versions(database, admin, "m", cursor="abc")
        with pytest.raises(InvalidInput):
            service.list_versions(database, admin, "m", limit=0)

    def test_get_unknown_is_not_found(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Unknown model and unknown version are NotFound."""
        with pytest.raises(NotFound):
            service.get_version(database, admin, "nope", 1)
        service.register_version(
            database, admin, model="m", config=make_config(), weights=make_weights()
        )
        with pytest.raises(NotFound, match="no version 7"):
            service.get_version(database, admin, "m", 7)

    def test_diff_reports_config_and_module_changes(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """diff_versions compares configs, weights and module hashes."""
        service.register_version(
            database,
            admin,
            model="m",
            config=make_config(1),
            weights=make_weights("a", {"image_encoder": "1", "text_encoder": "2"}),
        )
        service.register_version(
            database,
            admin,
            model="m",
            config=make_config(2),
            weights=make_weights("b", {"image_encoder": "1", "text_encoder": "3"}),
        )
        d = service.diff_versions(database, admin, "m", 1, 2)
        assert [(c.path, c.old, c.new) for c in d.config_changes] == [("training.epochs", 1, 2)]
        assert d.weights_changed is True
        assert (d.modules.changed, d.modules.unchanged) == (["text_encoder"], ["image_encoder"])

    def test_create_model_twice_conflicts(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """create_model refuses a taken name."""
        service.create_model(database, admin, name="m", team=None)
        with pytest.raises(Conflict):
            service.create_model(database, admin, name="m", team=None)


class TestAuthorisation:
    @pytest.fixture
    def teams(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        service.create_team(database, admin, "vision")
        service.create_team(database, admin, "nlp")
        service.register_version(
            database,
            admin,
            model="vis",
            config=make_config(),
            weights=make_weights(),
            team="vision",
        )

    @pytest.mark.usefixtures("teams")
    def test_other_teams_maintainer_gets_not_found(
        self, database: Database, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """A maintainer of another team cannot see or change the model: NotFound, not leaked."""
        other = Actor(name="bob", team="nlp", role="maintainer")
        with pytest.raises(NotFound):
            service.get_model(database, other, "vis")
        with pytest.raises(NotFound):
            service.register_version(
                database, other, model="vis", config=make_config(2), weights=make_weights("2")
            )
        with pytest.raises(NotFound):
            service.promote(database, other, model="vis", version=1, alias="production")
        assert service.list_models(database, other).items == []

    @pytest.mark.usefixtures("teams")
    def test_reader_cannot_write(
        self, database: Database, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """A reader of the owning team may read but gets PermissionDenied on writes."""
        reader = Actor(name="carol", team="vision", role="reader")
        assert service.get_version(database, reader, "vis", 1).version == 1
        with pytest.raises(PermissionDenied):
            service.promote(database, reader, model="vis", version=1, alias="production")
        with pytest.raises(PermissionDenied):
            service.register_version(
                database, reader, model="vis", config=make_config(3), weights=make_weights("3")
            )

    @pytest.mark.usefixtures("teams")
    def test_maintainer_registers_for_own_team_only(
        self, database: Database, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """A maintainer's new models belong to its team; naming another team is refused."""
        maint = Actor(name="dan", team="nlp", role="maintainer")
        r = service.register_version(
            database, maint, model="txt", config=make_config(), weights=make_weights()
        )
        assert service.get_model(database, maint, "txt").team == "nlp"
        assert r.version.created_by == "dan"
        with pytest.raises(PermissionDenied):
            service.register_version(
                database,
                maint,
                model="x",
                config=make_config(),
                weights=make_weights(),
                team="vision",
            )

    def test_unknown_team_is_not_found(
        self, database: Database, admin: Actor, make_config: MakeConfig, make_weights: MakeWeights
    ) -> None:
        """Registering for a team that does not exist says how to create it."""
        with pytest.raises(NotFound, match="team create"):
            service.register_version(
                database,
                admin,
                model="m",
                config=make_config(),
                weights=make_weights(),
                team="ghost",
            )
