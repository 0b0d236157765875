"""Sequential drift detection: a dyadic scan over block lengths, calibrated to a run length.

Why a scan: a windowed detector cannot alarm before its window is full, and a per-window rate
says little about how often a stream is flagged by mistake. Here the user sets the expected run
length (ERL) under no drift, e.g. one false alarm per 10,000 samples, and the stream is tested
on blocks of every length ``chunk * 2**j`` up to ``max_block``: a strong change shows after one
short block, a faint one after a long block, and no block length has to be chosen.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from instrumentation.drift.calibration import (
    Float32Array,
    FloatArray,
    covariance_traces,
    inverse_sqrt,
    ledoit_wolf,
)
from instrumentation.drift.detectors import (
    MIN_REFERENCE,
    Detector,
    DetectorResult,
    ReferenceTooSmallWarning,
    _as_window,
    _split,
    register_detector,
)

_OFFSETS = 64  # simulated references (reference-mean errors) per calibration


@register_detector("sequential")
class SequentialDetector(Detector):
    """Tumbling blocks of every dyadic length, each tested for a moved mean and a moved scale.

    **Statistics.** Rows are centred at the held-out reference mean ``mu`` and whitened with
    the Ledoit-Wolf whitening ``W`` of the fitted split (as in ``mean_shift``). Samples are cut
    into leaves of ``chunk`` rows; level ``j`` sums ``2**j`` consecutive leaves into tumbling
    blocks of ``L = chunk * 2**j`` rows (blocks of one level are disjoint, a block of level
    ``j + 1`` is two blocks of level ``j``). Per block:

    - mean part ``U = ||W sum(x - mu)||**2 / L``, matched to ``a chi2(nu) + b`` under no drift
      by three moments, from unbiased estimates of ``tr(C^k)``, ``k = 1, 2, 3``, on the
      held-out whitened rows (the first two as in ``WhitenedMeanPart``);
    - scale part ``|Z|`` with ``Z = (sum q - L m) / sqrt(L v)``, ``q = ||A (x - mu)||**2 / r``
      the mean square of the ``r`` leading whitened principal coordinates ``A`` (as in
      ``LogScalePart``), ``m`` and ``v`` its held-out mean and variance: a variance change of
      a few percent moves ``Z`` by ``sqrt(L r / 2)`` times that change.

    Each part alarms above its level's threshold (one threshold ``h`` on a common deviate scale,
    lowered by ``level_bonus`` per doubling of the block so that long blocks, the only ones
    that see faint changes, get a larger share of the false alarms); the score is the largest
    of ``U`` and ``|Z|`` over their thresholds, over the latest block of every level and the blocks
    completed by the call (1.0 = threshold, as for every detector).

    **Cost.** Per row: one centring, one ``[d] x [d, r]`` product and a sum (``O(r d)``, ``r``
    fixed: ``O(d)``); per leaf one ``[d] x [d, d]`` product (``O(d**2 / chunk)`` per row) and
    one ``O(d)`` update per level (``log2(max_block / chunk)`` levels, about two block tests
    per leaf amortised).

    **Calibration (the guarantee).** Blocks of one level are disjoint, so the stream is a
    sequence of independent periods of ``max_block`` rows. Under no drift and the matched
    chi-square model every statistic of a period is a function of: the leaf sums, isotropic
    Gaussian vectors of ``nu`` dimensions (exact for Gaussian rows up to the two-moment match);
    the error ``e ~ N(0, I / n_held)`` of the reference mean, common to all blocks; and for the
    scale part the leaf sums of ``q``, resampled from the held-out rows (their skew and
    heavy tails included). The mean part is simulated exactly in that model without drawing
    ``nu``-dimensional vectors (nor are the sampling errors of the estimated normalisations,
    ``tr(C)`` and ``sd(q)``, left out: each simulated reference draws them too): by rotation
    invariance a block is ``(a, w)``, its component
    ``a`` along ``e`` (a one-dimensional Gaussian sum) and the norm of the rest, and the
    squared norm of a parent is ``|u|**2 + |v|**2 + 2 |u| |v| cos t`` with ``cos t``
    distributed as the cosine between independent uniform directions in ``nu - 1`` dimensions
    (``(1 + cos t) / 2 ~ Beta((nu - 2) / 2, (nu - 2) / 2)``), independent of everything below.
    For ``_OFFSETS`` reference errors and at least ``n_boot / 2`` periods each, the first
    exceedance of each period gives, for a threshold ``h``, the share ``p`` of periods that
    alarm (pooled over the simulated references: the false-alarm rate averaged over references)
    and the mean time ``t`` into an alarmed period; the run length at that rate is geometric in
    periods, ``ERL = max_block (1 - p) / p + t``, and ``h`` is set by bisection so that it is
    the target, for the first alarm of either part. A given reference runs longer or shorter
    (its mean error is fixed, which is why blocks are at most as long as the held-out split),
    and the mean run length over streams with fresh references, the mean of ``1 / p``, is a
    little longer than ``1 / mean(p)``. Solving the mean of ``1 / p`` instead was tried: it
    depends on the simulated spread of ``p`` over references, which came out wider than on real
    streams (standard deviations 1.3-1.6x those measured on Gaussian streams), and ERL 10,000
    came 27 % short. The calibration check in ``tests/instrumentation/drift/test_sequential.py``
    and ``benchmarks/drift_stream.py`` measure the run length on simulated streams against the
    target.

    ``expected_run_length`` defaults to ``window / false_alarm_rate`` (the same false alarms
    per sample as tumbling windows at that rate); ``window`` is otherwise unused: the detector
    consumes any number of rows per call, and ``self.window`` is ``chunk`` so that a
    ``DriftMonitor`` hands it every chunk. ``reset()`` forgets the stream.
    """

    def __init__(
        self,
        reference: FloatArray,
        *,
        window: int = 500,
        false_alarm_rate: float = 0.05,
        n_boot: int = 1000,
        seed: int = 0,
        expected_run_length: float | None = None,
        chunk: int = 8,
        max_block: int = 1024,
        n_projections: int = 128,
        fit_fraction: float = 0.5,
        level_bonus: float = 0.25,
    ) -> None:
        super().__init__(
            reference, window=window, false_alarm_rate=false_alarm_rate, n_boot=n_boot, seed=seed
        )
        if not 0.0 <= level_bonus < 1.0:
            raise ValueError(f"level_bonus must be in [0, 1), got {level_bonus}")
        if chunk < 2:
            raise ValueError(f"chunk must be >= 2, got {chunk}")
        if not 0.0 < fit_fraction < 1.0:
            raise ValueError(f"fit_fraction must be in (0, 1), got {fit_fraction}")
        if n_projections < 1:
            raise ValueError(f"n_projections must be >= 1, got {n_projections}")
        erl = window / false_alarm_rate if expected_run_length is None else expected_run_length
        if not erl >= 4 * chunk:
            raise ValueError(f"expected_run_length must be >= 4 * chunk, got {erl}")
        ref = np.asarray(reference, dtype=np.float64)
        smallest = self.minimum_rows_for(erl)
        distinct = int(np.unique(ref, axis=0).shape[0])
        if distinct < smallest:
            warnings.warn(
                f"drift reference of {distinct} distinct rows is too small for an expected run "
                f"length of {erl:g} samples: the run length is not guaranteed (at 256 rows, "
                f"d = 384, a target of 10,000 ran 87 % long); use at least {smallest} rows",
                ReferenceTooSmallWarning,
                stacklevel=2,
            )
        rng = np.random.default_rng(seed)
        fit_idx, held_idx = _split(rng, ref.shape[0], fit_fraction)
        held = ref[held_idx]
        n_held = held.shape[0]
        levels = 1
        while chunk * 2**levels <= min(max_block, n_held):
            levels += 1
        self.chunk = chunk
        self.window = chunk
        self.expected_run_length = float(erl)
        self.levels = levels
        self.max_block = chunk * 2 ** (levels - 1)
        self.n_held = n_held

        cov, _ = ledoit_wolf(ref[fit_idx])
        whiten = inverse_sqrt(cov)  # rows: eigenvectors / sqrt(eigenvalue), ascending
        self.mu = held.mean(axis=0)
        y = (held - self.mu) @ whiten.T
        trace1, trace2 = covariance_traces(y)
        norms = np.einsum("ij,ij->i", y, y)
        # Var ||z||^2 beyond the Gaussian 2 tr(C^2): heavy tails widen the short blocks most.
        excess = max(float(np.var(norms, ddof=1)) - 2.0 * trace2, 0.0)
        trace2 += excess / (2.0 * chunk)
        # Three moments, not two: U ~ a chi2(nu) + b. A two-moment chi-square understates the
        # skew of a weighted one (sum lambda^3 sum lambda >= (sum lambda^2)^2), which the far
        # tails of long run lengths feel (ERL 10,000 came 40 % short with two).
        trace3 = _cube_trace(y)
        if trace3 > 0.0:
            scale = trace3 / trace2
            self.nu = max(trace2**3 / trace3**2, 3.0)
        else:
            scale, self.nu = trace2 / trace1, max(trace1 * trace1 / trace2, 3.0)
        self._shift = (trace1 - scale * self.nu) / scale
        self._whiten = (whiten / math.sqrt(scale)).astype(np.float32)
        r = min(n_projections, self.dim, max(4, len(fit_idx) // 4))
        self._lead_t = np.ascontiguousarray(whiten[-r:].T, dtype=np.float32)  # [d, r]
        q = np.einsum("ij,ij->i", y[:, -r:], y[:, -r:]) / r
        # New rows are centred at an estimated mean (+1 / n_held) and held rows at their own
        # (-1 / n_held): without the correction long blocks drift up by sqrt(L) * 2 / n_held sd.
        self._q_mean = float(q.mean()) * (1.0 + 1.0 / n_held) / (1.0 - 1.0 / n_held)
        self._q_sd = float(q.std(ddof=1)) or 1.0
        self._mu32 = self.mu.astype(np.float32)

        # Relative sampling errors of the normalisations, for the simulation: the thresholds
        # are compared with statistics scaled by estimates (of tr(C) and of sd(q)).
        self._norm_error = math.sqrt(float(np.var(norms, ddof=1)) / n_held) / trace1
        q_c = q - q.mean()
        kurtosis = float(np.mean(q_c**4)) / max(float(np.mean(q_c**2)) ** 2, 1e-300)
        self._sd_error = math.sqrt(max(kurtosis - 1.0, 0.0) / (4.0 * n_held))
        sim = _simulate_periods(rng, self, q_c / self._q_sd, level_bonus)
        # One threshold on the larger of both parts (the scale part's two-sided |Z| mapped to a
        # one-sided deviate), solved on their joint first alarm: two parts calibrated apart to
        # twice the target each came 30 % short at ERL 10,000, because the run length of their
        # union averages 1 / (p_mean + p_scale) over references, not half of each part's mean.
        self.h = _solve_threshold(sim.joint, sim.times, self.max_block, erl)
        self.threshold = self.h
        level_h = self.h - level_bonus * np.arange(levels, dtype=np.float64)
        self._u_max = _chi2_from_z(level_h, self.nu)  # per level, on U's scale
        self._z_max = _two_sided_from_one(level_h)
        self.h_mean, self.h_scale = float(self._u_max[0]), float(self._z_max[0])
        self.reset()

    @classmethod
    def minimum_rows(cls, window: int, false_alarm_rate: float) -> int:
        """``MIN_REFERENCE``: the run length is simulated, not read off held-out quantiles.

        Returns:
            A row count.
        """
        return MIN_REFERENCE

    @staticmethod
    def minimum_rows_for(expected_run_length: float) -> int:
        """The smallest reference whose simulated calibration holds ``expected_run_length``.

        Measured with ``benchmarks/drift_stream.py`` (d = 384, 50 null streams): 256 rows hold a
        target of 500 (449) but run a target of 10,000 87 % long; 500 rows hold 10,000 (11,008).
        Long targets put the threshold in the far tail, where the reference's sampling error of
        the whitening dominates. Targets between were not measured; above 2,000 samples twice
        the rows are asked for. Too small a reference errs long (fewer false alarms than asked,
        later detection), not short.

        Returns:
            A row count.
        """
        return MIN_REFERENCE if expected_run_length <= 2000 else 2 * MIN_REFERENCE

    def reset(self) -> None:
        """Forget the stream: the next row starts a new leaf and new blocks."""
        self._leftover = np.empty((0, self.dim), dtype=np.float32)
        self._acc = np.zeros((self.levels, self.dim), dtype=np.float64)
        self._acc_q = np.zeros(self.levels, dtype=np.float64)
        self._leaves = 0
        self._last = np.zeros((self.levels, 2), dtype=np.float64)
        self.samples = 0

    def score(self, window: FloatArray | Float32Array) -> DetectorResult:
        """Add ``window`` ``[m, d]`` (any ``m``) to the stream and return the current score.

        Returns:
            The largest normalised block statistic (latest block of each level, and every block
            completed by this call); ``detail`` has the ``mean`` and ``scale`` parts on that
            scale, ``block`` (the length of the block that gave the score) and ``samples``.
        """
        x = _as_window(window)
        self.samples += int(x.shape[0])
        if self._leftover.shape[0]:
            x = np.concatenate([self._leftover, x])
        n_leaves = x.shape[0] // self.chunk
        used = n_leaves * self.chunk
        self._leftover = x[used:].copy()
        best = np.zeros(2)
        best_level = int(np.argmax(self._last.max(axis=1)))
        if n_leaves:
            xc = x[:used] - self._mu32
            lead = xc @ self._lead_t
            q = np.einsum("ij,ij->i", lead, lead, dtype=np.float64) / self._lead_t.shape[1]
            q_leaf = q.reshape(n_leaves, self.chunk).sum(axis=1) - self.chunk * self._q_mean
            q_leaf /= self._q_sd
            sums = xc.reshape(n_leaves, self.chunk, self.dim).sum(axis=1)
            white = (sums @ self._whiten.T).astype(np.float64)
            top = 0.0
            for i in range(n_leaves):
                self._acc += white[i]
                self._acc_q += q_leaf[i]
                self._leaves += 1
                for j in range(self.levels):
                    if self._leaves % (1 << j):
                        break
                    length = self.chunk << j
                    inflate = 1.0 + length / self.n_held
                    u = float(self._acc[j] @ self._acc[j]) / (length * inflate) - self._shift
                    u = max(u, 0.0) / self._u_max[j]
                    z = abs(float(self._acc_q[j])) / math.sqrt(length * inflate) / self._z_max[j]
                    self._last[j] = (u, z)
                    self._acc[j] = 0.0
                    self._acc_q[j] = 0.0
                    if max(u, z) > top:
                        top, best, best_level = max(u, z), np.array([u, z]), j
            latest = self._last.max(axis=1)
            if latest.max() > top:
                best_level = int(np.argmax(latest))
                best = self._last[best_level].copy()
        else:
            best = self._last[best_level].copy()
        mean_part, scale_part = float(best[0]), float(best[1])
        return DetectorResult(
            score=max(mean_part, scale_part),
            detail={
                "mean": mean_part,
                "scale": scale_part,
                "block": self.chunk << best_level,
                "samples": self.samples,
            },
        )


def _cube_trace(y: FloatArray) -> float:
    """Unbiased estimate of ``tr(C^3)`` for the covariance of the (centred) rows of ``y``.

    The mean over distinct triples ``i, j, k`` of ``(y_i.y_j)(y_j.y_k)(y_k.y_i)``: the trace of
    the cubed Gram matrix with its diagonal zeroed.
    """
    n = int(y.shape[0])
    gram = y @ y.T
    np.fill_diagonal(gram, 0.0)
    return float(np.sum((gram @ gram) * gram)) / (n * (n - 1) * (n - 2))


class _Simulated:
    """Running maximum of the joint block statistic of simulated null periods, in completion
    order (``[offsets, periods, blocks]``), and each block's completion time in rows."""

    def __init__(self, joint: FloatArray, times: FloatArray) -> None:
        self.joint = joint
        self.times = times


_LN2 = math.log(2.0)


def _one_sided_from_two(z: FloatArray) -> FloatArray:
    """A monotone map of a two-sided ``|Z|`` to about the one-sided deviate of the same tail.

    ``P(|Z| > z) = 2 P(Z > z)`` moves the deviate by about ``-ln 2 / z`` in the tail; the map
    only has to be monotone and shared with ``_two_sided_from_one`` (it sets how the two parts
    share the false alarms, not the run length, which is simulated through it).
    """
    out: FloatArray = np.where(z >= 1.0, z - _LN2 / np.maximum(z, 1.0), z - _LN2)
    return out


def _two_sided_from_one(t: FloatArray) -> FloatArray:
    """Inverse of ``_one_sided_from_two``."""
    out: FloatArray = np.where(t >= 1.0 - _LN2, (t + np.sqrt(t * t + 4.0 * _LN2)) / 2.0, t + _LN2)
    return out


def _wilson_hilferty(u: FloatArray, nu: float) -> FloatArray:
    """Standard normal deviate of ``u ~ chi2(nu)`` (Wilson-Hilferty)."""
    k = 2.0 / (9.0 * nu)
    z: FloatArray = (np.cbrt(u / nu) - (1.0 - k)) / math.sqrt(k)
    return z


def _chi2_from_z(z: FloatArray, nu: float) -> FloatArray:
    """Inverse of ``_wilson_hilferty``: the ``chi2(nu)`` value of a normal deviate."""
    k = 2.0 / (9.0 * nu)
    u: FloatArray = nu * np.maximum(1.0 - k + z * math.sqrt(k), 1e-6) ** 3
    return u


def _simulate_periods(
    rng: np.random.Generator, det: SequentialDetector, q_std: FloatArray, level_bonus: float
) -> _Simulated:
    """Null statistics of simulated periods for each of ``_OFFSETS`` reference errors."""
    c, levels, nu = det.chunk, det.levels, det.nu
    n_leaf = 1 << (levels - 1)
    # Enough periods for ~800 alarms in all at the target (a 3.5 % standard error on p), and
    # enough simulated references that their mean error is averaged out.
    wanted = math.ceil(800.0 * det.expected_run_length / (det.max_block * _OFFSETS))
    periods = max(det.n_boot // 2, min(wanted, 4000))
    shape = (_OFFSETS, periods)
    # Reference-mean error: |e| (in per-row noise units) for the mean part, and the error of
    # the held-out mean of q (in units of its sd) for the scale part; one per simulated reference.
    e_norm = np.sqrt(rng.chisquare(nu, _OFFSETS) / det.n_held)[:, None, None]
    q_off = (rng.standard_normal(_OFFSETS) / math.sqrt(det.n_held))[:, None, None]
    u_err = 1.0 + det._norm_error * rng.standard_normal(_OFFSETS)[:, None, None]
    z_err = 1.0 + det._sd_error * rng.standard_normal(_OFFSETS)[:, None, None]
    a = rng.standard_normal((*shape, n_leaf)) * math.sqrt(c)  # along e, leaf sums
    w2 = rng.chisquare(nu - 1.0, (*shape, n_leaf)) * c  # squared norm of the rest
    pool = q_std[rng.integers(0, q_std.shape[0], (4096, c))].sum(axis=1)
    s = pool[rng.integers(0, pool.shape[0], (*shape, n_leaf))]
    beta = max((nu - 2.0) / 2.0, 0.5)
    mean_blocks, ends = [], []
    for j in range(levels):
        length = c << j
        inflate = 1.0 + length / det.n_held
        u = ((a - length * e_norm) ** 2 + w2) / (length * inflate)
        u = (u + det._shift) * u_err - det._shift
        z = np.abs(s - length * q_off) / math.sqrt(length * inflate) * z_err
        mean_blocks.append(
            np.maximum(_wilson_hilferty(u, nu), _one_sided_from_two(z)) + level_bonus * j
        )
        ends.append(np.arange(1, a.shape[-1] + 1) * length)
        if j + 1 < levels:
            cos = 2.0 * rng.beta(beta, beta, (*shape, a.shape[-1] // 2)) - 1.0
            u2, v2 = w2[..., 0::2], w2[..., 1::2]
            w2 = np.maximum(u2 + v2 + 2.0 * np.sqrt(u2 * v2) * cos, 0.0)
            a = a[..., 0::2] + a[..., 1::2]
            s = s[..., 0::2] + s[..., 1::2]
    times = np.concatenate(ends).astype(np.float64)
    order = np.argsort(times, kind="stable")
    joint = np.concatenate(mean_blocks, axis=-1)[..., order]
    return _Simulated(np.maximum.accumulate(joint, axis=-1), times[order])


def _mean_run_length(running_max: FloatArray, times: FloatArray, period: int, h: float) -> float:
    """Expected run length at threshold ``h`` for the false-alarm rate averaged over references.

    ``p`` is the share of simulated periods (of every simulated reference) that alarm, ``t``
    the mean time into an alarmed period: the run length of a stream with that rate is
    geometric in periods, ``period (1 - p) / p + t``.
    """
    alarmed = running_max[..., -1] > h  # [offsets, periods]
    if not alarmed.any():
        return float(period) * alarmed.size  # beyond any target: the bisection moves down
    first = np.argmax(running_max > h, axis=-1)
    p = float(alarmed.mean())
    t_in = float(times[first][alarmed].mean())
    return period * (1.0 - p) / p + t_in


def _solve_threshold(
    running_max: FloatArray, times: FloatArray, period: int, target: float
) -> float:
    """The threshold whose mean simulated run length is ``target`` (bisection)."""
    lo, hi = float(running_max.min()) - 1.0, float(running_max.max()) + 1.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if _mean_run_length(running_max, times, period, mid) < target:
            lo = mid
        else:
            hi = mid
    return hi


def describe(det: SequentialDetector) -> dict[str, Any]:
    """The calibration of a sequential detector, for logs and benchmarks.

    Returns:
        ``expected_run_length``, ``chunk``, ``max_block``, ``nu`` and both thresholds.
    """
    return {
        "expected_run_length": det.expected_run_length,
        "chunk": det.chunk,
        "max_block": det.max_block,
        "nu": det.nu,
        "h": det.h,
        "h_mean": det.h_mean,
        "h_scale": det.h_scale,
    }
