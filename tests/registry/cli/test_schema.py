"""The `mmgov` CLI for a team's own model: its config as is, `schema …`, pipelines, `verify`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from registry.cli import app
from tests.conftest import write_safetensors

ROOT = Path(__file__).resolve().parents[3]
SEED = ROOT / "examples" / "clip" / "config.yaml"
REFERENCE = ROOT / "configs" / "model.yaml"
REFERENCE_SCHEMA = ROOT / "configs" / "model.schema.json"
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


class TestOwnModel:
    def test_seed_config_registers_as_is(self, mmgov: Run, tmp_path: Path) -> None:
        """`mmgov register config.yaml` with the seed's file succeeds and shows its layout."""
        weights = write_safetensors(tmp_path / "w.safetensors")
        out = mmgov("register", str(SEED), "--model", "seed", "--weights", str(weights))
        assert out.strip().startswith("registered seed version 1 (config cfbd49550a24)")
        shown = mmgov("show", "seed", "1")
        assert "semver:         v1.2.0" in shown
        assert "weights format: safetensors" in shown
        assert '"fusion_type": "cross_attention"' in shown

    def test_schema_refuses_typos_one_line_each(self, mmgov: Run, tmp_path: Path) -> None:
        """With the reference schema, gatd and learnig_rate are refused, each on its own line."""
        mmgov("schema", "set", "ref", str(REFERENCE_SCHEMA), "--note", "from the model's code")
        bad = tmp_path / "bad.yaml"
        bad.write_text(
            REFERENCE.read_text()
            .replace("fusion_type: concat", "fusion_type: gatd")
            .replace("learning_rate:", "learnig_rate:")
        )
        weights = write_safetensors(tmp_path / "w.safetensors")
        err = mmgov("register", str(bad), "--model", "ref", "--weights", str(weights), expect=2)
        lines = err.strip().splitlines()
        assert lines[0] == f"error: {bad}: 2 violations of ref's config schema v1:"
        assert lines[1].startswith('  fusion_type: "gatd" is not one of')
        assert lines[1].endswith("(rule: enum)")
        assert "'learnig_rate' was unexpected" in lines[2]
        assert json.loads(mmgov("--json", "versions", "ref"))["items"] == []
        ok = mmgov("register", str(REFERENCE), "--model", "ref", "--weights", str(weights))
        assert "checked against schema v1" in ok

    def test_schema_show_list_diff_remove(self, mmgov: Run, tmp_path: Path) -> None:
        """schema set twice, list marks the one in force, diff names the path, remove ends it."""
        first = tmp_path / "s1.json"
        first.write_text('{"type": "object"}')
        second = tmp_path / "s2.yaml"
        second.write_text("type: object\nrequired: [model]\n")
        assert "config schema v1 in force" in mmgov("schema", "set", "m", str(first))
        assert "config schema v2 in force" in mmgov("schema", "set", "m", str(second))
        listed = mmgov("schema", "list", "m").splitlines()
        assert [line.split()[0] for line in listed[1:]] == ["1", "2"]
        assert listed[2].split()[1] == "*"
        assert '  + required: ["model"]' in mmgov("schema", "diff", "m", "1", "2")
        shown = mmgov("schema", "show", "m", "--version", "1")
        assert shown.startswith("# m config schema v1 (not in force)")
        assert json.loads(shown.split("\n", 1)[1]) == {"type": "object"}
        mmgov("schema", "remove", "m")
        assert "has no config schema" in mmgov("schema", "show", "m", expect=1)

    def test_invalid_schema_is_one_line(self, mmgov: Run, tmp_path: Path) -> None:
        """A file that is not JSON Schema is refused with one line naming it; exit 2."""
        bad = tmp_path / "bad.json"
        bad.write_text('{"type": 3}')
        err = mmgov("schema", "set", "m", str(bad), expect=2)
        assert err.startswith(f"error: {bad}: not a valid JSON Schema (draft 2020-12)")
        assert len(err.strip().splitlines()) == 1

    def test_pipeline_and_verify(self, mmgov: Run, tmp_path: Path) -> None:
        """--pipeline records tokenizer files; verify --pipeline names a changed file, exit 1."""
        tok = tmp_path / "tok"
        tok.mkdir()
        (tok / "vocab.txt").write_text("a\nb\n")
        weights = write_safetensors(tmp_path / "w.safetensors")
        mmgov(
            "register",
            str(SEED),
            "--model",
            "seed",
            "--weights",
            str(weights),
            "--pipeline",
            f"tokenizer={tok}",
        )
        assert "tokenizer/vocab.txt:" in mmgov("show", "seed", "1")
        ok = mmgov("verify", "seed", "1", "--pipeline", f"tokenizer={tok}")
        assert ok.startswith(f"ok: {weights} and its pipeline is seed v1")
        (tok / "vocab.txt").write_text("a\nc\n")
        err = mmgov("verify", "seed", "1", "--pipeline", f"tokenizer={tok}", expect=1)
        assert "pipeline files that differ: tokenizer/vocab.txt" in err
        assert "--pipeline takes NAME=DIR" in mmgov(
            "verify", "seed", "1", "--pipeline", str(tok), expect=2
        )
