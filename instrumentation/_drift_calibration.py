"""Shared numerics for drift detectors: Ledoit-Wolf shrinkage, bootstrap nulls and quantiles."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def ledoit_wolf(x: FloatArray) -> tuple[FloatArray, float]:
    """Ledoit-Wolf shrinkage covariance of the rows of ``x`` (shrunk towards a scaled identity).

    Returns:
        ``(covariance [d, d], shrinkage in [0, 1])``; the same estimate as
        ``sklearn.covariance.ledoit_wolf`` (which instrumentation must not depend on at runtime).
    """
    n, d = x.shape
    xc = x - x.mean(axis=0)
    emp_cov = xc.T @ xc / n
    mu = float(np.trace(emp_cov)) / d
    x2 = xc * xc
    beta_ = float(np.sum(x2.T @ x2))
    delta_ = float(np.sum(emp_cov * emp_cov))
    beta = (beta_ / n - delta_) / (d * n)
    delta = (delta_ - 2.0 * mu * float(np.trace(emp_cov)) + d * mu * mu) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0.0 else beta / delta
    cov = (1.0 - shrinkage) * emp_cov
    cov[np.diag_indices(d)] += shrinkage * mu
    return cov, shrinkage


def inverse_sqrt(cov: FloatArray, floor: float = 1e-12) -> FloatArray:
    """Whitening matrix ``W`` with ``W @ cov @ W.T == I`` (eigenvalues floored for stability).

    Returns:
        ``[d, d]`` matrix; multiply centred samples by ``W.T`` to whiten them.
    """
    eigval, eigvec = np.linalg.eigh(cov)
    eigval = np.maximum(eigval, floor * max(float(eigval.max()), floor))
    whiten: FloatArray = (eigvec / np.sqrt(eigval)).T
    return whiten


def bootstrap_counts(
    rng: np.random.Generator, pool_size: int, draw_size: int, n_boot: int
) -> FloatArray:
    """Multinomial resampling counts: row ``b`` counts how often each pool row is drawn.

    Returns:
        ``[n_boot, pool_size]`` float array whose rows sum to ``draw_size``; ``counts @ x /
        draw_size`` gives the bootstrap means of ``x`` with one matrix product.
    """
    probs = np.full(pool_size, 1.0 / pool_size)
    return rng.multinomial(draw_size, probs, size=n_boot).astype(np.float64)


def upper_quantile(values: FloatArray, alpha: float) -> float:
    """The ``1 - alpha`` quantile of a null sample, never zero (scores divide by it).

    Returns:
        A strictly positive float.
    """
    q = float(np.quantile(values, 1.0 - alpha, method="higher"))
    return q if q > 0.0 else float(np.finfo(np.float64).tiny)
