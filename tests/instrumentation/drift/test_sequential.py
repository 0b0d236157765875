"""Tests of the sequential drift detector: run length under no drift, delays, streaming state."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from instrumentation.drift import (
    DriftMonitor,
    ReferenceProfile,
    ReferenceTooSmallWarning,
    SequentialDetector,
    build_monitors,
    create_detector,
)

D = 16


def _mixing(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((D, D)) * rng.uniform(0.2, 1.0, D)


def _run_length(detector: SequentialDetector, draw, cap: int) -> int:
    """Rows fed until the first score above 1.0 (``cap`` when none), in calls of 24 rows."""
    seen = 0
    while seen < cap:
        rows = draw(24)
        for i in range(0, 24, detector.chunk):
            if detector.score(rows[i : i + detector.chunk]).score > 1.0:
                return seen + i + detector.chunk
        seen += 24
    return cap


class TestCalibration:
    def test_null_run_length_matches_the_target(self) -> None:
        """Mean rows to the first false alarm over 80 streams (fresh reference each) is the ERL.

        Run lengths are roughly geometric, so 80 streams give a standard error of about 11 %;
        the bounds (0.7-1.4 x target) fail for a calibration off by a third or more.
        """
        mixing = _mixing(1)
        target = 400
        lengths = []
        for k in range(80):
            rng = np.random.default_rng([k, 2])
            reference = rng.standard_normal((600, D)) @ mixing.T
            detector = SequentialDetector(reference, expected_run_length=target, n_boot=300, seed=k)
            lengths.append(
                _run_length(
                    detector, lambda m, r=rng: r.standard_normal((m, D)) @ mixing.T, 20 * target
                )
            )
        assert 0.7 * target < np.mean(lengths) < 1.4 * target

    def test_default_run_length_is_window_over_rate(self) -> None:
        """Without ``expected_run_length`` the target is ``window / false_alarm_rate``."""
        reference = np.random.default_rng(0).standard_normal((600, D))
        detector = create_detector("sequential", reference, window=100, false_alarm_rate=0.02)
        assert detector.expected_run_length == pytest.approx(5000.0)
        assert detector.window == detector.chunk  # a monitor hands it every chunk

    def test_a_reference_too_small_for_a_long_target_warns(self) -> None:
        """300 rows hold a target of 500 but not of 10,000: the monitor says so when built."""
        reference = np.random.default_rng(0).standard_normal((300, D))
        with warnings.catch_warnings():
            warnings.simplefilter("error", ReferenceTooSmallWarning)
            SequentialDetector(reference, expected_run_length=500, n_boot=100)
        with pytest.warns(ReferenceTooSmallWarning, match="at least 512 rows"):
            SequentialDetector(reference, expected_run_length=10_000, n_boot=100)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"chunk": 1}, "chunk"),
            ({"expected_run_length": 10.0}, "expected_run_length"),
            ({"level_bonus": 1.5}, "level_bonus"),
        ],
    )
    def test_bad_options_are_clear_errors(self, kwargs: dict[str, float], message: str) -> None:
        """Options out of range raise ValueError naming them."""
        reference = np.random.default_rng(0).standard_normal((300, D))
        with pytest.raises(ValueError, match=message):
            SequentialDetector(reference, **kwargs)


@pytest.fixture(scope="module")
def setup() -> tuple[np.ndarray, np.ndarray]:
    """A mixing matrix and a 1,000-row reference drawn with it."""
    mixing = _mixing(3)
    rng = np.random.default_rng(4)
    return mixing, rng.standard_normal((1000, D)) @ mixing.T


class TestDetection:
    def test_variance_change_alarms_within_a_few_chunks(self, setup: tuple) -> None:
        """Variance x1.5 on every dimension is flagged within 64 rows, at an ERL of 10,000."""
        mixing, reference = setup
        detector = SequentialDetector(reference, expected_run_length=10_000)
        rng = np.random.default_rng(5)
        drawn = _run_length(
            detector, lambda m: rng.standard_normal((m, D)) * np.sqrt(1.5) @ mixing.T, 2000
        )
        assert drawn <= 64

    def test_mean_shift_alarms_and_names_the_part(self, setup: tuple) -> None:
        """A half-sigma shift of every dimension alarms on the mean part."""
        mixing, reference = setup
        detector = SequentialDetector(reference, expected_run_length=10_000)
        rng = np.random.default_rng(6)
        sigma = np.sqrt((mixing**2).sum(axis=1))
        result = detector.score(rng.standard_normal((64, D)) @ mixing.T + 0.5 * sigma)
        assert result.score > 1.0
        assert result.detail["mean"] == result.score

    def test_score_does_not_depend_on_how_rows_are_split_into_calls(self, setup: tuple) -> None:
        """Rows fed in uneven calls leave the same state as one call; reset forgets them."""
        mixing, reference = setup
        rows = np.random.default_rng(7).standard_normal((203, D)) @ mixing.T
        one = SequentialDetector(reference, seed=1)
        many = SequentialDetector(reference, seed=1)
        one.score(rows)
        for start, stop in ((0, 3), (3, 50), (50, 51), (51, 203)):
            many.score(rows[start:stop])
        empty = np.empty((0, D))
        assert one.score(empty).score == pytest.approx(many.score(empty).score, rel=1e-6)
        assert many.score(empty).detail["samples"] == 203
        many.reset()
        assert many.score(empty).score == 0.0


class TestMonitor:
    def test_monitor_feeds_every_chunk(self) -> None:
        """``build_monitors(detector="sequential")`` scores every chunk of rows it observes."""
        rng = np.random.default_rng(8)
        profile = ReferenceProfile(embeddings={"enc": rng.standard_normal((600, D))}, pooling="cls")
        monitors = build_monitors(
            profile, detector="sequential", model_name="m", version=1, background=False
        )
        monitor: DriftMonitor = monitors["enc"]
        assert monitor.window == monitor.detector.window == 8
        monitor.observe(rng.standard_normal((20, D)).astype(np.float32))
        snap = monitor.snapshot()
        assert snap.windows == 2
        assert snap.detail["samples"] == 16
        monitor.observe(rng.standard_normal((64, D)).astype(np.float32) * 3.0)
        assert monitor.snapshot().alarm
