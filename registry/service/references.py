"""Reference profiles: the drift baseline bytes (with format tag and sha256) of one version."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import re
import struct
import zipfile
from typing import Any

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


MMGOV_PROFILE_FORMAT = "mmgov.reference.v1+npz"
"""The format tag of profiles written by ``instrumentation.reference.ReferenceProfile``."""


def read_profile_metadata(blob: bytes) -> dict[str, Any] | None:
    """Read the JSON metadata of an mmgov reference profile without numpy.

    The profile is an ``.npz`` (zip) archive whose ``__meta__.npy`` member holds the metadata as
    a uint8 array; only the NumPy file header is parsed here (as a literal, never unpickled).

    Returns:
        The metadata (format, modules, n_samples, ...) or None if ``blob`` is not such a profile.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            member = archive.read("__meta__.npy")
        if not member.startswith(b"\x93NUMPY"):
            return None
        major = member[6]
        size_format, offset = ("<H", 8) if major == 1 else ("<I", 10)
        (header_len,) = struct.unpack_from(size_format, member, offset)
        start = offset + struct.calcsize(size_format)
        header = ast.literal_eval(member[start : start + header_len].decode("latin1"))
        if not isinstance(header, dict) or header.get("descr") not in ("|u1", "<u1"):
            return None
        meta = json.loads(member[start + header_len :].decode())
    except (KeyError, ValueError, SyntaxError, struct.error, zipfile.BadZipFile, IndexError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != MMGOV_PROFILE_FORMAT:
        return None
    return meta


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
