"""Models and their versions: create, register (gap-free numbering), read, list, diff."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry import audit
from registry.config import CanonicalConfig
from registry.db import Database
from registry.diff import VersionDiff, diff_configs, diff_modules
from registry.errors import Conflict, NotFound, PermissionDenied
from registry.models import Model, ModelVersion, Team, utcnow
from registry.schemas import Actor, ModelInfo, Page, RegisterResult, VersionInfo
from registry.service._common import (
    VERSION_COLUMNS,
    LockedModel,
    check_limit,
    check_slug,
    is_visible,
    lock_model,
    model_info,
    parse_cursor,
    require_writer,
    team_id_for,
    version_from_row,
    visible_model,
    visible_model_id,
)
from registry.weights import WeightsInfo

_LATEST = select(*VERSION_COLUMNS).where(
    ModelVersion.model_id == bindparam("model_id"), ModelVersion.version == bindparam("version")
)
"""The latest version: ``next_version`` is the last number handed out."""
_LATEST_IDENTITY = select(ModelVersion.config_hash, ModelVersion.weights_sha256).where(
    ModelVersion.model_id == bindparam("model_id"), ModelVersion.version == bindparam("version")
)
_ALLOCATE = (
    update(Model)
    .where(Model.id == bindparam("model_id"))
    .values(next_version=Model.next_version + 1)
    .returning(Model.next_version)
)
_INSERT_VERSION = insert(ModelVersion)
_LOCK_WITH_LATEST = (
    select(
        Model.id,
        Model.next_version,
        Team.name.label("team"),
        ModelVersion.config_hash,
        ModelVersion.weights_sha256,
    )
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(
        ModelVersion,
        (ModelVersion.model_id == Model.id) & (ModelVersion.version == Model.next_version),
    )
    .where(Model.name == bindparam("model"))
)
"""SQLite only: `lock_model` and the latest version's identity in one statement.

Safe there because the write transaction began with BEGIN IMMEDIATE, so no other writer runs
until it ends. Not on PostgreSQL: a statement that waited for the row lock would join the
snapshot of ``model_versions`` from before the other writer committed (see `lock_model`)."""
# Registration runs module-level statements on a Core connection: building ORM
# statements and flushing a unit of work per call cost more than the SQL itself.


def _owner_team(actor: Actor, team: str | None) -> str | None:
    if actor.role == "admin":
        return team if team is not None else actor.team
    if team is not None and team != actor.team:
        raise PermissionDenied(f"{actor.name} cannot create models for team {team!r}")
    return actor.team


def _insert_model(
    conn: Connection, actor: Actor, name: str, team: str | None, description: str
) -> int | None:
    """Insert the model unless it exists; return the new row's id, or None when it existed."""
    values = {
        "name": name,
        "team_id": team_id_for(conn, team) if team is not None else None,
        "description": description,
        "next_version": 0,
        "created_at": utcnow(),
        "created_by": actor.name,
    }
    # ON CONFLICT DO NOTHING makes a concurrent first registration wait for the winner and then
    # see its row, instead of failing on the unique name.
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(Model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Model.id)
    )
    new_id: int | None = conn.execute(statement).scalar_one_or_none()
    if new_id is None:
        return None
    audit.append(
        conn,
        actor=actor.name,
        action="model.create",
        model=name,
        payload={"after": {"team": team, "description": description}},
    )
    return new_id


def create_model(
    db: Database, actor: Actor, *, name: str, team: str | None, description: str = ""
) -> ModelInfo:
    """Create an empty model owned by ``team``.

    Returns:
        The new model.

    Raises:
        InvalidInput: bad name. PermissionDenied: reader, or another team's name.
        NotFound: unknown team. Conflict: the name is taken.
    """
    require_writer(actor)
    check_slug(name, "model name")
    owner = _owner_team(actor, team)

    def work(session: Session) -> ModelInfo:
        model_id = _insert_model(session.connection(), actor, name, owner, description)
        if model_id is None:
            raise Conflict(f"model {name!r} already exists")
        return model_info(session, session.get_one(Model, model_id))

    return db.write(work)


def get_model(db: Database, actor: Actor, name: str) -> ModelInfo:
    """Return the model ``name``.

    Raises:
        NotFound: unknown, or owned by another team.
    """
    with db.read() as session:
        return model_info(session, visible_model(session, actor, name))


def list_models(db: Database, actor: Actor) -> list[ModelInfo]:
    """Return the models the actor may see, by name."""
    with db.read() as session:
        query = select(Model).order_by(Model.name)
        if actor.role != "admin":
            query = query.join(Team, Team.id == Model.team_id).where(Team.name == actor.team)
        return [model_info(session, m) for m in session.scalars(query)]


def _lock_with_latest(
    conn: Connection, model: str
) -> tuple[LockedModel | None, tuple[str, str] | None]:
    """Lock model ``model``; return it and its latest version's (config hash, weights sha256).

    Returns:
        ``(None, None)`` for an unknown model, ``(model, None)`` for one with no versions yet.
    """
    if conn.dialect.name == "sqlite":
        row = conn.execute(_LOCK_WITH_LATEST, {"model": model}).one_or_none()
        if row is None:
            return None, None
        locked = LockedModel(row.id, row.next_version, row.team)
        if row.config_hash is None:
            return locked, None
        return locked, (row.config_hash, row.weights_sha256)
    found = lock_model(conn, model)
    if found is None:
        return None, None
    latest = conn.execute(
        _LATEST_IDENTITY, {"model_id": found.id, "version": found.next_version}
    ).one_or_none()
    return found, None if latest is None else (latest.config_hash, latest.weights_sha256)


def register_version(
    db: Database,
    actor: Actor,
    *,
    model: str,
    config: CanonicalConfig,
    weights: WeightsInfo,
    note: str = "",
    team: str | None = None,
) -> RegisterResult:
    """Register a version; creates the model on first registration.

    Same config hash and weights sha256 as the latest version returns that version with
    ``created=False`` and no audit event.

    Returns:
        The version and whether it was created.

    Raises:
        InvalidInput: bad model name. PermissionDenied: reader, or another team's model/team.
        NotFound: the model belongs to another team, or the team does not exist.
    """
    require_writer(actor)
    check_slug(model, "model name")
    owner = _owner_team(actor, team)

    def work(conn: Connection) -> RegisterResult:
        found, latest = _lock_with_latest(conn, model)
        if found is None:
            _insert_model(conn, actor, model, owner, "")
            found, latest = _lock_with_latest(conn, model)
        if found is None or not is_visible(actor, found.team):
            raise NotFound(f"model {model!r} not found")
        if latest == (config.hash, weights.sha256):
            same = conn.execute(_LATEST, {"model_id": found.id, "version": found.next_version})
            return RegisterResult(version=version_from_row(model, same.one()), created=False)
        parent = found.next_version if latest is not None else None
        number = conn.execute(_ALLOCATE, {"model_id": found.id}).scalar_one()
        values = {
            "model_id": found.id,
            "version": number,
            "semver": config.semver,
            "config": config.data,
            "config_hash": config.hash,
            "weights_uri": weights.uri,
            "weights_sha256": weights.sha256,
            "weights_bytes": weights.size_bytes,
            "module_hashes": dict(weights.module_hashes),
            "parent_version": parent,
            "note": note,
            "created_by": actor.name,
            "created_at": utcnow(),
        }
        conn.execute(_INSERT_VERSION, values)
        audit.append(
            conn,
            actor=actor.name,
            action="version.register",
            model=model,
            version=number,
            payload={
                "after": {
                    "config_hash": config.hash,
                    "semver": config.semver,
                    "weights_uri": weights.uri,
                    "weights_sha256": weights.sha256,
                    "parent_version": parent,
                    "note": note,
                }
            },
        )
        values.pop("model_id")
        return RegisterResult(version=VersionInfo(model=model, **values), created=True)

    return db.write_core(work)


_GET_VERSION = (
    select(Team.name.label("team"), *VERSION_COLUMNS)
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(
        ModelVersion,
        (ModelVersion.model_id == Model.id) & (ModelVersion.version == bindparam("version")),
    )
    .where(Model.name == bindparam("model"))
)
_PAGE = (
    select(*VERSION_COLUMNS)
    .where(ModelVersion.model_id == bindparam("model_id"))
    .order_by(ModelVersion.version.desc())
    .limit(bindparam("limit"))
)
_PAGE_BEFORE = _PAGE.where(ModelVersion.version < bindparam("before"))
_PAIR = select(*VERSION_COLUMNS).where(
    ModelVersion.model_id == bindparam("model_id"),
    ModelVersion.version.in_(bindparam("versions", expanding=True)),
)


def get_version(db: Database, actor: Actor, model: str, version: int) -> VersionInfo:
    """Return one version.

    Raises:
        NotFound: unknown or invisible model, or no such version.
    """
    with db.connect() as conn:
        row = conn.execute(_GET_VERSION, {"model": model, "version": version}).one_or_none()
    if row is None or not is_visible(actor, row.team):
        raise NotFound(f"model {model!r} not found")
    if row.version is None:
        raise NotFound(f"model {model!r} has no version {version}")
    return version_from_row(model, row)


def list_versions(
    db: Database, actor: Actor, model: str, *, limit: int = 50, cursor: str | None = None
) -> Page[VersionInfo]:
    """Return versions newest first, ``limit`` at a time (keyset on the version number).

    Raises:
        NotFound: unknown or invisible model. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    before = parse_cursor(cursor)
    with db.connect() as conn:
        model_id = visible_model_id(conn, actor, model)
        params = {"model_id": model_id, "limit": limit + 1, "before": before}
        rows = conn.execute(_PAGE if before is None else _PAGE_BEFORE, params).all()
    items = [version_from_row(model, r) for r in rows[:limit]]
    more = len(rows) > limit
    return Page[VersionInfo](items=items, next_cursor=str(items[-1].version) if more else None)


def diff_versions(db: Database, actor: Actor, model: str, a: int, b: int) -> VersionDiff:
    """Return what changed from version ``a`` to version ``b``.

    Raises:
        NotFound: unknown or invisible model, or either version missing.
    """
    with db.connect() as conn:
        model_id = visible_model_id(conn, actor, model)
        rows = conn.execute(_PAIR, {"model_id": model_id, "versions": [a, b]}).all()
    found = {row.version: row for row in rows}
    for number in (a, b):
        if number not in found:
            raise NotFound(f"model {model!r} has no version {number}")
    old, new = found[a], found[b]
    return VersionDiff(
        model=model,
        from_version=a,
        to_version=b,
        from_config_hash=old.config_hash,
        to_config_hash=new.config_hash,
        config_changes=diff_configs(old.config, new.config),
        weights_changed=old.weights_sha256 != new.weights_sha256,
        modules=diff_modules(old.module_hashes, new.module_hashes),
    )


__all__ = [
    "create_model",
    "diff_versions",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
    "register_version",
]
