"""Turn a module's raw output (tensor, tuple, ModelOutput, array) into pooled rows ``[B, d]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from instrumentation._drift_calibration import FloatArray

Pooling = Literal["cls", "mean"]
POOLINGS: tuple[str, ...] = ("cls", "mean")


def primary_output(output: Any) -> Any:
    """The embedding tensor inside a module output: ``last_hidden_state``, or the first element.

    Returns:
        The tensor/array itself when ``output`` is not a container.
    """
    hidden = getattr(output, "last_hidden_state", None)
    if hidden is not None:
        return hidden
    if isinstance(output, Mapping):
        return next(iter(output.values())) if output else None
    if isinstance(output, tuple | list):
        return output[0] if output else None
    return output


def pool_output(output: Any, pooling: str) -> FloatArray:
    """Pool a module output to one row per sample: token 0 (``cls``) or the token mean (``mean``).

    Torch tensors are pooled on their own device before the (small) copy to the host, so only
    ``[B, d]`` crosses. Torch is never imported here: tensors are recognised by ``detach``.

    Returns:
        ``[B, d]`` float64 array (a ``[d]`` output is one sample).

    Raises:
        ValueError: no tensor found, or a rank other than 1, 2 or 3.
    """
    value = primary_output(output)
    if value is None:
        raise ValueError("module output holds no tensor")
    if hasattr(value, "detach"):
        value = value.detach()
        if value.ndim == 3:
            value = value[:, 0] if pooling == "cls" else value.float().mean(dim=1)
        array = np.asarray(value.float().cpu().numpy(), dtype=np.float64)
    else:
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 3:
            array = array[:, 0] if pooling == "cls" else array.mean(axis=1)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2:
        raise ValueError(f"expected an output of rank 1, 2 or 3, got rank {array.ndim}")
    return array
