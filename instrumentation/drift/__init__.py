"""Reference profiles and streaming drift detectors (numpy; torch only to capture a profile)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from instrumentation.drift.detectors import (
    DETECTORS,
    MIN_REFERENCE,
    Detector,
    DetectorResult,
    KSDetector,
    MeanShiftDetector,
    MMDRFFDetector,
    ReferenceTooSmallWarning,
    create_detector,
    minimum_reference,
    register_detector,
)
from instrumentation.drift.monitor import DriftMonitor, DriftSnapshot
from instrumentation.drift.reference import ReferenceProfile, capture_reference
from instrumentation.drift.sequential import SequentialDetector

__all__ = [
    "DETECTORS",
    "MIN_REFERENCE",
    "Detector",
    "DetectorResult",
    "DriftMonitor",
    "DriftSnapshot",
    "KSDetector",
    "MMDRFFDetector",
    "MeanShiftDetector",
    "ReferenceProfile",
    "ReferenceTooSmallWarning",
    "SequentialDetector",
    "build_monitors",
    "capture_reference",
    "create_detector",
    "minimum_reference",
    "register_detector",
]


def build_monitors(
    profile: ReferenceProfile,
    *,
    detector: str = "mean_shift",
    window: int = 500,
    stride: int | None = None,
    false_alarm_rate: float = 0.05,
    model_name: str,
    version: str | int,
    background: bool = True,
    seed: int = 0,
    on_window: Callable[[DriftSnapshot], None] | None = None,
    **detector_options: Any,
) -> dict[str, DriftMonitor]:
    """One calibrated monitor per module of ``profile``, ready for ``instrument(..., drift=...)``.

    ``detector_options`` go to the detector (e.g. ``n_boot``, ``fit_fraction``, ``n_projections``
    and ``n_features`` for ``mean_shift``/``mmd_rff``, ``n_bins`` for ``ks``,
    ``expected_run_length`` and ``chunk`` for ``sequential``, whose monitors hand it every
    ``chunk`` rows; its expected run length defaults to ``window / false_alarm_rate``).

    Returns:
        ``{module path: DriftMonitor}`` pooling like the profile was captured.

    Raises:
        ValueError: unknown detector (lists the valid ones) or invalid window/stride/rate.
    """
    return {
        module: DriftMonitor(
            create_detector(
                detector,
                embeddings,
                window=window,
                false_alarm_rate=false_alarm_rate,
                seed=seed,
                **detector_options,
            ),
            module=module,
            model_name=model_name,
            version=version,
            window=None,  # the detector's: ``window`` for windowed ones, ``chunk`` for sequential
            stride=stride,
            pooling=profile.pooling,
            background=background,
            on_window=on_window,
        )
        for module, embeddings in profile.embeddings.items()
    }
