"""README.md cannot drift from the code: its console blocks are run and their output compared.

Each ```console block lists `$ ` commands followed by the output they print. The commands of a
section run in order in one bash shell; each must exit 0, except those whose printed output has
a line starting with `error:` (or a JSON error object, with an "exit_code"), which must fail.
Every printed line must appear in what the command really printed, once volatile parts (hashes,
times, secrets) are masked and runs of spaces collapsed; numbers are compared as printed. The one
exception is a drift score, which moves in its last digits with the CPU's float kernels: its
verdict (alarm or not) must be the same and the score within `DRIFT_TOLERANCE`. The serving example
(the README's ```python block) must be `tour/serve_model.py`, which ships in the repository.
Ports 8080 and 8001 become free ones. Every console block is in a section a test runs, and every
repository path and benchmark option the README names exists.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests._support import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
THIS = "tests/test_readme.py"
VENV_BIN = Path(sys.executable).parent
EXAMPLE_ROOT = "/home/alice/mmgov"
"""Where the README's reader checked the repository out, in the outputs it shows."""
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MASKS = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"mmgov_[A-Za-z0-9_-]{20,}"), "<secret>"),
    (re.compile(r"\b[0-9a-f]{8,64}\b"), "<hex>"),
)
_DRIFT = re.compile(
    r"^(?P<head>.*drift score )(?P<score>\d+\.\d+) \((?P<verdict>ALARM|no alarm)(?P<tail>.*)$"
)
DRIFT_TOLERANCE = 0.1
"""Relative: a printed drift score may differ this much from the README's, never its verdict."""
GOVERNANCE = "Governance: what served when, protected aliases, incidents, tags"
TESTED_SECTIONS = {
    "Tour",
    GOVERNANCE,
    "Bring your own model",
    "Prometheus and Alertmanager",
    "Upgrading the database",
}


@dataclass
class Command:
    """One `$ ` line of a console block and the output the README shows for it."""

    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def must_fail(self) -> bool:
        """Whether the README shows this command failing."""
        return any(line.startswith("error:") or _is_json_error(line) for line in self.expected)


def _is_json_error(line: str) -> bool:
    if not line.startswith("{"):
        return False
    try:
        body = json.loads(line)
    except ValueError:
        return False
    return isinstance(body, dict) and "exit_code" in body and "error" in body


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return {title.strip(): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _commands(body: str) -> list[Command]:
    commands: list[Command] = []
    for lang, block in _FENCE.findall(body):
        if lang != "console":
            continue
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append(Command(line[2:]))
            elif commands and line.strip():
                commands[-1].expected.append(line)
    return commands


def _mask(line: str) -> str:
    for pattern, token in _MASKS:
        line = pattern.sub(token, line)
    return " ".join(line.split())


def _readme(ports: dict[str, str]) -> str:
    text = README.read_text(encoding="utf-8")
    for old, new in ports.items():
        text = text.replace(old, new)
    return text


def _run(commands: list[Command], cwd: Path, env: dict[str, str], timeout: float) -> list[str]:
    """Run ``commands`` in one bash; return each one's combined output (``@@@rc=N`` on failure)."""
    lines = ["set -uo pipefail", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for i, command in enumerate(commands):
        lines += [f"printf '\\n@@@cmd {i}\\n'", "{ " + command.text, "} 2>&1 || echo \"@@@rc=$?\""]
    proc = subprocess.run(
        ["bash", "-c", "\n".join(lines)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )
    outputs = re.split(r"^@@@cmd \d+\n", proc.stdout, flags=re.M)[1:]
    assert len(outputs) == len(commands), (proc.stdout[-3000:], proc.stderr[-3000:])
    return outputs


def _same_drift(expected: str, actual: set[str]) -> bool:
    """Whether a printed line has the README's drift line's verdict and a score close to it."""
    want = _DRIFT.match(expected)
    assert want is not None
    for line in actual:
        got = _DRIFT.match(line)
        if got is None or (got["head"], got["verdict"], got["tail"]) != (
            want["head"], want["verdict"], want["tail"]
        ):
            continue
        return abs(float(got["score"]) - float(want["score"])) <= DRIFT_TOLERANCE * float(
            want["score"]
        )
    return False


def _check(commands: list[Command], outputs: list[str], cwd: Path) -> None:
    for command, output in zip(commands, outputs, strict=True):
        failed = "@@@rc=" in output
        assert failed == command.must_fail, f"$ {command.text}\n{output}"
        actual = {_mask(line.replace(str(cwd), EXAMPLE_ROOT)) for line in output.splitlines()}
        for line in command.expected:
            want = _mask(line)
            found = _same_drift(want, actual) if _DRIFT.match(want) else want in actual
            assert found, f"$ {command.text}\nREADME: {line}\nprinted:\n{output}"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MMGOV_", "PROMETHEUS_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_readme_has_exactly_two_setup_commands() -> None:
    """The set-up section holds the two commands a fresh machine needs, and they exist."""
    setup = _sections(README.read_text(encoding="utf-8"))["Set-up"]
    blocks = [b for lang, b in _FENCE.findall(setup) if lang == "sh"]
    commands = [line.split("#")[0].strip() for b in blocks for line in b.splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M)
    assert re.search(r"^test:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a whole section, one subprocess after another
def test_tour(tmp_path: Path) -> None:
    """The tour runs as printed: CLI, admin API, incidents and the serving example."""
    ports = {"8080": str(free_port()), "8001": str(free_port())}
    text = _readme(ports)
    tour = _sections(text)["Tour"]
    python_blocks = [b for lang, b in _FENCE.findall(tour) if lang == "python"]
    assert len(python_blocks) == 1, "the tour has one serving example"
    shipped = (ROOT / "tour" / "serve_model.py").read_text(encoding="utf-8")
    for old, new in ports.items():
        shipped = shipped.replace(old, new)
    assert python_blocks[0] == shipped, "README's serving example is not tour/serve_model.py"
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "tour").mkdir()
    (tmp_path / "tour" / "serve_model.py").write_text(shipped, encoding="utf-8")
    commands = _commands(tour)
    assert len(commands) > 20
    outputs = _run(commands, tmp_path, _env(), timeout=900)
    _check(commands, outputs, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a whole section, one subprocess after another
def test_bring_your_own_model_section() -> None:
    """The CLIP story runs as printed from the repository root (it writes only under build/)."""
    commands = _commands(_sections(README.read_text(encoding="utf-8"))["Bring your own model"])
    assert len(commands) > 10
    assert commands[0].text.startswith("rm -rf build/byom build/byom-story")
    _check(commands, _run(commands, ROOT, _env(), timeout=900), ROOT)


@pytest.mark.slow
@pytest.mark.timeout(1500)  # a whole section, one subprocess after another
def test_governance_section(tmp_path: Path) -> None:
    """The governance walk runs as printed: declared aliases, a refused typo, rules that pass,
    history --at, free aliases, tags, an archived version, paging, a verified audit chain."""
    commands = _commands(_sections(README.read_text(encoding="utf-8"))[GOVERNANCE])
    assert len(commands) > 20
    assert any(c.must_fail for c in commands)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    _check(commands, _run(commands, tmp_path, _env(), timeout=600), tmp_path)


def test_prometheus_section() -> None:
    """The promtool commands pass on the shipped rules, tests and example config."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    sections = _sections(README.read_text(encoding="utf-8"))
    commands = _commands(sections["Prometheus and Alertmanager"])
    assert commands
    _check(commands, _run(commands, ROOT, _env(), timeout=120), ROOT)


def test_upgrade_section(tmp_path: Path) -> None:
    """The database upgrade commands run as printed on a fresh database."""
    commands = _commands(_sections(README.read_text(encoding="utf-8"))["Upgrading the database"])
    assert commands
    _check(commands, _run(commands, tmp_path, _env(), timeout=120), tmp_path)


def test_every_console_block_is_run_by_a_test() -> None:
    """No README section shows commands that no test runs."""
    sections = _sections(README.read_text(encoding="utf-8"))
    with_console = {title for title, body in sections.items() if _commands(body)}
    assert with_console <= TESTED_SECTIONS, with_console - TESTED_SECTIONS


def test_drift_lines_compare_the_verdict() -> None:
    """A drift line with another verdict, or a score far off, does not match the README's."""
    def line(score: str, verdict: str) -> str:
        return f"captions: text_encoder drift score {score} ({verdict}; threshold 1.0)"

    readme = line("0.51", "no alarm")
    assert _same_drift(readme, {line("0.53", "no alarm")})
    assert not _same_drift(readme, {line("1.11", "ALARM")})
    assert not _same_drift(readme, {line("0.98", "no alarm")})
    assert not _same_drift(readme, {line("0.51", "ALARM")})


_REPO_PATH = re.compile(
    r"`((?:\.ci|benchmarks|configs|docs|examples|instrumentation|migrations|registry|scripts|tests|"
    r"tour)/[\w./*-]*|Makefile|LICENSE|constraints\.txt|pyproject\.toml)"
)


def test_every_repository_path_the_docs_name_exists() -> None:
    """Paths in backticks (`configs/alerts.yml`, `tour/serve_model.py`, globs) in README.md and
    docs/ are in the tree, and no tracked file points at a machine's folders outside it."""
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        paths = set(_REPO_PATH.findall(doc.read_text(encoding="utf-8")))
        assert paths, doc
        missing = [p for p in sorted(paths) if not list(ROOT.glob(p.rstrip("/")))]
        assert missing == [], doc
    tracked = subprocess.run(
        ["git", "grep", "-l", "-E", "(/work/|/tmp/|/opt/)", "--", ":!tests/fixtures", ":!" + THIS],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if tracked.returncode > 1:  # not a git checkout (e.g. an sdist): nothing to scan
        pytest.skip(tracked.stderr.strip())
    assert tracked.stdout.split() == []


_BENCH = re.compile(r"`\.venv/bin/python (benchmarks/\w+\.py)( \[[^`]*\])?`")


def test_benchmark_commands_exist_with_their_options() -> None:
    """Each `.venv/bin/python benchmarks/X.py [--opt …]` in README runs `--help` listing them."""
    text = README.read_text(encoding="utf-8")
    found = _BENCH.findall(text)
    assert len({script for script, _ in found}) >= 4
    for script, options in found:
        done = subprocess.run(
            [sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
            timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert done.returncode == 0, (script, done.stderr[-2000:])
        for option in re.findall(r"--[\w-]+", options or ""):
            assert option in done.stdout, (script, option)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "make compare-venv" in text
    assert re.search(r"^compare-venv:", makefile, re.M)
