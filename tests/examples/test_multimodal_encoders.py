"""Tests for examples.multimodal.encoders: seeded CLIP vision encoder, pretrained MiniLM."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from examples.multimodal import (
    ExampleConfigError,
    build_image_encoder,
    build_text_encoder,
    load_tokenizer,
    masked_mean,
)


def _embed(texts: list[str]) -> torch.Tensor:
    """Mean-pooled, L2-normalised MiniLM embeddings of ``texts``."""
    encoder = build_text_encoder({"type": "minilm"})
    tokens = load_tokenizer()(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = encoder(tokens["input_ids"], tokens["attention_mask"])
    return torch.nn.functional.normalize(masked_mean(hidden, tokens["attention_mask"]), dim=-1)


class TestTextEncoder:
    def test_returns_token_hidden_states_of_size_384(self) -> None:
        """The text encoder returns [batch, tokens, 384]."""
        encoder = build_text_encoder({"type": "minilm", "max_length": 64})
        tokens = load_tokenizer()(
            ["a short one", "a slightly longer sentence"], padding=True, return_tensors="pt"
        )
        with torch.no_grad():
            hidden = encoder(tokens["input_ids"], tokens["attention_mask"])
        assert encoder.hidden_size == 384
        assert hidden.shape == (*tokens["input_ids"].shape, 384)

    def test_weights_are_pretrained(self) -> None:
        """Paraphrases are closer than unrelated sentences, which random weights would not give."""
        emb = _embed(
            [
                "A cat is sleeping on the sofa.",
                "A kitten naps on the couch.",
                "The central bank raised interest rates.",
                "Monetary policy was tightened by the federal reserve.",
            ]
        )
        sim = emb @ emb.T
        assert sim[0, 1] > sim[0, 2] + 0.2
        assert sim[2, 3] > sim[1, 3] + 0.2

    def test_each_build_owns_its_parameters(self) -> None:
        """Changing one built encoder's weights does not leak into the next build."""
        first = build_text_encoder({"type": "minilm"})
        with torch.no_grad():
            next(first.parameters()).add_(1.0)
        second = build_text_encoder({"type": "minilm"})
        assert not torch.equal(next(first.parameters()), next(second.parameters()))

    def test_unknown_type_is_rejected(self) -> None:
        """Only the pretrained MiniLM text encoder exists."""
        with pytest.raises(ExampleConfigError, match=r"text_encoder\.type.*minilm"):
            build_text_encoder({"type": "gpt"})


class TestImageEncoder:
    def test_returns_class_and_patch_tokens(self, seed_config: dict[str, Any]) -> None:
        """A 64px image with 16px patches gives 1 + 16 tokens of the configured width."""
        encoder = build_image_encoder(seed_config["image_encoder"])
        with torch.no_grad():
            hidden = encoder(torch.zeros(2, 3, 64, 64))
        assert hidden.shape == (2, 17, 384)
        assert torch.isfinite(hidden).all()

    def test_same_seed_same_weights(self, seed_config: dict[str, Any]) -> None:
        """Two builds with one seed are identical; another seed gives other weights."""
        section = seed_config["image_encoder"]
        a = build_image_encoder(section).state_dict()
        b = build_image_encoder(section).state_dict()
        c = build_image_encoder({**section, "seed": 1}).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not all(torch.equal(a[k], c[k]) for k in a)

    def test_building_leaves_global_rng_alone(self, seed_config: dict[str, Any]) -> None:
        """Seeding the encoder does not reset the caller's random stream."""
        torch.manual_seed(7)
        expected = torch.rand(3)
        torch.manual_seed(7)
        build_image_encoder(seed_config["image_encoder"])
        assert torch.equal(torch.rand(3), expected)

    def test_is_in_eval_mode(self, seed_config: dict[str, Any]) -> None:
        """Built encoders start in eval mode."""
        assert not build_image_encoder(seed_config["image_encoder"]).training
        assert not build_text_encoder(seed_config["text_encoder"]).training

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"type": "resnet"}, r"image_encoder\.type"),
            ({"patch_size": 15}, "divisible by patch_size"),
            ({"num_attention_heads": 5}, "divisible by num_attention_heads"),
            ({"hidden_size": "big"}, r"image_encoder\.hidden_size"),
            ({"num_hidden_layers": 0}, r"image_encoder\.num_hidden_layers"),
        ],
    )
    def test_bad_section_is_rejected(
        self, seed_config: dict[str, Any], change: dict[str, Any], match: str
    ) -> None:
        """An invalid image_encoder section raises ExampleConfigError naming the option."""
        with pytest.raises(ExampleConfigError, match=match):
            build_image_encoder({**seed_config["image_encoder"], **change})
