"""Tests of the drift numerics: covariance, traces, quantiles, against recorded and exact values."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from instrumentation.drift import create_detector
from instrumentation.drift.calibration import (
    covariance_traces,
    ledoit_wolf,
    quantile_variance,
    scaled_chi2_quantile,
    student_t_quantile,
)
from instrumentation.drift.detectors import kolmogorov_sf

# Values of the hand-written numerics these functions replaced (Wilson-Hilferty chi-square,
# Cornish-Fisher t, a 100-term Kolmogorov series), recorded from commit e0a9e07 on these inputs.
# ``(trace1, trace2, alpha, quantile)``; nu = trace1^2 / trace2 is 5.5, 22.5, 214 and 655.
WILSON_HILFERTY = [
    (6.0, 6.5, 0.05, 12.860809942526712),
    (6.0, 6.5, 0.02532, 14.807662681314605),
    (6.0, 6.5, 0.005, 19.287069997392425),
    (30.0, 40.0, 0.05, 46.05492391850094),
    (30.0, 40.0, 0.02532, 49.83999122331864),
    (30.0, 40.0, 0.005, 58.048619338405054),
    (300.0, 420.0, 0.05, 349.20833741320365),
    (300.0, 420.0, 0.02532, 359.2340868063166),
    (300.0, 420.0, 0.005, 379.92487298268054),
    (768.0, 900.0, 0.05, 839.0912555726786),
    (768.0, 900.0, 0.02532, 853.105237606961),
    (768.0, 900.0, 0.005, 881.6918071153125),
]
# ``(p, dof, quantile)``; dof 3 gave dof 5's value (the floor).
CORNISH_FISHER = [
    (0.975, 3.0, 2.570308227150842),
    (0.975, 5.0, 2.570308227150842),
    (0.975, 12.0, 2.1788096740090883),
    (0.975, 60.0, 2.0002978210582616),
    (0.975, 500.0, 1.9647198374673436),
    (0.98734, 3.0, 3.151207247369811),
    (0.98734, 5.0, 3.151207247369811),
    (0.98734, 12.0, 2.5531097832085505),
    (0.98734, 60.0, 2.29378679474583),
    (0.98734, 500.0, 2.2432162674779033),
    (0.995, 3.0, 4.028971391326831),
    (0.995, 5.0, 4.028971391326831),
    (0.995, 12.0, 3.05450341439557),
    (0.995, 60.0, 2.6602830178492707),
    (0.995, 500.0, 2.58569783514167),
]
KOLMOGOROV_SERIES = [
    (0.1, 1.0),
    (0.2, 0.9999999999994948),
    (0.5, 0.9639452436648751),
    (0.8, 0.5441424115741981),
    (1.0, 0.26999967167735456),
    (1.36, 0.049485876755377876),
    (1.63, 0.009846364888486529),
    (2.0, 0.0006709252557796953),
    (3.0, 3.045995948942526e-08),
]


class TestAgainstTheHandWrittenNumerics:
    def test_chi2_quantile_within_the_wilson_hilferty_error(self) -> None:
        """scipy's exact quantile is within Wilson-Hilferty's own error of the recorded values.

        That error shrinks with nu: under 1 % at nu = 5.5, 0.3 % at 22.5, 0.03 % from 200 on
        (the mean parts of real embeddings see nu in the hundreds).
        """
        for trace1, trace2, alpha, recorded in WILSON_HILFERTY:
            nu = trace1 * trace1 / trace2
            rel = 1e-2 if nu < 10 else 3e-3 if nu < 100 else 3e-4
            assert scaled_chi2_quantile(trace1, trace2, alpha) == pytest.approx(recorded, rel=rel)

    def test_t_quantile_within_the_cornish_fisher_error(self) -> None:
        """scipy's t quantile is within 0.1 % (the expansion's stated accuracy) of the recorded."""
        for p, dof, recorded in CORNISH_FISHER:
            assert student_t_quantile(p, dof) == pytest.approx(recorded, rel=1e-3)

    def test_kolmogorov_tail_equals_the_series(self) -> None:
        """scipy's Kolmogorov tail equals the 100-term series to 1e-13 (both converge fully)."""
        x = np.array([v for v, _ in KOLMOGOROV_SERIES])
        recorded = np.array([p for _, p in KOLMOGOROV_SERIES])
        np.testing.assert_allclose(kolmogorov_sf(x), recorded, rtol=1e-12, atol=1e-13)

    def test_detectors_calibrate_and_score_as_before(self) -> None:
        """Fixed reference and window: thresholds and scores as the hand-written numerics gave.

        The mean part's quantile moves by 2e-7 of itself, far under its own sampling error
        (a few percent, ``quantile_variance``); the rest match to rounding.
        Recorded from commit e0a9e07.
        """
        rng = np.random.default_rng(0)
        ref = rng.standard_normal((600, 16)) @ rng.standard_normal((16, 16))
        window = rng.standard_normal((200, 16)) @ rng.standard_normal((16, 16)) * 1.02
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 600 rows: below the minimum for this rate
            mean_shift = create_detector("mean_shift", ref, window=200)
            ks = create_detector("ks", ref, window=200)
        assert mean_shift.mean_part.quantile == pytest.approx(25.426778214476734, rel=1e-6)
        assert mean_shift.scale_part.z == pytest.approx(2.2510305388149945, rel=1e-9)
        assert mean_shift.score(window).score == pytest.approx(16.79684945765144, rel=1e-6)
        result = ks.score(window)
        assert result.score == pytest.approx(1.3552879972742158, rel=1e-12)
        assert result.detail["bonferroni_p"] == pytest.approx(0.000523435140860559, rel=1e-9)


class TestLedoitWolf:
    def test_ledoit_wolf_matches_sklearn(self) -> None:
        """The hand-kept Ledoit-Wolf equals sklearn's estimate (kept: sklearn's is slower)."""
        from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf

        rng = np.random.default_rng(2)
        mixing = rng.standard_normal((24, 24)) * rng.uniform(0.2, 1.0, 24)
        x = rng.standard_normal((60, 24)) @ mixing.T
        cov, shrinkage = ledoit_wolf(x)
        sk_cov, sk_shrinkage = sk_ledoit_wolf(x)
        np.testing.assert_allclose(cov, sk_cov, rtol=1e-10, atol=1e-12)
        assert shrinkage == pytest.approx(sk_shrinkage)


class TestCalibrationNumerics:
    def test_covariance_traces_are_unbiased_off_normality(self) -> None:
        """tr(C) and tr(C^2) estimates from 40 skewed rows in 50 dims average to the truth."""
        rng = np.random.default_rng(1)
        mixing = rng.standard_normal((50, 50)) * rng.uniform(0.1, 1.0, 50)
        cov = mixing @ mixing.T
        estimates = np.array(
            [
                covariance_traces((rng.standard_exponential((40, 50)) - 1.0) @ mixing.T)
                for _ in range(600)
            ]
        )
        assert estimates[:, 0].mean() == pytest.approx(np.trace(cov), rel=0.03)
        assert estimates[:, 1].mean() == pytest.approx(np.sum(cov * cov), rel=0.05)
        naive = np.mean(
            [
                np.sum(np.cov(rng.standard_normal((40, 50)) @ mixing.T, rowvar=False) ** 2)
                for _ in range(100)
            ]
        )
        assert naive > 1.1 * np.sum(cov * cov)  # the bias the unbiased estimate removes

    def test_scaled_chi2_quantile_matches_simulation(self) -> None:
        """The two-trace quantile of a weighted chi-square is within 2 % of a simulated one."""
        rng = np.random.default_rng(2)
        weights = rng.uniform(0.2, 3.0, 300)
        draws = (rng.standard_normal((20000, 300)) ** 2) @ weights
        for alpha in (0.05, 0.025):
            expected = np.quantile(draws, 1.0 - alpha)
            got = scaled_chi2_quantile(float(weights.sum()), float((weights**2).sum()), alpha)
            assert got == pytest.approx(expected, rel=0.02)

    def test_quantile_variance_predicts_the_spread_of_the_quantile(self) -> None:
        """The delta-method variance of the two-trace quantile matches its spread over samples."""
        rng = np.random.default_rng(3)

        def heavy(n: int) -> np.ndarray:  # multivariate t with 6 dof: a common random scale
            return rng.standard_normal((n, 30)) * np.sqrt(6.0 / rng.chisquare(6.0, (n, 1)))

        draws = [heavy(200) for _ in range(300)]
        quantiles = [scaled_chi2_quantile(*covariance_traces(y), 0.025) for y in draws]
        predicted = np.mean([quantile_variance(y, 0.025) for y in draws])
        assert predicted == pytest.approx(np.var(quantiles), rel=0.25)
        gaussian = rng.standard_normal((200, 30))
        assert quantile_variance(gaussian, 0.025) < 0.25 * predicted


def _long_tailed(rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows whose squared norm is long-tailed: a tight core and one row in ten spread wide."""
    scale = np.where(rng.random(rows) < 0.1, 3.0, 0.5)
    return rng.standard_normal((rows, 16)) * scale[:, None]


class TestSmallWindowsOfLongTailedRows:
    def test_the_mean_part_holds_its_rate_on_small_windows(self) -> None:
        """Windows of 16 long-tailed rows: the mean part alarms near its per-part rate (0.025).

        Treated as Gaussian (no fourth-moment term), the same windows alarm at about 5 times it.
        """
        rng = np.random.default_rng(3)
        reference = _long_tailed(rng, 1000)
        pool = _long_tailed(np.random.default_rng(4), 40_000)
        windows = [pool[i : i + 16] for i in range(0, 40_000, 16)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = create_detector("mean_shift", reference, window=16)
        part = detector.mean_part
        rate = float(np.mean([part(w.astype(np.float32)) > 1.0 for w in windows]))
        part.excess, part._by_rows = 0.0, {}
        gaussian = float(np.mean([part(w.astype(np.float32)) > 1.0 for w in windows]))
        assert part.alpha == pytest.approx(0.0253, abs=1e-4)
        assert (rate < 0.04, gaussian > 0.06) == (True, True), (rate, gaussian)

    def test_gaussian_rows_keep_their_thresholds(self) -> None:
        """On Gaussian rows the fourth-moment term is noise: small-window quantiles move < 2 %."""
        rng = np.random.default_rng(5)
        reference = rng.standard_normal((1000, 32)) @ rng.standard_normal((32, 32))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            part = create_detector("mean_shift", reference, window=32).mean_part
        assert part.quantile_for(32) / part.quantile == pytest.approx(1.0, abs=0.02)
        assert part.quantile_for(500) / part.quantile == pytest.approx(1.0, abs=0.001)
