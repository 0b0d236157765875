"""A model's config schemas: set (versioned, audited), remove, read, list and diff them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.config import parse_yaml
from registry.config_schema import compile_schema
from registry.db import Database
from registry.diff import ConfigChange, SchemaDiff, diff_configs
from registry.errors import NotFound
from registry.models import Model, ModelSchema, Team, utcnow
from registry.schemas import Actor, Page, SchemaInfo
from registry.service._access import is_visible, require_writer, visible_model
from registry.service._input import check_limit, check_slug, parse_cursor
from registry.service.registration import create_model_if_missing, owner_team

__all__ = ["diff_schemas", "get_schema", "list_schemas", "set_schema"]

_LOCK = (
    select(Model.id, Model.schema_version, Team.name.label("team"))
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .where(Model.name == bindparam("model"))
    .with_for_update(of=Model)
)
_HASH_OF = select(ModelSchema.schema_hash).where(
    ModelSchema.model_id == bindparam("model_id"), ModelSchema.version == bindparam("version")
)
_LAST = select(func.max(ModelSchema.version)).where(ModelSchema.model_id == bindparam("model_id"))
_POINT = (
    update(Model)
    .where(Model.id == bindparam("model_id"))
    .values(schema_version=bindparam("version"))
)
_ROWS = (
    select(
        ModelSchema.version,
        ModelSchema.document,
        ModelSchema.schema_hash,
        ModelSchema.note,
        ModelSchema.created_by,
        ModelSchema.created_at,
        Model.schema_version.label("current"),
    )
    .join(Model, Model.id == ModelSchema.model_id)
    .where(ModelSchema.model_id == bindparam("model_id"))
)


def _document(schema: Mapping[str, Any] | str, source: str) -> Any:
    if not isinstance(schema, str):
        return schema
    try:
        return json.loads(schema)
    except ValueError:
        return parse_yaml(schema, source=source)  # YAML for people, JSON for tools


def _info(model: str, row: Any) -> SchemaInfo:
    return SchemaInfo(
        model=model,
        version=row.version,
        document=row.document,
        schema_hash=row.schema_hash,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        current=row.version == row.current,
    )


def set_schema(
    db: Database,
    actor: Actor,
    *,
    model: str,
    schema: Mapping[str, Any] | str | None,
    source: str = "schema",
    note: str = "",
    team: str | None = None,
) -> SchemaInfo | None:
    """Make ``schema`` the model's config schema (a new schema version); None removes it.

    The model is created (owned as in registration) when it does not exist yet, so a schema can
    be in place before the first version is registered. Setting the schema the model already has
    changes nothing and writes no event.

    Returns:
        The model's schema version now in force (None after a removal).

    Raises:
        InvalidInput: bad model name; not JSON/YAML; not a valid draft 2020-12 JSON Schema (path
            and rule named); larger than the limit. PermissionDenied: reader. NotFound: another
            team's model, or an unknown team.
    """
    require_writer(actor)
    check_slug(model, "model name")
    owner = owner_team(actor, team)
    compiled = None if schema is None else compile_schema(_document(schema, source), source=source)

    def work(session: Session) -> SchemaInfo | None:
        row = session.execute(_LOCK, {"model": model}).one_or_none()
        if row is None:
            create_model_if_missing(session, actor, model, owner)
            row = session.execute(_LOCK, {"model": model}).one()
        if not is_visible(actor, row.team):
            raise NotFound(f"model {model!r} not found")
        current_hash = None
        if row.schema_version is not None:
            params = {"model_id": row.id, "version": row.schema_version}
            current_hash = session.execute(_HASH_OF, params).scalar_one()
        new_hash = compiled.hash if compiled is not None else None
        if new_hash == current_hash:
            return _current(session, model, row.id, row.schema_version)
        number = (session.execute(_LAST, {"model_id": row.id}).scalar_one() or 0) + 1
        session.connection().execute(
            insert(ModelSchema).values(
                model_id=row.id,
                version=number,
                document=compiled.document if compiled is not None else None,
                schema_hash=new_hash,
                note=note,
                created_by=actor.name,
                created_at=utcnow(),
            )
        )
        in_force = number if compiled is not None else None
        session.connection().execute(_POINT, {"model_id": row.id, "version": in_force})
        chain.append(
            session,
            actor=actor.name,
            action="schema.set" if compiled is not None else "schema.remove",
            model=model,
            payload={
                "before": {"schema_version": row.schema_version, "schema_hash": current_hash},
                "after": {"schema_version": in_force, "schema_hash": new_hash, "note": note},
                "record": number,
            },
        )
        return _current(session, model, row.id, in_force)

    return db.write(work)


def _current(session: Session, model: str, model_id: int, version: int | None) -> SchemaInfo | None:
    if version is None:
        return None
    rows = session.execute(_ROWS.where(ModelSchema.version == version), {"model_id": model_id})
    return _info(model, rows.one())


def _rows(session: Session, model_id: int) -> list[Any]:
    return list(session.execute(_ROWS.order_by(ModelSchema.version), {"model_id": model_id}))


def get_schema(db: Database, actor: Actor, model: str, version: int | None = None) -> SchemaInfo:
    """Return schema version ``version`` of the model, or the one in force.

    Raises:
        NotFound: unknown or invisible model; the model has no schema in force (or no such
            schema version).
    """
    with db.read() as session:
        model_id = visible_model(session, actor, model).id
        query = _ROWS
        if version is not None:
            query = query.where(ModelSchema.version == version)
        else:
            query = query.where(ModelSchema.version == Model.schema_version)
        found = session.execute(query, {"model_id": model_id}).one_or_none()
    if found is None:
        if version is None:
            raise NotFound(f"model {model!r} has no config schema (set one: mmgov schema set)")
        raise NotFound(f"model {model!r} has no schema version {version}")
    return _info(model, found)


def list_schemas(
    db: Database, actor: Actor, model: str, *, limit: int = 100, cursor: str | None = None
) -> Page[SchemaInfo]:
    """Return the model's schema versions, oldest first (removals included), ``limit`` at a
    time (keyset on the schema version).

    Raises:
        NotFound: unknown or invisible model. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_cursor(cursor)
    query = _ROWS.order_by(ModelSchema.version).limit(limit + 1)
    if after is not None:
        query = query.where(ModelSchema.version > after)
    with db.read() as session:
        model_id = visible_model(session, actor, model).id
        rows = list(session.execute(query, {"model_id": model_id}))
    items = [_info(model, r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[SchemaInfo](items=items, next_cursor=str(items[-1].version) if more else None)


def diff_schemas(db: Database, actor: Actor, model: str, a: int, b: int) -> SchemaDiff:
    """Return what changed from schema version ``a`` to ``b`` (dotted paths in the documents).

    Raises:
        NotFound: unknown or invisible model, or either schema version missing.
    """
    with db.read() as session:
        model_id = visible_model(session, actor, model).id
        rows = {r.version: r for r in _rows(session, model_id)}
    for number in (a, b):
        if number not in rows:
            raise NotFound(f"model {model!r} has no schema version {number}")
    old, new = rows[a], rows[b]
    changes: list[ConfigChange] = diff_configs(old.document or {}, new.document or {})
    return SchemaDiff(
        model=model,
        from_version=a,
        to_version=b,
        from_hash=old.schema_hash,
        to_hash=new.schema_hash,
        changes=changes,
    )
