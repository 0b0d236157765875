"""Tests of the drift detector catalog: calibration, false alarms, power, errors."""

from __future__ import annotations

import numpy as np
import pytest

from instrumentation.drift import DETECTORS, create_detector, register_detector
from instrumentation.drift import Detector as BaseDetector

D = 24
WINDOW = 100
N_REF = 400


def _source(seed: int) -> tuple[np.random.Generator, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Non-isotropic covariance: random mixing with unequal column scales.
    mixing = rng.standard_normal((D, D)) * rng.uniform(0.2, 1.0, D)
    return rng, mixing


def _draw(rng: np.random.Generator, mixing: np.ndarray, n: int, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal((n, D)) * scale) @ mixing.T


@pytest.fixture(scope="module", params=sorted(DETECTORS))
def calibrated(
    request: pytest.FixtureRequest,
) -> tuple[str, BaseDetector, np.random.Generator, np.ndarray]:
    """A detector of each catalog entry calibrated on a fixed-seed Gaussian reference."""
    rng, mixing = _source(11)
    reference = _draw(rng, mixing, N_REF)
    detector = create_detector(request.param, reference, window=WINDOW, n_boot=200, seed=3)
    return request.param, detector, rng, mixing


class TestCatalog:
    def test_catalog_has_the_contract_entries(self) -> None:
        """The contract names mean_shift, mmd_rff and ks."""
        assert {"mean_shift", "mmd_rff", "ks"} <= set(DETECTORS)

    def test_unknown_name_lists_valid_ones(self) -> None:
        """An unknown detector name fails with the list of valid names."""
        with pytest.raises(ValueError, match="mean_shift") as info:
            create_detector("nope", np.zeros((10, 2)))
        assert "ks" in str(info.value)

    def test_duplicate_registration_refused(self) -> None:
        """Registering a taken name is an error."""
        with pytest.raises(ValueError, match="already registered"):
            register_detector("ks")(BaseDetector)

    @pytest.mark.parametrize(
        ("reference", "kwargs", "message"),
        [
            (np.zeros(10), {}, "shape"),
            (np.full((10, 3), np.nan), {}, "NaN"),
            (np.ones((10, 3)), {"window": 1}, "window"),
            (np.ones((10, 3)), {"false_alarm_rate": 1.5}, "false_alarm_rate"),
        ],
    )
    def test_bad_input_is_a_clear_error(
        self, reference: np.ndarray, kwargs: dict[str, float], message: str
    ) -> None:
        """Malformed references and options raise ValueError naming the problem."""
        for name in DETECTORS:
            with pytest.raises(ValueError, match=message):
                create_detector(name, reference, **kwargs)


class TestEveryDetector:
    def test_no_false_alarm_storm_on_null_windows(self, calibrated: tuple) -> None:
        """Fewer than 15 % of 60 windows from the reference distribution are flagged."""
        _, detector, rng, mixing = calibrated
        flagged = [detector.score(_draw(rng, mixing, WINDOW)).score > 1.0 for _ in range(60)]
        assert np.mean(flagged) < 0.15

    def test_detects_a_strong_mean_shift(self, calibrated: tuple) -> None:
        """A one-sigma shift of every dimension scores above the threshold."""
        _, detector, rng, mixing = calibrated
        sigma = np.sqrt((mixing**2).sum(axis=1))
        window = _draw(rng, mixing, WINDOW) + sigma
        assert detector.score(window).score > 1.0

    def test_calibration_is_deterministic_for_a_seed(self, calibrated: tuple) -> None:
        """Same reference and seed give the same threshold; another seed may not."""
        name, detector, _, _ = calibrated
        rng, mixing = _source(11)
        reference = _draw(rng, mixing, N_REF)
        again = create_detector(name, reference, window=WINDOW, n_boot=200, seed=3)
        assert again.threshold == detector.threshold
        window = _draw(rng, mixing, WINDOW)
        assert again.score(window).score == detector.score(window).score


class TestMeanShift:
    def test_catches_variance_scale(self) -> None:
        """Variance x1.2 on every dimension raises the scale part over the threshold."""
        rng, mixing = _source(5)
        detector = create_detector(
            "mean_shift", _draw(rng, mixing, N_REF), window=WINDOW, n_boot=300
        )
        scores = [detector.score(_draw(rng, mixing, WINDOW, np.sqrt(1.2))) for _ in range(10)]
        assert np.mean([s.score > 1.0 for s in scores]) >= 0.8
        assert all(s.detail["scale"] >= s.detail["mean"] for s in scores if s.score > 1.0)

    def test_ledoit_wolf_matches_sklearn(self) -> None:
        """Our numpy Ledoit-Wolf equals sklearn's estimate."""
        from sklearn.covariance import ledoit_wolf as sk_ledoit_wolf

        from instrumentation._drift_calibration import ledoit_wolf

        rng, mixing = _source(2)
        x = _draw(rng, mixing, 60)
        cov, shrinkage = ledoit_wolf(x)
        sk_cov, sk_shrinkage = sk_ledoit_wolf(x)
        np.testing.assert_allclose(cov, sk_cov, rtol=1e-10, atol=1e-12)
        assert shrinkage == pytest.approx(sk_shrinkage)


class TestKS:
    def test_reports_the_moved_dimensions(self) -> None:
        """Shifting dimensions 3 and 7 of independent data names exactly those."""
        rng = np.random.default_rng(8)
        detector = create_detector("ks", rng.standard_normal((N_REF, D)), window=WINDOW, n_boot=200)
        window = rng.standard_normal((WINDOW, D))
        window[:, 3] += 1.5
        window[:, 7] -= 1.0
        result = detector.score(window)
        assert result.score > 1.0
        assert sorted(result.detail["moved_dims"]) == [3, 7]
        assert result.detail["moved_dims"][0] == 3
        assert result.detail["bonferroni_p"] < 0.05

    def test_distances_match_scipy(self) -> None:
        """Per-dimension KS distances equal scipy's two-sample statistic."""
        from scipy.stats import ks_2samp

        rng = np.random.default_rng(4)
        reference = rng.standard_normal((N_REF, 5)) * [1, 10, 100, 0.01, 1] + [0, 5, -50, 0, 3]
        detector = create_detector("ks", reference, window=WINDOW, n_boot=20)
        window = rng.standard_normal((WINDOW, 5)) * 1.3 + 0.2
        window[0, 0] = 1e6  # outside the reference range
        expected = [ks_2samp(window[:, j], reference[:, j]).statistic for j in range(5)]
        scale = np.sqrt(WINDOW * N_REF / (WINDOW + N_REF))
        np.testing.assert_allclose(detector.distances(window) / scale, expected, atol=1e-12)
