"""Models and their versions: create, register (gap-free numbering), read, list, diff."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry import audit
from registry.config import CanonicalConfig
from registry.db import Database
from registry.diff import VersionDiff, diff_configs, diff_modules
from registry.errors import Conflict, PermissionDenied
from registry.models import Model, ModelVersion, Team, utcnow
from registry.schemas import Actor, ModelInfo, Page, RegisterResult, VersionInfo
from registry.service._common import (
    check_limit,
    check_slug,
    model_info,
    parse_cursor,
    require_writer,
    team_id_for,
    version_info,
    version_row,
    visible_model,
)
from registry.weights import WeightsInfo


def _owner_team(actor: Actor, team: str | None) -> str | None:
    if actor.role == "admin":
        return team if team is not None else actor.team
    if team is not None and team != actor.team:
        raise PermissionDenied(f"{actor.name} cannot create models for team {team!r}")
    return actor.team


def _insert_model(
    session: Session, actor: Actor, name: str, team: str | None, description: str
) -> Model | None:
    """Insert the model unless it exists; return the new row, or None when someone else won."""
    values = {
        "name": name,
        "team_id": team_id_for(session, team) if team is not None else None,
        "description": description,
        "next_version": 0,
        "created_at": utcnow(),
        "created_by": actor.name,
    }
    dialect = session.get_bind().dialect.name
    # ON CONFLICT DO NOTHING makes a concurrent first registration wait for the winner and then
    # see its row, instead of failing on the unique name.
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(Model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Model.id)
    )
    new_id = session.execute(statement).scalar_one_or_none()
    if new_id is None:
        return None
    model = session.get(Model, new_id)
    assert model is not None
    audit.append(
        session,
        actor=actor.name,
        action="model.create",
        model=name,
        payload={"after": {"team": team, "description": description}},
    )
    return model


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
        model = _insert_model(session, actor, name, owner, description)
        if model is None:
            raise Conflict(f"model {name!r} already exists")
        return model_info(session, model)

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

    def work(session: Session) -> RegisterResult:
        existing = session.scalars(select(Model).where(Model.name == model)).one_or_none()
        if existing is None:
            _insert_model(session, actor, model, owner, "")
        # Lock the model row: the duplicate check and the number allocation see one state.
        row = visible_model(session, actor, model, lock=True)
        latest = session.scalars(
            select(ModelVersion)
            .where(ModelVersion.model_id == row.id)
            .order_by(ModelVersion.version.desc())
            .limit(1)
        ).one_or_none()
        if (
            latest is not None
            and latest.config_hash == config.hash
            and latest.weights_sha256 == weights.sha256
        ):
            return RegisterResult(version=version_info(model, latest), created=False)
        number = session.execute(
            update(Model)
            .where(Model.id == row.id)
            .values(next_version=Model.next_version + 1)
            .returning(Model.next_version)
        ).scalar_one()
        version = ModelVersion(
            model_id=row.id,
            version=number,
            semver=config.semver,
            config=config.data,
            config_hash=config.hash,
            weights_uri=weights.uri,
            weights_sha256=weights.sha256,
            weights_bytes=weights.size_bytes,
            module_hashes=dict(weights.module_hashes),
            parent_version=latest.version if latest is not None else None,
            note=note,
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(version)
        session.flush()
        audit.append(
            session,
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
                    "parent_version": version.parent_version,
                    "note": note,
                }
            },
        )
        return RegisterResult(version=version_info(model, version), created=True)

    return db.write(work)


def get_version(db: Database, actor: Actor, model: str, version: int) -> VersionInfo:
    """Return one version.

    Raises:
        NotFound: unknown or invisible model, or no such version.
    """
    with db.read() as session:
        row = visible_model(session, actor, model)
        return version_info(model, version_row(session, row, version))


def list_versions(
    db: Database, actor: Actor, model: str, *, limit: int = 50, cursor: str | None = None
) -> Page[VersionInfo]:
    """Return versions newest first, ``limit`` at a time (keyset on the version number).

    Raises:
        NotFound: unknown or invisible model. InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    before = parse_cursor(cursor)
    with db.read() as session:
        row = visible_model(session, actor, model)
        query = select(ModelVersion).where(ModelVersion.model_id == row.id)
        if before is not None:
            query = query.where(ModelVersion.version < before)
        rows = session.scalars(query.order_by(ModelVersion.version.desc()).limit(limit + 1)).all()
        items = [version_info(model, r) for r in rows[:limit]]
        more = len(rows) > limit
        return Page[VersionInfo](items=items, next_cursor=str(items[-1].version) if more else None)


def diff_versions(db: Database, actor: Actor, model: str, a: int, b: int) -> VersionDiff:
    """Return what changed from version ``a`` to version ``b``.

    Raises:
        NotFound: unknown or invisible model, or either version missing.
    """
    with db.read() as session:
        row = visible_model(session, actor, model)
        old, new = version_row(session, row, a), version_row(session, row, b)
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
