"""The hot path: one timed-call body for every instrumented module, and the root-call marker.

Every module call runs the same body (`module_wrapper`): read the thread's state, time the
original forward, add the latency into the thread's counter list, queue a non-finite probe of the
output (one torch reduction that stays on the output's device; the tensor the previous call
returned reuses its probe), feed the drift monitor. A call
that is sampled, profiled or outside a root call also runs a cold prologue and epilogue
(`ColdPaths.enter` / `leave`) around that same body; nothing else differs.

Per-thread state is one `ThreadState` object: its counter list holds only counters, and the
root call's end (`ColdPaths.end_root`) runs after every root call and resets all per-root-call
state, so no cold path has to remember to flag state for a reset.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch.autograd import _profiler_enabled  # type: ignore[attr-defined]
from torch.autograd import profiler as _autograd_profiler

from instrumentation._counters import HotCounters, ModuleSlot
from instrumentation._select import first_tensor
from instrumentation.metrics import BUCKET_BY_BIT_LENGTH, LATENCY_BOUNDS_NS_PADDED

__all__ = [
    "FULL",
    "OUTSIDE",
    "PLAIN",
    "PROFILER",
    "ColdPaths",
    "PerThread",
    "ThreadState",
    "compile_safe",
    "dynamo_skip",
    "finite_probe",
    "module_wrapper",
    "root_wrapper",
]

# What a thread's module wrappers do (PLAIN is the common case: the hot path tests it once).
PLAIN = 0  # inside a root call that is neither sampled nor profiled: time, count, probe
FULL = 1  # inside a sampled or profiled root call: also statistics, profiler ranges
OUTSIDE = 2  # no root call in progress: the first wrapper to run opens one


class ThreadState:
    """One thread's counters and its position inside a root call."""

    __slots__ = (
        "called", "checks", "countdown", "counts", "last", "last_check", "last_version", "mode",
        "reported_exc", "sampled", "stats", "token",
    )

    def __init__(self, counters: HotCounters) -> None:
        self.counts, self.token = counters.for_this_thread()
        self.mode = OUTSIDE
        self.countdown = 0  # root calls before the next sampled one: the thread's first is sampled
        # Per-root-call state; `ColdPaths.end_root` resets all of it after every root call.
        self.sampled = False
        self.reported_exc = 0  # id() of the exception already reported in this root call
        self.checks: list[torch.Tensor] = []  # one non-finite probe per module call
        self.called: list[int] = []  # the slot index of each probe, in the order calls ended
        # The last output probed and its probe: a module handing on the tensor it was given (a
        # dropout in eval, a block returning its last layer's output) reuses it, unless it was
        # changed in place since (its version counter moved; inference tensors have none).
        self.last: torch.Tensor | None = None
        self.last_check: torch.Tensor | None = None
        self.last_version = 0
        # Sampled statistics: (slot, [sum, norm] on the device, numel).
        self.stats: list[tuple[ModuleSlot, torch.Tensor, int]] = []


class PerThread(threading.local):
    """Holds each thread's `ThreadState`; `__init__` runs once in each thread that uses it."""

    def __init__(self, counters: HotCounters) -> None:
        self.state = ThreadState(counters)


class _ProfilerFlag:
    """Stand-in for `torch.autograd.profiler` on a torch without its `_is_profiler_enabled`."""

    @property
    def _is_profiler_enabled(self) -> bool:
        return bool(_profiler_enabled())


# The module whose `_is_profiler_enabled` says whether a torch profiler runs: a module attribute
# read, where `_profiler_enabled()` is a pybind call (cheap in a loop, microseconds on cold caches).
PROFILER: Any = (
    _autograd_profiler if hasattr(_autograd_profiler, "_is_profiler_enabled") else _ProfilerFlag()
)

_F32 = torch.float32


def finite_probe(x: torch.Tensor) -> torch.Tensor | None:
    """Return a 0-d tensor on `x`'s device that is finite when every element of `x` is.

    One reduction (the sum, in float32 at least), queued on the device and never read here: a NaN
    or an infinity anywhere makes it non-finite. A finite tensor whose float32 sum overflows
    (|sum| > 3.4e38) also reads as non-finite. None for integer and bool tensors (always finite).
    """
    if x.requires_grad:
        x = x.detach()  # no autograd node that would keep `x` alive with the probe
    dtype = x.dtype
    if dtype is _F32 or dtype is torch.float64 or dtype.is_complex:
        return x.sum()
    if dtype.is_floating_point:
        return x.sum(dtype=_F32)  # half-precision sums of ordinary activations overflow
    return None


def compile_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, run with Dynamo off: inside a compiled model our bookkeeping stays eager and whole.

    The wrappers themselves are excluded without recursion (their module's own forward compiles),
    so every Python function they call would otherwise be compiled as a frame of its own.
    """
    wrapped: Callable[..., Any] = torch.compiler.disable(fn)  # type: ignore[no-untyped-call]  # untyped in torch
    return wrapped


def dynamo_skip(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` itself, marked so Dynamo runs its frame eagerly but compiles the frames it calls.

    What `torch.compiler.disable(fn, recursive=False)` means, without the wrapper frame that
    version adds to every call (about 1 µs in an eager forward) and without the frame walk
    Dynamo then does on every call under a compiled model to find that wrapper (it made the
    compiled reference model 15 % slower at batch 1): Dynamo's `skip` marks the code object to
    be skipped (`skip_code`, checked in C when a frame starts) and the function as not to be
    inlined (`_torchdynamo_disable`: tracing a caller graph-breaks at the call). Falls back to
    the non-recursive `disable` on a torch without `skip`.
    """
    from torch._dynamo import decorators

    skip = getattr(decorators, "skip", None)
    if skip is None:  # pragma: no cover - every torch this project allows has it
        disabled: Callable[..., Any] = torch.compiler.disable(fn, recursive=False)  # type: ignore[no-untyped-call]  # untyped in torch
        return disabled
    marked: Callable[..., Any] = skip(fn)
    return marked


class ColdPaths(Protocol):
    """What the hot path hands over to, each method guarded so it never raises into the model."""

    def begin_root(self, state: ThreadState) -> None:
        """Open a root call that is sampled or profiled (the root wrapper inlines the rest)."""

    def end_root(self, state: ThreadState) -> None:
        """Close a root call: queue its probes and statistics, reset per-root-call state."""

    def enter(self, state: ThreadState, slot: ModuleSlot) -> Any:
        """Prologue of a call that is not PLAIN; returns what `leave` needs."""

    def leave(self, state: ThreadState, slot: ModuleSlot, scope: Any, out: Any) -> None:
        """Epilogue of a call that is not PLAIN; `out` is None when the call raised."""

    def on_error(
        self, state: ThreadState, slot: ModuleSlot, exc: BaseException,
        args: tuple[Any, ...], kwargs: dict[str, Any],
    ) -> None:
        """Count and report an exception raised by the module (it then propagates unchanged)."""

    def own_error(self, slot: ModuleSlot, stage: str, exc: Exception) -> None:
        """Count and log a failure of the instrumentation itself."""


def module_wrapper(
    local: PerThread,
    slot: ModuleSlot,
    original: Callable[..., Any],
    cold: ColdPaths,
    observe: Callable[[Any], None] | None,
) -> Callable[..., Any]:
    """Return the instance `forward` that instruments one module: the one timed-call body."""
    # Closure variables are cheaper to read than attributes or dicts.
    perf, tensor, f32, f64 = time.perf_counter_ns, torch.Tensor, torch.float32, torch.float64
    # Python functions the body calls run with Dynamo off (`compile_safe`); C calls need nothing.
    probe, primary = compile_safe(finite_probe), compile_safe(first_tensor)
    by_bits, bounds = BUCKET_BY_BIT_LENGTH, LATENCY_BOUNDS_NS_PADDED
    fastest = bounds[0]
    index = slot.index
    latency_sum = HotCounters.offset(index)
    first_bucket = latency_sum + 1
    enter, leave = compile_safe(cold.enter), compile_safe(cold.leave)
    on_error, own_error = compile_safe(cold.on_error), compile_safe(cold.own_error)
    if observe is not None:
        observe = compile_safe(observe)

    def forward(*args: Any, **kwargs: Any) -> Any:
        state = local.state
        plain = state.mode == PLAIN
        scope = None if plain else enter(state, slot)
        start = perf()
        try:
            out = original(*args, **kwargs)
        except BaseException as exc:
            on_error(state, slot, exc, args, kwargs)
            if not plain:
                leave(state, slot, scope, None)
            raise
        elapsed = perf() - start
        counts = state.counts
        counts[latency_sum] += elapsed
        if elapsed <= fastest:  # most calls of a full-depth profile
            counts[first_bucket] += 1
        else:  # metrics.bucket_index, inlined
            i = by_bits[elapsed.bit_length()]
            if elapsed > bounds[i]:
                i += 1
            counts[first_bucket + i] += 1
        try:
            kind = out.__class__
            if kind is tensor:
                x = out
            elif kind is tuple and out and out[0].__class__ is tensor:  # first_tensor's rule
                x = out[0]
            else:
                x = primary(out)
            if x is not None:
                last: Any = state.last
                if x is last and (state.last_version < 0 or x._version == state.last_version):
                    check = state.last_check
                else:
                    dtype = x.dtype
                    if dtype is f32 or dtype is f64:  # finite_probe, inlined
                        check = (x.detach() if x.requires_grad else x).sum()
                    else:
                        check = probe(x)
                    state.last, state.last_check = x, check
                    # Inference tensors have no version counter (-1: reuse on identity alone).
                    state.last_version = -1 if x.is_inference() else x._version
                if check is not None:
                    state.checks.append(check)
                    state.called.append(index)
        except Exception as exc:
            own_error(slot, "nonfinite_probe", exc)
        if observe is not None:
            try:
                observe(out)
            except Exception as exc:
                own_error(slot, "drift_observe", exc)
        if not plain:
            leave(state, slot, scope, out)
        return out

    return forward


def root_wrapper(
    local: PerThread, original: Callable[..., Any], cold: ColdPaths
) -> Callable[..., Any]:
    """Return the instance `forward` of the root model: it delimits one root call per thread."""
    begin, end, profiler = compile_safe(cold.begin_root), compile_safe(cold.end_root), PROFILER

    def forward(*args: Any, **kwargs: Any) -> Any:
        state = local.state
        if state.mode != OUTSIDE:  # re-entered from inside a root call
            return original(*args, **kwargs)
        left = state.countdown
        if left and not profiler._is_profiler_enabled:
            state.countdown = left - 1
            state.mode = PLAIN
        else:
            begin(state)
        try:
            return original(*args, **kwargs)
        finally:
            end(state)

    return forward
