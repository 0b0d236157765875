"""Rows → schemas the services share: a model's team, a version by number, the info builders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.errors import NotFound
from registry.models import Alias, Model, ModelVersion, Team
from registry.schemas import AliasInfo, ModelInfo, VersionInfo


def team_name(session: Session, team_id: int | None) -> str | None:
    """Return the name of team ``team_id`` (None for None)."""
    if team_id is None:
        return None
    return session.scalars(select(Team.name).where(Team.id == team_id)).one()


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
"""The columns `version_info` reads, for Core queries that select them."""


def version_info(model_name: str, row: Any) -> VersionInfo:
    """Convert a version row (a `ModelVersion`, or any row of `VERSION_COLUMNS`) to its schema."""
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
