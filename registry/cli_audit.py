"""`mmgov audit keygen` and `mmgov audit checkpoint`: signed checkpoints, run on a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from registry import service
from registry.audit.signing import generate_key, load_private_key, sign
from registry.cli import audit_app, emit, state
from registry.errors import InvalidInput


@audit_app.command("keygen")
def audit_keygen(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Private key to create (PEM, mode 0600).")],
) -> None:
    """Create an Ed25519 signing key FILE and its public key FILE.pub (keep FILE off the db)."""
    public = generate_key(file)
    emit(ctx, {"private_key": str(file), "public_key": str(public)},
         f"signing key {file} (keep it secret), public key {public} (give it to verifiers)")


@audit_app.command("checkpoint")
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
