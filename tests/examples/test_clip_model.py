"""The CLIP example's builder, pipeline, sharded save and fine-tuning, without the registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPModel

from examples.clip.artifacts import FINETUNED, save_sharded
from examples.clip.data import make_pairs
from examples.clip.finetune import finetune_submodule
from examples.clip.model import (
    MODULES,
    build_clip_model,
    build_image_processor,
    load_tokenizer,
    save_pipeline,
)


def _weights(directory: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(directory.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def test_the_seed_determines_every_weight() -> None:
    """Same seed, same weights (twice); another seed, other weights; global RNG untouched."""
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b, c = build_clip_model(), build_clip_model(), build_clip_model(seed=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["text_projection.weight"], sc["text_projection.weight"])
    assert not a.training
    assert a.config.text_config.vocab_size == load_tokenizer().vocab_size == 30522


def test_sharded_save_reloads_and_names_the_modules(tmp_path: Path) -> None:
    """`save_pretrained(max_shard_size=...)` writes several shards whose prefixes are MODULES."""
    model = build_clip_model()
    shards = save_sharded(model, tmp_path / "v1")
    assert len(shards) >= 3
    index = json.loads((tmp_path / "v1" / "model.safetensors.index.json").read_text())
    assert sorted(set(index["weight_map"].values())) == shards
    assert sorted({name.split(".", 1)[0] for name in index["weight_map"]}) == sorted(MODULES)
    reloaded = CLIPModel.from_pretrained(str(tmp_path / "v1"), local_files_only=True)
    original = model.state_dict()
    assert all(torch.equal(t, original[k]) for k, t in reloaded.state_dict().items())


def test_pipeline_round_trips(tmp_path: Path) -> None:
    """The saved tokenizer and processor give the same model inputs as the ones in memory."""
    from transformers import AutoImageProcessor, AutoTokenizer

    tokenizer, processor = load_tokenizer(), build_image_processor()
    dirs = save_pipeline(tmp_path, tokenizer, processor)
    pairs = make_pairs(4, seed=0)
    expected = pairs.inputs(tokenizer, processor)
    again = pairs.inputs(
        AutoTokenizer.from_pretrained(str(dirs["tokenizer"]), local_files_only=True),
        AutoImageProcessor.from_pretrained(str(dirs["image_processor"]), local_files_only=True),
    )
    assert expected.keys() == again.keys()
    assert all(torch.equal(expected[k], again[k]) for k in expected)
    assert expected["pixel_values"].shape == (4, 3, 32, 32)
    assert (expected["input_ids"][:, 0] == tokenizer.cls_token_id).all()


def test_finetuning_changes_only_the_chosen_module(tmp_path: Path) -> None:
    """Only text_projection's weights move; the loss goes down; requires_grad is restored."""
    model = build_clip_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = make_pairs(16, seed=4).inputs(load_tokenizer(), build_image_processor())
    losses = finetune_submodule(model, inputs, submodule=FINETUNED, steps=5)
    assert len(losses) == 5
    assert losses[-1] < losses[0]
    after = model.state_dict()
    moved = {k.split(".", 1)[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {FINETUNED}
    assert all(p.requires_grad for p in model.parameters())
    assert not model.training
    with pytest.raises(ValueError, match="no module 'nope'"):
        finetune_submodule(model, inputs, submodule="nope")
