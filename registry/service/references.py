"""Reference profiles: the drift baseline bytes (with format tag and sha256) of one version."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.audit import chain
from registry.db import Database
from registry.errors import Conflict, InvalidInput, NotFound
from registry.models import ModelVersion, ReferenceProfile, utcnow
from registry.profile_check import (
    MMGOV_PROFILE_FORMAT,
    check_module_names,
    check_npz,
    check_profile,
    is_npz_format,
    read_npz,
)
from registry.schemas import Actor, ReferenceBlob, ReferenceInfo
from registry.service._access import require_writer, visible_model
from registry.service._lookup import version_row

MAX_REFERENCE_BYTES = 256 * 1024 * 1024
"""Largest reference profile accepted, packed and unpacked; it is stored in the database row."""
MAX_SAMPLES = 2_147_483_647
"""``reference_profiles.n_samples`` is a 32-bit integer on PostgreSQL."""


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


def read_profile_metadata(blob: bytes) -> dict[str, Any] | None:
    """Read and check the metadata of an mmgov reference profile without numpy.

    Sizes are checked before anything is decompressed (see ``registry.profile_check``), so a zip
    bomb costs the reading of its directory, not its expansion.

    Returns:
        The metadata (format, modules, n_samples, ...), or None if ``blob`` is not a zip archive
        or has no ``__meta__`` member (not an mmgov profile).

    Raises:
        InvalidInput: a zip archive that is not a valid npz, or an mmgov profile that is
            inconsistent.
    """
    if not blob.startswith(b"PK\x03\x04"):
        return None
    archive, members = read_npz(blob, max_bytes=MAX_REFERENCE_BYTES)
    archive.close()
    if "__meta__" not in members:
        return None
    return check_profile(blob, max_bytes=MAX_REFERENCE_BYTES)


def _validate(fmt: str, blob: bytes, n_samples: int, modules: list[str]) -> list[str]:
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
    if isinstance(n_samples, bool) or not 1 <= n_samples <= MAX_SAMPLES:
        raise InvalidInput(f"n_samples must be 1 to {MAX_SAMPLES}, got {n_samples}")
    names = check_module_names(modules)
    if fmt == MMGOV_PROFILE_FORMAT:
        meta = check_profile(blob, max_bytes=MAX_REFERENCE_BYTES)
        if sorted(meta["modules"]) != sorted(names):
            raise InvalidInput(f"the profile holds modules {meta['modules']}, not {names}")
        if meta["n_samples"] != n_samples:
            raise InvalidInput(f"the profile holds {meta['n_samples']} samples, not {n_samples}")
    elif is_npz_format(fmt):
        check_npz(blob, max_bytes=MAX_REFERENCE_BYTES)
    return names


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
        InvalidInput: bad format, empty/oversized blob, bad n_samples or modules (dotted ASCII
            paths); an npz format tag whose bytes are no plain npz (pickles, zip bombs), an mmgov
            profile whose arrays disagree with its metadata or with ``n_samples``/``modules``.
        PermissionDenied: reader. NotFound: model or version.
        Conflict: the version already has a different profile (versions are immutable).
    """
    require_writer(actor)
    modules = _validate(fmt, blob, n_samples, modules)
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
        chain.append(
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


__all__ = [
    "MAX_REFERENCE_BYTES",
    "MMGOV_PROFILE_FORMAT",
    "attach_reference",
    "get_reference",
    "read_profile_metadata",
]
