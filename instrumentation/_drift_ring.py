"""Ring buffers of pooled rows for drift windows: one in host memory, one on an accelerator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from instrumentation._drift_calibration import Float32Array


class Ring(Protocol):
    """A preallocated ``[window, d]`` ring: ``write`` rows at a sample index, ``snapshot`` it."""

    def write(self, first: int, chunk: Any) -> None:
        """Copy ``chunk`` (at most ``window`` rows) to ring positions ``first, first + 1, ...``."""

    def snapshot(self) -> Any:
        """A copy of the whole ring for ``ready_rows`` (safe to overwrite the ring afterwards)."""


class HostRing:
    """Float32 ring in host memory; rows arrive already checked for NaN/inf."""

    def __init__(self, window: int, dim: int) -> None:
        self.rows = np.empty((window, dim), dtype=np.float32)

    def write(self, first: int, chunk: Any) -> None:
        """Copy ``chunk`` into the ring (a device tensor is brought to the host first)."""
        if not isinstance(chunk, np.ndarray):  # a device tensor into a host ring: mixed inputs
            chunk = chunk.cpu().numpy()
        _ring_copy(self.rows, first, chunk)

    def snapshot(self) -> Float32Array:
        """A copy of the rows.

        Returns:
            ``[window, d]`` float32 array.
        """
        return self.rows.copy()


@dataclass(frozen=True)
class DeviceSnapshot:
    """A device-side copy of a full ring, its finite-row mask, and (CUDA) the copy's event."""

    rows: Any
    finite: Any
    event: Any = None


class DeviceWindow:
    """Float32 ring on the device of the first rows, plus a per-row finite mask.

    Writing enqueues device copies only; nothing waits for the device. ``snapshot`` copies the
    ring on the device and, on CUDA, records an event on the current stream so that the worker
    thread can wait for exactly that copy before bringing it to the host.
    """

    def __init__(self, like: Any, window: int) -> None:
        import torch  # only reached with a torch tensor in hand

        self._torch = torch
        self.rows = like.new_empty((window, like.shape[1]), dtype=torch.float32)
        self.finite = like.new_empty((window,), dtype=torch.bool)

    def write(self, first: int, chunk: Any) -> None:
        """Copy ``chunk`` (a tensor or host array) into the ring with device-side copies."""
        if isinstance(chunk, np.ndarray):
            chunk = self._torch.from_numpy(chunk).to(self.rows.device)
        elif chunk.device != self.rows.device:
            chunk = chunk.to(self.rows.device, non_blocking=True)
        _ring_copy(self.rows, first, chunk)
        _ring_copy(self.finite, first, self._torch.isfinite(chunk).all(dim=1))

    def snapshot(self) -> DeviceSnapshot:
        """Device copies of the ring and its mask.

        Returns:
            A ``DeviceSnapshot`` for ``ready_rows``.
        """
        event = None
        if self.rows.device.type == "cuda":
            event = self._torch.cuda.Event()  # type: ignore[no-untyped-call]  # torch stub
        snap = DeviceSnapshot(self.rows.clone(), self.finite.clone(), event)
        if event is not None:
            event.record()
        return snap


def _ring_copy(buffer: Any, first: int, chunk: Any) -> None:
    size = buffer.shape[0]
    pos = first % size
    k = chunk.shape[0]
    head = min(k, size - pos)
    buffer[pos : pos + head] = chunk[:head]
    if k > head:
        buffer[: k - head] = chunk[head:]


def ready_rows(snapshot: Float32Array | DeviceSnapshot) -> tuple[Float32Array, int]:
    """Host rows of a ring snapshot without its non-finite rows (waits for the device).

    Returns:
        ``(rows [m, d] float32, number of rows dropped as NaN/inf)``.
    """
    if isinstance(snapshot, np.ndarray):
        return snapshot, 0
    if snapshot.event is not None:
        snapshot.event.synchronize()
    rows: Float32Array = snapshot.rows.cpu().numpy()
    finite = snapshot.finite.cpu().numpy()
    if finite.all():
        return rows, 0
    return rows[finite], int((~finite).sum())
