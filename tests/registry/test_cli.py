"""The `mmgov` CLI: in-process on both databases, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.cli import app

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "model.yaml"
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
        assert err.strip() == "error: model 'nope' not found"
        _register(mmgov, SHA_A)
        err = mmgov("promote", "clip", "1", "--alias", "Not A Slug", expect=2)
        assert err.startswith("error: invalid alias name")
        assert err.count("\n") == 1
        mmgov("promote", "clip", "1", "--alias", "prod")
        assert "expected" in mmgov(
            "promote", "clip", "1", "--alias", "prod", "--expect", "3", expect=1
        )
        assert "nothing to roll back" in mmgov("rollback", "clip", "--alias", "prod", expect=1)

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
        from instrumentation.reference import ReferenceProfile

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
    assert bad.stderr == "error: model 'clip' has no version 9\n"
    assert "Traceback" not in bad.stderr
