"""Preconditioners by name: each turns a matrix ``A`` into a LinearOperator ``M ~ A^-1``.

A spec is a name, ``(name, kwargs)`` or ``{"name": name, **kwargs}``
(:func:`sciml.registry.parse_spec`), so it goes straight into a config file.

==========  ===========================================================  ==================
name        operator                                                     options
==========  ===========================================================  ==================
``none``    no preconditioner (``M`` is None)                            --
``jacobi``  ``diag(A)^-1``                                               --
``ilu``     incomplete LU, :func:`scipy.sparse.linalg.spilu` (SuperLU)   drop_tol, fill_factor,
                                                                         symmetric
``ic0``     incomplete Cholesky without fill, IC(0), for grid stencils   --
``amg``     one V-cycle of smoothed-aggregation AMG (pyamg)              those of
                                                                         ``smoothed_aggregation_solver``
==========  ===========================================================  ==================

All of them are fixed linear operators, so CG and (non-flexible) GMRES may use them;
``amg`` is symmetric for symmetric ``A`` with pyamg's default symmetric smoothing.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import make_preconditioner
>>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(10, 10))
>>> M = make_preconditioner(("ilu", {"drop_tol": 1e-3}), A)
>>> M.shape
(10, 10)
>>> make_preconditioner("none", A) is None
True
"""

from __future__ import annotations

import inspect

import numpy as np
import pyamg
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from pyamg.multilevel import MultilevelSolver
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from sciml.errors import SciMLError
from sciml.registry import Registry, parse_spec
from sciml.solvers.stopping import as_matrix, check_options

PRECONDITIONERS: Registry = Registry("preconditioner")


@PRECONDITIONERS.register("none")
def no_preconditioner(A) -> None:
    """No preconditioning: ``M = None`` (works with a LinearOperator ``A`` too)."""
    return None


@PRECONDITIONERS.register("jacobi")
def jacobi(A) -> LinearOperator:
    """Jacobi (diagonal) preconditioner ``M = diag(A)^-1`` (Saad 2003, sec. 10.2).

    Examples
    --------
    >>> import numpy as np
    >>> M = jacobi(np.diag([2.0, 4.0]))
    >>> M @ np.ones(2)
    array([0.5 , 0.25])
    """
    A = as_matrix(A, "preconditioner 'jacobi'")
    diagonal = A.diagonal()
    zeros = np.flatnonzero(diagonal == 0)
    if zeros.size:
        raise SciMLError(
            f"preconditioner 'jacobi' needs a nonzero diagonal, but A has {zeros.size} zero "
            f"diagonal entries (first in row {zeros[0]}); use preconditioner='ilu' or 'amg'"
        )
    return aslinearoperator(sp.diags_array(1.0 / diagonal))


@PRECONDITIONERS.register("ilu")
def ilu(A, drop_tol: float | None = None, fill_factor: float | None = None,
        symmetric: bool = True) -> LinearOperator:
    """Incomplete LU by threshold, :func:`scipy.sparse.linalg.spilu` (SuperLU's ILUTP).

    ``drop_tol`` and ``fill_factor`` are passed on (scipy's defaults 1e-4 and 10 when
    None). With ``symmetric=True`` (the default, for matrices with a symmetric pattern
    and a nonzero diagonal, such as diffusion operators) SuperLU runs in its symmetric
    mode: minimum-degree ordering of ``A^T + A``, no row pivoting. The factors are then
    close to ``L D L^T``, so the preconditioner is nearly symmetric and CG converges with
    it; scipy's default (COLAMD, partial pivoting, ``symmetric=False``) gives a
    nonsymmetric operator that only GMRES should use.

    References: Saad (1994), Numer. Linear Algebra Appl. 1(4) (ILUT); Li & Shao (2011),
    ACM TOMS 37(4) (the SuperLU implementation and its symmetric mode).

    Examples
    --------
    >>> import numpy as np
    >>> M = ilu(np.array([[4.0, 1.0], [1.0, 3.0]]), drop_tol=0.0)
    >>> np.round(M @ np.array([5.0, 4.0]), 12)
    array([1., 1.])
    """
    A = as_matrix(A, "preconditioner 'ilu'").tocsc()
    ordering = (
        {"permc_spec": "MMD_AT_PLUS_A", "diag_pivot_thresh": 0.0, "options": {"SymmetricMode": True}}
        if symmetric else {}
    )
    try:
        factors = sla.spilu(A, drop_tol=drop_tol, fill_factor=fill_factor, **ordering)
    except RuntimeError as error:
        advice = "pass symmetric=False, " if symmetric else ""
        raise SciMLError(f"preconditioner 'ilu' failed ({error}); {advice}lower drop_tol, raise "
                         "fill_factor or use preconditioner='amg'") from None
    return LinearOperator(A.shape, matvec=factors.solve, matmat=factors.solve, dtype=factors.L.dtype)


@PRECONDITIONERS.register("ic0")
def ic0(A) -> LinearOperator:
    """Incomplete Cholesky without fill, IC(0), for symmetric matrices of grid stencils.

    ``M = (D + L) D^-1 (D + L^T)`` with ``L`` the strictly lower part of ``A`` and, in the
    natural order, ``d_i = a_ii - sum_{j < i} a_ij^2 / d_j``: the classical IC(0) of
    Meijerink & van der Vorst (1977), the baseline of the DCDM paper (Kaneda et al. 2023).
    That ``L`` keeps ``A``'s entries and only the diagonal changes holds when no two lower
    neighbours of a row are coupled to each other -- true for every (2d+1)-point stencil
    of face couplings (Poisson, Darcy, the obstacle pressure systems); other patterns
    would need fill-in updates and are refused. Applying ``M^-1`` is two triangular solves
    by SuperLU (a triangular factor in the natural order factorises without fill).
    A pivot ``d_i <= 0`` (``A`` far from an M-matrix) is reported, never hidden.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> T = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(5, 5))
    >>> M = ic0(T)                          # 1-D: the tridiagonal factor is exact
    >>> bool(np.allclose(M @ (T @ np.arange(5.0)), np.arange(5.0)))
    True
    """
    A = as_matrix(A, "preconditioner 'ic0'").tocsr()
    if np.iscomplexobj(A.data):
        raise SciMLError("preconditioner 'ic0' is for real symmetric matrices, got a complex one; use 'ilu' or 'amg'")
    lower = sp.tril(A, -1, format="csr")
    pattern = lower.copy()
    pattern.data = np.ones_like(pattern.data, dtype=float)
    shared = (pattern.T @ pattern).tocoo()  # (j, k): rows in which j and k are both lower neighbours
    off = shared.row != shared.col
    if off.any() and np.any(np.asarray(A[shared.row[off], shared.col[off]]).ravel() != 0):
        raise SciMLError("preconditioner 'ic0' needs a grid stencil whose lower neighbours are not coupled "
                         "(IC(0) would need fill-in updates); use preconditioner='ilu' or 'amg'")
    diagonal = A.diagonal().astype(float)
    pivots = np.empty_like(diagonal)
    indptr, indices, data = lower.indptr.tolist(), lower.indices.tolist(), (lower.data ** 2).tolist()
    for i, a_ii in enumerate(diagonal.tolist()):  # a recurrence: one pass in the natural order
        value = a_ii
        for p in range(indptr[i], indptr[i + 1]):
            value -= data[p] / pivots[indices[p]]
        if not value > 0:
            raise SciMLError(f"preconditioner 'ic0' broke down: pivot {value:.3g} <= 0 in row {i}; "
                             "A is not symmetric positive definite or too far from an M-matrix, use 'ilu' or 'amg'")
        pivots[i] = value
    factor = sla.splu((lower + sp.diags_array(pivots)).tocsc(), permc_spec="NATURAL", diag_pivot_thresh=0.0,
                      options={"SymmetricMode": True})

    def apply(r):
        r = np.asarray(r)
        if np.iscomplexobj(r):  # the factor is real: the real and imaginary parts separately
            return apply(r.real) + 1j * apply(r.imag)
        y = factor.solve(r.astype(float, copy=False))
        return factor.solve(pivots.reshape((-1,) + (1,) * (y.ndim - 1)) * y, trans="T")

    return LinearOperator(A.shape, matvec=apply, matmat=apply, dtype=float)


@PRECONDITIONERS.register("amg")
def amg(A, **options) -> LinearOperator:
    """One V-cycle of smoothed-aggregation AMG, ``pyamg.smoothed_aggregation_solver(A,
    **options).aspreconditioner()``.

    Reference: Vanek, Mandel & Brezina (1996), Computing 56(3). The V-cycle is a fixed
    linear operator; it is symmetric for symmetric ``A`` with pyamg's default smoothers.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(200, 200))
    >>> amg(A, max_coarse=20).shape
    (200, 200)
    """
    check_options("preconditioner 'amg'", options, amg.accepted_options)
    A = as_matrix(A, "preconditioner 'amg'")
    return pyamg.smoothed_aggregation_solver(A, **options).aspreconditioner()


# pyamg forwards unknown keywords of smoothed_aggregation_solver to MultilevelSolver
amg.accepted_options = frozenset(
    (set(inspect.signature(pyamg.smoothed_aggregation_solver).parameters) - {"A", "kwargs"})
    | (set(inspect.signature(MultilevelSolver.__init__).parameters) - {"self", "levels"})
)


def make_preconditioner(spec, A) -> LinearOperator | None:
    """Build the preconditioner named by ``spec`` for the matrix ``A``.

    Parameters
    ----------
    spec : str, (str, dict), dict or None
        A name from ``PRECONDITIONERS.names()`` with its options; None means ``"none"``.
    A : sparse matrix or ndarray
        The system matrix (a LinearOperator only for ``"none"``).

    Returns
    -------
    LinearOperator or None
        ``M ~ A^-1`` for scipy's and pyamg's solvers; None for ``"none"``.

    Examples
    --------
    >>> import numpy as np
    >>> make_preconditioner({"name": "jacobi"}, np.diag([2.0, 4.0])) @ np.ones(2)
    array([0.5 , 0.25])
    """
    name, options = parse_spec(spec)
    factory = check_preconditioner(name, options)
    return factory(A, **options)


def check_preconditioner(name: str | None, options: dict):
    """The factory registered as ``name`` (None: ``"none"``), after checking its options.

    A factory's options are its keyword parameters, or its ``accepted_options``
    attribute when it forwards ``**options`` (``amg``). Unknown names and options
    raise a one-line :class:`~sciml.errors.SciMLError`.
    """
    name = "none" if name is None else name
    factory = PRECONDITIONERS.get(name)
    accepted = getattr(factory, "accepted_options", None)
    if accepted is None:
        accepted = list(inspect.signature(factory).parameters)[1:]
    check_options(f"preconditioner {name!r}", options, accepted)
    return factory
