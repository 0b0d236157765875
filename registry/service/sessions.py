"""Who a web session stands for: its token, looked up by digest on every page request."""

from __future__ import annotations

import re

from sqlalchemy import select

from registry.db import Database
from registry.errors import Unauthenticated
from registry.models import ApiToken, Team
from registry.schemas import Actor

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def authenticate_digest(db: Database, token_sha256: str) -> Actor:
    """Return the actor of the token whose sha256 is ``token_sha256``.

    A web session keeps the digest, never the secret, so revoking the token ends the session.

    Raises:
        Unauthenticated: unknown or revoked token, or not a sha256 digest.
    """
    failure = Unauthenticated("the session's token is unknown or revoked: sign in again")
    if not _SHA256.match(token_sha256):
        raise failure
    with db.read() as session:
        found = session.execute(
            select(ApiToken.name, ApiToken.role, ApiToken.revoked_at, Team.name)
            .join(Team, Team.id == ApiToken.team_id)
            .where(ApiToken.token_sha256 == token_sha256)
        ).first()
    if found is None or found[2] is not None:
        raise failure
    name, role, _revoked, team = found
    return Actor(name=f"{team}/{name}", team=team, role=role)


__all__ = ["authenticate_digest"]
