"""The `mmgov` command line: parse, call the service, render (tables, or --json for scripts).

Other modules add commands: a module ``registry/cli_<name>.py`` imports ``app`` (or
``typer`` sub-apps) from here, decorates its commands, and is imported by ``load_extensions()``
when this module loads. Torch-needing commands import ``instrumentation``/``examples`` inside the
command body so `import registry.cli` stays torch-free.
"""

from __future__ import annotations

import getpass
import importlib
import importlib.metadata
import json
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from typer._click.core import Context as ClickContext  # typer vendors click; groups take this
from typer._click.exceptions import ClickException
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.exceptions import Abort as ClickAbort

from registry import db as dbmod
from registry import service
from registry.audit.signing import read_signed_file
from registry.config import read_config_file
from registry.diff import render_diff
from registry.errors import DatabaseUnavailable, InvalidInput, NotFound, RegistryError
from registry.schemas import MAX_INT4, UNSET, Actor, Checkpoint, Unset
from registry.service import WeightsSource
from registry.text import readable, text_problem
from registry.weights import ModuleGrouping

GLOBAL_VALUE_OPTIONS = ("--db", "--actor")
GLOBAL_FLAGS = ("--json",)
"""Global options, accepted before or after the command (`hoist_global_options`)."""


def _takes_value(command: Any, token: str) -> bool:
    for param in getattr(command, "params", ()):
        if token in getattr(param, "opts", ()) and param.param_type_name == "option":
            return not (param.is_flag or param.count)
    return False


def hoist_global_options(root: Any, args: Sequence[str]) -> list[str]:
    """Return ``args`` with the global options moved in front of the command.

    Walks the command path so a value of a command's own option (``--note --json``) stays
    where it is; everything after ``--`` is left alone.
    """
    front: list[str] = []
    rest: list[str] = []
    command = root
    tokens = list(args)
    i = 0
    while i < len(tokens):
        word = tokens[i]
        name, eq, _ = word.partition("=")
        if word == "--":
            rest += tokens[i:]
            break
        if name in GLOBAL_VALUE_OPTIONS and (eq or i + 1 < len(tokens)):
            front += [word] if eq else [word, tokens[i + 1]]
            i += 1 if eq else 2
            continue
        if word in GLOBAL_FLAGS:
            front.append(word)
        else:
            rest.append(word)
            sub = getattr(command, "commands", {}).get(word)
            if sub is not None:
                command = sub
            elif not eq and _takes_value(command, word) and i + 1 < len(tokens):
                rest.append(tokens[i + 1])
                i += 1
        i += 1
    return front + rest


def _error_kind(exc: Exception) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in type(exc).__name__).lstrip("_")


def print_error(json_mode: bool, detail: str, *, kind: str, exit_code: int, **extra: Any) -> None:
    """Print one error line on stderr: ``error: …``, or a JSON object under --json."""
    if json_mode:
        body = {"error": kind, "detail": detail, "exit_code": exit_code, **extra}
        typer.echo(json.dumps(body, sort_keys=True, ensure_ascii=False), err=True)
    else:
        typer.echo(f"error: {detail}", err=True)


def fail(ctx: ClickContext, detail: str, *, kind: str, exit_code: int = 1) -> typer.Exit:
    """Print one error line (JSON under --json) and return the `typer.Exit` to raise."""
    obj = ctx.find_root().obj
    print_error(isinstance(obj, CliState) and obj.json, detail, kind=kind, exit_code=exit_code)
    return typer.Exit(exit_code)


class _Root(TyperGroup):
    """Root group: global options anywhere; a RegistryError is one error line and an exit code.

    Under --json that line is a JSON object, and so is a usage error (same exit codes).
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, args))

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except RegistryError as exc:
            obj = ctx.obj if isinstance(ctx.obj, CliState) else None
            json_mode = obj is not None and obj.json
            detail = exc.detail
            extra: dict[str, str] = {}
            if obj is not None and obj.opened and isinstance(exc, NotFound):
                # "model not found" alone hides that the wrong database was looked at.
                extra["database"] = dbmod.describe_url(obj.url)
                if not json_mode:
                    detail = f"{detail} (database {extra['database']})"
            code = 2 if isinstance(exc, InvalidInput) else 1
            print_error(json_mode, detail, kind=_error_kind(exc), exit_code=code, **extra)
            raise typer.Exit(code) from None
        except (ClickException, ClickAbort, typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:
            # A bug or an error nobody classified: still one line, never a traceback.
            obj = ctx.obj if isinstance(ctx.obj, CliState) else None
            first = readable(str(exc)).strip().splitlines()
            detail = f"unexpected {type(exc).__name__}: {first[0][:300] if first else ''}"
            print_error(obj is not None and obj.json, detail, kind="unexpected", exit_code=1)
            raise typer.Exit(1) from None

    def main(self, args: Sequence[str] | None = None, *pos: Any, **kwargs: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        before = argv[: argv.index("--")] if "--" in argv else argv
        if "--json" not in before or kwargs.get("standalone_mode") is False:
            return super().main(argv, *pos, **kwargs)
        try:
            code = super().main(argv, *pos, **{**kwargs, "standalone_mode": False})
        except ClickException as exc:
            print_error(True, exc.format_message(), kind="usage", exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except ClickAbort:
            print_error(True, "aborted", kind="aborted", exit_code=1)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class _AuditGroup(TyperGroup):
    """`mmgov audit [NAME]` lists; `verify`, `checkpoint`, `keygen`… are subcommands."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _option_metavar(self: TyperOption, ctx: ClickContext) -> str | None:
    if self.metavar is not None:
        return self.metavar
    if self.is_flag or self.count:
        return None
    return (self.name or "value").upper().replace("_", "-")


def _argument_usage(self: TyperArgument) -> str:
    name = (self.metavar or self.name or "arg").upper()
    name = name if self.required else f"[{name}]"
    return f"{name}..." if self.nargs != 1 else name


# Typer 0.29 labels every value with its Python type (`<str>`, `<bool>`, `{config}`); `mmgov`
# help shows click's conventional NAME metavars instead, and no type on positional arguments.
TyperOption.display_type_rich = _option_metavar  # type: ignore[method-assign]
TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]
TyperArgument._usage_display_name = _argument_usage  # type: ignore[method-assign]
TyperArgument._rich_display_name = lambda self: _argument_usage(self).strip("[]")  # type: ignore[method-assign]

app = typer.Typer(
    cls=_Root,
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    help="mmgov model registry: versions, aliases, audit log.",
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema: upgrade, current revision.")
audit_app = typer.Typer(cls=_AuditGroup, help="Audit log: list, verify, export a checkpoint.")
reference_app = typer.Typer(no_args_is_help=True, help="Reference profiles of versions.")
token_app = typer.Typer(no_args_is_help=True, help="API tokens.")
team_app = typer.Typer(no_args_is_help=True, help="Teams.")
app.add_typer(db_app, name="db")
app.add_typer(audit_app, name="audit")
app.add_typer(reference_app, name="reference")
app.add_typer(token_app, name="token")
app.add_typer(team_app, name="team")


@dataclass
class CliState:
    """Global options, and the database opened on first use.

    Commands that can start a registry (`register`, `team create`; `serve` opens its own) use
    `db`, which creates and migrates a new SQLite file; every other command uses `existing_db`,
    which never creates a file or directory and says which database it looked for.
    """

    url: str
    actor: Actor
    json: bool
    url_given: bool = False
    """Whether --db was given on the command line (the demo uses its own database otherwise)."""
    _db: dbmod.Database | None = field(default=None, repr=False)

    @property
    def opened(self) -> bool:
        """Whether a command opened the database."""
        return self._db is not None

    def _open(self, *, create: bool) -> dbmod.Database:
        if self._db is None:
            self._db = dbmod.open_database(self.url, create=create)
        return self._db

    @property
    def db(self) -> dbmod.Database:
        """The database for a change, created (embedded SQLite) and checked to be at head."""
        return self._open(create=True)

    @property
    def existing_db(self) -> dbmod.Database:
        """The database, checked to be at head; a missing SQLite file is an error."""
        return self._open(create=False)

    def close(self) -> None:
        """Dispose of the database's connections, if it was opened."""
        if self._db is not None:
            self._db.dispose()


def state(ctx: ClickContext) -> CliState:
    """Return the CLI state of the running command (for commands defined in other modules)."""
    found = ctx.find_root().obj
    assert isinstance(found, CliState)
    return found


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _version_callback(value: bool) -> None:
    if value:
        try:
            version = importlib.metadata.version("mmgov")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"mmgov {version}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            envvar="MMGOV_DATABASE_URL",
            help="Database URL (default sqlite:///./mmgov.db; postgresql://… or postgres://… "
            "for PostgreSQL).",
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            envvar="MMGOV_ACTOR",
            help="Who the audit log records (default: the OS user).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON for scripts (errors too, on stderr).")
    ] = False,
    _version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_version_callback, help="Print the version."
        ),
    ] = False,
) -> None:
    """mmgov model registry: versions, aliases, audit log.

    Global options go before or after the command.
    """
    source = ctx.get_parameter_source("db")
    if actor is not None and (len(actor) > 128 or text_problem(actor) or not actor.strip()):
        detail = "--actor / MMGOV_ACTOR must be 1-128 characters of valid text (no NUL)"
        print_error(as_json, detail, kind="invalid_input", exit_code=2)
        raise typer.Exit(2)
    cli_state = CliState(
        url=db or dbmod.default_url(),
        actor=Actor(name=actor or _os_user(), team=None, role="admin"),
        json=as_json,
        url_given=source is not None and source.name == "COMMANDLINE",
    )
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


# --- rendering -----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Render rows as aligned text columns under ``headers``."""
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def emit(ctx: ClickContext, data: Any, human: str) -> None:
    """Print ``data`` as JSON under --json, else the human-readable text."""
    if state(ctx).json:
        typer.echo(json.dumps(_plain(data), indent=2, sort_keys=True, ensure_ascii=False))
    else:
        typer.echo(human)


def _more(next_cursor: str | None) -> str:
    return f"\nmore: --cursor {next_cursor}" if next_cursor is not None else ""


more = _more
"""The line under a table that says how to ask for the next page (none on the last)."""
PageLimit = Annotated[int, typer.Option(metavar="N", help="How many at most (1-1000).")]
PageCursor = Annotated[
    str | None, typer.Option(metavar="CURSOR", help="Continue after a page (its next_cursor).")
]


def _expected(raw: str | None) -> int | Unset | None:
    if raw is None:
        return UNSET
    if raw.lower() == "none":
        return None
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_INT4:
        raise InvalidInput(f"--expect takes a version number or 'none', got {raw[:40]!r}")
    return int(raw)


def _weights_uri(raw: str) -> str:
    # People pass relative paths; the registry records absolute file URIs.
    if "://" in raw or raw.startswith("file:"):
        return raw
    return str(Path(raw).expanduser().absolute())


# --- models and versions -------------------------------------------------------------------------


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


@app.command()
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


@app.command()
def models(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List models by name."""
    s = state(ctx)
    page = service.list_models(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [(m.name, m.team, m.latest_version, m.created_at, m.description) for m in page.items]
    text = table(["NAME", "TEAM", "LATEST", "CREATED", "DESCRIPTION"], rows)
    emit(ctx, page, text + _more(page.next_cursor))


@app.command()
def versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    limit: Annotated[int, typer.Option(metavar="N", help="How many, newest first.")] = 20,
    cursor: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="Continue after a page (its next_cursor).")
    ] = None,
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
    emit(ctx, page, table(headers, rows) + _more(page.next_cursor))


@app.command()
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
        f"semver:         {_cell(v.semver)}",
        f"aliases:        {', '.join(v.aliases) or '-'}",
        f"stage:          {v.stage}",
        f"tags:           {' '.join(f'{k}={t}' for k, t in v.tags.items()) or '-'}",
        f"config hash:    {v.config_hash}",
        f"config schema:  {f'v{v.schema_version}' if v.schema_version else '-'}",
        f"weights:        {v.weights_uri}",
        f"weights format: {_cell(v.weights_format)}",
        f"weights sha256: {v.weights_sha256}",
        f"weights bytes:  {_cell(v.weights_bytes)}",
        f"parent:         {_cell(v.parent_version)}",
        f"created:        {_cell(v.created_at)} by {v.created_by}",
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


@app.command()
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


@app.command()
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


# --- aliases -------------------------------------------------------------------------------------


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to point the alias at.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias, e.g. production.")],
    expect: Annotated[
        str | None, typer.Option(help="Version you believe is live now ('none': no alias yet).")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias's history).")] = "",
) -> None:
    """Point ALIAS of model NAME at VERSION (refused, rule by rule, if its policy is unmet)."""
    s = state(ctx)
    a = service.promote(
        s.existing_db,
        s.actor,
        model=name,
        version=version,
        alias=alias,
        expected_version=_expected(expect),
        reason=reason,
    )
    was = f" (was {a.previous_version})" if a.previous_version is not None else ""
    emit(ctx, a, f"{name}@{alias} -> version {a.version}{was}")


@app.command()
def rollback(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias to move back.")],
    to: Annotated[int | None, typer.Option(help="Version to go back to.")] = None,
    expect: Annotated[str | None, typer.Option(help="Version you believe is live now.")] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the alias's history).")] = "",
) -> None:
    """Move ALIAS back to where it pointed before (or to --to)."""
    s = state(ctx)
    a = service.rollback(
        s.existing_db,
        s.actor,
        model=name,
        alias=alias,
        to=to,
        expected_version=_expected(expect),
        reason=reason,
    )
    emit(ctx, a, f"{name}@{alias} rolled back to version {a.version} (was {a.previous_version})")


# --- audit ---------------------------------------------------------------------------------------


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model's events.")] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="How many, newest first.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="Continue after a page (its next_cursor).")
    ] = None,
) -> None:
    """List audit events, newest first."""
    s = state(ctx)
    page = service.list_audit(s.existing_db, s.actor, model=name, limit=limit, cursor=cursor)
    rows = [
        (e.seq, e.at, e.actor, e.action, e.model, e.version, json.dumps(e.payload, sort_keys=True))
        for e in page.items
    ]
    headers = ["SEQ", "AT", "ACTOR", "ACTION", "MODEL", "VERSION", "PAYLOAD"]
    emit(ctx, page, table(headers, rows) + _more(page.next_cursor))


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint file from `audit export-checkpoint`.")
    ] = None,
    signed: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Signed checkpoints (JSON lines of `audit checkpoint`)."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(envvar="MMGOV_AUDIT_PUBLIC_KEY", metavar="FILE",
                     help="Ed25519 public key the --signed checkpoints must verify with."),
    ] = None,
) -> None:
    """Recompute the chain and compare the tables with it; exit 1 naming the first difference."""
    s = state(ctx)
    point = None
    if checkpoint is not None:
        try:
            point = Checkpoint.model_validate_json(checkpoint.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"{checkpoint}: not a readable checkpoint: {exc}") from exc
    points = read_signed_file(signed, public_key) if signed is not None else []
    report = service.verify_audit(s.existing_db, s.actor, checkpoint=point, checkpoints=points)
    if report.ok:
        signed_note = f", signed checkpoints held: {len(points)}" if points else ""
        emit(ctx, report, f"ok: {report.checked} events, head {report.head_seq} "
             f"{report.head_hash}{signed_note}")
        return
    if report.table is not None:
        emit(ctx, report, f"chain intact: {report.checked} events")
        raise fail(
            ctx, f"the tables disagree with the audit log: {report.reason}", kind="audit_mismatch"
        )
    emit(ctx, report, f"checked {report.checked} events before the first bad one")
    raise fail(
        ctx,
        f"audit chain broken at seq {report.first_bad_seq}: {report.reason}",
        kind="audit_chain_broken",
    )


@audit_app.command("export-checkpoint")
def audit_export_checkpoint(
    ctx: typer.Context,
    file: Annotated[Path | None, typer.Argument(help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write to FILE) the audit head as JSON; keep it outside the database."""
    s = state(ctx)
    point = service.export_checkpoint(s.existing_db, s.actor)
    text = point.model_dump_json()
    if file is None:
        typer.echo(text)
        return
    try:
        file.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot write {file}: {exc.strerror}") from exc
    typer.echo(f"checkpoint seq {point.seq} written to {file}", err=state(ctx).json)


# --- database ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Migrate the database to the newest schema."""
    s = state(ctx)
    dbmod.upgrade(s.url)
    emit(ctx, {"revision": dbmod.head_revision()}, f"database at {dbmod.head_revision()}")


@db_app.command("current")
def db_current(ctx: typer.Context) -> None:
    """Print the database's schema revision and the code's head revision."""
    s = state(ctx)
    path = dbmod.sqlite_path(s.url)
    if path is not None and not path.is_file():
        raise DatabaseUnavailable(dbmod.missing_database_message(s.url))
    database = dbmod.Database(s.url, create=False)
    try:
        current = database.current_revision()
    finally:
        database.dispose()
    head = dbmod.head_revision()
    data = {"current": current, "head": head, "at_head": current == head}
    emit(ctx, data, f"current {current or 'none'}, head {head}")


# --- references, teams, tokens, incidents --------------------------------------------------------


@reference_app.command("attach")
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


@team_app.command("create")
def team_create(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Team.")]) -> None:
    """Create a team."""
    s = state(ctx)
    emit(ctx, service.create_team(s.db, s.actor, name), f"team {name} created")


@team_app.command("list")
def team_list(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List teams by name."""
    s = state(ctx)
    page = service.list_teams(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [(t.name, t.created_at, t.created_by) for t in page.items]
    emit(ctx, page, table(["NAME", "CREATED", "BY"], rows) + _more(page.next_cursor))


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    team: Annotated[str, typer.Option("--team", help="Team the token acts for.")],
    role: Annotated[str, typer.Option("--role", help="reader, maintainer or admin.")],
    name: Annotated[str, typer.Option(help="Label of the token.")] = "cli",
    scope: Annotated[
        str | None,
        typer.Option(help="deployments: a reader token that may also post heartbeats."),
    ] = None,
) -> None:
    """Create an API token and print its secret (shown only this once)."""
    s = state(ctx)
    info, secret = service.create_token(
        s.existing_db, s.actor, team=team, role=role, name=name, scope=scope
    )
    data = {**info.model_dump(mode="json"), "secret": secret}
    shown = f"{role}, scope {scope}" if scope else role
    emit(ctx, data, f"token {info.id} ({team}, {shown}); secret, shown only once:\n{secret}")


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument()]) -> None:
    """Revoke an API token."""
    s = state(ctx)
    revoked = service.revoke_token(s.existing_db, s.actor, token_id)
    emit(ctx, revoked, f"token {token_id} revoked")


@token_app.command("list")
def token_list(ctx: typer.Context, limit: PageLimit = 50, cursor: PageCursor = None) -> None:
    """List API tokens oldest first (never their secrets)."""
    s = state(ctx)
    page = service.list_tokens(s.existing_db, s.actor, limit=limit, cursor=cursor)
    rows = [
        (t.id, t.team, t.name, t.role, t.prefix, t.created_at, t.revoked_at) for t in page.items
    ]
    text = table(["ID", "TEAM", "NAME", "ROLE", "PREFIX", "CREATED", "REVOKED"], rows)
    emit(ctx, page, text + _more(page.next_cursor))


@app.command()
def incidents(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model's incidents.")] = None,
    status: Annotated[str | None, typer.Option(help="open or resolved.")] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> None:
    """List incidents recorded from Alertmanager, newest first."""
    s = state(ctx)
    page = service.list_incidents(
        s.existing_db, s.actor, model=model, status=status, limit=limit, cursor=cursor
    )
    rows = [
        (i.id, i.status, i.alertname, i.model, i.version, i.module, i.starts_at, i.ends_at)
        for i in page.items
    ]
    headers = ["ID", "STATUS", "ALERT", "MODEL", "VERSION", "MODULE", "STARTS", "ENDS"]
    emit(ctx, page, table(headers, rows) + _more(page.next_cursor))


# --- entry point ---------------------------------------------------------------------------------


def load_extensions() -> list[str]:
    """Import every ``registry.cli_*`` module so it can add its commands to ``app``.

    Returns:
        The names of the modules imported.
    """
    import registry

    names = sorted(
        f"registry.{m.name}"
        for m in pkgutil.iter_modules(registry.__path__)
        if m.name.startswith("cli_")
    )
    for name in names:
        importlib.import_module(name)
    return names


def main() -> None:
    """Console-script entry point of `mmgov`."""
    app(prog_name="mmgov")


load_extensions()

__all__ = [
    "GLOBAL_FLAGS",
    "GLOBAL_VALUE_OPTIONS",
    "CliState",
    "app",
    "emit",
    "fail",
    "hoist_global_options",
    "load_extensions",
    "main",
    "print_error",
    "state",
    "table",
]
