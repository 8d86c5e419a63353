"""Recycled CG: deflated preconditioned CG that carries approximate eigenvectors between solves.

The symmetric positive definite counterpart of GCRO-DR (:mod:`sciml.solvers.gcro_dr`):
for a sequence of SPD systems ``A(i) x = b(i)`` it keeps ``k`` approximate
eigenvectors ``W`` of the preconditioned operator ``M A`` belonging to its smallest
eigenvalues, the modes that make CG slow, and deflates them from the next solve.

Each solve runs the deflated preconditioned CG of Saad, Yeung, Erhel & Guyomarc'h,
"A deflated version of the conjugate gradient algorithm", SIAM J. Sci. Comput. 21(5),
2000, with the preconditioning step ``z = M r`` inserted:

- start ``x0 <- x0 + W (W^H A W)^-1 W^H r0``, so that ``W^H r0 = 0``;
- ``p0 = z0 - W mu0`` and ``p_{j+1} = beta_j p_j + z_{j+1} - W mu_{j+1}`` with
  ``(W^H A W) mu_j = (A W)^H z_j``: every search direction is A-orthogonal to ``W``.

In the terms of Tang, Nabben, Vuik & Erlangga, "Comparison of two-level
preconditioners derived from deflation, domain decomposition and multigrid methods",
J. Sci. Comput. 39, 2009, this is PCG with the preconditioner ``P^T M`` (their DEF2;
Frank & Vuik, SIAM J. Sci. Comput. 23, 2001, analyse the deflated PCG family) and the
projected start above, which DEF2 needs. Here ``W`` is kept with ``W^H A W = I``, so
``mu_j = (A W)^H z_j``: the overhead per iteration is one ``k``-by-``n`` product
(``k`` dot products) and one ``n``-by-``k`` product, no extra application of ``A``
or ``M``.

At the end of a solve ``W`` is updated by a Rayleigh-Ritz step on ``Z = [W, P]``,
where ``P`` holds the first ``4 k`` search directions of the solve's first correction
(``HARVEST_FACTOR``; with a preconditioner, not the one that converged, whose
``M A p`` would cost one more application of ``M``; Saad et al.'s def-CG(k, l)
projects onto the same kind of space ``span[W, P_l]``):
``G y = theta F y`` with ``F = Z^H A Z`` and ``G = (A Z)^H M (A Z)``, the Rayleigh-Ritz
projection of ``M A`` in the A-inner product (for ``M = I`` the pencil
``(Z^T A^2 Z, Z^T A Z)``). The A-inner product is chosen because ``M A`` is
self-adjoint in it and it needs no ``M^-1``, which an AMG cycle does not provide (the
``M^-1``-inner product of eigCG would need ``W^H M^-1 W``). The ``k`` Ritz vectors of
smallest ``theta`` become the new ``W``. As in def-CG, ``F`` and ``G`` come from what
the iteration already has: ``W^H A W = I`` and ``W^H A P = 0`` (the deflation),
``P^H A P = diag(rho_j / alpha_j)`` (conjugacy), and since ``A p_j = (r_j - r_{j+1}) /
alpha_j``, ``M A p_j = (z_j - z_{j+1}) / alpha_j`` and ``r_i^H z_j = rho_j delta_ij``,
``(A P)^H M A P`` is tridiagonal in the ``rho_j`` and ``alpha_j``; ``(A W)^H M A p_j =
(mu_j - mu_{j+1}) / alpha_j`` from the ``mu_j`` the deflation computes. Only
``(A W)^H M A W`` is a product of ``n``-vectors (``k x n x k``), and the new ``U = Z Y``,
``C = A Z Y``, ``M C`` are three ``n x c x k`` products with the blocks the solve kept
(``A P`` is the recurrence's own product, ``M A p_j`` the difference above): the step
costs no application of ``A`` or ``M``. The blocks live in the space's scratch
(:meth:`RecycleSpace.scratch`), so a sequence of solves reuses their memory.

The ``W``-block ``(A W)^H M (A W)`` comes from the ``M C`` the space carries
(:attr:`RecycleSpace.MC`, in ``U``'s basis, which the space keeps): exact when ``A`` and
``M`` are those of the previous solve; after a change of either it is the previous
solve's ``M_old A_old W`` (``stale_selection=True``, the default). Applying the new
``M`` to ``A W`` instead would cost ``k`` applications of ``M`` per solve: with ``k =
10`` as many as the iterations on AMG-preconditioned Darcy (8 a system at 100^2). As
with GCRO-DR's carried preimage (:mod:`sciml.solvers.gcro_dr`), the stale block only
*chooses* the next directions: the deflation (``W``, ``A W`` with this ``A``), the
iterates, the stopping rule and the cross block ``(A W)^H M A P`` stay exact. Measured
on 20 sorted log-normal Darcy systems at 100^2 with a new SA-AMG per system (k = 10):
the same iterations (8.1 a system), 9.1 instead of 18.4 applications of ``M``, 0.78x
the time (setup included). Keeping the first directions beat keeping the last ones on
log-normal Darcy sequences, and ``4 k`` beat ``k`` and ``2 k``.

Departures from the references: (i) the space lives in a caller-held
:class:`~sciml.solvers.recycle_space.RecycleSpace` (``U``, ``C = A U`` orthonormal, ``M
C``); when the matrix changes, ``A U`` is one block product of ``A`` and ``W^H A W = U^H
A U`` is diagonalised (directions whose eigenvalue falls below
``POSITIVITY_TOLERANCE`` times the largest are dropped), with no QR of an ``n x k``
block: the Rayleigh-Ritz step stores the new ``U`` with ``C`` made orthonormal through
its ``k x k`` Gram matrix; (ii) the solve stops on the true residual
(:mod:`sciml.solvers.stopping`), restarting the deflated iteration from the true
residual if the recursive one claimed convergence too early; the directions of such a
restart are not harvested (they are not conjugate to the first ones); (iii) after a
change of ``A`` or ``M`` the update is a Rayleigh-Ritz step of the new ``M A`` except
for its ``W``-block, which is the previous operator's (above). Forming ``F`` and ``G``
by explicit block products, which stays a true Rayleigh-Ritz step when rounding erodes
conjugacy, gave the same iterations on the bench's sorted Darcy and Poisson sequences
at 100^2 (AMG, and Darcy without a preconditioner: within one of 400), Ritz spaces
within principal angles of 1e-6, and cost 2-4% more time there. eigCG (Stathopoulos &
Orginos, SIAM J. Sci. Comput. 32(1), 2010) would instead refine the eigenvectors
within a solve by a restarted window, at a cost of ``O(k)`` extra dot products per
iteration; not done here.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import diffusion_matrix
>>> from sciml.solvers.recycle_space import RecycleSpace
>>> from sciml.solvers.deflated_cg import recycled_cg_result
>>> rng = np.random.default_rng(0)
>>> space = RecycleSpace(k=8)
>>> for i in range(3):
...     A = diffusion_matrix(np.exp(0.3 * i + rng.uniform(0, 0.1, (24, 24))), h=1 / 24)
...     result = recycled_cg_result(A, np.ones(A.shape[0]), rtol=1e-8, k=8, recycle=space)
...     assert result.converged
>>> space.size, space.method
(8, 'rcg')
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg as sla
from scipy.sparse.linalg import LinearOperator

from sciml.errors import SciMLError
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import (
    LinearSystem,
    Step,
    as_preconditioner,
    prepare_system,
    relative_asymmetry,
    solve_by_corrections,
)

METHOD = "rcg"

SYMMETRY_TOLERANCE = 1e-10
"""``A`` is refused when ``max|A - A^H| > SYMMETRY_TOLERANCE max|A|`` (:func:`~sciml.solvers.stopping.relative_asymmetry`)."""

POSITIVITY_TOLERANCE = 1e-12
"""Deflation (and Ritz) directions whose ``A``-norm squared is below this times the largest are dropped."""

HARVEST_FACTOR = 4
"""The Rayleigh-Ritz step keeps the first ``HARVEST_FACTOR * k`` search directions of a solve."""

def check_hermitian(A) -> None:
    """Refuse a sparse or dense ``A`` that is not symmetric (Hermitian), in one line.

    A LinearOperator cannot be checked; a non-SPD one is caught by the curvature
    test of the iteration instead.

    Examples
    --------
    >>> import numpy as np
    >>> check_hermitian(np.array([[2.0, 1.0], [1.0, 2.0]]))
    """
    if isinstance(A, LinearOperator):
        return
    asymmetry = relative_asymmetry(A)
    if asymmetry > SYMMETRY_TOLERANCE:
        raise SciMLError(
            f"recycled CG needs a symmetric (Hermitian) A, but max|A - A^H| / max|A| = "
            f"{asymmetry:.1e}; use method='gcrodr' (or 'gmres') for a nonsymmetric A"
        )


class _Deflation:
    """The deflation basis ``W`` with ``A W``, ``W^H A W = I`` and, when the space carried it, ``M A W``.

    They are the first :attr:`size` columns of three column-major blocks ``n x (size +
    spare)`` (:attr:`blocks`); a :class:`_Harvest` fills the spare columns, so that the
    Rayleigh-Ritz step reads ``[W, P]`` without stacking copies. ``stale`` marks ``M A W``
    as the previous solve's ``M_old A_old W``: the Rayleigh-Ritz step may use it to choose
    directions, never as the product with this solve's ``M``.
    """

    def __init__(self, blocks: tuple[np.ndarray, np.ndarray, np.ndarray], size: int,
                 has_MAW: bool = False, stale: bool = False):
        self.blocks = blocks
        self.W, self.AW, MAW = (block[:, :size] for block in blocks)
        self.MAW = MAW if has_MAW else None
        self.stale = stale and has_MAW
        self.W_H = self.W.conj().T  # views for a real W (column-major: row-major k x n)
        self.AW_H = self.AW.conj().T

    @property
    def size(self) -> int:
        return self.W.shape[1]

    @classmethod
    def empty(cls, n: int, dtype, blocks: tuple | None = None) -> "_Deflation":
        return cls(blocks or tuple(np.empty((n, 0), dtype=dtype) for _ in range(3)), 0)

    @classmethod
    def from_space(cls, space: RecycleSpace, n: int, dtype, A=None, key=None, M_given=None,
                   stale_selection: bool = True, spare: int = 0) -> tuple["_Deflation", int, int]:
        """``W = U V Lambda^-1/2`` from ``U^H A U = V Lambda V^H``; returns it, the directions
        dropped and the products of ``A`` spent.

        ``A U`` is the space's ``C`` when ``key`` is the space's; otherwise it is one block
        product with ``A`` (the space itself is not re-bound: the Rayleigh-Ritz step stores
        a new ``U`` and ``C`` for this ``A``). ``M A W`` comes from the space's ``MC``, which
        is in ``U``'s basis: exact when it was stored for this ``A`` and the preconditioner
        object ``M_given``, else (``stale_selection``) the previous ``M_old A_old U``; None:
        apply the new ``M`` later. The blocks (:meth:`RecycleSpace.scratch`) get ``spare``
        more columns.
        """
        if space.is_empty:
            return cls.empty(n, dtype, space.scratch(n, dtype, spare)), 0, 0
        U = space.U.astype(dtype, copy=False)
        products = 0
        if key is not None and key == space.key:
            AU = space.C.astype(dtype, copy=False)
        else:
            AU = np.asarray(A @ U) if not isinstance(A, LinearOperator) else A.matmat(U)
            products = U.shape[1]
        E = U.conj().T @ AU
        if not np.isfinite(E).all():  # A is not finite on U: solve without deflation (the kernel reports it)
            return cls.empty(n, dtype, space.scratch(n, dtype, spare)), U.shape[1], products
        values, vectors = np.linalg.eigh((E + E.conj().T) / 2)
        keep = values > POSITIVITY_TOLERANCE * max(values[-1], 0.0)
        if values[-1] <= 0.0 or not keep.any():
            return cls.empty(n, dtype, space.scratch(n, dtype, spare)), U.shape[1], products
        scale = vectors[:, keep] / np.sqrt(values[keep])
        size = scale.shape[1]
        exact = (M_given is not None and space.MC is not None and space.preconditioner is M_given
                 and products == 0)
        stale = not exact and stale_selection and M_given is not None and space.MC is not None
        blocks = space.scratch(n, dtype, size + spare)
        for block, basis in zip(blocks, (U, AU, space.MC if exact or stale else None)):
            if basis is not None:
                np.matmul(basis.astype(dtype, copy=False), scale, out=block[:, :size])
        return cls(blocks, size, has_MAW=exact or stale, stale=stale), U.shape[1] - size, products


class _Harvest:
    """``Z = [W, p_0, ..., p_{l-1}]`` with ``A Z`` and ``M A Z`` for the Rayleigh-Ritz step;
    ``p_j`` are the first ``limit`` search directions of a solve, written into the spare
    columns of the deflation's blocks."""

    def __init__(self, deflation: _Deflation, limit: int, M):
        self.deflation = deflation
        self.limit = min(limit, deflation.blocks[0].shape[1] - deflation.size)
        self.broken = False
        self.count = 0
        self.M = M
        self.alphas: list[float] = []
        self.rhos: list[float] = []  # rho_0 .. rho_count (one more than the directions)
        self.cross: list[np.ndarray] = []  # (A W)^H M A p_j

    @property
    def offset(self) -> int:
        return self.deflation.size

    @property
    def wants_more(self) -> bool:
        return self.count < self.limit

    def add(self, p, Ap, alpha: float, rho: float, rho_next: float, cross: np.ndarray, z=None, z_next=None) -> None:
        """Keep ``p`` (copied: the iteration updates it in place), ``A p`` and ``M A p = (z -
        z_next) / alpha`` (``A p`` without ``z``: no preconditioner) with the step's ``alpha``,
        ``rho = r^H z`` before and after it and ``(A W)^H M A p``."""
        column = self.offset + self.count
        Z, AZ, MAZ = self.deflation.blocks
        Z[:, column] = p
        AZ[:, column] = Ap
        if z is None:
            MAZ[:, column] = Ap
        else:  # formed in its column: no temporaries
            np.subtract(z, z_next, out=MAZ[:, column])
            MAZ[:, column] /= alpha
        if not self.count:
            self.rhos.append(rho)
        self.alphas.append(alpha)
        self.rhos.append(rho_next)
        self.cross.append(cross)
        self.count += 1

    def close(self) -> None:
        """Take no more directions (those of a restarted iteration are not conjugate to these)."""
        self.limit = self.count

    def blocks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``Z``, ``A Z``, ``M A Z`` (views); ``M A W`` is applied here, once, unless the space carried it."""
        deflation = self.deflation
        if deflation.MAW is None and self.offset:
            deflation.blocks[2][:, :self.offset] = deflation.AW if self.M is None else np.asarray(self.M @ deflation.AW)
            deflation.MAW = deflation.blocks[2][:, :self.offset]
        c = self.offset + self.count
        return tuple(block[:, :c] for block in deflation.blocks)


def _kernel(system: LinearSystem, M: LinearOperator | None, deflation: _Deflation, harvest: _Harvest):
    """Correction solves by deflated PCG (module docstring); harvests search directions."""
    W, W_H, AW, AW_H = deflation.W, deflation.W_H, deflation.AW, deflation.AW_H
    A = system.operator
    target = system.target

    def failed(used, estimates, what):
        harvest.broken = True
        return Step(None, used, estimates, failure=what)

    def kernel(r, max_iterations, report):
        try:
            return correction(r, max_iterations, report)
        finally:
            harvest.close()

    def correction(r, max_iterations, report):
        coefficients = W_H @ r
        d = W @ coefficients
        r = r - AW @ coefficients
        r_norm = float(np.linalg.norm(r))
        estimates = [r_norm]
        if r_norm <= target:
            return Step(d, 0, estimates)
        z = r if M is None else np.asarray(M @ r)  # without M, z is r itself
        rho = float(np.vdot(r, z).real)
        if not rho > 0.0:
            return failed(0, estimates, _not_positive("M", rho))
        mu = AW_H @ z
        p = z - W @ mu
        for iteration in range(1, max_iterations + 1):
            Ap = A @ p
            curvature = float(np.vdot(p, Ap).real)
            if not np.isfinite(curvature):
                return failed(iteration, estimates, _NON_FINITE)
            if curvature <= 0.0:
                return failed(iteration, estimates, _not_positive("A", curvature))
            alpha = rho / curvature
            d += alpha * p
            r -= alpha * Ap
            r_norm = float(np.linalg.norm(r))
            estimates.append(r_norm)
            if not np.isfinite(r_norm):
                return failed(iteration, estimates, _NON_FINITE)
            report(d)
            converged = r_norm <= target
            if converged and (M is not None or not harvest.wants_more):
                return Step(d, iteration, estimates)  # the last p is not worth an application of M
            z_next = r if M is None else np.asarray(M @ r)
            rho_next = float(np.vdot(r, z_next).real)
            mu_next = AW_H @ z_next
            if harvest.wants_more:  # M A p = (z - z_next) / alpha, so (A W)^H M A p = (mu - mu_next) / alpha
                harvest.add(p, Ap, alpha, rho, rho_next, (mu - mu_next) / alpha,
                            *(() if M is None else (z, z_next)))
            if converged:
                return Step(d, iteration, estimates)
            if not rho_next > 0.0:
                return failed(iteration, estimates, _not_positive("M", rho_next))
            p *= rho_next / rho
            p += z_next
            p -= W @ mu_next
            z, rho, mu = z_next, rho_next, mu_next
        return Step(d, max_iterations, estimates)

    return kernel


_NON_FINITE = ("recycled CG broke down (non-finite values): check that A and M are finite and "
               "symmetric positive definite; the recycle space is left as it was")


def _not_positive(which: str, value: float) -> str:
    what = "p^H A p" if which == "A" else "r^H M r"
    return (f"recycled CG broke down: {what} = {value:.3e} <= 0, so {which} is not positive definite; "
            f"use a symmetric positive definite {'preconditioner' if which == 'M' else 'A'} "
            "or method='gcrodr'")


def _projected_matrices(harvest: _Harvest, MAZ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F = Z^H A Z`` and ``G = (A Z)^H M A Z`` on ``Z = [W, P]`` from CG's own coefficients.

    ``W^H A W = I`` and ``W^H A P = 0`` (the deflation), ``P^H A P = diag(rho_j / alpha_j)``
    (conjugacy) and, since ``A p_j = (r_j - r_{j+1}) / alpha_j`` and ``M A p_j = (z_j -
    z_{j+1}) / alpha_j`` with ``r_i^H z_j = rho_j delta_ij``, ``(A P)^H M A P`` is
    tridiagonal; ``(A W)^H M A P`` is the kernel's ``(mu_j - mu_{j+1}) / alpha_j``. Only
    ``(A W)^H M A W`` is a product of ``n``-vectors (``k x n x k``, from ``MAZ =`` :meth:`_Harvest.blocks`).
    """
    o, count = harvest.offset, harvest.count
    c = o + count
    dtype = harvest.deflation.W.dtype
    alpha, rho = np.array(harvest.alphas), np.array(harvest.rhos)
    F = np.zeros((c, c), dtype=dtype)
    F[np.arange(o), np.arange(o)] = 1.0
    F[np.arange(o, c), np.arange(o, c)] = rho[:-1] / alpha
    G = np.zeros((c, c), dtype=dtype)
    G[:o, :o] = harvest.deflation.AW_H @ MAZ[:, :o]
    if count:
        G[:o, o:] = np.column_stack(harvest.cross)
        G[o:, :o] = G[:o, o:].conj().T
        G[np.arange(o, c), np.arange(o, c)] = (rho[:-1] + rho[1:]) / alpha ** 2
        off = -rho[1:-1] / (alpha[:-1] * alpha[1:])
        G[np.arange(o, c - 1), np.arange(o + 1, c)] = off
        G[np.arange(o + 1, c), np.arange(o, c - 1)] = off
    return F, G


def _rayleigh_ritz(space: RecycleSpace, harvest: _Harvest, k: int, key: str, M_given=None) -> None:
    """Replace the space by the ``k`` Ritz vectors of ``M A`` with smallest Ritz values on ``[W, P]``."""
    if harvest.broken or harvest.offset + harvest.count == 0:
        return
    Z, AZ, MAZ = harvest.blocks()
    F, G = _projected_matrices(harvest, MAZ)
    if not (np.isfinite(F).all() and np.isfinite(G).all()):
        return
    f, V = np.linalg.eigh((F + F.conj().T) / 2)
    keep = f > POSITIVITY_TOLERANCE * max(f[-1], 0.0)
    if f[-1] <= 0.0 or not keep.any():
        return
    T = V[:, keep] / np.sqrt(f[keep])
    _, S = np.linalg.eigh(T.conj().T @ ((G + G.conj().T) / 2) @ T)
    Y = T @ S[:, :k]
    # C = A Z Y is made orthonormal through its small Gram matrix (Cholesky QR, Y <- Y R^-1), so
    # that the space need not QR-factorise an n x k block (it checks C^H C = I and does so if not)
    C = AZ @ Y
    gram = C.conj().T @ C
    try:
        R = sla.cholesky((gram + gram.conj().T) / 2, check_finite=False)
    except np.linalg.LinAlgError:  # numerically singular: the space's pivoted QR drops directions
        R = None
    if R is not None:
        Y = sla.solve_triangular(R, Y.T, trans="T", check_finite=False).T
        C = AZ @ Y
    U, MC = Z @ Y, MAZ @ Y
    if not (np.isfinite(U).all() and np.isfinite(C).all() and np.isfinite(MC).all()):
        return
    if M_given is None:
        space.store(U, C, key=key, method=METHOD)
    else:  # a stale M A W makes M C stale too: kept for selection, not bound to M_given
        space.store(U, C, key=key, method=METHOD, MC=MC,
                    preconditioner=None if harvest.deflation.stale else M_given)


def recycled_cg_result(A, b, x0=None, *, rtol=1e-5, atol=0.0, k=10, maxiter=None, M=None,
                       callback=None, recycle: RecycleSpace | None = None, stale_selection: bool = True) -> SolveResult:
    """Solve SPD ``A x = b`` by deflated PCG, recycling ``k`` approximate eigenvectors; a :class:`SolveResult`.

    The method of the module docstring: Saad et al.'s deflated CG (2000) with a
    preconditioner (DEF2 of Tang et al. 2009) and a def-CG(k, 4k)-style Rayleigh-Ritz
    update of the deflation space at the end of every solve.

    Parameters
    ----------
    A : sparse matrix, ndarray or LinearOperator
        Symmetric (Hermitian) positive definite, n-by-n. A sparse or dense ``A`` is
        checked for symmetry (``||A - A^H||_F <= 1e-10 ||A||_F``); a nonsymmetric one
        is refused (use ``gcrodr``).
    b : ndarray
        Right-hand side, shape ``(n,)`` or ``(n, 1)``.
    x0 : ndarray, optional
        Starting guess (zero by default); it is corrected by the projection onto ``W``.
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` for the returned ``x``.
    k : int
        Ritz vectors kept for the next solve (at most ``recycle.k``); the Rayleigh-Ritz
        step sees the deflation space and the first ``4 k`` search directions (it stores
        them with their products by ``A`` and ``M A`` in the space's scratch: ``3 (size +
        4 k)`` vectors of length ``n``, kept with the space between solves).
    maxiter : int, optional
        Total CG iterations over all restarts on the true residual; default ``10 n``.
    M : LinearOperator or matrix, optional
        Preconditioner approximating ``A^-1``; it must be symmetric positive definite
        and fixed (Jacobi, AMG with symmetric smoothing, ILU in symmetric mode of a
        symmetric ``A``). A non-positive ``r^H M r`` stops the solve with a message.
    callback : callable, optional
        ``callback(xk)`` after every iteration, with the current iterate.
    recycle : RecycleSpace, optional
        The caller-held space, updated in place; without it the method is plain PCG.
        The space is bound to ``A`` alone (``operator_key(A)``): its ``C = A U`` does not
        depend on ``M``, so a new preconditioner for the same matrix costs no product.
        Re-binding to a new ``A`` costs ``size`` products of ``A``, counted in
        ``matvecs``. The update at the end uses the ``M C`` the space carries (exact for
        the same ``A`` and ``M`` object, else the previous solve's, for selection only);
        it applies ``M`` to ``size`` vectors (not counted: ``matvecs`` counts ``A`` only)
        only when the space carries none (filled without ``M``).
    stale_selection : bool
        After a change of ``A`` or ``M``, choose the next directions with the previous
        solve's ``M C`` (default) instead of applying the new ``M`` to ``size`` vectors
        (module docstring); the solution and the stopping rule are the same either way.

    Returns
    -------
    SolveResult
        ``iterations`` counts CG iterations (one product with ``A`` each);
        ``residual_history`` holds the true residual at the start and after every
        restart, and between them the recursive residual after the projection onto
        ``W`` and after every iteration.

    Raises
    ------
    SciMLError
        For a nonsymmetric ``A``, a bad ``k``, or a space of another size, dtype or method.

    Notes
    -----
    Recycling pays where plain or weakly preconditioned CG needs many iterations; with
    AMG (about 8 iterations on log-normal Darcy at 100^2 and 32^3) deflation saved no
    iteration for any ``k`` from 4 to 24, so the ``k`` products of re-binding and the
    update are pure cost there and a small ``k`` is best (``--solver skr`` uses 4).
    Each iteration reads ``W`` and ``A W`` (``2 k`` vectors), several times the memory
    traffic of a 5-point stencil product when ``k = 10``, so iteration counts overstate
    the saving in time on such cheap operators.

    References
    ----------
    Saad, Yeung, Erhel & Guyomarc'h (2000), SIAM J. Sci. Comput. 21(5); Frank & Vuik
    (2001), SIAM J. Sci. Comput. 23(2); Tang, Nabben, Vuik & Erlangga (2009), J. Sci.
    Comput. 39(3). Departures: see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> from sciml.solvers.recycle_space import RecycleSpace
    >>> A = sp.diags_array([-1.0, 2.01, -1.0], offsets=[-1, 0, 1], shape=(200, 200)).tocsr()
    >>> rng = np.random.default_rng(0)
    >>> space = RecycleSpace(k=6)
    >>> results = [recycled_cg_result(A, rng.standard_normal(200), rtol=1e-10, k=6, recycle=space)
    ...            for _ in range(4)]
    >>> all(r.converged for r in results), results[-1].iterations < 0.85 * results[0].iterations
    (True, True)
    """
    started = time.perf_counter()
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise SciMLError(f"k (Ritz vectors to recycle) must be an integer >= 1, got {k!r}")
    if recycle is not None and not isinstance(recycle, RecycleSpace):
        raise SciMLError(f"recycle must be a RecycleSpace or None, got {type(recycle).__name__}")
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    matrix = system.operator.A
    check_hermitian(matrix)
    M_given, M = M, as_preconditioner(M, system.n)
    limit = HARVEST_FACTOR * int(k) if recycle is not None else 0
    deflation = _Deflation.empty(system.n, system.dtype)
    key = None
    if recycle is not None:
        recycle.check_compatible(system.n, system.dtype, METHOD)
        key = operator_key(matrix)
        deflation, dropped, products = _Deflation.from_space(recycle, system.n, system.dtype, matrix, key,
                                                             M_given, stale_selection, spare=limit)
        system.operator.count += products
        recycle.dropped += dropped
    harvest = _Harvest(deflation, limit, M)
    result = solve_by_corrections(
        METHOD, system, _kernel(system, M, deflation, harvest),
        budget=10 * system.n if maxiter is None else int(maxiter),
        started=started, callback=callback,
        on_budget="raise maxiter, use preconditioner='amg' or recycle a larger space (k)",
        on_stagnation="rounding limits the attainable accuracy: loosen rtol or use method='direct'",
    )
    if recycle is not None:
        _rayleigh_ritz(recycle, harvest, min(int(k), recycle.k), key, M_given)
    result.seconds = time.perf_counter() - started
    return result


recycled_cg = scipy_convention(recycled_cg_result)
