"""Shared service helpers: authorisation rules, slug checks, lookups and row → schema conversion."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import InvalidInput, NotFound, PermissionDenied
from registry.models import Alias, Model, ModelVersion, Team
from registry.schemas import Actor, AliasInfo, ModelInfo, VersionInfo

_SLUG = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


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
    return actor.role == "admin" or (
        actor.team is not None and team_name(session, model.team_id) == actor.team
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


def team_id_for(session: Session, name: str) -> int:
    """Return the id of team ``name``.

    Raises:
        NotFound: if the team does not exist (create it with `mmgov team create`).
    """
    team_id = session.scalars(select(Team.id).where(Team.name == name)).one_or_none()
    if team_id is None:
        raise NotFound(f"team {name!r} not found: create it first (`mmgov team create {name}`)")
    return team_id


def model_info(session: Session, model: Model) -> ModelInfo:
    """Convert a model row to its schema."""
    return ModelInfo(
        name=model.name,
        team=team_name(session, model.team_id),
        description=model.description,
        latest_version=model.next_version or None,
        created_at=model.created_at,
        created_by=model.created_by,
    )


def version_info(model_name: str, row: ModelVersion) -> VersionInfo:
    """Convert a version row to its schema."""
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
    )


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


def parse_cursor(cursor: str | None) -> int | None:
    """Return the integer keyset position in ``cursor``.

    Raises:
        InvalidInput: if the cursor is not a positive integer.
    """
    if cursor is None:
        return None
    if not cursor.isdigit() or int(cursor) < 1:
        raise InvalidInput(f"invalid cursor {cursor!r}")
    return int(cursor)


def check_limit(limit: int, maximum: int = 1000) -> int:
    """Return ``limit`` if it lies in 1..maximum.

    Raises:
        InvalidInput: otherwise.
    """
    if not 1 <= limit <= maximum:
        raise InvalidInput(f"limit must be between 1 and {maximum}, got {limit}")
    return limit
