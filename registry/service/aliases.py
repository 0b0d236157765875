"""Aliases (deployment pointers): promote, roll back along the alias's history, resolve, list.

Promoting an alias to the version it already points at is a no-op: it returns the alias
unchanged and appends no audit event (nothing changed, so there is nothing to audit).
"""

from __future__ import annotations

from sqlalchemy import bindparam, exists, insert, select, update
from sqlalchemy.orm import Session, aliased

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import (
    Alias,
    AliasHistory,
    AliasMove,
    AliasPolicy,
    Model,
    ModelVersion,
    utcnow,
)
from registry.schemas import UNSET, Actor, AliasInfo, Page, ResolvedAlias, Unset
from registry.service._access import require_writer, visible_model
from registry.service._input import check_limit, check_slug, parse_name_cursor
from registry.service._lookup import alias_info, version_row
from registry.service.lookups import lookup_alias
from registry.service.policies import check_promotion


def _payload(alias: str, before: int | None, after: int, reason: str) -> dict[str, object]:
    payload: dict[str, object] = {"alias": alias, "before": before, "after": after}
    if reason:
        payload["reason"] = reason
    return payload


def _check_reason(reason: str) -> str:
    if len(reason) > 10_000 or "\x00" in reason:
        raise InvalidInput("a reason is at most 10,000 characters, without NUL")
    return reason


def _number(session: Session, version_id: int) -> int:
    return session.scalars(select(ModelVersion.version).where(ModelVersion.id == version_id)).one()


def _check_expected(
    model: str, alias: str, current: int | None, expected: int | Unset | None
) -> None:
    if expected is UNSET or expected == current:
        return
    now = f"is at version {current}" if current is not None else "does not exist"
    want = f"version {expected}" if expected is not None else "no alias"
    raise Conflict(f"alias {alias!r} of model {model!r} {now}, but the caller expected {want}")


def _alias_row(session: Session, model: Model, name: str) -> Alias | None:
    return session.scalars(
        select(Alias).where(Alias.model_id == model.id, Alias.name == name).with_for_update()
    ).one_or_none()


def _live_stack(session: Session, alias: Alias) -> list[AliasHistory]:
    """History rows not rolled back, newest first; the first is where the alias points now."""
    return list(
        session.scalars(
            select(AliasHistory)
            .where(AliasHistory.alias_id == alias.id, AliasHistory.rolled_back_at.is_(None))
            .order_by(AliasHistory.id.desc())
        )
    )


_CURRENT = aliased(ModelVersion)
_PROMOTE_STATE = (
    select(
        ModelVersion.id.label("target_id"),
        ModelVersion.stage.label("target_stage"),
        Alias.id.label("alias_id"),
        _CURRENT.version.label("current"),
        _CURRENT.id.label("current_id"),
        Alias.updated_at,
        Alias.updated_by,
        Model.free_aliases,
        exists().where(AliasPolicy.model_id == Model.id).label("has_policies"),
    )
    .select_from(Model)
    .outerjoin(
        ModelVersion,
        (ModelVersion.model_id == Model.id) & (ModelVersion.version == bindparam("version")),
    )
    .outerjoin(Alias, (Alias.model_id == Model.id) & (Alias.name == bindparam("alias")))
    .outerjoin(_CURRENT, _CURRENT.id == Alias.version_id)
    .where(Model.id == bindparam("model_id"))
)
"""The target version's id and the alias's state, read after the model row is locked (every
alias change locks its model's row first)."""
_INSERT_ALIAS = insert(Alias).returning(Alias.id)
_MOVE_ALIAS = (
    update(Alias)
    .where(Alias.id == bindparam("alias_id"))
    .values(
        version_id=bindparam("version_id"),
        updated_at=bindparam("updated_at"),
        updated_by=bindparam("updated_by"),
    )
)
_INSERT_HISTORY = insert(AliasHistory)
_INSERT_MOVE = insert(AliasMove)
# Promotion runs these module-level statements on its session (see `register_version`).


def promote(
    db: Database,
    actor: Actor,
    *,
    model: str,
    version: int,
    alias: str,
    expected_version: int | Unset | None = UNSET,
    reason: str = "",
) -> AliasInfo:
    """Point ``alias`` at ``version``, creating the alias if needed.

    ``reason`` is kept with the move (`alias_history`) and in the audit event.

    Returns:
        The alias after the change (unchanged when it already pointed at ``version``).

    Raises:
        InvalidInput: bad alias name. PermissionDenied: reader. NotFound: model or version.
        Conflict: ``expected_version`` is not the alias's current version.
        PolicyRefused: the version is archived, the alias is new and undeclared on a model
        without free aliases, or the alias's policy is not met (every unmet rule listed).
    """
    require_writer(actor)
    _check_reason(reason)
    check_slug(alias, "alias name")

    def work(session: Session) -> AliasInfo:
        row = visible_model(session, actor, model, lock=True)
        state = session.execute(
            _PROMOTE_STATE, {"model_id": row.id, "version": version, "alias": alias}
        ).one()
        if state.target_id is None:
            raise NotFound(f"model {model!r} has no version {version}")
        before: int | None = state.current
        _check_expected(model, alias, before, expected_version)
        if state.alias_id is not None and before == version:
            return AliasInfo(
                model=model,
                alias=alias,
                version=version,
                previous_version=None,
                updated_at=state.updated_at,
                updated_by=state.updated_by,
            )
        needs_declaring = state.alias_id is None and not state.free_aliases
        if needs_declaring or state.has_policies or state.target_stage == "archived":
            check_promotion(
                session,
                actor,
                model=model,
                model_id=row.id,
                alias=alias,
                alias_exists=state.alias_id is not None,
                free_aliases=state.free_aliases,
                version=version,
                version_id=state.target_id,
                stage=state.target_stage,
            )
        now = utcnow()
        moved = {"version_id": state.target_id, "updated_at": now, "updated_by": actor.name}
        if state.alias_id is None:
            alias_id = session.connection().execute(
                _INSERT_ALIAS, {"model_id": row.id, "name": alias, **moved}
            ).scalar_one()
        else:
            alias_id = state.alias_id
            session.connection().execute(_MOVE_ALIAS, {"alias_id": alias_id, **moved})
        session.connection().execute(
            _INSERT_HISTORY,
            {
                "alias_id": alias_id,
                "version_id": state.target_id,
                "action": "promote",
                "actor": actor.name,
                "at": now,
                "rolled_back_at": None,
            },
        )
        event = chain.append(
            session,
            actor=actor.name,
            action="alias.promote",
            model=model,
            version=version,
            payload=_payload(alias, before, version, reason),
        )
        session.connection().execute(
            _INSERT_MOVE,
            {
                "alias_id": alias_id,
                "version_id": state.target_id,
                "from_version_id": state.current_id,
                "version": version,
                "from_version": before,
                "action": "promote",
                "actor": actor.name,
                "reason": reason,
                "at": now,
                "audit_seq": event.seq,
            },
        )
        return AliasInfo(
            model=model,
            alias=alias,
            version=version,
            previous_version=before,
            updated_at=now,
            updated_by=actor.name,
        )

    return db.write(work)


def rollback_in(
    session: Session,
    actor: Actor,
    row: Model,
    *,
    alias: str,
    to: int | None,
    expected_version: int | Unset | None,
    reason: str,
) -> tuple[AliasInfo, int]:
    """Roll ``alias`` of the locked model ``row`` back inside ``session`` (`rollback`'s work).

    Returns:
        The alias afterwards and the id of its `AliasMove`.

    Raises:
        What `rollback` raises, but for authorisation (the caller checked it).
    """
    model = row.name
    current = _alias_row(session, row, alias)
    if current is None:
        raise NotFound(f"model {model!r} has no alias {alias!r}")
    before = _number(session, current.version_id)
    _check_expected(model, alias, before, expected_version)
    stack = _live_stack(session, current)
    now = utcnow()
    if to is None:
        if len(stack) < 2:
            raise Conflict(
                f"alias {alias!r} of model {model!r} has nothing to roll back to: "
                f"version {before} is the first version it pointed at"
            )
        stack[0].rolled_back_at = now
        target_id = stack[1].version_id
    else:
        target_id = version_row(session, row, to).id
        if to == before:
            raise Conflict(f"alias {alias!r} of model {model!r} is already at version {to}")
        depth = next((i for i, h in enumerate(stack) if h.version_id == target_id), None)
        if depth is not None:
            for entry in stack[:depth]:
                entry.rolled_back_at = now
        else:
            ever = session.scalars(
                select(AliasHistory.id)
                .where(
                    AliasHistory.alias_id == current.id,
                    AliasHistory.version_id == target_id,
                )
                .limit(1)
            ).first()
            if ever is None:
                raise Conflict(
                    f"version {to} was never live under alias {alias!r} of model {model!r}: "
                    "promote it instead"
                )
            session.add(
                AliasHistory(
                    alias_id=current.id,
                    version_id=target_id,
                    action="rollback",
                    actor=actor.name,
                    at=now,
                )
            )
    from_id = current.version_id
    current.version_id, current.updated_at, current.updated_by = target_id, now, actor.name
    session.flush()
    after = _number(session, target_id)
    event = chain.append(
        session,
        actor=actor.name,
        action="alias.rollback",
        model=model,
        version=after,
        payload=_payload(alias, before, after, reason),
    )
    move = AliasMove(
        alias_id=current.id,
        version_id=target_id,
        from_version_id=from_id,
        version=after,
        from_version=before,
        action="rollback",
        actor=actor.name,
        reason=reason,
        at=now,
        audit_seq=event.seq,
    )
    session.add(move)
    session.flush()
    return alias_info(model, current, after, before), move.id


def rollback(
    db: Database,
    actor: Actor,
    *,
    model: str,
    alias: str,
    to: int | None = None,
    expected_version: int | Unset | None = UNSET,
    reason: str = "",
) -> AliasInfo:
    """Move ``alias`` back: to the version it pointed at before the current one, or to ``to``.

    Rolling back pops the alias's history, so repeated rollbacks walk further back. ``to`` must
    be a version the alias pointed at before.

    Returns:
        The alias after the rollback.

    Raises:
        NotFound: model, version or alias. PermissionDenied: reader.
        Conflict: stale ``expected_version``, nothing to roll back to, ``to`` is the current
        version or was never live under this alias.
    """
    require_writer(actor)
    _check_reason(reason)
    check_slug(alias, "alias name")

    def work(session: Session) -> AliasInfo:
        row = visible_model(session, actor, model, lock=True)
        info, _move = rollback_in(
            session, actor, row, alias=alias, to=to, expected_version=expected_version,
            reason=reason,
        )
        return info

    return db.write(work)


def resolve_alias(db: Database, actor: Actor, model: str, alias: str) -> ResolvedAlias:
    """Return the version ``alias`` points at, with its config and weights.

    One indexed query (the same read the API's polling path runs).

    Raises:
        NotFound: model or alias.
    """
    return lookup_alias(db, actor, model, alias)


def list_aliases(
    db: Database, actor: Actor, model: str, *, limit: int = 100, cursor: str | None = None
) -> Page[AliasInfo]:
    """Return the model's aliases by name, ``limit`` at a time (keyset on the name).

    Raises:
        NotFound: model. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_name_cursor(cursor)
    with db.read() as session:
        row = visible_model(session, actor, model)
        query = (
            select(Alias, ModelVersion.version)
            .join(ModelVersion, ModelVersion.id == Alias.version_id)
            .where(Alias.model_id == row.id)
            .order_by(Alias.name)
            .limit(limit + 1)
        )
        if after is not None:
            query = query.where(Alias.name > after)
        pairs = session.execute(query).all()
        items = [alias_info(model, a, v, None) for a, v in pairs[:limit]]
    more = len(pairs) > limit
    return Page[AliasInfo](items=items, next_cursor=items[-1].alias if more else None)


__all__ = ["list_aliases", "promote", "resolve_alias", "rollback", "rollback_in"]
