"""Teams: the owners of models and tokens; created by admins, each visible to its members."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, NotFound
from registry.models import Team, utcnow
from registry.schemas import Actor, Page, TeamInfo
from registry.service._access import require_admin
from registry.service._input import check_limit, check_slug, parse_name_cursor


def _team_info(row: Team) -> TeamInfo:
    return TeamInfo(name=row.name, created_at=row.created_at, created_by=row.created_by)


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
        chain.append(
            session, actor=actor.name, action="team.create", payload={"after": {"team": name}}
        )
        return _team_info(team)

    return db.write(work)


def list_teams(
    db: Database, actor: Actor, *, limit: int = 50, cursor: str | None = None
) -> Page[TeamInfo]:
    """Return the teams the actor may see (admins: all; others: their own) by name, ``limit`` at
    a time (keyset on the name).

    Raises:
        InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_name_cursor(cursor)
    query = select(Team).order_by(Team.name).limit(limit + 1)
    if actor.role != "admin":
        query = query.where(Team.name == actor.team)
    if after is not None:
        query = query.where(Team.name > after)
    with db.read() as session:
        rows = session.scalars(query).all()
        items = [_team_info(t) for t in rows[:limit]]
    more = len(rows) > limit
    return Page[TeamInfo](items=items, next_cursor=items[-1].name if more else None)


def team_id_for(session: Session, name: str) -> int:
    """Return the id of team ``name``.

    Raises:
        NotFound: if the team does not exist (create it with `mmgov team create`).
    """
    team_id = session.scalars(select(Team.id).where(Team.name == name)).one_or_none()
    if team_id is None:
        raise NotFound(f"team {name!r} not found: create it first (`mmgov team create {name}`)")
    return team_id


__all__ = ["create_team", "list_teams", "team_id_for"]
