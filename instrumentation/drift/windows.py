"""The rows of recent calls, kept as the chunks they arrived in, cut into windows when one closes.

A call adds its pooled copy (``pooling.pooled_copy``) to a list: no ring-buffer write, no
finite check, nothing that waits for a device. When windows close, the chunks are joined once
(one ``torch.cat`` on their device) and each window is a slice of that; the rows still needed
by later windows stay as one chunk. Non-finite rows are dropped off the forward path, by
``ready_rows`` on the scoring thread, for host and device rows alike.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from instrumentation.drift.calibration import Float32Array
from instrumentation.drift.pooling import on_host


@dataclass(frozen=True)
class DeviceRows:
    """A window's rows still on their device, and (CUDA) an event recorded after they were made."""

    rows: Any
    event: Any = None


MAX_CHUNKS = 256
"""Chunks kept before they are joined into one: bounds the objects a long window holds."""


class RowChunks:
    """Pooled rows of consecutive samples, in arrival chunks, from sample index ``first`` on."""

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.first = 0  # sample index of the first row kept
        self.end = 0  # sample index after the last row kept

    def append(self, chunk: Any, end: int) -> None:
        """Add the rows of samples ``end - len(chunk) .. end - 1``; rows before ``first`` go."""
        start = end - chunk.shape[0]
        if start < self.first:  # rows no window will hold (a stride longer than the window)
            if end <= self.first:
                self.end = end
                return
            chunk = chunk[self.first - start :]
        if not self.chunks:
            self.first = end - chunk.shape[0]
        elif len(self.chunks) >= MAX_CHUNKS:  # one join per MAX_CHUNKS calls
            self.chunks = [_join(self.chunks)]
        self.chunks.append(chunk)
        self.end = end

    def cut(self, ends: list[int], size: int, keep_from: int) -> list[Float32Array | DeviceRows]:
        """Return the ``size``-row windows ending at each of ``ends``; keep rows from ``keep_from``.

        Returns:
            One window per end: host float32 rows, or ``DeviceRows`` for rows on an accelerator.
        """
        rows = _join(self.chunks)
        base = self.first
        windows = [_window(rows[max(e - size - base, 0) : e - base]) for e in ends]
        if keep_from >= self.end:
            self.chunks, self.first = [], keep_from
        else:
            cut_at = max(keep_from - base, 0)
            self.chunks, self.first = [rows[cut_at:]], base + cut_at
        return windows


def _join(chunks: list[Any]) -> Any:
    if len(chunks) == 1:
        return chunks[0]
    if all(isinstance(c, np.ndarray) for c in chunks):
        return np.concatenate(chunks)
    if not any(isinstance(c, np.ndarray) for c in chunks):
        torch = sys.modules["torch"]  # tensors are in hand, so torch is imported
        try:
            return torch.cat(chunks)
        except (RuntimeError, TypeError):  # tensors on several devices
            pass
    # Mixed inputs: everything to the host (this waits for a device; outputs of one module
    # normally come from one device and never get here).
    return np.concatenate([_host(c) for c in chunks])


def _host(rows: Any) -> Float32Array:
    if isinstance(rows, np.ndarray):
        return rows.astype(np.float32, copy=False)
    return np.asarray(rows.float().cpu().numpy(), dtype=np.float32)


def _window(rows: Any) -> Float32Array | DeviceRows:
    """Package one window's rows for the scoring thread without waiting for a device."""
    if isinstance(rows, np.ndarray) or on_host(rows):
        return _host(rows)
    event = None
    if rows.device.type == "cuda":
        torch = sys.modules["torch"]
        event = torch.cuda.Event()
        event.record()
    return DeviceRows(rows, event)


def ready_rows(window: Float32Array | DeviceRows) -> tuple[Float32Array, int]:
    """Host rows of a window without its non-finite rows (waits for the device).

    Returns:
        ``(rows [m, d] float32, number of rows dropped as NaN/inf)``.
    """
    if isinstance(window, DeviceRows):
        if window.event is not None:
            window.event.synchronize()
        rows = _host(window.rows)
    else:
        rows = window
    finite = np.isfinite(rows).all(axis=1)
    if finite.all():
        return rows, 0
    return rows[finite], int((~finite).sum())
