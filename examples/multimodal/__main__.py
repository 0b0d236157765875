"""Smoke entry: ``python -m examples.multimodal`` builds the model and runs one batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import Preprocessor, build_model, list_fusions, load_config, load_digits_images, load_texts


def main(argv: list[str] | None = None) -> int:
    """Build from a config, run one batch of digits + captions, print the output shape.

    Returns:
        The process exit code (0 on success).
    """
    parser = argparse.ArgumentParser(prog="python -m examples.multimodal", description=__doc__)
    parser.add_argument("--config", type=Path, default=Path("configs/model.yaml"))
    parser.add_argument("--fusion", choices=list_fusions(), help="override fusion_type")
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if args.fusion:
        config["fusion_type"] = args.fusion
    model = build_model(config)
    images, labels = load_digits_images(args.batch)
    texts = load_texts("captions")[: args.batch]
    batch = Preprocessor.from_config(config)(list(images), texts)
    with torch.inference_mode():
        out = model(**batch)
    print(
        f"fusion={config.get('fusion_type')} labels={labels.tolist()} "
        f"output shape={tuple(out.shape)} finite={bool(torch.isfinite(out).all())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
