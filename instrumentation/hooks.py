"""Attach and detach per-module forward wrappers that time calls and trace failures to a module.

How it works, and why:

- Each instrumented module gets an *instance* ``forward`` wrapper (not ``register_forward_hook``):
  a module without hooks keeps PyTorch's fast call path, and a try/except around the original
  forward sees exceptions. The root model gets a thin marker wrapper that delimits one "root call"
  per thread (sampling decision, the order of non-finite outputs, "already reported" markers).
  Both wrappers live in `instrumentation._hot`, with the one timed-call body every module call
  runs; this module holds the cold paths it hands over to (`ColdPaths`) and the lifecycle.
- The hot path adds the latency and its bucket count into the thread's own counter list (one
  writer, no lock, exact across threads: `_counters.HotCounters`); `_collector.SlotsCollector`
  converts the counts to Prometheus families at scrape time.
- Every call's output is checked for NaN/Inf: one reduction queued on the output's device, never
  read on the forward path. The root call's end queues its probes (still on the device) with the
  order of the calls; they are read back, one stack and one transfer
  per device, at the next sampled root call, at scrape, at flush and at detach. Then each
  non-finite call is counted on its module, and each forward that produced one names its first
  module (in the order calls ended, so the innermost producer) in one event, with the request
  context the forward ran in.
- Output statistics (mean, std, norm) are computed every ``sample_every`` root calls of each
  thread (its first included), under ``no_grad`` on the detached output, and read back with the
  flags: no hook forces a device sync per call.
- Under ``torch.profiler`` every instrumented call is a ``mmgov:<module path>`` range. Whether a
  profiler runs is checked when a root call starts (``record_function`` costs microseconds, so it
  is never entered otherwise): a profiler started in the middle of a root call sees the next one.
- Failures: the innermost instrumented module reports an exception once (one structlog event and
  ``mmgov_module_errors_total``), then the same exception object propagates unchanged.
- Our own failures are counted in ``mmgov_instrumentation_errors_total`` and logged, never raised.

torch.compile: instrument *before* compiling (or instrument the eager model and compile the
instrumented one). The wrappers are excluded from Dynamo tracing (``_hot.dynamo_skip``: what
``torch.compiler.disable`` without recursion means, without its per-call wrapper) and the Python
code they call runs with Dynamo off (``_hot.compile_safe``), so the model's code inside each
instrumented module is compiled while the bookkeeping runs eagerly: at most one graph break per
instrumented module call, and exact counts. Hooks added to an already-compiled module are not
seen by the compiled code.

Multiprocess mode (several serving workers with ``PROMETHEUS_MULTIPROC_DIR``): custom collectors
are invisible to ``MultiProcessCollector``, so each process runs a timer thread that adds the growth
of its slots into real prometheus_client metrics (``_flusher.MultiprocessMetrics``) every
``flush_interval_s`` seconds and once more on ``detach()``.
"""

from __future__ import annotations

import contextvars
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import torch
from prometheus_client import REGISTRY, CollectorRegistry
from torch import nn
from torch.autograd import _profiler_enabled  # type: ignore[attr-defined]

from instrumentation._collector import SlotsCollector
from instrumentation._counters import DriftRow, HotCounters, ModuleSlot
from instrumentation._flusher import SlotsFlusher
from instrumentation._hot import (
    FULL,
    OUTSIDE,
    PLAIN,
    PROFILER,
    PerThread,
    ThreadState,
    dynamo_skip,
    module_wrapper,
    root_wrapper,
)
from instrumentation._select import describe_inputs, first_tensor, select_modules
from instrumentation.logs import get_logger, request_context_fields
from instrumentation.metrics import DriftObserver

__all__ = ["Instrumentation", "instrument"]

_MARK = "_mmgov_wrapper"
_ROOT_PATH = "<root>"
# Probes that may wait for the next read-back; past it, a root call's end reads them (one
# transfer) so memory stays bounded however large `sample_every` is.
MAX_PENDING = 16384


class _Forward(NamedTuple):
    """What one root call left on the device for the next read-back."""

    # 1-D, one element per probed call (finite iff its output was), in the order calls ended: one
    # tensor, the forward's probes stacked, or one per probe when they are on several devices.
    probes: tuple[torch.Tensor, ...]
    called: tuple[int, ...]  # slot index of each probe
    stats: tuple[tuple[ModuleSlot, torch.Tensor, int], ...]  # sampled (slot, [sum, norm], numel)
    context: contextvars.Context  # the request context the forward ran in


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
        self._local = PerThread(self._counters)
        # deque.append / popleft are atomic: root calls of any thread queue, any thread reads.
        self._pending: deque[_Forward] = deque()
        self._pending_probes = 0  # about: threads add without a lock; it only triggers a read
        self._resolving = threading.Lock()
        self._log = get_logger()
        self._slots = {path: ModuleSlot(path, index) for index, path in enumerate(self.modules)}
        self._by_index = tuple(self._slots.values())
        self._root_slot = ModuleSlot(_ROOT_PATH)
        all_slots = [*self._slots.values(), self._root_slot]
        self._attached: list[_Attached] = []
        self._detached = False

        self._registry = registry
        self._collector: SlotsCollector | None = None
        if registry is not None:
            self._collector = SlotsCollector(
                model=model_name, version=version, slots=all_slots, counters=self._counters,
                lock=self._lock, drift=self._drift_rows, before_collect=self._resolve_pending,
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
                args=(self._flusher, self._stop_flushing, flush_interval_s, self._resolve_pending),
                name=f"mmgov-flush-{model_name}", daemon=True,
            )
            self._flush_thread.start()

        for path, module in selected:
            monitor = self._drift.get(path)
            self._attach(module, module_wrapper(
                self._local, self._slots[path], module.forward, self,
                None if monitor is None else monitor.observe,
            ))
        self._attach(model, root_wrapper(self._local, model.forward, self))

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
        self._resolve_pending()
        if self._flush_thread is not None and self._flusher is not None:
            self._stop_flushing.set()
            self._flush_thread.join()
            self._flusher.flush()
        if self._registry is not None and self._collector is not None:
            self._registry.unregister(self._collector)
            self._collector = None

    def flush(self) -> None:
        """Read back what waits on devices; in multiprocess mode write the metric files now."""
        self._resolve_pending()
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

    def _attach(self, module: nn.Module, wrapper: Callable[..., Any]) -> None:
        _copy_identity(wrapper, module.forward)
        # Dynamo runs the bookkeeping eagerly and compiles the module's own forward as its frame.
        wrapper = dynamo_skip(wrapper)
        setattr(wrapper, _MARK, True)
        previous = module.__dict__.get("forward", _NOTHING)
        module.__dict__["forward"] = wrapper
        self._attached.append(_Attached(module, previous, wrapper))

    # -- cold paths of the hot path (`_hot.ColdPaths`; each guarded: never raises into the model) -

    def begin_root(self, state: ThreadState) -> None:
        """Open a root call the root wrapper's inline path does not handle: sampled, or profiled.

        Also opens the root call of a module that runs outside its model's forward.
        """
        state.mode = PLAIN
        try:
            left = state.countdown
            sampled = left == 0
            state.countdown = self._sample_every - 1 if sampled else left - 1
            if sampled or PROFILER._is_profiler_enabled:
                state.sampled = sampled
                state.mode = FULL
            if sampled and self._pending:
                self._resolve_pending()  # the one read-back of a sampling period
        except Exception as exc:
            self.own_error(self._root_slot, "begin_root", exc)

    def end_root(self, state: ThreadState) -> None:
        """Close a root call: queue its flags and statistics, reset every per-root-call field."""
        state.mode = OUTSIDE
        state.sampled = False
        state.reported_exc = 0  # drop the id so a later exception object may reuse it
        state.last = state.last_check = None  # release the output
        checks, stats = state.checks, state.stats
        if not checks and not stats:
            return
        try:
            # One stack per forward: what waits for the read-back is one small tensor, not a
            # 0-d tensor per call; thousands of those, alive for `sample_every` forwards between
            # the activations, fragment the CPU heap (full depth, batch 8, after the default
            # profile in the same process: +41.7 % with them, +0.9 % stacked).
            try:
                probes: tuple[torch.Tensor, ...] = (torch.stack(checks),) if checks else ()
            except RuntimeError:  # probes on several devices
                probes = tuple(check.reshape(1) for check in checks)
            self._pending.append(_Forward(
                probes, tuple(state.called), tuple(stats), contextvars.copy_context(),
            ))
            self._pending_probes += len(checks)
            if self._pending_probes > MAX_PENDING:
                self._resolve_pending()
        except Exception as exc:
            self.own_error(self._root_slot, "end_root", exc)
        finally:
            checks.clear()
            state.called.clear()
            stats.clear()

    def enter(self, state: ThreadState, slot: ModuleSlot) -> Any:
        """Prologue of a sampled, profiled or outside call; returns (opened root, profiler span)."""
        opened = state.mode == OUTSIDE
        if opened:
            self.begin_root(state)
        span = None
        try:
            if _profiler_enabled():
                span = torch.profiler.record_function(f"mmgov:{slot.path}")
                span.__enter__()  # type: ignore[no-untyped-call]  # torch leaves it untyped
        except Exception as exc:
            self.own_error(slot, "profiler_enter", exc)
        return opened, span

    def leave(self, state: ThreadState, slot: ModuleSlot, scope: Any, out: Any) -> None:
        """Epilogue of `enter`: close the profiler range, sample statistics, close a root opened."""
        opened, span = scope
        try:
            if span is not None:
                span.__exit__(None, None, None)
            if out is not None and state.sampled:
                self._sample(state, slot, out)
        except Exception as exc:
            self.own_error(slot, "leave", exc)
        if opened:
            self.end_root(state)

    def on_error(
        self, state: ThreadState, slot: ModuleSlot, exc: BaseException,
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        """Count a module's exception; the innermost module reports it once per root call."""
        try:
            first = state.reported_exc != id(exc)
            error_type = type(exc).__name__
            with self._lock:
                slot.failed_calls += 1
                if first:
                    slot.errors[error_type] = slot.errors.get(error_type, 0) + 1
            if not first:
                return
            state.reported_exc = id(exc)
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
            self.own_error(slot, "on_error", own)

    def own_error(self, slot: ModuleSlot, stage: str, exc: Exception) -> None:
        """Count and log a failure of the instrumentation itself; never raises."""
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

    # -- statistics and the read-back -----------------------------------------------------------

    def _sample(self, state: ThreadState, slot: ModuleSlot, out: Any) -> None:
        x = first_tensor(out)
        if x is None or x.numel() == 0 or x.is_complex():
            return
        with torch.no_grad():
            xf = x.detach()
            if xf.dtype not in (torch.float32, torch.float64):
                xf = xf.float()
            # Stays on the device; read back with the non-finite flags.
            packed = torch.stack([xf.sum(), torch.linalg.vector_norm(xf)])
        state.stats.append((slot, packed, xf.numel()))

    def _resolve_pending(self) -> None:
        """Read back flags and statistics left on devices: one transfer per device."""
        try:
            with self._resolving:
                forwards: list[_Forward] = []
                self._pending_probes = 0
                while self._pending:
                    forwards.append(self._pending.popleft())
                if forwards:
                    self._count(forwards, _read_back(forwards))
        except Exception as exc:
            self.own_error(self._root_slot, "resolve_pending", exc)

    def _count(
        self, forwards: list[_Forward], values: list[tuple[list[float], list[float]]]
    ) -> None:
        reports = []
        with self._lock:
            for forward, (flags, stats) in zip(forwards, values, strict=True):
                bad = [self._by_index[i] for i, ok in zip(forward.called, flags, strict=True)
                       if not ok]
                for slot in bad:
                    slot.nonfinite += 1
                for (slot, _packed, numel), (total, norm) in zip(
                    forward.stats, _pairs(stats), strict=True
                ):
                    mean = total / numel
                    std = max(norm * norm / numel - mean * mean, 0.0) ** 0.5
                    slot.stats = (mean, std if _finite(total, norm) else float("nan"), norm)
                if bad:
                    reports.append((forward, bad))
        for forward, bad in reports:
            self._log.error(
                "module_output_nonfinite",
                **forward.context.run(request_context_fields),
                model=self.model_name,
                version=self.version,
                config_hash=self.config_hash,
                module=bad[0].path,
                nonfinite_calls=len(bad),
                modules=list(dict.fromkeys(slot.path for slot in bad)),
            )

    def _drift_rows(self) -> Iterable[DriftRow]:
        rows = []
        for path, monitor in self._drift.items():
            try:
                snap = monitor.snapshot()
                score = None if snap.score is None else float(snap.score)
                rows.append(DriftRow(path, score, int(snap.windows), int(snap.alarms)))
            except Exception as exc:
                self.own_error(self._slots[path], "drift_snapshot", exc)
        return rows


def _read_back(forwards: list[_Forward]) -> list[tuple[list[float], list[float]]]:
    """Return each forward's (finite flags, flattened statistics), one transfer per device.

    The common case, every probe and statistic on one device, costs a few C-level ops for all of
    them: one stack, one cat, one transfer, no Python work per probe beyond slicing the result.
    Tensors on several devices make the stack or cat raise; then they are grouped by device.
    """
    probes = [probe for forward in forwards for probe in forward.probes]
    stats = [packed for forward in forwards for _slot, packed, _numel in forward.stats]
    try:
        flat = _one_device(probes, stats)
    except RuntimeError:  # several devices (a model split across them)
        return _read_back_by_device(forwards)
    host: list[float] = flat.tolist()  # the one transfer (outside the try: it may fail too)
    out = []
    flag_at, stat_at = 0, sum(probe.numel() for probe in probes)
    for forward in forwards:
        n_flags = sum(probe.numel() for probe in forward.probes)
        n_stats = sum(packed.numel() for _slot, packed, _numel in forward.stats)
        out.append((host[flag_at : flag_at + n_flags], host[stat_at : stat_at + n_stats]))
        flag_at += n_flags
        stat_at += n_stats
    return out


def _one_device(probes: list[torch.Tensor], stats: list[torch.Tensor]) -> torch.Tensor:
    """Return the probes' finite flags, then the statistics, in one flat tensor on their device.

    Raises RuntimeError when they are not all on one device.
    """
    if not probes and not stats:
        return torch.zeros(0)
    first = probes[0] if probes else stats[0]
    dtype = torch.float32 if first.device.type == "mps" else torch.float64
    parts = [torch.isfinite(torch.cat(probes)).to(dtype)] if probes else []
    parts.extend(packed.reshape(-1).to(dtype) for packed in stats)
    return torch.cat(parts)


def _read_back_by_device(forwards: list[_Forward]) -> list[tuple[list[float], list[float]]]:
    """`_read_back` for tensors on several devices: one transfer per device."""
    parts: dict[torch.device, list[torch.Tensor]] = {}
    where: list[tuple[torch.device, int, int]] = []  # (device, start, length), in walk order
    sizes: dict[torch.device, int] = {}

    def add(device: torch.device, tensor: torch.Tensor) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64
        flat = tensor.reshape(-1).to(dtype)
        start = sizes.get(device, 0)
        parts.setdefault(device, []).append(flat)
        sizes[device] = start + flat.numel()
        where.append((device, start, flat.numel()))

    by_device: dict[torch.device, list[torch.Tensor]] = {}
    for forward in forwards:
        for probe in forward.probes:
            by_device.setdefault(probe.device, []).append(probe)
    for device, probes in by_device.items():
        add(device, torch.isfinite(torch.cat(probes)))
    for forward in forwards:
        for _slot, packed, _numel in forward.stats:
            add(packed.device, packed)
    host = {device: torch.cat(ts).tolist() for device, ts in parts.items()}
    spans = iter(where)
    flags_at = {}
    for device in by_device:
        _, start, _n = next(spans)
        flags_at[device] = start
    out = []
    for forward in forwards:
        flags = []
        for probe in forward.probes:
            at, n = flags_at[probe.device], probe.numel()
            flags.extend(host[probe.device][at : at + n])
            flags_at[probe.device] = at + n
        stats: list[float] = []
        for _ in forward.stats:
            device, start, n = next(spans)
            stats.extend(host[device][start : start + n])
        out.append((flags, stats))
    return out


def _finite(*values: float) -> bool:
    return all(v - v == 0.0 for v in values)


def _pairs(values: list[float]) -> list[tuple[float, float]]:
    return list(zip(values[::2], values[1::2], strict=True))


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
    None and not in multiprocess mode). Every call's output is checked for NaN/Inf (on its
    device; read back at the next sampled forward, scrape, flush or detach); output statistics
    are sampled on every `sample_every`-th forward of each thread (its first included).
    `multiprocess=None` follows `PROMETHEUS_MULTIPROC_DIR`. `drift` maps instrumented module
    paths to monitors whose `observe(output)` is called on every call of that module.

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
