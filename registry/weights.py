"""Weights URIs, checksums and per-module hashes of safetensors files, without torch."""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import io
import json
import os
import posixpath
import queue
import re
import stat
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import unquote, urlsplit

from registry.config import canonical_json, sha256_hex
from registry.errors import ConfigError, InvalidInput

__all__ = [
    "CHUNK_BYTES",
    "DEFAULT_GROUPING",
    "DTYPE_BITS",
    "HASH_WORKERS",
    "MAX_GROUPING_DEPTH",
    "MAX_GROUPING_PATTERNS",
    "MAX_HEADER_BYTES",
    "MAX_INDEX_BYTES",
    "MAX_INDEX_TENSORS",
    "MAX_PATTERN_LENGTH",
    "MAX_SHARDS",
    "MAX_URI_LENGTH",
    "REMOTE_SCHEMES",
    "ModuleGrouping",
    "ParsedWeightsUri",
    "WeightsFormat",
    "WeightsInfo",
    "inspect_weights",
    "outside_roots",
    "parse_weights_uri",
]

MAX_URI_LENGTH = 2048
REMOTE_SCHEMES = ("s3", "gs", "hf", "https")
CHUNK_BYTES = 1 << 20
MAX_HEADER_BYTES = 100_000_000  # the limit the safetensors library itself enforces
MAX_INDEX_BYTES = 64 << 20
MAX_INDEX_TENSORS = 1_000_000
MAX_SHARDS = 10_000
HASH_WORKERS = 2  # threads hashing at once; hashlib releases the GIL on large updates
MAX_GROUPING_DEPTH = 8
MAX_GROUPING_PATTERNS = 64
MAX_PATTERN_LENGTH = 200

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# Every dtype the safetensors format defines, with its width in bits; others are refused.
DTYPE_BITS = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
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

    ``patterns`` are globs (``fnmatch``, case-sensitive) over tensor names tried in order; the
    first that matches names the group: the pattern's text with a trailing ``.*`` or ``*``
    removed (``vision_model.encoder.*`` groups every tensor under it as
    ``vision_model.encoder``). Tensors no pattern matches are grouped by their first ``depth``
    dotted components, never counting the last one (the parameter's own name) unless it is the
    only one: with depth 2, ``vision_model.encoder.layers.0.q.weight`` belongs to
    ``vision_model.encoder``, ``text_projection.weight`` to ``text_projection`` and
    ``logit_scale`` to ``logit_scale``. Depth 1 is the top-level prefix.

    Raises:
        InvalidInput: on construction, for a depth outside 1..``MAX_GROUPING_DEPTH``, more
            than ``MAX_GROUPING_PATTERNS`` patterns, or a pattern that is empty, longer than
            ``MAX_PATTERN_LENGTH``, holds control characters or names an empty group (``*``).
    """

    depth: int = 1
    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        depth, patterns = self.depth, self.patterns
        if not isinstance(depth, int) or isinstance(depth, bool):
            raise InvalidInput("module grouping depth must be an integer")
        if not 1 <= depth <= MAX_GROUPING_DEPTH:
            raise InvalidInput(
                f"module grouping depth must be 1..{MAX_GROUPING_DEPTH}, not {depth}"
            )
        if isinstance(patterns, str) or not isinstance(patterns, tuple | list):
            raise InvalidInput("module grouping patterns must be a list of globs")
        if len(patterns) > MAX_GROUPING_PATTERNS:
            raise InvalidInput(f"at most {MAX_GROUPING_PATTERNS} module grouping patterns")
        for pattern in patterns:
            _check_pattern(pattern)
        object.__setattr__(self, "patterns", tuple(patterns))

    def to_json(self) -> dict[str, Any] | None:
        """Return the JSON the registry stores, or None for the default grouping."""
        out: dict[str, Any] = {}
        if self.depth != 1:
            out["depth"] = self.depth
        if self.patterns:
            out["patterns"] = list(self.patterns)
        return out or None

    @classmethod
    def from_json(cls, data: Any) -> ModuleGrouping:
        """Read a stored grouping (None means the default).

        Returns:
            The grouping; ``from_json(g.to_json()) == g``.

        Raises:
            InvalidInput: for something other than None or an object with ``depth`` and/or
                ``patterns``, a depth outside 1..8, too many or malformed patterns.
        """
        if data is None:
            return DEFAULT_GROUPING
        if not isinstance(data, dict):
            raise InvalidInput("module grouping must be an object with depth and/or patterns")
        unknown = sorted(set(data) - {"depth", "patterns"})
        if unknown:
            raise InvalidInput(f"module grouping has unknown keys {unknown}")
        patterns = data.get("patterns", [])
        if not isinstance(patterns, list):
            raise InvalidInput("module grouping patterns must be a list of globs")
        return cls(depth=data.get("depth", 1), patterns=tuple(patterns))

    def module_of(self, tensor: str) -> str:
        """Return the module a tensor name belongs to."""
        for pattern, regex in zip(self.patterns, _compiled(self.patterns), strict=True):
            if regex.match(tensor):
                return _group_name(pattern)
        parts = tensor.split(".")
        return ".".join(parts[: min(self.depth, max(len(parts) - 1, 1))])


def _check_pattern(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise InvalidInput("module grouping patterns must be non-empty strings")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidInput(f"module grouping pattern longer than {MAX_PATTERN_LENGTH} characters")
    if any(_is_control(c) for c in pattern):
        raise InvalidInput("module grouping patterns must not hold control characters")
    if not _group_name(pattern):
        raise InvalidInput(f"module grouping pattern {pattern!r} names an empty group")


def _group_name(pattern: str) -> str:
    if pattern.endswith(".*"):
        return pattern[:-2]
    return pattern[:-1] if pattern.endswith("*") else pattern


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p)) for p in patterns)


DEFAULT_GROUPING = ModuleGrouping()


@dataclass(frozen=True)
class WeightsInfo:
    """What the registry records about a version's weights.

    ``sha256`` is the file's sha256 for one safetensors file, and the manifest digest for a
    sharded checkpoint (``shards`` then maps each shard's file name to its digest); for remote
    weights it is the caller's. ``module_hashes`` are grouped by ``grouping``. The digests are
    defined in ``inspect_weights``.
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
    if port and (scheme != "https" or not (port.isascii() and port.isdigit())
                  or not 0 < int(port) < 65536):
        raise _reject(uri, f"bad port {port!r}")
    if parts.path in ("", "/"):
        raise _reject(uri, "no object path after the host")
    host = host.lower()
    normalised = f"{scheme}://{host}{':' + port if port else ''}{parts.path}"
    return ParsedWeightsUri(uri=normalised, scheme=cast(Scheme, scheme), host=host, path=None)


# --- inspection ----------------------------------------------------------------------------------

_EXPECTED = (
    "expected a .safetensors file, a *.safetensors.index.json index, or a directory holding one"
)
_INDEX_SUFFIX = ".safetensors.index.json"
_DEFAULT_INDEX = "model.safetensors.index.json"
_DEFAULT_FILE = "model.safetensors"


def _normalise_sha256(value: str) -> str:
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise InvalidInput("sha256 must be 64 hexadecimal characters")
    return value.lower()


def outside_roots(path: Path, allowed_roots: Sequence[Path]) -> bool:
    """Whether ``path`` lies outside every root, judged before the file system is asked.

    The path is normalised lexically (``..`` removed) and then resolved without ``strict``, so
    a missing file, a file outside, and a symlink whose target leaves a root all get the same
    answer, and nothing is learned about paths outside the roots.
    """
    lexical = Path(os.path.normpath(path))
    roots = [Path(root).resolve() for root in allowed_roots]
    if not lexical.is_absolute() or not any(lexical.is_relative_to(r) for r in roots):
        return True
    try:
        followed = lexical.resolve(strict=False)
    except (OSError, RuntimeError):  # a symlink loop: refused like any path outside
        return True
    return not any(followed.is_relative_to(r) for r in roots)


def _refusal(shown: Path, allowed_roots: Sequence[Path]) -> InvalidInput:
    return InvalidInput(
        f"weights file {str(shown)!r} is outside the allowed directories"
        if allowed_roots
        else "local weights files are not accepted here; give a remote URI and sha256"
    )


def _resolve_local(path: Path, allowed_roots: Sequence[Path] | None) -> Path:
    if allowed_roots is not None and outside_roots(path, allowed_roots):
        raise _refusal(path, allowed_roots)
    try:
        real = path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise InvalidInput(f"weights file {str(path)!r} does not exist") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise InvalidInput(f"weights file {str(path)!r} cannot be resolved: {exc}") from exc
    _check_roots(real, path, allowed_roots)
    return real


def _check_roots(real: Path, shown: Path, allowed_roots: Sequence[Path] | None) -> None:
    if allowed_roots is None:
        return
    roots = [Path(root).resolve() for root in allowed_roots]
    if not any(real.is_relative_to(root) for root in roots):
        raise _refusal(shown, allowed_roots)
    try:
        links = real.lstat().st_nlink if not real.is_dir() else 1
    except OSError:
        return  # opening it reports the problem
    if links > 1:
        # Another name of this file may lie outside the roots: a hard link cannot be followed.
        raise InvalidInput(
            f"weights file {str(shown)!r} has {links} hard links; one may be outside the "
            "allowed directories, so it is refused (copy the file instead)"
        )


def inspect_weights(
    uri: str,
    *,
    sha256: str | None = None,
    allowed_roots: Sequence[Path] | None = None,
    grouping: ModuleGrouping = DEFAULT_GROUPING,
) -> WeightsInfo:
    """Check a weights location and compute what the registry records about it.

    A local location is one safetensors file, a sharded checkpoint's index
    (``*.safetensors.index.json``, as transformers' ``save_pretrained`` writes it), or a
    directory holding ``model.safetensors.index.json`` (or exactly one ``*.safetensors.index.json``)
    or ``model.safetensors``. Every byte is read once and hashed once per digest it feeds.

    - One file (``format="safetensors"``): it must parse as safetensors whatever its name;
      ``sha256`` is the file's plain sha256 (what ``sha256sum`` prints).
    - Sharded (``format="safetensors-sharded"``): each shard's digest is
      ``sha256(canonical_json({"header": H, "tensors": {name: T}}))`` where ``H`` is the sha256
      of the shard's first 8 + header-length bytes and ``T`` each tensor's sha256; the header and
      the contiguous tensors cover the file, so the digest commits to every byte. ``sha256`` is
      the manifest digest ``sha256(canonical_json({"index": I, "shards": {file: digest}}))``
      with ``I`` the index file's sha256. ``size_bytes`` counts the index and every shard.
    - ``module_hashes``: per module of ``grouping``, sha256 of canonical JSON
      ``[[name, dtype, shape, tensor sha256], ...]`` sorted by name. It depends only on the
      module's tensors, so it is the same for one file and for any sharding of it.

    Remote URIs are never fetched; the caller's ``sha256`` is recorded (``format="remote"``).

    Args:
        uri: an absolute path or a URI accepted by ``parse_weights_uri``.
        sha256: required for remote URIs; for local weights, checked against the file's
            sha256 or the manifest digest.
        allowed_roots: ``None`` accepts any local path; otherwise a local path, and every shard,
            must resolve (symlinks followed) inside one of these directories; ``[]`` refuses
            local paths.
        grouping: how tensors are grouped into modules.

    Returns:
        The weights info; ``uri`` of local weights names the resolved real path of the file or
        of the index.

    Raises:
        InvalidInput: for a refused URI, a missing sha256 on a remote URI, a malformed sha256,
            a missing, non-regular or out-of-root local file, a file that is not safetensors,
            a directory with no (or an ambiguous) checkpoint, a malformed or over-large index,
            a shard that is missing, outside the index's directory (also through a symlink or
            hard link), malformed, or whose tensors differ from what the index assigns it, or
            a sha256 that does not match.
    """
    if not isinstance(grouping, ModuleGrouping):
        raise InvalidInput("grouping must be a ModuleGrouping")
    parsed = parse_weights_uri(uri)
    expected = _normalise_sha256(sha256) if sha256 is not None else None
    if parsed.path is None:
        if expected is None:
            raise InvalidInput(f"remote weights {parsed.uri!r} need the caller's sha256")
        return WeightsInfo(
            uri=parsed.uri, sha256=expected, size_bytes=None, format="remote", grouping=grouping
        )

    real = _resolve_local(parsed.path, allowed_roots)
    if real.is_dir():
        named = real / _pick_in_directory(real)
        real = _resolve_local(named, allowed_roots)
    else:
        named = parsed.path
    if real.name.endswith(_INDEX_SUFFIX):
        info = _inspect_sharded(named, real, allowed_roots, grouping)
    else:
        info = _inspect_file(real, grouping)
    if expected is not None and expected != info.sha256:
        what = "manifest digest" if info.format == "safetensors-sharded" else "file has"
        raise InvalidInput(
            f"sha256 mismatch for {str(real)!r}: given {expected}, {what} {info.sha256}"
        )
    return info


def _pick_in_directory(directory: Path) -> str:
    """Return the name of the index or single file a checkpoint directory holds."""
    try:
        names = os.listdir(directory)
    except OSError as exc:
        raise InvalidInput(f"weights directory {str(directory)!r} cannot be listed") from exc
    indexes = sorted(n for n in names if n.endswith(_INDEX_SUFFIX))
    if _DEFAULT_INDEX in indexes:
        indexes = [_DEFAULT_INDEX]
    has_single = _DEFAULT_FILE in names
    if len(indexes) > 1:
        raise InvalidInput(
            f"weights directory {str(directory)!r} holds several indexes {indexes}; name one"
        )
    if indexes and has_single:
        raise InvalidInput(
            f"weights directory {str(directory)!r} holds both {indexes[0]} and {_DEFAULT_FILE};"
            " name the one you mean"
        )
    if indexes:
        return indexes[0]
    if has_single:
        return _DEFAULT_FILE
    raise InvalidInput(
        f"weights directory {str(directory)!r} holds no {_DEFAULT_INDEX}, *{_INDEX_SUFFIX} or"
        f" {_DEFAULT_FILE} ({_EXPECTED})"
    )


@contextmanager
def _open_regular(
    real: Path, what: str = "weights"
) -> Iterator[tuple[io.BufferedReader, os.stat_result]]:
    try:
        # O_NONBLOCK: opening a FIFO must not hang; fstat below refuses it anyway.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise InvalidInput(f"{what} file {str(real)!r} cannot be opened: {exc.strerror}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidInput(f"{what} path {str(real)!r} is not a regular file")
    try:
        with os.fdopen(fd, "rb") as file:
            yield file, info
    except OSError as exc:
        raise InvalidInput(f"{what} file {str(real)!r} cannot be read: {exc.strerror}") from exc


def _inspect_file(real: Path, grouping: ModuleGrouping) -> WeightsInfo:
    with _open_regular(real) as (file, info):
        scan = _scan_safetensors(file, info.st_size, str(real), whole_file=True)
    return WeightsInfo(
        uri=real.as_uri(),
        sha256=scan.file_sha256,
        size_bytes=info.st_size,
        module_hashes=_module_hashes(scan.tensors, scan.tensor_sha256, grouping),
        format="safetensors",
        grouping=grouping,
    )


# --- sharded checkpoints -------------------------------------------------------------------------


def _index_error(where: Path, reason: str) -> InvalidInput:
    return InvalidInput(f"weights index {str(where)!r} is malformed: {reason}")


def _inspect_sharded(
    named: Path, real: Path, allowed_roots: Sequence[Path] | None, grouping: ModuleGrouping
) -> WeightsInfo:
    """Check the index and every shard it names, hashing the shards on ``HASH_WORKERS`` threads."""
    directory = named.parent.resolve()
    if real.parent != directory:
        raise InvalidInput(
            f"weights index {str(named)!r} is a link to a file outside its directory"
        )
    with _open_regular(real, "weights index") as (file, info):
        if info.st_size > MAX_INDEX_BYTES:
            raise _index_error(real, f"larger than {MAX_INDEX_BYTES} bytes")
        raw = file.read(MAX_INDEX_BYTES + 1)
    weight_map = _parse_index(raw, real)
    by_shard: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        by_shard.setdefault(shard, set()).add(tensor)
    if len(by_shard) > MAX_SHARDS:
        raise _index_error(real, f"names more than {MAX_SHARDS} shard files")
    paths = {name: _shard_path(directory, name, real, allowed_roots) for name in sorted(by_shard)}

    def scan(name: str) -> tuple[_Scan, int]:
        with _open_regular(paths[name], "weights shard") as (shard, stat_info):
            if stat_info.st_nlink > 1:  # checked on the open file: no swap in between
                raise InvalidInput(
                    f"shard {name!r} named by {str(real)!r} has {stat_info.st_nlink} hard links;"
                    " one may be outside the index's directory"
                )
            return _scan_safetensors(shard, stat_info.st_size, str(paths[name])), stat_info.st_size

    pool = ThreadPoolExecutor(max_workers=max(1, min(HASH_WORKERS, len(paths))))
    try:
        futures = {name: pool.submit(scan, name) for name in paths}
        scans = {name: future.result() for name, future in futures.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a bad shard stops the queued ones

    shards: dict[str, str] = {}
    tensors: list[_Tensor] = []
    tensor_sha256: dict[str, str] = {}
    size = len(raw)
    for name, (shard_scan, shard_size) in scans.items():
        held = {t.name for t in shard_scan.tensors}
        if held != by_shard[name]:
            raise InvalidInput(_mismatch(paths[name], real, by_shard[name], held))
        shards[name] = _digest(
            {"header": shard_scan.header_sha256, "tensors": shard_scan.tensor_sha256}, paths[name]
        )
        tensors.extend(shard_scan.tensors)
        tensor_sha256.update(shard_scan.tensor_sha256)
        size += shard_size
    manifest = _digest({"index": hashlib.sha256(raw).hexdigest(), "shards": shards}, real)
    return WeightsInfo(
        uri=real.as_uri(),
        sha256=manifest,
        size_bytes=size,
        module_hashes=_module_hashes(tensors, tensor_sha256, grouping),
        format="safetensors-sharded",
        grouping=grouping,
        shards=shards,
    )


def _parse_index(raw: bytes, where: Path) -> dict[str, str]:
    """Return the index's weight map (tensor -> shard file name), checked for shape and bounds."""
    try:
        index = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _index_error(where, f"not UTF-8 JSON ({exc})") from exc
    if not isinstance(index, dict):
        raise _index_error(where, "not a JSON object")
    if not isinstance(index.get("metadata", {}), dict):
        raise _index_error(where, "'metadata' is not an object")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _index_error(where, "no 'weight_map' object naming tensors and their shard files")
    if len(weight_map) > MAX_INDEX_TENSORS:
        raise _index_error(where, f"names more than {MAX_INDEX_TENSORS} tensors")
    for tensor, shard in weight_map.items():
        if not tensor or not isinstance(shard, str):
            raise _index_error(where, f"weight_map entry {tensor!r} is not a shard file name")
    return cast(dict[str, str], weight_map)


def _shard_path(
    directory: Path, name: str, index: Path, allowed_roots: Sequence[Path] | None
) -> Path:
    """Return a shard's real path after checking it is a plain file of the index's directory."""
    shown = f"shard {name!r} named by {str(index)!r}"
    if (
        name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or any(_is_control(c) for c in name)
        or len(name.encode("utf-8", "surrogatepass")) > 255
    ):
        raise InvalidInput(f"{shown} is not a file name in the index's directory")
    try:
        real = (directory / name).resolve(strict=True)
        info = real.stat()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{shown} does not exist") from exc
    except (OSError, RuntimeError) as exc:
        raise InvalidInput(f"{shown} cannot be resolved: {exc}") from exc
    if real.parent != directory:
        raise InvalidInput(f"{shown} is a link to a file outside the index's directory")
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{shown} is not a regular file")
    _check_roots(real, directory / name, allowed_roots)
    return real


def _mismatch(shard: Path, index: Path, mapped: set[str], held: set[str]) -> str:
    missing, extra = sorted(mapped - held), sorted(held - mapped)
    parts = []
    if missing:
        parts.append(f"lacks {_few(missing)} that {str(index)!r} assigns to it")
    if extra:
        parts.append(f"holds {_few(extra)} that {str(index)!r} does not assign to it")
    return f"weights shard {str(shard)!r} " + " and ".join(parts)


def _few(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"tensor{'s' if len(names) > 1 else ''} {shown}{more}"


def _digest(data: dict[str, Any], where: Path) -> str:
    try:
        return sha256_hex(canonical_json(data))
    except ConfigError as exc:  # a tensor name that is not valid UTF-8 text
        raise InvalidInput(f"weights {str(where)!r} name a tensor that is not text: {exc}") from exc


# --- one safetensors file ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tensor:
    name: str
    dtype: str
    shape: list[int]
    begin: int  # absolute file offsets
    end: int


@dataclass(frozen=True)
class _Scan:
    tensors: list[_Tensor]  # sorted by offset
    tensor_sha256: dict[str, str]
    header_sha256: str  # of the 8-byte length and the header
    file_sha256: str  # of the whole file, when asked for; "" otherwise


def _malformed(where: str, reason: str) -> InvalidInput:
    return InvalidInput(f"weights file {where!r} is not a safetensors file ({_EXPECTED}): {reason}")


def _read_header(file: io.BufferedReader, size: int, where: str) -> tuple[list[_Tensor], bytes]:
    """Read and validate the header.

    Returns:
        The tensors sorted by offset (they cover the data exactly) and the header's bytes,
        length prefix included; the file is left at the first data byte.
    """
    prefix = file.read(8)
    if len(prefix) < 8:
        raise _malformed(where, f"shorter than the 8-byte header length ({size} bytes)")
    length = int.from_bytes(prefix, "little")
    if length < 2 or length > MAX_HEADER_BYTES or 8 + length > size:
        raise _malformed(where, f"header length {length} does not fit a {size}-byte file")
    raw = file.read(length)
    if len(raw) < length:
        raise _malformed(where, "truncated header")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
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
    return tensors, prefix + raw


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
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        shown = dtype if isinstance(dtype, str) and len(dtype) <= 20 else type(dtype).__name__
        raise _malformed(where, f"tensor {name!r} has a bad dtype {shown!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise _malformed(where, f"tensor {name!r} has a bad shape")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(o) for o in offsets)
        or not offsets[0] <= offsets[1] <= data_len
    ):
        raise _malformed(where, f"tensor {name!r} has data offsets out of bounds")
    bits = DTYPE_BITS[dtype]
    for dim in shape:
        bits *= dim
    if bits % 8 or bits // 8 != offsets[1] - offsets[0]:
        raise _malformed(where, f"tensor {name!r} byte length does not match dtype and shape")
    return _Tensor(name, dtype, shape, data_start + offsets[0], data_start + offsets[1])


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _scan_safetensors(
    file: io.BufferedReader, size: int, where: str, whole_file: bool = False
) -> _Scan:
    """Validate the header and hash every tensor's bytes (and the whole file) in one read.

    With ``whole_file`` the file's plain sha256 runs on a second thread over the same buffers,
    so the two hashes of each byte overlap in time (hashlib releases the GIL).
    """
    tensors, header = _read_header(file, size, where)
    hashers = {t.name: hashlib.sha256() for t in tensors}
    whole = _BackgroundHash(header, threaded=HASH_WORKERS > 1) if whole_file else None
    try:
        position, index = len(header), 0
        while position < size:
            buffer = whole.buffer() if whole is not None else _buffer()
            view = memoryview(buffer)[: min(CHUNK_BYTES, size - position)]
            got = file.readinto(view)
            if not got:
                raise _malformed(where, "the file changed while it was read")
            chunk_end = position + got
            # Tensors are contiguous and sorted: feed every one that overlaps this chunk.
            while index < len(tensors) and tensors[index].begin < chunk_end:
                tensor = tensors[index]
                lo, hi = max(tensor.begin, position), min(tensor.end, chunk_end)
                if hi > lo:
                    hashers[tensor.name].update(view[lo - position : hi - position])
                if tensor.end > chunk_end:
                    break
                index += 1
            if whole is not None:
                whole.submit(buffer, got)
            position = chunk_end
        if file.read(1):
            raise _malformed(where, "the file changed while it was read")
        file_sha256 = whole.hexdigest() if whole is not None else ""
    finally:
        if whole is not None:
            whole.close()
    return _Scan(
        tensors=tensors,
        tensor_sha256={name: h.hexdigest() for name, h in hashers.items()},
        header_sha256=hashlib.sha256(header).hexdigest(),
        file_sha256=file_sha256,
    )


_local_buffer = threading.local()


def _buffer() -> bytearray:
    """One reusable read buffer per thread."""
    buffer: bytearray | None = getattr(_local_buffer, "buffer", None)
    if buffer is None:
        buffer = _local_buffer.buffer = bytearray(CHUNK_BYTES)
    return buffer


class _BackgroundHash:
    """sha256 of a stream of buffers on its own thread; buffers come back through ``buffer()``."""

    _BUFFERS = 4

    def __init__(self, initial: bytes, *, threaded: bool) -> None:
        self._hash = hashlib.sha256(initial)
        self._free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        for _ in range(self._BUFFERS if threaded else 1):
            self._free.put(bytearray(CHUNK_BYTES))
        self._work: queue.SimpleQueue[tuple[bytearray, int] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="weights-sha256", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            buffer, length = item
            self._hash.update(memoryview(buffer)[:length])
            self._free.put(buffer)

    def buffer(self) -> bytearray:
        """Return a buffer the hash no longer reads."""
        return self._free.get()

    def submit(self, buffer: bytearray, length: int) -> None:
        """Hash the first ``length`` bytes of ``buffer``, then hand it back to ``buffer()``."""
        if self._thread is None:
            self._hash.update(memoryview(buffer)[:length])
            self._free.put(buffer)
        else:
            self._work.put((buffer, length))

    def hexdigest(self) -> str:
        """Wait for every submitted buffer and return the digest."""
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        """Stop the thread (idempotent)."""
        if self._thread is not None:
            self._work.put(None)
            self._thread.join()
            self._thread = None


def _module_hashes(
    tensors: list[_Tensor], tensor_sha256: dict[str, str], grouping: ModuleGrouping
) -> dict[str, str]:
    """sha256 of canonical JSON ``[[name, dtype, shape, sha256], …]`` per module, sorted by name.

    A module's hash depends only on its own tensors, not on their order or file.
    """
    groups: dict[str, list[list[Any]]] = {}
    for tensor in sorted(tensors, key=lambda t: t.name):
        row = [tensor.name, tensor.dtype, tensor.shape, tensor_sha256[tensor.name]]
        groups.setdefault(grouping.module_of(tensor.name), []).append(row)
    try:
        return {module: sha256_hex(canonical_json(rows)) for module, rows in groups.items()}
    except ConfigError as exc:  # a tensor name that is not valid UTF-8 text
        raise InvalidInput(f"malformed safetensors header: {exc.detail}") from exc
