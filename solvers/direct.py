"""Sparse LU (SuperLU) with iterative refinement, judged by the same true-residual rule.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import direct
>>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
>>> x, info = direct(A, np.ones(100), rtol=1e-12)
>>> info
0
"""

from __future__ import annotations

import time

import scipy.sparse.linalg as sla

from sciml.errors import SciMLError
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import Step, as_matrix, prepare_system, solve_by_corrections

REFINEMENT_STEPS = 3
"""Most refinement solves after the first solve with the LU factors."""


def direct_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None) -> SolveResult:
    """Solve ``A x = b`` by sparse LU with iterative refinement; returns a :class:`SolveResult`.

    Factorises ``A`` once with :func:`scipy.sparse.linalg.splu` (SuperLU, COLAMD
    ordering), solves, and refines ``x <- x + U^-1 L^-1 (b - A x)`` while the true
    residual is above ``max(rtol ||b||, atol)`` and still falls, at most
    ``REFINEMENT_STEPS`` times. ``M`` and ``maxiter`` are accepted for a common
    signature and ignored; ``x0`` only sets where refinement starts.

    Parameters
    ----------
    A : sparse matrix or ndarray
        Nonsingular, n-by-n, real or complex (a LinearOperator has no entries to factorise).
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting iterate (zero by default).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    maxiter, M : ignored
    callback : callable, optional
        ``callback(xk)`` after every solve with the factors.

    Returns
    -------
    SolveResult
        ``iterations`` counts solves with the factors; ``residual_history`` the true
        residual before and after each.

    References
    ----------
    Li (2005), ACM TOMS 31(3) (SuperLU); Higham, *Accuracy and Stability of Numerical
    Algorithms*, 2nd ed. (2002), ch. 12 (fixed-precision iterative refinement).

    Examples
    --------
    >>> import numpy as np
    >>> result = direct_result(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 4.0]))
    >>> result.converged, result.iterations, result.x
    (True, 1, array([1., 1.]))
    """
    started = time.perf_counter()
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    matrix = as_matrix(system.operator.A, "method 'direct'").astype(system.dtype).tocsc()
    try:
        lu = sla.splu(matrix)
    except RuntimeError as error:
        raise SciMLError(f"direct: splu failed ({error}); A is singular, check its assembly "
                         "and boundary conditions") from None

    def kernel(r, max_iterations, report):
        d = lu.solve(r)
        report(d)
        return Step(d, 1)

    return solve_by_corrections(
        "direct", system, kernel, budget=1 + REFINEMENT_STEPS, started=started, callback=callback,
        on_budget="A is too ill-conditioned for this tolerance: loosen rtol or check its assembly",
        on_stagnation="refinement stopped reducing the residual (A is ill-conditioned): "
                      "loosen rtol or check its assembly",
    )


direct = scipy_convention(direct_result)
