"""Runtime attestation: what a serving process really runs, hashed from its tensors in memory.

`module_hashes` recomputes, from a model's state dict, the per-module hashes the registry
records for a version's weights file (`registry.weights`): tensors are grouped into modules by
the version's grouping (plain data, ``{"depth": int, "patterns": [glob, ...]}``), and a module's
hash is the sha256 of canonical JSON ``[[name, dtype, shape, sha256 of the tensor's bytes],
...]`` sorted by name, with safetensors' dtype names. It runs once at load and on demand, never
per forward: tensors on an accelerator are copied to the host then (one sync per call).

`Attestation` holds one loaded version's identity and hashes, exports the info series
``mmgov_model_info{model,version,config_hash,alias} 1`` (other metrics join on it), and builds
the heartbeat a serving process posts to the registry.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import re
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from prometheus_client import REGISTRY, CollectorRegistry, Gauge
from torch import nn

__all__ = ["SAFETENSORS_DTYPES", "Attestation", "module_hashes", "module_of"]

SAFETENSORS_DTYPES: dict[torch.dtype, str] = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.complex64: "C64",
    **{
        getattr(torch, name): tag
        for name, tag in (
            ("uint16", "U16"), ("uint32", "U32"), ("uint64", "U64"),
            ("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2"),
        )
        if hasattr(torch, name)
    },
}
"""torch dtype → the dtype name a safetensors header writes for it."""


@functools.lru_cache(maxsize=256)
def _compiled(patterns: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(fnmatch.translate(p)) for p in patterns)


def _group_name(pattern: str) -> str:
    if pattern.endswith(".*"):
        return pattern[:-2]
    return pattern[:-1] if pattern.endswith("*") else pattern


def module_of(tensor: str, grouping: Mapping[str, Any] | None = None) -> str:
    """Return the module a tensor name belongs to under ``grouping`` (the registry's rule).

    The first glob of ``patterns`` that matches names the group (its text less a trailing
    ``.*`` or ``*``); otherwise the first ``depth`` dotted components, never the parameter's own
    name unless it is the only one.
    """
    grouping = grouping or {}
    patterns = tuple(grouping.get("patterns") or ())
    for pattern, regex in zip(patterns, _compiled(patterns), strict=True):
        if regex.match(tensor):
            return _group_name(pattern)
    depth = int(grouping.get("depth") or 1)
    parts = tensor.split(".")
    return ".".join(parts[: min(depth, max(len(parts) - 1, 1))])


def _tensor_digest(tensor: torch.Tensor) -> str:
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    t = t.contiguous().reshape(-1)
    if t.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    # A byte view of the tensor's own memory: hashed without a copy (hashlib drops the GIL).
    data: Any = t.view(torch.uint8).numpy()
    return hashlib.sha256(memoryview(data)).hexdigest()


def module_hashes(
    source: nn.Module | Mapping[str, torch.Tensor], grouping: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Hash a model's tensors in memory per module, as the registry hashes its weights file.

    Args:
        source: a model (its ``state_dict()``) or a state dict.
        grouping: the version's module grouping as the registry returns it (None: depth 1).

    Returns:
        Module → sha256 hex, equal to the registered ``module_hashes`` when the loaded tensors
        are the registered file's.

    Raises:
        ValueError: a tensor of a dtype safetensors cannot store.
    """
    state = source.state_dict() if isinstance(source, nn.Module) else source
    groups: dict[str, list[list[Any]]] = {}
    for name in sorted(state):
        tensor = state[name]
        dtype = SAFETENSORS_DTYPES.get(tensor.dtype)
        if dtype is None:
            raise ValueError(f"tensor {name!r} has dtype {tensor.dtype}, which safetensors lacks")
        row = [name, dtype, list(tensor.shape), _tensor_digest(tensor)]
        groups.setdefault(module_of(name, grouping), []).append(row)
    return {
        module: hashlib.sha256(
            json.dumps(rows, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        ).hexdigest()
        for module, rows in groups.items()
    }


_INFOS: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()
_INFOS_LOCK = threading.Lock()


def _info_gauge(registry: CollectorRegistry) -> Gauge:
    # One family per registry: several loaded versions (during a swap) share it.
    with _INFOS_LOCK:
        gauge = _INFOS.get(registry)
        if gauge is None:
            gauge = Gauge(
                "mmgov_model_info",
                "The model version a serving process runs (always 1); join other series on it.",
                ["model", "version", "config_hash", "alias"],
                registry=registry,
            )
            _INFOS[registry] = gauge
        return gauge


class Attestation:
    """One loaded version's identity and in-memory module hashes, with its info series.

    ``refresh()`` recomputes the hashes (on demand: e.g. a periodic self-check); ``close()``
    removes the info series, as a swap does for the version it replaces.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        model_name: str,
        version: int,
        config_hash: str,
        alias: str | None = None,
        grouping: Mapping[str, Any] | None = None,
        prometheus_registry: CollectorRegistry | None = None,
    ) -> None:
        self.model = model
        self.model_name = model_name
        self.version = int(version)
        self.config_hash = config_hash
        self.alias = alias
        self.grouping = dict(grouping) if grouping else None
        self._gauge = _info_gauge(prometheus_registry or REGISTRY)
        self._labels = (model_name, str(self.version), config_hash, alias or "")
        self.module_hashes = module_hashes(model, self.grouping)
        self._gauge.labels(*self._labels).set(1)

    def refresh(self) -> dict[str, str]:
        """Recompute the module hashes from the model's tensors now.

        Returns:
            The hashes (also kept in ``module_hashes``).
        """
        self.module_hashes = module_hashes(self.model, self.grouping)
        return self.module_hashes

    def differs_from(self, registered: Mapping[str, str]) -> list[str]:
        """Return the modules whose loaded hash is not the registered one (missing included)."""
        if not registered:
            return []
        names = set(registered) | set(self.module_hashes)
        return sorted(m for m in names if registered.get(m) != self.module_hashes.get(m))

    def heartbeat(self, instance: str) -> dict[str, Any]:
        """Return the heartbeat body the registry's ``POST …/deployments`` takes (plain data)."""
        return {
            "instance": instance,
            "version": self.version,
            "alias": self.alias,
            "config_hash": self.config_hash,
            "module_hashes": dict(self.module_hashes),
        }

    def close(self) -> None:
        """Remove this version's info series (idempotent)."""
        with contextlib.suppress(KeyError):
            self._gauge.remove(*self._labels)
