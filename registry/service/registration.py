"""Registration, end to end: raw config and weights in, one checked, numbered, audited version out.

The API route, the CLI and the demo each make the one call `register_version`. It parses the
config, inspects the weights and the data pipeline (outside the transaction: hashing files holds
no lock), then, under the model's row lock, checks the config against the model's current schema,
canonicalises it, returns the latest version when nothing changed, or allocates the next number
and writes the version with its audit event.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.config import (
    DEFAULT_LIMITS,
    CanonicalConfig,
    ConfigLimits,
    canonical_json,
    canonicalize,
    check_config_size,
    load_canonical_text,
    plain_config,
)
from registry.config_schema import check_config, compile_stored
from registry.db import Database
from registry.errors import ConfigError, Conflict, NotFound, PermissionDenied
from registry.models import Model, ModelSchema, ModelVersion, Team, utcnow
from registry.pipeline import PipelineInfo, inspect_pipeline
from registry.schemas import Actor, RegisterResult, VersionInfo
from registry.service._access import is_visible, require_writer
from registry.service._input import check_slug
from registry.service._lookup import VERSION_COLUMNS, version_info
from registry.service.policies import declare_default_aliases, default_aliases
from registry.service.teams import team_id_for
from registry.weights import DEFAULT_GROUPING, ModuleGrouping, WeightsInfo, inspect_weights

__all__ = [
    "DEFAULT_TEAM",
    "ConfigInput",
    "WeightsSource",
    "create_model_if_missing",
    "owner_team",
    "register_version",
]

DEFAULT_TEAM = "default"
"""Owner of a new model registered by an actor with no team and no ``--team``; made on demand."""

ConfigInput = str | Mapping[str, Any] | CanonicalConfig
"""YAML or JSON text, a parsed mapping, or a config canonicalised earlier (checked again)."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a version's weights are: the registry inspects them (local) or records them (remote).

    ``uri`` is an absolute path (a safetensors file, a sharded checkpoint's index or its
    directory) or a remote URI; ``sha256`` is required for remote URIs and checked for local ones.
    """

    uri: str
    sha256: str | None = None
    grouping: ModuleGrouping = DEFAULT_GROUPING


class _Locked(NamedTuple):
    """A model row under its lock, with what registration compares and checks against."""

    id: int
    next_version: int
    team: str | None
    latest: tuple[str, str, str | None] | None  # config hash, weights sha256, pipeline digest
    schema_version: int | None
    schema_document: dict[str, Any] | None
    schema_hash: str | None


_SCHEMA_JOIN = (ModelSchema.model_id == Model.id) & (ModelSchema.version == Model.schema_version)
_LATEST_JOIN = (ModelVersion.model_id == Model.id) & (ModelVersion.version == Model.next_version)
_LOCKED_COLUMNS = (
    Model.id,
    Model.next_version,
    Team.name.label("team"),
    ModelVersion.config_hash,
    ModelVersion.weights_sha256,
    ModelVersion.pipeline,
    ModelSchema.version.label("schema_version"),
    ModelSchema.document.label("schema_document"),
    ModelSchema.schema_hash,
)
_LOCK_ALL = (
    select(*_LOCKED_COLUMNS)
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(ModelVersion, _LATEST_JOIN)
    .outerjoin(ModelSchema, _SCHEMA_JOIN)
    .where(Model.name == bindparam("model"))
)
"""SQLite: the model, its latest version's identity and its current schema in one statement.

Safe there because the write transaction began with BEGIN IMMEDIATE, so no other writer runs
until it ends. PostgreSQL locks first and reads the rest afterwards: a statement that waited for
the row lock would join the other tables as they were before the other writer committed."""
_LOCK_ONLY = select(Model.id).where(Model.name == bindparam("model")).with_for_update(of=Model)
_READ_LOCKED = _LOCK_ALL.where(Model.id == bindparam("model_id"))
_LATEST = select(*VERSION_COLUMNS).where(
    ModelVersion.model_id == bindparam("model_id"), ModelVersion.version == bindparam("version")
)
_ALLOCATE = (
    update(Model)
    .where(Model.id == bindparam("model_id"))
    .values(next_version=Model.next_version + 1)
    .returning(Model.next_version)
)
_INSERT_VERSION = insert(ModelVersion)
_TEAM_ID = select(Team.id).where(Team.name == bindparam("team"))
# Registration runs these module-level statements on its session, the writes on the session's
# connection (as `chain.append` does): building ORM statements and flushing a unit of work per
# call cost more than the SQL itself.


def owner_team(actor: Actor, team: str | None) -> str:
    """Return the team that owns a model this actor creates.

    Admins choose any team (their own, else `DEFAULT_TEAM`, when they name none); others create
    models for their own team only.

    Raises:
        PermissionDenied: a non-admin naming another team.
    """
    if actor.role == "admin":
        return team or actor.team or DEFAULT_TEAM
    if team is not None and team != actor.team:
        raise PermissionDenied(f"{actor.name} cannot create models for team {team!r}")
    return actor.team or DEFAULT_TEAM


def _team_id(session: Session, actor: Actor, team: str) -> int:
    """Return team ``team``'s id; `DEFAULT_TEAM` is created (with its event) if missing."""
    if team != DEFAULT_TEAM:
        return team_id_for(session, team)
    found: int | None = session.execute(_TEAM_ID, {"team": team}).scalar_one_or_none()
    if found is not None:
        return found
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    created = session.connection().execute(
        dialect_insert(Team)
        .values(name=team, created_at=utcnow(), created_by=actor.name)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Team.id)
    ).scalar_one_or_none()
    if created is None:  # made by a concurrent registration a moment ago
        made: int = session.execute(_TEAM_ID, {"team": team}).scalar_one()
        return made
    chain.append(session, actor=actor.name, action="team.create", payload={"after": {"team": team}})
    return int(created)


def create_model_if_missing(
    session: Session, actor: Actor, name: str, team: str, description: str = ""
) -> int | None:
    """Insert model ``name`` owned by ``team`` unless it exists, with its audit event.

    The new model allows declared aliases only and declares `default_aliases` without rules.

    Returns:
        The new row's id, or None when the model existed.

    Raises:
        NotFound: the team does not exist (except `DEFAULT_TEAM`, which is created).
        InvalidInput: ``MMGOV_DEFAULT_ALIASES`` names an invalid alias.
    """
    declared = default_aliases()
    values = {
        "name": name,
        "team_id": _team_id(session, actor, team),
        "description": description,
        "next_version": 0,
        "free_aliases": False,
        "created_at": utcnow(),
        "created_by": actor.name,
    }
    # ON CONFLICT DO NOTHING makes a concurrent first registration wait for the winner and then
    # see its row, instead of failing on the unique name.
    dialect = session.get_bind().dialect.name
    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        dialect_insert(Model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(Model.id)
    )
    new_id: int | None = session.connection().execute(statement).scalar_one_or_none()
    if new_id is None:
        return None
    declare_default_aliases(session, actor, new_id, declared)
    after = {
        "team": team,
        "description": description,
        "free_aliases": False,
        "declared_aliases": sorted(declared),
    }
    chain.append(session, actor=actor.name, action="model.create", model=name,
                 payload={"after": after})
    return new_id


def _lock(session: Session, model: str) -> _Locked | None:
    if session.get_bind().dialect.name == "sqlite":
        row = session.execute(_LOCK_ALL, {"model": model}).one_or_none()
    else:
        model_id = session.execute(_LOCK_ONLY, {"model": model}).scalar_one_or_none()
        if model_id is None:
            return None
        row = session.execute(_READ_LOCKED, {"model": model, "model_id": model_id}).one()
    if row is None:
        return None
    latest = None
    if row.config_hash is not None:
        digest = row.pipeline.get("digest") if isinstance(row.pipeline, dict) else None
        latest = (row.config_hash, row.weights_sha256, digest)
    return _Locked(
        row.id,
        row.next_version,
        row.team,
        latest,
        row.schema_version,
        row.schema_document,
        row.schema_hash,
    )


def _plain(
    config: ConfigInput, source: str, limits: ConfigLimits
) -> dict[str, Any] | CanonicalConfig:
    if isinstance(config, CanonicalConfig):
        return dict(config.data)  # a caller's: checked again
    if isinstance(config, str):
        return load_canonical_text(config, source=source, limits=limits)  # canonical as parsed
    try:
        plain = plain_config(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc.detail}") from exc
    check_config_size(canonical_json(plain), limits, source=source)
    return plain


def _canonical(
    model: str, found: _Locked, plain: dict[str, Any] | CanonicalConfig, source: str
) -> CanonicalConfig:
    if found.schema_document is None or found.schema_hash is None:
        return plain if isinstance(plain, CanonicalConfig) else canonicalize(plain)
    data = plain.data if isinstance(plain, CanonicalConfig) else plain
    schema = compile_stored(found.schema_document, found.schema_hash)
    label = f"{model}'s config schema v{found.schema_version}"
    return canonicalize(check_config(schema, data, source=source, label=label))


def register_version(
    db: Database,
    actor: Actor,
    *,
    model: str,
    config: ConfigInput,
    weights: WeightsSource | WeightsInfo,
    pipeline: Mapping[str, str | Path] | PipelineInfo | None = None,
    note: str = "",
    team: str | None = None,
    config_source: str = "config",
    allowed_roots: Sequence[Path] | None = None,
    config_limits: ConfigLimits = DEFAULT_LIMITS,
) -> RegisterResult:
    """Register a version of ``model`` from its raw config and weights; creates the model first.

    Args:
        config: YAML/JSON text (``config_source`` names it in errors), a mapping, or a
            `CanonicalConfig`; any layout, checked against the model's current schema if any.
        weights: a `WeightsSource` to inspect, or a `WeightsInfo` an in-process caller computed.
        pipeline: component name -> directory (tokenizer, image processor ...), or a
            `PipelineInfo`; hashed file by file.
        team: owner of a new model (see `owner_team`); for an existing model it must be the
            model's owner.
        allowed_roots: ``None`` accepts any local path; otherwise local weights and pipeline
            directories must lie inside these directories (``[]`` refuses local files).
        config_limits: bounds on the config's size, nesting and parse time.

    Returns:
        The version and whether it was created. The same config hash, weights digest and
        pipeline digest as the latest version return that version (``created=False``, no event).

    Raises:
        ConfigError: malformed YAML, non-JSON data, a config over ``config_limits``, or every
            violation of the model's schema.
        InvalidInput: bad model name, refused or malformed weights or pipeline.
        PermissionDenied: reader, or another team's team. NotFound: another team's model, or an
        unknown team. Conflict: ``team`` is not the existing model's owner.
    """
    require_writer(actor)
    check_slug(model, "model name")
    owner = owner_team(actor, team)
    plain = _plain(config, config_source, config_limits)
    if isinstance(weights, WeightsInfo):
        info = weights
    else:
        info = inspect_weights(
            weights.uri,
            sha256=weights.sha256,
            allowed_roots=allowed_roots,
            grouping=weights.grouping,
        )
    if pipeline is None or isinstance(pipeline, PipelineInfo):
        pipe = pipeline
    else:
        pipe = inspect_pipeline(pipeline, allowed_roots=allowed_roots)
    pipe_json = pipe.to_json() if pipe is not None else None

    def work(session: Session) -> RegisterResult:
        found = _lock(session, model)
        if found is None:
            create_model_if_missing(session, actor, model, owner)
            found = _lock(session, model)
        elif team is not None and found.team != team and is_visible(actor, found.team):
            raise Conflict(f"model {model!r} belongs to team {found.team!r}, not {team!r}")
        if found is None or not is_visible(actor, found.team):
            raise NotFound(f"model {model!r} not found")
        canonical = _canonical(model, found, plain, config_source)
        identity = (canonical.hash, info.sha256, pipe.digest if pipe is not None else None)
        if found.latest == identity:
            same = session.execute(_LATEST, {"model_id": found.id, "version": found.next_version})
            return RegisterResult(version=version_info(model, same.one()), created=False)
        parent = found.next_version if found.latest is not None else None
        number = session.connection().execute(_ALLOCATE, {"model_id": found.id}).scalar_one()
        values = {
            "model_id": found.id,
            "version": number,
            "semver": canonical.semver,
            "config": canonical.data,
            "config_hash": canonical.hash,
            "weights_uri": info.uri,
            "weights_sha256": info.sha256,
            "weights_bytes": info.size_bytes,
            "module_hashes": dict(info.module_hashes),
            "parent_version": parent,
            "note": note,
            "created_by": actor.name,
            "created_at": utcnow(),
            "schema_version": found.schema_version,
            "weights_format": info.format,
            "module_grouping": info.grouping.to_json(),
            "weights_shards": dict(info.shards) or None,
            "pipeline": pipe_json,
        }
        session.connection().execute(_INSERT_VERSION, values)
        chain.append(
            session,
            actor=actor.name,
            action="version.register",
            model=model,
            version=number,
            payload={"after": _audited(values)},
        )
        values.pop("model_id")
        return RegisterResult(version=VersionInfo(model=model, **values), created=True)

    return db.write(work)


def _audited(values: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a new version the audit event records (hashes, not whole documents)."""
    after = {
        key: values[key]
        for key in (
            "config_hash",
            "semver",
            "weights_uri",
            "weights_sha256",
            "parent_version",
            "note",
        )
    }
    # Keys added with schemas and formats appear only when set, so events of versions written
    # the old way keep their exact payloads.
    if values["schema_version"] is not None:
        after["schema_version"] = values["schema_version"]
    if values["weights_format"] not in (None, "safetensors", "remote"):
        after["weights_format"] = values["weights_format"]
    if values["module_grouping"] is not None:
        after["module_grouping"] = values["module_grouping"]
    if values["pipeline"] is not None:
        after["pipeline_digest"] = values["pipeline"]["digest"]
    return after
