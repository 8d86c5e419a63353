"""The deep conjugate direction method (DCDM): a network proposes the search directions.

Kaneda et al. (ICML 2023) solve ``A x = b`` for symmetric positive definite grid
operators (pressure Poisson systems) by a conjugate direction iteration whose directions
come from a trained network ``f``::

    r = b - A x;  q = f(r / ||r||)
    p = q - sum_j (q^T A p_j / p_j^T A p_j) p_j     (the last n_previous directions; paper: 2)
    alpha = p^T r / p^T A p;  x <- x + alpha p

The step is the exact line search along ``p`` in the energy norm, so ``||x - x*||_A``
never grows. Where this implementation departs from the paper, and why:

- **One matvec per iteration.** The reference computes ``r = b - A x`` afresh every
  iteration and ``A p`` as well (two products). Here ``A p_j`` of the stored directions
  is kept, ``A p`` follows from one product ``A q`` as ``A q - sum_j c_j A p_j``, and the
  residual is updated recursively, ``r <- r - alpha A p``. When the recursive residual
  meets the tolerance the true residual is computed once; if it does not meet it (the
  recursion drifted), it replaces ``r`` and the iteration goes on. So the project's rule
  holds: converged iff ``||b - A x|| <= max(rtol ||b||, atol)`` for the returned ``x``.
- **Safeguards.** If the network's direction is useless -- non-finite, ``p^T A p`` at
  round-off level, ``q`` nearly in the span of the stored directions
  (``p^T A p < 1e-10 q^T A q``) or nearly orthogonal to ``r`` -- the iteration takes a
  plain CG step instead (``q = r``, conjugated the same way). After a step whose
  residual norm did not decrease, the next step is a CG step too. Both are counted in
  :class:`DCDMResult` (``cg_fallbacks``, ``nondecreasing_steps``). The second rule is
  a heuristic: the line search minimises the A-norm of the error, not ``||r||``, so it
  also fires after good steps (plain CG has a non-decreasing ``||r||`` in about a fifth
  of its steps); a well-trained net rarely triggers it, a poor one is carried by it.
  Measured at 128^2 with the bench's 64^2 energy-loss net: 123 iterations with the
  rule (25 CG steps); without it, not converged after 3,000.
- **Refusals.** A matrix that is not symmetric, has a non-positive diagonal, or shows
  ``p^T A p < 0`` is refused with a one-line :class:`~sciml.errors.SciMLError`, as is a
  grid that does not match the network's dimension.
- **Decoupled cells.** Rows of ``A`` with no off-diagonal entry (the solid cells of
  :mod:`sciml.datasets.obstacle_poisson`) are solved exactly at the start,
  ``x_i = b_i / a_ii``; the network works on the coupled cells only (its mask channel).
- **Input scaling.** The network sees ``r`` scaled to unit root-mean-square over the
  coupled cells rather than unit norm, so its input has the same magnitude at every
  grid size (the paper's ``r/||r||`` shrinks like ``n^-1/2``). Directions are
  scale-free, so the iteration is otherwise the same.

References
----------
A. Kaneda, O. Akar, J. Chen, V. A. T. Kala, D. Hyde, J. Teran, "A Deep Conjugate
Direction Method for Iteratively Solving Linear Systems", ICML 2023.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets.obstacle_poisson import ObstaclePoisson
>>> from sciml.models.dcdm_net import DCDMNet
>>> from sciml.solvers.deep_conjugate_direction import dcdm_result
>>> problem = ObstaclePoisson(resolution=16)
>>> A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
>>> result = dcdm_result(A, b, model=DCDMNet(dim=2), rtol=1e-6)   # untrained: slow but safe
>>> result.converged, result.relative_residual <= 1e-6
(True, True)
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import time
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from sciml.errors import SciMLError
from sciml.models.dcdm_net import DCDMNet
from sciml.solvers.learned_preconditioner import LearnedPreconditioner
from sciml.solvers.result import SolveResult, scipy_convention
from sciml.solvers.stopping import as_matrix, prepare_system, relative_asymmetry

__all__ = ["DCDMPreconditioner", "DCDMResult", "dcdm_result", "dcdm", "decoupled_cells", "grid_of"]

_SPAN_TOLERANCE = 1e-10       # p^T A p / q^T A q below this: q is (nearly) in the stored span
_ORTHOGONAL_TOLERANCE = 1e-12  # |p^T r| / (||p|| ||r||) below this: no progress along p
_ROUNDOFF = 1e-14             # p^T A p / (p^T p max a_ii) below this: round-off curvature


def decoupled_cells(A: sp.csr_array) -> np.ndarray:
    """Boolean mask of the rows of ``A`` with no nonzero off-diagonal entry.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> decoupled_cells(sp.csr_array([[2.0, 0.0, 0.0], [0.0, 2.0, -1.0], [0.0, -1.0, 2.0]]))
    array([ True, False, False])
    """
    coo = A.tocoo()
    off = (coo.row != coo.col) & (coo.data != 0)
    coupled = np.zeros(A.shape[0], bool)
    coupled[coo.row[off]] = True
    return ~coupled


def grid_of(n: int, dim: int, grid_shape: Sequence[int] | None = None) -> tuple[int, ...]:
    """The grid of ``n`` unknowns for a ``dim``-D network: ``grid_shape``, or the cube ``N^dim = n``.

    Examples
    --------
    >>> grid_of(4096, 2), grid_of(4096, 3), grid_of(12, 2, (3, 4))
    ((64, 64), (16, 16, 16), (3, 4))
    """
    if grid_shape is None:
        side = round(n ** (1.0 / dim))
        for candidate in (side - 1, side, side + 1):
            if candidate >= 1 and candidate**dim == n:
                return (candidate,) * dim
        raise SciMLError(f"A has {n} unknowns, which is not a {dim}-D cubic grid, but the network is {dim}-D; "
                         f"pass grid_shape= with {dim} sizes, or use a network of the grid's dimension")
    shape = tuple(int(s) for s in grid_shape)
    if len(shape) != dim:
        raise SciMLError(f"grid_shape {list(shape)} is {len(shape)}-D but the network is {dim}-D; "
                         f"use a {len(shape)}-D network (DCDMNet(dim={len(shape)}))")
    if math.prod(shape) != n or min(shape) < 1:
        raise SciMLError(f"grid_shape {list(shape)} holds {math.prod(shape)} cells but A has {n} unknowns; "
                         "pass the grid A was assembled on")
    return shape


def _load_net(model, device) -> DCDMNet:
    if isinstance(model, (str, os.PathLike)):
        from sciml.checkpoint import load_model

        model = load_model(model, device=device or "cpu")[0]
    if not isinstance(model, DCDMNet):
        raise SciMLError(f"model must be a DCDMNet or the path of its checkpoint, got {type(model).__name__}; "
                         "train one with sciml.dcdm_training.train_dcdm")
    return model


class DCDMPreconditioner(LearnedPreconditioner):
    """A trained :class:`~sciml.models.dcdm_net.DCDMNet` as a preconditioner bound to ``A``.

    ``M(r) = s mask * f(r_c / s) + (1 - mask) * r / diag(A)`` with ``r_c`` the residual on
    the coupled cells, ``s`` its root-mean-square and ``mask`` the coupled cells
    (:func:`decoupled_cells`): the network on the coupled cells and an exact solve on the
    decoupled ones. ``M`` is nonlinear (and positively homogeneous, ``M(c r) = c M(r)``
    for ``c > 0``), so it needs a flexible method: :func:`dcdm_result`, scipy's
    ``gcrotmk``, pyamg's ``fgmres`` -- not CG or GMRES (see
    :mod:`sciml.solvers.learned_preconditioner`). The network runs in float32 on its own
    device under ``torch.no_grad``; numpy float64 goes in and comes out.

    Parameters
    ----------
    model : DCDMNet or path
        The network, or a checkpoint written by :func:`sciml.dcdm_training.save_dcdm`.
    A : sparse matrix or ndarray
        The system the preconditioner is for (its entries are needed for the mask).
    grid_shape : sequence of int, optional
        The grid of the unknowns (C order); default: the cube with ``N^dim = n``.
    device : str, optional
        Where to load a checkpoint (a given model stays where it is).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.sparse.linalg import gcrotmk
    >>> from sciml.datasets.obstacle_poisson import ObstaclePoisson
    >>> problem = ObstaclePoisson(resolution=16)
    >>> A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
    >>> M = DCDMPreconditioner(DCDMNet(dim=2), A).aspreconditioner()   # train the net first
    >>> M.shape, (M @ b).shape
    ((256, 256), (256,))
    >>> x, info = gcrotmk(A, b, M=M, rtol=1e-6)                           # doctest: +SKIP
    """

    def __init__(self, model, A, *, grid_shape: Sequence[int] | None = None, device: str | None = None):
        self.model = _load_net(model, device)
        matrix = as_matrix(A, "dcdm")
        super().__init__(matrix.shape[0])
        self.grid_shape = grid_of(self.n, self.model.dim, grid_shape)
        self.decoupled = decoupled_cells(matrix)
        self.diagonal = matrix.diagonal()
        if (self.diagonal[self.decoupled] == 0).any():
            raise SciMLError("A has an all-zero row, so it is singular; check how the system matrix was assembled")
        self.n_coupled = int((~self.decoupled).sum())
        parameter = next(self.model.parameters())
        self._device, self._dtype = parameter.device, parameter.dtype
        self._mask = torch.as_tensor(~self.decoupled, dtype=self._dtype, device=self._device).reshape(1, 1, *self.grid_shape)

    def _direction(self, r: np.ndarray) -> np.ndarray:
        z = np.where(self.decoupled, r / self.diagonal, 0.0)
        r_coupled = np.where(self.decoupled, 0.0, r)
        scale = float(np.linalg.norm(r_coupled)) / math.sqrt(max(self.n_coupled, 1))
        if scale == 0.0:
            return z
        field = torch.as_tensor(r_coupled / scale, dtype=self._dtype, device=self._device).reshape(1, 1, *self.grid_shape)
        inputs = torch.cat([field, self._mask], dim=1) if self.model.in_channels == 2 else field
        with torch.no_grad():
            q = self.model(inputs).reshape(-1).to("cpu", torch.float64).numpy()
        return z + np.where(self.decoupled, 0.0, scale * q)


@dataclasses.dataclass
class DCDMResult(SolveResult):
    """A :class:`SolveResult` with what DCDM did besides iterating.

    Attributes
    ----------
    network_seconds : float
        Wall time inside the network (part of ``seconds``).
    network_calls : int
        Directions the network proposed.
    cg_fallbacks : int
        Iterations that took a plain CG step instead of the network's direction (it lost
        A-conjugacy, was non-finite or orthogonal to the residual, or the previous step
        did not reduce the residual).
    nondecreasing_steps : int
        Steps after which the residual norm had not decreased.
    residual_replacements : int
        Times the recursive residual claimed convergence but the true one did not agree.
    """

    network_seconds: float = 0.0
    network_calls: int = 0
    cg_fallbacks: int = 0
    nondecreasing_steps: int = 0
    residual_replacements: int = 0

    def record(self) -> dict:
        """:meth:`SolveResult.record` plus the DCDM counters above."""
        return {**super().record(), "network_seconds": float(self.network_seconds),
                "network_calls": int(self.network_calls), "cg_fallbacks": int(self.cg_fallbacks),
                "nondecreasing_steps": int(self.nondecreasing_steps),
                "residual_replacements": int(self.residual_replacements)}


def _check_spd_pattern(A: sp.csr_array) -> None:
    """Refuse a nonsymmetric matrix or one with a non-positive diagonal (cheap necessary checks)."""
    if relative_asymmetry(A) > 1e-12:
        raise SciMLError("dcdm needs a symmetric positive definite A, but A is not symmetric; "
                         "use gmres_result or scipy's gcrotmk with the DCDM preconditioner")
    diagonal = A.diagonal()
    if (diagonal <= 0).any():
        raise SciMLError(f"dcdm needs a symmetric positive definite A, but {int((diagonal <= 0).sum())} diagonal "
                         "entries are <= 0; use gmres_result")


def dcdm_result(A, b, x0=None, *, rtol=1e-6, atol=0.0, maxiter=None, M=None, callback=None, model,
                n_previous: int = 2, grid_shape: Sequence[int] | None = None) -> DCDMResult:
    """Solve SPD ``A x = b`` by the deep conjugate direction method; returns a :class:`DCDMResult`.

    The iteration, its departures from Kaneda et al. (2023) and its safeguards are in
    the module docstring. One product with ``A`` per iteration (two on a CG fallback),
    plus the true-residual checks.

    Parameters
    ----------
    A : sparse matrix or ndarray
        Symmetric positive definite, n-by-n, on a 2-D or 3-D grid (C order).
    b : ndarray
        Right-hand side, shape ``(n,)``.
    x0 : ndarray, optional
        Starting guess (zero by default).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)`` (true residual).
    maxiter : int, optional
        Iterations allowed; default ``10 n``.
    M : None
        Must be None: DCDM's preconditioner is its network (``model``).
    callback : callable, optional
        ``callback(xk)`` after every iteration.
    model : DCDMNet, DCDMPreconditioner or path
        The trained network, a preconditioner already bound to ``A``, or a checkpoint.
    n_previous : int
        Stored directions each new one is A-orthogonalised against (the paper: 2).
    grid_shape : sequence of int, optional
        Grid of the unknowns; default: the cube with ``N^dim = n``.

    Returns
    -------
    DCDMResult

    Raises
    ------
    SciMLError
        ``A`` not symmetric positive definite, a grid that does not match the network's
        dimension, or bad arguments.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets.obstacle_poisson import pressure_matrix
    >>> A = pressure_matrix(np.ones((8, 8), bool), h=1 / 8)
    >>> result = dcdm_result(A, np.ones(64), model=DCDMNet(dim=2, in_channels=1), rtol=1e-8)
    >>> result.converged, sorted(result.record())[:3]
    (True, ['cg_fallbacks', 'converged', 'iterations'])
    """
    started = time.perf_counter()
    if M is not None:
        raise SciMLError("dcdm's preconditioner is its network: pass model=..., and leave M=None")
    if isinstance(n_previous, bool) or not isinstance(n_previous, (int, np.integer)) or n_previous < 0:
        raise SciMLError(f"n_previous must be an integer >= 0, got {n_previous!r}")
    system = prepare_system(A, b, x0, rtol=rtol, atol=atol, maxiter=maxiter)
    matrix = as_matrix(A, "dcdm")
    _check_spd_pattern(matrix)
    if isinstance(model, DCDMPreconditioner):
        if model.n != system.n:
            raise SciMLError(f"the DCDMPreconditioner is bound to a {model.n}x{model.n} system but A is "
                             f"{system.n}x{system.n}; build it for this A")
        pre = model
    else:
        pre = DCDMPreconditioner(model, matrix, grid_shape=grid_shape)
    net_seconds0, net_calls0 = pre.network_seconds, pre.calls
    budget = 10 * system.n if maxiter is None else int(maxiter)
    max_diagonal = float(pre.diagonal.max())

    x = system.x0.copy()
    x[pre.decoupled] = system.b[pre.decoupled] / pre.diagonal[pre.decoupled]
    r = system.residual(x)
    r_norm = float(np.linalg.norm(r))
    history = [r_norm]
    stored = collections.deque(maxlen=n_previous)  # (p, A p, p^T A p)
    iterations = fallbacks = nondecreasing = replacements = 0
    use_cg = False
    failure = ""

    def conjugate(q):
        """``p`` = q A-orthogonalised against the stored directions, ``A p``, ``p^T A p``, ``q^T A q``."""
        Aq = system.operator @ q
        qAq = float(q @ Aq)
        p, Ap = q.copy(), Aq.copy()
        for p_j, Ap_j, pAp_j in stored:
            c = float(q @ Ap_j) / pAp_j
            p -= c * p_j
            Ap -= c * Ap_j
        return p, Ap, float(p @ Ap), qAq

    def refuse_if_indefinite(pAp, p):
        if pAp < -_ROUNDOFF * max_diagonal * float(p @ p):
            raise SciMLError(f"dcdm needs a symmetric positive definite A, but iteration {iterations + 1} found "
                             f"a direction with p^T A p = {pAp:.3e} < 0; use gmres_result")

    while True:
        if r_norm <= system.target:
            true_r = system.residual(x)
            true_norm = float(np.linalg.norm(true_r))
            if true_norm <= system.target:
                r, r_norm = true_r, true_norm
                break
            replacements += 1
            r, r_norm = true_r, true_norm
            history.append(r_norm)
            continue
        if iterations >= budget:
            failure = "raise maxiter, or train the network on operators like this one"
            break
        q = r.copy() if use_cg else pre.apply(r)
        p = None
        if np.isfinite(q).all():
            p, Ap, pAp, qAq = conjugate(q)
            refuse_if_indefinite(pAp, p)
            p_norm = float(np.linalg.norm(p))
            useless = (pAp <= _ROUNDOFF * max_diagonal * p_norm**2 or pAp < _SPAN_TOLERANCE * qAq
                       or abs(float(p @ r)) <= _ORTHOGONAL_TOLERANCE * p_norm * r_norm)
            if useless and use_cg:
                failure = "the CG direction broke down (r is A-conjugate to the stored directions); check A"
                break
            if useless:
                p = None
        if p is None:  # the network's direction is unusable: a plain CG step
            fallbacks += 1
            p, Ap, pAp, _ = conjugate(r.copy())
            refuse_if_indefinite(pAp, p)
            if not pAp > _ROUNDOFF * max_diagonal * float(p @ p):
                failure = "the CG direction broke down (r is A-conjugate to the stored directions); check A"
                break
        elif use_cg:
            fallbacks += 1
        alpha = float(p @ r) / pAp
        x += alpha * p
        r -= alpha * Ap
        previous, r_norm = r_norm, float(np.linalg.norm(r))
        history.append(r_norm)
        iterations += 1
        use_cg = not r_norm < previous
        nondecreasing += use_cg
        if n_previous:
            stored.append((p, Ap, pAp))
        if callback is not None:
            callback(x)
    if failure:  # leave with the true residual of the returned x
        r_norm = float(np.linalg.norm(system.residual(x)))
        history.append(r_norm)
    converged = r_norm <= system.target
    relative = r_norm / system.b_norm if system.b_norm > 0 else 0.0
    message = "" if converged else (
        f"dcdm did not converge: residual {r_norm:.3e} (relative {relative:.3e}) is above the tolerance "
        f"{system.target:.3e} after {iterations} iterations (budget {budget}, {fallbacks} CG fallback steps); {failure}")
    return DCDMResult(
        x=x, converged=converged, iterations=iterations, matvecs=system.operator.count, residual_norm=r_norm,
        relative_residual=relative, residual_history=history, seconds=time.perf_counter() - started,
        method="dcdm", message=message, network_seconds=pre.network_seconds - net_seconds0,
        network_calls=pre.calls - net_calls0, cg_fallbacks=fallbacks, nondecreasing_steps=nondecreasing,
        residual_replacements=replacements)


dcdm = scipy_convention(dcdm_result)
dcdm.__doc__ = """Solve SPD ``A x = b`` by DCDM with scipy's calling convention: ``(x, info)``.

Takes the arguments of :func:`dcdm_result` (``model=`` is required) and returns ``x`` and
``info`` (0 when the true residual meets ``max(rtol ||b||, atol)``, else the iterations used).

Examples
--------
>>> import numpy as np
>>> from sciml.datasets.obstacle_poisson import pressure_matrix
>>> from sciml.models.dcdm_net import DCDMNet
>>> x, info = dcdm(pressure_matrix(np.ones((8, 8), bool), h=1 / 8), np.ones(64), model=DCDMNet(dim=2))
>>> info
0
"""
