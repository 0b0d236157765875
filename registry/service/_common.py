"""Shared service helpers: authorisation rules, slug checks, lookups and row → schema conversion."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from registry.errors import InvalidInput, NotFound, PermissionDenied
from registry.models import Alias, Model, ModelVersion, Team
from registry.schemas import MAX_INT4, Actor, AliasInfo, ModelInfo, VersionInfo
from registry.text import readable

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_CURSOR = re.compile(r"[0-9]{1,19}")  # ASCII digits: "²".isdigit() is True
MAX_INT8 = 9_223_372_036_854_775_807
"""Largest value of the 64-bit columns (audit sequence numbers)."""


def check_slug(value: str, what: str) -> str:
    """Return ``value`` if it is a slug (lowercase letters, digits, ``.``, ``_``, ``-``; ≤ 64).

    Raises:
        InvalidInput: naming ``what`` and the rule.
    """
    if not isinstance(value, str) or not _SLUG.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}: use 1-64 lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def require_writer(actor: Actor) -> None:
    """Raise PermissionDenied unless the actor may change state (maintainer or admin)."""
    if actor.role == "reader":
        raise PermissionDenied(f"{actor.name} is a reader and cannot change the registry")


def require_admin(actor: Actor, doing: str) -> None:
    """Raise PermissionDenied unless the actor is an admin."""
    if actor.role != "admin":
        raise PermissionDenied(f"only an admin may {doing}")


def team_name(session: Session, team_id: int | None) -> str | None:
    """Return the name of team ``team_id`` (None for None)."""
    if team_id is None:
        return None
    return session.scalars(select(Team.name).where(Team.id == team_id)).one()


def can_see(session: Session, actor: Actor, model: Model) -> bool:
    """Whether ``actor`` may see ``model``: admins see all, others only their team's models."""
    return actor.role == "admin" or is_visible(actor, team_name(session, model.team_id))


def is_visible(actor: Actor, team: str | None) -> bool:
    """Whether ``actor`` may see a model owned by ``team`` (the rule of `can_see`)."""
    return actor.role == "admin" or (actor.team is not None and team == actor.team)


_MODEL_ID = (
    select(Model.id, Team.name.label("team"))
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .where(Model.name == bindparam("model"))
)
# Hot read paths run module-level statements on a Core connection: building an ORM statement
# and loading ORM rows cost more than the indexed query itself.


_LOCK_MODEL = (
    select(Model.id, Model.next_version, Team.name.label("team"))
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .where(Model.name == bindparam("model"))
    .with_for_update(of=Model)
)


class LockedModel(NamedTuple):
    """A model row read under its lock: what writers need to check and allocate."""

    id: int
    next_version: int
    team: str | None


def lock_model(conn: Connection, name: str) -> LockedModel | None:
    """Return model ``name`` with its row locked, or None if there is no such model.

    The row is locked FOR UPDATE on PostgreSQL (SQLite writers already hold the database lock).
    Read what the lock protects in later statements: on PostgreSQL, a statement that waited for
    the lock still sees other tables as they were when it started.
    """
    row = conn.execute(_LOCK_MODEL, {"model": name}).one_or_none()
    return None if row is None else LockedModel(row.id, row.next_version, row.team)


def lock_visible_model(conn: Connection, actor: Actor, name: str) -> LockedModel:
    """Return `lock_model`'s row if the actor may see the model.

    Raises:
        NotFound: if it does not exist or belongs to another team (never leaked).
    """
    row = lock_model(conn, name)
    if row is None or not is_visible(actor, row.team):
        raise NotFound(f"model {name!r} not found")
    return row


def visible_model_id(conn: Connection, actor: Actor, name: str) -> int:
    """Return the id of model ``name`` if the actor may see it (Core twin of `visible_model`).

    Raises:
        NotFound: if it does not exist or belongs to another team (never leaked).
    """
    row = conn.execute(_MODEL_ID, {"model": name}).one_or_none()
    if row is None or not is_visible(actor, row.team):
        raise NotFound(f"model {name!r} not found")
    model_id: int = row.id
    return model_id


VERSION_COLUMNS = (
    ModelVersion.version,
    ModelVersion.semver,
    ModelVersion.config,
    ModelVersion.config_hash,
    ModelVersion.weights_uri,
    ModelVersion.weights_sha256,
    ModelVersion.weights_bytes,
    ModelVersion.module_hashes,
    ModelVersion.parent_version,
    ModelVersion.note,
    ModelVersion.created_by,
    ModelVersion.created_at,
    ModelVersion.schema_version,
    ModelVersion.weights_format,
    ModelVersion.module_grouping,
    ModelVersion.weights_shards,
    ModelVersion.pipeline,
    ModelVersion.stage,
)
"""The columns `version_from_row` reads, for Core queries that select them."""


def version_from_row(model_name: str, row: Any) -> VersionInfo:
    """Convert a row holding `VERSION_COLUMNS` to its schema (as `version_info` does)."""
    return VersionInfo(
        model=model_name,
        version=row.version,
        semver=row.semver,
        config=row.config,
        config_hash=row.config_hash,
        weights_uri=row.weights_uri,
        weights_sha256=row.weights_sha256,
        weights_bytes=row.weights_bytes,
        module_hashes=row.module_hashes,
        parent_version=row.parent_version,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        schema_version=row.schema_version,
        weights_format=row.weights_format,
        module_grouping=row.module_grouping,
        weights_shards=row.weights_shards,
        pipeline=row.pipeline,
        stage=row.stage,
    )


def visible_model(session: Session, actor: Actor, name: str, *, lock: bool = False) -> Model:
    """Return the model called ``name`` if the actor may see it (locked FOR UPDATE if asked).

    Raises:
        NotFound: if it does not exist or belongs to another team (never leaked).
    """
    query = select(Model).where(Model.name == name)
    if lock:
        query = query.with_for_update()
    model = session.scalars(query).one_or_none()
    if model is None or not can_see(session, actor, model):
        raise NotFound(f"model {name!r} not found")
    return model


def version_row(session: Session, model: Model, version: int) -> ModelVersion:
    """Return version ``version`` of ``model``.

    Raises:
        NotFound: if there is no such version.
    """
    row = session.scalars(
        select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version == version
        )
    ).one_or_none()
    if row is None:
        raise NotFound(f"model {model.name!r} has no version {version}")
    return row


def model_info(session: Session, model: Model) -> ModelInfo:
    """Convert a model row to its schema."""
    return ModelInfo(
        name=model.name,
        team=team_name(session, model.team_id),
        description=model.description,
        latest_version=model.next_version or None,
        created_at=model.created_at,
        created_by=model.created_by,
        free_aliases=model.free_aliases,
    )


def version_info(model_name: str, row: ModelVersion) -> VersionInfo:
    """Convert a version row to its schema (an ORM row has the columns `version_from_row` reads)."""
    return version_from_row(model_name, row)


def alias_info(model_name: str, alias: Alias, version: int, previous: int | None) -> AliasInfo:
    """Convert an alias row (with its version number) to its schema."""
    return AliasInfo(
        model=model_name,
        alias=alias.name,
        version=version,
        previous_version=previous,
        updated_at=alias.updated_at,
        updated_by=alias.updated_by,
    )


def parse_cursor(cursor: str | None, *, maximum: int = MAX_INT4) -> int | None:
    """Return the integer keyset position in ``cursor`` (``maximum``: its column's largest).

    Raises:
        InvalidInput: if the cursor is not a decimal integer in 1..``maximum``.
    """
    if cursor is None:
        return None
    if not _CURSOR.fullmatch(cursor) or not 1 <= int(cursor) <= maximum:
        raise InvalidInput(f"invalid cursor {readable(cursor)[:40]!r}: use a next_cursor")
    return int(cursor)


def parse_name_cursor(cursor: str | None) -> str | None:
    """Return the name keyset position in ``cursor`` (listings ordered by a slug name).

    Raises:
        InvalidInput: if the cursor is not a slug.
    """
    if cursor is None:
        return None
    if not isinstance(cursor, str) or _SLUG.fullmatch(cursor) is None:
        raise InvalidInput(f"invalid cursor {cursor!r}: pass back a next_cursor")
    return cursor


def check_limit(limit: int, maximum: int = 1000) -> int:
    """Return ``limit`` if it lies in 1..maximum.

    Raises:
        InvalidInput: otherwise.
    """
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, got {limit}")
    return limit
