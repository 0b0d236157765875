"""Tags (key=value on a version, set and removed, audited) and a version's stage.

A version's content stays immutable: tags live in their own table and the stage column lies
outside the immutability trigger. An archived version can no longer be promoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import STAGES, Alias, ModelVersion, VersionTag, utcnow
from registry.schemas import Actor, TagInfo, VersionInfo
from registry.service._access import require_writer, visible_model
from registry.service._input import check_slug
from registry.service._lookup import version_info, version_row

MAX_TAGS = 64
"""Tags one version may carry (and filters one listing may name)."""


_TAG_VALUE = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,256}")


def parse_tags(specs: Sequence[str] | None) -> dict[str, str] | None:
    """Return ``key=value`` specs as a mapping (None for None).

    Raises:
        InvalidInput: a spec without ``=``, a bad key or value, a key given twice, too many.
    """
    if specs is None:
        return None
    if len(specs) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags, got {len(specs)}")
    tags: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep:
            raise InvalidInput(f"tag {spec!r}: write KEY=VALUE")
        check_tag(key, value)
        if key in tags:
            raise InvalidInput(f"tag {key!r} given twice")
        tags[key] = value
    return tags


def parse_tag_filter(specs: Sequence[str] | None) -> dict[str, str] | None:
    """Return ``key=value`` filter specs as a mapping (None for None).

    Looser than `parse_tags` on values: a value no tag can hold simply matches nothing.

    Raises:
        InvalidInput: a spec without ``=``, a bad key, a key given twice with two values.
    """
    if specs is None:
        return None
    tags: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not value:
            raise InvalidInput(f"tag {spec[:80]!r}: write KEY=VALUE")
        check_slug(key, "tag key")
        if tags.setdefault(key, value) != value:
            raise InvalidInput(f"tag {key!r} given twice with different values")
    return tags


def check_tag(key: str, value: str) -> None:
    """Raise InvalidInput unless ``key`` is a slug and ``value`` 1-256 characters of valid text
    without control characters (C0, DEL, C1)."""
    check_slug(key, "tag key")
    if not 1 <= len(value) <= 256 or not _TAG_VALUE.fullmatch(value):
        raise InvalidInput(
            f"tag {key!r}: a value is 1-256 characters without control characters"
        )


def _tag_info(model: str, version: int, row: VersionTag) -> TagInfo:
    return TagInfo(
        model=model,
        version=version,
        key=row.key,
        value=row.value,
        created_by=row.created_by,
        created_at=row.created_at,
    )


def list_tags(db: Database, actor: Actor, *, model: str, version: int) -> list[TagInfo]:
    """Return the version's tags by key.

    Raises:
        NotFound: unknown or invisible model, or no such version.
    """
    with db.read() as session:
        row = version_row(session, visible_model(session, actor, model), version)
        tags = session.scalars(
            select(VersionTag).where(VersionTag.version_id == row.id).order_by(VersionTag.key)
        )
        return [_tag_info(model, version, t) for t in tags]


def set_tags(
    db: Database, actor: Actor, *, model: str, version: int, tags: Mapping[str, str]
) -> list[TagInfo]:
    """Set ``tags`` on a version (a key already set takes the new value), in one audit event.

    Returns:
        All the version's tags afterwards, by key.

    Raises:
        InvalidInput: no tags, bad key or value, more than `MAX_TAGS` in all.
        PermissionDenied: reader. NotFound: model or version.
    """
    require_writer(actor)
    if not tags:
        raise InvalidInput("give at least one KEY=VALUE tag")
    for key, value in tags.items():
        check_tag(key, value)

    def work(session: Session) -> list[TagInfo]:
        row = version_row(session, visible_model(session, actor, model, lock=True), version)
        current = {
            t.key: t
            for t in session.scalars(select(VersionTag).where(VersionTag.version_id == row.id))
        }
        if len(set(current) | set(tags)) > MAX_TAGS:
            raise InvalidInput(f"a version carries at most {MAX_TAGS} tags")
        changed = {k: v for k, v in tags.items() if k not in current or current[k].value != v}
        if not changed:
            return [_tag_info(model, version, current[k]) for k in sorted(current)]
        now = utcnow()
        for key, value in changed.items():
            if key in current:
                current[key].value, current[key].created_by = value, actor.name
                current[key].created_at = now
            else:
                current[key] = VersionTag(
                    model_id=row.model_id, version_id=row.id, version=row.version, key=key,
                    value=value, created_by=actor.name, created_at=now,
                )
                session.add(current[key])
        session.flush()
        chain.append(
            session,
            actor=actor.name,
            action="version.tag",
            model=model,
            version=version,
            payload={"set": dict(sorted(changed.items()))},
        )
        return [_tag_info(model, version, current[k]) for k in sorted(current)]

    return db.write(work)


def remove_tags(
    db: Database, actor: Actor, *, model: str, version: int, keys: Sequence[str]
) -> list[TagInfo]:
    """Remove the tags ``keys`` from a version, in one audit event.

    Returns:
        The version's remaining tags, by key.

    Raises:
        InvalidInput: no keys, bad key. PermissionDenied: reader.
        NotFound: model, version, or a key the version does not carry.
    """
    require_writer(actor)
    if not keys:
        raise InvalidInput("name at least one tag key to remove")
    for key in keys:
        check_slug(key, "tag key")

    def work(session: Session) -> list[TagInfo]:
        row = version_row(session, visible_model(session, actor, model, lock=True), version)
        current = {
            t.key: t
            for t in session.scalars(select(VersionTag).where(VersionTag.version_id == row.id))
        }
        missing = sorted(set(keys) - set(current))
        if missing:
            raise NotFound(f"{model} v{version} has no tag {', '.join(map(repr, missing))}")
        session.execute(
            delete(VersionTag).where(VersionTag.version_id == row.id, VersionTag.key.in_(keys))
        )
        chain.append(
            session,
            actor=actor.name,
            action="version.untag",
            model=model,
            version=version,
            payload={"removed": {k: current[k].value for k in sorted(set(keys))}},
        )
        return [_tag_info(model, version, current[k]) for k in sorted(set(current) - set(keys))]

    return db.write(work)


def set_stage(
    db: Database, actor: Actor, *, model: str, version: int, stage: str, reason: str = ""
) -> VersionInfo:
    """Move a version to ``stage`` (active, deprecated, archived), audited with ``reason``.

    Archiving is final, and refused while an alias points at the version (move it first).

    Returns:
        The version afterwards (unchanged, and no event, when it already was in ``stage``).

    Raises:
        InvalidInput: unknown stage, reason too long. PermissionDenied: reader.
        NotFound: model or version. Conflict: the version is archived, or archiving one an
        alias serves.
    """
    require_writer(actor)
    if stage not in STAGES:
        raise InvalidInput(f"unknown stage {stage!r}: use one of {', '.join(STAGES)}")
    if len(reason) > 10_000:
        raise InvalidInput("a reason is at most 10,000 characters")

    def work(session: Session) -> VersionInfo:
        owner = visible_model(session, actor, model, lock=True)
        row = version_row(session, owner, version)
        before = row.stage
        if before == stage:
            return version_info(model, row)
        if before == "archived":
            raise Conflict(f"{model} v{version} is archived: archiving is final")
        if stage == "archived":
            serving = session.scalars(
                select(Alias.name).where(Alias.version_id == row.id).order_by(Alias.name)
            ).all()
            if serving:
                raise Conflict(
                    f"{model} v{version} is served by alias {', '.join(serving)}: "
                    "move the alias before archiving the version"
                )
        # Core UPDATE of the one column, so the ORM never rewrites the immutable ones.
        session.execute(
            update(ModelVersion).where(ModelVersion.id == row.id).values(stage=stage)
        )
        session.expire(row)
        payload: dict[str, object] = {"before": before, "after": stage}
        if reason:
            payload["reason"] = reason
        chain.append(
            session,
            actor=actor.name,
            action="version.stage",
            model=model,
            version=version,
            payload=payload,
        )
        return version_info(model, row)

    return db.write(work)


__all__ = [
    "MAX_TAGS",
    "check_tag",
    "list_tags",
    "parse_tag_filter",
    "parse_tags",
    "remove_tags",
    "set_stage",
    "set_tags",
]
