"""Read paths that serving processes poll, each answered by one indexed query."""

from __future__ import annotations

from sqlalchemy import select

from registry.db import Database
from registry.errors import NotFound
from registry.models import Alias, Model, ModelVersion, Team
from registry.schemas import Actor, ResolvedAlias, VersionInfo
from registry.service._common import visible_model

_RESOLVE = (
    select(
        Team.name.label("team"),
        Alias.updated_at.label("alias_updated_at"),
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
    )
    .select_from(Alias)
    .join(Model, Model.id == Alias.model_id)
    .join(ModelVersion, ModelVersion.id == Alias.version_id)
    .outerjoin(Team, Team.id == Model.team_id)
)


def lookup_alias(db: Database, actor: Actor, model: str, alias: str) -> ResolvedAlias:
    """Return what ``alias`` serves, like `resolve_alias`, in one query on the unique indexes.

    Raises:
        NotFound: unknown or invisible model, or no such alias.
    """
    with db.read() as session:
        row = session.execute(
            _RESOLVE.where(Model.name == model, Alias.name == alias)
        ).one_or_none()
        if row is None or not (actor.role == "admin" or row.team == actor.team):
            # Slow path only on failure: name the missing thing, never leak other teams' models.
            visible_model(session, actor, model)
            raise NotFound(f"model {model!r} has no alias {alias!r}")
        version = VersionInfo(
            model=model, version=row.version, semver=row.semver, config=row.config,
            config_hash=row.config_hash, weights_uri=row.weights_uri,
            weights_sha256=row.weights_sha256, weights_bytes=row.weights_bytes,
            module_hashes=row.module_hashes, parent_version=row.parent_version, note=row.note,
            created_by=row.created_by, created_at=row.created_at,
        )
        return ResolvedAlias(
            model=model, alias=alias, version=version, updated_at=row.alias_updated_at
        )


__all__ = ["lookup_alias"]
