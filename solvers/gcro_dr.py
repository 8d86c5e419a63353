"""GCRO-DR(m, k): restarted GMRES that deflates a recycle space carried from system to system.

Parks, de Sturler, Mackey, Johnson & Maiti, "Recycling Krylov subspaces for sequences
of linear systems", SIAM J. Sci. Comput. 28(5), 2006, Algorithm 1, in the flexible
form of Carvalho, Gratton, Lago & Vasseur, "A flexible generalized conjugate residual
method with inner orthogonalization and deflated restarting", SIAM J. Matrix Anal.
Appl. 32(4), 2011 (as scipy's ``gcrotmk``, after de Sturler's GCROT and Hicken &
Zingg, keeps its directions). A caller-held
:class:`~sciml.solvers.recycle_space.RecycleSpace` keeps ``k`` directions ``U`` **in
the solution variable** with ``C = A U``, ``C^H C = I``; every restart cycle runs
``m - k`` steps of flexible Arnoldi on ``(I - C C^H) A M``, keeping ``Z = M V``,
minimises the residual over ``x + span([U, Z])`` and replaces ``U`` by the ``k``
harmonic Ritz directions of smallest magnitude from that space (``[U, Z] P``, no
application of ``M``). The next system starts from the last ``U``.

Why the solution variable: with ``U`` in the preconditioned variable (``x = M y``, as
Parks et al. write right preconditioning) a new matrix *or a new preconditioner*
forces ``C = A M U``, ``k`` applications of ``M``; a sequence with one preconditioner
per system (an AMG hierarchy or ILU per matrix) paid them on every system, mostly
more than its few Arnoldi steps. Here rebinding is ``C = A U``, ``k`` products with
``A`` and none with ``M``, and a change of ``M`` alone costs nothing.

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
from scipy.linalg.blas import get_blas_funcs
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
SPACE_METHOD = "gcrodr-x"
"""The tag of a space this module fills: ``U`` in the solution variable, ``C = A U``
(before, ``U`` was in the preconditioned variable; such a space is refused)."""
DEFAULT_K = 20
"""Recycled directions when neither ``k`` nor a space is given (the paper's reference run)."""

BREAKDOWN = 1e-12
"""Arnoldi stops (the Krylov space is invariant) when ``h_{j+1,j}`` falls below this
times ``||A M v_j||``."""

RITZ_DEPENDENCE = 1e-8
"""A harmonic Ritz direction is dropped when less than this fraction of it is new."""


class _NonFinite(Exception):
    """Raised by :class:`_MatrixOperator` when ``A`` produced NaN or Inf."""


class _MatrixOperator(LinearOperator):
    """``A`` applied to blocks as one product, counted and checked for NaN or Inf.

    Every column counts as one application of ``A`` on the system's
    :class:`~sciml.solvers.stopping.CountingOperator`, so ``matvecs`` stays honest.
    The recycle space is bound to this operator (``C = A U``).
    """

    def __init__(self, system: LinearSystem, dtype):
        super().__init__(dtype=dtype, shape=system.operator.shape)
        self.system = system

    def _matmat(self, X):
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


def _arnoldi(A: _MatrixOperator, M: LinearOperator | None, W: np.ndarray, Z: np.ndarray | None,
             kc: int, steps: int, beta: float, target: float):
    """Flexible Arnoldi on ``(I - C C^H) A M`` by modified Gram-Schmidt (Saad, *Iterative
    Methods for Sparse Linear Systems*, 2nd ed., 2003, Algorithms 6.2 and 9.6).

    ``W`` (preallocated, ``n x (m + 1)``, Fortran order) holds ``C`` in its first ``kc``
    columns and ``v_1`` in column ``kc``; the new basis vectors are written after it.
    Step ``j`` stores ``z_j = M v_j`` in column ``j`` of ``Z`` (preallocated like ``W``;
    None without ``M``, when ``z_j = v_j``), so that ``A Z_s = C B + V_{s+1} H`` and
    the cycle's correction and new recycle space are combinations of ``Z`` and ``U``
    with no further application of ``M``. Each step orthogonalises ``A z_j`` against the columns of ``[C, V_j]`` one by one
    (a BLAS ``dot`` and ``axpy`` each): the vector stays in cache, so the basis is read
    from memory about once per step, where classical Gram-Schmidt with
    reorthogonalisation as block products reads it four times; the basis (up to 60
    vectors) does not fit in cache, so this is what the step costs (measured: 30% less
    orthogonalisation time at 32^3, the same iterations). Stops after ``steps``
    steps, when the GMRES residual estimate (Givens rotations) reaches ``target``, on an
    invariant subspace, or on a non-finite ``A M v``.

    Returns
    -------
    done : int
        Steps completed (``s``); ``W[:, kc:kc+s+1]`` is ``V_{s+1}``.
    H : ndarray
        ``(s+1) x s`` Hessenberg matrix; ``B``: ``kc x s`` with ``B = C^H A Z_s``.
    estimates : list of float
        GMRES residual estimate after every step.
    failed : bool
        True when ``A M v`` turned non-finite.
    """
    dtype = W.dtype
    H = np.zeros((steps + 1, steps), dtype=dtype)
    B = np.zeros((kc, steps), dtype=dtype)
    g = np.zeros(steps + 1, dtype=dtype)
    g[0] = beta
    cosines = np.zeros(steps)
    sines = np.zeros(steps, dtype=dtype)
    estimates = []
    done, failed = 0, False
    dot, axpy = get_blas_funcs(("dotc" if np.iscomplexobj(W) else "dot", "axpy"), (W,))
    n = W.shape[0]
    columns = [W[:, i] for i in range(kc + steps)]  # views, made once per cycle
    for j in range(steps):
        try:
            if M is None:
                z = W[:, kc + j: kc + j + 1]
            else:
                z = Z[:, j: j + 1]
                z[:] = M.matmat(W[:, kc + j: kc + j + 1])
            w = A.matmat(z)[:, 0]
        except _NonFinite:
            failed = True
            break
        scale = np.linalg.norm(w)
        coefficients = np.empty(kc + j + 1, dtype=dtype)
        for i, column_i in enumerate(columns[: kc + j + 1]):  # modified Gram-Schmidt: w stays in cache
            coefficients[i] = h_i = dot(column_i, w)
            w = axpy(column_i, w, n, -h_i)
        B[:, j] = coefficients[:kc]
        H[: j + 1, j] = coefficients[kc:]
        h = np.linalg.norm(w)
        H[j + 1, j] = h
        invariant = h <= BREAKDOWN * scale
        W[:, kc + j + 1] = 0.0 if invariant else w / h
        column = H[: j + 2, j].copy()
        for i in range(j):
            upper, lower = column[i], column[i + 1]
            column[i] = cosines[i] * upper + sines[i] * lower
            column[i + 1] = -np.conj(sines[i]) * upper + cosines[i] * lower
        cosines[j], sines[j], _ = _givens(column[j], column[j + 1])
        g[j], g[j + 1] = cosines[j] * g[j], -np.conj(sines[j]) * g[j]
        estimates.append(float(abs(g[j + 1])))
        done = j + 1
        if invariant or estimates[-1] <= target:
            break
    return done, H[: done + 1, :done], B[:, :done], estimates, failed


def _independent_columns(P: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` columns of ``P`` that add a new direction, orthonormalised in order.

    Unpivoted QR of the column-normalised ``P``: ``|R_ii|`` is the part of column ``i``
    outside the span of the columns before it, so columns with ``|R_ii|`` at most
    :data:`RITZ_DEPENDENCE` are deleted (which leaves the others' ``R_ii`` unchanged) and
    the QR is repeated until none is; ``Q`` then spans the kept columns in order.
    """
    norms = np.linalg.norm(P, axis=0)
    P = P[:, norms > 0.0] / norms[norms > 0.0]
    while P.shape[1]:
        Q, R = np.linalg.qr(P)
        dependent = np.flatnonzero(np.abs(np.diag(R)) <= RITZ_DEPENDENCE)
        if dependent.size == 0:
            return Q[:, :count]
        P = np.delete(P, dependent, axis=1)
    return P


def _harmonic_ritz(G: np.ndarray, T: np.ndarray, count: int, real: bool) -> np.ndarray | None:
    """Coefficients ``p`` of the ``count`` harmonic Ritz pairs of smallest ``|theta|``.

    Parks et al.'s eigenproblem ``G^H G p = theta G^H T p`` with ``T = W_{m+1}^H V_hat``
    (``V_hat = [Y D, V_m]`` in the preconditioned variable, ``Y = M^{-1} U``,
    ``W_{m+1} = [C, V_{m+1}]``, ``A M V_hat = W_{m+1} G``): the harmonic Ritz pairs of
    ``A M`` on ``range(V_hat)``. It is solved as a standard eigenproblem: with
    ``G = Q R`` (thin QR; ``R`` is invertible when ``A M V_hat`` has full
    rank), ``q = R p`` satisfies ``(Q^H T R^{-1}) q = (1 / theta) q``, so the wanted pairs
    are those of *largest* ``|1 / theta|`` (``1 / theta = 0``, an infinite ``theta``, is
    never chosen). Returns None when ``R`` is numerically singular. For a real system the
    complex vectors are replaced by their real and imaginary parts (a conjugate pair spans
    the same real plane) and orthonormalised.
    """
    Q, R = np.linalg.qr(G)
    diagonal = np.abs(np.diag(R))
    if diagonal.min() <= np.finfo(float).eps * G.shape[0] * diagonal.max():
        return None
    K = sla.solve_triangular(R, (Q.conj().T @ T).conj().T, trans="C", lower=False).conj().T
    inverse_theta, vectors = np.linalg.eig(K)
    magnitude = np.abs(inverse_theta)
    order = [i for i in np.argsort(-magnitude, kind="stable") if magnitude[i] > 0.0][:count]
    chosen = sla.solve_triangular(R, vectors[:, order], lower=False)
    if real:  # columns Re p_1, Im p_1, Re p_2, ...: best first, an Im part of 0 is skipped
        chosen = np.stack([chosen.real, chosen.imag], axis=2).reshape(chosen.shape[0], -1)
    return _independent_columns(chosen, count)


class _Cycles:
    """GCRO-DR cycles for one solve: the kernel of :func:`solve_by_corrections`.

    Holds ``U`` (in the solution variable) and ``C = A U`` (``C^H C = I``) locally from
    cycle to cycle, updated by the paper's small-matrix step (a QR factorisation of the
    ``(m+1) x k`` matrix ``G P``), and hands them to the caller's space once, in
    :meth:`finish`.
    """

    def __init__(self, system: LinearSystem, M, m: int, k: int, space: RecycleSpace):
        self.system, self.M, self.m, self.k, self.space = system, M, m, k, space
        dtype = system.dtype if M is None else np.result_type(system.dtype, M.dtype)
        self.A = _MatrixOperator(system, dtype)
        self.key = operator_key(system.operator.A)
        self.real = not np.issubdtype(dtype, np.complexfloating)
        self.W = self.Z = None
        self.U = self.C = self.Y = None
        self.changed = False

    def bind(self) -> None:
        """Make the caller's space valid for ``A`` (``size`` products only when ``A`` changed)."""
        space = self.space
        try:
            space.bind(self.A, self.key)
        except _NonFinite:
            space.clear()  # A U is not finite: start this system without the space
        dtype = self.A.dtype
        if space.size:
            self.U = space.U[:, : self.k].astype(dtype)
            self.C = space.C[:, : self.k].astype(dtype)
            if self.M is not None:  # the last M's preimage of U, else the flexible stand-in C
                carried = space.preimage if space.preimage is not None else space.C
                self.Y = carried[:, : self.k].astype(dtype)
        # the Arnoldi basis and Z = M V live in the space's scratch, so that a sequence of
        # solves does not fault fresh pages in for them every time
        self.W, Z = space.scratch(self.system.n, dtype, self.m + 1, count=2)
        if self.M is not None:
            self.Z = Z[:, : self.m]

    def __call__(self, r, max_iterations, report):
        if self.W is None:
            self.bind()
        U, C, W = self.U, self.C, self.W
        kc = 0 if U is None else U.shape[1]
        steps = min(self.m - kc, max_iterations)
        if kc:
            projection = _hdot(C, r)
            r = r - C @ projection
            W[:, :kc] = C
        beta = np.linalg.norm(r)
        if beta == 0.0 and kc:  # r lies in span(C) = A span(U): the projection alone solved it
            d = U @ projection
            report(d)
            return Step(d, 0)
        W[:, kc] = r / beta
        done, H, B, estimates, failed = _arnoldi(self.A, self.M, W, self.Z, kc, steps, beta,
                                                 self.system.target)
        if done == 0:
            return Step(None, 0, failure="the operator A M turned non-finite: check that M is a "
                                         "sound preconditioner for A")
        rhs = np.zeros(done + 1, dtype=W.dtype)
        rhs[0] = beta
        y = np.linalg.lstsq(H, rhs, rcond=None)[0]
        d = self._directions(done) @ y
        if kc:
            d += U @ (projection - B @ y)
        if not failed:
            self._update(H, B, done)
        report(d)
        return Step(d, done, estimates)

    def _directions(self, done: int) -> np.ndarray:
        """``Z_s = M V_s``, the cycle's search directions in the solution variable."""
        kc = 0 if self.U is None else self.U.shape[1]
        return self.W[:, kc:kc + done] if self.Z is None else self.Z[:, :done]

    def _update(self, H: np.ndarray, B: np.ndarray, done: int) -> None:
        """Replace ``U, C`` by the harmonic Ritz directions of the cycle just run (paper, step 4)."""
        U, W = self.U, self.W
        kc = 0 if U is None else U.shape[1]
        G = np.zeros((kc + done + 1, kc + done), dtype=W.dtype)
        G[kc:, kc:] = H
        T = np.zeros((kc + done + 1, kc + done), dtype=W.dtype)  # W_{m+1}^H V_hat
        T[kc:kc + done, kc:] = np.eye(done)
        if kc:
            scale = 1.0 / np.linalg.norm(U, axis=0)  # D_k: the columns of U D_k have unit norm
            G[:kc, :kc] = np.diag(scale)
            G[:kc, kc:] = B
            T[:, :kc] = (W[:, : kc + done + 1].conj().T @ (U if self.Y is None else self.Y)) * scale
        P = _harmonic_ritz(G, T, min(self.k, kc + done), self.real)
        if P is None or P.shape[1] == 0:
            self._drop()
            return
        P = P.astype(W.dtype, copy=False)
        # C = W_{m+1} G P = W_{m+1} Q R, so C <- W_{m+1} Q and U <- [U D_k, Z_m] P R^{-1}
        Q, R, pivots = sla.qr(G @ P, mode="economic", pivoting=True)
        diagonal = np.abs(np.diag(R))
        keep = int(np.count_nonzero(diagonal > RITZ_DEPENDENCE * diagonal[0])) if diagonal[0] > 0 else 0
        if keep == 0:
            self._drop()
            return
        P = sla.solve_triangular(R[:keep, :keep], P[:, pivots[:keep]].T, trans="T", lower=False).T

        def recombine(new: np.ndarray, old: np.ndarray | None) -> np.ndarray:
            """``[old D_k, new] P``: the cycle's block and the previous directions, recombined."""
            out = new @ P[kc:]
            if kc:
                out += old @ (scale[:, None] * P[:kc])
            return out

        if self.M is not None:  # the preimage follows: [Y D_k, V_m] P R^{-1}
            self.Y = recombine(W[:, kc:kc + done], self.Y)
        self.U = recombine(self._directions(done), U)
        self.C = W[:, : kc + done + 1] @ Q[:, :keep]
        self.changed = True

    def _drop(self) -> None:
        """A degenerate cycle: forget the space and continue as plain GMRES(m)."""
        self.U = self.C = self.Y = None
        self.changed = True

    def finish(self) -> None:
        """Hand ``U, C`` to the caller's space (the only full-length QR of a solve)."""
        if not self.changed:
            return
        if self.U is None:
            self.space.clear()
        elif all(np.isfinite(X).all() for X in (self.U, self.C, self.Y) if X is not None):
            self.space.store(self.U, self.C, self.key, SPACE_METHOD, preimage=self.Y)
        else:
            self.space.clear()


def gcrodr_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, m=40, k=None, maxiter=None, M=None,
                  callback=None, recycle: RecycleSpace | None = None) -> SolveResult:
    """Solve ``A x = b`` by GCRO-DR(m, k) with a recycle space; returns a :class:`SolveResult`.

    For any nonsingular ``A``, and above all for a *sequence* of slowly changing systems
    solved one after the other with the same ``recycle`` space. At the start the space
    is bound to ``A`` (``U`` lives in the solution variable): reused as it is when ``A``
    is unchanged (:func:`operator_key`; a new ``M`` alone costs nothing), else
    ``C = A U`` is recomputed with one block product (``size`` applications of ``A``, none
    of ``M``) and re-orthonormalised. The starting guess is projected (``x += U C^H r``,
    ``r -= C C^H r``); each cycle then runs ``m - k`` flexible Arnoldi steps on
    ``(I - C C^H) A M`` (right preconditioning, so every residual is the true one),
    keeping ``Z = M V``, minimises the residual over ``x + span([U, Z])`` and replaces
    ``U, C`` by the ``k`` harmonic Ritz directions of smallest magnitude (an empty space:
    the first cycle is GMRES(m) and seeds it). Between cycles
    ``U, C`` are updated by the paper's small-matrix step (QR of ``G P``); the caller's
    space is updated in place once, at the end of the solve, so the next system starts
    from the last cycle's directions.

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
        Total Arnoldi steps (applications of ``A M``) over all cycles; default ``10 n``.
        Rebinding products and true-residual checks are counted in ``matvecs`` only.
    M : LinearOperator or matrix, optional
        Preconditioner approximating ``A^-1``, applied on the right once per Arnoldi
        step (``M v_j`` is stored: ``n x m`` more memory, no other application). It may
        change from solve to solve without any cost to the space.
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
        (Arnoldi, rebinding ``C = A U``, the true residual after each cycle);
        ``residual_history`` the true residual at the start and after each cycle with
        the Arnoldi estimate of each step in between.

    References
    ----------
    Parks, de Sturler, Mackey, Johnson & Maiti (2006), SIAM J. Sci. Comput. 28(5),
    Algorithm 1, with the flexible Arnoldi relation ``A [U, Z_m] = [C, V_{m+1}] G`` of
    Carvalho, Gratton, Lago & Vasseur (2011), SIAM J. Matrix Anal. Appl. 32(4), so that
    ``U`` stays in the solution variable (Parks et al. keep it in the preconditioned
    one, ``x = M y``). Departures: (0) the harmonic Ritz problem keeps Parks et al.'s
    algebra on ``V_hat = [Y D_k, V_m]``, which needs ``Y = M^{-1} U``; ``Y`` is updated
    with ``U`` (``[Y D_k, V_m] P``, exact while ``M`` is the same) and carried in the
    space (:attr:`~sciml.solvers.RecycleSpace.preimage`); after a change of ``M`` it is
    the previous ``M``'s preimage (measured: 2.6% more Arnoldi steps than Parks et al.'s
    exact algebra on 2-D Helmholtz with a new shifted-Laplacian AMG per system), and for
    a space filled without one ``C`` stands in for it (as if ``A M = I`` on
    ``span(C)``). ``Y`` steers only which
    directions are kept, never the solution; (1) for a real system the recycle space stays real: a
    complex harmonic Ritz vector is replaced by its real and imaginary parts (its
    conjugate pair spans the same real plane), orthonormalised, so a cycle may recycle
    a pair's real part only when ``k`` cuts it; (2) the residual is recomputed as
    ``b - A x`` after every cycle and re-projected against ``C``, and the stop is
    decided on it (the paper updates it recursively); (3) the eigenproblem
    ``G^H G p = theta G^H W^H V_hat p`` is solved as the standard eigenproblem of
    ``Q^H W^H V_hat R^{-1}`` (``G = Q R``) for the largest ``|1 / theta|``, which needs
    no inverse of ``H_m`` and no QZ; (4) directions that
    become numerically dependent are dropped and the space refills in later cycles; a
    degenerate cycle (``R`` singular) empties it and the next cycle is plain GMRES(m).

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
    space.check_compatible(system.n, system.dtype, SPACE_METHOD)
    cycles = _Cycles(system, as_preconditioner(M, system.n), int(m), k, space)
    result = solve_by_corrections(
        METHOD, system, cycles,
        budget=10 * system.n if maxiter is None else int(maxiter),
        started=started, callback=callback, on_budget=ON_BUDGET,
        on_stagnation="GCRO-DR stagnated: clear the recycle space, raise m, use a "
                      "preconditioner or loosen rtol",
    )
    cycles.finish()
    return result


gcrodr = scipy_convention(gcrodr_result)
