"""Small plain nn.Module trees shaped like the reference model, for fast instrumentation tests."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Two linear layers; `poison` makes its output NaN, `fail` makes it raise."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.poison = False
        self.fail: BaseException | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.out(torch.relu(self.proj(x)))
        if self.fail is not None:
            raise self.fail
        if self.poison:
            h = h * float("nan")
        return h


class Fusion(nn.Module):
    """Concatenates both embeddings and projects; `fail` makes it raise."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.head = nn.Linear(2 * dim, 4)
        self.fail: BaseException | None = None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.fail is not None:
            raise self.fail
        return self.head(torch.cat([a, b], dim=-1))


class TinyMultimodal(nn.Module):
    """image_encoder, text_encoder, fusion_layer — the reference model's shape, in 8 dimensions."""

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.image_encoder = Encoder(dim)
        self.text_encoder = Encoder(dim)
        self.fusion_layer = Fusion(dim)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.fusion_layer(self.image_encoder(image), self.text_encoder(text))


def inputs(batch: int = 2, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a random (image, text) pair of feature batches."""
    return torch.randn(batch, dim), torch.randn(batch, dim)
