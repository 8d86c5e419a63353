"""The one stopping rule every solver here follows, and the checks and driver behind it.

A solve has converged iff the **true** residual of the returned iterate satisfies

    ||b - A x||_2 <= max(rtol ||b||_2, atol).

scipy's ``cg`` stops on its recursively updated residual and ``gmres`` on its
Arnoldi estimate; both drift from the true residual in floating point. The driver
:func:`solve_by_corrections` therefore runs a method as a sequence of *correction
solves*: from the current iterate ``x`` with true residual ``r = b - A x`` it asks
the method (a *kernel*) for a correction ``d`` with ``A d ~ r`` and at most the
iterations left, sets ``x <- x + d``, computes the true residual afresh and stops
when the rule holds, the iteration budget is spent, the kernel breaks down, or a
correction fails to reduce the true residual. This is iterative refinement with an
inexact inner solver (Higham, *Accuracy and Stability of Numerical Algorithms*,
2nd ed., ch. 12); with an exact inner solver (LU) it is classical refinement.

Matrix-vector products are counted by wrapping ``A`` in :class:`CountingOperator`.

Examples
--------
>>> import numpy as np
>>> system = prepare_system(np.diag([2.0, 4.0]), np.array([3.0, 4.0]), None, rtol=0.1, atol=0.0)
>>> system.b_norm, system.target
(5.0, 0.5)
>>> system.residual(np.array([1.5, 1.0])), system.operator.count
(array([0., 0.]), 1)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from sciml.errors import SciMLError
from sciml.solvers.result import SolveResult

# -- input checks -------------------------------------------------------------------


def check_options(what: str, options: dict, accepted: Iterable[str]) -> None:
    """Raise a one-line :class:`SciMLError` if ``options`` has a key not in ``accepted``."""
    accepted = sorted(accepted)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) if accepted else "none"
        raise SciMLError(f"{what} takes no option {unknown[0]!r}; its options are: {valid}")


def check_tolerances(rtol: float, atol: float, maxiter: int | None) -> None:
    """Check ``rtol, atol >= 0`` (finite) and ``maxiter`` a positive integer or None."""
    for name, value in (("rtol", rtol), ("atol", atol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
            raise SciMLError(f"{name} must be a number >= 0, got {value!r}")
        if not (math.isfinite(value) and value >= 0):
            raise SciMLError(f"{name} must be a finite number >= 0, got {value!r}")
    if maxiter is not None and (
        isinstance(maxiter, bool) or not isinstance(maxiter, (int, np.integer)) or maxiter < 1
    ):
        raise SciMLError(f"maxiter must be an integer >= 1 or None, got {maxiter!r}")


def as_operand(A) -> sp.sparray | sp.spmatrix | np.ndarray | LinearOperator:
    """Check that ``A`` is a square, finite sparse matrix, dense array or LinearOperator.

    Sparse matrices come back in CSR (or CSC) format, array-likes as ndarrays;
    a LinearOperator is returned as is (its entries cannot be checked).
    """
    if isinstance(A, LinearOperator):
        values = None
    elif sp.issparse(A):
        if A.format not in ("csr", "csc"):
            A = A.tocsr()
        values = A.data
    else:
        A = np.asarray(A)
        values = A
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise SciMLError(f"A must be square, got shape {tuple(A.shape)}; pass the n-by-n system matrix")
    if A.dtype is not None and not np.issubdtype(A.dtype, np.number):
        raise SciMLError(f"A must hold numbers, got dtype {A.dtype}; pass a sparse matrix, "
                         "ndarray or LinearOperator")
    if values is not None and not np.isfinite(values).all():
        raise SciMLError("A contains NaN or Inf; check how the system matrix was assembled")
    return A


def as_matrix(A, user: str) -> sp.csr_array:
    """``A`` as a checked sparse CSR array, for methods that need its entries.

    ``user`` names who needs the entries, for the error raised on a LinearOperator.
    """
    A = as_operand(A)
    if isinstance(A, LinearOperator):
        raise SciMLError(
            f"{user} needs the entries of A, but got a LinearOperator; pass A as a sparse "
            "matrix or ndarray, or use an iterative method without preconditioner"
        )
    return sp.csr_array(A)


def relative_asymmetry(A) -> float:
    """``max |A - A^H| / max |A|`` for a sparse or dense ``A`` (0 for a zero matrix).

    The one symmetry measure of the methods that need a symmetric (Hermitian) ``A``.

    Examples
    --------
    >>> import numpy as np
    >>> relative_asymmetry(np.array([[2.0, 1.0], [1.0, 2.0]])), relative_asymmetry(np.array([[2.0, 1.0], [0.0, 2.0]]))
    (0.0, 0.5)
    """
    if sp.issparse(A):
        difference = abs(A - A.conj().T)
        asymmetry = float(difference.max()) if difference.nnz else 0.0
        scale = float(abs(A).max()) if A.nnz else 0.0
    else:
        A = np.asarray(A)
        asymmetry = float(np.abs(A - A.conj().T).max(initial=0.0))
        scale = float(np.abs(A).max(initial=0.0))
    return asymmetry / scale if scale > 0 else 0.0


def check_vector(v, n: int, name: str) -> np.ndarray:
    """``v`` as a finite 1-D array of length ``n`` (shape ``(n,)`` or ``(n, 1)`` accepted)."""
    v = np.asarray(v)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1 or v.shape[0] != n:
        raise SciMLError(f"{name} has shape {v.shape} but A is {n}x{n}; pass a vector of length {n}")
    if not np.issubdtype(v.dtype, np.number):
        raise SciMLError(f"{name} must hold numbers, got dtype {v.dtype}")
    if not np.isfinite(v).all():
        raise SciMLError(f"{name} contains NaN or Inf; check how it was computed")
    return v


def as_preconditioner(M, n: int) -> LinearOperator | None:
    """``M`` (approximating ``A^-1``) as an n-by-n LinearOperator, or None."""
    if M is None:
        return None
    if isinstance(M, (str, dict, tuple, list)):
        raise SciMLError(
            f"M must be a LinearOperator or matrix, got {M!r}; to name a preconditioner use "
            "LinearSolver(preconditioner=...) or make_preconditioner(spec, A)"
        )
    M = aslinearoperator(M)
    if M.shape != (n, n):
        raise SciMLError(f"M has shape {M.shape} but A is {n}x{n}; build M for this A")
    return M


# -- counted operator and the checked system -----------------------------------------


class CountingOperator(LinearOperator):
    """``A`` as a LinearOperator that counts its applications (one per column).

    Examples
    --------
    >>> import numpy as np
    >>> op = CountingOperator(np.eye(3), np.float64)
    >>> _ = op @ np.ones(3); _ = op @ np.ones(3)
    >>> op.count
    2
    """

    def __init__(self, A, dtype):
        super().__init__(dtype=np.dtype(dtype), shape=A.shape)
        self.A = A
        self.count = 0

    def _matvec(self, v):
        self.count += 1
        return self.A @ v


@dataclass
class LinearSystem:
    """A checked system ``A x = b`` with its counted operator and stopping target.

    Attributes
    ----------
    operator : CountingOperator
        ``A``, counting its applications.
    b, x0 : ndarray
        Right-hand side and starting guess in the working dtype (float64 or complex128).
    b_norm : float
        ``||b||_2``.
    target : float
        ``max(rtol ||b||_2, atol)``: converged iff ``||b - A x||_2 <= target``.
    """

    operator: CountingOperator
    b: np.ndarray
    x0: np.ndarray
    b_norm: float
    target: float

    @property
    def n(self) -> int:
        return self.b.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.b.dtype

    def residual(self, x: np.ndarray) -> np.ndarray:
        """The true residual ``b - A x`` (one counted application of ``A``)."""
        return self.b - self.operator @ x


def prepare_system(A, b, x0, *, rtol: float, atol: float, maxiter: int | None = None) -> LinearSystem:
    """Check every input and return the :class:`LinearSystem` to solve.

    The working dtype is the common type of ``A``, ``b`` and ``x0`` promoted to at least
    double precision (float64 or complex128). When ``b`` is zero the start is ``x = 0``,
    which is exact.
    """
    check_tolerances(rtol, atol, maxiter)
    A = as_operand(A)
    n = A.shape[0]
    b = check_vector(b, n, "b")
    x0 = None if x0 is None else check_vector(x0, n, "x0")
    dtype = np.result_type(A.dtype, b.dtype, np.float64, *(() if x0 is None else (x0.dtype,)))
    b = np.asarray(b, dtype=dtype)
    b_norm = float(np.linalg.norm(b))
    if x0 is None or b_norm == 0.0:
        x0 = np.zeros(n, dtype=dtype)
    else:
        x0 = np.array(x0, dtype=dtype)
    return LinearSystem(CountingOperator(A, dtype), b, x0, b_norm, max(rtol * b_norm, float(atol)))


# -- the driver -----------------------------------------------------------------------


@dataclass
class Step:
    """What a kernel returns for one correction solve.

    Attributes
    ----------
    correction : ndarray or None
        ``d`` with ``A d ~ r``; None when the kernel broke down.
    iterations : int
        Iterations the kernel used.
    estimates : list of float
        Residual norms the kernel tracked per iteration (may be empty).
    failure : str
        Empty, or what broke down and what to try.
    """

    correction: np.ndarray | None
    iterations: int
    estimates: list[float] = field(default_factory=list)
    failure: str = ""


Kernel = Callable[[np.ndarray, int, Callable[[np.ndarray], None]], Step]
"""``kernel(r, max_iterations, report) -> Step``: solve ``A d ~ r`` with at most
``max_iterations`` iterations, calling ``report(d_k)`` with each new iterate of ``d``
that the method exposes (scipy's cg: every iteration)."""


def solve_by_corrections(
    method: str,
    system: LinearSystem,
    kernel: Kernel,
    *,
    budget: int,
    started: float,
    callback: Callable[[np.ndarray], None] | None = None,
    on_budget: str,
    on_stagnation: str,
) -> SolveResult:
    """Run ``kernel`` on the true residual until the stopping rule holds (module docstring).

    Parameters
    ----------
    method : str
        Name recorded in the result and used in its message.
    system : LinearSystem
        The checked system.
    kernel : Kernel
        The method's correction solve.
    budget : int
        Total iterations allowed over all kernel calls.
    started : float
        ``time.perf_counter()`` at the start of the call, for ``seconds``.
    callback : callable, optional
        Called as ``callback(x)`` with every iterate the kernel reports.
    on_budget, on_stagnation : str
        What to try, for the message when the budget is spent or a correction did
        not reduce the true residual.

    Returns
    -------
    SolveResult

    Examples
    --------
    Jacobi iteration as a kernel, one sweep per call:

    >>> import time
    >>> import numpy as np
    >>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
    >>> system = prepare_system(A, np.array([1.0, 2.0]), None, rtol=1e-10, atol=0.0)
    >>> sweep = lambda r, max_iterations, report: Step(r / np.diag(A), 1)
    >>> result = solve_by_corrections("jacobi", system, sweep, budget=100,
    ...                               started=time.perf_counter(), on_budget="", on_stagnation="")
    >>> result.converged, result.iterations, result.matvecs == result.iterations
    (True, 19, True)
    """
    x = system.x0.copy()
    r = system.residual(x) if x.any() else system.b.copy()
    r_norm = float(np.linalg.norm(r))
    history = [r_norm]
    iterations = 0
    advice = ""
    while r_norm > system.target:
        if iterations >= budget:
            advice = on_budget
            break
        base = x
        report = (lambda d: callback(base + d)) if callback is not None else (lambda d: None)
        step = kernel(r, budget - iterations, report)
        iterations += step.iterations
        history.extend(step.estimates)
        if step.correction is None:
            advice = step.failure
            break
        if not np.isfinite(step.correction).all():
            advice = "the iterate turned non-finite: check that M is a sound preconditioner for A"
            break
        previous, x = r_norm, base + step.correction
        r = system.residual(x)
        r_norm = float(np.linalg.norm(r))
        history.append(r_norm)
        if r_norm > system.target and iterations < budget and not r_norm < previous:
            advice = on_stagnation
            break
    converged = r_norm <= system.target
    relative = r_norm / system.b_norm if system.b_norm > 0 else 0.0
    message = ""
    if not converged:
        message = (
            f"{method} did not converge: residual {r_norm:.3e} (relative {relative:.3e}) is above "
            f"the tolerance {system.target:.3e} after {iterations} iterations (budget {budget}); "
            f"{advice}"
        )
    return SolveResult(
        x=x,
        converged=converged,
        iterations=iterations,
        matvecs=system.operator.count,
        residual_norm=r_norm,
        relative_residual=relative,
        residual_history=history,
        seconds=time.perf_counter() - started,
        method=method,
        message=message,
    )
