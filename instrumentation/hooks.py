"""Attach and detach per-module forward wrappers that time calls and trace failures to a module.

How it works, and why:

- Each instrumented module gets an *instance* ``forward`` wrapper (not ``register_forward_hook``):
  a module without hooks keeps PyTorch's fast call path, and a try/except around the original
  forward sees exceptions. The root model gets a thin marker wrapper that delimits one "root call"
  per thread (sampling decision, "already reported" markers).
- The hot path adds into preallocated plain-int slots under one lock (exact counts across threads);
  `metrics.SlotsCollector` converts them to Prometheus families at scrape time.
- Output statistics (mean, std, norm) and the finite check are computed every ``sample_every`` root
  calls, under ``no_grad`` on the detached output. On CPU they are read at once; on an accelerator
  the reduced values stay on the device and are read back once per sampling period (at the next
  sampled root call, at scrape, or at detach), so no hook forces a device sync per call.
- Failures: the innermost instrumented module reports an exception once (one structlog event and
  ``mmgov_module_errors_total``), then the same exception object propagates unchanged. The first
  module of a root call whose sampled output is non-finite is named in one event.
- Our own failures are counted in ``mmgov_instrumentation_errors_total`` and logged, never raised.

torch.compile: instrument *before* compiling (or instrument the eager model and compile the
instrumented one). The wrappers are Python code that Dynamo does not trace into a graph (it breaks
the graph around them), so counts stay exact; hooks added to an already-compiled module are not
seen by the compiled code.

Multiprocess mode (several serving workers with ``PROMETHEUS_MULTIPROC_DIR``): custom collectors
are invisible to ``MultiProcessCollector``, so each process runs a timer thread that adds the growth
of its slots into real prometheus_client metrics (``metrics.MultiprocessMetrics``) every
``flush_interval_s`` seconds and once more on ``detach()``.
"""

from __future__ import annotations

import bisect
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

import torch
from prometheus_client import REGISTRY, CollectorRegistry
from torch import nn

from instrumentation._select import describe_inputs, first_tensor, select_modules
from instrumentation.logs import get_logger, request_context_fields
from instrumentation.metrics import (
    LATENCY_BOUNDS_NS,
    DriftObserver,
    ModuleSlot,
    SlotsCollector,
    SlotsFlusher,
)

__all__ = ["Instrumentation", "instrument"]

_MARK = "_mmgov_wrapper"
_ROOT_PATH = "<root>"


class _ThreadState(threading.local):
    """Per-thread position inside a root call."""

    depth = 0
    sampled = False
    nonfinite_reported = False
    reported_exc = 0  # id() of the exception already reported in this root call
    pending: list[tuple[ModuleSlot, torch.Tensor, int, list[int], str]] | None = None


class _Attached:
    """What detach() needs to undo one wrapper, without keeping the module alive."""

    __slots__ = ("module", "previous", "wrapper")

    def __init__(self, module: nn.Module, previous: Any, wrapper: Callable[..., Any]) -> None:
        self.module = weakref.ref(module)
        self.previous = previous  # an instance-level forward we replaced, or _NOTHING
        self.wrapper = weakref.ref(wrapper)


_NOTHING = object()


class Instrumentation:
    """Handle on an instrumented model: `.modules`, `.detach()`, and a context manager."""

    def __init__(
        self,
        model: nn.Module,
        *,
        model_name: str,
        version: str,
        config_hash: str | None,
        selected: list[tuple[str, nn.Module]],
        registry: CollectorRegistry | None,
        sample_every: int,
        drift: Mapping[str, DriftObserver],
        multiprocess: bool,
        flush_interval_s: float,
    ) -> None:
        self.model_name = model_name
        self.version = version
        self.config_hash = config_hash
        self.modules: tuple[str, ...] = tuple(path for path, _ in selected)
        self._sample_every = sample_every
        self._drift = dict(drift)
        self._lock = threading.Lock()
        self._tls = _ThreadState()
        self._root_counter = itertools.count()
        self._deferred: list[list[tuple[ModuleSlot, torch.Tensor, int, list[int], str]]] = []
        self._log = get_logger()
        self._slots = {path: ModuleSlot(path) for path in self.modules}
        self._root_slot = ModuleSlot(_ROOT_PATH, exported=False)
        all_slots = [*self._slots.values(), self._root_slot]
        self._attached: list[_Attached] = []
        self._detached = False

        self._registry = registry
        self._collector: SlotsCollector | None = None
        if registry is not None:
            self._collector = SlotsCollector(
                model=model_name, version=version, slots=all_slots, lock=self._lock,
                drift=self._drift_rows, before_collect=self._resolve_deferred,
            )
            registry.register(self._collector)
        self._flusher: SlotsFlusher | None = None
        self._stop_flushing = threading.Event()
        self._flush_thread: threading.Thread | None = None
        if multiprocess:
            self._flusher = SlotsFlusher(
                model=model_name, version=version, slots=all_slots, lock=self._lock,
                drift=self._drift_rows,
            )
            self._flush_thread = threading.Thread(
                target=_flush_periodically,
                args=(self._flusher, self._stop_flushing, flush_interval_s, self._resolve_deferred),
                name=f"mmgov-flush-{model_name}", daemon=True,
            )
            self._flush_thread.start()

        for path, module in selected:
            self._attach(module, self._module_wrapper(self._slots[path], module.forward))
        self._attach(model, self._root_wrapper(model.forward))

    # -- public ---------------------------------------------------------------------------------

    def detach(self) -> None:
        """Remove every wrapper, flush multiprocess metrics and unregister the collector.

        Idempotent. Counters stop being exported by this handle once detached.
        """
        if self._detached:
            return
        self._detached = True
        for attached in reversed(self._attached):
            module, wrapper = attached.module(), attached.wrapper()
            if module is None:
                continue
            current = module.__dict__.get("forward")
            if current is not wrapper:
                self._log.warning(
                    "instrumentation_detach_foreign_forward", model=self.model_name,
                    module=type(module).__name__,
                    reason="forward was replaced after instrumenting; left in place",
                )
                continue
            if attached.previous is _NOTHING:
                del module.__dict__["forward"]
            else:
                module.__dict__["forward"] = attached.previous
        self._attached.clear()
        self._resolve_deferred()
        if self._flush_thread is not None and self._flusher is not None:
            self._stop_flushing.set()
            self._flush_thread.join()
            self._flusher.flush()
        if self._registry is not None and self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None

    def flush(self) -> None:
        """Write accumulated counts into the multiprocess metric files now (no-op otherwise)."""
        self._resolve_deferred()
        if self._flusher is not None:
            self._flusher.flush()

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "detached" if self._detached else "attached"
        n = len(self.modules)
        return f"<Instrumentation {self.model_name} v{self.version} {n} modules {state}>"

    # -- wrappers -------------------------------------------------------------------------------

    def _attach(self, module: nn.Module, wrapper: Callable[..., Any]) -> None:
        previous = module.__dict__.get("forward", _NOTHING)
        setattr(wrapper, _MARK, True)
        module.__dict__["forward"] = wrapper
        self._attached.append(_Attached(module, previous, wrapper))

    def _root_wrapper(self, original: Callable[..., Any]) -> Callable[..., Any]:
        tls = self._tls
        begin, end = self._begin_root, self._end_root

        def forward(*args: Any, **kwargs: Any) -> Any:
            if tls.depth:
                return original(*args, **kwargs)
            begin()
            tls.depth = 1
            try:
                return original(*args, **kwargs)
            finally:
                tls.depth = 0
                end()

        _copy_identity(forward, original)
        return forward

    def _module_wrapper(self, slot: ModuleSlot, original: Callable[..., Any]) -> Callable[..., Any]:
        # Everything the hot path touches is bound to a local: attribute lookups cost per call.
        tls, lock = self._tls, self._lock
        perf, find, bounds = time.perf_counter_ns, bisect.bisect_left, LATENCY_BOUNDS_NS
        buckets = slot.latency_buckets
        begin, end = self._begin_root, self._end_root
        on_error, sample, observe = self._on_error, self._sample, self._observe
        monitor = self._drift.get(slot.path)
        # Gate record_function on the profiler: its context manager costs microseconds per call.
        profiling = torch.autograd._profiler_enabled  # type: ignore[attr-defined]
        label = f"mmgov:{slot.path}"

        def forward(*args: Any, **kwargs: Any) -> Any:
            depth = tls.depth
            if depth == 0:
                begin()
            tls.depth = depth + 1
            try:
                start = perf()
                if profiling():
                    with torch.profiler.record_function(label):
                        out = original(*args, **kwargs)
                else:
                    out = original(*args, **kwargs)
                elapsed = perf() - start
            except BaseException as exc:
                tls.depth = depth
                on_error(slot, exc, args, kwargs)
                if depth == 0:
                    end()
                raise
            tls.depth = depth
            with lock:
                slot.calls += 1
                buckets[find(bounds, elapsed)] += 1
                slot.latency_sum_ns += elapsed
            if tls.sampled:
                sample(slot, out)
            if monitor is not None:
                observe(slot, monitor, out)
            if depth == 0:
                end()
            return out

        _copy_identity(forward, original)
        return forward

    # -- root-call bookkeeping ------------------------------------------------------------------

    def _begin_root(self) -> None:
        tls = self._tls
        try:
            tls.sampled = next(self._root_counter) % self._sample_every == 0
            tls.nonfinite_reported = False
            tls.reported_exc = 0
            tls.pending = None
            if tls.sampled and self._deferred:
                self._resolve_deferred()
        except Exception as exc:
            self._own_error(self._root_slot, "begin_root", exc)

    def _end_root(self) -> None:
        tls = self._tls
        try:
            tls.reported_exc = 0  # drop the id so a later exception object may reuse it
            tls.sampled = False
            if tls.pending:
                with self._lock:
                    self._deferred.append(tls.pending)
                tls.pending = None
        except Exception as exc:
            self._own_error(self._root_slot, "end_root", exc)

    # -- cold paths (each guarded: never raises into the model) ---------------------------------

    def _on_error(
        self, slot: ModuleSlot, exc: BaseException, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        try:
            tls = self._tls
            first = tls.reported_exc != id(exc)
            error_type = type(exc).__name__
            with self._lock:
                slot.calls += 1
                if first:
                    slot.errors[error_type] = slot.errors.get(error_type, 0) + 1
            if not first:
                return
            tls.reported_exc = id(exc)
            self._log.error(
                "module_forward_failed",
                **request_context_fields(),
                model=self.model_name,
                version=self.version,
                config_hash=self.config_hash,
                module=slot.path,
                error_type=error_type,
                error_message=str(exc),
                inputs=describe_inputs(args, kwargs),
            )
        except Exception as own:
            self._own_error(slot, "on_error", own)

    def _sample(self, slot: ModuleSlot, out: Any) -> None:
        try:
            x = first_tensor(out)
            if x is None or x.numel() == 0 or x.is_complex():
                return
            with torch.no_grad():
                xf = x.detach()
                if xf.dtype not in (torch.float32, torch.float64):
                    xf = xf.float()
                total = xf.sum()
                norm = torch.linalg.vector_norm(xf)
                shape, dtype = list(x.shape), str(x.dtype).removeprefix("torch.")
                if xf.device.type != "cpu":
                    # Stays on the device; read back once per sampling period.
                    bad = (~torch.isfinite(xf)).sum().to(total.dtype)
                    packed = torch.stack([total, norm, bad])
                    tls = self._tls
                    if tls.pending is None:
                        tls.pending = []
                    tls.pending.append((slot, packed, xf.numel(), shape, dtype))
                    return
                s, n = torch.stack([total, norm]).tolist()
                bad_count = 0
                if s != s or s in (float("inf"), float("-inf")):
                    bad_count = int((~torch.isfinite(xf)).sum())
            first_bad = self._record_stats(slot, s, n, xf.numel(), bad_count,
                                           not self._tls.nonfinite_reported)
            if first_bad:
                self._tls.nonfinite_reported = True
                self._report_nonfinite(slot, bad_count, xf.numel(), shape, dtype)
        except Exception as exc:
            self._own_error(slot, "sample", exc)

    def _record_stats(
        self, slot: ModuleSlot, total: float, norm: float, numel: int, bad: int, may_report: bool
    ) -> bool:
        mean = total / numel
        std = max(norm * norm / numel - mean * mean, 0.0) ** 0.5 if bad == 0 else float("nan")
        with self._lock:
            slot.stats = (mean, std, norm)
            if bad:
                slot.nonfinite += 1
        return bool(bad) and may_report

    def _report_nonfinite(
        self, slot: ModuleSlot, bad: int, numel: int, shape: list[int], dtype: str
    ) -> None:
        self._log.error(
            "module_output_nonfinite",
            **request_context_fields(),
            model=self.model_name,
            version=self.version,
            config_hash=self.config_hash,
            module=slot.path,
            nonfinite_elements=bad,
            numel=numel,
            shape=shape,
            dtype=dtype,
        )

    def _resolve_deferred(self) -> None:
        """Read back statistics left on an accelerator: one transfer per device per period."""
        try:
            with self._lock:
                batches, self._deferred = self._deferred, []
            if not batches:
                return
            by_device: dict[torch.device, list[torch.Tensor]] = {}
            for batch in batches:
                for _, packed, *_rest in batch:
                    by_device.setdefault(packed.device, []).append(packed)
            host = {dev: torch.stack(ts).tolist() for dev, ts in by_device.items()}
            cursor = dict.fromkeys(host, 0)
            for batch in batches:
                reported = False
                for slot, packed, numel, shape, dtype in batch:
                    dev = packed.device
                    total, norm, bad_f = host[dev][cursor[dev]]
                    cursor[dev] += 1
                    bad = int(bad_f)
                    if self._record_stats(slot, total, norm, numel, bad, not reported):
                        reported = True
                        self._report_nonfinite(slot, bad, numel, shape, dtype)
        except Exception as exc:
            self._own_error(self._root_slot, "resolve_deferred", exc)

    def _observe(self, slot: ModuleSlot, monitor: DriftObserver, out: Any) -> None:
        try:
            monitor.observe(out)
        except Exception as exc:
            self._own_error(slot, "drift_observe", exc)

    def _drift_rows(self) -> Iterable[tuple[str, float | None, int, int]]:
        rows = []
        for path, monitor in self._drift.items():
            try:
                score, windows, alarms = _unpack_snapshot(monitor.snapshot())
            except Exception as exc:
                self._own_error(self._slots[path], "drift_snapshot", exc)
                continue
            rows.append((path, score, windows, alarms))
        return rows

    def _own_error(self, slot: ModuleSlot, stage: str, exc: Exception) -> None:
        try:
            with self._lock:
                slot.instrumentation_errors += 1
            self._log.error(
                "instrumentation_error",
                **request_context_fields(),
                model=self.model_name,
                version=self.version,
                module=slot.path,
                stage=stage,
                error_type=type(exc).__name__,
                error_message=str(exc),
            )
        except Exception:  # noqa: S110 - a broken logger must not break inference either
            pass


def _unpack_snapshot(snap: Any) -> tuple[float | None, int, int]:
    if all(hasattr(snap, a) for a in ("score", "windows", "alarms")):
        score, windows, alarms = snap.score, snap.windows, snap.alarms
    else:
        score, windows, alarms = snap
    return (None if score is None else float(score)), int(windows), int(alarms)


def _copy_identity(wrapper: Callable[..., Any], original: Callable[..., Any]) -> None:
    # transformers inspects `self.forward`'s signature; __wrapped__ makes inspect see the original.
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]
    wrapper.__name__ = getattr(original, "__name__", "forward")
    wrapper.__qualname__ = getattr(original, "__qualname__", "forward")
    wrapper.__doc__ = getattr(original, "__doc__", None)


def _flush_periodically(
    flusher: SlotsFlusher, stop: threading.Event, interval: float, resolve: Callable[[], None]
) -> None:
    while not stop.wait(interval):
        try:
            resolve()
            flusher.flush()
        except Exception:  # noqa: S112 - the next tick retries; detach() flushes once more
            continue


def _check_not_instrumented(path: str, module: nn.Module) -> None:
    current = module.__dict__.get("forward")
    if current is not None and getattr(current, _MARK, False):
        raise ValueError(
            f"module {path or '<root>'!r} ({type(module).__name__}) is already instrumented; "
            "detach() the existing Instrumentation first"
        )


def instrument(
    model: nn.Module,
    *,
    model_name: str,
    version: str | int,
    config_hash: str | None = None,
    modules: Sequence[str] | None = None,
    prometheus_registry: CollectorRegistry | None = None,
    sample_every: int = 100,
    drift: Mapping[str, DriftObserver] | None = None,
    multiprocess: bool | None = None,
    flush_interval_s: float = 5.0,
) -> Instrumentation:
    """Instrument `model`'s selected submodules with metrics, failure tracing and drift observation.

    `modules=None` selects the top-level children; names or glob patterns (`"**"` = every
    submodule) select others. Metrics go to `prometheus_registry` (the default registry when
    None and not in multiprocess mode). `multiprocess=None` follows `PROMETHEUS_MULTIPROC_DIR`.
    `drift` maps instrumented module paths to monitors whose `observe(output)` is called on every
    call of that module.

    Returns:
        The handle; `detach()` (or leaving its `with` block) removes everything.

    Raises:
        ValueError: unknown module name or pattern, a module already instrumented, a bad argument.
        TypeError: `model` is not an `nn.Module`, or a drift monitor lacks observe/snapshot.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(model_name, str) or not model_name:
        raise ValueError("model_name must be a non-empty string")
    if isinstance(version, bool) or not isinstance(version, str | int) or str(version) == "":
        raise ValueError(f"version must be a non-empty string or an int, got {version!r}")
    if isinstance(sample_every, bool) or not isinstance(sample_every, int) or sample_every < 1:
        raise ValueError(f"sample_every must be an int >= 1, got {sample_every!r}")
    if flush_interval_s <= 0:
        raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
    selected = select_modules(model, modules)
    paths = {path for path, _ in selected}
    monitors = dict(drift or {})
    for path, monitor in monitors.items():
        if path not in paths:
            raise ValueError(
                f"drift monitor for {path!r}, which is not instrumented; instrumented: "
                f"{', '.join(sorted(paths))}"
            )
        if not isinstance(monitor, DriftObserver):
            raise TypeError(f"drift monitor for {path!r} must have observe() and snapshot()")
    for path, module in [("", model), *selected]:
        _check_not_instrumented(path, module)
    if multiprocess is None:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    registry = prometheus_registry
    if registry is None and not multiprocess:
        registry = REGISTRY
    return Instrumentation(
        model, model_name=model_name, version=str(version), config_hash=config_hash,
        selected=selected, registry=registry, sample_every=sample_every, drift=monitors,
        multiprocess=multiprocess, flush_interval_s=flush_interval_s,
    )
