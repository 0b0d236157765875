"""`mmgov reference attach`: a reference profile (drift baseline) of a version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry import service
from registry.cli._context import state
from registry.cli._render import emit
from registry.errors import InvalidInput

group = typer.Typer(no_args_is_help=True, help="Reference profiles of versions.")


@group.command("attach")
def reference_attach(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version number.")],
    file: Annotated[Path, typer.Argument(help="Reference profile file.")],
    module: Annotated[
        list[str] | None,
        typer.Option("--module", help="Module profiled (repeat) [default: from an mmgov profile]."),
    ] = None,
    n_samples: Annotated[
        int | None,
        typer.Option(help="Samples the profile holds [default: from an mmgov profile]."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="Format tag [default: the profile's, else file suffix]."),
    ] = None,
) -> None:
    """Attach a reference profile (drift baseline) to a version."""
    s = state(ctx)
    try:
        size = file.stat().st_size
        if size > service.MAX_REFERENCE_BYTES:
            raise InvalidInput(
                f"{file} is {size} bytes; the limit is {service.MAX_REFERENCE_BYTES}"
            )
        blob = file.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror}") from exc
    meta = service.read_profile_metadata(blob) or {}
    if meta:
        if module and sorted(module) != sorted(meta["modules"]):
            raise InvalidInput(f"{file} profiles {meta['modules']}, not {list(module)}")
        if n_samples is not None and n_samples != meta["n_samples"]:
            raise InvalidInput(f"{file} holds {meta['n_samples']} samples, not {n_samples}")
    modules = list(module or meta.get("modules") or [])
    samples = n_samples if n_samples is not None else meta.get("n_samples")
    if not modules or samples is None:
        raise InvalidInput(
            f"{file} is not an mmgov reference profile: give --module and --n-samples"
        )
    tag = fmt or meta.get("format") or file.suffix.lstrip(".").lower()
    info = service.attach_reference(
        s.existing_db,
        s.actor,
        model=name,
        version=version,
        fmt=tag,
        blob=blob,
        n_samples=int(samples),
        modules=modules,
    )
    emit(
        ctx,
        info,
        f"reference {info.sha256[:12]} ({info.size_bytes} bytes, {info.n_samples} samples of "
        f"{', '.join(info.modules)}) on {name} v{version}",
    )
