"""Versions of a model: `register`, `versions`, `show`, `diff`, `verify`, `tag`/`untag`, `stage`.

Plain functions; `registry.cli` registers them as top-level commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from registry import service
from registry.cli._context import state
from registry.cli._options import NewestLimit, PageCursor
from registry.cli._render import cell, emit, emit_page, fail
from registry.config import read_config_file
from registry.diff import render_diff
from registry.errors import InvalidInput
from registry.service import WeightsSource
from registry.weights import ModuleGrouping


def _weights_uri(raw: str) -> str:
    # People pass relative paths; the registry records absolute file URIs.
    if "://" in raw or raw.startswith("file:"):
        return raw
    return str(Path(raw).expanduser().absolute())


def _pipeline(specs: list[str] | None) -> dict[str, str] | None:
    if not specs:
        return None
    components: dict[str, str] = {}
    for spec in specs:
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise InvalidInput(f"--pipeline takes NAME=DIR (e.g. tokenizer=./tok), got {spec!r}")
        if name in components:
            raise InvalidInput(f"--pipeline names component {name!r} twice")
        components[name] = str(Path(directory).expanduser().absolute())
    return components


def register(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="Model config: any YAML or JSON mapping.")],
    model: Annotated[str, typer.Option("--model", help="Model name.")],
    weights: Annotated[
        str,
        typer.Option(
            "--weights",
            help="A safetensors file, a sharded checkpoint (its directory or "
            "*.safetensors.index.json), or a remote URI with --sha256.",
        ),
    ],
    sha256: Annotated[str | None, typer.Option(help="Weights sha256 (needed for remote).")] = None,
    note: Annotated[str, typer.Option(help="Why this version exists.")] = "",
    team: Annotated[
        str | None, typer.Option(help="Owning team of a new model [default: 'default'].")
    ] = None,
    module_depth: Annotated[
        int, typer.Option(help="Dotted name parts that make a module, for module hashes.")
    ] = 1,
    module_pattern: Annotated[
        list[str] | None,
        typer.Option(help="Glob over tensor names that makes one module (repeatable)."),
    ] = None,
    pipeline: Annotated[
        list[str] | None,
        typer.Option(help="NAME=DIR: a data pipeline directory, e.g. tokenizer=./tok (repeated)."),
    ] = None,
) -> None:
    """Register a version of MODEL from CONFIG and its weights (checked against MODEL's schema)."""
    s = state(ctx)
    grouping = ModuleGrouping.from_json({"depth": module_depth, "patterns": module_pattern or []})
    result = service.register_version(
        s.db,
        s.actor,
        model=model,
        config=read_config_file(config),
        config_source=str(config),
        weights=WeightsSource(uri=_weights_uri(weights), sha256=sha256, grouping=grouping),
        pipeline=_pipeline(pipeline),
        note=note,
        team=team,
    )
    v = result.version
    if result.created:
        checked = f", checked against schema v{v.schema_version}" if v.schema_version else ""
        human = f"registered {model} version {v.version} (config {v.config_hash[:12]}{checked})"
    else:
        human = f"unchanged: {model} version {v.version} already has this config and weights"
    emit(ctx, result, human)


def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    limit: NewestLimit = 20,
    cursor: PageCursor = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="Only versions with this tag (repeatable)."),
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Only versions in this stage (active, deprecated, archived).")
    ] = None,
) -> None:
    """List the versions of a model, newest first, with the aliases serving each."""
    s = state(ctx)
    page = service.list_versions(
        s.existing_db, s.actor, name, limit=limit, cursor=cursor,
        tags=service.parse_tags(tag), stage=stage,
    )
    rows = [
        (
            v.version,
            v.semver,
            ",".join(v.aliases) or None,
            v.stage,
            v.config_hash[:12],
            v.weights_sha256[:12],
            v.created_at,
            v.created_by,
            v.note,
        )
        for v in page.items
    ]
    headers = ["VERSION", "SEMVER", "ALIASES", "STAGE", "CONFIG", "WEIGHTS", "CREATED", "BY"]
    headers.append("NOTE")
    emit_page(ctx, page, headers, rows)


def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
) -> None:
    """Show one version: identity, weights, config."""
    s = state(ctx)
    v = service.get_version(s.existing_db, s.actor, name, version)
    lines = [
        f"model:          {v.model}",
        f"version:        {v.version}",
        f"semver:         {cell(v.semver)}",
        f"aliases:        {', '.join(v.aliases) or '-'}",
        f"stage:          {v.stage}",
        f"tags:           {' '.join(f'{k}={t}' for k, t in v.tags.items()) or '-'}",
        f"config hash:    {v.config_hash}",
        f"config schema:  {f'v{v.schema_version}' if v.schema_version else '-'}",
        f"weights:        {v.weights_uri}",
        f"weights format: {cell(v.weights_format)}",
        f"weights sha256: {v.weights_sha256}",
        f"weights bytes:  {cell(v.weights_bytes)}",
        f"parent:         {cell(v.parent_version)}",
        f"created:        {cell(v.created_at)} by {v.created_by}",
        f"note:           {v.note}",
    ]
    if v.weights_shards:
        lines += [f"shard {name}: {digest}" for name, digest in sorted(v.weights_shards.items())]
    if v.module_grouping:
        lines.append(f"module grouping: {json.dumps(v.module_grouping, sort_keys=True)}")
    lines += [f"module {m}: {h}" for m, h in sorted(v.module_hashes.items())]
    if v.pipeline:
        lines.append(f"pipeline:       {v.pipeline.get('digest')}")
        for component, files in sorted((v.pipeline.get("components") or {}).items()):
            lines += [f"  {component}/{f}: {h}" for f, h in sorted(files.items())]
    lines += ["config:", json.dumps(v.config, indent=2, sort_keys=True, ensure_ascii=False)]
    emit(ctx, v, "\n".join(lines))


def diff(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    a: Annotated[int, typer.Argument(help="From version.")],
    b: Annotated[int, typer.Argument(help="To version.")],
) -> None:
    """Show what changed between two versions."""
    s = state(ctx)
    result = service.diff_versions(s.existing_db, s.actor, name, a, b)
    emit(ctx, result, render_diff(result))


def verify(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Weights to check: a safetensors file or a sharded checkpoint "
            "[default: the version's own local weights]."
        ),
    ] = None,
    pipeline: Annotated[
        list[str] | None,
        typer.Option(help="NAME=DIR: check a data pipeline directory too (repeated)."),
    ] = None,
) -> None:
    """Re-hash weights (and a pipeline); exit 1 naming the modules, shards or files that differ."""
    s = state(ctx)
    check = service.check_weights(
        s.existing_db, s.actor, model=name, version=version, path=path,
        pipeline=_pipeline(pipeline),
    )
    modules = ", ".join(check.modules_ok) or "-"
    checked = " and its pipeline" if check.pipeline is not None else ""
    if check.ok:
        emit(ctx, check, f"ok: {check.path}{checked} is {name} v{version} (sha256 "
                         f"{check.actual_sha256[:12]}; modules {modules})")
        return
    changed = ", ".join(check.modules_changed + check.modules_missing + check.modules_unexpected)
    emit(ctx, check, f"modules unchanged: {modules}")
    problems = [f"sha256 {check.actual_sha256[:12]}, registered {check.expected_sha256[:12]}"]
    if check.actual_sha256 != check.expected_sha256:
        problems.append(f"modules that differ: {changed or 'none known'}")
    if check.shards_changed or check.shards_missing:
        shards = check.shards_changed + check.shards_missing
        problems.append(f"shards that differ: {', '.join(shards)}")
    if check.pipeline is not None:
        files = [f"{c}/{f}" for c, fs in sorted(check.pipeline.changed.items()) for f in fs]
        files += [f"{c}/{f} (new)" for c, fs in sorted(check.pipeline.added.items()) for f in fs]
        files += [f"{c}/{f} (gone)" for c, fs in sorted(check.pipeline.removed.items()) for f in fs]
        files += check.pipeline.components_added + check.pipeline.components_removed
        if files:
            problems.append(f"pipeline files that differ: {', '.join(files)}")
    raise fail(
        ctx,
        f"{check.path}{checked} is not {name} v{version}: {'; '.join(problems)}",
        kind="weights_mismatch",
    )


def _tags_line(tags: list[Any]) -> str:
    return " ".join(f"{t.key}={t.value}" for t in tags) or "(no tags)"


def tag(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    tags: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...", help="Tags to set.")],
) -> None:
    """Set tags on a version (audited; the version itself stays immutable)."""
    s = state(ctx)
    found = service.set_tags(
        s.db, s.actor, model=model, version=version, tags=service.parse_tags(tags) or {}
    )
    emit(ctx, found, f"{model} v{version}: {_tags_line(found)}")


def untag(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    keys: Annotated[list[str], typer.Argument(metavar="KEY...", help="Tag keys to remove.")],
) -> None:
    """Remove tags from a version (audited)."""
    s = state(ctx)
    found = service.remove_tags(s.db, s.actor, model=model, version=version, keys=keys)
    emit(ctx, found, f"{model} v{version}: {_tags_line(found)}")


def stage(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    to: Annotated[str, typer.Argument(metavar="STAGE", help="active, deprecated or archived.")],
    reason: Annotated[str, typer.Option(help="Why (kept in the audit event).")] = "",
) -> None:
    """Deprecate or archive a version (archived: final, and it can no longer be promoted)."""
    s = state(ctx)
    found = service.set_stage(
        s.db, s.actor, model=model, version=version, stage=to, reason=reason
    )
    emit(ctx, found, f"{model} v{version}: {found.stage}")
