"""`mmgov audit …`: list (the default), verify, export-checkpoint, and signed checkpoints
(`keygen`, `checkpoint`, run on a schedule)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from registry import service
from registry.audit.signing import generate_key, load_private_key, read_signed_file, sign
from registry.cli._app import DefaultListGroup
from registry.cli._context import state
from registry.cli._options import NewestLimit, PageCursor
from registry.cli._render import emit, emit_page, fail
from registry.errors import InvalidInput
from registry.schemas import Checkpoint

group = typer.Typer(cls=DefaultListGroup, help="Audit log: list, verify, export a checkpoint.")
"""`mmgov audit [NAME]` lists; `verify`, `checkpoint`, `keygen`… are subcommands."""


@group.command("list")
def audit_list(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="Only this model's events.")] = None,
    limit: NewestLimit = 50,
    cursor: PageCursor = None,
) -> None:
    """List audit events, newest first."""
    s = state(ctx)
    page = service.list_audit(s.existing_db, s.actor, model=name, limit=limit, cursor=cursor)
    rows = [
        (e.seq, e.at, e.actor, e.action, e.model, e.version, json.dumps(e.payload, sort_keys=True))
        for e in page.items
    ]
    headers = ["SEQ", "AT", "ACTOR", "ACTION", "MODEL", "VERSION", "PAYLOAD"]
    emit_page(ctx, page, headers, rows)


@group.command("verify")
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


@group.command("export-checkpoint")
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


@group.command("keygen")
def audit_keygen(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Private key to create (PEM, mode 0600).")],
) -> None:
    """Create an Ed25519 signing key FILE and its public key FILE.pub (keep FILE off the db)."""
    public = generate_key(file)
    emit(ctx, {"private_key": str(file), "public_key": str(public)},
         f"signing key {file} (keep it secret), public key {public} (give it to verifiers)")


@group.command("checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    key: Annotated[
        Path,
        typer.Option(envvar="MMGOV_AUDIT_SIGNING_KEY", metavar="FILE",
                     help="Ed25519 private key from `audit keygen`."),
    ],
    append: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Append the signed line to FILE [default: stdout]."),
    ] = None,
) -> None:
    """Sign the audit head (one JSON line): `audit verify --signed FILE` then detects rewrites."""
    s = state(ctx)
    private = load_private_key(key)
    signed = sign(service.export_checkpoint(s.existing_db, s.actor), private)
    line = signed.model_dump_json()
    if append is None:
        typer.echo(line)
        return
    try:
        with append.open("a", encoding="utf-8") as out:
            out.write(line + "\n")
    except OSError as exc:
        raise InvalidInput(f"cannot append to {append}: {exc.strerror}") from exc
    typer.echo(f"checkpoint seq {signed.seq} signed by {signed.key_id}, appended to {append}",
               err=s.json)
