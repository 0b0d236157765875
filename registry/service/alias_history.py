"""What served when: a model's aliases, every move of one alias, and where it pointed at a moment.

The moves are written with their audit events (`alias_moves.audit_seq`), so the history agrees
with the audit log that `audit verify` checks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import aliased

from registry.db import Database
from registry.errors import InvalidInput, NotFound
from registry.models import Alias, AliasMove, Model, Team, utcnow
from registry.schemas import Actor, AliasHistory, AliasMoveInfo
from registry.service._access import is_visible
from registry.service._input import check_limit, parse_cursor

_ALIAS = (
    select(Model.created_at, Team.name.label("team"), Alias.id.label("alias_id"))
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(Alias, (Alias.model_id == Model.id) & (Alias.name == bindparam("alias")))
    .where(Model.name == bindparam("model"))
)
_MOVE_COLUMNS = (
    AliasMove.id,
    AliasMove.version,
    AliasMove.from_version,
    AliasMove.action,
    AliasMove.actor,
    AliasMove.reason,
    AliasMove.at,
    AliasMove.audit_seq,
)
_MOVES = select(*_MOVE_COLUMNS).where(AliasMove.alias_id == bindparam("alias_id"))
_PAGE = _MOVES.order_by(AliasMove.id.desc()).limit(bindparam("limit"))
_PAGE_BEFORE = _PAGE.where(AliasMove.id < bindparam("before"))
# One statement (one round trip on PostgreSQL): the model and alias, and the move in force,
# found by one probe of the (alias_id, at) index whatever the number of moves.
_EARLIER = aliased(AliasMove)
_IN_FORCE = (
    select(_EARLIER.id)
    .where(_EARLIER.alias_id == Alias.id, _EARLIER.at <= bindparam("at"))
    .order_by(_EARLIER.at.desc(), _EARLIER.id.desc())
    .limit(1)
    .correlate(Alias)
    .scalar_subquery()
)
_AT = (
    select(Model.created_at, Team.name.label("team"), Alias.id.label("alias_id"), *_MOVE_COLUMNS)
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(Alias, (Alias.model_id == Model.id) & (Alias.name == bindparam("alias")))
    .outerjoin(AliasMove, AliasMove.id == _IN_FORCE)
    .where(Model.name == bindparam("model"))
)


def _move(model: str, alias: str, r: Any) -> AliasMoveInfo:
    return AliasMoveInfo(
        id=r.id,
        model=model,
        alias=alias,
        version=r.version,
        from_version=r.from_version,
        action=r.action,
        actor=r.actor,
        reason=r.reason,
        at=r.at,
        audit_seq=r.audit_seq,
    )


def alias_history(
    db: Database,
    actor: Actor,
    model: str,
    alias: str,
    *,
    at: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> AliasHistory:
    """Return the alias's moves newest first, or with ``at`` the one move in force then.

    Returns:
        The history page; with ``at``, ``version_at`` is the version the alias pointed at.

    Raises:
        NotFound: unknown or invisible model, no such alias, or the alias did not exist yet at
        ``at``. InvalidInput: bad limit or cursor; ``at`` naive, in the future, or before the
        model existed.
    """
    check_limit(limit)
    before = parse_cursor(cursor)
    if at is not None and at.tzinfo is None:
        raise InvalidInput("--at needs a timezone (e.g. 2024-05-01T12:00:00Z)")
    if at is not None and at > utcnow():
        raise InvalidInput(f"--at {at.isoformat()} is in the future")
    with db.read() as session:
        found: Any
        if at is None:
            found = session.execute(_ALIAS, {"model": model, "alias": alias}).one_or_none()
        else:
            found = session.execute(_AT, {"model": model, "alias": alias, "at": at}).one_or_none()
        if found is None or not is_visible(actor, found.team):
            raise NotFound(f"model {model!r} not found")
        if found.alias_id is None:
            raise NotFound(f"model {model!r} has no alias {alias!r}")
        if at is None:
            params = {"alias_id": found.alias_id, "limit": limit + 1, "before": before}
            rows = session.execute(_PAGE if before is None else _PAGE_BEFORE, params).all()
            items = [_move(model, alias, r) for r in rows[:limit]]
            more = len(rows) > limit
            return AliasHistory(
                model=model,
                alias=alias,
                items=items,
                next_cursor=str(items[-1].id) if more else None,
            )
    if at < found.created_at:
        raise InvalidInput(
            f"--at {at.isoformat()} is before model {model!r} existed "
            f"(created {found.created_at.isoformat()})"
        )
    if found.id is None:
        raise NotFound(f"alias {alias!r} of model {model!r} did not exist yet at {at.isoformat()}")
    move = _move(model, alias, found)
    return AliasHistory(model=model, alias=alias, at=at, version_at=move.version, items=[move])


__all__ = ["alias_history"]
