"""Signed audit checkpoints: Ed25519 signatures of (seq, hash, at), the key kept off the database.

Whoever can write the database can recompute the whole chain; they cannot sign. A checkpoint
signed at seq N makes any rewrite of events <= N detectable by ``mmgov audit verify``; events
after the newest checkpoint are only as safe as the schedule that signs the next one.

Ed25519 (``cryptography``, the PyCA library) rather than HMAC-SHA256: verifying needs only the
public key, so auditors, CI jobs and every sidecar host can check checkpoints without holding
anything that could forge one; with HMAC every verifier would hold the signing secret.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from registry.config import canonical_json
from registry.errors import AuditChainBroken, InvalidInput
from registry.models import utcnow
from registry.schemas import Checkpoint


class SignedCheckpoint(BaseModel):
    """One line of a checkpoints file: the audit head, when it was read, and its signature."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int
    hash: str
    at: datetime
    key_id: str
    signature: str
    """Base64 Ed25519 signature of the canonical JSON of seq, hash, at and key_id."""

    def message(self) -> bytes:
        """The bytes the signature covers."""
        at = self.at.astimezone(UTC).isoformat(timespec="microseconds")
        fields = {"seq": self.seq, "hash": self.hash, "at": at, "key_id": self.key_id}
        return canonical_json(fields).encode()

    def checkpoint(self) -> Checkpoint:
        """The plain checkpoint (seq and hash)."""
        return Checkpoint(seq=self.seq, hash=self.hash)


def key_id(public: Ed25519PublicKey) -> str:
    """Return the first 16 hex digits of the sha256 of the raw public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_key(private_path: Path) -> Path:
    """Write a new Ed25519 key pair: ``private_path`` (PEM, mode 0600) and ``<path>.pub``.

    Returns:
        The public key's path.

    Raises:
        InvalidInput: the private file exists already, or cannot be written.
    """
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    public_path = private_path.with_name(private_path.name + ".pub")
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private)
        public_path.write_bytes(public)
    except FileExistsError as exc:
        raise InvalidInput(f"{private_path} exists; refusing to overwrite a signing key") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot write {exc.filename}: {exc.strerror}") from exc
    return public_path


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc.strerror}") from exc


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load a PEM Ed25519 private key.

    Raises:
        InvalidInput: unreadable, or not an unencrypted Ed25519 private key.
    """
    try:
        key = serialization.load_pem_private_key(_read(path, "signing key"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load a PEM Ed25519 public key.

    Raises:
        InvalidInput: unreadable, or not an Ed25519 public key.
    """
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"{path} is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(f"{path} is not an Ed25519 public key")
    return key


def sign(point: Checkpoint, key: Ed25519PrivateKey, *, at: datetime | None = None
         ) -> SignedCheckpoint:
    """Sign the audit head ``point``.

    Returns:
        The signed checkpoint (one JSON line of a checkpoints file).
    """
    unsigned = SignedCheckpoint(seq=point.seq, hash=point.hash, at=at or utcnow(),
                                key_id=key_id(key.public_key()), signature="")
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return unsigned.model_copy(update={"signature": signature})


def read_signed(lines: Iterable[str], public: Ed25519PublicKey, *, source: str
                ) -> list[SignedCheckpoint]:
    """Parse a checkpoints file (JSON lines) and check every signature.

    Returns:
        The checkpoints, in file order.

    Raises:
        InvalidInput: a line that is not a signed checkpoint.
        AuditChainBroken: a signature that does not verify with ``public`` (a forged or edited
            checkpoint, or one signed by another key).
    """
    points: list[SignedCheckpoint] = []
    expected_id = key_id(public)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            point = SignedCheckpoint.model_validate_json(line)
            signature = base64.b64decode(point.signature, validate=True)
        except (ValidationError, ValueError) as exc:
            raise InvalidInput(f"{source}:{number}: not a signed checkpoint: {exc}") from exc
        if point.key_id != expected_id:
            raise AuditChainBroken(
                f"{source}:{number}: checkpoint seq {point.seq} is signed by key "
                f"{point.key_id}, not {expected_id}",
                point.seq,
            )
        try:
            public.verify(signature, point.message())
        except InvalidSignature as exc:
            raise AuditChainBroken(
                f"{source}:{number}: the signature of checkpoint seq {point.seq} does not verify",
                point.seq,
            ) from exc
        points.append(point)
    return points


def read_signed_file(path: Path, public_key: Path | None) -> list[Checkpoint]:
    """Read a checkpoints file and check its signatures with the public key at ``public_key``.

    Returns:
        The checkpoints (seq and hash).

    Raises:
        InvalidInput: no public key given, unreadable file or key. AuditChainBroken: a bad
            signature.
    """
    if public_key is None:
        raise InvalidInput("signed checkpoints need --public-key (or MMGOV_AUDIT_PUBLIC_KEY)")
    public = load_public_key(public_key)
    text = _read(path, "checkpoints file").decode("utf-8", errors="replace")
    return [p.checkpoint() for p in read_signed(text.splitlines(), public, source=str(path))]


__all__ = [
    "SignedCheckpoint",
    "generate_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "read_signed",
    "read_signed_file",
    "sign",
]
