"""`mmgov demo`: the guided tour; torch is imported inside the command, never by `registry.cli`.

A plain function; `registry.cli` registers it as a top-level command.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import httpx
import typer

from registry.cli._context import state
from registry.cli._render import fail
from registry.client import SidecarError


def demo(
    ctx: typer.Context,
    keep: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Write weights and the SQLite file to DIR and keep them (default: a temporary "
            "directory, removed at the end).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Model config (default: configs/model.yaml)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(metavar="NAME", help="Model name (default: the config's).")
    ] = None,
    threads: Annotated[int, typer.Option(min=1, metavar="N", help="torch intra-op threads.")] = 2,
) -> None:
    """Register, promote, serve, monitor, break and roll back the reference model, for real.

    It uses a new SQLite file unless the global --db names a database (e.g. PostgreSQL);
    --json prints the figures as JSON after the summary.
    """
    started = time.perf_counter()
    s = state(ctx)
    try:
        from examples.demo import render_summary, run_demo
    except ImportError as exc:
        raise fail(ctx, f"mmgov demo needs the ml extra (pip install 'mmgov[ml]'): {exc}",
                   kind="missing_extra") from None
    try:
        result = run_demo(db_url=s.url if s.url_given else None, keep=keep, config_path=config,
                          model_name=model, echo=typer.echo, threads=threads, started=started)
    except (OSError, RuntimeError, ValueError, SidecarError, httpx.HTTPError) as exc:
        # A RegistryError reaches the root group's handler: one `error:` line, exit code.
        raise fail(ctx, f"demo failed: {type(exc).__name__}: {exc}", kind="demo_failed") from None
    typer.echo(render_summary(result))
    if s.json:
        typer.echo(json.dumps(asdict(result), default=str, sort_keys=True))
