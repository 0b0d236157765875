"""Save and load the whole model as one safetensors file, tensors named by module prefix."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

__all__ = ["WeightsMismatchError", "load_weights", "save_weights"]


class WeightsMismatchError(ValueError):
    """A weights file does not hold exactly the tensors (names and shapes) the model expects."""


def _detached_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return the state dict with every tensor contiguous and owning its own storage.

    safetensors refuses tensors that share memory (tied embeddings, views); cloning the
    second and later users of a storage keeps every name in the file.
    """
    seen: set[tuple[torch.device, int]] = set()
    tensors: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        t = tensor.detach()
        key = (t.device, t.untyped_storage().data_ptr())
        if key in seen or not t.is_contiguous():
            t = t.contiguous().clone()
        else:
            seen.add(key)
        tensors[name] = t.cpu()
    return tensors


def save_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write all of ``model``'s tensors to one ``.safetensors`` file, atomically.

    Tensor names are the state-dict names, so for a ``MultimodalModel`` they start with
    ``image_encoder.``, ``text_encoder.`` or ``fusion_layer.``.

    Returns:
        The absolute path written.

    Raises:
        ValueError: if ``path`` does not end in ``.safetensors``.
        OSError: if the file cannot be written (no partial file is left behind).
    """
    target = Path(path).resolve()
    if target.suffix != ".safetensors":
        raise ValueError(f"weights path must end in .safetensors: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tensors = _detached_state(model)
    # Write next to the target and rename, so readers never see a half-written file.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata={"format": "pt"})
        # mkstemp makes the file private; weights are read by other processes (the sidecar).
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a file written by :func:`save_weights` into ``model`` (strict: all names, all shapes).

    Returns:
        ``model``, for chaining.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        WeightsMismatchError: if names or shapes differ from the model's; the model is unchanged.
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"weights file not found: {source}")
    tensors = load_file(str(source))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong_shape = sorted(
        name for name in set(expected) & set(tensors) if expected[name].shape != tensors[name].shape
    )
    if missing or unexpected or wrong_shape:
        raise WeightsMismatchError(
            f"{source}: {len(missing)} missing {missing[:3]}, {len(unexpected)} unexpected "
            f"{unexpected[:3]}, {len(wrong_shape)} with a different shape {wrong_shape[:3]}"
        )
    model.load_state_dict(tensors, strict=True)
    return model
