"""README.md cannot drift from the code: its console blocks are run and their output compared.

Each ```console block lists `$ ` commands followed by the output they print. The commands of a
section run in order in one bash shell; each must exit 0, except those whose printed output has
a line starting with `error:`, which must fail. Every printed line must appear in what the
command really printed, once volatile parts (hashes, times, secrets, decimals) are masked and
runs of spaces collapsed. The serving example (the README's ```python block) is saved as
`tour/serve_model.py`, as the README tells its reader to. Ports 8080 and 8001 become free ones.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VENV_BIN = Path(sys.executable).parent
EXAMPLE_ROOT = "/home/alice/mmgov"
"""Where the README's reader checked the repository out, in the outputs it shows."""
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_MASKS = (
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"mmgov_[A-Za-z0-9_-]{20,}"), "<secret>"),
    (re.compile(r"\b[0-9a-f]{8,64}\b"), "<hex>"),
    (re.compile(r"-?\d+\.\d+(e[-+]?\d+)?"), "<num>"),
)


@dataclass
class Command:
    """One `$ ` line of a console block and the output the README shows for it."""

    text: str
    expected: list[str] = field(default_factory=list)

    @property
    def must_fail(self) -> bool:
        """Whether the README shows this command failing."""
        return any(line.startswith("error:") for line in self.expected)


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def _check(commands: list[Command], outputs: list[str], cwd: Path) -> None:
    for command, output in zip(commands, outputs, strict=True):
        failed = "@@@rc=" in output
        assert failed == command.must_fail, f"$ {command.text}\n{output}"
        actual = {_mask(line.replace(str(cwd), EXAMPLE_ROOT)) for line in output.splitlines()}
        for line in command.expected:
            assert _mask(line) in actual, f"$ {command.text}\nREADME: {line}\nprinted:\n{output}"


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
def test_tour(tmp_path: Path) -> None:
    """The tour runs as printed: CLI, admin API, incidents and the serving example."""
    ports = {"8080": str(_free_port()), "8001": str(_free_port())}
    text = _readme(ports)
    tour = _sections(text)["Tour"]
    python_blocks = [b for lang, b in _FENCE.findall(tour) if lang == "python"]
    assert len(python_blocks) == 1, "the tour has one serving example"
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    (tmp_path / "tour").mkdir()
    (tmp_path / "tour" / "serve_model.py").write_text(python_blocks[0], encoding="utf-8")
    commands = _commands(tour)
    assert len(commands) > 20
    outputs = _run(commands, tmp_path, _env(), timeout=900)
    _check(commands, outputs, tmp_path)


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
