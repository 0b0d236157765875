"""Attach and detach per-module forward wrappers that time calls and trace failures to a module.

How it works, and why:

- Each instrumented module gets an *instance* ``forward`` wrapper (not ``register_forward_hook``):
  a module without hooks keeps PyTorch's fast call path, and a try/except around the original
  forward sees exceptions. The root model gets a thin marker wrapper that delimits one "root call"
  per thread (sampling decision, "already reported" markers).
- The hot path of a call that is not sampled reads one thread-local list and adds the latency
  and its bucket count into it: that list has one writer, its own thread, so there is no lock and
  counts stay exact across threads (`metrics.HotCounters`). Everything else (sampling, profiler
  labels, opening a root call when a module runs outside one) sits behind one check of a per-thread
  mode set once per root call. `metrics.SlotsCollector` converts the counts to Prometheus families
  at scrape time.
- What a root call does on entry and exit is kept to a few reads and writes of that same list:
  its first entries hold the mode, a sampling countdown and a flag that some cold path (an error,
  a sampled call) left per-call state to reset. These run once per forward, right after the
  previous forward has streamed the model's weights through the CPU caches, so every distinct
  object they touch costs a cache miss (a pybind call or four thread-local writes took 7 µs
  there against 0.3 µs in a loop).
- Under ``torch.profiler`` every instrumented call is a ``mmgov:<module path>`` range. Whether a
  profiler runs is checked when a root call starts, on the flag torch's own fast paths read
  (``torch.autograd.profiler._is_profiler_enabled``; ``record_function`` costs microseconds, so it
  is never entered otherwise): a profiler started in the middle of a root call sees the next one.
- Output statistics (mean, std, norm) and the finite check are computed every ``sample_every`` root
  calls of each thread (its first included), under ``no_grad`` on the detached output. On CPU they
  are read at once; on an accelerator the reduced values stay on the device and are read back once
  per sampling period (at the next sampled root call, at scrape, or at detach), so no hook forces a
  device sync per call.
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
from torch.autograd import _profiler_enabled  # type: ignore[attr-defined]
from torch.autograd import profiler as _autograd_profiler

from instrumentation._select import describe_inputs, first_tensor, select_modules
from instrumentation.logs import get_logger, request_context_fields
from instrumentation.metrics import (
    BUCKET_BY_BIT_LENGTH,
    LATENCY_BOUNDS_NS_PADDED,
    DriftObserver,
    HotCounters,
    ModuleSlot,
    SlotsCollector,
    SlotsFlusher,
    bucket_index,
)

__all__ = ["Instrumentation", "instrument"]

_MARK = "_mmgov_wrapper"
_ROOT_PATH = "<root>"

# The control words at the front of each thread's HotCounters list.
_MODE = 0  # what the thread's module wrappers do: one of the three below
_COUNTDOWN = 1  # root calls left before the next sampled one (0: the next one is sampled)
_DIRTY = 2  # 1 when a cold path changed per-root-call state that the root call's end resets
# Modes (_PLAIN is the common case, so the hot path tests it with one comparison to a constant).
_PLAIN = 0  # inside a root call that is neither sampled nor profiled: time and count only
_FULL = 1  # inside a sampled or profiled root call: also statistics, profiler labels
_OUTSIDE = 2  # no root call in progress: the first wrapper to run opens one


class _ProfilerFlag:
    """Stand-in for `torch.autograd.profiler` on a torch without its `_is_profiler_enabled`."""

    @property
    def _is_profiler_enabled(self) -> bool:
        return bool(_profiler_enabled())


# The module whose `_is_profiler_enabled` says whether a torch profiler runs: a module attribute
# read, where `_profiler_enabled()` is a pybind call (cheap in a loop, microseconds on cold caches).
_PROFILER: Any = (
    _autograd_profiler if hasattr(_autograd_profiler, "_is_profiler_enabled") else _ProfilerFlag()
)

_Pending = tuple[ModuleSlot, torch.Tensor, int, list[int], str]


class _ThreadState(threading.local):
    """Per-thread position inside a root call; `__init__` runs once in each thread that uses it."""

    def __init__(self, counters: HotCounters) -> None:
        self.hot, self.token = counters.for_this_thread()
        self.hot[_MODE] = _OUTSIDE  # and a countdown of 0: the thread's first root call is sampled
        # Per-root-call state, changed only on cold paths (which set hot[_DIRTY]) and reset by
        # the root call's end.
        self.sampled = False
        self.nonfinite_reported = False
        self.reported_exc = 0  # id() of the exception already reported in this root call
        self.pending: list[_Pending] | None = None


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
        self._counters = HotCounters(len(self.modules))
        self._tls = _ThreadState(self._counters)
        self._deferred: list[list[_Pending]] = []
        self._log = get_logger()
        self._slots = {path: ModuleSlot(path, index) for index, path in enumerate(self.modules)}
        self._root_slot = ModuleSlot(_ROOT_PATH)
        all_slots = [*self._slots.values(), self._root_slot]
        self._attached: list[_Attached] = []
        self._detached = False

        self._registry = registry
        self._collector: SlotsCollector | None = None
        if registry is not None:
            self._collector = SlotsCollector(
                model=model_name, version=version, slots=all_slots, counters=self._counters,
                lock=self._lock, drift=self._drift_rows, before_collect=self._resolve_deferred,
            )
            registry.register(self._collector)
        self._flusher: SlotsFlusher | None = None
        self._stop_flushing = threading.Event()
        self._flush_thread: threading.Thread | None = None
        if multiprocess:
            self._flusher = SlotsFlusher(
                model=model_name, version=version, slots=all_slots, counters=self._counters,
                lock=self._lock, drift=self._drift_rows,
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
        tls, begin, end, profiler = self._tls, self._begin_root, self._end_root, _PROFILER

        def forward(*args: Any, **kwargs: Any) -> Any:
            hot = tls.hot
            if hot[_MODE] != _OUTSIDE:  # re-entered from inside a root call
                return original(*args, **kwargs)
            left = hot[_COUNTDOWN]
            if left and not profiler._is_profiler_enabled:
                hot[_COUNTDOWN] = left - 1
                hot[_MODE] = _PLAIN
            else:
                begin(hot)
            try:
                return original(*args, **kwargs)
            finally:
                hot[_MODE] = _OUTSIDE
                if hot[_DIRTY]:
                    end(hot)

        _copy_identity(forward, original)
        return forward

    def _module_wrapper(self, slot: ModuleSlot, original: Callable[..., Any]) -> Callable[..., Any]:
        # The hot path reads closure variables (cheaper than attributes or dicts), makes two
        # perf_counter_ns calls and adds two ints into this thread's list.
        tls, perf = self._tls, time.perf_counter_ns
        by_bits, bounds = BUCKET_BY_BIT_LENGTH, LATENCY_BOUNDS_NS_PADDED
        fastest = bounds[0]
        latency_sum = HotCounters.offset(slot.index)
        first_bucket = latency_sum + 1
        on_error, own_error = self._on_error, self._own_error
        monitor = self._drift.get(slot.path)
        observe = None if monitor is None else monitor.observe
        full = self._full_path(slot, original, monitor)

        def forward(*args: Any, **kwargs: Any) -> Any:
            hot = tls.hot
            if hot[_MODE] != _PLAIN:
                return full(hot, args, kwargs)
            start = perf()
            try:
                out = original(*args, **kwargs)
            except BaseException as exc:
                on_error(slot, exc, args, kwargs)
                raise
            elapsed = perf() - start
            hot[latency_sum] += elapsed
            if elapsed <= fastest:  # most calls of a full-depth profile
                hot[first_bucket] += 1
            else:  # metrics.bucket_index, inlined
                i = by_bits[elapsed.bit_length()]
                if elapsed > bounds[i]:
                    i += 1
                hot[first_bucket + i] += 1
            if observe is not None:
                try:
                    observe(out)
                except Exception as exc:
                    own_error(slot, "drift_observe", exc)
            return out

        _copy_identity(forward, original)
        return forward

    def _full_path(
        self, slot: ModuleSlot, original: Callable[..., Any], monitor: DriftObserver | None
    ) -> Callable[[list[int], tuple[Any, ...], dict[str, Any]], Any]:
        """The module call when sampled, profiled or outside a root call (which it then opens)."""
        tls, perf = self._tls, time.perf_counter_ns
        latency_sum = HotCounters.offset(slot.index)
        first_bucket = latency_sum + 1
        begin, end = self._begin_root, self._end_root
        on_error, sample, observe = self._on_error, self._sample, self._observe
        label = f"mmgov:{slot.path}"

        def call(hot: list[int], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            outer = hot[_MODE] == _OUTSIDE
            if outer:
                begin(hot)
            try:
                try:
                    if _profiler_enabled():
                        with torch.profiler.record_function(label):
                            start = perf()
                            out = original(*args, **kwargs)
                            elapsed = perf() - start
                    else:
                        start = perf()
                        out = original(*args, **kwargs)
                        elapsed = perf() - start
                except BaseException as exc:
                    on_error(slot, exc, args, kwargs)
                    raise
                hot[latency_sum] += elapsed
                hot[first_bucket + bucket_index(elapsed)] += 1
                if tls.sampled:
                    sample(slot, out)
                if monitor is not None:
                    observe(slot, monitor, out)
                return out
            finally:
                if outer:
                    end(hot)

        return call

    # -- root-call bookkeeping ------------------------------------------------------------------

    def _begin_root(self, hot: list[int]) -> None:
        """Open a root call the root wrapper's inline path does not handle: sampled, or profiled.

        Also opens the root call of a module that runs outside its model's forward.
        """
        # The profiler is checked once per root call: record_function costs microseconds per call.
        hot[_MODE] = _PLAIN
        try:
            left = hot[_COUNTDOWN]
            sampled = left == 0
            hot[_COUNTDOWN] = self._sample_every - 1 if sampled else left - 1
            if sampled or _PROFILER._is_profiler_enabled:
                self._tls.sampled = sampled
                hot[_MODE] = _FULL
                hot[_DIRTY] = 1
            if sampled and self._deferred:
                self._resolve_deferred()
        except Exception as exc:
            self._own_error(self._root_slot, "begin_root", exc)

    def _end_root(self, hot: list[int]) -> None:
        """Close a root call: reset what cold paths changed during it, hand on device stats."""
        hot[_MODE] = _OUTSIDE
        hot[_DIRTY] = 0
        tls = self._tls
        try:
            tls.reported_exc = 0  # drop the id so a later exception object may reuse it
            tls.sampled = False
            tls.nonfinite_reported = False
            pending, tls.pending = tls.pending, None
            if pending:
                with self._lock:
                    self._deferred.append(pending)
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
                slot.failed_calls += 1
                if first:
                    slot.errors[error_type] = slot.errors.get(error_type, 0) + 1
            if not first:
                return
            tls.reported_exc = id(exc)
            tls.hot[_DIRTY] = 1
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
    None and not in multiprocess mode). Output statistics are sampled on every `sample_every`-th
    forward of each thread (its first included). `multiprocess=None` follows
    `PROMETHEUS_MULTIPROC_DIR`. `drift` maps instrumented module paths to monitors whose
    `observe(output)` is called on every call of that module.

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
