"""The reference image+text model: CLIP vision encoder, MiniLM text encoder, fusion catalog."""

from __future__ import annotations

from .config import ExampleConfigError, load_config
from .data import Preprocessor, list_topics, load_digits_images, load_texts, load_tokenizer
from .encoders import ImageEncoder, TextEncoder, build_image_encoder, build_text_encoder
from .fusion import (
    FUSIONS,
    UnknownFusionError,
    create_fusion,
    list_fusions,
    masked_mean,
    register_fusion,
)
from .model import MODULE_NAMES, MultimodalModel, build_model
from .weights import WeightsMismatchError, load_weights, save_weights

__all__ = [
    "FUSIONS",
    "MODULE_NAMES",
    "ExampleConfigError",
    "ImageEncoder",
    "MultimodalModel",
    "Preprocessor",
    "TextEncoder",
    "UnknownFusionError",
    "WeightsMismatchError",
    "build_image_encoder",
    "build_model",
    "build_text_encoder",
    "create_fusion",
    "list_fusions",
    "list_topics",
    "load_config",
    "load_digits_images",
    "load_texts",
    "load_tokenizer",
    "load_weights",
    "masked_mean",
    "register_fusion",
    "save_weights",
]
