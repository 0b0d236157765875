"""Choosing which submodules to instrument and finding the tensor in a module's output."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from instrumentation.drift.pooling import primary_output

__all__ = ["describe_inputs", "first_tensor", "select_modules"]

_GLOB_CHARS = frozenset("*?[")


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    # `**` spans dots (any depth), `*` stays within one path component, `?` is one character.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^.]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^.]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def select_modules(model: nn.Module, modules: Sequence[str] | None) -> list[tuple[str, nn.Module]]:
    """Resolve names and glob patterns to (path, module) pairs.

    `None` selects the model's top-level children. A plain name must be an exact module path;
    a pattern (`*`, `**`, `?`, `[...]`) must match at least one path. The root itself ("") is
    never selected.

    Returns:
        The selected pairs, each module once, in `named_modules()` order.

    Raises:
        ValueError: a name is not a module path, a pattern matches nothing, or nothing is selected.
    """
    if isinstance(modules, str):
        raise ValueError("modules must be a sequence of names or patterns, not a single string")
    available = [(path, mod) for path, mod in model.named_modules() if path]
    if modules is None:
        chosen = [(name, mod) for name, mod in model.named_children()]
        if not chosen:
            raise ValueError(f"{type(model).__name__} has no child modules to instrument")
        return chosen
    paths = {path for path, _ in available}
    wanted: set[str] = set()
    for spec in modules:
        if not isinstance(spec, str) or not spec:
            raise ValueError(f"module names must be non-empty strings, got {spec!r}")
        if _GLOB_CHARS.isdisjoint(spec):
            if spec not in paths:
                raise ValueError(
                    f"no module {spec!r} in {type(model).__name__}; available: {_listing(paths)}"
                )
            wanted.add(spec)
            continue
        regex = _glob_to_regex(spec)
        matched = {p for p in paths if regex.match(p)}
        if not matched:
            raise ValueError(
                f"pattern {spec!r} matches no module of {type(model).__name__}; "
                f"available: {_listing(paths)}"
            )
        wanted |= matched
    if not wanted:
        raise ValueError("modules selects nothing; pass None for the top-level children")
    return [(path, mod) for path, mod in available if path in wanted]


def _listing(paths: set[str], limit: int = 40) -> str:
    ordered = sorted(paths)
    shown = ", ".join(ordered[:limit])
    return shown + (f", … ({len(ordered) - limit} more)" if len(ordered) > limit else "")


def first_tensor(output: Any) -> torch.Tensor | None:
    """Return the torch tensor that represents a module's output, or None when there is none.

    The same rule as the drift monitors and reference capture (``primary_output``): a tensor is
    itself; a dict-like output gives ``pooler_output``, else ``last_hidden_state``, else its
    first tensor value; a tuple or list gives its first tensor.
    """
    if isinstance(output, torch.Tensor):  # the common case, without a call
        return output
    value = primary_output(output)
    return value if isinstance(value, torch.Tensor) else None


def describe_inputs(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Return shape and dtype of each tensor argument (`arg0`, … or keyword) for error events."""
    described: dict[str, Any] = {}
    for name, value in [*((f"arg{i}", a) for i, a in enumerate(args)), *kwargs.items()]:
        if isinstance(value, torch.Tensor):
            described[name] = {
                "shape": list(value.shape),
                "dtype": str(value.dtype).removeprefix("torch."),
                "device": str(value.device),
            }
        else:
            described[name] = {"type": type(value).__name__}
    return described
