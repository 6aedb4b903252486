"""The recurrent weights of :class:`~allele.core.kraken.KrakenLNN`: the sparse random matrix,
its rescaling to the requested spectral radius, and the row layout the numba kernel walks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from allele.errors import ValidationError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.uint32]

_DENSE_EIG_MAX = 64
"""Up to this many units the spectral radius comes from dense ``eigvals``; above, from ARPACK
(``eigs(k=1, which="LM")``, tol 1e-12: agrees with dense to ~1e-14 relative and is one to two
orders of magnitude faster from a few hundred units on)."""


_MAX_DRAWS = 1000
"""How many sparse matrices :func:`build_recurrent` draws at most looking for one with a cycle."""


def build_recurrent(
    n: int, connectivity: float, spectral_radius: float, rng: np.random.Generator
) -> Any:
    """The ``n`` x ``n`` sparse (CSR, sorted indices) recurrent matrix ``W``: a fraction
    ``connectivity`` of the entries drawn uniform in [-1, 1], then rescaled so that its largest
    absolute eigenvalue is ``spectral_radius`` (0 gives the empty matrix).

    A matrix whose connections form no cycle (no self-loop, no loop through other units) has
    spectral radius 0 and cannot be rescaled: few connections (a small reservoir) often draw one.
    Such a matrix is drawn again from the same generator, up to ``_MAX_DRAWS`` times, so a seed
    still gives one matrix, and the first draw, when it has a cycle, is kept as it is."""
    if spectral_radius == 0.0:
        return scipy.sparse.csr_array((n, n), dtype=np.float64)
    for _ in range(_MAX_DRAWS):
        weights = _draw(n, connectivity, rng)
        if weights.nnz == 0:
            raise ValidationError(
                f"connectivity={connectivity} gives a {n}-unit recurrent matrix with no "
                f"connection at all (0 of its {n * n} entries); raise connectivity")
        if _has_cycle(weights):
            radius = _spectral_radius(weights, rng)
            if radius >= 1e-12:
                return weights * (spectral_radius / radius)
    raise ValidationError(
        f"connectivity={connectivity} gives a {n}-unit recurrent matrix of {weights.nnz} "
        f"connections, and none of {_MAX_DRAWS} draws had a cycle (spectral radius 0: nothing "
        "to rescale); raise connectivity")


def _draw(n: int, connectivity: float, rng: np.random.Generator) -> Any:
    weights = scipy.sparse.random_array(
        (n, n),
        density=connectivity,
        format="csr",
        rng=rng,
        data_sampler=lambda size: rng.uniform(-1.0, 1.0, size=size),
    )
    weights.sum_duplicates()
    weights.sort_indices()
    return weights


def _has_cycle(weights: Any) -> bool:
    """Whether the connections form a cycle (else the matrix is nilpotent: spectral radius 0):
    a self-loop, or a strongly connected group of several units."""
    if weights.diagonal().any():
        return True
    groups, _ = scipy.sparse.csgraph.connected_components(
        weights, directed=True, connection="strong")
    return bool(groups < weights.shape[0])


@dataclass(frozen=True, slots=True)
class RowMatrix:
    """The recurrent matrix in the layout the kernel walks: CSR rows with unsigned indices.

    Row ``i`` is ``val[ptr[i]:ptr[i+1]]`` at columns ``idx[ptr[i]:ptr[i+1]]``, columns sorted.
    ``ptr`` and ``idx`` are uint32: numba then emits plain gathers without its negative-index
    wrap-around, which cost about a fifth of the step time with int32, and plain CSR rows are
    then faster than the padded ELL (+ overflow) layout this replaced (~+20% steps/s at 500
    units on this machine; the padding slots cost more than the rows' ragged ends).
    """

    ptr: IntArray
    idx: IntArray
    val: FloatArray


def to_rows(weights: Any) -> RowMatrix:
    """The kernel's layout of a CSR matrix (sorted indices, no duplicates)."""
    if weights.nnz >= 2**32:  # pragma: no cover - far beyond any reservoir this class builds
        raise ValidationError(f"{weights.nnz} recurrent weights exceed the kernel's 2**32 limit")
    return RowMatrix(
        ptr=np.ascontiguousarray(weights.indptr, dtype=np.uint32),
        idx=np.ascontiguousarray(weights.indices, dtype=np.uint32),
        val=np.ascontiguousarray(weights.data, dtype=np.float64),
    )


def _spectral_radius(weights: Any, rng: np.random.Generator) -> float:
    n = weights.shape[0]
    if n <= _DENSE_EIG_MAX:
        return float(np.abs(np.linalg.eigvals(weights.toarray())).max())
    v0 = rng.uniform(-1.0, 1.0, size=n)
    try:
        vals = scipy.sparse.linalg.eigs(
            weights, k=1, which="LM", v0=v0, ncv=min(n, 64), maxiter=50 * n,
            tol=1e-12, return_eigenvectors=False,
        )
    except scipy.sparse.linalg.ArpackNoConvergence:
        # ARPACK struggles when many eigenvalues sit near the rim of the disk; dense is exact.
        return float(np.abs(np.linalg.eigvals(weights.toarray())).max())
    return float(np.abs(vals).max())
