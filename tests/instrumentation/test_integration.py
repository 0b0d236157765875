"""Instrumentation of the real reference model, torch.compile, and logging configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog
import torch
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from instrumentation import configure_logging, instrument
from tests.instrumentation._models import TinyMultimodal, inputs

REPO = Path(__file__).resolve().parents[2]


class TestReferenceModel:
    def test_real_model_counts_and_attributes_fusion_failure(
        self, registry: CollectorRegistry
    ) -> None:
        """The reference model's three children are counted; a fusion failure is traced there."""
        mm = pytest.importorskip("examples.multimodal")
        config = mm.load_config(REPO / "configs" / "model.yaml")
        model = mm.build_model(config)
        size = config["image_encoder"]["image_size"]
        batch = {
            "pixel_values": torch.randn(2, 3, size, size),
            "input_ids": torch.randint(0, 1000, (2, 12)),
            "attention_mask": torch.ones(2, 12, dtype=torch.long),
        }
        boom = RuntimeError("fusion down")

        def fail(module: torch.nn.Module, args: object) -> None:
            raise boom

        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        sample_every=1) as h, torch.inference_mode():
            assert h.modules == ("image_encoder", "text_encoder", "fusion_layer")
            model(**batch)
            labels = {"model": "tiny", "version": "3", "module": "text_encoder"}
            assert registry.get_sample_value("mmgov_module_calls_total", labels) == 1
            assert registry.get_sample_value("mmgov_module_output_norm", labels) > 0
            # Fail inside the fusion's own forward: a pre-hook on its first child raises.
            next(model.fusion_layer.children()).register_forward_pre_hook(fail)
            with capture_logs() as logs, pytest.raises(RuntimeError) as caught:
                model(**batch)
        assert caught.value is boom
        (event,) = [e for e in logs if e["event"] == "module_forward_failed"]
        assert event["module"] == "fusion_layer"


class TestCompile:
    def test_compiled_instrumented_model_still_counts(self, registry: CollectorRegistry) -> None:
        """Instrument first, then torch.compile: every compiled call is still counted."""
        if not hasattr(torch, "compile"):
            pytest.skip("torch.compile is unavailable in this torch build")
        torch._dynamo.reset()
        model = TinyMultimodal().eval()
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            compiled = torch.compile(model, backend="eager")
            with torch.no_grad():
                for _ in range(3):
                    out = compiled(*inputs())
            labels = {"model": "tiny", "version": "3", "module": "fusion_layer"}
            assert registry.get_sample_value("mmgov_module_calls_total", labels) == 3
        assert out.shape == (2, 4)
        torch._dynamo.reset()


    def test_the_wrapper_is_the_timed_body_itself(self, registry: CollectorRegistry) -> None:
        """No Dynamo wrapper frame around the body: the instance forward is `_hot`'s function,
        marked so Dynamo neither inlines it nor compiles its frame."""
        model = TinyMultimodal().eval()
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            wrapper = model.fusion_layer.__dict__["forward"]
            assert wrapper.__code__.co_filename.endswith(("instrumentation/_hot.py",
                                                         "instrumentation\\_hot.py"))
            assert wrapper._torchdynamo_disable is True


class TestLogging:
    def test_configure_logging_emits_json_with_context(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """After configure_logging (called twice) events are one JSON line with bound context."""
        previous = structlog.get_config()
        try:
            configure_logging()
            configure_logging()
            structlog.contextvars.bind_contextvars(request_id="r-1")
            structlog.get_logger("t").warning("hello", n=1)
            line = capsys.readouterr().err.strip().splitlines()[-1]
            record = json.loads(line)
            assert record["event"] == "hello"
            assert record["request_id"] == "r-1"
            assert record["level"] == "warning"
        finally:
            structlog.contextvars.clear_contextvars()
            structlog.configure(**previous)

    def test_bad_level_refused(self) -> None:
        """An unknown level name is a ValueError."""
        with pytest.raises(ValueError, match="unknown log level"):
            configure_logging(level="LOUD")
