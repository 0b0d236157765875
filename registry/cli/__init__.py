"""The `mmgov` command line: parse, call the service, render (tables, or --json for scripts).

One module per resource holds its commands; this module imports each explicitly and adds them
to the root `app` (`_app`) in the order `mmgov --help` lists them: top-level commands first,
then the groups. `_context` gives a command its database and actor (`state(ctx)`), `_render`
is the one output path (table, --json, a page's `more:` line) and the one error path.
Torch-needing commands import ``instrumentation``/``examples`` inside the command body (only
`demo` does) so `import registry.cli` stays torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from registry.cli import (
    aliases,
    audit,
    db,
    demo,
    governance,
    incidents,
    loop,
    models,
    references,
    schema,
    serve,
    teams,
    tokens,
    versions,
)
from registry.cli._app import app, main

_COMMANDS: tuple[tuple[str, Callable[..., Any]], ...] = (
    ("register", versions.register),
    ("models", models.models),
    ("versions", versions.versions),
    ("show", versions.show),
    ("diff", versions.diff),
    ("verify", versions.verify),
    ("promote", aliases.promote),
    ("rollback", aliases.rollback),
    ("incidents", incidents.incidents),
    ("demo", demo.demo),
    ("tag", versions.tag),
    ("untag", versions.untag),
    ("stage", versions.stage),
    ("approve", governance.approve),
    ("approvals", governance.approvals_list),
    ("status", loop.status),
    ("serve", serve.serve),
)
_GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("db", db.group),
    ("audit", audit.group),
    ("reference", references.group),
    ("token", tokens.group),
    ("team", teams.group),
    ("aliases", aliases.group),
    ("incident", incidents.group),
    ("policy", governance.group),
    ("auto-rollback", loop.group),
    ("schema", schema.group),
)


def _add_commands() -> None:
    """Add every resource's commands, then its groups, to the root `app` (once, at import)."""
    for name, command in _COMMANDS:
        app.command(name)(command)
    for name, group in _GROUPS:
        app.add_typer(group, name=name)


_add_commands()

__all__ = ["app", "main"]
