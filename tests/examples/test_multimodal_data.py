"""Tests for examples.multimodal.data: digits, text corpora, preprocessor."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from examples.multimodal import (
    ExampleConfigError,
    Preprocessor,
    list_topics,
    load_digits_images,
    load_texts,
)


class TestDigits:
    def test_shapes_dtypes_and_range(self) -> None:
        """Digits come back as [n, 8, 8, 3] uint8 RGB spanning 0-255, with int labels 0-9."""
        images, labels = load_digits_images(50)
        assert images.shape == (50, 8, 8, 3)
        assert images.dtype == np.uint8
        assert images.min() == 0
        assert images.max() == 255
        assert labels.shape == (50,)
        assert set(labels.tolist()) <= set(range(10))
        assert (images[..., 0] == images[..., 2]).all()

    def test_all_by_default_and_seeded(self) -> None:
        """n=None gives all 1797 digits; the seed fixes the order."""
        images, _ = load_digits_images()
        assert len(images) == 1797
        a, la = load_digits_images(20, seed=5)
        b, lb = load_digits_images(20, seed=5)
        c, _ = load_digits_images(20, seed=6)
        assert np.array_equal(a, b)
        assert np.array_equal(la, lb)
        assert not np.array_equal(a, c)

    @pytest.mark.parametrize("n", [0, 1798])
    def test_bad_n_is_rejected(self, n: int) -> None:
        """Asking for no digits or more than exist raises ValueError."""
        with pytest.raises(ValueError, match="between 1 and 1797"):
            load_digits_images(n)


class TestTexts:
    def test_at_least_two_topics_and_200_sentences(self) -> None:
        """The shipped corpus has several topics, about 200+ distinct sentences in all."""
        topics = list_topics()
        assert {"captions", "finance"} <= set(topics)
        everything = load_texts()
        assert len(everything) >= 200
        assert len(set(everything)) == len(everything)
        assert sum(len(load_texts(t)) for t in topics) == len(everything)
        assert all(s and not s.startswith("#") for s in everything)

    def test_unknown_topic_lists_topics(self) -> None:
        """An unknown topic raises ValueError naming the valid ones."""
        with pytest.raises(ValueError, match="captions"):
            load_texts("cooking")


class TestPreprocessor:
    def test_digits_and_texts_make_model_inputs(
        self, seed_config: dict[str, Any], batch: dict[str, torch.Tensor]
    ) -> None:
        """pixel_values: [B, 3, 64, 64] float32, CLIP-normalised; ids and mask: [B, T] int64."""
        assert set(batch) == {"pixel_values", "input_ids", "attention_mask"}
        assert batch["pixel_values"].shape == (6, 3, 64, 64)
        assert batch["pixel_values"].dtype == torch.float32
        # CLIP normalisation maps 0 to about -1.8 and 255 to about +2.1.
        assert batch["pixel_values"].min() < -1.5
        assert batch["pixel_values"].max() > 1.5
        ids, mask = batch["input_ids"], batch["attention_mask"]
        assert ids.dtype == mask.dtype == torch.int64
        assert ids.shape == mask.shape
        assert ids.shape[0] == 6
        assert (ids[:, 0] == 101).all()  # [CLS]
        assert (ids[mask == 0] == 0).all()  # [PAD]
        assert mask.sum(dim=1).min() < ids.shape[1]  # texts differ in length, so some padding

    def test_pil_grayscale_and_rgb_inputs_agree(self, seed_config: dict[str, Any]) -> None:
        """The same digit as a 2-D array, an RGB array or a PIL image gives the same pixels."""
        images, _ = load_digits_images(1)
        rgb = images[0]
        pre = Preprocessor.from_config(seed_config)
        texts = ["a digit"]
        from_rgb = pre([rgb], texts)["pixel_values"]
        torch.testing.assert_close(pre([rgb[..., 0]], texts)["pixel_values"], from_rgb)
        torch.testing.assert_close(pre([Image.fromarray(rgb)], texts)["pixel_values"], from_rgb)

    def test_truncates_at_max_length(self, config: dict[str, Any]) -> None:
        """Texts longer than text_encoder.max_length are cut to it."""
        config["text_encoder"]["max_length"] = 8
        out = Preprocessor.from_config(config)([np.zeros((8, 8), np.uint8)], ["word " * 50])
        assert out["input_ids"].shape == (1, 8)

    @pytest.mark.parametrize(
        ("images", "texts", "match"),
        [
            ([], [], "non-empty"),
            ([np.zeros((8, 8), np.uint8)], ["a", "b"], "one text per image"),
            ([np.zeros((8, 8), np.float32)], ["a"], r"images\[0\].*dtype"),
            ([np.zeros((8, 8, 2), np.uint8)], ["a"], r"images\[0\].*shape"),
            ([np.zeros((8, 8), np.uint8)], [3], r"texts\[0\]"),
            ([np.zeros((8, 8), np.uint8)], "a", "not one string"),
        ],
    )
    def test_bad_input_is_rejected(
        self, seed_config: dict[str, Any], images: Any, texts: Any, match: str
    ) -> None:
        """Bad batches raise ValueError saying what is wrong."""
        with pytest.raises(ValueError, match=match):
            Preprocessor.from_config(seed_config)(images, texts)

    def test_missing_section_is_rejected(self) -> None:
        """A config without the image_encoder section cannot make a preprocessor."""
        with pytest.raises(ExampleConfigError, match="image_encoder"):
            Preprocessor.from_config({"text_encoder": {"max_length": 8}})


def test_topics_are_apart_in_text_embedding_space() -> None:
    """Held-out sentences are assigned to their own topic by nearest centroid (drift scenario)."""
    from examples.multimodal import build_text_encoder, load_tokenizer, masked_mean

    encoder = build_text_encoder({"type": "minilm"})
    tokenizer = load_tokenizer()
    topics = list_topics()
    centroids, held_out = [], []
    for topic in topics:
        texts = load_texts(topic)[:60]
        tokens = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = encoder(tokens["input_ids"], tokens["attention_mask"])
        emb = torch.nn.functional.normalize(masked_mean(hidden, tokens["attention_mask"]), dim=-1)
        centroids.append(emb[::2].mean(dim=0))
        held_out.append(emb[1::2])
    stacked = torch.stack(centroids)
    correct = sum(
        int(((emb @ stacked.T).argmax(dim=1) == i).sum()) for i, emb in enumerate(held_out)
    )
    total = sum(len(emb) for emb in held_out)
    assert correct / total >= 0.9
