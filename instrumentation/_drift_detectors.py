"""Drift detector catalog: calibrated two-sample statistics of a window against a reference."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from instrumentation._drift_calibration import (
    FloatArray,
    bootstrap_counts,
    inverse_sqrt,
    ledoit_wolf,
    upper_quantile,
)


@dataclass(frozen=True)
class DetectorResult:
    """One window's verdict: ``score`` is 1.0 at the calibrated threshold, plus ``detail``."""

    score: float
    detail: dict[str, Any] = field(default_factory=dict)


class Detector:
    """Base of every catalog entry: calibrated on construction, then ``score(window)`` per window.

    Subclasses fit their statistics in ``__init__`` and set ``threshold`` from a null distribution
    drawn from the reference alone (a held-out split where a statistic was fitted on the data).
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
        if ref.ndim != 2 or ref.shape[0] < 4 or ref.shape[1] < 1:
            raise ValueError(f"reference must be a [n >= 4, d >= 1] array, got shape {ref.shape}")
        if not np.all(np.isfinite(ref)):
            raise ValueError("reference contains NaN or infinite values")
        if window < 2:
            raise ValueError(f"window must be >= 2, got {window}")
        if not 0.0 < false_alarm_rate < 1.0:
            raise ValueError(f"false_alarm_rate must be in (0, 1), got {false_alarm_rate}")
        if n_boot < 20:
            raise ValueError(f"n_boot must be >= 20, got {n_boot}")
        self.dim = ref.shape[1]
        self.window = window
        self.false_alarm_rate = false_alarm_rate
        self.n_boot = n_boot
        self.seed = seed
        self.threshold = 1.0

    def score(self, window: FloatArray) -> DetectorResult:
        """Score one window of pooled embeddings ``[m, d]`` (m may differ from ``window``).

        Returns:
            The normalised score (> 1.0 means drift at the configured false-alarm rate).
        """
        raise NotImplementedError


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


def _split(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    half = n // 2
    return order[:half], order[half:]


@register_detector("mean_shift")
class MeanShiftDetector(Detector):
    """Hotelling-type mean statistic (Ledoit-Wolf whitening) combined with a scale statistic.

    The covariance and whitening are fitted on one half of the reference; the other half, never
    seen by the fit, supplies the null distribution (calibrating on the fitted half would make
    every real window look drifted). Mean part: squared whitened distance of the window mean from
    the reference mean. Scale part: |mean log variance ratio| over ``n_projections`` random
    whitened directions, which catches a variance change of a few percent. Both are normalised by
    their own null quantile and the maximum is calibrated jointly.
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
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        ref = np.asarray(reference, dtype=np.float64)
        rng = np.random.default_rng(seed)
        fit_idx, held_idx = _split(rng, ref.shape[0])
        cov, self.shrinkage = ledoit_wolf(ref[fit_idx])
        self.whiten = inverse_sqrt(cov)  # [d, d]
        # Gaussian samples are independent of their covariance estimate, so the full mean is safe.
        self.mean = ref.mean(axis=0)
        k = max(1, min(n_projections, self.dim))
        basis, _ = np.linalg.qr(rng.standard_normal((self.dim, k)))
        self.projection = basis.T @ self.whiten  # [k, d]: random directions in whitened space

        held = ref[held_idx]
        held_c = held - held.mean(axis=0)
        z = held_c @ self.whiten.T
        y = held @ self.projection.T
        self.ref_log_var = np.log(np.maximum(y.var(axis=0), 1e-300))

        # The reference summary is an estimate too: compare a window-sized resample with a
        # reference-sized one, both drawn from the held-out half.
        c_win = bootstrap_counts(rng, held.shape[0], window, n_boot)
        c_ref_mean = bootstrap_counts(rng, held.shape[0], ref.shape[0], n_boot)
        c_ref_var = bootstrap_counts(rng, held.shape[0], held.shape[0], n_boot)
        diff = (c_win @ z) / window - (c_ref_mean @ z) / ref.shape[0]
        null_mean = np.einsum("bd,bd->b", diff, diff)
        null_scale = np.abs(
            np.mean(
                _log_var(c_win, y, window) - _log_var(c_ref_var, y, held.shape[0]), axis=1
            )
        )
        alpha = false_alarm_rate
        self.q_mean = upper_quantile(null_mean, alpha)
        self.q_scale = upper_quantile(null_scale, alpha)
        joint = np.maximum(null_mean / self.q_mean, null_scale / self.q_scale)
        self.threshold = upper_quantile(joint, alpha)

    def score(self, window: FloatArray) -> DetectorResult:
        """Score a window; ``detail`` holds the mean and scale parts on the same normalised scale.

        Returns:
            The normalised score and its parts.
        """
        x = np.asarray(window, dtype=np.float64)
        z = self.whiten @ (x.mean(axis=0) - self.mean)
        t_mean = float(z @ z)
        y = x @ self.projection.T
        log_var = np.log(np.maximum(y.var(axis=0), 1e-300))
        t_scale = abs(float(np.mean(log_var - self.ref_log_var)))
        mean_part = t_mean / self.q_mean / self.threshold
        scale_part = t_scale / self.q_scale / self.threshold
        return DetectorResult(
            score=max(mean_part, scale_part),
            detail={"mean": mean_part, "scale": scale_part},
        )


def _log_var(counts: FloatArray, y: FloatArray, size: int) -> FloatArray:
    m1 = counts @ y / size
    m2 = counts @ (y * y) / size
    return np.log(np.maximum(m2 - m1 * m1, 1e-300))


@register_detector("mmd_rff")
class MMDRFFDetector(Detector):
    """Maximum mean discrepancy with an RBF kernel approximated by random Fourier features.

    Bandwidth: median pairwise distance of the reference. The statistic is the squared distance
    between mean feature vectors, linear in the window size. Null: window-sized versus
    reference-sized bootstrap resamples of the reference features.
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
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        ref = np.asarray(reference, dtype=np.float64)
        rng = np.random.default_rng(seed)
        self.bandwidth = _median_distance(rng, ref)
        self.omega = rng.standard_normal((self.dim, n_features)) / self.bandwidth
        self.phase = rng.uniform(0.0, 2.0 * math.pi, n_features)
        self.scale = math.sqrt(2.0 / n_features)
        phi = self._features(ref)
        self.ref_mean = phi.mean(axis=0)
        c_win = bootstrap_counts(rng, ref.shape[0], window, n_boot)
        c_ref = bootstrap_counts(rng, ref.shape[0], ref.shape[0], n_boot)
        diff = (c_win @ phi) / window - (c_ref @ phi) / ref.shape[0]
        self.threshold = upper_quantile(np.einsum("bd,bd->b", diff, diff), false_alarm_rate)

    def _features(self, x: FloatArray) -> FloatArray:
        out: FloatArray = self.scale * np.cos(x @ self.omega + self.phase)
        return out

    def score(self, window: FloatArray) -> DetectorResult:
        """Score a window; ``detail`` holds the raw squared MMD estimate.

        Returns:
            The normalised score.
        """
        diff = self._features(np.asarray(window, dtype=np.float64)).mean(axis=0) - self.ref_mean
        mmd2 = float(diff @ diff)
        return DetectorResult(score=mmd2 / self.threshold, detail={"mmd2": mmd2})


def _median_distance(rng: np.random.Generator, x: FloatArray, max_rows: int = 500) -> float:
    rows = x if x.shape[0] <= max_rows else x[rng.choice(x.shape[0], max_rows, replace=False)]
    sq = np.einsum("ij,ij->i", rows, rows)
    d2 = sq[:, None] + sq[None, :] - 2.0 * rows @ rows.T
    upper = d2[np.triu_indices(rows.shape[0], k=1)]
    med = math.sqrt(max(float(np.median(upper)), 0.0))
    return med if med > 0.0 else 1.0


def kolmogorov_sf(x: FloatArray) -> FloatArray:
    """Asymptotic survival function of the Kolmogorov distribution, ``P(K > x)``.

    Returns:
        Probabilities in [0, 1], elementwise.
    """
    x = np.asarray(x, dtype=np.float64)
    k = np.arange(1, 101, dtype=np.float64)[:, None]
    terms = 2.0 * (-1.0) ** (k - 1) * np.exp(-2.0 * k * k * np.maximum(x, 1e-3) ** 2)
    p: FloatArray = np.clip(terms.sum(axis=0), 0.0, 1.0)
    return np.where(x < 0.2, 1.0, p)


@register_detector("ks")
class KSDetector(Detector):
    """Per-dimension two-sample Kolmogorov-Smirnov tests with a max-statistic correction.

    The statistic is the largest scaled KS distance over dimensions; its threshold comes from
    random splits of the reference (a permutation max-T correction, which controls the
    family-wise error like Bonferroni but respects correlated dimensions). ``detail`` lists the
    dimensions whose own scaled distance exceeds the threshold, and the Bonferroni p-value.
    """

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 200,
        seed: int = 0,
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        ref = np.asarray(reference, dtype=np.float64)
        n = ref.shape[0]
        rng = np.random.default_rng(seed)
        # Column-major contiguous sorted reference: one flattened searchsorted serves all dims.
        self.ref_sorted = np.sort(ref.T, axis=1)
        self.n_ref = n
        lo, hi = float(self.ref_sorted.min()), float(self.ref_sorted.max())
        self._span = (hi - lo) + 1.0
        self._offsets = np.arange(self.dim, dtype=np.float64)[:, None] * self._span
        self._ref_flat = (self.ref_sorted + self._offsets).ravel()

        # Null: split the reference into a window-sized part and the rest; the scaled distance
        # has (asymptotically) the same distribution for (window, rest) as for (window, n).
        m = min(window, n // 2)
        rest = n - m
        order = np.argsort(ref, axis=0, kind="stable")  # [n, d]
        # F_in - F_out at rank k is c * (1/m + 1/rest) - k / rest with c the members so far,
        # so one integer cumsum per split gives every dimension's distance.
        k_over_rest = (np.arange(1, n + 1, dtype=np.float64) / rest)[:, None]
        gain = 1.0 / m + 1.0 / rest
        null = np.empty(n_boot)
        for b in range(n_boot):
            member = np.zeros(n, dtype=np.int16)
            member[rng.choice(n, m, replace=False)] = 1
            c = np.cumsum(member[order], axis=0, dtype=np.int32)
            gap = c * gain - k_over_rest
            null[b] = max(float(gap.max()), -float(gap.min())) * math.sqrt(m * rest / n)
        self.threshold = upper_quantile(null, false_alarm_rate)

    def distances(self, window: FloatArray) -> FloatArray:
        """Scaled KS distance ``sqrt(m n / (m + n)) * D`` per dimension.

        Returns:
            ``[d]`` array.
        """
        x = np.asarray(window, dtype=np.float64)
        m = x.shape[0]
        w_sorted = np.sort(x.T, axis=1)  # [d, m]
        lo = float(self.ref_sorted.min())
        # Values outside the reference range clip to its ends: the ECDF is 0 or 1 there anyway.
        clipped = np.clip(w_sorted, lo - 0.25, lo + self._span - 0.75)
        r = np.searchsorted(self._ref_flat, (clipped + self._offsets).ravel(), side="right")
        r = r.reshape(self.dim, m) - np.arange(self.dim)[:, None] * self.n_ref
        f_ref = np.clip(r, 0, self.n_ref) / self.n_ref
        i = np.arange(1, m + 1, dtype=np.float64) / m
        d = np.maximum(np.abs(i - f_ref), np.abs(i - 1.0 / m - f_ref)).max(axis=1)
        scaled: FloatArray = d * math.sqrt(m * self.n_ref / (m + self.n_ref))
        return scaled

    def score(self, window: FloatArray) -> DetectorResult:
        """Score a window; ``detail`` names the moved dimensions (strongest first).

        Returns:
            The normalised score, ``moved_dims`` and ``bonferroni_p``.
        """
        scaled = self.distances(window)
        moved = np.flatnonzero(scaled > self.threshold)
        moved = moved[np.argsort(-scaled[moved])]
        p_min = float(kolmogorov_sf(np.array([scaled.max()]))[0])
        return DetectorResult(
            score=float(scaled.max()) / self.threshold,
            detail={
                "moved_dims": [int(j) for j in moved],
                "bonferroni_p": min(1.0, p_min * self.dim),
            },
        )
