"""Cell-centred finite volumes for -div(a grad u) = f with u = 0 on the boundary.

On a uniform grid of cells of width h (any dimension, any box shape), integrating the
equation over cell P and dividing by the cell volume h^d gives

    sum_{faces} (a_f / h^2) (u_P - u_Q) = f_P,

the two-point flux approximation (Eymard, Gallouet & Herbin, "Finite Volume Methods",
Handbook of Numerical Analysis VII, 2000, section 9). Between neighbouring cells the face
coefficient is the harmonic mean a_f = 2 a_P a_Q / (a_P + a_Q), which makes the flux exact
for a coefficient that is constant on each cell; at a boundary face the Dirichlet value
u = 0 sits half a cell away, so that face adds 2 a_P / h^2 to the diagonal. The matrix
is symmetric, has non-positive off-diagonals and non-negative row sums (strictly positive
next to the boundary): an irreducibly diagonally dominant M-matrix, hence positive
definite. The solution is second-order accurate at cell centres for smooth a.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import diffusion_matrix
>>> diffusion_matrix(np.ones(3), h=1.0).toarray()
array([[ 3., -1.,  0.],
       [-1.,  2., -1.],
       [ 0., -1.,  3.]])
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError

__all__ = ["diffusion_matrix"]


def _axis_slice(ndim: int, axis: int, index: slice) -> tuple[slice, ...]:
    """``index`` along ``axis`` and everything along the other axes."""
    return tuple(index if i == axis else slice(None) for i in range(ndim))


def diffusion_matrix(a: np.ndarray, h: float) -> sp.csr_matrix:
    """The finite-volume matrix A of -div(a grad u) = f, u = 0 on the boundary, so A u = f.

    Cell-centred two-point fluxes with harmonic-mean face coefficients and the Dirichlet
    condition imposed on the boundary faces (see the module docstring). Unknowns are
    numbered in C order, matching ``a.ravel()``.

    Parameters
    ----------
    a : numpy.ndarray
        Coefficient per cell, any number of dimensions, finite and > 0.
    h : float
        Cell width, the same along every axis.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric positive definite matrix of size ``a.size``, rows divided by the cell volume.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import diffusion_matrix
    >>> A = diffusion_matrix(np.full((4, 4), 2.0), h=0.25)
    >>> A.shape, float(A[5, 5]), float(A[5, 6])
    ((16, 16), 128.0, -32.0)
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0 or a.size == 0:
        raise SciMLError(f"coefficient array must have at least one cell per axis, got shape {a.shape}")
    bad = ~(np.isfinite(a) & (a > 0))
    if bad.any():
        raise SciMLError(
            f"coefficient a must be finite and > 0 in every cell; {int(bad.sum())} cell(s) are not "
            f"(first: {a.ravel()[np.flatnonzero(bad)[0]]!r}); fix the coefficient field"
        )
    if not isinstance(h, (int, float, np.integer, np.floating)) or not math.isfinite(h) or h <= 0:
        raise SciMLError(f"grid spacing h must be a finite number > 0, got {h!r}")

    ndim, inv_h2 = a.ndim, 1.0 / float(h) ** 2
    number = np.arange(a.size).reshape(a.shape)
    diagonal = np.zeros(a.shape)
    rows, cols, values = [], [], []
    for axis in range(ndim):
        lower = _axis_slice(ndim, axis, slice(None, -1))
        upper = _axis_slice(ndim, axis, slice(1, None))
        a_lower, a_upper = a[lower], a[upper]
        transmissibility = 2.0 * a_lower * a_upper / (a_lower + a_upper) * inv_h2
        diagonal[lower] += transmissibility
        diagonal[upper] += transmissibility
        rows += [number[lower].ravel(), number[upper].ravel()]
        cols += [number[upper].ravel(), number[lower].ravel()]
        values += [-transmissibility.ravel(), -transmissibility.ravel()]
        for boundary in (slice(None, 1), slice(-1, None)):  # Dirichlet face half a cell away
            face = _axis_slice(ndim, axis, boundary)
            diagonal[face] += 2.0 * a[face] * inv_h2

    rows.append(number.ravel())
    cols.append(number.ravel())
    values.append(diagonal.ravel())
    matrix = sp.coo_matrix(
        (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=(a.size, a.size)
    )
    return sp.csr_matrix(matrix)
