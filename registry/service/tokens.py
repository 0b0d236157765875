"""Teams and API tokens: random secrets stored only as sha256, roles, revocation, authentication."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from registry.models import ROLES, ApiToken, Team, utcnow
from registry.schemas import Actor, TeamInfo, TokenInfo
from registry.service._common import check_slug, require_admin, team_id_for

SCOPES = ("deployments",)
"""Token scopes: ``deployments`` is a reader token that may also post heartbeats (serving)."""

TOKEN_PREFIX = "mmgov_"  # noqa: S105 — a public marker, not a secret
"""Every secret starts with this, so leaked tokens are recognisable (and scannable)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _team_info(row: Team) -> TeamInfo:
    return TeamInfo(name=row.name, created_at=row.created_at, created_by=row.created_by)


def _token_info(row: ApiToken, team: str) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        team=team,
        name=row.name,
        role=row.role,
        prefix=row.display_prefix,
        created_by=row.created_by,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        scope=row.scope,
    )


def create_team(db: Database, actor: Actor, name: str) -> TeamInfo:
    """Create a team.

    Returns:
        The new team.

    Raises:
        PermissionDenied: not an admin. InvalidInput: bad name. Conflict: the name is taken.
    """
    require_admin(actor, "create teams")
    check_slug(name, "team name")

    def work(session: Session) -> TeamInfo:
        if session.scalars(select(Team.id).where(Team.name == name)).first() is not None:
            raise Conflict(f"team {name!r} already exists")
        team = Team(name=name, created_at=utcnow(), created_by=actor.name)
        session.add(team)
        session.flush()
        audit.append(
            session, actor=actor.name, action="team.create", payload={"after": {"team": name}}
        )
        return _team_info(team)

    return db.write(work)


def list_teams(db: Database, actor: Actor) -> list[TeamInfo]:
    """Return the teams the actor may see (admins: all; others: their own)."""
    with db.read() as session:
        query = select(Team).order_by(Team.name)
        if actor.role != "admin":
            query = query.where(Team.name == actor.team)
        return [_team_info(t) for t in session.scalars(query)]


def create_token(
    db: Database, actor: Actor, *, team: str, role: str, name: str, scope: str | None = None
) -> tuple[TokenInfo, str]:
    """Create an API token for ``team`` with ``role``; the secret is returned only here.

    A ``scope="deployments"`` token is a reader that may also post heartbeats: the one token
    a serving process needs (resolve aliases, fetch references, report what it loaded).

    Returns:
        The token's description and its secret.

    Raises:
        PermissionDenied: not an admin. InvalidInput: bad role, scope or name (a scoped token
        must be a reader). NotFound: unknown team.
    """
    require_admin(actor, "create tokens")
    if role not in ROLES:
        raise InvalidInput(f"invalid role {role!r}: use one of {', '.join(ROLES)}")
    if scope is not None and scope not in SCOPES:
        raise InvalidInput(f"invalid scope {scope!r}: use one of {', '.join(SCOPES)}")
    if scope is not None and role != "reader":
        raise InvalidInput(f"a {scope!r} token is a reader: give --role reader")
    if not name or len(name) > 128:
        raise InvalidInput("token name must be 1-128 characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)

    def work(session: Session) -> TokenInfo:
        row = ApiToken(
            team_id=team_id_for(session, team),
            name=name,
            role=role,
            token_sha256=_digest(secret),
            display_prefix=secret[: len(TOKEN_PREFIX) + 6],
            created_by=actor.name,
            created_at=utcnow(),
            scope=scope,
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor=actor.name,
            action="token.create",
            payload={
                "after": {
                    "token": row.id,
                    "team": team,
                    "role": role,
                    "name": name,
                    "prefix": row.display_prefix,
                    **({"scope": scope} if scope else {}),
                }
            },
        )
        return _token_info(row, team)

    return db.write(work), secret


def revoke_token(db: Database, actor: Actor, token_id: int) -> TokenInfo:
    """Revoke a token; revoking a revoked token is a no-op.

    Returns:
        The token's description with ``revoked_at`` set.

    Raises:
        PermissionDenied: not an admin. NotFound: unknown token.
    """
    require_admin(actor, "revoke tokens")

    def work(session: Session) -> TokenInfo:
        row = session.get(ApiToken, token_id, with_for_update=True)
        if row is None:
            raise NotFound(f"token {token_id} not found")
        team = session.scalars(select(Team.name).where(Team.id == row.team_id)).one()
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            session.flush()
            audit.append(
                session,
                actor=actor.name,
                action="token.revoke",
                payload={"before": {"token": row.id, "team": team, "role": row.role}},
            )
        return _token_info(row, team)

    return db.write(work)


def list_tokens(db: Database, actor: Actor, *, team: str | None = None) -> list[TokenInfo]:
    """Return tokens (never secrets), optionally of one team.

    Raises:
        PermissionDenied: not an admin.
    """
    require_admin(actor, "list tokens")
    with db.read() as session:
        query = select(ApiToken, Team.name).join(Team, Team.id == ApiToken.team_id)
        if team is not None:
            query = query.where(Team.name == team)
        return [_token_info(t, n) for t, n in session.execute(query.order_by(ApiToken.id))]


def authenticate(db: Database, secret: str) -> Actor:
    """Return the actor a token secret stands for.

    Raises:
        Unauthenticated: unknown, malformed or revoked token (one message for all: no oracle).
    """
    failure = Unauthenticated("invalid or revoked API token")
    if not isinstance(secret, str) or not secret.startswith(TOKEN_PREFIX) or len(secret) > 256:
        raise failure
    with db.read() as session:
        found = session.execute(
            select(ApiToken, Team.name)
            .join(Team, Team.id == ApiToken.team_id)
            .where(ApiToken.token_sha256 == _digest(secret))
        ).first()
    if found is None or found[0].revoked_at is not None:
        raise failure
    token, team = found
    return Actor(name=f"{team}/{token.name}", team=team, role=token.role, scope=token.scope)


__all__ = [
    "SCOPES",
    "TOKEN_PREFIX",
    "authenticate",
    "create_team",
    "create_token",
    "list_teams",
    "list_tokens",
    "revoke_token",
]
