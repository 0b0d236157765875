"""What the story governs, on disk: sharded v1 and v2 checkpoints, pipeline, reference profiles."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import CLIPModel

from examples.clip.data import Pairs, make_pairs
from examples.clip.finetune import finetune_submodule
from examples.clip.model import (
    build_clip_model,
    build_image_processor,
    load_tokenizer,
    save_pipeline,
)
from examples.multimodal.encoders import quiet_transformers
from instrumentation.drift import ReferenceProfile, capture_reference

__all__ = [
    "BATCH",
    "FINETUNED",
    "MAX_SHARD_SIZE",
    "MONITORED",
    "Artifacts",
    "batches",
    "build_artifacts",
    "save_sharded",
]

MONITORED = ("vision_model", "text_model")
"""The submodules instrumented and watched for drift; their outputs are
``BaseModelOutputWithPooling``, whose ``pooler_output`` statistics, monitors and profiles read."""
FINETUNED = "text_projection"
MAX_SHARD_SIZE = "500KB"  # the 7.8 MB checkpoint becomes three shards
BATCH = 16
REFERENCE_BATCHES = 16  # 256 rows: the smallest reference a rate of 0.05 allows


@dataclass
class Artifacts:
    """The two versions' directories and profiles, the pipeline, and the (v2) model in memory."""

    v1: Path
    v2: Path
    pipeline: dict[str, Path]
    shards: list[str]  # v1's shard files
    profile_v1: ReferenceProfile
    profile_v2: ReferenceProfile
    losses: list[float]  # fine-tuning's contrastive loss before each step
    model: CLIPModel  # v2
    tokenizer: Any
    image_processor: Any

    def batches(self, pairs: Pairs) -> list[dict[str, torch.Tensor]]:
        """Return ``pairs`` as model inputs through this data pipeline, ``BATCH`` at a time."""
        return batches(pairs, self.tokenizer, self.image_processor)


def batches(pairs: Pairs, tokenizer: Any, image_processor: Any) -> list[dict[str, torch.Tensor]]:
    """Return ``pairs`` as model inputs, ``BATCH`` pairs at a time."""
    return [
        Pairs(pairs.images[i : i + BATCH], pairs.captions[i : i + BATCH]).inputs(
            tokenizer, image_processor
        )
        for i in range(0, len(pairs.captions), BATCH)
    ]


def save_sharded(model: CLIPModel, directory: Path) -> list[str]:
    """Save with ``save_pretrained(max_shard_size=MAX_SHARD_SIZE)``.

    Returns:
        The shard file names, sorted.
    """
    with quiet_transformers():
        model.save_pretrained(str(directory), max_shard_size=MAX_SHARD_SIZE)
    return sorted(p.name for p in directory.glob("*.safetensors"))


def build_artifacts(work: Path, echo: Callable[[str], None] = print) -> Artifacts:
    """Build v1, fine-tune ``text_projection`` alone into v2, and save both under ``work``.

    Writes ``work/v1`` and ``work/v2`` (sharded checkpoints), ``work/pipeline/tokenizer`` and
    ``work/pipeline/image_processor``, and each version's reference profile of ``MONITORED``
    (captured on the same in-distribution pairs) as ``work/reference-v1.npz`` / ``-v2.npz``.

    Returns:
        What was written, with the profiles and the fine-tuned model.
    """
    tokenizer, processor = load_tokenizer(), build_image_processor()
    pipeline = save_pipeline(work / "pipeline", tokenizer, processor)
    reference = batches(make_pairs(BATCH * REFERENCE_BATCHES, seed=1), tokenizer, processor)

    model = build_clip_model()
    shards = save_sharded(model, work / "v1")
    profile_v1 = capture_reference(model, reference, modules=list(MONITORED))
    (work / "reference-v1.npz").write_bytes(profile_v1.to_bytes())
    echo(f"v1: {len(shards)} shards in {work / 'v1'}; reference of {profile_v1.n_samples} "
         f"samples of {', '.join(profile_v1.modules)}")

    train = make_pairs(BATCH, seed=4).inputs(tokenizer, processor)
    losses = finetune_submodule(model, train, submodule=FINETUNED)
    save_sharded(model, work / "v2")
    profile_v2 = capture_reference(model, reference, modules=list(MONITORED))
    (work / "reference-v2.npz").write_bytes(profile_v2.to_bytes())
    echo(f"v2: fine-tuned {FINETUNED} only (contrastive loss {losses[0]:.3f} -> "
         f"{losses[-1]:.3f}) in {work / 'v2'}")
    return Artifacts(
        v1=work / "v1", v2=work / "v2", pipeline=pipeline, shards=shards,
        profile_v1=profile_v1, profile_v2=profile_v2, losses=losses, model=model,
        tokenizer=tokenizer, image_processor=processor,
    )
