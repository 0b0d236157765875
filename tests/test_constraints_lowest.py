"""constraints-lowest.txt holds one line per requirement, equal to its lower bound in pyproject."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements.extend(extra)
    bounds = {}
    for line in requirements:
        req = Requirement(line)
        (low,) = [s.version for s in req.specifier if s.operator == ">="]
        bounds[_name(req.name)] = Version(low)
    return bounds


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[_name(name)] = Version(version)
    return pins


def test_every_requirement_is_pinned_at_its_lower_bound() -> None:
    """No requirement without its line, no stale line, every pin equal to the bound."""
    bounds, pins = _lower_bounds(), _pins()
    assert sorted(set(bounds) - set(pins)) == []
    assert sorted(set(pins) - set(bounds)) == []
    assert {str(name): str(pins[name]) for name in bounds if pins[name] != bounds[name]} == {}
