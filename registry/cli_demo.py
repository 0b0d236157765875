"""`mmgov demo`: the guided tour; torch is imported inside the command, never by `registry.cli`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import httpx
import typer

from registry.cli import app
from registry.client import SidecarError


@app.command()
def demo(
    db: Annotated[
        str | None,
        typer.Option("--db", help="Database URL (e.g. PostgreSQL); default: a new SQLite file."),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where weights and the SQLite file go; default: a new temp dir."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Model config; default: configs/model.yaml.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model name; default: the config's.")] = None,
    threads: Annotated[int, typer.Option(min=1, help="torch intra-op threads.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON too.")] = False,
) -> None:
    """Register, promote, serve, monitor, break and roll back the reference model, for real."""
    try:
        from examples.demo import render_summary, run_demo
    except ImportError as exc:
        typer.echo(f"error: mmgov demo needs the ml extra (pip install 'mmgov[ml]'): {exc}",
                   err=True)
        raise typer.Exit(1) from None
    try:
        result = run_demo(db_url=db, workdir=workdir, config_path=config, model_name=model,
                          echo=typer.echo, threads=threads)
    except (OSError, RuntimeError, ValueError, SidecarError, httpx.HTTPError) as exc:
        # A RegistryError reaches the root group's handler: one `error:` line, exit code.
        typer.echo(f"error: demo failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(render_summary(result))
    if as_json:
        typer.echo(json.dumps(asdict(result), default=str, sort_keys=True))
