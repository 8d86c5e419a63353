"""GCRO-DR(m, k): restarted GMRES that deflates a recycle space carried from system to system.

Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces for sequences
of linear systems", SIAM J. Sci. Comput. 28(5), 2006, Algorithm 1. A caller-held
:class:`~sciml.solvers.recycle_space.RecycleSpace` keeps ``k`` directions ``U`` with
``C = Op U``, ``C^H C = I``; every restart cycle runs ``m - k`` Arnoldi steps on the
deflated operator ``(I - C C^H) Op``, minimises the residual over ``span([U, V])`` and
replaces ``U`` by the ``k`` harmonic Ritz vectors of smallest magnitude from that
augmented space. The next system starts from the last ``U``.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import RecycleSpace, gcrodr_result
>>> space = RecycleSpace(k=5)
>>> first = None
>>> for shift in (2.5, 2.51, 2.52):
...     A = sp.diags_array([-1.2, shift, -0.8], offsets=[-1, 0, 1], shape=(400, 400)).tocsr()
...     result = gcrodr_result(A, np.ones(400), rtol=1e-10, m=15, recycle=space)
...     first = first or result.iterations
>>> result.converged, space.size, result.iterations < first
(True, 5, True)
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError
from sciml.solvers.krylov import ON_BUDGET
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import (
    LinearSystem,
    Step,
    as_preconditioner,
    prepare_system,
    solve_by_corrections,
)

METHOD = "gcrodr"
DEFAULT_K = 20
"""Recycled directions when neither ``k`` nor a space is given (the paper's reference run)."""

BREAKDOWN = 1e-12
"""Arnoldi stops (the Krylov space is invariant) when ``h_{j+1,j}`` falls below this
times ``||Op v_j||``."""

RITZ_DEPENDENCE = 1e-8
"""A harmonic Ritz direction is dropped when less than this fraction of it is new."""


class _NonFinite(Exception):
    """Raised by :class:`_DeflationOperator` when ``Op`` produced NaN or Inf."""


class _DeflationOperator(LinearOperator):
    """``Op = A M`` (``A`` without ``M``), applied to blocks as one product, counting both.

    Every column counts as one application of ``A`` on the system's
    :class:`~sciml.solvers.stopping.CountingOperator`, so ``matvecs`` stays honest.
    """

    def __init__(self, system: LinearSystem, M: LinearOperator | None):
        dtype = system.dtype if M is None else np.result_type(system.dtype, M.dtype)
        super().__init__(dtype=dtype, shape=system.operator.shape)
        self.system = system
        self.M = M

    def _matmat(self, X):
        if self.M is not None:
            X = self.M.matmat(X)
        Y = np.asarray(self.system.operator.A @ X)
        self.system.operator.count += X.shape[1]
        if not np.isfinite(Y).all():
            raise _NonFinite
        return Y

    def _matvec(self, v):
        return self._matmat(np.reshape(v, (-1, 1)))[:, 0]


def _hdot(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``X^H w`` without conjugating the block ``X`` (one matrix-vector product)."""
    if np.iscomplexobj(X):
        return (X.T @ w.conj()).conj()
    return X.T @ w


def _givens(a, b):
    """``(c, s, rho)`` with ``[[c, s], [-conj(s), c]] @ [a, b] = [rho, 0]``, ``c`` real."""
    size = np.hypot(abs(a), abs(b))
    if size == 0.0:
        return 1.0, 0.0, 0.0
    if a == 0:
        return 0.0, 1.0, b
    phase = a / abs(a)
    return abs(a) / size, phase * np.conj(b) / size, phase * size


def _arnoldi(op: _DeflationOperator, Z: np.ndarray, kc: int, steps: int, beta: float,
             target: float):
    """Arnoldi on ``(I - C C^H) Op`` by classical Gram-Schmidt with one reorthogonalisation.

    ``Z`` holds ``C`` in its first ``kc`` columns and ``v_1`` in column ``kc``; the new basis
    vectors are written after it. Each step orthogonalises against ``[C, V_j]`` as two
    block products. Stops after ``steps`` steps, when the GMRES residual estimate (Givens
    rotations) reaches ``target``, on an invariant subspace, or on a non-finite ``Op v``.

    Returns
    -------
    done : int
        Steps completed (``s``); ``Z[:, kc:kc+s+1]`` is ``V_{s+1}``.
    H : ndarray
        ``(s+1) x s`` Hessenberg matrix; ``B``: ``kc x s`` with ``B = C^H Op V_s``.
    estimates : list of float
        GMRES residual estimate after every step.
    failed : bool
        True when ``Op v`` turned non-finite.
    """
    dtype = Z.dtype
    H = np.zeros((steps + 1, steps), dtype=dtype)
    B = np.zeros((kc, steps), dtype=dtype)
    g = np.zeros(steps + 1, dtype=dtype)
    g[0] = beta
    rotations = []
    estimates = []
    done, failed = 0, False
    for j in range(steps):
        try:
            w = op.matvec(Z[:, kc + j])
        except _NonFinite:
            failed = True
            break
        scale = np.linalg.norm(w)
        basis = Z[:, : kc + j + 1]
        coefficients = np.zeros(kc + j + 1, dtype=dtype)
        for _ in range(2):  # CGS2: Gram-Schmidt twice is enough (Giraud et al. 2005)
            pass_coefficients = _hdot(basis, w)
            w = w - basis @ pass_coefficients
            coefficients += pass_coefficients
        B[:, j] = coefficients[:kc]
        H[: j + 1, j] = coefficients[kc:]
        h = np.linalg.norm(w)
        H[j + 1, j] = h
        invariant = h <= BREAKDOWN * scale
        Z[:, kc + j + 1] = 0.0 if invariant else w / h
        column = H[: j + 2, j].copy()
        for i, (c, s) in enumerate(rotations):
            upper, lower = column[i], column[i + 1]
            column[i], column[i + 1] = c * upper + s * lower, -np.conj(s) * upper + c * lower
        c, s, _ = _givens(column[j], column[j + 1])
        rotations.append((c, s))
        g[j], g[j + 1] = c * g[j], -np.conj(s) * g[j]
        estimates.append(float(abs(g[j + 1])))
        done = j + 1
        if invariant or estimates[-1] <= target:
            break
    return done, H[: done + 1, :done], B[:, :done], estimates, failed


def _independent_columns(P: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` columns of ``P`` that add a new direction, orthonormalised in order.

    A loop over at most ``2 k`` short columns (length ``k + s``), not over ``n``.
    """
    kept = np.zeros((P.shape[0], 0), dtype=P.dtype)
    for column in P.T:
        norm = np.linalg.norm(column)
        if norm == 0.0:
            continue
        q = column / norm
        for _ in range(2):
            q = q - kept @ _hdot(kept, q)
        size = np.linalg.norm(q)
        if size > RITZ_DEPENDENCE:
            kept = np.column_stack([kept, q / size])
            if kept.shape[1] == count:
                break
    return kept


def _harmonic_ritz(G: np.ndarray, WtW: np.ndarray, count: int, real: bool) -> np.ndarray:
    """Eigenvectors of ``G^H G p = theta G^H (W_{m+1}^H W_m) p`` for the ``count`` smallest ``|theta|``.

    ``WtW`` is ``W_m^H W_{m+1}``. These are the harmonic Ritz pairs of ``Op`` on
    ``range(W_m)`` (``Op W_m p - theta W_m p`` orthogonal to ``Op W_m``), Parks et al.'s
    eigenproblems for both the GMRES start (where the pencil is ``(Hbar^H Hbar, H^H)``) and
    the GCRO-DR cycle; infinite eigenvalues (a singular right-hand matrix) are never chosen.
    For a real system the complex vectors are replaced by their real and imaginary parts
    (a conjugate pair spans the same real plane) and orthonormalised.
    """
    pairs, vectors = sla.eig(G.conj().T @ G, (WtW @ G).conj().T, homogeneous_eigvals=True)
    alpha, beta = np.abs(pairs[0]), np.abs(pairs[1])
    finite = beta > np.finfo(float).eps * alpha
    magnitude = np.full(alpha.shape, np.inf)
    np.divide(alpha, beta, out=magnitude, where=finite)
    order = [i for i in np.argsort(magnitude, kind="stable") if finite[i]][:count]
    chosen = vectors[:, order]
    if real:  # columns Re p_1, Im p_1, Re p_2, ...: best first, an Im part of 0 is skipped
        chosen = np.stack([chosen.real, chosen.imag], axis=2).reshape(chosen.shape[0], -1)
    return _independent_columns(chosen, count)


def _gcrodr_kernel(system: LinearSystem, M, M_given, m: int, k: int, space: RecycleSpace):
    """One GCRO-DR cycle per call: the correction ``d`` with ``A d ~ r``; updates ``space``."""
    op = _DeflationOperator(system, M)
    key = operator_key(system.operator.A, M_given)
    real = not np.issubdtype(op.dtype, np.complexfloating)
    state = {"bound": False}

    def bind():
        try:
            space.bind(op, key)
        except _NonFinite:
            space.clear()  # Op U is not finite: start this system without the space
        if space.size > k:
            space.store(space.U[:, :k], space.C[:, :k], key, METHOD)
        state["bound"] = True

    def kernel(r, max_iterations, report):
        if not state["bound"]:
            bind()
        kc = space.size
        U = None if kc == 0 else space.U.astype(op.dtype, copy=False)
        C = None if kc == 0 else space.C.astype(op.dtype, copy=False)
        steps = min(m - kc, max_iterations)
        Z = np.zeros((system.n, kc + steps + 1), dtype=op.dtype, order="F")
        if kc:
            projection = _hdot(C, r)
            r = r - C @ projection
            Z[:, :kc] = C
        beta = np.linalg.norm(r)
        if beta == 0.0 and kc:  # r lies in span(C): the projection alone solved it
            d = U @ projection
            d = d if M is None else M.matvec(d)
            report(d)
            return Step(d, 0)
        Z[:, kc] = r / beta
        done, H, B, estimates, failed = _arnoldi(op, Z, kc, steps, beta, system.target)
        if done == 0:
            return Step(None, 0, failure="the operator A M turned non-finite: check that M is a "
                                         "sound preconditioner for A")
        rhs = np.zeros(done + 1, dtype=op.dtype)
        rhs[0] = beta
        y = np.linalg.lstsq(H, rhs, rcond=None)[0]
        V = Z[:, kc:kc + done]
        dz = V @ y if kc == 0 else V @ y + U @ (projection - B @ y)
        d = dz if M is None else M.matvec(dz)
        if failed:
            report(d)
            return Step(d, done, estimates)
        _update_space(space, key, Z, U, H, B, done, k, real)
        report(d)
        return Step(d, done, estimates)

    return kernel


def _update_space(space: RecycleSpace, key: str, Z: np.ndarray, U, H: np.ndarray, B: np.ndarray,
                  done: int, k: int, real: bool) -> None:
    """Replace ``U, C`` by the harmonic Ritz directions of the cycle just run (paper, step 4)."""
    kc = 0 if U is None else U.shape[1]
    G = np.zeros((kc + done + 1, kc + done), dtype=Z.dtype)
    G[kc:, kc:] = H
    WtW = np.zeros((kc + done, kc + done + 1), dtype=Z.dtype)
    WtW[kc:, kc:kc + done] = np.eye(done)
    if kc:
        scale = 1.0 / np.linalg.norm(U, axis=0)  # D_k: the columns of U D_k have unit norm
        G[:kc, :kc] = np.diag(scale)
        G[:kc, kc:] = B
        WtW[:kc] = scale[:, None] * (U.conj().T @ Z[:, : kc + done + 1])
    try:
        P = _harmonic_ritz(G, WtW, min(k, kc + done), real)
    except np.linalg.LinAlgError:
        space.clear()  # QZ did not converge: continue as plain GMRES
        return
    if P.shape[1] == 0:
        space.clear()
        return
    P = P.astype(Z.dtype, copy=False)
    Y = Z[:, kc:kc + done] @ P[kc:]
    if kc:
        Y += U @ (scale[:, None] * P[:kc])
    CY = Z[:, : kc + done + 1] @ (G @ P)
    if np.isfinite(Y).all() and np.isfinite(CY).all():
        space.store(Y, CY, key, METHOD)
    else:
        space.clear()


def gcrodr_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, m=40, k=None, maxiter=None, M=None,
                  callback=None, recycle: RecycleSpace | None = None) -> SolveResult:
    """Solve ``A x = b`` by GCRO-DR(m, k) with a recycle space; returns a :class:`SolveResult`.

    For any nonsingular ``A``, and above all for a *sequence* of slowly changing systems
    solved one after the other with the same ``recycle`` space. At the start the space
    is bound to ``Op = A M`` (right preconditioning, so every residual is the true one):
    reused as it is when ``A`` and ``M`` are unchanged (:func:`operator_key`), else
    ``C = Op U`` is recomputed with one block product and re-orthonormalised. The
    starting guess is projected (``x += M U C^H r``, ``r -= C C^H r``); each cycle then runs
    ``m - k`` Arnoldi steps on ``(I - C C^H) Op``, minimises the residual over the
    augmented space and replaces ``U, C`` by the ``k`` harmonic Ritz vectors of smallest
    magnitude (an empty space: the first cycle is GMRES(m) and seeds it). The space is
    updated in place after every cycle, so the next system starts from the last one.

    Parameters
    ----------
    A : sparse matrix, ndarray or LinearOperator
        Nonsingular, n-by-n, real or complex (complex symmetric and non-Hermitian too).
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting guess (zero by default).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``, checked on the true
        residual after every cycle (the Arnoldi estimate only ends a cycle early).
    m : int
        Basis size per cycle: ``k`` recycled plus ``m - k`` new Krylov vectors (``m > k``).
    k : int, optional
        Recycled directions; default ``recycle.k``, or 20 without a space. At most
        ``recycle.k``.
    maxiter : int, optional
        Total Arnoldi steps (applications of ``Op``) over all cycles; default ``10 n``.
        Rebinding products and true-residual checks are counted in ``matvecs`` only.
    M : LinearOperator or matrix, optional
        Fixed preconditioner approximating ``A^-1``, applied on the right.
    callback : callable, optional
        ``callback(xk)`` after every cycle, with the current iterate.
    recycle : RecycleSpace, optional
        The caller's space, updated in place; None uses a throwaway ``RecycleSpace(k)``.
        A space for another size, a complex space for a real system, or one filled
        by another method is refused.

    Returns
    -------
    SolveResult
        ``iterations`` counts Arnoldi steps; ``matvecs`` every application of ``A``
        (Arnoldi, rebinding ``C = A M U``, the true residual after each cycle);
        ``residual_history`` the true residual at the start and after each cycle with
        the Arnoldi estimate of each step in between.

    References
    ----------
    Parks, de Sturler, Mackey, Johnson & Maiti (2006), SIAM J. Sci. Comput. 28(5),
    Algorithm 1. Departures: (1) for a real system the recycle space stays real: a
    complex harmonic Ritz vector is replaced by its real and imaginary parts (its
    conjugate pair spans the same real plane), orthonormalised, so a cycle may recycle
    a pair's real part only when ``k`` cuts it; (2) the residual is recomputed as
    ``b - A x`` after every cycle and re-projected against ``C``, and the stop is
    decided on it (the paper updates it recursively); (3) Arnoldi uses classical
    Gram-Schmidt with one reorthogonalisation (block products) instead of modified
    Gram-Schmidt; (4) the eigenproblems are solved in generalised form by QZ, which
    needs no inverse of ``H_m``; (5) directions that become numerically dependent are
    dropped and the space refills in later cycles; a failed eigen-solve empties it and
    the next cycle is plain GMRES(m).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[3.0, 1.0, 0.0], [-1.0, 3.0, 1.0], [0.0, -1.0, 3.0]])
    >>> result = gcrodr_result(A, np.ones(3), rtol=1e-12, m=3, k=1)
    >>> result.converged, result.iterations
    (True, 3)
    """
    started = time.perf_counter()
    for name, value in (("m", m), ("k", k)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                  or value < 1):
            raise SciMLError(f"gcrodr's {name} must be an integer >= 1, got {value!r}")
    if recycle is not None and not isinstance(recycle, RecycleSpace):
        raise SciMLError(f"recycle must be a RecycleSpace, got {type(recycle).__name__}; "
                         "create one with RecycleSpace(k) and pass it to every solve")
    if recycle is not None and k is not None and k > recycle.k:
        raise SciMLError(f"gcrodr's k={k} exceeds the recycle space's k={recycle.k}; "
                         f"pass k <= {recycle.k} or a RecycleSpace({k})")
    k = int(k if k is not None else recycle.k if recycle is not None else DEFAULT_K)
    if k >= m:
        raise SciMLError(f"gcrodr needs m > k (m new plus recycled vectors per cycle), got m={m}, "
                         f"k={k}; raise m or lower k")
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    space = RecycleSpace(k) if recycle is None else recycle
    space.check_compatible(system.n, system.dtype, METHOD)
    preconditioner = as_preconditioner(M, system.n)
    kernel = _gcrodr_kernel(system, preconditioner, M, int(m), k, space)
    return solve_by_corrections(
        METHOD, system, kernel,
        budget=10 * system.n if maxiter is None else int(maxiter),
        started=started, callback=callback, on_budget=ON_BUDGET,
        on_stagnation="GCRO-DR stagnated: clear the recycle space, raise m, use a "
                      "preconditioner or loosen rtol",
    )


gcrodr = scipy_convention(gcrodr_result)
