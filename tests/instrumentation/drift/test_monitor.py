"""Tests of the streaming drift monitor: windows, strides, worker thread, bad input, logs."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from structlog.testing import capture_logs

from instrumentation.drift import Detector as BaseDetector
from instrumentation.drift import (
    DetectorResult,
    DriftMonitor,
    DriftSnapshot,
    ReferenceProfile,
    build_monitors,
    create_detector,
)
from instrumentation.drift import windows as drift_windows
from tests.instrumentation._host_reads import HostReads

D = 8


class RecordingDetector(BaseDetector):
    """A real detector wrapper that records every window it scores (and the scoring thread)."""

    name = "recording"

    def __init__(self, inner: BaseDetector) -> None:
        self.inner = inner
        self.dim = inner.dim
        self.window = inner.window
        self.windows: list[np.ndarray] = []
        self.threads: list[int] = []

    def score(self, window: np.ndarray) -> DetectorResult:
        self.windows.append(window.copy())
        self.threads.append(threading.get_ident())
        return self.inner.score(window)


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """Standard normal reference rows."""
    return np.random.default_rng(0).standard_normal((200, D))


def _monitor(
    reference: np.ndarray, window: int = 10, **kwargs: object
) -> tuple[DriftMonitor, RecordingDetector]:
    detector = RecordingDetector(create_detector("mean_shift", reference, window=window, n_boot=50))
    kwargs.setdefault("background", False)
    monitor = DriftMonitor(
        detector, module="enc", model_name="m", version=3, window=window, **kwargs
    )  # type: ignore[arg-type]
    return monitor, detector


class TestWindows:
    def test_tumbling_windows_across_partial_batches(self, reference: np.ndarray) -> None:
        """Batches of 7 rows fill windows of 10 at samples 10, 20, 30 with the right rows."""
        monitor, detector = _monitor(reference)
        rows = np.arange(35 * D, dtype=np.float64).reshape(35, D)
        for start in range(0, 35, 7):
            monitor.observe(torch.from_numpy(rows[start : start + 7]))
        snap = monitor.snapshot()
        assert (snap.samples, snap.windows) == (35, 3)
        for i, window in enumerate(detector.windows):
            expected = rows[10 * i : 10 * (i + 1)]
            assert sorted(map(tuple, window)) == sorted(map(tuple, expected))

    def test_sliding_windows_with_stride(self, reference: np.ndarray) -> None:
        """Window 10, stride 4: windows end at samples 10, 14, 18 and hold the last 10 rows."""
        monitor, detector = _monitor(reference, stride=4)
        rows = np.arange(19 * D, dtype=np.float64).reshape(19, D)
        for row in rows:
            monitor.observe(row)
        assert monitor.snapshot().windows == 3
        for end, window in zip((10, 14, 18), detector.windows, strict=True):
            assert sorted(map(tuple, window)) == sorted(map(tuple, rows[end - 10 : end]))

    def test_stride_larger_than_window(self, reference: np.ndarray) -> None:
        """Window 10, stride 25 in one big batch: windows end at 10 and 35."""
        monitor, detector = _monitor(reference, stride=25)
        rows = np.arange(40 * D, dtype=np.float64).reshape(40, D)
        monitor.observe(rows)
        assert monitor.snapshot().windows == 2
        assert sorted(map(tuple, detector.windows[1])) == sorted(map(tuple, rows[25:35]))

    def test_a_long_window_of_single_rows_holds_few_objects(self, reference: np.ndarray) -> None:
        """Chunks are joined every MAX_CHUNKS calls; the window still holds every row in order."""
        monitor, detector = _monitor(reference, window=3 * drift_windows.MAX_CHUNKS + 5)
        rows = torch.randn(monitor.window, D)
        for i, row in enumerate(rows):
            monitor.observe(row)
            assert len(monitor._rows.chunks) <= drift_windows.MAX_CHUNKS
            if i == monitor.window - 2:
                assert detector.windows == []
        assert monitor.snapshot().windows == 1
        np.testing.assert_array_equal(detector.windows[0], rows.numpy())

    def test_tensors_and_arrays_in_one_window(self, reference: np.ndarray) -> None:
        """A window filled by tensors of two dtypes and an array holds every row, as float32."""
        monitor, detector = _monitor(reference)
        first = torch.randn(4, D, dtype=torch.float64)
        second = torch.randn(3, D).to(torch.bfloat16)
        third = np.random.default_rng(2).standard_normal((3, D))
        for rows in (first, second, third):
            monitor.observe(rows)
        assert monitor.snapshot().windows == 1
        window = detector.windows[0]
        assert window.dtype == np.float32
        expected = np.concatenate([first.float().numpy(), second.float().numpy(),
                                   third.astype(np.float32)])
        np.testing.assert_array_equal(window, expected)

    def test_pooling_of_token_outputs(self, reference: np.ndarray) -> None:
        """[B, T, D] outputs pool to the CLS token or the token mean; tuples use element 0."""
        hidden = torch.randn(10, 5, D)
        cls_monitor, cls_det = _monitor(reference)
        cls_monitor.observe((hidden, "ignored"))
        mean_monitor, mean_det = _monitor(reference, pooling="mean")
        mean_monitor.observe(hidden)
        np.testing.assert_allclose(
            np.sort(cls_det.windows[0], 0), np.sort(hidden[:, 0].numpy(), 0), rtol=1e-6
        )
        np.testing.assert_allclose(
            np.sort(mean_det.windows[0], 0), np.sort(hidden.mean(1).numpy(), 0), rtol=1e-5
        )


class TestBadInput:
    def test_observe_never_raises_and_counts(self, reference: np.ndarray) -> None:
        """Wrong dimension, NaN rows and unreadable outputs are counted, not raised."""
        monitor, detector = _monitor(reference)
        monitor.observe(torch.randn(4, D + 1))
        bad = torch.randn(6, D)
        bad[1, 2] = float("nan")
        bad[4, 0] = float("inf")
        monitor.observe(bad)
        monitor.observe("garbage")
        monitor.observe(None)
        monitor.observe(torch.randn(2, 2, 2, 2))
        monitor.observe(())
        snap = monitor.snapshot()
        assert snap.invalid_samples == 4  # the wrong dimension, at once
        assert snap.samples == 6
        assert snap.errors == 4
        assert snap.windows == 0
        assert snap.score is None
        # Non-finite rows are dropped off the forward path, when their window is scored.
        good = np.random.default_rng(1).standard_normal((4, D))
        monitor.observe(good)
        snap = monitor.snapshot()
        assert (snap.samples, snap.windows, snap.invalid_samples) == (10, 1, 4 + 2)
        kept = [0, 2, 3, 5]
        expected = np.concatenate([bad.numpy()[kept], good.astype(np.float32)])
        np.testing.assert_array_equal(detector.windows[0], expected)

    def test_later_in_place_changes_to_an_output_are_not_seen(
        self, reference: np.ndarray
    ) -> None:
        """The monitor keeps a copy: a caller changing its output afterwards changes no window."""
        monitor, detector = _monitor(reference, window=4)
        hidden = torch.randn(4, 3, D)
        expected = hidden[:, 0].clone().numpy()
        monitor.observe(hidden[:2])
        hidden.mul_(100)
        monitor.observe(hidden[2:] / 100)
        np.testing.assert_array_equal(detector.windows[0][:2], expected[:2])
        np.testing.assert_allclose(detector.windows[0][2:], expected[2:], rtol=1e-6)

    @pytest.mark.parametrize(
        ("kwargs", "message"), [({"stride": 0}, "stride"), ({"pooling": "max"}, "pooling")]
    )
    def test_bad_configuration_is_refused(
        self, reference: np.ndarray, kwargs: dict[str, object], message: str
    ) -> None:
        """Invalid stride or pooling raise at construction."""
        with pytest.raises(ValueError, match=message):
            _monitor(reference, **kwargs)


class TestDevicePath:
    def test_meta_tensors_never_reach_the_host_before_window_close(
        self, reference: np.ndarray
    ) -> None:
        """Meta tensors (which cannot be read) pass window-1 rows cleanly; the close reads once."""
        monitor, detector = _monitor(reference)
        for _ in range(3):
            monitor.observe(torch.randn(3, 5, D, device="meta"))
        snap = monitor.snapshot()
        assert (snap.samples, snap.errors, snap.invalid_samples) == (9, 0, 0)
        monitor.observe(torch.randn(1, 5, D, device="meta"))
        snap = monitor.snapshot()
        assert (snap.samples, snap.windows, snap.errors) == (10, 0, 1)  # the host copy failed
        assert detector.windows == []

    def test_device_rows_are_copied_to_the_host_once_per_window(
        self, reference: np.ndarray, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Via the device path only window close reads tensors; rows and NaN drops are right."""
        monkeypatch.setattr(drift_windows, "on_host", lambda tensor: False)
        monitor, detector = _monitor(reference, stride=5)
        rows = torch.arange(15 * D, dtype=torch.float64).reshape(15, D)
        rows[12, 1] = float("nan")
        per_call: list[list[str]] = []
        for start in range(0, 15, 3):
            with HostReads() as counter:
                monitor.observe(rows[start : start + 3])
            per_call.append(counter.calls)
        assert per_call[:3] == [[], [], []]
        at_close = ["cpu", "numpy"]  # the window's rows, once
        assert sorted(per_call[3]) == at_close  # window 1 closes at sample 10
        assert sorted(per_call[4]) == at_close  # window 2 closes at sample 15
        assert monitor.snapshot().windows == 2
        np.testing.assert_array_equal(
            np.sort(detector.windows[0], 0), np.sort(rows[:10].numpy(), 0)
        )
        assert detector.windows[1].shape == (9, D)  # the NaN row was dropped at close
        assert monitor.snapshot().invalid_samples == 1


class TestBackground:
    def test_scores_off_the_calling_thread(self, reference: np.ndarray) -> None:
        """In background mode windows are scored on the worker and the snapshot updates."""
        done = threading.Event()
        seen: list[DriftSnapshot] = []

        def on_window(snap: DriftSnapshot) -> None:
            seen.append(snap)
            done.set()

        monitor, detector = _monitor(reference, background=True, on_window=on_window)
        try:
            monitor.observe(np.random.default_rng(1).standard_normal((10, D)))
            assert done.wait(timeout=30)
            assert monitor.flush(timeout=30)
            assert detector.threads == [monitor._worker.ident]  # type: ignore[union-attr]
            assert detector.threads[0] != threading.get_ident()
            assert seen[0].windows == 1
            assert monitor.snapshot().score == seen[0].score
        finally:
            monitor.close()

    def test_windows_are_skipped_when_the_worker_is_behind(self, reference: np.ndarray) -> None:
        """With the worker blocked, extra windows are dropped and counted, never queued forever."""
        release = threading.Event()
        started = threading.Event()

        class Blocking(RecordingDetector):
            def score(self, window: np.ndarray) -> DetectorResult:
                started.set()
                release.wait(timeout=30)
                return super().score(window)

        inner = create_detector("mean_shift", reference, window=10, n_boot=50)
        monitor = DriftMonitor(Blocking(inner), module="enc", model_name="m", version=1, window=10)
        try:
            rows = np.random.default_rng(2).standard_normal((10, D))
            monitor.observe(rows)
            assert started.wait(timeout=30)
            for _ in range(4):
                monitor.observe(rows)  # one fits the queue, three are skipped
            assert monitor.snapshot().skipped_windows == 3
            release.set()
            assert monitor.flush(timeout=30)
            assert monitor.snapshot().windows == 2
        finally:
            release.set()
            monitor.close()


class TestAlarmsAndLogs:
    def test_logs_once_on_crossing_and_once_on_recovery(self, reference: np.ndarray) -> None:
        """drift_detected is logged when a window crosses, drift_resolved when it goes back."""
        rng = np.random.default_rng(3)
        detector = create_detector("mean_shift", reference, window=50, n_boot=50)
        monitor = DriftMonitor(
            detector, module="enc", model_name="m", version=3, window=50, background=False
        )
        with capture_logs() as logs:
            for shift in (0.0, 3.0, 3.0, 0.0, 0.0):
                monitor.observe(rng.standard_normal((50, D)) + shift)
        events = [e for e in logs if e["event"].startswith("drift_")]
        assert [e["event"] for e in events] == ["drift_detected", "drift_resolved"]
        assert events[0]["module"] == "enc"
        assert events[0]["version"] == "3"
        assert events[0]["detector"] == "mean_shift"
        assert events[0]["score"] > 1.0
        snap = monitor.snapshot()
        assert (snap.windows, snap.alarms, snap.alarm) == (5, 2, False)


class TestBuildMonitors:
    def test_one_monitor_per_profile_module(self, reference: np.ndarray) -> None:
        """build_monitors calibrates a monitor per module, pooling like the profile."""
        profile = ReferenceProfile({"a": reference, "b.c": reference[:, :4]}, pooling="mean")
        monitors = build_monitors(
            profile,
            detector="ks",
            window=20,
            model_name="m",
            version=2,
            background=False,
            n_boot=30,
        )
        assert set(monitors) == {"a", "b.c"}
        assert monitors["b.c"].detector.dim == 4
        assert monitors["a"].pooling == "mean"
        monitors["b.c"].observe(torch.randn(20, 3, 4))
        assert monitors["b.c"].snapshot().windows == 1

    def test_unknown_detector(self, reference: np.ndarray) -> None:
        """An unknown detector name is refused with the valid names."""
        profile = ReferenceProfile({"a": reference})
        with pytest.raises(ValueError, match="mmd_rff"):
            build_monitors(profile, detector="x", model_name="m", version=1)
