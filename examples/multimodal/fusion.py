"""Fusion catalog: builders registered by name, created by name, each tested automatically.

A fusion module takes ``image_hidden [B, Ti, Di]``, ``text_hidden [B, Tt, Dt]`` and
``attention_mask [B, Tt]`` and returns one fused embedding per sample, ``[B, hidden_size]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

__all__ = [
    "FUSIONS",
    "ConcatFusion",
    "CrossAttentionFusion",
    "FusionBuilder",
    "GatedFusion",
    "UnknownFusionError",
    "create_fusion",
    "list_fusions",
    "masked_mean",
    "register_fusion",
]


class FusionBuilder(Protocol):
    """Builds a fusion module; every builder accepts the same options so configs can switch."""

    def __call__(
        self, *, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
    ) -> nn.Module: ...


FUSIONS: dict[str, FusionBuilder] = {}


class UnknownFusionError(KeyError, ValueError):
    """No fusion is registered under the requested name; the message lists the valid names."""

    def __str__(self) -> str:
        # KeyError would otherwise print the message in quotes.
        return str(self.args[0]) if self.args else ""


def register_fusion(name: str) -> Callable[[FusionBuilder], FusionBuilder]:
    """Return a decorator that registers a fusion builder under ``name``.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorator(builder: FusionBuilder) -> FusionBuilder:
        if name in FUSIONS:
            raise ValueError(f"fusion {name!r} is already registered")
        FUSIONS[name] = builder
        return builder

    return decorator


def list_fusions() -> list[str]:
    """Return the registered fusion names, sorted."""
    return sorted(FUSIONS)


def create_fusion(
    name: str,
    *,
    image_dim: int,
    text_dim: int,
    hidden_size: int = 384,
    num_heads: int = 6,
    dropout: float = 0.0,
    seed: int | None = None,
) -> nn.Module:
    """Build the fusion registered as ``name``; with ``seed``, its initial weights are fixed.

    Seeding forks the RNG, so the caller's global random state is not changed.

    Returns:
        The fusion module in eval mode.

    Raises:
        UnknownFusionError: if ``name`` is not registered (message lists the valid names).
        ValueError: on non-positive sizes, a dropout outside [0, 1), or heads not dividing sizes.
    """
    builder = FUSIONS.get(name)
    if builder is None:
        raise UnknownFusionError(f"unknown fusion {name!r}; valid: {', '.join(list_fusions())}")
    sizes = {
        "image_dim": image_dim,
        "text_dim": text_dim,
        "hidden_size": hidden_size,
        "num_heads": num_heads,
    }
    for label, value in sizes.items():
        if value <= 0:
            raise ValueError(f"fusion {label} must be positive, got {value}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"fusion dropout must be in [0, 1), got {dropout}")

    def build() -> nn.Module:
        return builder(
            image_dim=image_dim,
            text_dim=text_dim,
            hidden_size=hidden_size,
            num_heads=num_heads,
            dropout=dropout,
        ).eval()

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Return the mean of ``hidden [B, T, D]`` over positions where ``attention_mask`` is 1."""
    weights = attention_mask.to(hidden.dtype).unsqueeze(-1)
    # clamp: an all-padding row yields zeros instead of NaN.
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class ConcatFusion(nn.Module):
    """Pool each side (image CLS token, text masked mean), concatenate, project."""

    def __init__(self, image_dim: int, text_dim: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Dropout(dropout),
            nn.Linear(image_dim + text_dim, hidden_size),
            nn.GELU(),
            nn.Linear(hidden_size, hidden_size),
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(
        self, image_hidden: torch.Tensor, text_hidden: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Return ``[B, hidden_size]``."""
        pooled = torch.cat([image_hidden[:, 0], masked_mean(text_hidden, attention_mask)], dim=-1)
        out: torch.Tensor = self.norm(self.proj(pooled))
        return out


class CrossAttentionFusion(nn.Module):
    """Text tokens attend to image tokens (residual + norm), then masked-mean over text."""

    def __init__(
        self, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
    ) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.text_proj = nn.Linear(text_dim, hidden_size)
        self.image_proj = nn.Linear(image_dim, hidden_size)
        self.attention = nn.MultiheadAttention(
            hidden_size, num_heads, dropout=dropout, batch_first=True
        )
        self.norm = nn.LayerNorm(hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)

    def forward(
        self, image_hidden: torch.Tensor, text_hidden: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Return ``[B, hidden_size]``."""
        query = self.text_proj(text_hidden)
        memory = self.image_proj(image_hidden)
        # Every image token is real, so only the text side needs a mask, applied when pooling.
        attended, _ = self.attention(query, memory, memory, need_weights=False)
        fused = self.norm(query + attended)
        out: torch.Tensor = self.out(masked_mean(fused, attention_mask))
        return out


class GatedFusion(nn.Module):
    """A learned per-feature gate mixes the projected image and text embeddings."""

    def __init__(self, image_dim: int, text_dim: int, hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_dim, hidden_size)
        self.text_proj = nn.Linear(text_dim, hidden_size)
        self.gate = nn.Linear(2 * hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size)

    def forward(
        self, image_hidden: torch.Tensor, text_hidden: torch.Tensor, attention_mask: torch.Tensor
    ) -> torch.Tensor:
        """Return ``[B, hidden_size]``."""
        image = torch.tanh(self.image_proj(image_hidden[:, 0]))
        text = torch.tanh(self.text_proj(masked_mean(text_hidden, attention_mask)))
        gate = torch.sigmoid(self.gate(torch.cat([image, text], dim=-1)))
        out: torch.Tensor = self.norm(self.dropout(gate * image + (1.0 - gate) * text))
        return out


@register_fusion("concat")
def _concat(
    *, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
) -> nn.Module:
    del num_heads  # shared option; concat has no attention
    return ConcatFusion(image_dim, text_dim, hidden_size, dropout)


@register_fusion("cross_attention")
def _cross_attention(
    *, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
) -> nn.Module:
    return CrossAttentionFusion(image_dim, text_dim, hidden_size, num_heads, dropout)


@register_fusion("gated")
def _gated(
    *, image_dim: int, text_dim: int, hidden_size: int, num_heads: int, dropout: float
) -> nn.Module:
    del num_heads  # shared option; gating has no attention
    return GatedFusion(image_dim, text_dim, hidden_size, dropout)
