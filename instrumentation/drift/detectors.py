"""Drift detector catalog: calibrated two-sample statistics of a window against a reference."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from instrumentation.drift.binning import QuantileBinner
from instrumentation.drift.calibration import (
    Float32Array,
    FloatArray,
    per_part_rate,
    upper_quantile,
)
from instrumentation.drift.parts import LogScalePart, WhitenedMeanPart

MIN_REFERENCE = 256
"""Smallest reference measured to hold the false-alarm rate (5 +- 2 % at windows of 32-500)."""


class ReferenceTooSmallWarning(UserWarning):
    """A detector was calibrated on fewer rows than its window and rate need."""


def minimum_reference(window: int, false_alarm_rate: float) -> int:
    """The smallest reference (rows) calibrated at ``window`` and ``false_alarm_rate``.

    At least ``MIN_REFERENCE`` rows (``benchmarks/drift_bench.py --grid``: every detector near
    5 % at windows of 32 to 128 from 256 rows on), the window itself (a held-out half smaller
    than half the window understates the spread of some references: one in ten of 256-row
    references flagged 90 % of 500-row windows), and ``12.8 / rate`` rows (the null quantiles
    come from the held-out half: it needs several rows beyond the quantile).

    Returns:
        A row count.
    """
    return max(MIN_REFERENCE, window, math.ceil(12.8 / false_alarm_rate))


@dataclass(frozen=True)
class DetectorResult:
    """One window's verdict: ``score`` is 1.0 at the calibrated threshold, plus ``detail``."""

    score: float
    detail: dict[str, Any] = field(default_factory=dict)


class Detector:
    """Base of every catalog entry: calibrated on construction, then ``score(window)`` per window.

    Subclasses fit their statistics in ``__init__`` and set ``threshold`` from a null distribution
    drawn from the reference alone (a held-out split where a statistic was fitted on the data).
    Windows are scored in float32 (embeddings rarely carry more), references fitted in float64.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> None:
        ref = np.asarray(reference, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[0] < 8 or ref.shape[1] < 1:
            raise ValueError(f"reference must be a [n >= 8, d >= 1] array, got shape {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise ValueError("reference contains NaN or infinite values")
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        if n_boot < 20:
            raise ValueError(f"n_boot must be >= 20, got {n_boot}")
        smallest = self.minimum_rows(window, false_alarm_rate)
        # Repeated rows are one sample: a reference of a few captions cycled is that many rows.
        distinct = int(np.unique(ref, axis=0).shape[0])
        if distinct < smallest:
            repeated = f" ({distinct} distinct)" if distinct < ref.shape[0] else ""
            warnings.warn(
                f"drift reference of {ref.shape[0]} rows{repeated} is too small for windows of "
                f"{window} at a false-alarm rate of {false_alarm_rate:g}: the rate is not "
                f"guaranteed; use at least {smallest} distinct rows",
                ReferenceTooSmallWarning,
                stacklevel=3,
            )
        self.dim = ref.shape[1]
        self.window = window
        self.false_alarm_rate = false_alarm_rate
        self.n_boot = n_boot
        self.seed = seed
        self.threshold = 1.0

    @classmethod
    def minimum_rows(cls, window: int, false_alarm_rate: float) -> int:
        """The smallest reference this detector is calibrated on at ``window`` and rate.

        Returns:
            ``minimum_reference(window, false_alarm_rate)``; subclasses may differ.
        """
        return minimum_reference(window, false_alarm_rate)

    def score(self, window: FloatArray | Float32Array) -> DetectorResult:
        """Score one window of pooled embeddings ``[m, d]`` (m may differ from ``window``).

        Returns:
            The normalised score (> 1.0 means drift at the configured false-alarm rate).
        """
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the stream seen so far (windowed detectors keep no state: nothing to do)."""


DetectorFactory = Callable[..., Detector]
DETECTORS: dict[str, type[Detector]] = {}


def register_detector(name: str) -> Callable[[type[Detector]], type[Detector]]:
    """Class decorator adding a detector to ``DETECTORS`` under ``name``.

    Returns:
        The decorator; it raises ``ValueError`` when the name is already taken.
    """

    def decorate(cls: type[Detector]) -> type[Detector]:
        if name in DETECTORS:
            raise ValueError(f"drift detector {name!r} is already registered")
        cls.name = name
        DETECTORS[name] = cls
        return cls

    return decorate


def create_detector(name: str, reference: FloatArray, **kwargs: Any) -> Detector:
    """Build and calibrate the detector registered as ``name`` on ``reference`` ``[n, d]``.

    Returns:
        The calibrated detector.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid reference/options.
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        valid = ", ".join(sorted(DETECTORS))
        raise ValueError(f"unknown drift detector {name!r}; valid: {valid}") from None
    return cls(reference, **kwargs)


def _split(rng: np.random.Generator, n: int, fit_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = min(max(round(n * fit_fraction), 2), n - 4)
    return order[:cut], order[cut:]


def _as_window(window: FloatArray | Float32Array) -> Float32Array:
    return np.asarray(window, dtype=np.float32)


class _MeanAndScale(Detector):
    """Base of ``mean_shift`` and ``mmd_rff``: a whitened mean part and a scale part on features.

    ``_features`` maps rows to the space the parts work in (the identity for ``mean_shift``).
    The whitening is fitted on ``fit_fraction`` of the reference and both parts are calibrated
    on the rest (see ``WhitenedMeanPart``): calibrating on the fitted rows would make every real
    window look drifted. Scale part: |mean log variance ratio| over ``n_projections`` random
    whitened directions. Each part is tested at ``1 - sqrt(1 - alpha)`` (they are independent
    for Gaussian data), so their maximum has the configured false-alarm rate; ``detail`` gives
    both on the score's scale.
    """

    def _calibrate(
        self,
        features: FloatArray,
        rng: np.random.Generator,
        *,
        n_projections: int,
        fit_fraction: float,
    ) -> None:
        if not 0.0 < fit_fraction < 1.0:
            raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
        if n_projections < 1:
            raise ValueError(f"n_projections must be >= 1, got {n_projections}")
        fit_idx, held_idx = _split(rng, features.shape[0], fit_fraction)
        alpha_part = per_part_rate(self.false_alarm_rate, 2)
        self.mean_part = WhitenedMeanPart(features[fit_idx], features[held_idx], alpha_part)
        width = features.shape[1]
        # The leading whitened principal directions of the fitted rows (eigh sorts ascending):
        # along them new rows spread like the fitted ones. Random whitened directions also mix
        # in directions the fit barely saw, whose held-out variance then depends on which
        # points fell on which side of the split (a reference of 119 captions repeated: the
        # part alarmed on 43 % of windows of those captions).
        r = min(n_projections, width, max(4, len(fit_idx) // 4))
        self.scale_part = LogScalePart(
            self.mean_part.whiten64[-r:],
            features[held_idx],
            window=self.window,
            n_boot=self.n_boot,
            alpha=alpha_part,
            rng=rng,
        )

    def _features(self, x: Float32Array) -> Float32Array:
        return x

    def score(self, window: FloatArray | Float32Array) -> DetectorResult:
        """Score a window; ``detail`` holds the mean and scale parts on the same normalised scale.

        Returns:
            The normalised score and its parts.
        """
        phi = self._features(_as_window(window))
        mean_part, scale_part = self.mean_part(phi), self.scale_part(phi)
        return DetectorResult(
            score=max(mean_part, scale_part), detail={"mean": mean_part, "scale": scale_part}
        )


@register_detector("mean_shift")
class MeanShiftDetector(_MeanAndScale):
    """Hotelling-type mean statistic (Ledoit-Wolf whitening) combined with a scale statistic.

    Mean part: squared whitened distance of the window mean from the reference mean, strong on
    shifted means in any direction. Scale part: |mean log variance ratio| over ``n_projections``
    random whitened directions, which catches a variance change of a few percent. Calibration
    as described in ``_MeanAndScale``.
    """

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 1000,
        seed: int = 0,
        n_projections: int = 128,
        fit_fraction: float = 0.5,
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        ref = np.asarray(reference, dtype=np.float64)
        rng = np.random.default_rng(seed)
        self._calibrate(ref, rng, n_projections=n_projections, fit_fraction=fit_fraction)


@register_detector("mmd_rff")
class MMDRFFDetector(_MeanAndScale):
    """Kernel two-sample statistic on random Fourier features of an RBF kernel, whitened.

    The features ``cos(omega^T x + b)`` (bandwidth: median pairwise reference distance)
    approximate the kernel's mean embedding, and the squared distance of window and reference
    feature means is the (linear-time) MMD^2 of that kernel. Here that distance is weighted by
    the inverse Ledoit-Wolf covariance of the features (a kernel Hotelling statistic) and paired
    with a scale part on the features, calibrated as in ``_MeanAndScale``: the plain MMD lets a
    few high-variance feature directions drown the rest and flagged a variance change of x1.05 at
    d = 384 in 10-15 % of windows, this one in over 90 %. Cost per window: one
    ``[m, d] x [d, n_features]`` float32 product, a cosine and two small products.
    """

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 1000,
        seed: int = 0,
        n_features: int = 256,
        n_projections: int = 64,
        fit_fraction: float = 0.5,
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        if n_features < 2:
            raise ValueError(f"n_features must be >= 2, got {n_features}")
        ref = np.asarray(reference, dtype=np.float64)
        rng = np.random.default_rng(seed)
        self.bandwidth = _median_distance(rng, ref)
        # Centring first keeps float32 products accurate for embeddings far from the origin.
        self.center = ref.mean(axis=0).astype(np.float32)
        omega = rng.standard_normal((self.dim, n_features)) / self.bandwidth
        self.omega = omega.astype(np.float32)
        self.phase = rng.uniform(0.0, 2.0 * math.pi, n_features).astype(np.float32)
        phi = self._features(ref.astype(np.float32)).astype(np.float64)
        self._calibrate(phi, rng, n_projections=n_projections, fit_fraction=fit_fraction)

    def _features(self, x: Float32Array) -> Float32Array:
        # The sqrt(2 / n_features) factor of the kernel approximation cancels after whitening.
        proj: Float32Array = (x - self.center) @ self.omega
        proj += self.phase
        np.cos(proj, out=proj)
        return proj


def _median_distance(rng: np.random.Generator, x: FloatArray, max_rows: int = 500) -> float:
    rows = x if x.shape[0] <= max_rows else x[rng.choice(x.shape[0], max_rows, replace=False)]
    sq = np.einsum("ij,ij->i", rows, rows)
    d2 = sq[:, None] + sq[None, :] - 2.0 * rows @ rows.T
    upper = d2[np.triu_indices(rows.shape[0], k=1)]
    med = math.sqrt(max(float(np.median(upper)), 0.0))
    return med if med > 0.0 else 1.0


def kolmogorov_sf(x: FloatArray) -> FloatArray:
    """Asymptotic survival function of the Kolmogorov distribution, ``P(K > x)``.

    ``scipy.special.kolmogorov``, imported on first use: ``scipy.special`` takes longer to
    import than numpy itself, and ``import instrumentation`` does not need it.

    Returns:
        Probabilities in [0, 1], elementwise.
    """
    from scipy.special import kolmogorov

    p: FloatArray = np.asarray(kolmogorov(np.asarray(x, dtype=np.float64)), dtype=np.float64)
    return p


@register_detector("ks")
class KSDetector(Detector):
    """Per-dimension two-sample Kolmogorov-Smirnov tests with a max-statistic correction.

    Values are binned at ``n_bins`` reference quantiles per dimension (``QuantileBinner``), so a
    window costs a table lookup and a histogram instead of a sort and a search, and the KS
    distance is taken at those quantiles (a resolution of ``1 / n_bins`` in the CDF). The
    statistic is the largest scaled distance over dimensions; its threshold comes from random
    splits of the reference into a window-sized part and the rest (a permutation max-T
    correction: it controls the family-wise error like Bonferroni but respects correlated
    dimensions, ties and discrete values). ``detail`` lists the dimensions whose own scaled
    distance exceeds the threshold, strongest first, and the Bonferroni p-value.
    """

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 500,
        seed: int = 0,
        n_bins: int = 128,
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        ref = np.asarray(reference, dtype=np.float64)
        n = ref.shape[0]
        rng = np.random.default_rng(seed)
        self.binner = QuantileBinner(ref, n_bins=n_bins)
        self.n_ref = n
        ids = self.binner.bin_ids(ref.astype(np.float32))
        total = np.cumsum(self.binner.counts(ids), axis=1)
        self.ref_cdf = total / n  # [d, n_bins]

        # Null: split the reference into a window-sized part and the rest; the scaled distance
        # has (asymptotically) the same distribution for (window, rest) as for (window, n).
        m = min(window, n // 2)
        rest = n - m
        null = np.empty(n_boot)
        for b in range(n_boot):
            part = np.cumsum(self.binner.counts(ids[:, rng.choice(n, m, replace=False)]), axis=1)
            gap = np.abs(part / m - (total - part) / rest).max()
            null[b] = float(gap) * math.sqrt(m * rest / n)
        self.threshold = upper_quantile(null, false_alarm_rate)

    def distances(self, window: FloatArray | Float32Array) -> FloatArray:
        """Scaled KS distance ``sqrt(m n / (m + n)) * D`` per dimension, at the bin edges.

        Returns:
            ``[d]`` array.
        """
        x = np.asarray(window)
        m = x.shape[0]
        cdf = np.cumsum(self.binner.counts(self.binner.bin_ids(x)), axis=1) / m
        d: FloatArray = np.abs(cdf - self.ref_cdf).max(axis=1)
        return d * math.sqrt(m * self.n_ref / (m + self.n_ref))

    def score(self, window: FloatArray | Float32Array) -> DetectorResult:
        """Score a window; ``detail`` names the moved dimensions (strongest first).

        Returns:
            The normalised score, ``moved_dims`` and ``bonferroni_p``.
        """
        scaled = self.distances(window)
        moved = np.flatnonzero(scaled > self.threshold)
        moved = moved[np.argsort(-scaled[moved])]
        top = float(scaled.max())
        p_min = float(kolmogorov_sf(np.array([top]))[0])
        return DetectorResult(
            score=top / self.threshold,
            detail={
                "moved_dims": [int(j) for j in moved],
                "bonferroni_p": min(1.0, p_min * self.dim),
            },
        )
