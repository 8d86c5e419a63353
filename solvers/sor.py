"""SOR, and CG preconditioned by symmetric SOR (SSOR), with the relaxation factor omega.

With ``A = D + L + U`` (diagonal, strictly lower, strictly upper part), SOR is the
stationary iteration ``x <- x + M^-1 (b - A x)`` with ``M = D / omega + L``: one
forward Gauss-Seidel sweep in which every update is extrapolated by ``omega``. SSOR
applies a forward and then a backward sweep; from a zero start one SSOR sweep is
``M_SSOR^-1 r`` with

    M_SSOR = (D + omega L) D^-1 (D + omega U) / (omega (2 - omega)),

which is symmetric positive definite for symmetric positive definite ``A`` and
``0 < omega < 2`` (Saad, *Iterative Methods for Sparse Linear Systems*, 2nd ed., 2003,
secs. 4.1 and 10.2), so it preconditions CG. These are the two solvers of Khodak, Chow,
Balcan & Talwalkar, "Learning to Relax: Setting Solver Parameters Across a Sequence of
Linear System Instances", ICLR 2024, whose cost is the iteration count.

The sweeps run in pyamg's compiled kernel (``pyamg.amg_core.sor_gauss_seidel``), no
Python loop over rows; the checked CSR arrays are held by a :class:`RelaxationMatrix`,
which a caller solving many times with one matrix builds once and passes as ``A``.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(50, 50))
>>> result = sor_result(A, np.ones(50), rtol=1e-10, omega=1.2)
>>> result.converged, result.method
(True, 'sor')
>>> ssor_cg_result(A, np.ones(50), rtol=1e-10, omega=1.2).converged
True
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp
from pyamg import amg_core
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError
from sciml.solvers.krylov import cg_result
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import as_matrix, check_tolerances, check_vector, relative_asymmetry

__all__ = [
    "RelaxationMatrix",
    "SSORPreconditioner",
    "check_omega",
    "optimal_sor_omega",
    "sor_result",
    "ssor_cg_result",
    "sor",
    "ssor_cg",
]

DIVERGED = 1e100
"""SOR stops as diverged once its residual norm exceeds this many times the starting one."""


def check_omega(omega) -> float:
    """``omega`` as a float in the open interval (0, 2), where SOR and SSOR are defined.

    Examples
    --------
    >>> check_omega(1.5)
    1.5
    """
    if isinstance(omega, bool) or not isinstance(omega, (int, float, np.integer, np.floating)) \
            or not (0.0 < float(omega) < 2.0):
        raise SciMLError(f"omega must be a number in the open interval (0, 2), got {omega!r}; "
                         "SOR diverges outside it")
    return float(omega)


class RelaxationMatrix:
    """A real sparse matrix checked once for SOR: CSR arrays for the kernels, positive diagonal.

    Building one costs O(nnz); pass it as ``A`` to :func:`sor_result`,
    :func:`ssor_cg_result` or :class:`SSORPreconditioner` to skip the checks on
    every further solve with the same matrix. Symmetry (needed by SSOR-PCG) is
    checked on first request and remembered.

    Parameters
    ----------
    A : sparse matrix, ndarray or RelaxationMatrix
        Square, real, finite, with every diagonal entry > 0 (SOR divides by it; a
        negative one means ``A`` is not positive definite).

    Examples
    --------
    >>> import numpy as np
    >>> R = RelaxationMatrix(np.array([[2.0, -1.0], [-1.0, 2.0]]))
    >>> R.n, R.diagonal.tolist(), R.is_symmetric()
    (2, [2.0, 2.0], True)
    """

    def __init__(self, A):
        if isinstance(A, RelaxationMatrix):
            self.__dict__.update(A.__dict__)
            return
        matrix = as_matrix(A, "SOR")
        if np.iscomplexobj(matrix.data):
            raise SciMLError("SOR here takes real matrices, got a complex one; use method='gmres'")
        matrix = sp.csr_array(matrix, dtype=np.float64)
        matrix.sum_duplicates()
        matrix.sort_indices()
        diagonal = matrix.diagonal()
        bad = np.flatnonzero(~(diagonal > 0))
        if bad.size:
            raise SciMLError(
                f"SOR needs a positive diagonal, but A has {bad.size} diagonal entries <= 0 "
                f"(first: A[{bad[0]}, {bad[0]}] = {diagonal[bad[0]]!r}); SOR is undefined there, "
                "use method='gmres'")
        self.matrix = matrix
        self.n = matrix.shape[0]
        self.diagonal = diagonal
        self.indptr = matrix.indptr.astype(np.int32, copy=False)
        self.indices = matrix.indices.astype(np.int32, copy=False)
        self.data = np.ascontiguousarray(matrix.data)
        self._symmetric: bool | None = None

    def is_symmetric(self, rtol: float = 1e-12) -> bool:
        """Whether ``max |A - A^T| <= rtol max |A|`` (computed once)."""
        if self._symmetric is None:
            self._symmetric = relative_asymmetry(self.matrix) <= rtol
        return self._symmetric

    def require_symmetric(self, user: str) -> None:
        """Raise a one-line :class:`SciMLError` if ``A`` is not symmetric."""
        if not self.is_symmetric():
            raise SciMLError(f"{user} needs a symmetric A (CG and SSOR are defined for symmetric "
                             "positive definite matrices); use sor_result or method='gmres'")

    def sweep(self, x: np.ndarray, b: np.ndarray, omega: float, backward: bool = False) -> None:
        """One SOR sweep on ``A x = b`` in place (forward: rows 0..n-1; backward: n-1..0)."""
        if backward:
            amg_core.sor_gauss_seidel(self.indptr, self.indices, self.data, x, b,
                                      self.n - 1, -1, -1, omega)
        else:
            amg_core.sor_gauss_seidel(self.indptr, self.indices, self.data, x, b,
                                      0, self.n, 1, omega)

    def residual(self, x: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``b - A x``."""
        return b - self.matrix @ x


def sor_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, omega=1.0,
               callback=None) -> SolveResult:
    """Solve ``A x = b`` by successive over-relaxation; returns a :class:`SolveResult`.

    One iteration is one forward SOR sweep (``x <- x + (D/omega + L)^-1 (b - A x)``),
    followed by the true residual ``b - A x``; the solve stops as soon as
    ``||b - A x||_2 <= max(rtol ||b||_2, atol)``, which is the rule of the paper's
    experiments (relative residual 1e-8 from ``x0 = 0``). SOR converges for symmetric
    positive definite ``A`` and any ``0 < omega < 2`` (Ostrowski-Reich), fastest
    near ``2 / (1 + sqrt(1 - rho_J^2))`` for consistently ordered matrices (Young).

    Parameters
    ----------
    A : sparse matrix, ndarray or RelaxationMatrix
        n-by-n, real, positive diagonal.
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting guess (zero by default), e.g. the previous solution of a sequence.
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    maxiter : int, optional
        Sweeps allowed; default ``10 n``.
    omega : float
        Relaxation factor in (0, 2); 1 is Gauss-Seidel.
    callback : callable, optional
        ``callback(xk)`` after every sweep, with a copy of the iterate.

    Returns
    -------
    SolveResult
        ``iterations`` = sweeps; ``matvecs`` = true-residual evaluations;
        ``residual_history`` holds the true residual before and after every sweep.

    References
    ----------
    Young (1971), *Iterative Solution of Large Linear Systems*; Saad (2003), sec. 4.1;
    Khodak et al. (ICLR 2024), sec. 2 (the cost is the number of sweeps). Departs from
    the paper's code only in the stopping rule's ``max(rtol ||b||, atol)`` form
    (the paper divides by the starting residual, the same thing for ``x0 = 0``).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[4.0, -1.0], [-1.0, 4.0]])
    >>> result = sor_result(A, np.array([3.0, 3.0]), rtol=1e-12, omega=1.0)
    >>> result.converged, result.iterations, np.round(result.x, 12)
    (True, 11, array([1., 1.]))
    """
    started = time.perf_counter()
    check_tolerances(rtol, atol, maxiter)
    omega = check_omega(omega)
    R = RelaxationMatrix(A)
    b = np.asarray(check_vector(b, R.n, "b"), dtype=np.float64)
    b_norm = float(np.linalg.norm(b))
    target = max(rtol * b_norm, float(atol))
    budget = 10 * R.n if maxiter is None else int(maxiter)
    if x0 is None or b_norm == 0.0:
        x = np.zeros(R.n)
        r_norm, matvecs = b_norm, 0
    else:
        x = np.array(check_vector(x0, R.n, "x0"), dtype=np.float64)
        r_norm, matvecs = float(np.linalg.norm(R.residual(x, b))), 1
    history = [r_norm]
    limit = DIVERGED * max(r_norm, target, np.finfo(float).tiny)
    iterations, advice = 0, ""
    with np.errstate(over="ignore", invalid="ignore"):
        while r_norm > target:
            if iterations >= budget:
                advice = "raise maxiter, choose omega closer to optimal or use ssor_cg_result"
                break
            R.sweep(x, b, omega)
            iterations += 1
            r_norm = float(np.linalg.norm(R.residual(x, b)))
            matvecs += 1
            history.append(r_norm)
            if callback is not None:
                callback(x.copy())
            if not r_norm <= limit:
                advice = ("SOR diverged: A is not symmetric positive definite (or diagonally "
                          "dominant) for this omega; use method='gmres'")
                break
    converged = r_norm <= target
    relative = r_norm / b_norm if b_norm > 0 else 0.0
    message = "" if converged else (
        f"sor did not converge: residual {r_norm:.3e} (relative {relative:.3e}) is above the "
        f"tolerance {target:.3e} after {iterations} sweeps (budget {budget}, omega {omega}); {advice}")
    return SolveResult(x=x, converged=converged, iterations=iterations, matvecs=matvecs,
                       residual_norm=r_norm, relative_residual=relative, residual_history=history,
                       seconds=time.perf_counter() - started, method="sor", message=message)


class SSORPreconditioner:
    """The SSOR preconditioner ``M_SSOR^-1`` (module docstring) for a symmetric positive definite ``A``.

    Applying it is one forward and one backward SOR sweep from zero, i.e. the
    triangular solves with ``D + omega L`` and ``D + omega U`` done in pyamg's kernel.

    Parameters
    ----------
    A : sparse matrix, ndarray or RelaxationMatrix
        Symmetric, real, positive diagonal.
    omega : float
        Relaxation factor in (0, 2); 1 gives symmetric Gauss-Seidel.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse.linalg as sla
    >>> A = np.array([[4.0, -1.0], [-1.0, 4.0]])
    >>> M = SSORPreconditioner(A, omega=1.0)
    >>> np.round(M.apply(np.array([4.0, 0.0])), 6)
    array([1.0625, 0.25  ])
    >>> x, info = sla.cg(A, np.ones(2), M=M.aspreconditioner())
    >>> info
    0
    """

    def __init__(self, A, omega: float = 1.0):
        self.omega = check_omega(omega)
        self.matrix = RelaxationMatrix(A)
        self.matrix.require_symmetric("the SSOR preconditioner")

    def apply(self, r: np.ndarray) -> np.ndarray:
        """``M_SSOR^-1 r`` for a vector ``r`` of length n."""
        r = np.ascontiguousarray(np.ravel(r), dtype=np.float64)
        z = np.zeros_like(r)
        self.matrix.sweep(z, r, self.omega)
        self.matrix.sweep(z, r, self.omega, backward=True)
        return z

    def aspreconditioner(self) -> LinearOperator:
        """``M_SSOR^-1`` as a symmetric LinearOperator, the ``M`` of scipy's and pyamg's Krylov solvers."""
        n = self.matrix.n
        return LinearOperator((n, n), matvec=self.apply, rmatvec=self.apply, dtype=np.float64)


def ssor_cg_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, maxiter=None, omega=1.0,
                   callback=None) -> SolveResult:
    """Solve ``A x = b`` by CG preconditioned with SSOR(omega); returns a :class:`SolveResult`.

    :func:`sciml.solvers.krylov.cg_result` (stopped on the true residual) with
    ``M = SSORPreconditioner(A, omega).aspreconditioner()``. The paper's second
    solver (Khodak et al., ICLR 2024, sec. 4), whose cost is the CG iteration count.

    Parameters
    ----------
    A : sparse matrix, ndarray or RelaxationMatrix
        Symmetric positive definite, real, n-by-n.
    b : ndarray
        Right-hand side.
    x0 : ndarray, optional
        Starting guess (zero by default), e.g. the previous time step's solution.
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    maxiter : int, optional
        CG iterations allowed over all restarts; default ``10 n``.
    omega : float
        Relaxation factor in (0, 2).
    callback : callable, optional
        ``callback(xk)`` after every CG iteration.

    Returns
    -------
    SolveResult
        With ``method = "ssor_cg"``.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> import numpy as np
    >>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(200, 200))
    >>> plain = ssor_cg_result(A, np.ones(200), rtol=1e-8, omega=1.0).iterations
    >>> tuned = ssor_cg_result(A, np.ones(200), rtol=1e-8, omega=1.9).iterations
    >>> tuned < plain
    True
    """
    started = time.perf_counter()
    preconditioner = SSORPreconditioner(A, omega)
    result = cg_result(preconditioner.matrix.matrix, b, x0, rtol=rtol, atol=atol,
                       maxiter=maxiter, M=preconditioner.aspreconditioner(), callback=callback)
    result.method = "ssor_cg"
    result.message = result.message.replace("cg did not converge", "ssor_cg did not converge", 1)
    result.seconds = time.perf_counter() - started
    return result


def optimal_sor_omega(rho_jacobi: float) -> float:
    """Young's optimal SOR factor ``2 / (1 + sqrt(1 - rho_J^2))`` for consistently ordered matrices.

    ``rho_J`` is the spectral radius of the Jacobi iteration matrix ``I - D^-1 A``
    (Young 1971; Saad 2003, sec. 4.2.5); it must lie in [0, 1).

    Examples
    --------
    >>> round(optimal_sor_omega(0.9), 4)
    1.3929
    """
    if not 0.0 <= rho_jacobi < 1.0:
        raise SciMLError(f"the Jacobi spectral radius must be in [0, 1) for SOR to converge, "
                         f"got {rho_jacobi!r}")
    return 2.0 / (1.0 + math.sqrt(1.0 - rho_jacobi ** 2))


sor = scipy_convention(sor_result)
ssor_cg = scipy_convention(ssor_cg_result)
