"""Models and their versions: create, read, list, diff (registration: `registration`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.orm import Session, aliased

from registry.db import Database
from registry.diff import VersionDiff, diff_configs, diff_modules, diff_pipeline_json
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import STAGES, Alias, Model, ModelVersion, Team, VersionTag
from registry.schemas import Actor, ModelInfo, Page, VersionInfo
from registry.service._access import is_visible, require_writer, visible_model
from registry.service._input import check_limit, check_slug, parse_cursor, parse_name_cursor
from registry.service._lookup import VERSION_COLUMNS, model_info, version_info
from registry.service.registration import create_model_if_missing, owner_team


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
    owner = owner_team(actor, team)

    def work(session: Session) -> ModelInfo:
        model_id = create_model_if_missing(session, actor, name, owner, description)
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


_MODELS_PAGE = (
    select(Model, Team.name.label("team"))
    .outerjoin(Team, Team.id == Model.team_id)
    .order_by(Model.name)
)


def list_models(
    db: Database, actor: Actor, *, limit: int = 50, cursor: str | None = None
) -> Page[ModelInfo]:
    """Return the models the actor may see by name, ``limit`` at a time (keyset on the name).

    Raises:
        InvalidInput: bad limit or cursor.
    """
    check_limit(limit)
    after = parse_name_cursor(cursor)
    query = _MODELS_PAGE.limit(limit + 1)
    if actor.role != "admin":
        query = query.where(Team.name == actor.team)
    if after is not None:
        query = query.where(Model.name > after)
    with db.read() as session:
        rows = session.execute(query).all()
        items = [
            ModelInfo(
                name=m.name,
                team=team,
                description=m.description,
                latest_version=m.next_version or None,
                created_at=m.created_at,
                created_by=m.created_by,
                free_aliases=m.free_aliases,
            )
            for m, team in rows[:limit]
        ]
    more = len(rows) > limit
    return Page[ModelInfo](items=items, next_cursor=items[-1].name if more else None)


_GET_VERSION = (
    select(
        Team.name.label("team"),
        Model.id.label("model_pk"),
        ModelVersion.id.label("version_pk"),
        *VERSION_COLUMNS,
    )
    .select_from(Model)
    .outerjoin(Team, Team.id == Model.team_id)
    .outerjoin(
        ModelVersion,
        (ModelVersion.model_id == Model.id) & (ModelVersion.version == bindparam("version")),
    )
    .where(Model.name == bindparam("model"))
)
_PAGE = (
    select(ModelVersion.id.label("version_pk"), *VERSION_COLUMNS)
    .where(ModelVersion.model_id == bindparam("model_id"))
    .order_by(ModelVersion.version.desc())
    .limit(bindparam("limit"))
)
_PAGE_BEFORE = _PAGE.where(ModelVersion.version < bindparam("before"))
_ALIASES_OF = (
    select(Alias.version_id, Alias.name)
    .where(Alias.model_id == bindparam("model_id"))
    .order_by(Alias.name)
)
_TAGS_OF = (
    select(VersionTag.version_id, VersionTag.key, VersionTag.value)
    .where(VersionTag.version_id.in_(bindparam("ids", expanding=True)))
    .order_by(VersionTag.key)
)
_BY_NUMBERS = select(ModelVersion.id.label("version_pk"), *VERSION_COLUMNS).where(
    ModelVersion.model_id == bindparam("model_id"),
    ModelVersion.version.in_(bindparam("versions", expanding=True)),
)
_PAIR = select(*VERSION_COLUMNS).where(
    ModelVersion.model_id == bindparam("model_id"),
    ModelVersion.version.in_(bindparam("versions", expanding=True)),
)


def get_version(db: Database, actor: Actor, model: str, version: int) -> VersionInfo:
    """Return one version.

    Raises:
        NotFound: unknown or invisible model, or no such version.
    """
    with db.read() as session:
        row = session.execute(_GET_VERSION, {"model": model, "version": version}).one_or_none()
        if row is None or not is_visible(actor, row.team):
            raise NotFound(f"model {model!r} not found")
        if row.version is None:
            raise NotFound(f"model {model!r} has no version {version}")
        return _annotated(session, model, row.model_pk, [row])[0]


def _annotated(
    session: Session, model: str, model_id: int, rows: Sequence[Any]
) -> list[VersionInfo]:
    """Convert rows (with ``version_pk``) to schemas carrying their aliases and tags."""
    if not rows:
        return []
    aliases: dict[int, list[str]] = {}
    for version_id, name in session.execute(_ALIASES_OF, {"model_id": model_id}):
        aliases.setdefault(version_id, []).append(name)
    tags: dict[int, dict[str, str]] = {}
    ids = [r.version_pk for r in rows]
    for version_id, key, value in session.execute(_TAGS_OF, {"ids": ids}):
        tags.setdefault(version_id, {})[key] = value
    return [
        version_info(model, r).model_copy(
            update={"aliases": aliases.get(r.version_pk, []), "tags": tags.get(r.version_pk, {})}
        )
        for r in rows
    ]


def _check_filters(tags: Mapping[str, str] | None, stage: str | None) -> None:
    if stage is not None and stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    for key, value in (tags or {}).items():
        check_slug(key, "tag key")
        if not value or len(value) > 256:
            raise InvalidInput(f"tag {key!r}: a value is 1-256 characters")


def _filtered_numbers(
    tags: Mapping[str, str], stage: str | None, before: int | None
) -> Any:
    """Version numbers carrying every tag, newest first, from the first tag's index."""
    (key, value), *others = tags.items()
    query = (
        select(VersionTag.version)
        .where(
            VersionTag.model_id == bindparam("model_id"),
            VersionTag.key == key,
            VersionTag.value == value,
        )
        .order_by(VersionTag.version.desc())
        .limit(bindparam("limit"))
    )
    if before is not None:
        query = query.where(VersionTag.version < bindparam("before"))
    for other_key, other_value in others:
        also = aliased(VersionTag)
        query = query.where(
            exists().where(
                also.version_id == VersionTag.version_id,
                also.key == other_key,
                also.value == other_value,
            )
        )
    if stage is not None:
        query = query.where(
            exists().where(ModelVersion.id == VersionTag.version_id, ModelVersion.stage == stage)
        )
    return query


def _page_rows(
    session: Session,
    params: dict[str, Any],
    tags: Mapping[str, str] | None,
    stage: str | None,
    before: int | None,
) -> Sequence[Any]:
    if tags:
        numbers = list(session.execute(_filtered_numbers(tags, stage, before), params).scalars())
        rows = session.execute(_BY_NUMBERS, {"model_id": params["model_id"], "versions": numbers})
        return sorted(rows, key=lambda r: r.version, reverse=True)
    query = _PAGE if before is None else _PAGE_BEFORE
    if stage is not None:
        query = query.where(ModelVersion.stage == stage)
    return session.execute(query, params).all()


def list_versions(
    db: Database,
    actor: Actor,
    model: str,
    *,
    limit: int = 50,
    cursor: str | None = None,
    tags: Mapping[str, str] | None = None,
    stage: str | None = None,
) -> Page[VersionInfo]:
    """Return versions newest first, ``limit`` at a time (keyset on the version number).

    ``tags`` keeps versions carrying every given key=value; ``stage`` those in that stage.

    Raises:
        NotFound: unknown or invisible model. InvalidInput: bad limit, cursor, tag or stage.
    """
    check_limit(limit)
    before = parse_cursor(cursor)
    _check_filters(tags, stage)
    with db.read() as session:
        model_id = visible_model(session, actor, model).id
        params = {"model_id": model_id, "limit": limit + 1, "before": before}
        rows = _page_rows(session, params, tags, stage, before)
        items = _annotated(session, model, model_id, rows[:limit])
    more = len(rows) > limit
    return Page[VersionInfo](items=items, next_cursor=str(items[-1].version) if more else None)


def diff_versions(db: Database, actor: Actor, model: str, a: int, b: int) -> VersionDiff:
    """Return what changed from version ``a`` to version ``b``.

    Raises:
        NotFound: unknown or invisible model, or either version missing.
    """
    with db.read() as session:
        model_id = visible_model(session, actor, model).id
        rows = session.execute(_PAIR, {"model_id": model_id, "versions": [a, b]}).all()
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
        from_schema_version=old.schema_version,
        to_schema_version=new.schema_version,
        grouping_changed=(old.module_grouping or None) != (new.module_grouping or None),
        pipeline=diff_pipeline_json(old.pipeline, new.pipeline),
    )


__all__ = [
    "create_model",
    "diff_versions",
    "get_model",
    "get_version",
    "list_models",
    "list_versions",
]
