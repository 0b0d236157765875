"""Quantile binning for per-dimension KS: a value's reference-quantile bin by one table lookup."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from instrumentation.drift.calibration import FloatArray

IntArray = NDArray[np.intp]


class QuantileBinner:
    """Maps every value of every dimension to a bin at reference quantiles, by one table lookup.

    Per dimension there are ``n_bins`` quantile bins between the reference minimum and maximum
    (edges at the reference order statistics ``k / n_bins``), plus an underflow bin (below the
    minimum) and an overflow bin (more than one grid cell above the maximum): ``n_bins + 2``
    in all. Bins are found without a search: a uniform grid of ``grid`` cells spans the
    reference range and a table gives each cell the bin of its lower boundary. A cell that
    straddles an edge therefore goes to one side of it, which makes the binning a fixed monotone
    step function per dimension: the KS distance between two binned samples is an exact KS
    distance of the transformed values, and it is the KS distance of the raw values at (nearly)
    the reference quantiles. Ties are harmless: equal values share a bin.

    Work per window: a transposing subtraction, three elementwise passes, a gather from a table
    that stays in cache because one dimension's lookups come together, and one ``bincount``.
    Float32 arithmetic is safe because the grid origin is subtracted first.
    """

    def __init__(self, reference: FloatArray, *, n_bins: int = 128, grid: int = 1024) -> None:
        if not 2 <= n_bins <= 65000:
            raise ValueError(f"n_bins must be in 2..65000, got {n_bins}")
        ref = np.asarray(reference, dtype=np.float64)
        n, d = ref.shape
        if grid < 1 or d * (grid + 3) >= 2**24:
            raise ValueError(f"grid must be >= 1 with d * (grid + 3) < 2**24, got {grid}")
        self.dim = d
        self.n_bins = n_bins + 2
        self.grid = grid
        ordered = np.sort(ref, axis=0)
        ranks = np.ceil(np.arange(1, n_bins) * n / n_bins).astype(np.intp) - 1
        edges = ordered[np.clip(ranks, 0, n - 1)].T  # [d, n_bins - 1], ascending per row
        lo, hi = ordered[0], ordered[-1]
        span = hi - lo
        # A dimension constant in the reference still separates lower/equal/higher values.
        span = np.where(span > 0.0, span, np.maximum(np.abs(lo) * 1e-6, 1e-30))
        inv = np.minimum(grid / span, 1e30)  # float32 must hold it
        # Cell c >= 1 starts at origin + c / inv: the minimum opens cell 1, the maximum cell
        # grid + 1, and cell grid + 2 (overflow) starts one cell above the maximum. Cell 0 is
        # below the minimum; with the origin one cell down, a truncating cast is a floor.
        origin = lo - 1.0 / inv
        self._origin = origin.astype(np.float32)[:, None]
        self._inv = inv.astype(np.float32)[:, None]
        # Boundaries in the float32 arithmetic of ``bin_ids``, so table and lookup agree.
        bounds = (np.arange(grid + 3, dtype=np.float32)[None, :] / self._inv) + self._origin
        table = np.empty((d, grid + 3), dtype=np.uint16)
        for j in range(d):
            table[j] = 1 + np.searchsorted(edges[j], bounds[j], side="right")
        table[:, 0] = 0
        table[:, -1] = self.n_bins - 1
        self._table = table.ravel()
        self._cell_offsets = (np.arange(d, dtype=np.float32) * (grid + 3))[:, None]
        self._bin_offsets = (np.arange(d, dtype=np.intp) * self.n_bins)[:, None]

    def bin_ids(self, x: NDArray[Any]) -> IntArray:
        """Flat bin ids ``j * n_bins + bin`` of every value of ``x`` ``[m, d]``, transposed.

        Returns:
            ``[d, m]`` integer array, ready for ``counts``.
        """
        z = np.subtract(x.T, self._origin, dtype=np.float32, order="C")
        with np.errstate(over="ignore"):  # far outliers become inf, then the last cell
            z *= self._inv
        np.clip(z, 0.0, float(self.grid + 2), out=z)
        z += self._cell_offsets
        ids: IntArray = self._table[z.astype(np.intp)].astype(np.intp)
        ids += self._bin_offsets
        return ids

    def counts(self, ids: IntArray) -> NDArray[np.int64]:
        """Per-dimension bin counts of flat bin ids.

        Returns:
            ``[d, n_bins]`` counts (``n_bins`` including the underflow and overflow bins).
        """
        out: NDArray[np.int64] = np.bincount(ids.ravel(), minlength=self.dim * self.n_bins).reshape(
            self.dim, self.n_bins
        )
        return out
