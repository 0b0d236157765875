"""Streaming drift monitor: windows of pooled outputs scored by a detector off the forward path."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from instrumentation.drift.calibration import Float32Array
from instrumentation.drift.detectors import Detector
from instrumentation.drift.pooling import POOLINGS, pooled_copy
from instrumentation.drift.windows import DeviceRows, RowChunks, ready_rows

_log = structlog.get_logger("mmgov.drift")
_STOP = object()


@dataclass(frozen=True)
class DriftSnapshot:
    """State of one monitor: last window's ``score`` (1.0 = threshold, None before any window).

    ``windows`` scored, ``alarms`` (windows above threshold), ``samples`` accepted (rows of the
    right dimension), ``skipped_windows`` (dropped because the worker was behind),
    ``invalid_samples`` (wrong dimension when observed; non-finite rows once their window is
    scored), ``errors`` (outputs that could not be read, failed scorings),
    ``alarm`` (last window above threshold) and the detector's ``detail`` for the last window.
    """

    score: float | None
    windows: int
    alarms: int
    samples: int = 0
    skipped_windows: int = 0
    invalid_samples: int = 0
    errors: int = 0
    alarm: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)


class DriftMonitor:
    """Collects one module's pooled outputs into windows and scores each full window.

    ``observe`` is the only method on the forward path and never raises: it makes a pooled
    copy of the output with one torch op and appends it to a list (O(d) per sample). Every
    ``stride`` samples after the first ``window`` (``stride`` defaults to ``window``: tumbling
    windows) the rows are joined once and the window is handed to a worker thread; if the worker
    is still busy with the previous window the new one is skipped and counted.
    ``background=False`` scores on the calling thread (tests, benchmarks).

    Outputs on an accelerator are pooled and kept on their device: the forward path never waits
    for the device (no host copy, no data-dependent branch); the worker brings a closed window
    to the host. Rows with NaN/inf are dropped and counted by the worker too, not per call, for
    host and device outputs alike (a window with such rows is scored on the rest).
    """

    def __init__(
        self,
        detector: Detector,
        *,
        module: str,
        model_name: str,
        version: str | int,
        window: int | None = None,
        stride: int | None = None,
        pooling: str = "cls",
        background: bool = True,
        on_window: Callable[[DriftSnapshot], None] | None = None,
    ) -> None:
        size = detector.window if window is None else window
        if size < 2:
            raise ValueError(f"window must be >= 2, got {size}")
        step = size if stride is None else stride
        if step < 1:
            raise ValueError(f"stride must be >= 1, got {step}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.detector = detector
        self.module = module
        self.model_name = model_name
        self.version = str(version)
        self.window = size
        self.stride = step
        self.pooling = pooling
        self.background = background
        self._on_window = on_window
        self._rows = RowChunks()
        self._seen = 0  # accepted samples
        self._next_emit = size
        self._buffer_lock = threading.Lock()
        self._state_lock = threading.Condition()
        self._score: float | None = None
        self._detail: Mapping[str, Any] = {}
        self._alarm = False
        self._windows = 0
        self._alarms = 0
        self._skipped = 0
        self._invalid = 0
        self._errors = 0
        self._pending = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._worker: threading.Thread | None = None
        if background:
            self._worker = threading.Thread(
                target=self._run, name=f"mmgov-drift-{module}", daemon=True
            )
            self._worker.start()

    def observe(self, output: Any) -> None:
        """Add a module output (tensor ``[B, T, D]`` or ``[B, D]``, tuple, ModelOutput, array).

        Rows of the wrong dimension are dropped and counted at once, rows with NaN/inf when
        their window is scored; unreadable outputs are counted as errors. Never raises.
        """
        try:
            rows = pooled_copy(output, self.pooling)
            n, dim = rows.shape
            if dim != self.detector.dim:
                with self._state_lock:
                    self._invalid += n
                return
            with self._buffer_lock:
                seen = self._seen + n
                self._seen = seen
                self._rows.append(rows, seen)
                if seen < self._next_emit:
                    return
                ends = []
                while self._next_emit <= seen:
                    ends.append(self._next_emit)
                    self._next_emit += self.stride
                ready = self._rows.cut(ends, self.window, keep_from=self._next_emit - self.window)
        except Exception:  # unreadable output, or a bug here: never reaches the model's forward
            with self._state_lock:
                self._errors += 1
            return
        for window in ready:
            self._dispatch(window)

    def _dispatch(self, window: Float32Array | DeviceRows) -> None:
        if not self.background:
            self._score_window(window)
            return
        with self._state_lock:
            try:
                self._queue.put_nowait(window)
            except queue.Full:
                self._skipped += 1
                return
            self._pending += 1

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._score_window(item)
            finally:
                with self._state_lock:
                    self._pending -= 1
                    self._state_lock.notify_all()

    def _score_window(self, snapshot: Float32Array | DeviceRows) -> None:
        try:
            window, invalid = ready_rows(snapshot)
            if invalid:
                with self._state_lock:
                    self._invalid += invalid
            if window.shape[0] < 2:
                return
            result = self.detector.score(window)
        except Exception:
            with self._state_lock:
                self._errors += 1
            _log.exception("drift_scoring_failed", **self._labels())
            return
        alarm = result.score > 1.0
        with self._state_lock:
            changed = alarm != self._alarm
            self._score = result.score
            self._detail = result.detail
            self._alarm = alarm
            self._windows += 1
            self._alarms += int(alarm)
        if changed:
            event = "drift_detected" if alarm else "drift_resolved"
            log = _log.warning if alarm else _log.info
            log(event, score=result.score, **self._labels())
        if self._on_window is not None:
            try:
                self._on_window(self.snapshot())
            except Exception:
                _log.exception("drift_callback_failed", **self._labels())

    def _labels(self) -> dict[str, str]:
        return {
            "model": self.model_name,
            "version": self.version,
            "module": self.module,
            "detector": self.detector.name,
        }

    def snapshot(self) -> DriftSnapshot:
        """The monitor's current counters and last score (cheap; safe from any thread).

        Returns:
            A frozen ``DriftSnapshot``.
        """
        with self._state_lock:
            samples = self._seen
            return DriftSnapshot(
                score=self._score,
                windows=self._windows,
                alarms=self._alarms,
                samples=samples,
                skipped_windows=self._skipped,
                invalid_samples=self._invalid,
                errors=self._errors,
                alarm=self._alarm,
                detail=dict(self._detail),
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every window handed to the worker has been scored.

        Returns:
            True when idle, False when ``timeout`` seconds passed first.
        """
        with self._state_lock:
            return self._state_lock.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker thread after the windows already queued (idempotent)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._queue.put(_STOP)
        worker.join(timeout)
