"""Reference profile bytes checked without numpy: npz structure, sizes before reading, metadata.

An ``.npz`` is a zip of ``.npy`` members. Every size comes from the zip's central directory and
each member's ``.npy`` header, and is checked before a byte of data is decompressed, so a zip bomb
is refused at the cost of reading its directory. Object arrays (pickles) are refused by dtype.
"""

from __future__ import annotations

import io
import json
import re
import struct
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.errors import InvalidInput

MMGOV_PROFILE_FORMAT = "mmgov.reference.v1+npz"
"""The format tag of profiles written by ``instrumentation.drift.reference.ReferenceProfile``."""

MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")
"""A module's dotted path (``text_encoder.layers.0``), ASCII: every backend and header carry it."""
MAX_MODULE_NAME = 128
MAX_MEMBERS = 1025
"""``__meta__`` plus 1024 modules."""
MAX_EXPANSION = 32
"""Largest ratio of uncompressed to archive bytes; mmgov writes stored (uncompressed) members."""
EXPANSION_ALLOWANCE = 1 << 20
MAX_META_BYTES = 1 << 20
MAX_HEADER_BYTES = 4096
_READ_CHUNK = 1 << 20

# The .npy header numpy writes: a dict literal with three keys in this order. Parsed by a regex,
# never evaluated, so a hostile header cannot recurse or allocate.
_HEADER = re.compile(
    r"\{'descr': '(?P<descr>[<>|=][a-zA-Z][0-9]{0,2})', 'fortran_order': (?P<fortran>False|True), "
    r"'shape': \((?P<shape>(?:[0-9]{1,12}, ?)*(?:[0-9]{1,12})?)\), \}\s*"
)
_DTYPES = {"<f2": 2, "<f4": 4, "<f8": 8, "|u1": 1}
"""dtypes a profile may hold (little-endian floats; uint8 for the metadata); anything else,
``O`` (pickled objects) above all, is refused."""


@dataclass(frozen=True)
class NpyMember:
    """One ``.npy`` member: its dtype (``<f8``), shape and declared sizes."""

    name: str
    descr: str
    shape: tuple[int, ...]
    data_bytes: int


def check_module_names(modules: Sequence[object]) -> list[str]:
    """Check a list of module paths: 1-1024 distinct dotted ASCII identifiers of <= 128 characters.

    Returns:
        The names as a list of str.

    Raises:
        InvalidInput: naming the first bad entry.
    """
    if not modules or len(modules) > MAX_MEMBERS - 1:
        raise InvalidInput(f"modules must list 1 to {MAX_MEMBERS - 1} module names")
    names: list[str] = []
    for module in modules:
        if (
            not isinstance(module, str)
            or len(module) > MAX_MODULE_NAME
            or not MODULE_NAME.fullmatch(module)
        ):
            raise InvalidInput(
                f"invalid module name {module!r}: use a dotted path of ASCII identifiers "
                f"(e.g. text_encoder.layers.0), at most {MAX_MODULE_NAME} characters"
            )
        names.append(module)
    if len(set(names)) != len(names):
        raise InvalidInput(f"modules list a name twice: {names}")
    return names


def _bad(detail: str) -> InvalidInput:
    return InvalidInput(f"reference profile is not a valid npz archive: {detail}")


def _parse_header(name: str, stream: Any) -> tuple[str, tuple[int, ...], int]:
    magic = stream.read(8)
    if len(magic) != 8 or magic[:6] != b"\x93NUMPY" or magic[6] not in (1, 2, 3):
        raise _bad(f"member {name!r} is not a .npy array")
    size_format = "<H" if magic[6] == 1 else "<I"
    raw_len = stream.read(struct.calcsize(size_format))
    if len(raw_len) != struct.calcsize(size_format):
        raise _bad(f"member {name!r} has a truncated .npy header")
    (header_len,) = struct.unpack(size_format, raw_len)
    if header_len > MAX_HEADER_BYTES:
        raise _bad(f"member {name!r} has a {header_len}-byte .npy header")
    header = stream.read(header_len)
    try:
        text = header.decode("latin1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin1 decodes every byte
        raise _bad(f"member {name!r} has an unreadable header") from exc
    match = _HEADER.fullmatch(text)
    if match is None or len(header) != header_len:
        raise _bad(f"member {name!r} has a .npy header this registry does not read: {text[:80]!r}")
    descr = match["descr"]
    if match["fortran"] == "True":
        raise _bad(f"member {name!r} is Fortran-ordered")
    if descr not in _DTYPES:
        raise _bad(
            f"member {name!r} has dtype {descr!r}; profiles hold little-endian floats "
            "(object arrays, i.e. pickles, are refused)"
        )
    shape = tuple(int(n) for n in match["shape"].replace(" ", "").split(",") if n)
    return descr, shape, len(magic) + len(raw_len) + header_len


def read_npz(blob: bytes, *, max_bytes: int) -> tuple[zipfile.ZipFile, dict[str, NpyMember]]:
    """Open ``blob`` as an npz and check every member's sizes before its data is read.

    Returns:
        The open archive and its members by name (without the ``.npy`` suffix).

    Raises:
        InvalidInput: not a zip, a member that is not a plain numeric ``.npy``, sizes that disagree
            with the headers, more than ``max_bytes`` (or ``MAX_EXPANSION`` x the archive) once
            uncompressed.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(blob))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
        raise _bad(f"{type(exc).__name__}: {exc}") from exc
    infos = archive.infolist()
    if len(infos) > MAX_MEMBERS:
        raise _bad(f"{len(infos)} members; at most {MAX_MEMBERS}")
    limit = min(max_bytes, MAX_EXPANSION * len(blob) + EXPANSION_ALLOWANCE)
    total = sum(info.file_size for info in infos)
    if total > limit:
        raise _bad(
            f"its members expand to {total} bytes from {len(blob)}; the limit is {limit} "
            f"({MAX_EXPANSION}x the archive, at most {max_bytes})"
        )
    members: dict[str, NpyMember] = {}
    for info in infos:
        if not info.filename.endswith(".npy") or info.is_dir():
            raise _bad(f"member {info.filename!r} is not a .npy file")
        name = info.filename[: -len(".npy")]
        if name in members:
            raise _bad(f"member {info.filename!r} appears twice")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise _bad(f"member {info.filename!r} uses an unsupported compression")
        try:
            with archive.open(info) as stream:
                descr, shape, header_bytes = _parse_header(info.filename, stream)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            raise _bad(f"member {info.filename!r}: {type(exc).__name__}: {exc}") from exc
        count = 1
        for n in shape:
            count *= n
        data_bytes = count * _DTYPES[descr]
        if header_bytes + data_bytes != info.file_size:
            raise _bad(
                f"member {info.filename!r} declares {info.file_size} bytes but its header "
                f"{descr} {shape} needs {header_bytes + data_bytes}"
            )
        members[name] = NpyMember(name, descr, shape, data_bytes)
    return archive, members


def _read_all(archive: zipfile.ZipFile, name: str) -> None:
    # Streams the member through its CRC check in bounded chunks: corrupt data is refused here,
    # not by the serving process that later loads the profile.
    try:
        with archive.open(name) as stream:
            while stream.read(_READ_CHUNK):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise _bad(f"member {name!r}: {type(exc).__name__}: {exc}") from exc


def _read_meta(archive: zipfile.ZipFile, member: NpyMember) -> dict[str, Any]:
    if member.descr != "|u1" or len(member.shape) != 1:
        raise InvalidInput("reference profile metadata (__meta__) must be a 1-D uint8 array")
    if member.data_bytes > MAX_META_BYTES:
        raise InvalidInput(f"reference profile metadata is {member.data_bytes} bytes")
    try:
        raw = archive.read("__meta__.npy")
        meta = json.loads(raw[len(raw) - member.data_bytes :].decode("utf-8"))
    except (zipfile.BadZipFile, zlib.error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"reference profile metadata is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise InvalidInput("reference profile metadata is not a JSON object")
    return meta


def check_profile(blob: bytes, *, max_bytes: int) -> dict[str, Any]:
    """Check an mmgov reference profile fully and return its metadata.

    The arrays must be ``emb_0 … emb_{k-1}`` for the k modules the metadata lists, each
    ``[n_i, dims[module]]`` floats, with ``n_samples == min(n_i)``.

    Returns:
        The metadata (format, modules, n_samples, dims, pooling, created_at).

    Raises:
        InvalidInput: naming what is inconsistent.
    """
    archive, members = read_npz(blob, max_bytes=max_bytes)
    with archive:
        if "__meta__" not in members:
            raise InvalidInput("reference profile lacks its __meta__ entry")
        meta = _read_meta(archive, members["__meta__"])
        if meta.get("format") != MMGOV_PROFILE_FORMAT:
            raise InvalidInput(
                f"reference profile metadata says format {meta.get('format')!r}, "
                f"expected {MMGOV_PROFILE_FORMAT!r}"
            )
        modules = meta.get("modules")
        if not isinstance(modules, list):
            raise InvalidInput("reference profile metadata lacks its module list")
        modules = check_module_names(modules)
        expected = {"__meta__"} | {f"emb_{i}" for i in range(len(modules))}
        if set(members) != expected:
            raise InvalidInput(
                f"reference profile arrays {sorted(members)} do not match its {len(modules)} "
                "modules"
            )
        dims = meta.get("dims")
        if not isinstance(dims, dict) or set(dims) != set(modules):
            raise InvalidInput("reference profile metadata gives no dims for every module")
        counts = []
        for i, module in enumerate(modules):
            array = members[f"emb_{i}"]
            if array.descr == "|u1" or len(array.shape) != 2 or min(array.shape) < 1:
                raise InvalidInput(
                    f"embeddings of {module!r} must be [n, d] floats, got {array.descr} "
                    f"{array.shape}"
                )
            if array.shape[1] != dims[module]:
                raise InvalidInput(
                    f"embeddings of {module!r} have {array.shape[1]} dimensions; "
                    f"the metadata says {dims[module]!r}"
                )
            counts.append(array.shape[0])
        n_samples = meta.get("n_samples")
        if n_samples != min(counts) or isinstance(n_samples, bool):
            raise InvalidInput(
                f"reference profile metadata says {n_samples!r} samples; "
                f"its arrays hold {min(counts)}"
            )
        if not isinstance(meta.get("pooling"), str):
            raise InvalidInput("reference profile metadata lacks its pooling")
        for name in members:
            _read_all(archive, f"{name}.npy")
    return meta


def is_npz_format(fmt: str) -> bool:
    """Whether a format tag names an npz archive (``npz``, ``…+npz``, ``….npz``)."""
    lowered = fmt.lower()
    return lowered == "npz" or lowered.endswith(("+npz", ".npz"))


def check_npz(blob: bytes, *, max_bytes: int) -> None:
    """Check that ``blob`` is a readable npz of plain numeric arrays (no pickles), within limits.

    Raises:
        InvalidInput: as ``read_npz``, or a member whose data does not pass its CRC.
    """
    archive, members = read_npz(blob, max_bytes=max_bytes)
    with archive:
        for name in members:
            _read_all(archive, f"{name}.npy")


__all__ = [
    "MAX_EXPANSION",
    "MMGOV_PROFILE_FORMAT",
    "MODULE_NAME",
    "NpyMember",
    "check_module_names",
    "check_npz",
    "check_profile",
    "is_npz_format",
    "read_npz",
]
