"""Reference profiles: pooled embeddings per module captured from a model, and their bytes form."""

from __future__ import annotations

import io
import json
import math
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from instrumentation.drift.calibration import FloatArray
from instrumentation.drift.pooling import POOLINGS, pool_output

if TYPE_CHECKING:
    from torch import nn

_META_KEY = "__meta__"
MAX_PROFILE_BYTES = 256 << 20
"""Largest profile ``from_bytes`` unpacks (the registry's upload limit)."""
MAX_EXPANSION = 32
"""Largest ratio of unpacked to packed bytes; ``to_bytes`` stores members uncompressed."""
_EXPANSION_ALLOWANCE = 1 << 20


def _check_sizes(data: bytes, max_bytes: int) -> None:
    """Refuse an archive whose members would unpack past the limits or disagree with headers."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        limit = min(max_bytes, MAX_EXPANSION * len(data) + _EXPANSION_ALLOWANCE)
        total = sum(info.file_size for info in infos)
        if total > limit:
            raise ValueError(
                f"its members unpack to {total} bytes from {len(data)}; the limit is {limit}"
            )
        for info in infos:
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
                if dtype.hasobject or fortran:
                    raise ValueError(f"member {info.filename!r} holds objects or Fortran order")
                needed = stream.tell() + math.prod(shape) * dtype.itemsize
            if needed != info.file_size:
                raise ValueError(
                    f"member {info.filename!r} declares {info.file_size} bytes, "
                    f"its header needs {needed}"
                )


@dataclass(frozen=True)
class ReferenceProfile:
    """Pooled embeddings ``[n, d]`` per monitored module (dotted path) plus their statistics.

    ``mean`` and ``std`` are derived on construction; detectors calibrate on ``embeddings``.
    """

    FORMAT: ClassVar[str] = "mmgov.reference.v1+npz"

    embeddings: Mapping[str, FloatArray]
    pooling: str = "cls"
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if not self.embeddings:
            raise ValueError("a reference profile needs at least one module")
        clean: dict[str, FloatArray] = {}
        for module, array in self.embeddings.items():
            arr = np.asarray(array, dtype=np.float64)
            if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
                raise ValueError(f"embeddings of {module!r} must be [n, d], got shape {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"embeddings of {module!r} contain NaN or infinite values")
            clean[module] = arr
        object.__setattr__(self, "embeddings", clean)

    @property
    def modules(self) -> list[str]:
        """Monitored module paths, in capture order."""
        return list(self.embeddings)

    @property
    def n_samples(self) -> int:
        """Samples per module (the smallest count when modules differ)."""
        return min(int(a.shape[0]) for a in self.embeddings.values())

    def mean(self, module: str) -> FloatArray:
        """Per-dimension mean of a module's reference embeddings.

        Returns:
            ``[d]`` array. Raises ``KeyError`` for an unknown module.
        """
        out: FloatArray = self.embeddings[module].mean(axis=0)
        return out

    def std(self, module: str) -> FloatArray:
        """Per-dimension standard deviation of a module's reference embeddings.

        Returns:
            ``[d]`` array. Raises ``KeyError`` for an unknown module.
        """
        out: FloatArray = self.embeddings[module].std(axis=0)
        return out

    def metadata(self) -> dict[str, Any]:
        """The JSON metadata stored with the arrays.

        Returns:
            format, pooling, modules, n_samples, dims and created_at.
        """
        return {
            "format": self.FORMAT,
            "pooling": self.pooling,
            "modules": self.modules,
            "n_samples": self.n_samples,
            "dims": {m: int(a.shape[1]) for m, a in self.embeddings.items()},
            "created_at": self.created_at,
        }

    def to_bytes(self) -> bytes:
        """Serialise as an ``.npz`` archive: ``emb_<i>`` arrays plus a JSON ``__meta__`` entry.

        Returns:
            The bytes the registry stores under ``FORMAT``.
        """
        meta = json.dumps(self.metadata(), sort_keys=True).encode()
        arrays: dict[str, Any] = {_META_KEY: np.frombuffer(meta, dtype=np.uint8)}
        for i, array in enumerate(self.embeddings.values()):
            arrays[f"emb_{i}"] = array
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, max_bytes: int = MAX_PROFILE_BYTES) -> ReferenceProfile:
        """Load bytes written by ``to_bytes`` (never unpickles).

        Every member's size is checked against its ``.npy`` header and the limits before its data
        is decompressed, so a zip bomb costs its directory, not its expansion.

        Returns:
            The profile.

        Raises:
            ValueError: not an archive of this format, its content is inconsistent, or it would
                expand past ``max_bytes`` (or ``MAX_EXPANSION`` times its own size).
        """
        try:
            _check_sizes(data, max_bytes)
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                files = set(npz.files)
                if _META_KEY not in files:
                    raise ValueError("reference profile bytes lack the __meta__ entry")
                meta = json.loads(npz[_META_KEY].tobytes().decode())
                if not isinstance(meta, dict) or meta.get("format") != cls.FORMAT:
                    found = meta.get("format") if isinstance(meta, dict) else None
                    raise ValueError(f"expected format {cls.FORMAT!r}, found {found!r}")
                modules = meta["modules"]
                if not isinstance(modules, list) or files != {_META_KEY} | {
                    f"emb_{i}" for i in range(len(modules))
                }:
                    raise ValueError("reference profile arrays do not match its module list")
                embeddings = {str(m): npz[f"emb_{i}"] for i, m in enumerate(modules)}
                profile = cls(
                    embeddings=embeddings,
                    pooling=str(meta["pooling"]),
                    created_at=str(meta["created_at"]),
                )
        except ValueError as exc:
            raise ValueError(f"malformed reference profile: {exc}") from exc
        except (
            OSError, KeyError, TypeError, EOFError, RecursionError, zipfile.BadZipFile, zlib.error
        ) as exc:
            raise ValueError(f"malformed reference profile: {type(exc).__name__}: {exc}") from exc
        if profile.metadata()["dims"] != meta.get("dims"):
            raise ValueError("malformed reference profile: dims do not match the arrays")
        return profile


def capture_reference(
    model: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    modules: Sequence[str],
    pooling: str = "cls",
) -> ReferenceProfile:
    """Run ``model(**batch)`` over ``batches`` (eval, no_grad) and record pooled module outputs.

    Temporary forward hooks on each dotted module path record one pooled row per sample; they are
    removed afterwards, also when the model raises. The model's train/eval mode is restored.

    Returns:
        A ``ReferenceProfile`` with ``[n, d]`` embeddings per module.

    Raises:
        ValueError: unknown module path, bad pooling, no samples captured, or outputs that cannot
            be pooled; whatever the model itself raises propagates.
    """
    import torch  # torch only here: detectors and profiles work with numpy alone

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if not modules:
        raise ValueError("capture_reference needs at least one module path")
    named = dict(model.named_modules())
    missing = [m for m in modules if m not in named]
    if missing:
        raise ValueError(f"unknown module path(s) {missing}; the model has e.g. {list(named)[1:8]}")
    captured: dict[str, list[FloatArray]] = {m: [] for m in modules}

    def make_hook(path: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            captured[path].append(pool_output(output, pooling))

        return hook

    handles = [named[m].register_forward_hook(make_hook(m)) for m in modules]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            for batch in batches:
                model(**batch)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    empty = [m for m, rows in captured.items() if not rows]
    if empty:
        raise ValueError(f"no outputs captured for {empty}: were they called by forward?")
    return ReferenceProfile(
        embeddings={m: np.concatenate(rows, axis=0) for m, rows in captured.items()},
        pooling=pooling,
    )
