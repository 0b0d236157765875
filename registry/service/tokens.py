"""API tokens: random secrets stored only as sha256, roles, revocation, authentication."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import InvalidInput, NotFound, Unauthenticated
from registry.models import ROLES, ApiToken, Team, utcnow
from registry.schemas import Actor, Page, TokenInfo
from registry.service._access import require_admin
from registry.service._input import check_limit, parse_cursor
from registry.service.teams import team_id_for
from registry.text import text_problem

SCOPES = ("deployments",)
"""Token scopes: ``deployments`` is a reader token that may also post heartbeats (serving)."""

TOKEN_PREFIX = "mmgov_"  # noqa: S105 — a public marker, not a secret
"""Every secret starts with this, so leaked tokens are recognisable (and scannable)."""
MAX_TOKEN_NAME = 63
"""A token acts as ``team/name``: a 64-character team, ``/`` and 63 fill the 128 of an actor."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


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
    # The token acts as "team/name", and every audit row stores that in a String(128).
    if not name or len(name) > MAX_TOKEN_NAME or text_problem(name) or not name.isprintable():
        raise InvalidInput(
            f"token name must be 1-{MAX_TOKEN_NAME} printable characters "
            "(the token acts as team/name, at most 128)"
        )
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
        chain.append(
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
                    # The digest of the secret (not the secret): verify can tell a swapped row.
                    "sha256": row.token_sha256,
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
            chain.append(
                session,
                actor=actor.name,
                action="token.revoke",
                payload={"before": {"token": row.id, "team": team, "role": row.role}},
            )
        return _token_info(row, team)

    return db.write(work)


def list_tokens(
    db: Database,
    actor: Actor,
    *,
    team: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[TokenInfo]:
    """Return tokens (never secrets) oldest first, optionally of one team, ``limit`` at a time
    (keyset on the id).

    Raises:
        PermissionDenied: not an admin. InvalidInput: bad limit or cursor.
    """
    require_admin(actor, "list tokens")
    check_limit(limit)
    after = parse_cursor(cursor)
    query = (
        select(ApiToken, Team.name)
        .join(Team, Team.id == ApiToken.team_id)
        .order_by(ApiToken.id)
        .limit(limit + 1)
    )
    if team is not None:
        query = query.where(Team.name == team)
    if after is not None:
        query = query.where(ApiToken.id > after)
    with db.read() as session:
        rows = session.execute(query).all()
        items = [_token_info(t, n) for t, n in rows[:limit]]
    more = len(rows) > limit
    return Page[TokenInfo](items=items, next_cursor=str(items[-1].id) if more else None)


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
    # Tokens named before names were bounded would overflow the actor columns: cut to fit.
    return Actor(name=f"{team}/{token.name}"[:128], team=team, role=token.role, scope=token.scope)


__all__ = [
    "MAX_TOKEN_NAME",
    "SCOPES",
    "TOKEN_PREFIX",
    "authenticate",
    "create_token",
    "list_tokens",
    "revoke_token",
]
