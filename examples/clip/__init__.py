"""Bring your own model: a transformers CLIPModel governed with the seed's own config file."""

from __future__ import annotations

from .artifacts import FINETUNED, MONITORED, Artifacts, build_artifacts, save_sharded
from .data import Pairs, make_pairs
from .finetune import finetune_submodule
from .model import (
    MODULES,
    build_clip_config,
    build_clip_model,
    build_image_processor,
    load_tokenizer,
    save_pipeline,
)

__all__ = [
    "FINETUNED",
    "MODULES",
    "MONITORED",
    "Artifacts",
    "Pairs",
    "build_artifacts",
    "build_clip_config",
    "build_clip_model",
    "build_image_processor",
    "finetune_submodule",
    "load_tokenizer",
    "make_pairs",
    "save_pipeline",
    "save_sharded",
]
