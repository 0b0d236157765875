"""The reference model's config schema: generated from its catalogs, committed, and enforced."""

from __future__ import annotations

import json
from pathlib import Path

from examples.multimodal.fusion import list_fusions
from examples.multimodal.schema import config_schema
from instrumentation.drift import DETECTORS
from registry.config import load_config_file
from registry.config_schema import check_config, compile_schema

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "configs" / "model.schema.json"


class TestReferenceSchema:
    def test_committed_file_is_what_the_code_generates(self) -> None:
        """configs/model.schema.json equals the schema generated now (regenerate it if not)."""
        assert json.loads(COMMITTED.read_text()) == config_schema(), (
            "regenerate: python -m examples.multimodal.schema > configs/model.schema.json"
        )

    def test_enums_come_from_the_catalogs(self) -> None:
        """fusion_type lists the fusion catalog, drift_detector the detector catalog."""
        schema = config_schema()
        assert schema["properties"]["fusion_type"]["enum"] == list_fusions()
        monitoring = schema["properties"]["monitoring"]["properties"]
        assert monitoring["drift_detector"]["enum"] == sorted(DETECTORS)

    def test_reference_config_passes(self) -> None:
        """configs/model.yaml is valid against the schema its model publishes."""
        compiled = compile_schema(config_schema())
        config = load_config_file(ROOT / "configs" / "model.yaml")
        assert check_config(compiled, config, source="model.yaml") == config
