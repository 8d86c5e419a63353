"""What a solve returns: :class:`SolveResult`, and the adapter to scipy's ``(x, info)``.

Every method in :mod:`sciml.solvers` is written once as a function returning a
:class:`SolveResult`; :func:`scipy_convention` derives from it the function with
scipy's calling convention, so the two can never disagree.

Examples
--------
>>> import numpy as np
>>> from sciml.solvers import cg_result
>>> A = np.array([[4.0, 1.0], [1.0, 3.0]])
>>> result = cg_result(A, np.array([1.0, 2.0]), rtol=1e-10)
>>> result.converged, result.info, result.iterations
(True, 0, 2)
>>> sorted(result.record())
['converged', 'iterations', 'matvecs', 'method', 'relative_residual', 'residual_norm', 'seconds']
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from sciml.errors import ConvergenceError


@dataclass
class SolveResult:
    """The outcome of one linear solve, judged by the true residual.

    Attributes
    ----------
    x : ndarray
        The returned iterate, shape ``(n,)``.
    converged : bool
        Whether ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` holds for the returned ``x``.
    iterations : int
        Iterations used (Krylov methods: matrix-vector products of the method
        itself; ``direct``: solves with the LU factors).
    matvecs : int
        Applications of ``A``, counting the true-residual checks.
    residual_norm : float
        ``||b - A x||_2`` of the returned ``x``, computed afresh.
    relative_residual : float
        ``residual_norm / ||b||_2`` (0 when ``b`` is zero, where ``x`` is zero).
    residual_history : list of float
        Residual norms in order: the true residual at the start, whatever the method
        exposes per iteration (``gmres``: the Arnoldi estimate of every inner
        iteration; scipy's ``cg`` exposes none), and the true residual after every
        restart; the last entry is ``residual_norm``.
    seconds : float
        Wall time of the whole call, preconditioner setup included when a
        :class:`~sciml.solvers.LinearSolver` built it.
    method : str
        Name of the method that produced the result.
    message : str
        Empty when converged; otherwise one line with the residual reached, the
        tolerance, the iterations used and what to try.

    Examples
    --------
    >>> import numpy as np
    >>> r = SolveResult(np.zeros(2), False, 7, 8, 0.5, 0.25, [2.0, 0.5], 0.01, "cg",
    ...                 "cg did not converge")
    >>> r.info
    7
    """

    x: np.ndarray = field(repr=False)
    converged: bool
    iterations: int
    matvecs: int
    residual_norm: float
    relative_residual: float
    residual_history: list[float] = field(repr=False)
    seconds: float
    method: str
    message: str = ""

    @property
    def info(self) -> int:
        """scipy's exit code: 0 when converged, else the iterations used (at least 1)."""
        return 0 if self.converged else max(self.iterations, 1)

    def record(self) -> dict:
        """The JSON-serialisable scalars of this result, for dataset files and benchmarks."""
        return {
            "iterations": int(self.iterations),
            "matvecs": int(self.matvecs),
            "relative_residual": float(self.relative_residual),
            "residual_norm": float(self.residual_norm),
            "seconds": float(self.seconds),
            "converged": bool(self.converged),
            "method": str(self.method),
        }

    def raise_if_unconverged(self) -> "SolveResult":
        """Return ``self`` if converged, else raise :class:`~sciml.errors.ConvergenceError`."""
        if not self.converged:
            raise ConvergenceError(self.message)
        return self


def scipy_convention(solve: Callable[..., SolveResult]) -> Callable:
    """Derive ``f(A, b, ...) -> (x, info)`` from a function returning :class:`SolveResult`.

    The derived function takes exactly the arguments of ``solve`` (its name is
    ``solve``'s with the ``_result`` suffix dropped) and returns ``(result.x,
    result.info)`` as scipy's solvers do.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.solvers import cg_result
    >>> solve = scipy_convention(cg_result)
    >>> x, info = solve(np.diag([1.0, 2.0]), np.ones(2))
    >>> x, info
    (array([1. , 0.5]), 0)
    """
    name = solve.__name__.removesuffix("_result")

    @functools.wraps(solve)
    def scipy_style(*args, **kwargs):
        result = solve(*args, **kwargs)
        return result.x, result.info

    scipy_style.__name__ = scipy_style.__qualname__ = name
    scipy_style.__doc__ = f"""Solve ``A x = b`` by {name}, with scipy's calling convention.

    Takes the arguments of :func:`{solve.__name__}` and returns ``(x, info)``: ``info``
    is 0 when the true residual meets ``max(rtol ||b||, atol)`` and otherwise the
    number of iterations used. Call :func:`{solve.__name__}` for the full
    :class:`SolveResult` (residual, matvecs, history, the message saying what to try).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from sciml.solvers import {name}
    >>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(50, 50))
    >>> x, info = {name}(A, np.ones(50), rtol=1e-10)
    >>> info, bool(np.linalg.norm(np.ones(50) - A @ x) <= 1e-10 * np.sqrt(50))
    (0, True)
    """
    return scipy_style
