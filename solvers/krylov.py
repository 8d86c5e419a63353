"""Preconditioned CG and restarted GMRES, stopped on the true residual.

Both wrap scipy's Krylov kernels (:func:`scipy.sparse.linalg.cg`,
:func:`scipy.sparse.linalg.gmres`) in the correction driver of
:mod:`sciml.solvers.stopping`, so they stop only when
``||b - A x||_2 <= max(rtol ||b||_2, atol)`` holds for the iterate they return.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import cg, gmres_result
>>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
>>> b = np.ones(100)
>>> x, info = cg(A, b, rtol=1e-10)
>>> info
0
>>> result = gmres_result(A, b, rtol=1e-10, restart=10)
>>> result.converged, result.relative_residual <= 1e-10
(True, True)
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse.linalg as sla
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import (
    LinearSystem,
    Step,
    as_preconditioner,
    prepare_system,
    solve_by_corrections,
)

ON_BUDGET = "raise maxiter or use preconditioner='amg'"


class _Breakdown(Exception):
    """Raised from inside scipy's cg when its iterate stops being finite."""


def _cg_kernel(system: LinearSystem, M: LinearOperator | None):
    """Correction solves by scipy's preconditioned CG, aborted on a non-finite iterate."""

    def kernel(r, max_iterations, report):
        used = 0

        def on_iteration(d):
            nonlocal used
            used += 1
            if not np.isfinite(d).all():
                raise _Breakdown
            report(d)

        # A zero curvature p^T A p divides by zero inside scipy; the iterate then turns
        # non-finite, which on_iteration reports as a breakdown instead of a warning.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                d, _ = sla.cg(system.operator, r, rtol=0.0, atol=system.target,
                              maxiter=max_iterations, M=M, callback=on_iteration)
            except _Breakdown:
                return Step(None, used, failure=(
                    "cg broke down (non-finite iterate): A or M is not symmetric positive "
                    "definite; use method='gmres'"))
        return Step(d, used)

    return kernel


def cg_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, M=None, callback=None) -> SolveResult:
    """Solve ``A x = b`` by preconditioned conjugate gradients; returns a :class:`SolveResult`.

    For Hermitian positive definite ``A`` and ``M``. Each call of scipy's ``cg`` solves
    for a correction from the current true residual; when its recursive residual
    claims convergence but the true residual does not meet the tolerance, CG restarts
    from the current iterate with the iterations left.

    Parameters
    ----------
    A : sparse matrix, ndarray or LinearOperator
        Hermitian positive definite, n-by-n, real or complex.
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting guess (zero by default).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    maxiter : int, optional
        Total CG iterations over all restarts; default ``10 n``.
    M : LinearOperator or matrix, optional
        Preconditioner approximating ``A^-1`` (Hermitian positive definite).
    callback : callable, optional
        ``callback(xk)`` after every iteration, with the current iterate.

    Returns
    -------
    SolveResult
        ``residual_history`` holds the true residual at the start and after every
        restart (scipy's ``cg`` exposes no per-iteration residual).

    References
    ----------
    Hestenes & Stiefel (1952), J. Res. NBS 49(6); Saad, *Iterative Methods for Sparse
    Linear Systems*, 2nd ed. (2003), Alg. 9.1. Departs from it only by the restarts
    on the true residual described above.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> result = cg_result(A, np.array([1.0, 2.0]), rtol=1e-12)
    >>> result.converged, result.iterations, result.matvecs
    (True, 2, 3)
    """
    started = time.perf_counter()
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    M = as_preconditioner(M, system.n)
    return solve_by_corrections(
        "cg", system, _cg_kernel(system, M),
        budget=10 * system.n if maxiter is None else int(maxiter),
        started=started, callback=callback, on_budget=ON_BUDGET,
        on_stagnation="rounding limits the attainable accuracy: loosen rtol or use method='direct'",
    )


def _gmres_kernel(system: LinearSystem, M: LinearOperator | None, restart: int):
    """One restart cycle of right-preconditioned GMRES per call, by scipy's ``gmres``."""
    if M is None:
        AM = system.operator
    else:
        AM = LinearOperator(system.operator.shape, matvec=lambda v: system.operator @ (M @ v),
                            dtype=system.dtype)

    def kernel(r, max_iterations, report):
        estimates = []
        r_norm = np.linalg.norm(r)
        # scipy reports the Arnoldi residual estimate relative to ||r||; with right
        # preconditioning it estimates the true residual ||b - A (x + M y)||. A non-finite
        # correction (a broken M) is reported by the driver, not as a numpy warning.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y, _ = sla.gmres(AM, r, rtol=0.0, atol=system.target,
                             restart=min(restart, max_iterations), maxiter=1,
                             callback=lambda pr: estimates.append(float(pr * r_norm)),
                             callback_type="pr_norm")
            d = y if M is None else M @ y
        report(d)
        return Step(d, len(estimates), estimates)

    return kernel


def gmres_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, restart=40, maxiter=None, M=None,
                 callback=None) -> SolveResult:
    """Solve ``A x = b`` by restarted, right-preconditioned GMRES(m); returns a :class:`SolveResult`.

    For any nonsingular ``A``. Each restart cycle is one call of scipy's ``gmres`` on
    ``A M y = r`` from the current true residual ``r``, followed by ``x <- x + M y``
    and a fresh true residual. Right preconditioning makes the residual GMRES
    minimises the true one, so its inner stop and the rule here agree.

    Parameters
    ----------
    A : sparse matrix, ndarray or LinearOperator
        Nonsingular, n-by-n, real or complex.
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting guess (zero by default).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    restart : int
        Inner iterations per cycle (the ``m`` of GMRES(m)).
    maxiter : int, optional
        Total **inner** iterations over all cycles (scipy counts cycles instead);
        default ``10 n``.
    M : LinearOperator or matrix, optional
        Preconditioner approximating ``A^-1``; it must be a fixed linear operator
        (a nonlinear or varying one needs a flexible method such as pyamg's fgmres).
    callback : callable, optional
        ``callback(xk)`` after every restart cycle, with the current iterate.

    Returns
    -------
    SolveResult
        ``residual_history`` holds the true residual at the start, the Arnoldi
        estimate of every inner iteration and the true residual after every cycle.

    References
    ----------
    Saad & Schultz (1986), SIAM J. Sci. Stat. Comput. 7(3); right preconditioning as in
    Saad (2003), Alg. 9.5. Departs from scipy's driver (left preconditioning, gh-8400
    tolerance control) by restarting on the true residual instead.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[2.0, 1.0], [-1.0, 3.0]])
    >>> result = gmres_result(A, np.array([1.0, 0.0]), rtol=1e-12)
    >>> result.converged, result.iterations
    (True, 2)
    """
    started = time.perf_counter()
    if isinstance(restart, bool) or not isinstance(restart, (int, np.integer)) or restart < 1:
        raise SciMLError(f"restart must be an integer >= 1, got {restart!r}")
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    M = as_preconditioner(M, system.n)
    return solve_by_corrections(
        "gmres", system, _gmres_kernel(system, M, int(restart)),
        budget=10 * system.n if maxiter is None else int(maxiter),
        started=started, callback=callback, on_budget=ON_BUDGET,
        on_stagnation="GMRES(m) stagnated: raise restart, use preconditioner='amg' or loosen rtol",
    )


cg = scipy_convention(cg_result)
gmres = scipy_convention(gmres_result)
