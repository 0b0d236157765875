"""Reference profiles: the drift baseline bytes (with format tag and sha256) of one version."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import audit
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import ModelVersion, ReferenceProfile, utcnow
from registry.schemas import Actor, ReferenceBlob, ReferenceInfo
from registry.service._common import require_writer, version_row, visible_model

MAX_REFERENCE_BYTES = 256 * 1024 * 1024
"""Largest reference profile accepted; it is stored in the database row."""


def _info(model: str, version: int, row: ReferenceProfile) -> ReferenceInfo:
    return ReferenceInfo(
        model=model,
        version=version,
        format=row.format,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        n_samples=row.n_samples,
        modules=list(row.modules),
        created_by=row.created_by,
        created_at=row.created_at,
    )


_FORMAT_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")


def _validate(fmt: str, blob: bytes, n_samples: int, modules: list[str]) -> None:
    # A format tag reads like a media-type suffix ("mmgov.reference.v1+npz"), so '+' is allowed;
    # the same rule as the API's X-Reference-Format header.
    if not isinstance(fmt, str) or not _FORMAT_TAG.fullmatch(fmt):
        raise InvalidInput(
            f"invalid reference format {fmt!r}: use 1-64 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    if not blob:
        raise InvalidInput("reference profile is empty")
    if len(blob) > MAX_REFERENCE_BYTES:
        raise InvalidInput(
            f"reference profile is {len(blob)} bytes; the limit is {MAX_REFERENCE_BYTES}"
        )
    if n_samples < 1:
        raise InvalidInput(f"n_samples must be at least 1, got {n_samples}")
    if not modules or any(not isinstance(m, str) or not m or len(m) > 128 for m in modules):
        raise InvalidInput("modules must be a non-empty list of module names (1-128 characters)")


def attach_reference(
    db: Database,
    actor: Actor,
    *,
    model: str,
    version: int,
    fmt: str,
    blob: bytes,
    n_samples: int,
    modules: list[str],
) -> ReferenceInfo:
    """Store the reference profile of a version; attaching the same bytes again is a no-op.

    Returns:
        The stored profile's description.

    Raises:
        InvalidInput: bad format, empty/oversized blob, bad n_samples or modules.
        PermissionDenied: reader. NotFound: model or version.
        Conflict: the version already has a different profile (versions are immutable).
    """
    require_writer(actor)
    _validate(fmt, blob, n_samples, modules)
    digest = hashlib.sha256(blob).hexdigest()

    def work(session: Session) -> ReferenceInfo:
        row = visible_model(session, actor, model, lock=True)
        target = version_row(session, row, version)
        existing = session.scalars(
            select(ReferenceProfile).where(ReferenceProfile.version_id == target.id)
        ).one_or_none()
        if existing is not None:
            if existing.sha256 == digest and existing.format == fmt:
                return _info(model, version, existing)
            raise Conflict(
                f"version {version} of model {model!r} already has a reference profile "
                f"(sha256 {existing.sha256[:12]}…); register a new version to change it"
            )
        profile = ReferenceProfile(
            version_id=target.id,
            format=fmt,
            blob=blob,
            sha256=digest,
            size_bytes=len(blob),
            n_samples=n_samples,
            modules=list(modules),
            created_by=actor.name,
            created_at=utcnow(),
        )
        session.add(profile)
        session.flush()
        audit.append(
            session,
            actor=actor.name,
            action="reference.attach",
            model=model,
            version=version,
            payload={
                "after": {
                    "format": fmt,
                    "sha256": digest,
                    "size_bytes": len(blob),
                    "n_samples": n_samples,
                    "modules": list(modules),
                }
            },
        )
        return _info(model, version, profile)

    return db.write(work)


def get_reference(db: Database, actor: Actor, model: str, version: int) -> ReferenceBlob:
    """Return the reference profile of a version, bytes included.

    Raises:
        NotFound: model, version, or the version has no reference profile.
    """
    with db.read() as session:
        row = visible_model(session, actor, model)
        target: ModelVersion = version_row(session, row, version)
        profile = session.scalars(
            select(ReferenceProfile).where(ReferenceProfile.version_id == target.id)
        ).one_or_none()
        if profile is None:
            raise NotFound(f"version {version} of model {model!r} has no reference profile")
        return ReferenceBlob(info=_info(model, version, profile), blob=profile.blob)


__all__ = ["MAX_REFERENCE_BYTES", "attach_reference", "get_reference"]
