"""The reference image+text model and its builder from a config mapping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .config import ExampleConfigError, float_option, int_option, section
from .encoders import ImageEncoder, TextEncoder, build_image_encoder, build_text_encoder
from .fusion import UnknownFusionError, create_fusion

__all__ = ["MODULE_NAMES", "MultimodalModel", "build_model"]

#: The top-level children; weights files and instrumentation name modules by these.
MODULE_NAMES: tuple[str, str, str] = ("image_encoder", "text_encoder", "fusion_layer")


class MultimodalModel(nn.Module):
    """Image encoder + text encoder + fusion layer → one embedding per (image, text) pair."""

    def __init__(
        self, image_encoder: ImageEncoder, text_encoder: TextEncoder, fusion_layer: nn.Module
    ) -> None:
        super().__init__()
        self.image_encoder = image_encoder
        self.text_encoder = text_encoder
        self.fusion_layer = fusion_layer

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Return the fused embeddings ``[batch, fusion hidden_size]``."""
        image_hidden = self.image_encoder(pixel_values)
        text_hidden = self.text_encoder(input_ids, attention_mask)
        fused: torch.Tensor = self.fusion_layer(image_hidden, text_hidden, attention_mask)
        return fused


def build_model(config: Mapping[str, Any]) -> MultimodalModel:
    """Build the model from the dict of ``configs/model.yaml`` (only the model sections are read).

    Image encoder weights come from ``image_encoder.seed``, fusion weights from ``fusion.seed``,
    and the text encoder is the pretrained MiniLM-L6, so two configs that differ only in
    ``fusion_type`` share identical encoder weights.

    Returns:
        A :class:`MultimodalModel` in eval mode.

    Raises:
        ExampleConfigError: if a section or option is missing or invalid, or the fusion type
            is unknown (the message lists the valid names).
    """
    image_encoder = build_image_encoder(section(config, "image_encoder"))
    text_encoder = build_text_encoder(section(config, "text_encoder"))
    fusion_cfg = section(config, "fusion")
    fusion_type = config.get("fusion_type", "concat")
    if not isinstance(fusion_type, str):
        raise ExampleConfigError(f"fusion_type: expected a name, got {fusion_type!r}")
    try:
        fusion_layer = create_fusion(
            fusion_type,
            image_dim=image_encoder.hidden_size,
            text_dim=text_encoder.hidden_size,
            hidden_size=int_option(fusion_cfg, "fusion", "hidden_size", 384),
            num_heads=int_option(fusion_cfg, "fusion", "num_heads", 6),
            dropout=float_option(fusion_cfg, "fusion", "dropout", 0.0),
            seed=int_option(fusion_cfg, "fusion", "seed", 0),
        )
    except UnknownFusionError as exc:
        raise ExampleConfigError(f"fusion_type: {exc}") from exc
    except ValueError as exc:
        if isinstance(exc, ExampleConfigError):
            raise
        raise ExampleConfigError(f"fusion: {exc}") from exc
    return MultimodalModel(image_encoder, text_encoder, fusion_layer).eval()
