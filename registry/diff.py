"""Differences between two versions' configs, weights and module hashes, as plain data and text."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from registry.pipeline import PipelineInfo, diff_pipelines

__all__ = [
    "ConfigChange",
    "ModuleDiff",
    "PipelineChanges",
    "SchemaDiff",
    "VersionDiff",
    "diff_configs",
    "diff_modules",
    "diff_pipeline_json",
    "render_diff",
    "render_schema_diff",
]


class ConfigChange(BaseModel):
    """One leaf that differs; ``old`` is ``None`` when added, ``new`` is ``None`` when removed."""

    path: str
    kind: Literal["added", "removed", "changed"]
    old: Any = None
    new: Any = None


class ModuleDiff(BaseModel):
    """Module prefixes by what happened to their weight hash; each list sorted."""

    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)


class PipelineChanges(BaseModel):
    """Data pipeline files by what happened to them, per component (tokenizer, processor ...)."""

    changed: dict[str, list[str]] = Field(default_factory=dict)
    added: dict[str, list[str]] = Field(default_factory=dict)
    removed: dict[str, list[str]] = Field(default_factory=dict)
    unchanged: list[str] = Field(default_factory=list)
    components_added: list[str] = Field(default_factory=list)
    components_removed: list[str] = Field(default_factory=list)


class VersionDiff(BaseModel):
    """Everything that differs between two versions of one model.

    ``pipeline`` is None when neither version records a data pipeline; ``grouping_changed`` says
    that the two versions group tensors into modules differently, so module names differ too.
    """

    model: str
    from_version: int
    to_version: int
    from_config_hash: str
    to_config_hash: str
    config_changes: list[ConfigChange]
    weights_changed: bool
    modules: ModuleDiff
    from_schema_version: int | None = None
    to_schema_version: int | None = None
    grouping_changed: bool = False
    pipeline: PipelineChanges | None = None


class SchemaDiff(BaseModel):
    """What changed between two versions of a model's config schema (hash None: removed)."""

    model: str
    from_version: int
    to_version: int
    from_hash: str | None
    to_hash: str | None
    changes: list[ConfigChange]


def _same(a: Any, b: Any) -> bool:
    """Equality as the config hash sees it: ``1``, ``1.0`` and ``True`` all differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def diff_configs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ConfigChange]:
    """Compare two configs leaf by leaf.

    Nested mappings are walked and named by dotted paths; lists compare as whole values; a
    mapping replaced by a scalar (or the reverse) is one ``changed`` entry.

    Returns:
        The changes, sorted by path.
    """
    changes: list[ConfigChange] = []
    _walk(old, new, "", changes)
    return changes


def _walk(
    old: Mapping[str, Any], new: Mapping[str, Any], prefix: str, out: list[ConfigChange]
) -> None:
    for key in sorted(set(old) | set(new), key=str):
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in new:
            out.append(ConfigChange(path=path, kind="removed", old=old[key], new=None))
        elif key not in old:
            out.append(ConfigChange(path=path, kind="added", old=None, new=new[key]))
        elif isinstance(old[key], Mapping) and isinstance(new[key], Mapping):
            _walk(old[key], new[key], path, out)
        elif not _same(old[key], new[key]):
            out.append(ConfigChange(path=path, kind="changed", old=old[key], new=new[key]))


def diff_modules(old: Mapping[str, str], new: Mapping[str, str]) -> ModuleDiff:
    """Sort module prefixes into changed, unchanged, added and removed by their hashes.

    Returns:
        The module diff; all lists empty when neither side has module hashes.
    """
    both = set(old) & set(new)
    return ModuleDiff(
        changed=sorted(m for m in both if old[m] != new[m]),
        unchanged=sorted(m for m in both if old[m] == new[m]),
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
    )


def diff_pipeline_json(
    old: Mapping[str, Any] | None, new: Mapping[str, Any] | None
) -> PipelineChanges | None:
    """Compare two stored pipelines (`PipelineInfo.to_json` form; None: none recorded).

    Returns:
        The changes, or None when neither side records a pipeline.

    Raises:
        InvalidInput: a stored pipeline is malformed.
    """
    if old is None and new is None:
        return None
    found = diff_pipelines(
        PipelineInfo.from_json(old) if old is not None else None,
        PipelineInfo.from_json(new) if new is not None else None,
    )
    return PipelineChanges(
        changed=found.changed,
        added=found.added,
        removed=found.removed,
        unchanged=found.unchanged,
        components_added=found.components_added,
        components_removed=found.components_removed,
    )


def _pipeline_lines(changes: PipelineChanges) -> list[str]:
    parts = []
    for name in sorted({*changes.changed, *changes.added, *changes.removed}):
        what = [f"{f} changed" for f in changes.changed.get(name, [])]
        what += [f"{f} added" for f in changes.added.get(name, [])]
        what += [f"{f} removed" for f in changes.removed.get(name, [])]
        parts.append(f"  {name}: {', '.join(what)}")
    parts += [f"  {name}: unchanged" for name in changes.unchanged]
    parts += [f"  + {name} (new component)" for name in changes.components_added]
    parts += [f"  - {name} (component removed)" for name in changes.components_removed]
    changed = any(
        (changes.changed, changes.added, changes.removed)
    ) or bool(changes.components_added or changes.components_removed)
    return [f"pipeline: {'changed' if changed else 'unchanged'}", *parts]


def _value(value: Any) -> str:
    """One-line form of a value: JSON, so a string "2e-5" and the number 2e-05 look different."""
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "-"


def render_diff(diff: VersionDiff) -> str:
    """Render a version diff the way the CLI prints it.

    Example::

        mm-clip-minilm v1 -> v2
        config: b7a71fe62775 -> 0c1d2e3f4a5b (1 change)
          ~ training.learning_rate: 2e-05 -> 0.0001
        weights changed: no
        modules changed: -
        ...

    Returns:
        Multi-line text without a trailing newline; strings are shown JSON-quoted.
    """
    lines = [f"{diff.model} v{diff.from_version} -> v{diff.to_version}"]
    if diff.from_config_hash == diff.to_config_hash and not diff.config_changes:
        lines.append(f"config: unchanged ({diff.from_config_hash[:12]})")
    else:
        count = len(diff.config_changes)
        lines.append(
            f"config: {diff.from_config_hash[:12]} -> {diff.to_config_hash[:12]}"
            f" ({count} change{'' if count == 1 else 's'})"
        )
    lines += [_change_line(change) for change in diff.config_changes]
    lines.append(f"weights changed: {'yes' if diff.weights_changed else 'no'}")
    if diff.grouping_changed:
        lines.append("module grouping differs between the versions: module names differ too")
    for kind in ("changed", "unchanged", "added", "removed"):
        lines.append(f"modules {kind}: {_names(getattr(diff.modules, kind))}")
    if diff.pipeline is not None:
        lines += _pipeline_lines(diff.pipeline)
    if diff.from_schema_version != diff.to_schema_version:
        old, new = diff.from_schema_version, diff.to_schema_version
        lines.append(f"config schema: {_schema(old)} -> {_schema(new)}")
    return "\n".join(lines)


def render_schema_diff(diff: SchemaDiff) -> str:
    """Render a schema diff the way the CLI prints it (one line per changed path).

    Returns:
        Multi-line text without a trailing newline.
    """
    lines = [f"{diff.model} config schema v{diff.from_version} -> v{diff.to_version}"]
    if not diff.changes:
        lines.append("no change")
    for change in diff.changes:
        lines.append(_change_line(change))
    return "\n".join(lines)


def _change_line(change: ConfigChange) -> str:
    if change.kind == "added":
        return f"  + {change.path}: {_value(change.new)}"
    if change.kind == "removed":
        return f"  - {change.path}: {_value(change.old)}"
    return f"  ~ {change.path}: {_value(change.old)} -> {_value(change.new)}"


def _schema(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
