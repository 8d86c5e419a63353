"""Cell-centred finite volumes on a uniform box grid: diffusion, convection, boundary faces.

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

The other boundary conditions are written through the same half-cell flux: a Robin
condition du/dn = gamma u on a boundary face (outward normal n) eliminates the face value
u_F from (u_F - u_P) / (h/2) = gamma u_F, so the face adds
-(gamma / h) / (1 - gamma h / 2) to the diagonal of its cell
(:func:`robin_face_coefficient`); gamma -> -infinity recovers the Dirichlet 2 / h^2 and
gamma = 0 the Neumann (no flux) face. :func:`convection_matrix` discretises v . grad u
with u = 0 on the boundary faces, by first-order upwind or central differences.

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

__all__ = [
    "diffusion_matrix",
    "convection_matrix",
    "robin_face_coefficient",
    "boundary_faces",
    "boundary_face_count",
]

BOUNDARY_CONDITIONS = ("dirichlet", "neumann")
CONVECTION_SCHEMES = ("upwind", "central")


def _axis_slice(ndim: int, axis: int, index) -> tuple:
    """``index`` along ``axis`` and everything along the other axes."""
    return tuple(index if i == axis else slice(None) for i in range(ndim))


def _check_spacing(h) -> float:
    if isinstance(h, bool) or not isinstance(h, (int, float, np.integer, np.floating)) or not math.isfinite(h) or h <= 0:
        raise SciMLError(f"grid spacing h must be a finite number > 0, got {h!r}")
    return float(h)


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    if not shape or any(not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise SciMLError(f"grid shape must be a non-empty tuple of positive ints, got {shape!r}")
    return tuple(int(n) for n in shape)


def _sparse(rows: list, cols: list, values: list, n: int) -> sp.csr_matrix:
    """The n-by-n CSR matrix with the given (row, column, value) triplets summed."""
    dtype = np.result_type(*values) if values else np.float64
    matrix = sp.coo_matrix(
        (np.concatenate(values).astype(dtype), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    return sp.csr_matrix(matrix)


def boundary_faces(shape) -> list[tuple[int, int, tuple]]:
    """The 2 d faces of a box grid as ``(axis, side, cells)``.

    ``side`` is 0 for the face at coordinate 0 along ``axis`` and 1 for the face at 1;
    ``cells`` indexes the layer of cells touching that face (it keeps ``axis`` as a
    length-1 dimension).

    Examples
    --------
    >>> from sciml.datasets.finite_volume import boundary_faces
    >>> [(axis, side) for axis, side, _ in boundary_faces((4, 5))]
    [(0, 0), (0, 1), (1, 0), (1, 1)]
    """
    shape = _check_shape(shape)
    return [
        (axis, side, _axis_slice(len(shape), axis, slice(None, 1) if side == 0 else slice(-1, None)))
        for axis in range(len(shape))
        for side in (0, 1)
    ]


def boundary_face_count(shape) -> np.ndarray:
    """Number of boundary faces of each cell (0 inside, up to the dimension at a corner).

    Examples
    --------
    >>> from sciml.datasets.finite_volume import boundary_face_count
    >>> boundary_face_count((3, 3))
    array([[2, 1, 2],
           [1, 0, 1],
           [2, 1, 2]])
    """
    count = np.zeros(_check_shape(shape), dtype=np.int64)
    for _, _, cells in boundary_faces(count.shape):
        count[cells] += 1
    return count


def robin_face_coefficient(gamma, h: float):
    """Diagonal entry one boundary face adds for the Robin condition du/dn = gamma u.

    With the face value u_F eliminated from the half-cell difference
    (u_F - u_P) / (h / 2) = gamma u_F, the outward flux is gamma u_P / (1 - gamma h / 2);
    the row of -div(grad u), divided by the cell volume, gains
    -(gamma / h) / (1 - gamma h / 2). Real gamma < 0 is dissipative (the entry is
    positive, between 0 for Neumann and 2 / h^2 for Dirichlet); gamma = i k gives the
    first-order absorbing (Sommerfeld) condition du/dn = i k u.

    Parameters
    ----------
    gamma : float, complex or numpy.ndarray
        Robin coefficient, per cell touching the face or one for all; gamma h != 2.
    h : float
        Cell width.

    Examples
    --------
    >>> from sciml.datasets.finite_volume import robin_face_coefficient
    >>> round(float(robin_face_coefficient(-1e12, h=0.5)), 6)   # the Dirichlet limit 2 / h^2
    8.0
    >>> complex(robin_face_coefficient(2j, h=0.5))                # absorbing, k = 2
    (1.6-3.2j)
    """
    h = _check_spacing(h)
    gamma = np.asarray(gamma)
    if not np.all(np.isfinite(gamma)) or np.any(gamma * h == 2.0):
        raise SciMLError(f"Robin coefficient gamma must be finite with gamma h != 2, got {gamma!r}")
    return -(gamma / h) / (1.0 - gamma * h / 2.0)


def diffusion_matrix(a: np.ndarray, h: float, boundary: str = "dirichlet") -> sp.csr_matrix:
    """The finite-volume matrix A of -div(a grad u) = f, u = 0 on the boundary, so A u = f.

    Cell-centred two-point fluxes with harmonic-mean face coefficients and the Dirichlet
    condition imposed on the boundary faces (see the module docstring). Unknowns are
    numbered in C order, matching ``a.ravel()``. With ``boundary="neumann"`` the boundary
    faces carry no flux instead, and the matrix is only positive semidefinite (constants
    are in its kernel); add boundary terms such as :func:`robin_face_coefficient` to it.

    Parameters
    ----------
    a : numpy.ndarray
        Coefficient per cell, any number of dimensions, finite and > 0.
    h : float
        Cell width, the same along every axis.
    boundary : {"dirichlet", "neumann"}
        The condition on every boundary face: u = 0, or zero normal flux.

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric matrix of size ``a.size``, rows divided by the cell volume; positive
        definite for ``"dirichlet"``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import diffusion_matrix
    >>> A = diffusion_matrix(np.full((4, 4), 2.0), h=0.25)
    >>> A.shape, float(A[5, 5]), float(A[5, 6])
    ((16, 16), 128.0, -32.0)
    >>> float(diffusion_matrix(np.full((4, 4), 2.0), h=0.25, boundary="neumann")[0, 0])
    64.0
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
    inv_h2 = 1.0 / _check_spacing(h) ** 2
    if boundary not in BOUNDARY_CONDITIONS:
        raise SciMLError(f"unknown boundary condition {boundary!r}; choose one of: {', '.join(BOUNDARY_CONDITIONS)}")

    ndim = a.ndim
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
    if boundary == "dirichlet":
        for _, _, cells in boundary_faces(a.shape):  # the Dirichlet face is half a cell away
            diagonal[cells] += 2.0 * a[cells] * inv_h2

    rows.append(number.ravel())
    cols.append(number.ravel())
    values.append(diagonal.ravel())
    return _sparse(rows, cols, values, a.size)


def convection_matrix(velocity, h: float, scheme: str = "upwind") -> sp.csr_matrix:
    """The matrix C of the convection term v . grad u at cell centres, u = 0 on the boundary.

    The non-conservative form sum_i v_i du/dx_i is differenced axis by axis with the
    velocity frozen at the cell centre. ``"upwind"``: the one-sided difference towards
    where the flow comes from, v_i (u_P - u_{P-1}) / h for v_i > 0 and
    v_i (u_{P+1} - u_P) / h for v_i < 0 (first order; Courant, Isaacson & Rees 1952; see
    Roos, Stynes & Tobiska, *Robust Numerical Methods for Singularly Perturbed
    Differential Equations*, 2nd ed. 2008, sec. III.2 for the convection-diffusion
    setting). Its off-diagonals are <= 0 and its row sums are >= 0 (zero inside, strictly
    positive at inflow boundary cells), so adding a diffusion M-matrix keeps an M-matrix at
    any cell Peclet number and the discrete maximum principle holds. ``"central"``:
    v_i (u_{P+1} - u_{P-1}) / (2 h), second order but an M-matrix only while the cell
    Peclet number |v_i| h / (2 eps) stays below 1. Next to the boundary the Dirichlet value
    u = 0 sits half a cell away: upwind uses (u_P - 0) / (h/2), and central the three-point
    difference on the spacings h/2 and h, (3 u_P + u_{P+1}) / (3 h) at the lower face and
    -(3 u_P + u_{P-1}) / (3 h) at the upper one, which are exact for quadratic u.

    Parameters
    ----------
    velocity : sequence of numpy.ndarray
        One array per axis, all of the grid shape (as many arrays as the grid has axes),
        finite, at the cell centres.
    h : float
        Cell width.
    scheme : {"upwind", "central"}

    Returns
    -------
    scipy.sparse.csr_matrix
        Nonsymmetric matrix of size ``velocity[0].size``, unknowns in C order.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import convection_matrix
    >>> convection_matrix([np.ones(4)], h=0.25).toarray()
    array([[ 8.,  0.,  0.,  0.],
           [-4.,  4.,  0.,  0.],
           [ 0., -4.,  4.,  0.],
           [ 0.,  0., -4.,  4.]])
    """
    if isinstance(velocity, np.ndarray) and velocity.ndim >= 1 and velocity.dtype != object:
        velocity = list(velocity)
    velocity = [np.asarray(v, dtype=np.float64) for v in velocity]
    shape = velocity[0].shape if velocity else ()
    if not velocity or len(shape) != len(velocity) or any(v.shape != shape for v in velocity):
        raise SciMLError(
            f"velocity must be one grid-shaped array per axis; got {len(velocity)} component(s) of shapes "
            f"{[v.shape for v in velocity]}"
        )
    _check_shape(shape)
    if not all(np.all(np.isfinite(v)) for v in velocity):
        raise SciMLError("velocity must be finite in every cell; fix the velocity field")
    h = _check_spacing(h)
    if scheme not in CONVECTION_SCHEMES:
        raise SciMLError(f"unknown convection scheme {scheme!r}; choose one of: {', '.join(CONVECTION_SCHEMES)}")
    if scheme == "central" and min(shape) < 2:
        raise SciMLError(f"central convection needs at least 2 cells per axis, got grid shape {shape}")

    ndim = len(shape)
    number = np.arange(math.prod(shape)).reshape(shape)
    diagonal = np.zeros(shape)
    rows, cols, values = [], [], []
    for axis, v in enumerate(velocity):
        lower = _axis_slice(ndim, axis, slice(None, -1))  # cells with an upper neighbour
        upper = _axis_slice(ndim, axis, slice(1, None))  # cells with a lower neighbour
        first = _axis_slice(ndim, axis, slice(None, 1))
        last = _axis_slice(ndim, axis, slice(-1, None))
        if scheme == "upwind":
            forward, backward = np.minimum(v, 0.0) / h, np.maximum(v, 0.0) / h
            to_upper, to_lower = forward.copy(), -backward  # coefficients of u_{P+1} and u_{P-1}
            diagonal += backward - forward
            diagonal[first] += backward[first]  # (u_P - 0) / (h/2) at an inflow lower face
            diagonal[last] -= forward[last]  # (0 - u_P) / (h/2) at an inflow upper face
        else:
            to_upper, to_lower = v / (2.0 * h), -v / (2.0 * h)
            to_upper[first] = v[first] / (3.0 * h)
            to_lower[last] = -v[last] / (3.0 * h)
            diagonal[first] += v[first] / h
            diagonal[last] -= v[last] / h
        rows += [number[lower].ravel(), number[upper].ravel()]
        cols += [number[upper].ravel(), number[lower].ravel()]
        values += [to_upper[lower].ravel(), to_lower[upper].ravel()]

    rows.append(number.ravel())
    cols.append(number.ravel())
    values.append(diagonal.ravel())
    return _sparse(rows, cols, values, number.size)
