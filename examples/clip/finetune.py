"""Fine-tune one submodule of a CLIP model with its contrastive loss, every other weight frozen."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from transformers import CLIPModel

__all__ = ["finetune_submodule"]


def finetune_submodule(
    model: CLIPModel,
    inputs: Mapping[str, torch.Tensor],
    *,
    submodule: str = "text_projection",
    steps: int = 5,
    lr: float = 1e-2,
) -> list[float]:
    """Take ``steps`` Adam steps of the image/text contrastive loss on ``submodule`` alone.

    Every other parameter has ``requires_grad`` off during training (and gets it back after),
    so only ``submodule``'s weights change. The model is left in eval mode.

    Returns:
        The loss before each step.

    Raises:
        ValueError: ``submodule`` is not a module of the model, or ``steps`` < 1.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    modules = dict(model.named_modules())
    if not submodule or submodule not in modules:
        raise ValueError(f"no module {submodule!r} in {type(model).__name__}")
    trained = list(modules[submodule].parameters())
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    optimiser = torch.optim.Adam(trained, lr=lr)
    losses: list[float] = []
    try:
        model.train()
        for _ in range(steps):
            optimiser.zero_grad()
            loss = model(**inputs, return_loss=True).loss
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
    finally:
        nn.Module.train(model, False)
        for name, p in model.named_parameters():
            p.requires_grad_(flags[name])
    return losses
