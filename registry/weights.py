"""Weights URIs, checksums and per-module hashes of safetensors files, without torch."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import posixpath
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast
from urllib.parse import unquote, urlsplit

from registry.config import canonical_json, sha256_hex
from registry.errors import ConfigError, InvalidInput

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_GROUPING",
    "MAX_HEADER_BYTES",
    "MAX_URI_LENGTH",
    "REMOTE_SCHEMES",
    "ModuleGrouping",
    "ParsedWeightsUri",
    "WeightsFormat",
    "WeightsInfo",
    "inspect_weights",
    "parse_weights_uri",
]

MAX_URI_LENGTH = 2048
REMOTE_SCHEMES = ("s3", "gs", "hf", "https")
CHUNK_BYTES = 1 << 20
MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors library itself enforces

_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# safetensors dtypes and their element sizes in bytes; unknown dtypes skip the size check.
_DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip


Scheme = Literal["file", "s3", "gs", "hf", "https"]


@dataclass(frozen=True)
class ParsedWeightsUri:
    """A weights URI that passed every check; ``path`` is set for local files only."""

    uri: str  # normalised: file:///abs/path for local files, lower-case scheme and host otherwise
    scheme: Scheme
    host: str | None  # bucket / organisation / host for remote URIs
    path: Path | None  # absolute local path (percent-decoded) for file URIs

    @property
    def is_local(self) -> bool:
        """Whether the weights are a local file the registry can read and hash."""
        return self.scheme == "file"


WeightsFormat = Literal["safetensors", "safetensors-sharded", "remote"]


@dataclass(frozen=True)
class ModuleGrouping:
    """How tensor names are grouped into modules for per-module hashes.

    ``depth`` dotted components of a tensor's name make its module (1: ``vision_model``;
    2: ``vision_model.encoder``). ``patterns`` are globs over tensor names tried in order before
    ``depth``; the first that matches names the group by the pattern's own text with any trailing
    ``.*`` removed (``vision_model.encoder.*`` groups every tensor under it as
    ``vision_model.encoder``).
    """

    depth: int = 1
    patterns: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any] | None:
        """Return the JSON the registry stores, or None for the default grouping."""
        if self == DEFAULT_GROUPING:
            return None
        out: dict[str, Any] = {"depth": self.depth}
        if self.patterns:
            out["patterns"] = list(self.patterns)
        return out

    @classmethod
    def from_json(cls, data: Any) -> ModuleGrouping:
        """Read a stored grouping (None means the default).

        Raises:
            InvalidInput: for a depth outside 1..8, too many or malformed patterns.
        """
        if data is None:
            return DEFAULT_GROUPING
        if not isinstance(data, dict) or set(data) - {"depth", "patterns"}:
            raise InvalidInput("module grouping must be {'depth': N, 'patterns': [...]}")
        depth, patterns = data.get("depth", 1), data.get("patterns") or []
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 8:
            raise InvalidInput(f"module depth must be an integer from 1 to 8, got {depth!r}")
        if not isinstance(patterns, list) or len(patterns) > 64:
            raise InvalidInput("module patterns must be a list of at most 64 globs")
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern or len(pattern) > 200:
                raise InvalidInput(f"module pattern {pattern!r} must be 1-200 characters")
        return cls(depth=depth, patterns=tuple(patterns))

    def module_of(self, tensor: str) -> str:
        """Return the module a tensor name belongs to."""
        for pattern in self.patterns:
            if fnmatch.fnmatchcase(tensor, pattern):
                return pattern.removesuffix("*").removesuffix(".")
        return ".".join(tensor.split(".")[: self.depth])


DEFAULT_GROUPING = ModuleGrouping()


@dataclass(frozen=True)
class WeightsInfo:
    """What the registry records about a version's weights.

    ``sha256`` is the file's sha256 for one safetensors file, and the manifest digest for a
    sharded checkpoint (``shards`` then maps each shard's file name to its digest).
    """

    uri: str
    sha256: str
    size_bytes: int | None
    module_hashes: dict[str, str] = field(default_factory=dict)
    format: WeightsFormat = "remote"
    grouping: ModuleGrouping = DEFAULT_GROUPING
    shards: dict[str, str] = field(default_factory=dict)


def _reject(uri: str, reason: str) -> InvalidInput:
    # Error messages get logged: never echo credentials from user info.
    shown = re.sub(r"//[^/]*@", "//***@", uri)
    shown = shown if len(uri) <= 120 else uri[:117] + "..."
    return InvalidInput(f"weights URI {shown!r} refused: {reason}")


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F


def _fully_decoded(uri: str) -> str:
    """Percent-decode until nothing changes, so ``%252e`` cannot hide a ``.``."""
    current = uri
    for _ in range(8):
        decoded = unquote(current)
        if decoded == current:
            return decoded
        current = decoded
    raise _reject(uri, "percent-encoding nested too deeply")


def _check_text(uri: str, text: str) -> None:
    """Refuse control characters, backslashes and ``..`` segments anywhere in ``text``."""
    if any(_is_control(c) for c in text):
        raise _reject(uri, "control characters are not allowed")
    if "\\" in text:
        raise _reject(uri, "backslashes are not allowed")
    if ".." in re.split(r"[/?#]", text):
        raise _reject(uri, "'..' path segments are not allowed")


def parse_weights_uri(uri: str) -> ParsedWeightsUri:
    """Check a weights location and normalise it.

    Accepted: absolute local paths, ``file://`` URIs (host empty or ``localhost``, percent-
    decoded), and ``s3://``, ``gs://``, ``hf://``, ``https://`` URIs with a host and an object
    path. The checks run on the raw text and on its repeatedly percent-decoded form.

    Returns:
        The parsed URI; local files become ``file:///abs/path``.

    Raises:
        InvalidInput: naming the reason, for an empty, over-long (> ``MAX_URI_LENGTH``) or
            relative location, control characters (NUL, newlines, tabs, DEL, C1), backslashes,
            ``..`` segments (also percent-encoded, also twice), user info, query strings or
            fragments, an unknown scheme (``http`` included), an empty or malformed host, a
            ``file://`` host other than ``localhost``, or a missing object path.
    """
    if not isinstance(uri, str) or not uri:
        raise _reject(str(uri), "empty location")
    if len(uri) > MAX_URI_LENGTH:
        raise _reject(uri, f"longer than {MAX_URI_LENGTH} characters")
    _check_text(uri, uri)
    _check_text(uri, _fully_decoded(uri))
    if uri != uri.strip():
        raise _reject(uri, "leading or trailing whitespace")

    if uri.startswith("/"):
        if uri.startswith("//"):
            raise _reject(uri, "a path starting with '//' is ambiguous")
        return _local(uri, uri)
    match = _SCHEME.match(uri)
    if match is None:
        raise _reject(uri, "relative paths are not allowed; give an absolute path or a URI")
    scheme = match.group(1).lower()
    if scheme == "file":
        return _parse_file_uri(uri)
    if scheme not in REMOTE_SCHEMES:
        allowed = ", ".join(f"{s}://" for s in ("file", *REMOTE_SCHEMES))
        raise _reject(uri, f"scheme {scheme!r} is not allowed (allowed: {allowed})")
    return _parse_remote(uri, scheme)


def _local(uri: str, raw_path: str) -> ParsedWeightsUri:
    path = posixpath.normpath(raw_path)  # drops '.' segments and doubled slashes
    if not path.startswith("/") or path.startswith("//"):
        raise _reject(uri, "the local path must be absolute")
    local = Path(path)
    return ParsedWeightsUri(uri=local.as_uri(), scheme="file", host=None, path=local)


def _parse_file_uri(uri: str) -> ParsedWeightsUri:
    parts = urlsplit(uri)
    if parts.query or parts.fragment or "?" in uri or "#" in uri:
        raise _reject(uri, "query strings and fragments are not allowed")
    if "@" in parts.netloc:
        raise _reject(uri, "user info is not allowed")
    if parts.netloc not in ("", "localhost"):
        raise _reject(uri, f"file URIs must not name a host ({parts.netloc!r})")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise _reject(uri, "the file path must be absolute")
    _check_text(uri, path)
    return _local(uri, path)


def _parse_remote(uri: str, scheme: str) -> ParsedWeightsUri:
    if not uri[len(scheme) + 1 :].startswith("//"):
        raise _reject(uri, f"expected {scheme}://host/path")
    if any(c.isspace() for c in uri):
        raise _reject(uri, "whitespace must be percent-encoded")
    parts = urlsplit(uri)
    if "?" in uri or "#" in uri:
        # Presigned URLs carry credentials in the query string; the registry never stores them.
        raise _reject(uri, "query strings and fragments are not allowed")
    if "@" in parts.netloc:
        raise _reject(uri, "user info is not allowed")
    netloc = parts.netloc
    host, _, port = netloc.partition(":")
    if not host:
        raise _reject(uri, "the host (bucket) is empty")
    if not _HOST.match(host):
        raise _reject(uri, f"malformed host {host!r}")
    if port and (scheme != "https" or not port.isdigit() or not 0 < int(port) < 65536):
        raise _reject(uri, f"bad port {port!r}")
    if parts.path in ("", "/"):
        raise _reject(uri, "no object path after the host")
    host = host.lower()
    normalised = f"{scheme}://{host}{':' + port if port else ''}{parts.path}"
    return ParsedWeightsUri(uri=normalised, scheme=cast(Scheme, scheme), host=host, path=None)


# --- inspection ----------------------------------------------------------------------------------


def _normalise_sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.match(value):
        raise InvalidInput("sha256 must be 64 hexadecimal characters")
    return value.lower()


def _resolve_local(path: Path, allowed_roots: Sequence[Path] | None) -> Path:
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InvalidInput(f"weights file {str(path)!r} does not exist") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise InvalidInput(f"weights file {str(path)!r} cannot be resolved: {exc}") from exc
    if allowed_roots is not None:
        roots = [Path(root).resolve() for root in allowed_roots]
        if not any(real.is_relative_to(root) for root in roots):
            raise InvalidInput(
                f"weights file {str(path)!r} is outside the allowed directories"
                if roots
                else "local weights files are not accepted here; give a remote URI and sha256"
            )
    return real


def inspect_weights(
    uri: str,
    *,
    sha256: str | None = None,
    allowed_roots: Sequence[Path] | None = None,
    grouping: ModuleGrouping = DEFAULT_GROUPING,
) -> WeightsInfo:
    """Check a weights location and compute what the registry records about it.

    Local files are streamed once: sha256, size and, for ``.safetensors`` files, one hash per
    top-level module prefix (see ``module_hashes``). Remote URIs are never fetched; the caller's
    ``sha256`` is recorded instead.

    Args:
        uri: an absolute path or a URI accepted by ``parse_weights_uri``.
        sha256: required for remote URIs; for local files, checked against the content.
        allowed_roots: ``None`` accepts any local path; otherwise a local path must resolve
            (symlinks followed) inside one of these directories; ``[]`` refuses local paths.

    Returns:
        The weights info; ``uri`` of a local file names its resolved real path.

    Raises:
        InvalidInput: for a refused URI, a missing sha256 on a remote URI, a malformed sha256,
            a missing, non-regular or out-of-root local file, a sha256 that does not match the
            file, or a malformed safetensors file.
    """
    parsed = parse_weights_uri(uri)
    expected = _normalise_sha256(sha256) if sha256 is not None else None
    if parsed.path is None:
        if expected is None:
            raise InvalidInput(f"remote weights {parsed.uri!r} need the caller's sha256")
        return WeightsInfo(uri=parsed.uri, sha256=expected, size_bytes=None, module_hashes={})

    real = _resolve_local(parsed.path, allowed_roots)
    is_safetensors = parsed.uri.lower().endswith(".safetensors")
    try:
        # O_NONBLOCK: opening a FIFO must not hang; fstat below refuses it anyway.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidInput(f"weights file {str(real)!r} cannot be opened: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidInput(f"weights path {str(real)!r} is not a regular file")
    try:
        with os.fdopen(fd, "rb") as file:
            if is_safetensors:
                digest, modules = _hash_safetensors(file, info.st_size, str(real), grouping)
            else:
                digest, modules = _hash_stream(file), {}
    except OSError as exc:
        raise InvalidInput(f"weights file {str(real)!r} cannot be read: {exc.strerror}") from exc
    if expected is not None and expected != digest:
        raise InvalidInput(
            f"sha256 mismatch for {str(real)!r}: given {expected}, file has {digest}"
        )
    return WeightsInfo(
        uri=real.as_uri(),
        sha256=digest,
        size_bytes=info.st_size,
        module_hashes=modules,
        format="safetensors",
        grouping=grouping,
    )


def _hash_stream(file: BinaryIO) -> str:
    hasher = hashlib.sha256()
    while chunk := file.read(CHUNK_BYTES):
        hasher.update(chunk)
    return hasher.hexdigest()


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: list[int]
    begin: int  # absolute file offsets
    end: int


def _malformed(where: str, reason: str) -> InvalidInput:
    return InvalidInput(f"malformed safetensors file {where!r}: {reason}")


def _read_header(file: BinaryIO, size: int, where: str) -> list[_Tensor]:
    """Read and validate the header; tensors come back sorted by offset, covering the data."""
    prefix = file.read(8)
    if len(prefix) < 8:
        raise _malformed(where, "shorter than the 8-byte header length")
    length = int.from_bytes(prefix, "little")
    if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
        raise _malformed(where, f"header length {length} does not fit a {size}-byte file")
    raw = file.read(length)
    if len(raw) < length:
        raise _malformed(where, "truncated header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _malformed(where, f"header is not UTF-8 JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise _malformed(where, "header is not a JSON object")
    data_start, data_len = 8 + length, size - 8 - length
    tensors = [
        _tensor(name, entry, data_start, data_len, where)
        for name, entry in header.items()
        if name != "__metadata__"
    ]
    tensors.sort(key=lambda t: (t.begin, t.end))
    cursor = data_start
    for tensor in tensors:
        if tensor.begin != cursor:
            reason = "overlap" if tensor.begin < cursor else "leave a gap"
            raise _malformed(where, f"tensor byte ranges {reason} at {tensor.name!r}")
        cursor = tensor.end
    if cursor != size:
        raise _malformed(where, f"{size - cursor} trailing bytes not covered by any tensor")
    return tensors


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _tensor(name: str, entry: Any, data_start: int, data_len: int, where: str) -> _Tensor:
    if not name or not isinstance(entry, dict):
        raise _malformed(where, f"tensor entry {name!r} is not an object")
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype, str) or not re.fullmatch(r"[A-Z0-9_]+", dtype):
        raise _malformed(where, f"tensor {name!r} has a bad dtype")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _malformed(where, f"tensor {name!r} has a bad shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or not offsets[0] <= offsets[1] <= data_len
    ):
        raise _malformed(where, f"tensor {name!r} has data offsets out of bounds")
    if dtype in _DTYPE_BYTES:
        elements = 1
        for dim in shape:
            elements *= dim
        if elements * _DTYPE_BYTES[dtype] != offsets[1] - offsets[0]:
            raise _malformed(where, f"tensor {name!r} byte length does not match dtype and shape")
    return _Tensor(name, dtype, shape, data_start + offsets[0], data_start + offsets[1])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _hash_safetensors(
    file: BinaryIO, size: int, where: str, grouping: ModuleGrouping
) -> tuple[str, dict[str, str]]:
    """Hash the whole file and every tensor's byte range in one pass."""
    tensors = _read_header(file, size, where)
    file.seek(0)
    whole = hashlib.sha256()
    tensor_hashes = {t.name: hashlib.sha256() for t in tensors}
    queue, index, position = tensors, 0, 0
    while chunk := file.read(CHUNK_BYTES):
        whole.update(chunk)
        chunk_end = position + len(chunk)
        # Tensors are contiguous and sorted: feed every one that overlaps this chunk.
        while index < len(queue) and queue[index].begin < chunk_end:
            tensor = queue[index]
            lo, hi = max(tensor.begin, position), min(tensor.end, chunk_end)
            if hi > lo:
                tensor_hashes[tensor.name].update(chunk[lo - position : hi - position])
            if tensor.end > chunk_end:
                break
            index += 1
        position = chunk_end
    if position != size:
        raise _malformed(where, "the file changed while it was read")
    return whole.hexdigest(), _module_hashes(tensors, tensor_hashes, grouping)


def _module_hashes(
    tensors: list[_Tensor], tensor_hashes: dict[str, hashlib._Hash], grouping: ModuleGrouping
) -> dict[str, str]:
    """sha256 of canonical JSON ``[[name, dtype, shape, sha256], …]`` per prefix, sorted by name.

    A module's hash depends only on its own tensors, not on their order in the file.
    """
    groups: dict[str, list[list[Any]]] = {}
    for tensor in sorted(tensors, key=lambda t: t.name):
        prefix = grouping.module_of(tensor.name)
        digest = tensor_hashes[tensor.name].hexdigest()
        groups.setdefault(prefix, []).append([tensor.name, tensor.dtype, tensor.shape, digest])
    try:
        return {prefix: sha256_hex(canonical_json(rows)) for prefix, rows in groups.items()}
    except ConfigError as exc:  # a tensor name that is not valid UTF-8 text
        raise InvalidInput(f"malformed safetensors header: {exc.detail}") from exc
