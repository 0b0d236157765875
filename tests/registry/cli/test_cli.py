"""The `mmgov` CLI: in-process on both databases, and as a real subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from sqlalchemy import create_engine, inspect
from typer.testing import CliRunner

from registry.cli import app
from registry.cli._app import hoist_global_options
from registry.db import head_revision, normalize_url
from tests.conftest import write_safetensors

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "model.yaml"
SHA_A, SHA_B = "a" * 64, "b" * 64
Run = Callable[..., str]


@pytest.fixture
def mmgov(db_url: str) -> Run:
    """Run `mmgov` in-process on the test database; return stdout (or stderr on failure)."""
    runner = CliRunner()

    def run(*args: str, expect: int = 0) -> str:
        result = runner.invoke(app, ["--db", db_url, "--actor", "tester", *args])
        assert result.exit_code == expect, (result.stdout, result.stderr)
        return result.stdout if expect == 0 else result.stderr

    run("db", "upgrade")
    run.db_url = db_url  # type: ignore[attr-defined]
    return run


def _register(mmgov: Run, sha: str, *extra: str) -> str:
    return mmgov(
        "register",
        str(CONFIG),
        "--model",
        "clip",
        "--weights",
        f"s3://b/{sha[:4]}",
        "--sha256",
        sha,
        *extra,
    )


class TestCli:
    def test_register_promote_rollback_flow(self, mmgov: Run) -> None:
        """Register twice, promote, roll back, and read it all back as JSON."""
        assert "registered clip version 1" in _register(mmgov, SHA_A)
        assert "unchanged" in _register(mmgov, SHA_A)
        assert "version 2" in _register(mmgov, SHA_B, "--note", "retrained")
        mmgov("promote", "clip", "1", "--alias", "production", "--expect", "none")
        mmgov("promote", "clip", "2", "--alias", "production", "--expect", "1")
        out = mmgov("--json", "rollback", "clip", "--alias", "production")
        assert json.loads(out)["version"] == 1
        versions = json.loads(mmgov("--json", "versions", "clip"))
        assert [v["version"] for v in versions["items"]] == [2, 1]
        assert versions["items"][0]["note"] == "retrained"
        assert json.loads(mmgov("--json", "show", "clip", "2"))["created_by"] == "tester"
        assert "weights changed: yes" in mmgov("diff", "clip", "1", "2")
        actions = [e["action"] for e in json.loads(mmgov("--json", "audit", "clip"))["items"]]
        assert actions[0] == "alias.rollback"
        assert "clip" in mmgov("models")

    def test_errors_are_one_line_with_exit_codes(self, mmgov: Run) -> None:
        """NotFound/Conflict exit 1, InvalidInput exits 2; one `error:` line, no traceback."""
        err = mmgov("show", "nope", "1", expect=1)
        assert err.startswith("error: model 'nope' not found (database ")
        assert err.count("\n") == 1
        _register(mmgov, SHA_A)
        err = mmgov("promote", "clip", "1", "--alias", "Not A Slug", expect=2)
        assert err.startswith("error: invalid alias name")
        assert err.count("\n") == 1
        mmgov("promote", "clip", "1", "--alias", "production")
        assert "expected" in mmgov(
            "promote", "clip", "1", "--alias", "production", "--expect", "3", expect=1
        )
        refused = mmgov("rollback", "clip", "--alias", "production", expect=1)
        assert "nothing to roll back" in refused

    def test_audit_verify_and_checkpoint(self, mmgov: Run, tmp_path: Path) -> None:
        """export-checkpoint writes the head; verify accepts it; a bad file is exit 2."""
        _register(mmgov, SHA_A)
        cp = tmp_path / "cp.json"
        mmgov("audit", "export-checkpoint", str(cp))
        # team.create of the 'default' owner, model.create, version.register.
        assert json.loads(cp.read_text())["seq"] == 3
        assert mmgov("audit", "verify", "--checkpoint", str(cp)).startswith("ok: 3 events")
        (tmp_path / "bad.json").write_text("{")
        mmgov("audit", "verify", "--checkpoint", str(tmp_path / "bad.json"), expect=2)

    def test_team_token_reference(self, mmgov: Run, tmp_path: Path) -> None:
        """team create, token create (secret printed once), reference attach."""
        mmgov("team", "create", "vision")
        token = json.loads(
            mmgov("--json", "token", "create", "--team", "vision", "--role", "reader")
        )
        assert token["secret"].startswith("mmgov_")
        listed = mmgov("--json", "token", "list")
        assert token["secret"] not in listed
        _register(mmgov, SHA_A, "--team", "vision")
        ref = tmp_path / "ref.safetensors"
        ref.write_bytes(b"profile-bytes")
        out = json.loads(
            mmgov(
                "--json",
                "reference",
                "attach",
                "clip",
                "1",
                str(ref),
                "--module",
                "image_encoder",
                "--n-samples",
                "8",
            )
        )
        assert (out["format"], out["size_bytes"]) == ("safetensors", 13)

    def test_reference_attach_reads_an_mmgov_profile(self, mmgov: Run, tmp_path: Path) -> None:
        """An mmgov profile needs no --module/--n-samples/--format; contradicting flags fail."""
        np = pytest.importorskip("numpy")
        from instrumentation.drift.reference import ReferenceProfile

        mmgov("team", "create", "vision")
        _register(mmgov, SHA_A, "--team", "vision")
        rng = np.random.default_rng(0)
        profile = ReferenceProfile(
            embeddings={
                "image_encoder": rng.normal(size=(12, 4)),
                "text_encoder": rng.normal(size=(12, 3)),
            }
        )
        ref = tmp_path / "ref.npz"
        ref.write_bytes(profile.to_bytes())
        err = mmgov("reference", "attach", "clip", "1", str(ref), "--n-samples", "7", expect=2)
        assert "holds 12 samples, not 7" in err
        err = mmgov("reference", "attach", "clip", "1", str(ref), "--module", "x", expect=2)
        assert "profiles ['image_encoder', 'text_encoder']" in err
        out = json.loads(mmgov("--json", "reference", "attach", "clip", "1", str(ref)))
        assert (out["format"], out["n_samples"], out["modules"]) == (
            ReferenceProfile.FORMAT, 12, ["image_encoder", "text_encoder"]
        )
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"not a profile")
        err = mmgov("reference", "attach", "clip", "1", str(plain), expect=2)
        assert "give --module and --n-samples" in err

    def test_db_current_reports_head(self, mmgov: Run) -> None:
        """`db current` says the database is at head after `db upgrade`."""
        assert json.loads(mmgov("--json", "db", "current"))["at_head"] is True


def test_real_subprocess_on_default_sqlite(tmp_path: Path) -> None:
    """`mmgov` as a subprocess: the embedded SQLite default is created on first use."""
    exe = Path(sys.executable).with_name("mmgov")
    env = {k: v for k, v in os.environ.items() if k != "MMGOV_DATABASE_URL"}
    cmd = [
        str(exe),
        "register",
        str(CONFIG),
        "--model",
        "clip",
        "--weights",
        "s3://b/w",
        "--sha256",
        SHA_A,
    ]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mmgov.db").exists()
    bad = subprocess.run(
        [str(exe), "show", "clip", "9"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr == (
        f"error: model 'clip' has no version 9 (database sqlite:///./mmgov.db "
        f"({tmp_path / 'mmgov.db'}))\n"
    )
    assert "Traceback" not in bad.stderr


# --- global options, JSON errors, version, completion, help --------------------------------------


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


class TestGlobalOptions:
    def test_global_options_work_after_the_command(self, mmgov: Run, db_url: str) -> None:
        """--json, --db (both spellings) and --actor are accepted after the command too."""
        _register(mmgov, SHA_A)
        for args in (
            ["versions", "clip", "--json", "--db", db_url],
            ["versions", "--db=" + db_url, "clip", "--json"],
            ["--json", "versions", "clip", "--db", db_url],
        ):
            code, out, err = _invoke(*args)
            assert code == 0, err
            assert [v["version"] for v in json.loads(out)["items"]] == [1]
        code, out, err = _invoke(
            "promote", "clip", "1", "--alias", "production", "--actor", "carol", "--db", db_url,
            "--json",
        )
        assert code == 0, err
        events = json.loads(mmgov("--json", "audit", "clip", "--limit", "1"))["items"]
        assert (events[0]["action"], events[0]["actor"]) == ("alias.promote", "carol")

    def test_a_commands_own_option_value_is_not_taken_for_a_global_option(self) -> None:
        """`--note --json` keeps "--json" as the note; only what follows `--` is left alone."""
        root = typer.main.get_command(app)
        args = ["register", "c.yaml", "--note", "--json", "--model", "m", "--db", "sqlite:///x"]
        assert hoist_global_options(root, args) == [
            "--db", "sqlite:///x", "register", "c.yaml", "--note", "--json", "--model", "m",
        ]
        assert hoist_global_options(root, ["audit", "--json", "--", "--json"]) == [
            "--json", "audit", "--", "--json",
        ]

    def test_json_errors_are_json_on_stderr_with_the_same_exit_codes(
        self, mmgov: Run, tmp_path: Path
    ) -> None:
        """NotFound 1, InvalidInput 2, a usage error 2: the same codes as plain text, as JSON."""
        _register(mmgov, SHA_A)
        other = write_safetensors(tmp_path / "other.safetensors", tag="not the registered weights")
        for args, code, kind in (
            (["show", "nope", "1"], 1, "not_found"),
            (["promote", "clip", "1", "--alias", "Not A Slug"], 2, "invalid_input"),
            (["models", "--no-such-option"], 2, "usage"),
            (["verify", "clip", "1", str(other)], 1, "weights_mismatch"),
        ):
            plain = CliRunner().invoke(app, ["--db", _db(mmgov), *args])
            as_json = CliRunner().invoke(app, ["--db", _db(mmgov), *args, "--json"])
            assert plain.exit_code == as_json.exit_code == code, (args, plain.stderr)
            body = json.loads(as_json.stderr.strip().splitlines()[-1])
            assert (body["error"], body["exit_code"]) == (kind, code), body
            assert body["detail"]

    def test_version(self) -> None:
        """`mmgov --version` prints the installed package version."""
        code, out, _ = _invoke("--version")
        assert (code, out) == (0, f"mmgov {importlib.metadata.version('mmgov')}\n")

    def test_help_has_no_internal_metavars_or_stray_spaces(self) -> None:
        """Every command's help: NAME-style metavars, no `<str>`/`{config}`, no " ." gaps."""
        root = typer.main.get_command(app)
        paths: list[list[str]] = [[]]
        stack = [([], root)]
        while stack:
            prefix, command = stack.pop()
            for name, sub in getattr(command, "commands", {}).items():
                paths.append([*prefix, name])
                stack.append(([*prefix, name], sub))
        assert len(paths) > 20
        for path in paths:
            code, out, err = _invoke(*path, "--help")
            assert code == 0, (path, err)
            assert not re.search(r"<(str|bool|int|path|int range)>|\{\w+\}", out), (path, out)
            assert not re.search(r"\w \.|\s+\.\s", out), (path, out)
        show = _invoke("show", "--help")[1]
        assert " show [OPTIONS] NAME VERSION\n" in show
        assert "--limit N" in _invoke("versions", "--help")[1]
        assert "--db URL" in _invoke("--help")[1]


def _db(mmgov: Run) -> str:
    url = mmgov.db_url  # type: ignore[attr-defined]
    assert isinstance(url, str)
    return url


def _mmgov_exe() -> str:
    return str(Path(sys.executable).with_name("mmgov"))


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMGOV_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[3])
    env.update(extra)
    return env


def test_shell_completion_installs_and_completes(tmp_path: Path) -> None:
    """From bash, `--show-completion` prints bash's script and `--install-completion` adds it to
    ~/.bashrc; the completion hook then completes command names."""
    shown = subprocess.run(
        # `; exit $?`: bash would exec a lone command, and mmgov's parent would not be a shell.
        ["bash", "-c", f"{_mmgov_exe()} --show-completion; exit $?"], env=_subprocess_env(),
        capture_output=True, text=True, check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert "_MMGOV_COMPLETE=complete_bash" in shown.stdout
    done = subprocess.run(
        [_mmgov_exe()],
        env=_subprocess_env(
            _MMGOV_COMPLETE="complete_bash", COMP_WORDS="mmgov ver", COMP_CWORD="1"
        ),
        capture_output=True, text=True, check=False, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert set(done.stdout.split()) == {"versions", "verify"}
    home = tmp_path / "home"
    home.mkdir()
    installed = subprocess.run(
        ["bash", "-c", f"{_mmgov_exe()} --install-completion; exit $?"],
        env=_subprocess_env(HOME=str(home)), capture_output=True, text=True, check=False,
    )
    assert installed.returncode == 0, installed.stderr
    assert "mmgov" in (home / ".bashrc").read_text(encoding="utf-8")


# --- paging -----------------------------------------------------------------------------------


def test_listing_commands_page_with_limit_and_cursor(mmgov: Run) -> None:
    """versions and audit take --limit and --cursor; the table says how to get the next page."""
    for sha in ("a", "b", "c"):
        _register(mmgov, sha * 64)
    first = json.loads(mmgov("--json", "versions", "clip", "--limit", "2"))
    assert [v["version"] for v in first["items"]] == [3, 2]
    rest = json.loads(mmgov("versions", "clip", "--cursor", first["next_cursor"], "--json"))
    assert ([v["version"] for v in rest["items"]], rest["next_cursor"]) == ([1], None)
    assert f"more: --cursor {first['next_cursor']}" in mmgov("versions", "clip", "--limit", "2")
    audit = json.loads(mmgov("--json", "audit", "--limit", "2"))
    older = json.loads(mmgov("--json", "audit", "--limit", "2", "--cursor", audit["next_cursor"]))
    seqs = [e["seq"] for e in audit["items"] + older["items"]]
    assert seqs == sorted(seqs, reverse=True)
    assert len(set(seqs)) == 4
    assert "invalid" in mmgov("versions", "clip", "--cursor", "x", expect=2)


# --- databases: spelling, unreachable, never created by a read ----------------------------------


def test_postgres_and_postgresql_urls_mean_psycopg() -> None:
    """Both common spellings become the psycopg driver; an explicit driver is kept."""
    assert normalize_url("postgres://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalize_url("postgresql://u:pw@h:5/d") == "postgresql+psycopg://u:pw@h:5/d"
    assert normalize_url("postgresql+psycopg://h/d") == "postgresql+psycopg://h/d"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_postgres_spellings_reach_the_database(mmgov: Run, db_url: str) -> None:
    """On PostgreSQL, `postgres://` and `postgresql://` open the same database as the driver URL."""
    if not db_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL spelling")
    _register(mmgov, SHA_A)
    rest = db_url.split("://", 1)[1]
    for scheme in ("postgres", "postgresql"):
        code, out, err = _invoke("--json", "--db", f"{scheme}://{rest}", "models")
        assert code == 0, err
        assert [m["name"] for m in json.loads(out)["items"]] == ["clip"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/mmgov_no_such_database",
        "postgres://postgres@127.0.0.1:1/mmgov",
    ],
)
def test_unreachable_database_is_one_line(url: str, tmp_path: Path) -> None:
    """A missing PostgreSQL database or a closed port: one `error:` line naming it, exit 1."""
    for args in (["models"], ["db", "upgrade"], ["db", "current"], ["team", "create", "ml"]):
        done = subprocess.run(
            [_mmgov_exe(), "--db", url, *args], env=_subprocess_env(), cwd=tmp_path,
            capture_output=True, text=True, check=False, timeout=60,
        )
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.count("\n") == 1, (args, done.stderr)
        assert done.stderr.startswith("error: cannot use database postgres"), done.stderr
        assert "Traceback" not in done.stderr


READ_COMMANDS = [
    ["models"],
    ["versions", "clip"],
    ["show", "clip", "1"],
    ["diff", "clip", "1", "2"],
    ["verify", "clip", "1"],
    ["audit"],
    ["audit", "verify"],
    ["audit", "export-checkpoint"],
    ["team", "list"],
    ["token", "list"],
    ["incidents"],
    ["db", "current"],
    ["promote", "clip", "1", "--alias", "production"],
    ["rollback", "clip", "--alias", "production"],
    ["token", "create", "--team", "ml", "--role", "admin"],
    ["token", "revoke", "1"],
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=lambda a: "-".join(a))
def test_commands_on_a_missing_sqlite_file_create_nothing(args: list[str], tmp_path: Path) -> None:
    """No file and no directory appear; the error names the file and how to create it."""
    done = subprocess.run(
        [_mmgov_exe(), "--db", "sqlite:///nodir/x.db", *args], env=_subprocess_env(),
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"error: no database at sqlite:///nodir/x.db ({tmp_path / 'nodir' / 'x.db'}): create it "
        "with `mmgov db upgrade` (or a write command such as `mmgov team create`), or choose "
        "another with --db or MMGOV_DATABASE_URL\n"
    )
    default = subprocess.run(
        [_mmgov_exe(), *args], env=_subprocess_env(), cwd=tmp_path,
        capture_output=True, text=True, check=False,
    )
    assert default.returncode == 1
    assert f"no database at sqlite:///./mmgov.db ({tmp_path / 'mmgov.db'})" in default.stderr
    assert list(tmp_path.iterdir()) == []


def test_reads_on_an_empty_postgresql_database_create_no_tables() -> None:
    """On PostgreSQL a read of an empty database says to upgrade and leaves it empty."""
    from tests.conftest import PG_URL_TEMPLATE, _create_pg_database, _drop_pg_database

    name = _create_pg_database()
    url = PG_URL_TEMPLATE.format(dbname=name)
    try:
        for args in READ_COMMANDS:
            code, out, err = _invoke("--db", url, *args)
            if args == ["db", "current"]:
                assert (code, out) == (0, f"current none, head {head_revision()}\n"), err
                continue
            assert code == 1, (args, err)
            expects = f"is at revision none, code expects {head_revision()}: run `mmgov db upgrade`"
            assert expects in err
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert inspect(conn).get_table_names() == []
        finally:
            engine.dispose()
    finally:
        _drop_pg_database(name)


def test_write_commands_still_start_a_new_sqlite_registry(tmp_path: Path) -> None:
    """`team create` creates the embedded default (directory included) and migrates it."""
    url = f"sqlite:///{tmp_path / 'new' / 'reg.db'}"
    code, out, err = _invoke("--db", url, "team", "create", "ml")
    assert (code, out) == (0, "team ml created\n"), err
    code, out, _ = _invoke("--db", url, "--json", "team", "list")
    assert [t["name"] for t in json.loads(out)["items"]] == ["ml"]


# --- serve's hint -------------------------------------------------------------------------------


def test_serve_without_tokens_suggests_commands_that_work(mmgov: Run) -> None:
    """The commands `mmgov serve` suggests run as printed, and then serve finds a token."""
    code, _, err = _invoke("--db", _db(mmgov), "serve", "--port", "1")
    assert code == 2, err
    suggested = re.findall(r"`mmgov ([^`]+)`", err)
    assert len(suggested) == 2, err
    for command in suggested:
        mmgov(*shlex.split(command))
    tokens = json.loads(mmgov("--json", "token", "list"))["items"]
    assert [(t["team"], t["role"]) for t in tokens] == [("ml", "admin")]
