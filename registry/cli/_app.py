"""The root `mmgov` group: global options anywhere, the root callback, errors to exit codes.

The one place that imports typer's private vendored click: `typer._click.core.Context` is the
type typer's own `TyperGroup.parse_args` takes (`typer.Context` is a subclass, so an override
annotated with it would narrow the parameter), and typer>=0.29 exports no public alias of it.
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.core import Context as ClickContext  # see the module docstring
from typer.core import TyperArgument, TyperGroup, TyperOption

from registry import db as dbmod
from registry.cli._context import CliState, os_user
from registry.cli._render import error_exit, print_error
from registry.schemas import Actor
from registry.text import text_problem

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


class _Root(TyperGroup):
    """Root group: global options anywhere; a RegistryError is one error line and an exit code.

    Under --json that line is a JSON object, and so is a usage error (same exit codes).
    """

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_options(self, args))

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Abort, typer.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:  # RegistryError, or a bug: one line, never a traceback
            obj = ctx.obj if isinstance(ctx.obj, CliState) else None
            raise error_exit(obj, exc) from None

    def main(self, args: Sequence[str] | None = None, *pos: Any, **kwargs: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        before = argv[: argv.index("--")] if "--" in argv else argv
        if "--json" not in before or kwargs.get("standalone_mode") is False:
            return super().main(argv, *pos, **kwargs)
        try:
            code = super().main(argv, *pos, **{**kwargs, "standalone_mode": False})
        except typer.TyperException as exc:  # click's usage errors
            print_error(True, exc.format_message(), kind="usage", exit_code=exc.exit_code)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error(True, "aborted", kind="aborted", exit_code=1)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


class DefaultListGroup(TyperGroup):
    """A group whose `list` subcommand runs when no subcommand is named (`mmgov audit [NAME]`)."""

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
        actor=Actor(name=actor or os_user(), team=None, role="admin"),
        json=as_json,
        url_given=source is not None and source.name == "COMMANDLINE",
    )
    ctx.obj = cli_state
    ctx.call_on_close(cli_state.close)


def main() -> None:
    """Console-script entry point of `mmgov`."""
    app(prog_name="mmgov")
