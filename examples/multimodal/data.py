"""Data pipeline: sklearn digits as images, shipped text corpora, and the preprocessor."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from .config import ExampleConfigError, int_option, section
from .encoders import minilm_dir

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "ImageInput",
    "Preprocessor",
    "list_topics",
    "load_digits_images",
    "load_texts",
    "load_tokenizer",
]

#: OpenAI CLIP normalisation constants.
CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

ImageInput = npt.NDArray[np.uint8] | Image.Image


def load_digits_images(
    n: int | None = None, seed: int = 0
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Return sklearn's bundled 8x8 digits as RGB uint8 images, shuffled by ``seed``.

    Returns:
        ``(images [n, 8, 8, 3] uint8 in 0-255, labels [n] int64)``; all 1797 when ``n`` is None.

    Raises:
        ValueError: if ``n`` is not in 1..1797.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    total = len(digits.target)
    if n is not None and not 1 <= n <= total:
        raise ValueError(f"n must be between 1 and {total}, got {n}")
    order = np.random.default_rng(seed).permutation(total)[: n or total]
    # Digits are 0..16 intensities; scale to the 0..255 range images normally have.
    gray = np.rint(digits.images[order] * (255.0 / 16.0)).astype(np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    return rgb, digits.target[order].astype(np.int64)


def list_topics() -> list[str]:
    """Return the topics of the shipped text corpora, sorted."""
    folder = resources.files(__package__ or "examples.multimodal").joinpath("data")
    return sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))


@functools.lru_cache(maxsize=16)
def _read_topic(topic: str) -> tuple[str, ...]:
    folder = resources.files(__package__ or "examples.multimodal").joinpath("data")
    text = folder.joinpath(f"{topic}.txt").read_text(encoding="utf-8")
    # Blank lines and '#' comments let the corpus files carry a header.
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def load_texts(topic: str | None = None) -> list[str]:
    """Return the shipped sentences of ``topic``, or of every topic (in topic order) when None.

    Raises:
        ValueError: if ``topic`` is unknown (the message lists the topics).
    """
    topics = list_topics()
    if topic is None:
        return [line for name in topics for line in _read_topic(name)]
    if topic not in topics:
        raise ValueError(f"unknown text topic {topic!r}; valid: {', '.join(topics)}")
    return list(_read_topic(topic))


@functools.lru_cache(maxsize=2)
def load_tokenizer(path: str | None = None) -> PreTrainedTokenizerBase:
    """Return the MiniLM WordPiece tokenizer from the local package directory (cached).

    Returns:
        A BERT tokenizer; shared within the process, so do not mutate it.
    """
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(
        path or str(minilm_dir()), local_files_only=True
    )
    return tokenizer


def clip_image_processor(image_size: int) -> Any:
    """Return a CLIP image processor for ``image_size`` squares, built from explicit parameters.

    transformers 5 splits CLIPImageProcessor into a torchvision and a PIL backend; the PIL one
    needs no extra dependency and matches the transformers 4 class.
    """
    import transformers

    processor_class = getattr(transformers, "CLIPImageProcessorPil", None)
    if processor_class is None:  # transformers 4.x
        processor_class = transformers.CLIPImageProcessor
    return processor_class(
        do_resize=True,
        size={"shortest_edge": image_size},
        do_center_crop=True,
        crop_size={"height": image_size, "width": image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
        do_convert_rgb=True,
    )


def _to_pil(image: ImageInput, index: int) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"images[{index}]: expected uint8 pixels, got dtype {array.dtype}")
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(
            f"images[{index}]: expected [H, W], [H, W, 1], [H, W, 3] or [H, W, 4], "
            f"got shape {array.shape}"
        )
    return Image.fromarray(array).convert("RGB")


class Preprocessor:
    """Turns parallel lists of images and texts into the model's input tensors."""

    def save_pretrained(self, directory: Path) -> dict[str, Path]:
        """Save the tokenizer and the image processor as transformers does, one folder each.

        Returns:
            The pipeline components to register: ``tokenizer`` and ``image_processor`` folders.
        """
        components = {
            "tokenizer": directory / "tokenizer",
            "image_processor": directory / "image_processor",
        }
        self.tokenizer.save_pretrained(str(components["tokenizer"]))
        self.image_processor.save_pretrained(str(components["image_processor"]))
        return components

    def __init__(
        self, tokenizer: PreTrainedTokenizerBase, image_processor: Any, *, max_length: int
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_length = max_length

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Preprocessor:
        """Build from the ``image_encoder.image_size`` and ``text_encoder.max_length`` options.

        Raises:
            ExampleConfigError: if those options are missing or invalid.
        """
        image_size = int_option(section(config, "image_encoder"), "image_encoder", "image_size")
        max_length = int_option(section(config, "text_encoder"), "text_encoder", "max_length", 64)
        if image_size <= 0 or not 2 <= max_length <= 512:
            raise ExampleConfigError(
                f"image_encoder.image_size must be > 0 and text_encoder.max_length in 2..512, "
                f"got {image_size} and {max_length}"
            )
        return cls(load_tokenizer(), clip_image_processor(image_size), max_length=max_length)

    def __call__(
        self, images: Sequence[ImageInput] | npt.NDArray[np.uint8], texts: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        """Return ``pixel_values`` [B, 3, S, S] float32, ``input_ids`` and ``attention_mask``
        [B, T] int64 (padded to the longest text, truncated at ``max_length``).

        Raises:
            ValueError: if the batch is empty, the counts differ, a text is not a string,
                or an image has an unsupported shape or dtype.
        """
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string")
        if len(images) == 0 or len(images) != len(texts):
            raise ValueError(
                f"need a non-empty batch with one text per image, got {len(images)} images "
                f"and {len(texts)} texts"
            )
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}]: expected a string, got {type(text).__name__}")
        pil_images = [_to_pil(image, i) for i, image in enumerate(images)]
        pixels = self.image_processor(images=pil_images, return_tensors="pt")["pixel_values"]
        encoded = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {
            "pixel_values": pixels.to(torch.float32),
            "input_ids": encoded["input_ids"].to(torch.int64),
            "attention_mask": encoded["attention_mask"].to(torch.int64),
        }
