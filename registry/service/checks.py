"""Check a weights file against what the registry recorded for a version (read-only)."""

from __future__ import annotations

from pathlib import Path

from registry.db import Database
from registry.errors import InvalidInput
from registry.schemas import Actor, WeightsCheck
from registry.service.versions import get_version
from registry.weights import inspect_weights, parse_weights_uri


def check_weights(
    db: Database, actor: Actor, *, model: str, version: int, path: Path | None = None
) -> WeightsCheck:
    """Hash ``path`` (default: the version's own local weights) and compare with the registry.

    The sha256 and, for safetensors files, the per-module hashes are recomputed by streaming the
    file, so a mismatch names the modules whose tensors differ.

    Returns:
        The comparison; ``ok`` is true when the sha256 matches.

    Raises:
        NotFound: unknown model or version. InvalidInput: no local file to check (a remote
            version needs ``path``), or the file cannot be read or parsed.
    """
    info = get_version(db, actor, model, version)
    if path is None:
        local = parse_weights_uri(info.weights_uri).path
        if local is None:
            raise InvalidInput(
                f"{model} v{version} has remote weights {info.weights_uri!r}: "
                "give the path of a downloaded copy to check"
            )
        target = str(local)
    else:
        target = str(path.expanduser().absolute())
    found = inspect_weights(target)
    recorded, computed = info.module_hashes, found.module_hashes
    common = sorted(set(recorded) & set(computed))
    return WeightsCheck(
        model=model,
        version=version,
        path=target,
        ok=found.sha256 == info.weights_sha256,
        expected_sha256=info.weights_sha256,
        actual_sha256=found.sha256,
        size_bytes=found.size_bytes,
        modules_ok=[m for m in common if recorded[m] == computed[m]],
        modules_changed=[m for m in common if recorded[m] != computed[m]],
        modules_missing=sorted(set(recorded) - set(computed)),
        modules_unexpected=sorted(set(computed) - set(recorded)),
    )
