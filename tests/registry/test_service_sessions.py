"""authenticate_digest: a web session's token looked up by its sha256."""

from __future__ import annotations

import hashlib

import pytest

from registry import service
from registry.db import Database
from registry.errors import Unauthenticated
from registry.schemas import Actor


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TestAuthenticateDigest:
    def test_same_actor_as_the_secret(self, database: Database, admin: Actor):
        """The digest stands for the same actor as the secret itself."""
        service.create_team(database, admin, "vision")
        _, secret = service.create_token(database, admin, team="vision", role="reader",
                                         name="ui")
        by_digest = service.authenticate_digest(database, _digest(secret))
        assert by_digest == service.authenticate(database, secret)
        assert by_digest == Actor(name="vision/ui", team="vision", role="reader")

    def test_revoked(self, database: Database, admin: Actor):
        """A revoked token's digest is refused."""
        service.create_team(database, admin, "vision")
        info, secret = service.create_token(database, admin, team="vision", role="reader",
                                            name="ui")
        service.revoke_token(database, admin, info.id)
        with pytest.raises(Unauthenticated, match="sign in again"):
            service.authenticate_digest(database, _digest(secret))

    @pytest.mark.parametrize("digest", ["", "x" * 64, "A" * 64, _digest("mmgov_unknown")])
    def test_unknown_or_malformed(self, database: Database, digest: str):
        """Anything but a known token's digest is refused."""
        with pytest.raises(Unauthenticated):
            service.authenticate_digest(database, digest)
