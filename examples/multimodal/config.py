"""Plain YAML loading and checked access to the model sections of an example config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ExampleConfigError", "float_option", "int_option", "load_config", "section"]


class ExampleConfigError(ValueError):
    """A model config is missing a section or holds a value the reference model cannot use."""


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML model config with a plain ``yaml.safe_load`` (no registry validation).

    Returns:
        The mapping at the top of the document.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ExampleConfigError: if the document is not a mapping or is not valid YAML.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ExampleConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ExampleConfigError(f"{path}: expected a mapping at the top level")
    return data


def section(config: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """Return ``config[name]`` as a mapping.

    Raises:
        ExampleConfigError: if the section is absent or not a mapping.
    """
    value = config.get(name)
    if not isinstance(value, Mapping):
        raise ExampleConfigError(f"config section {name!r} is missing or not a mapping")
    return value


def int_option(sec: Mapping[str, Any], dotted: str, key: str, default: int | None = None) -> int:
    """Return an integer option; ``dotted`` names the section in error messages.

    Raises:
        ExampleConfigError: if the option is absent (and has no default) or not an integer.
    """
    value = sec.get(key, default)
    # bool is an int subclass; `true` for a layer count is a typo, not a 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ExampleConfigError(f"{dotted}.{key}: expected an integer, got {value!r}")
    return value


def float_option(sec: Mapping[str, Any], dotted: str, key: str, default: float) -> float:
    """Return a float option, accepting strings such as ``"2e-5"`` that PyYAML leaves unparsed.

    Raises:
        ExampleConfigError: if the option is not a number.
    """
    value = sec.get(key, default)
    if isinstance(value, bool):
        raise ExampleConfigError(f"{dotted}.{key}: expected a number, got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ExampleConfigError(f"{dotted}.{key}: expected a number, got {value!r}") from exc
