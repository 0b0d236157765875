"""Synthetic image/caption pairs (coloured shapes on noise) and the model inputs made from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import PreTrainedTokenizerBase

from examples.clip.model import MAX_TEXT_TOKENS

__all__ = ["COLORS", "SHAPES", "Pairs", "make_pairs"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (40, 70, 220),
    "yellow": (230, 210, 40),
}
SHAPES = ("square", "circle", "bar")
_SIDE = 40  # raw image side; the processor resizes and crops to the model's input size


def _shape_mask(shape: str, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    yy, xx = np.mgrid[0:_SIDE, 0:_SIDE]
    cy, cx = rng.integers(14, _SIDE - 14, size=2)
    size = int(rng.integers(8, 13))
    if shape == "square":
        return np.asarray((abs(yy - cy) <= size) & (abs(xx - cx) <= size), dtype=bool)
    if shape == "circle":
        return np.asarray((yy - cy) ** 2 + (xx - cx) ** 2 <= size * size, dtype=bool)
    return np.asarray((abs(yy - cy) <= size // 3) & (abs(xx - cx) <= size + 4), dtype=bool)


@dataclass(frozen=True)
class Pairs:
    """Raw images ``[n, 40, 40, 3]`` (uint8) and their captions."""

    images: npt.NDArray[np.uint8]
    captions: list[str]

    def inputs(
        self, tokenizer: PreTrainedTokenizerBase, image_processor: Any
    ) -> dict[str, torch.Tensor]:
        """Run the data pipeline: the model's keyword arguments for these pairs.

        Returns:
            ``input_ids``, ``attention_mask`` (padded to ``MAX_TEXT_TOKENS``) and ``pixel_values``.
        """
        text = tokenizer(
            self.captions, padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
            return_tensors="pt",
        )
        pixels = image_processor(images=list(self.images), return_tensors="pt")["pixel_values"]
        return {
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "pixel_values": pixels,
        }


def make_pairs(n: int, *, seed: int, noise_std: float = 0.0) -> Pairs:
    """Draw ``n`` pairs: a coloured shape on a grey noisy background, captioned by what it is.

    ``noise_std`` (0-255 scale) adds pixel noise after drawing: a drifted image stream whose
    captions are unchanged.

    Returns:
        The pairs, fully determined by ``seed``.
    """
    rng = np.random.default_rng(seed)
    names = list(COLORS)
    images = np.empty((n, _SIDE, _SIDE, 3), dtype=np.uint8)
    captions = []
    for i in range(n):
        color = names[int(rng.integers(len(names)))]
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        canvas = rng.normal(128.0, 12.0, (_SIDE, _SIDE, 3))
        canvas[_shape_mask(shape, rng)] = COLORS[color]
        if noise_std:
            canvas = canvas + rng.normal(0.0, noise_std, canvas.shape)
        images[i] = np.clip(canvas, 0, 255).astype(np.uint8)
        # The take number makes the captions distinct rows, as a real caption stream's are.
        captions.append(f"a photo of a {color} {shape}, take {int(rng.integers(10_000))}")
    return Pairs(images=images, captions=captions)
