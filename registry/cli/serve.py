"""`mmgov serve`: run the admin API under uvicorn (factory mode, so each worker builds its app).

A plain function; `registry.cli` registers it as a top-level command.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from registry import db as dbmod
from registry import service
from registry.cli._context import state
from registry.errors import InvalidInput
from registry.schemas import Actor
from registry.web.session import new_key

_CHECKER = Actor(name="mmgov-serve", team=None, role="admin")


def _has_live_token(database: dbmod.Database) -> bool:
    """Whether some token is not revoked (read page by page)."""
    cursor: str | None = None
    while True:
        page = service.list_tokens(database, _CHECKER, limit=1000, cursor=cursor)
        if any(t.revoked_at is None for t in page.items):
            return True
        if page.next_cursor is None:
            return False
        cursor = page.next_cursor


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_multiprocess_dir() -> Path:
    """Return ``PROMETHEUS_MULTIPROC_DIR`` (a new temp dir if unset), emptied of old samples.

    Workers inherit the variable; stale files of a previous run would add to the counters.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(configured) if configured else Path(tempfile.mkdtemp(prefix="mmgov-prom-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return path


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, metavar="PORT", help="TCP port.")] = 8080,
    workers: Annotated[
        int, typer.Option(min=1, max=64, metavar="N", help="Worker processes.")
    ] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Act as a local admin for every request (loopback).")
    ] = False,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the admin API and the web UI; refuses a database not at head and to run open."""
    import uvicorn  # only this command needs the server

    url = state(ctx).url
    if no_auth and not is_loopback(host):
        raise InvalidInput(f"--no-auth serves every caller as admin: refusing host {host!r}")
    # Like `register`, serve may start a registry: it creates and migrates a new SQLite file.
    database = dbmod.open_database(url)  # SchemaNotAtHead, DatabaseUnavailable
    try:
        has_token = _has_live_token(database)
    finally:
        database.dispose()
    if not has_token and not no_auth:
        raise InvalidInput(
            f"no API token in {dbmod.describe_url(url)}: create one (`mmgov team create ml`, "
            "then `mmgov token create --team ml --role admin --name ops`) or pass --no-auth "
            "(loopback only)"
        )
    os.environ["MMGOV_DATABASE_URL"] = url
    os.environ["MMGOV_NO_AUTH"] = "1" if no_auth else "0"
    # One web UI session key for every worker; a random one ends sessions at restart.
    os.environ.setdefault("MMGOV_SESSION_KEY", new_key())
    if workers > 1:
        prepare_multiprocess_dir()
    typer.echo(
        f"mmgov API and web UI on http://{host}:{port} ({workers} worker(s), {dbmod.safe_url(url)}"
        f"{', NO AUTH' if no_auth else ''})",
        err=True,
    )
    uvicorn.run(
        "registry.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
    )


__all__ = ["is_loopback", "prepare_multiprocess_dir", "serve"]
