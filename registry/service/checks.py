"""Check weights (and a data pipeline) against what the registry recorded for a version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from registry.db import Database
from registry.diff import PipelineChanges, diff_pipeline_json
from registry.errors import InvalidInput
from registry.pipeline import PipelineInfo, inspect_pipeline
from registry.schemas import Actor, WeightsCheck
from registry.service.versions import get_version
from registry.weights import ModuleGrouping, inspect_weights, parse_weights_uri


def check_weights(
    db: Database,
    actor: Actor,
    *,
    model: str,
    version: int,
    path: Path | None = None,
    pipeline: Mapping[str, str | Path] | None = None,
) -> WeightsCheck:
    """Hash ``path`` (default: the version's own local weights) and compare with the registry.

    The digest and the per-module hashes are recomputed with the version's own module grouping,
    so a mismatch names the modules whose tensors differ; for a sharded checkpoint every shard
    is re-hashed and the shards that differ are named. With ``pipeline`` (component ->
    directory), the data pipeline is re-hashed and compared file by file too.

    Returns:
        The comparison; ``ok`` is true when the digest matches (and the pipeline, if checked).

    Raises:
        NotFound: unknown model or version. InvalidInput: no local weights to check (a remote
            version needs ``path``), weights that cannot be read or parsed, a pipeline given for
            a version that recorded none.
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
    found = inspect_weights(target, grouping=ModuleGrouping.from_json(info.module_grouping))
    pipeline_changes: PipelineChanges | None = None
    pipeline_ok = True
    if pipeline is not None:
        if info.pipeline is None:
            raise InvalidInput(f"{model} v{version} recorded no data pipeline to check against")
        on_disk = inspect_pipeline(pipeline)
        pipeline_changes = diff_pipeline_json(info.pipeline, on_disk.to_json())
        pipeline_ok = on_disk.digest == PipelineInfo.from_json(info.pipeline).digest
    recorded, computed = info.module_hashes, found.module_hashes
    common = sorted(set(recorded) & set(computed))
    shards = info.weights_shards or {}
    return WeightsCheck(
        model=model,
        version=version,
        path=target,
        ok=found.sha256 == info.weights_sha256 and pipeline_ok,
        expected_sha256=info.weights_sha256,
        actual_sha256=found.sha256,
        size_bytes=found.size_bytes,
        modules_ok=[m for m in common if recorded[m] == computed[m]],
        modules_changed=[m for m in common if recorded[m] != computed[m]],
        modules_missing=sorted(set(recorded) - set(computed)),
        modules_unexpected=sorted(set(computed) - set(recorded)),
        shards_changed=sorted(
            s for s in shards if s in found.shards and found.shards[s] != shards[s]
        ),
        shards_missing=sorted(set(shards) - set(found.shards)),
        pipeline=pipeline_changes,
    )
