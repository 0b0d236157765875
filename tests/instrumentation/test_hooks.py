"""Tests for instrumentation.hooks: counts, failure tracing, non-finite attribution, detach."""

from __future__ import annotations

import gc
import threading
import weakref
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs
from torch import nn

from instrumentation import (
    LATENCY_BUCKETS,
    DriftSnapshot,
    _hot,
    bind_request_context,
    clear_request_context,
    instrument,
)
from instrumentation._counters import HOT_STRIDE
from instrumentation.metrics import LATENCY_BOUNDS_NS
from tests.instrumentation._models import Encoder, TinyMultimodal, inputs

TOP = ("image_encoder", "text_encoder", "fusion_layer")


def value(reg: CollectorRegistry, name: str, module: str, **extra: str) -> float:
    """Return one sample of the tiny model's metrics (0.0 when absent)."""
    labels = {"model": "tiny", "version": "3", "module": module, **extra}
    got = reg.get_sample_value(name, labels)
    return 0.0 if got is None else got


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """Return the captured events called `name`."""
    return [e for e in logs if e["event"] == name]


class TestCounts:
    def test_calls_and_latency_after_n_forwards(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """N forwards give N calls and N latency observations per top-level module."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry) as h:
            assert h.modules == TOP
            for _ in range(7):
                model(*inputs())
            for module in TOP:
                assert value(registry, "mmgov_module_calls_total", module) == 7
                assert value(registry, "mmgov_module_latency_seconds_count", module) == 7
                assert value(registry, "mmgov_module_latency_seconds_sum", module) > 0
                assert value(registry, "mmgov_module_errors_total", module, error_type="X") == 0

    def test_latency_buckets_span_0_1_ms_to_10_s(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """The histogram has buckets at 0.1 ms and 10 s and all observations under +Inf."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            model(*inputs())
            for le in ("0.0001", "10.0", "+Inf"):
                got = value(registry, "mmgov_module_latency_seconds_bucket", "fusion_layer", le=le)
                assert got <= 1
            inf = value(registry, "mmgov_module_latency_seconds_bucket", "fusion_layer", le="+Inf")
            assert inf == 1

    def test_sampled_statistics_match_the_output(self, registry: CollectorRegistry) -> None:
        """Mean, std and norm gauges equal the statistics of the sampled output."""
        torch.manual_seed(1)
        model = TinyMultimodal().eval()
        image, text = inputs()
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=1
        ):
            model(image, text)
            mean = value(registry, "mmgov_module_output_mean", "image_encoder")
            std = value(registry, "mmgov_module_output_std", "image_encoder")
            norm = value(registry, "mmgov_module_output_norm", "image_encoder")
        expected = model.image_encoder(image)
        assert mean == pytest.approx(expected.mean().item(), abs=1e-5)
        assert std == pytest.approx(expected.std(unbiased=False).item(), rel=1e-4)
        assert norm == pytest.approx(expected.norm().item(), rel=1e-5)

    def test_statistics_sampled_every_n_root_calls(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """With sample_every=3 the gauges are set on call 1 and change only on call 4."""
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=3
        ):
            model(*inputs())
            first = value(registry, "mmgov_module_output_norm", "fusion_layer")
            model(*inputs())
            model(*inputs())
            assert value(registry, "mmgov_module_output_norm", "fusion_layer") == first
            model(*inputs())
            assert value(registry, "mmgov_module_output_norm", "fusion_layer") != first

    @pytest.mark.parametrize("mode", ["no_grad", "inference_mode"])
    def test_works_without_gradients(
        self, model: TinyMultimodal, registry: CollectorRegistry, mode: str
    ) -> None:
        """Counting and sampling work under torch.no_grad and torch.inference_mode."""
        ctx = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=1
        ), ctx:
            model(*inputs())
            model(*inputs())
            assert value(registry, "mmgov_module_calls_total", "text_encoder") == 2
            assert value(registry, "mmgov_module_output_norm", "text_encoder") > 0

    def test_backward_still_works(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """With gradients on, backward gives the same gradients as the bare model."""
        image, text = inputs()
        model(image, text).sum().backward()
        bare = model.image_encoder.proj.weight.grad.clone()
        model.zero_grad()
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=1
        ):
            model(image, text).sum().backward()
        assert torch.equal(model.image_encoder.proj.weight.grad, bare)

    def test_threads_give_exact_counts(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Four threads of 50 forwards each count exactly 200 calls per module."""
        barrier = threading.Barrier(4)

        def work() -> None:
            barrier.wait()
            with torch.no_grad():
                for _ in range(50):
                    model(*inputs())

        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=7
        ):
            threads = [threading.Thread(target=work) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for module in TOP:
                assert value(registry, "mmgov_module_calls_total", module) == 200
                assert value(registry, "mmgov_module_latency_seconds_count", module) == 200

    def test_threads_that_ended_keep_their_counts(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Counts of finished threads survive later scrapes and later calls."""

        def work() -> None:
            with torch.no_grad():
                for _ in range(3):
                    model(*inputs())

        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            for _ in range(4):
                thread = threading.Thread(target=work)
                thread.start()
                thread.join()
                value(registry, "mmgov_module_calls_total", "fusion_layer")  # scrape in between
            gc.collect()
            assert value(registry, "mmgov_module_calls_total", "fusion_layer") == 12
            model(*inputs())
            assert value(registry, "mmgov_module_calls_total", "fusion_layer") == 13
            assert value(registry, "mmgov_module_latency_seconds_count", "fusion_layer") == 13

    def test_every_latency_lands_in_its_bucket(
        self, registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Latencies at and around every bound fill the bucket bisect gives, sampled or not."""
        latencies = [b + d for b in LATENCY_BOUNDS_NS for d in (-1, 0, 1)] + [0, 7, 20 * 10**9]
        ticks = iter([t for ns in latencies for t in (0, ns)])
        # Only the hooks' clock is faked: each call of the one wrapped module reads it twice.
        monkeypatch.setattr(_hot, "time", SimpleNamespace(perf_counter_ns=lambda: next(ticks)))
        model = nn.Sequential(nn.Identity())
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["0"], sample_every=5):
            for _ in latencies:
                model(torch.zeros(1))
            les = [*(repr(b) for b in LATENCY_BUCKETS), "+Inf"]
            got = [value(registry, "mmgov_module_latency_seconds_bucket", "0", le=le) for le in les]
            total = value(registry, "mmgov_module_latency_seconds_sum", "0")
        bounds = [*LATENCY_BOUNDS_NS, 2**64]
        assert got == [sum(ns <= b for ns in latencies) for b in bounds]
        assert total == pytest.approx(sum(latencies) / 1e9)

    def test_module_called_outside_the_root(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """A module run on its own opens a root call: counted, its failure reported once."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["image_encoder", "image_encoder.proj"]), capture_logs() as logs:
            model.image_encoder(torch.randn(2, 8))
            model.image_encoder.fail = ValueError("direct")
            with pytest.raises(ValueError, match="direct"):
                model.image_encoder(torch.randn(2, 8))
            model.image_encoder.fail = None
            model(*inputs())
            calls = value(registry, "mmgov_module_calls_total", "image_encoder")
            proj = value(registry, "mmgov_module_calls_total", "image_encoder.proj")
            errors = value(registry, "mmgov_module_errors_total", "image_encoder",
                           error_type="ValueError")
        assert (calls, proj, errors) == (3, 3, 1)
        assert [e["module"] for e in events(logs, "module_forward_failed")] == ["image_encoder"]

    def test_profiler_sees_one_range_per_call(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Under torch.profiler each instrumented call is an `mmgov:<path>` range."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        sample_every=1000):
            model(*inputs())  # the first root call is sampled; later ones take the plain path
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
                model(*inputs())
                model(*inputs())
            model(*inputs())
            calls = value(registry, "mmgov_module_calls_total", "fusion_layer")
        names = [event.name for event in prof.events()]
        assert names.count("mmgov:fusion_layer") == 2
        assert calls == 4


class TestFailures:
    def test_exception_attributed_and_reraised_unchanged(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """A fusion_layer failure is one event naming it, counted; the same object propagates."""
        boom = RuntimeError("fusion exploded")
        model.fusion_layer.fail = boom
        image, text = torch.randn(2, 8), torch.randn(2, 8, dtype=torch.float64)
        model.text_encoder.double()
        with instrument(
            model, model_name="tiny", version=3, config_hash="c0ffee", prometheus_registry=registry
        ), capture_logs() as logs:
            with pytest.raises(RuntimeError) as caught:
                model(image, text)
            errors = value(
                registry, "mmgov_module_errors_total", "fusion_layer", error_type="RuntimeError"
            )
        assert caught.value is boom
        assert caught.value.__traceback__ is not None
        (event,) = events(logs, "module_forward_failed")
        assert event["module"] == "fusion_layer"
        assert event["error_type"] == "RuntimeError"
        assert event["error_message"] == "fusion exploded"
        assert (event["model"], event["version"], event["config_hash"]) == ("tiny", "3", "c0ffee")
        assert event["inputs"]["arg0"]["shape"] == [2, 8]
        assert event["inputs"]["arg1"]["dtype"] == "float64"
        assert errors == 1

    def test_traceback_still_reaches_the_raising_line(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """The propagated traceback ends in the module's own forward."""
        model.image_encoder.fail = ValueError("bad pixels")
        with (
            instrument(model, model_name="tiny", version=3, prometheus_registry=registry),
            pytest.raises(ValueError, match="bad pixels") as caught,
        ):
            model(*inputs())
        assert caught.traceback[-1].name == "forward"
        assert "_models.py" in str(caught.traceback[-1].path)

    def test_nested_instrumented_modules_report_once(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """An exception crossing image_encoder.out and image_encoder is reported by the inner."""

        class Exploding(nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                raise KeyError("inner")

        model.image_encoder.out = Exploding()
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry,
            modules=["image_encoder", "image_encoder.out"],
        ), capture_logs() as logs:
            with pytest.raises(KeyError):
                model(*inputs())
            inner = value(registry, "mmgov_module_errors_total", "image_encoder.out",
                          error_type="KeyError")
            outer = value(registry, "mmgov_module_errors_total", "image_encoder",
                          error_type="KeyError")
            outer_calls = value(registry, "mmgov_module_calls_total", "image_encoder")
        (event,) = events(logs, "module_forward_failed")
        assert event["module"] == "image_encoder.out"
        assert (inner, outer, outer_calls) == (1, 0, 1)

    def test_request_id_carried_into_error_event(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """The bound request id appears in the failure event."""
        model.fusion_layer.fail = RuntimeError("x")
        bind_request_context(request_id="req-42")
        try:
            with instrument(
                model, model_name="tiny", version=3, prometheus_registry=registry
            ), capture_logs() as logs, pytest.raises(RuntimeError):
                model(*inputs())
        finally:
            clear_request_context()
        (event,) = events(logs, "module_forward_failed")
        assert event["request_id"] == "req-42"

    def test_no_info_logging_on_the_hot_path(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Successful forwards, sampled or not, log nothing."""
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, sample_every=1
        ), capture_logs() as logs:
            for _ in range(3):
                model(*inputs())
        assert logs == []


class _Constant(nn.Module):
    """Returns a fixed tensor (any dtype), whatever its input."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


class TestNonFinite:
    def test_every_call_counted_not_one_in_sample_every(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """NaN on each of 5 forwards, statistics sampled 1 in 100: 5 counted, 5 events."""
        model.text_encoder.poison = True
        with instrument(
            model, model_name="tiny", version=3, config_hash="c0ffee", prometheus_registry=registry
        ), capture_logs() as logs:
            for _ in range(5):
                out = model(*inputs())
            nonfinite = {
                m: value(registry, "mmgov_module_nonfinite_outputs_total", m) for m in TOP
            }
        assert torch.isnan(out).all()
        assert nonfinite == {"image_encoder": 0, "text_encoder": 5, "fusion_layer": 5}
        reported = events(logs, "module_output_nonfinite")
        assert len(reported) == 5
        for event in reported:
            assert (event["module"], event["model"], event["version"], event["config_hash"]) == (
                "text_encoder", "tiny", "3", "c0ffee"
            )
            assert event["modules"] == ["text_encoder", "fusion_layer"]
            assert event["nonfinite_calls"] == 2

    def test_the_one_bad_forward_is_named_with_its_request(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Only forward 4 of 6 goes non-finite: one count, one event, that forward's request id."""
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, modules=["**"]
        ), capture_logs() as logs:
            for i in range(6):
                model.image_encoder.poison = i == 3
                bind_request_context(request_id=f"req-{i}")
                model(*inputs())
            clear_request_context()
            counted = value(registry, "mmgov_module_nonfinite_outputs_total", "image_encoder")
            inner = value(registry, "mmgov_module_nonfinite_outputs_total", "image_encoder.out")
        (event,) = events(logs, "module_output_nonfinite")
        assert (event["module"], event["request_id"]) == ("image_encoder", "req-3")
        assert (counted, inner) == (1, 0)

    def test_reported_at_detach_without_a_scrape(self, model: TinyMultimodal) -> None:
        """Flags left on the device are read back when the handle detaches."""
        model.fusion_layer.head.bias.data.fill_(float("inf"))
        handle = instrument(model, model_name="tiny", version=3,
                            prometheus_registry=CollectorRegistry())
        with capture_logs() as logs:
            model(*inputs())
            model(*inputs())
            before = events(logs, "module_output_nonfinite")
            handle.detach()
        assert before == []  # the second forward is not sampled: nothing was read yet
        assert [e["module"] for e in events(logs, "module_output_nonfinite")] == [
            "fusion_layer", "fusion_layer"
        ]

    def test_one_event_per_root_call(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Each forward of the root reports its first non-finite module once."""
        model.image_encoder.poison = True
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, modules=["**"],
        ), capture_logs() as logs:
            model(*inputs())
            model(*inputs())
            registry.collect()
            assert value(registry, "mmgov_module_nonfinite_outputs_total", "fusion_layer") == 2
        assert [e["module"] for e in events(logs, "module_output_nonfinite")] == [
            "image_encoder", "image_encoder"
        ]

    @pytest.mark.parametrize(
        ("tensor", "bad"),
        [
            (torch.full((1000,), 100.0, dtype=torch.float16), 0),  # its float16 sum overflows
            (torch.tensor([1.0, float("inf")], dtype=torch.bfloat16), 1),
            (torch.tensor([float("-inf"), float("inf")]), 1),  # sums to NaN
            (torch.tensor([1.0, float("nan")], dtype=torch.float64), 1),
            (torch.tensor([complex(1, float("nan"))]), 1),
            (torch.arange(5), 0),  # integers: always finite, not probed
            (torch.zeros(0), 0),
        ],
    )
    def test_probe_by_dtype(
        self, registry: CollectorRegistry, tensor: torch.Tensor, bad: int
    ) -> None:
        """Half precision is summed in float32; ±Inf, NaN and complex NaN are all caught."""
        model = nn.Sequential(_Constant(tensor))
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            model(torch.zeros(1))
            model(torch.zeros(1))
            got = value(registry, "mmgov_module_nonfinite_outputs_total", "0")
            own = value(registry, "mmgov_instrumentation_errors_total", "0")
        assert (got, own) == (2 * bad, 0)

    def test_finite_outputs_are_not_flagged(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Ordinary outputs leave the non-finite counters at zero."""
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry, modules=["**"]
        ), capture_logs() as logs:
            for _ in range(3):
                model(*inputs())
            for module in TOP:
                assert value(registry, "mmgov_module_nonfinite_outputs_total", module) == 0
        assert events(logs, "module_output_nonfinite") == []


class _Observer:
    """A drift observer recording what it is given; `broken` makes both methods raise."""

    def __init__(self, broken: bool = False) -> None:
        self.seen: list[tuple[int, ...]] = []
        self.broken = broken

    def observe(self, output: Any) -> None:
        if self.broken:
            raise ZeroDivisionError("observer bug")
        self.seen.append(tuple(output.shape))

    def snapshot(self) -> DriftSnapshot:
        if self.broken:
            raise RuntimeError("snapshot bug")
        return DriftSnapshot(score=0.25, windows=3, alarms=1)


class TestDriftAndOwnErrors:
    def test_drift_observed_every_call_and_exported(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """The monitor sees every output of its module; its snapshot becomes the drift metrics."""
        obs = _Observer()
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry,
            drift={"text_encoder": obs},
        ):
            for _ in range(5):
                model(*inputs())
            assert obs.seen == [(2, 8)] * 5
            assert value(registry, "mmgov_drift_score", "text_encoder") == 0.25
            assert value(registry, "mmgov_drift_windows_total", "text_encoder") == 3
            assert value(registry, "mmgov_drift_alarms_total", "text_encoder") == 1

    def test_broken_observer_counted_not_raised(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """A raising drift observer is counted and logged; inference result is unaffected."""
        image, text = inputs()
        expected = model(image, text)
        with instrument(
            model, model_name="tiny", version=3, prometheus_registry=registry,
            drift={"fusion_layer": _Observer(broken=True)},
        ), capture_logs() as logs:
            got = model(image, text)
            model(image, text)
            own = value(registry, "mmgov_instrumentation_errors_total", "fusion_layer")
        assert torch.equal(got, expected)
        assert own == 3  # two observe() calls and one snapshot() at scrape
        stages = {e["stage"] for e in events(logs, "instrumentation_error")}
        assert stages == {"drift_observe", "drift_snapshot"}
        assert value(registry, "mmgov_module_calls_total", "fusion_layer") == 0  # detached


class TestSelectionAndLifecycle:
    def test_glob_selects_every_submodule(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """`**` instruments every submodule; `*.proj` only the proj layers."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["**"]) as h:
            assert set(h.modules) == {p for p, _ in model.named_modules() if p}
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["*.proj"]) as h:
            assert h.modules == ("image_encoder.proj", "text_encoder.proj")

    @pytest.mark.parametrize("spec", [["visual_encoder"], ["nothing.*"]])
    def test_unknown_module_lists_available_paths(
        self, model: TinyMultimodal, spec: list[str]
    ) -> None:
        """An unknown name or an empty pattern is a ValueError naming the available paths."""
        with pytest.raises(ValueError, match=r"available: .*fusion_layer"):
            instrument(model, model_name="tiny", version=3,
                       prometheus_registry=CollectorRegistry(), modules=spec)
        assert "forward" not in model.__dict__

    def test_bad_arguments_are_refused(self, model: TinyMultimodal) -> None:
        """sample_every < 1, an empty model name and a monitor for an uninstrumented module fail."""
        reg = CollectorRegistry()
        with pytest.raises(ValueError, match="sample_every"):
            instrument(model, model_name="tiny", version=3, prometheus_registry=reg,
                       sample_every=0)
        with pytest.raises(ValueError, match="model_name"):
            instrument(model, model_name="", version=3, prometheus_registry=reg)
        with pytest.raises(ValueError, match="not instrumented"):
            instrument(model, model_name="tiny", version=3, prometheus_registry=reg,
                       drift={"image_encoder.proj": _Observer()})
        assert all("forward" not in m.__dict__ for m in model.modules())

    def test_double_instrument_refused_without_double_counting(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Instrumenting an instrumented model fails clearly and the first handle counts once."""
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            with pytest.raises(ValueError, match="already instrumented"):
                instrument(model, model_name="tiny", version=3,
                           prometheus_registry=CollectorRegistry())
            model(*inputs())
            assert value(registry, "mmgov_module_calls_total", "fusion_layer") == 1
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry):
            model(*inputs())
            assert value(registry, "mmgov_module_calls_total", "fusion_layer") == 1

    def test_detach_leaves_no_trace(self, registry: CollectorRegistry) -> None:
        """After detach: no wrapper, no hooks, forward is the class's, model collectable."""
        model = TinyMultimodal()
        h = instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                       modules=["**"], sample_every=1)
        out = model(*inputs())
        h.detach()
        h.detach()  # idempotent
        for m in model.modules():
            assert "forward" not in m.__dict__
            assert type(m).forward is m.forward.__func__
            assert not m._forward_hooks
            assert not m._forward_pre_hooks
        assert list(registry.collect()) == []
        ref = weakref.ref(model)
        del model, out
        gc.collect()
        assert ref() is None
        assert not any(isinstance(o, torch.Tensor) for o in gc.get_referents(h.__dict__))

    def test_detach_restores_a_previous_instance_forward(self, registry: CollectorRegistry) -> None:
        """A forward patched on the instance before instrumenting is put back on detach."""
        enc = Encoder()
        patched = enc.forward
        enc.forward = patched  # type: ignore[method-assign]
        outer = nn.Sequential(enc)
        with instrument(outer, model_name="tiny", version=3, prometheus_registry=registry):
            outer(torch.randn(1, 8))
        assert enc.__dict__["forward"] is patched

    def test_transformers_style_outputs(self, registry: CollectorRegistry) -> None:
        """Dict, tuple and ModelOutput outputs give statistics of their main tensor."""
        from transformers.modeling_outputs import BaseModelOutput

        class Multi(nn.Module):
            def __init__(self, kind: str) -> None:
                super().__init__()
                self.kind = kind

            def forward(self, x: torch.Tensor) -> Any:
                if self.kind == "dict":
                    return {"emb": x * 2, "mask": torch.ones(1, dtype=torch.long)}
                if self.kind == "tuple":
                    return (None, x * 2)
                return BaseModelOutput(last_hidden_state=x * 2)

        kinds = ("dict", "tuple", "model_output")
        model = nn.ModuleDict({k: Multi(k) for k in kinds})
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        sample_every=1):
            x = torch.ones(2, 3)
            for k in kinds:
                model[k](x)
            for k in kinds:
                assert value(registry, "mmgov_module_output_mean", k) == 2.0


class _Handing(nn.Module):
    """Returns its input itself; `inplace` first sets it to zero in place."""

    def __init__(self, inplace: bool) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.zero_() if self.inplace else x


class _Fill(nn.Module):
    """Returns a new tensor of `size` elements equal to `value` on every call."""

    def __init__(self, size: int, value: float, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.size, self.value, self.dtype = size, value, dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((self.size,), self.value, dtype=self.dtype)


class TestProbeOrder:
    def test_mixed_precision_outputs_keep_their_call_order(
        self, registry: CollectorRegistry
    ) -> None:
        """float16, float32, bfloat16 and complex outputs in one forward: the first bad is named."""
        model = nn.Sequential(
            _Fill(4, 60000.0, torch.float16),  # finite (summed in float32)
            _Fill(4, 1.0),
            _Fill(4, float("inf"), torch.bfloat16),
            _Fill(4, float("nan")),
            _Fill(4, 1.0, torch.complex64),
        )
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["**"]), capture_logs() as logs:
            model(torch.zeros(1))
            counts = [value(registry, "mmgov_module_nonfinite_outputs_total", str(i))
                      for i in range(5)]
        assert counts == [0, 0, 1, 1, 0]
        (event,) = events(logs, "module_output_nonfinite")
        assert (event["module"], event["modules"]) == ("2", ["2", "3"])

    def test_an_output_overwritten_in_place_is_judged_as_its_producer_returned_it(
        self, registry: CollectorRegistry
    ) -> None:
        """-inf then ReLU(inplace=True): the producer is counted, the ReLU's zeros are not."""
        model = nn.Sequential(_Fill(3, float("-inf")), nn.ReLU(inplace=True))
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["**"]):
            out = model(torch.zeros(1))
            counts = [value(registry, "mmgov_module_nonfinite_outputs_total", str(i))
                      for i in range(2)]
        assert out.tolist() == [0.0, 0.0, 0.0]
        assert counts == [1, 0]

    def test_probes_under_autograd_record_no_graph(self, registry: CollectorRegistry) -> None:
        """With gradients on, the probes waiting on the device hold no autograd node."""
        model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
        handle = instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                            modules=["**"], sample_every=1000)
        with handle:
            model(torch.ones(2, 3)).sum().backward()
            model(torch.ones(2, 3)).sum().backward()
            assert len(handle._pending) == 2  # nothing read back yet (the next sample is far)
            pending = handle._pending[-1]
            assert [p.numel() for p in pending.probes] == [2]  # one stack of both calls' probes
            assert all(p.grad_fn is None and not p.requires_grad for p in pending.probes)


class TestProbeReuse:
    @pytest.mark.parametrize(("inplace", "expected"), [(False, 1), (True, 0)])
    def test_a_handed_on_tensor_shares_its_probe_unless_changed_in_place(
        self, registry: CollectorRegistry, inplace: bool, expected: int
    ) -> None:
        """The same NaN tensor handed on counts twice; zeroed in place, the second is finite."""
        model = nn.Sequential(_Constant(torch.tensor([float("nan")])), _Handing(inplace))
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["0", "1"]):
            model(torch.zeros(1))
            first = value(registry, "mmgov_module_nonfinite_outputs_total", "0")
            second = value(registry, "mmgov_module_nonfinite_outputs_total", "1")
        assert (first, second) == (1, expected)

    def test_inference_tensors_are_probed_without_errors(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Under inference_mode (no version counters) a NaN is still counted, nothing fails."""
        model.image_encoder.poison = True
        with instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                        modules=["**"]), torch.inference_mode():
            model(*inputs())
            model(*inputs())
            got = value(registry, "mmgov_module_nonfinite_outputs_total", "image_encoder")
            own = sum(value(registry, "mmgov_instrumentation_errors_total", m) for m in TOP)
        assert (got, own) == (2, 0)


class TestRootCallState:
    def test_every_kind_of_root_call_leaves_the_thread_at_rest(
        self, model: TinyMultimodal, registry: CollectorRegistry
    ) -> None:
        """Sampled, plain, failing, profiled and outside calls all end with per-call state reset."""
        handle = instrument(model, model_name="tiny", version=3, prometheus_registry=registry,
                            modules=["**"], sample_every=2)
        state = handle._local.state

        def at_rest() -> tuple[Any, ...]:
            return (state.mode, state.sampled, state.reported_exc, state.checks, state.called,
                    state.stats, state.last, state.last_check)

        rest = (_hot.OUTSIDE, False, 0, [], [], [], None, None)
        with handle:
            model(*inputs())  # sampled
            assert at_rest() == rest
            model(*inputs())  # plain
            assert at_rest() == rest
            model.fusion_layer.fail = RuntimeError("boom")
            with pytest.raises(RuntimeError):
                model(*inputs())
            assert at_rest() == rest
            model.fusion_layer.fail = None
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]):
                model(*inputs())
            assert at_rest() == rest
            model.image_encoder(torch.randn(2, 8))  # outside a root call: it opens one
            assert at_rest() == rest
            assert len(state.counts) == len(handle.modules) * HOT_STRIDE  # counters only
