"""``python -m examples.multimodal``: build the reference model, run a batch, save what governs it.

Builds the model from a config and runs one batch of digits + captions. ``--save-weights`` writes
its weights as one safetensors file (tensor names start with the module prefix), and
``--save-reference`` captures a drift reference profile of both encoders on real inputs, ready
for ``mmgov register`` and ``mmgov reference attach``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import (
    Preprocessor,
    build_model,
    list_fusions,
    load_config,
    load_digits_images,
    load_texts,
    save_weights,
)

REFERENCE_SAMPLES = 768
"""Enough samples that the tour's in-distribution windows of 64 stay below the threshold."""
REFERENCE_BATCH = 32
MONITORED = ("image_encoder", "text_encoder")


def main(argv: list[str] | None = None) -> int:
    """Build from a config, run one batch, optionally save weights and a reference profile.

    Returns:
        The process exit code (0 on success).
    """
    parser = argparse.ArgumentParser(prog="python -m examples.multimodal", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/model.yaml"))
    parser.add_argument("--fusion", choices=list_fusions(), help="override fusion_type")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--save-weights", type=Path, metavar="FILE.safetensors")
    parser.add_argument("--save-reference", type=Path, metavar="FILE.npz",
                        help=f"capture a reference profile of {', '.join(MONITORED)}")
    parser.add_argument("--save-pipeline", type=Path, metavar="DIR",
                        help="save the tokenizer and image processor (save_pretrained)")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.fusion:
        config["fusion_type"] = args.fusion
    model = build_model(config)
    preprocess = Preprocessor.from_config(config)
    images, labels = load_digits_images(args.batch)
    texts = load_texts("captions")[: args.batch]
    with torch.inference_mode():
        out = model(**preprocess(list(images), texts))
    print(
        f"fusion={config.get('fusion_type')} labels={labels.tolist()} "
        f"output shape={tuple(out.shape)} finite={bool(torch.isfinite(out).all())}"
    )
    if args.save_weights:
        save_weights(model, args.save_weights)
        print(f"weights: {args.save_weights}")
    if args.save_reference:
        _save_reference(model, preprocess, config, args.save_reference)
    if args.save_pipeline:
        saved = preprocess.save_pretrained(args.save_pipeline)
        print("pipeline: " + " ".join(f"{name}={path}" for name, path in saved.items()))
    return 0


def _save_reference(model: torch.nn.Module, preprocess: Preprocessor, config: dict[str, object],
                    path: Path) -> None:
    from instrumentation.drift import capture_reference

    images, _ = load_digits_images(REFERENCE_SAMPLES, seed=1)
    captions = load_texts("captions")
    texts = [captions[i % len(captions)] for i in range(REFERENCE_SAMPLES)]
    batches = [
        preprocess(list(images[i : i + REFERENCE_BATCH]), texts[i : i + REFERENCE_BATCH])
        for i in range(0, REFERENCE_SAMPLES, REFERENCE_BATCH)
    ]
    monitoring = config.get("monitoring")
    pooling = str(monitoring.get("pooling", "cls")) if isinstance(monitoring, dict) else "cls"
    profile = capture_reference(model, batches, modules=list(MONITORED), pooling=pooling)
    path.write_bytes(profile.to_bytes())
    print(f"reference: {path} ({profile.n_samples} samples of {', '.join(profile.modules)})")


if __name__ == "__main__":
    sys.exit(main())
