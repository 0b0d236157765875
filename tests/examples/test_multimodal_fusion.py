"""Tests for examples.multimodal.fusion: the catalog and every registered fusion."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from examples.multimodal import FUSIONS, UnknownFusionError, create_fusion, list_fusions
from examples.multimodal.fusion import masked_mean, register_fusion

IMAGE_DIM, TEXT_DIM, HIDDEN, HEADS = 24, 40, 32, 4


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    image = torch.randn(3, 5, IMAGE_DIM, generator=gen)
    text = torch.randn(3, 7, TEXT_DIM, generator=gen)
    mask = torch.ones(3, 7, dtype=torch.int64)
    mask[1, 4:] = 0
    mask[2, 2:] = 0
    return image, text, mask


def _build(name: str, seed: int | None = 0) -> nn.Module:
    return create_fusion(
        name, image_dim=IMAGE_DIM, text_dim=TEXT_DIM, hidden_size=HIDDEN, num_heads=HEADS, seed=seed
    )


class TestCatalog:
    def test_lists_the_three_reference_fusions(self) -> None:
        """The catalog holds concat, cross_attention and gated."""
        assert {"concat", "cross_attention", "gated"} <= set(list_fusions())
        assert list_fusions() == sorted(FUSIONS)

    def test_unknown_name_lists_valid_names(self) -> None:
        """An unknown name raises a ValueError/KeyError subclass naming every valid fusion."""
        with pytest.raises(UnknownFusionError) as info:
            create_fusion("bilinear", image_dim=8, text_dim=8)
        assert isinstance(info.value, ValueError)
        assert isinstance(info.value, KeyError)
        message = str(info.value)
        assert "bilinear" in message
        for name in list_fusions():
            assert name in message

    def test_duplicate_registration_is_refused(self) -> None:
        """Registering a taken name raises instead of silently replacing the builder."""
        with pytest.raises(ValueError, match="already registered"):
            register_fusion("concat")(FUSIONS["concat"])

    def test_registered_builder_is_created_by_name(self, extra_fusion: str) -> None:
        """A builder registered with the decorator is listed and built by create_fusion."""
        assert extra_fusion in list_fusions()
        module = create_fusion(extra_fusion, image_dim=4, text_dim=6, hidden_size=5)
        assert isinstance(module, nn.Linear)
        assert module.in_features == 10

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"hidden_size": 0}, "hidden_size"),
            ({"image_dim": -1}, "image_dim"),
            ({"dropout": 1.0}, "dropout"),
        ],
    )
    def test_bad_options_are_rejected(self, kwargs: dict[str, float], match: str) -> None:
        """Non-positive sizes and dropout outside [0, 1) raise ValueError naming the option."""
        options: dict[str, float] = {"image_dim": 8, "text_dim": 8, **kwargs}
        with pytest.raises(ValueError, match=match):
            create_fusion("concat", **options)  # type: ignore[arg-type]

    def test_heads_must_divide_hidden_size(self) -> None:
        """cross_attention refuses a hidden size its heads do not divide."""
        with pytest.raises(ValueError, match="divisible"):
            create_fusion("cross_attention", image_dim=8, text_dim=8, hidden_size=10, num_heads=4)


@pytest.fixture
def extra_fusion() -> Iterator[str]:
    """Register a throwaway fusion for one test and remove it afterwards."""
    name = "test_linear_probe"

    @register_fusion(name)
    def _build_probe(
        *, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
    ) -> nn.Module:
        return nn.Linear(image_dim + text_dim, hidden_size)

    yield name
    del FUSIONS[name]


@pytest.mark.parametrize("name", list_fusions())
class TestEveryFusion:
    def test_output_shape_and_finite(self, name: str) -> None:
        """The fusion maps (image, text, mask) to finite [batch, hidden_size] embeddings."""
        with torch.no_grad():
            out = _build(name)(*_inputs())
        assert out.shape == (3, HIDDEN)
        assert torch.isfinite(out).all()

    def test_padding_is_ignored(self, name: str) -> None:
        """Changing hidden states at padded text positions does not change the output."""
        image, text, mask = _inputs()
        noisy = text.clone()
        noisy[mask == 0] = 1e3 * torch.randn(int((mask == 0).sum()), TEXT_DIM)
        fusion = _build(name)
        with torch.no_grad():
            torch.testing.assert_close(fusion(image, noisy, mask), fusion(image, text, mask))

    def test_depends_on_both_modalities(self, name: str) -> None:
        """Changing only the image or only the text changes the fused embedding."""
        image, text, mask = _inputs(0)
        other_image, other_text, _ = _inputs(1)
        fusion = _build(name)
        with torch.no_grad():
            base = fusion(image, text, mask)
            assert not torch.allclose(base, fusion(other_image, text, mask))
            assert not torch.allclose(base, fusion(image, other_text, mask))

    def test_seed_fixes_initial_weights(self, name: str) -> None:
        """The same seed gives identical weights, another seed different ones."""
        a, b, c = _build(name, seed=3), _build(name, seed=3), _build(name, seed=4)
        for (key, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(pa, pb), key
        assert any(
            not torch.equal(pa, pc)
            for pa, pc in zip(a.state_dict().values(), c.state_dict().values(), strict=True)
        )

    def test_seeding_leaves_global_rng_alone(self, name: str) -> None:
        """Building with a seed does not reset the caller's random stream."""
        torch.manual_seed(123)
        expected = torch.rand(4)
        torch.manual_seed(123)
        _build(name, seed=0)
        assert torch.equal(torch.rand(4), expected)


class TestMaskedMean:
    def test_all_padding_row_gives_zeros(self) -> None:
        """A row with no real tokens pools to zeros rather than NaN."""
        hidden = torch.ones(2, 3, 4)
        mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
        pooled = masked_mean(hidden, mask)
        torch.testing.assert_close(pooled, torch.tensor([[1.0] * 4, [0.0] * 4]))
