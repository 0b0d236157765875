"""Calibrated parts of detectors: a whitened distance of means and a ratio of projected variances.

Each part is fitted on one split of the reference and calibrated on the other (held-out) split,
and returns its statistic divided by its own null quantile, so 1.0 is its threshold.
"""

from __future__ import annotations

import math

import numpy as np

from instrumentation.drift.calibration import (
    Float32Array,
    FloatArray,
    bootstrap_counts,
    covariance_traces,
    fourth_moment_excess,
    inverse_sqrt,
    ledoit_wolf,
    quantile_variance,
    scaled_chi2_quantile,
    student_t_quantile,
)


class WhitenedMeanPart:
    """Squared distance of a window mean from the reference mean after Ledoit-Wolf whitening.

    The whitening ``W`` is fitted on ``fit``. Under no drift the statistic is ``c * sum_i
    lambda_i z_i^2`` with ``c = 1/m + 1/n`` and ``lambda`` the eigenvalues of ``W C W^T`` for the
    covariance ``C`` of new data; its quantile comes from unbiased estimates of ``sum(lambda)``
    and ``sum(lambda^2)`` on the rows of ``held``, which the fit never saw. (Whitened in-sample
    rows look tighter than new data and would flag every window; a bootstrap of a few hundred
    held-out rows would see a rank-deficient covariance at d = 768 and set the threshold too
    high.) The reference mean is the held-out mean too: a mean over the fitted rows is not
    independent of the whitening for non-Gaussian data (measured on MiniLM text embeddings: the
    mean part alarmed at twice its rate).

    The matched chi-square treats the window mean as Gaussian. For a window of ``m`` rows the
    variance of the statistic also has a fourth-moment term, ``K (1/m^3 + 1/n^3) / c^2`` with
    ``K = E||y - mu||^4 - tr^2 - 2 tr2`` (`fourth_moment_excess`, zero for Gaussian rows), which
    is added to the matched variance per window size when ``K > 0`` (never lowering a threshold):
    on image embeddings of digits, windows of 32 against 1,000 rows, the part alarmed on 9.2 %
    of windows at a rate of 2.5 % without it. ``quantile`` is the large-window quantile.
    """

    def __init__(self, fit: FloatArray, held: FloatArray, alpha: float) -> None:
        cov, self.shrinkage = ledoit_wolf(fit)
        whiten = inverse_sqrt(cov)
        self.whiten64 = whiten
        self.whiten = whiten.astype(np.float32)
        self.n_ref = int(held.shape[0])
        self.mean = held.mean(axis=0)
        y = held @ whiten.T
        trace1, trace2 = covariance_traces(y)
        # The quantile comes from traces estimated on held rows; comparing the statistic with
        # an estimated quantile adds that estimate's variance to the statistic's (2 trace2),
        # so it goes into the matched chi-square. Without it the error of the traces (a few
        # percent for heavy-tailed whitened features) raised the part's false alarms on average.
        widen = quantile_variance(y, alpha) / 2.0
        self.alpha = alpha
        self.trace1, self.trace2 = trace1, trace2 + widen
        self.excess = max(fourth_moment_excess(y, trace1, trace2), 0.0)
        self.quantile = scaled_chi2_quantile(trace1, self.trace2, alpha)  # for c = 1, m large
        self._by_rows: dict[int, float] = {}

    def quantile_for(self, m: int) -> float:
        """The null quantile, for ``c = 1``, of the statistic of a window of ``m`` rows."""
        quantile = self._by_rows.get(m)
        if quantile is None:
            n = self.n_ref
            c = 1.0 / m + 1.0 / n
            extra = self.excess * (1.0 / m**3 + 1.0 / n**3) / (2.0 * c * c)
            quantile = scaled_chi2_quantile(self.trace1, self.trace2 + extra, self.alpha)
            if len(self._by_rows) >= 64:  # a few window sizes in practice; stay bounded
                self._by_rows.clear()
            self._by_rows[m] = quantile
        return quantile

    def __call__(self, x: Float32Array) -> float:
        """The statistic over its null quantile for a window of ``x.shape[0]`` rows.

        Returns:
            A non-negative float; above 1.0 means drift at this part's level.
        """
        m = int(x.shape[0])
        diff = (x.mean(axis=0, dtype=np.float64) - self.mean).astype(np.float32)
        z = self.whiten @ diff
        return float(z @ z) / (1.0 / m + 1.0 / self.n_ref) / self.quantile_for(m)


class LogScalePart:
    """|Mean log ratio| of window to reference variances along ``k`` fixed directions.

    The reference variances come from ``held`` only (rows the directions were not fitted on).
    The spread of the statistic comes from a bootstrap of window-sized versus held-sized
    resamples of ``held``, kept per unit of ``1/m + 1/h`` so that any window size can be scored;
    the mean of many log ratios is close to normal, so the threshold is a normal quantile.
    """

    def __init__(
        self,
        directions: FloatArray,
        held: FloatArray,
        *,
        window: int,
        n_boot: int,
        alpha: float,
        rng: np.random.Generator,
    ) -> None:
        self.directions_t = np.ascontiguousarray(directions.T, dtype=np.float32)  # [d, k]
        y = held @ directions.T
        h = held.shape[0]
        self.n_held = h
        self.ref_log_var = np.log(np.maximum(y.var(axis=0, ddof=1), 1e-300))
        c_win = bootstrap_counts(rng, h, window, n_boot)
        c_ref = bootstrap_counts(rng, h, h, n_boot)
        null = np.mean(_log_var(c_win, y, window) - _log_var(c_ref, y, h), axis=1)
        self.center = float(np.mean(null))
        self.unit_var = float(np.var(null)) / (1.0 / window + 1.0 / h)
        self.z = student_t_quantile(1.0 - alpha / 2.0, _variance_dof(y))

    def __call__(self, x: Float32Array) -> float:
        """The statistic over its null quantile for a window of ``x.shape[0]`` rows.

        Returns:
            A non-negative float; above 1.0 means drift at this part's level.
        """
        y = x @ self.directions_t
        log_var = np.log(np.maximum(y.var(axis=0, ddof=1, dtype=np.float64), 1e-300))
        stat = abs(float(np.mean(log_var - self.ref_log_var)) - self.center)
        sd = math.sqrt(self.unit_var * (1.0 / x.shape[0] + 1.0 / self.n_held))
        return stat / (self.z * sd) if sd > 0.0 else 0.0


def _variance_dof(y: FloatArray) -> float:
    """Degrees of freedom of the spread estimated for the mean log variance from rows ``y``.

    To first order the mean log variance is the mean over rows of ``u_i``, the mean over
    directions of the standardised squared deviation; the spread is estimated from ``h`` rows,
    and a variance estimate has ``2 h / (kurtosis(u) - 1)`` degrees of freedom: close to ``h``
    for Gaussian rows along many nearly uncorrelated (whitened) directions, far fewer when a
    heavy-tailed common scale moves every direction at once.
    """
    yc = y - y.mean(axis=0)
    sq = yc * yc
    u = np.mean(sq / np.maximum(sq.mean(axis=0), 1e-300), axis=1)
    u -= u.mean()
    m2 = float(np.mean(u * u))
    if m2 <= 0.0:
        return float(y.shape[0])
    kurtosis = float(np.mean(u**4)) / (m2 * m2)
    return 2.0 * int(y.shape[0]) / max(kurtosis - 1.0, 1e-12)


def _log_var(counts: FloatArray, y: FloatArray, size: int) -> FloatArray:
    m1 = counts @ y / size
    m2 = counts @ (y * y) / size
    var = (m2 - m1 * m1) * (size / (size - 1))
    return np.log(np.maximum(var, 1e-300))
