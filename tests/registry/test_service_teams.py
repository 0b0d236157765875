"""Tests for registry.service.teams: admins create teams, members see only their own."""

from __future__ import annotations

import pytest

from registry import service
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from registry.schemas import Actor
from registry.service.teams import team_id_for


class TestTeams:
    def test_create_then_list_and_look_up(self, database: Database, admin: Actor):
        """A created team is listed with its creator and its id can be looked up by name."""
        made = service.create_team(database, admin, "vision")
        assert (made.name, made.created_by) == ("vision", "alice")
        assert [t.name for t in service.list_teams(database, admin).items] == ["vision"]
        with database.read() as session:
            assert team_id_for(session, "vision") > 0
            with pytest.raises(NotFound, match="mmgov team create nope"):
                team_id_for(session, "nope")

    def test_duplicate_bad_name_and_non_admin_refused(self, database: Database, admin: Actor):
        """A taken name is a Conflict, a non-slug InvalidInput, a maintainer PermissionDenied."""
        service.create_team(database, admin, "vision")
        with pytest.raises(Conflict):
            service.create_team(database, admin, "vision")
        with pytest.raises(InvalidInput):
            service.create_team(database, admin, "Vision!")
        maintainer = Actor(name="bob", team="vision", role="maintainer")
        with pytest.raises(PermissionDenied):
            service.create_team(database, maintainer, "text")

    def test_members_see_only_their_team(self, database: Database, admin: Actor):
        """A non-admin lists only its own team; an admin lists every team by name."""
        for name in ("text", "vision"):
            service.create_team(database, admin, name)
        member = Actor(name="bob", team="vision", role="reader")
        assert [t.name for t in service.list_teams(database, member).items] == ["vision"]
        assert [t.name for t in service.list_teams(database, admin).items] == ["text", "vision"]
