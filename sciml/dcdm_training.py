"""Training the DCDM network without solutions: Ritz right-hand sides and the unsupervised loss.

Kaneda et al. (ICML 2023) train the network ``f`` of the deep conjugate direction method
(:mod:`sciml.solvers.deep_conjugate_direction`) with no ground truth. For a right-hand side ``b`` with
``||b|| = 1`` and ``q = f(b)``, the exact line search along ``q`` leaves the residual
``b - A (q^T b / q^T A q) q``; the loss is its mean squared norm over a batch,

    L = mean_b || b - A (q^T b / q^T A q) q ||^2,

which does not depend on the scale of ``q`` and is small when ``q`` is close to
``A^-1 b`` up to a factor. The right-hand sides are random combinations of approximate
eigenvectors of the training operator -- Ritz vectors of a Lanczos run -- with the
coefficients of the lower part of the spectrum weighted up (x9), because that is where
plain CG is slow and the network must help:

    b = sum_i w_i c_i v_i / ||.||,  c_i ~ N(0, 1),  w_i = 9 for the lowest ``low_fraction``, else 1.

Departures from the paper's code, and why:

- **Energy-norm loss** (option ``loss="energy"``; the paper's residual loss stays the
  default). The exact line search along ``q`` minimises the A-norm of the error, and
  that is what a conjugate direction method reduces step by step; the residual loss
  instead weights an error in ``q`` along an eigenvector by ``lambda^2``, so the
  smoothest modes -- a few per cent of a Ritz right-hand side's energy, and exactly
  where CG is slow -- barely count, and any rough component of ``q`` is punished
  ``(lambda_max / lambda_min)^2`` times harder than a wrong smooth one. Measured at
  32^2 after 300 steps: nets trained on the residual loss (0.12-0.13, against 0.70
  for steepest descent and 0.05 for an AMG V-cycle) leave the lowest eigenvector with
  a one-step residual 1.9x its own; DCDM's residual ends 83% in the lowest five modes
  with ``cos(q, r) ~ 1e-6``, and only the CG fallbacks move it (1,012 iterations, CG
  165). With the energy loss, the same 300 steps give 58 iterations. The energy loss
  ``1 - (q^T b)^2 / (q^T A q  b^T A^-1 b)`` is the fraction of the error's energy the
  step leaves; ``b^T A^-1 b`` of a Ritz right-hand side is known from the Ritz values
  (:meth:`RitzRightHandSides.batch_with_energy`), so no solution is needed. It
  already weights the low end by ``1/lambda``, so it is used with uniform coefficients
  (``low_fraction=0``); with the x9 weighting on top, the net neglected the high end
  (89 iterations).
- **Training on its own residuals** (option ``residual_fraction`` of :func:`train_dcdm`;
  DAgger-style data aggregation, Ross, Gordon and Bagnell, AISTATS 2011; not in the
  paper). A net trained on Ritz right-hand sides alone does well on DCDM's first
  residuals but not on the later ones, smooth mixtures of the lowest modes in
  proportions no Ritz combination resembles: past twice the training size about half
  of DCDM's steps were CG fallbacks. Fine-tuning runs DCDM with the current net on
  every training operator, keeps the normalised residuals ``r_k / ||r_k||`` it meets
  (:func:`dcdm_residuals`) and draws ``residual_fraction`` of every batch from them, the
  rest from the Ritz basis; ``residual_rounds > 1`` repeats this with the improved net,
  the banks growing. A residual's ``b^T A^-1 b`` is not known from the Ritz values, so
  then every energy comes from one sparse LU per operator (exact; a fraction of a
  second at 128^2, which is why this is meant for training-size grids). Measured on the
  benchmark system (obstacle Poisson, rtol 1e-6), starting from the 64^2 net (1,500 Ritz
  steps: 68 / 123 / 591 / 1,248 DCDM iterations at 64^2 / 128^2 / 256^2 / 512^2;
  IC(0)-PCG 101 / 204 / 401 / 847), fine-tuned on 8 layouts at 64^2 and 4 at 128^2,
  half of every batch residuals, 300 steps a round at lr 5e-4: two rounds with each
  layout's source and two random right-hand sides 22 / 28 / 32 / 43 (15 min on one
  loaded thread); with three random right-hand sides instead 22 / 29 / 32 / 96, so
  right-hand sides like the ones to be solved matter; one round 28 / 37 / 49 / 83.
  Then one more round on 4 + 4 + 2 layouts at 64^2 / 128^2 / 256^2 (200 steps, lr 3e-4,
  8 min): 21 / 25 / 30 / 35; and one more on 4 + 4 layouts at 128^2 / 256^2 (150 steps,
  lr 2e-4, 11 min): 20 / 21 / 23 / 25, 1.2x from 128^2 to 512^2 and 34x fewer than
  IC(0). On three other layouts: 20 / 21 / 22 / 26, 24 / 23 / 24 / 27, but 23 / 23 / 30
  / 61 (2.7x; 92 with 26 CG fallbacks before the last round), so past the largest
  training size it can still lose its grip. The first 300 steps with exact energies
  but no residuals: 50 / 365 / 770 (worse than before fine-tuning).
- **Streaming.** The reference stores a dense matrix of all its right-hand sides (one per
  Lanczos vector; tens of GB at 64^3). Here only the Ritz basis is kept
  (:class:`RitzRightHandSides`, ``n x m`` in float32) and every batch is drawn from it on
  the fly. Memory: the Lanczos run holds ``m`` float64 vectors (``8 n m`` bytes) and the
  basis ``4 n m`` bytes: 64^3 with ``m = 256`` needs 0.54 GB during the run and keeps
  0.27 GB.
- **Own Lanczos** with full reorthogonalisation and ``m`` of a few hundred (the paper
  runs thousands of steps), started in the coupled cells so no Ritz vector lives on
  decoupled (solid) cells.
- **The operator in torch** is the (2d+1)-point stencil read off the sparse matrix
  (:class:`StencilOperator`), applied with shifted slices: exact, differentiable and
  much faster than a sparse-matrix product on a CPU.
- **Several operators.** Training cycles over a list of systems (different obstacle
  layouts), one Ritz basis each, so the network sees many masks. They may be of
  different grid sizes (:func:`obstacle_training_systems` with several resolutions
  interleaves them), so a grid-following net (``levels=0``) sees several depths.
  Measured, this did not make DCDM's iterations less size-dependent: fine-tuning the
  64^2 net (1,500 steps) on 32^2/64^2/128^2 layouts (900 steps, 9 min on one thread)
  lowered its one-step energy loss at 128^2 from 0.25 to 0.10, yet DCDM took 75 / 479 /
  776 iterations at 64^2 / 128^2 / 256^2 (before: 68 / 123 / 591); on 64^2/128^2 with
  512 Ritz vectors (400 steps), 107 / 166 / 583 / 1,008 up to 512^2 (before: 1,248;
  growth 128^2 -> 512^2 6.1x, CG 4.1x). The one-step loss does not predict
  the iteration count: DCDM's later residuals are where the net is weak, and it is
  the CG fallback steps that carry it there (what "Training on its own residuals" fixes).

Examples
--------
>>> import numpy as np
>>> from sciml.datasets.obstacle_poisson import ObstaclePoisson
>>> from sciml.dcdm_training import train_dcdm
>>> problem = ObstaclePoisson(resolution=16)
>>> A, _ = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
>>> run = train_dcdm([A], steps=5, batch_size=4, n_ritz=32, seed=0)
>>> len(run.losses), run.model.dim
(5, 2)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
import torch
import torch.nn.functional as F

from sciml.errors import SciMLError
from sciml.models.dcdm_net import DCDMNet
from sciml.solvers.deep_conjugate_direction import decoupled_cells, grid_of
from sciml.solvers.stopping import as_matrix

__all__ = ["StencilOperator", "lanczos_ritz_vectors", "RitzRightHandSides", "TrainingSystem", "dcdm_residuals",
           "dcdm_loss", "train_dcdm", "DCDMTraining", "obstacle_training_systems", "save_dcdm", "load_dcdm"]


class StencilOperator:
    """A (2d+1)-point grid stencil read off a sparse matrix, applied to torch fields.

    ``(A u)_i = a_ii u_i + sum_axes (w_i u_{i+e} + w_{i-e} u_{i-e})`` with ``w_i = A[i, i+e]``.

    Parameters
    ----------
    A : sparse matrix
        Symmetric, coupling each cell only to its face neighbours on ``grid_shape`` (C order).
    grid_shape : sequence of int

    Examples
    --------
    >>> import numpy as np, torch
    >>> from sciml.datasets.obstacle_poisson import pressure_matrix
    >>> A = pressure_matrix(np.ones((4, 5), bool), h=0.25)
    >>> u = np.random.default_rng(0).standard_normal(20)
    >>> op = StencilOperator(A, (4, 5))
    >>> bool(np.allclose(op(torch.tensor(u).reshape(1, 4, 5)).reshape(-1).numpy(), A @ u))
    True
    """

    def __init__(self, A, grid_shape: Sequence[int], dtype: torch.dtype = torch.float64, device="cpu"):
        A = as_matrix(A, "StencilOperator")
        self.grid_shape = tuple(int(s) for s in grid_shape)
        if math.prod(self.grid_shape) != A.shape[0]:
            raise SciMLError(f"grid {list(self.grid_shape)} does not hold the {A.shape[0]} unknowns of A")
        strides = np.cumprod((1,) + self.grid_shape[:0:-1])[::-1]
        n, count = A.shape[0], int(np.count_nonzero(A.diagonal()))
        self.diagonal = torch.as_tensor(A.diagonal().reshape(self.grid_shape), dtype=dtype, device=device)
        self.weights = []
        for axis, stride in enumerate(strides):
            off = np.zeros(n)
            if stride < n:
                off[: n - stride] = A.diagonal(int(stride))
            off = off.reshape(self.grid_shape)
            wrapped = np.take(off, [self.grid_shape[axis] - 1], axis=axis)
            if np.any(wrapped != 0):
                raise SciMLError("A couples cells that are not face neighbours on the grid: it is not a grid stencil")
            count += 2 * int(np.count_nonzero(off))
            self.weights.append(torch.as_tensor(off, dtype=dtype, device=device))
        if count != A.count_nonzero():
            raise SciMLError(f"A is not a {2 * len(self.grid_shape) + 1}-point stencil on grid {list(self.grid_shape)}; "
                             "training needs a grid operator with face couplings only")

    def __call__(self, u: torch.Tensor) -> torch.Tensor:
        """``A u`` for a batch of fields ``(B, *grid)``."""
        out = self.diagonal * u
        dim = len(self.grid_shape)
        for axis, w in enumerate(self.weights):
            size = self.grid_shape[axis]
            if size < 2:
                continue
            w_lower = w.narrow(axis, 0, size - 1)
            after = [0, 0] * (dim - 1 - axis)
            out = out + F.pad(w_lower * u.narrow(axis + 1, 1, size - 1), after + [0, 1])
            out = out + F.pad(w_lower * u.narrow(axis + 1, 0, size - 1), after + [1, 0])
        return out


def lanczos_ritz_vectors(A, n_steps: int, rng: np.random.Generator | int, start_mask: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Ritz values and vectors of ``n_steps`` Lanczos steps on symmetric ``A``, lowest first.

    Lanczos with full reorthogonalisation (classical Gram-Schmidt, twice) from a random
    start restricted to ``start_mask`` (default: all unknowns); stops early when the
    Krylov space is invariant. Memory: ``8 n n_steps`` bytes for the basis while it runs.

    Returns
    -------
    values : ndarray, shape (m,)
        Ritz values, ascending (``m <= n_steps``).
    vectors : ndarray, shape (m, n), float32
        The Ritz vectors as rows, unit norm.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> A = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(50, 50))
    >>> values, vectors = lanczos_ritz_vectors(A, 50, rng=0)
    >>> bool(abs(values[0] - 2 * (1 - np.cos(np.pi / 51))) < 1e-10), vectors.shape
    (True, (50, 50))
    """
    A = as_matrix(A, "lanczos_ritz_vectors")
    n = A.shape[0]
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise SciMLError(f"n_steps must be an integer >= 1, got {n_steps!r}")
    m = min(int(n_steps), n)
    rng = np.random.default_rng(rng)
    v = rng.standard_normal(n)
    if start_mask is not None:
        v = np.where(start_mask, v, 0.0)
    basis = np.zeros((m, n))
    alphas, betas = [], []
    v /= np.linalg.norm(v)
    for j in range(m):
        basis[j] = v
        w = A @ v
        alphas.append(float(w @ v))
        for _ in range(2):
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(np.linalg.norm(w))
        if j == m - 1 or beta <= 1e-10 * max(abs(alphas[-1]), 1e-300):
            break
        betas.append(beta)
        v = w / beta
    k = len(alphas)
    values, coefficients = scipy.linalg.eigh_tridiagonal(np.array(alphas), np.array(betas[: k - 1]))
    vectors = (coefficients.T @ basis[:k]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return values, vectors


class RitzRightHandSides:
    """Unit-norm right-hand sides ``b = sum_i w_i c_i v_i / ||.||`` drawn on the fly from a Ritz basis.

    Parameters
    ----------
    vectors : ndarray (m, n)
        Ritz vectors, lowest Ritz value first (:func:`lanczos_ritz_vectors`).
    low_fraction : float
        Fraction of the basis (from the low end) whose coefficients get ``low_weight``.
    low_weight : float
        The paper's 9.
    device : str or torch.device

    Examples
    --------
    >>> import numpy as np, torch
    >>> rhs = RitzRightHandSides(np.eye(4, 6, dtype=np.float32))
    >>> b = rhs.batch(3, torch.Generator().manual_seed(0))
    >>> tuple(b.shape), bool(torch.allclose(b.norm(dim=1), torch.ones(3)))
    ((3, 6), True)
    """

    def __init__(self, vectors: np.ndarray, low_fraction: float = 0.5, low_weight: float = 9.0, device="cpu",
                 values: np.ndarray | None = None):
        if not 0 <= low_fraction <= 1 or not low_weight > 0:
            raise SciMLError(f"need 0 <= low_fraction <= 1 and low_weight > 0, got {low_fraction!r}, {low_weight!r}")
        self.vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32), device=device)
        m = self.vectors.shape[0]
        self.weights = torch.ones(m, device=device)
        self.weights[: math.ceil(low_fraction * m)] = float(low_weight)
        self.values = None if values is None else torch.as_tensor(np.asarray(values, dtype=np.float32), device=device)
        if self.values is not None and (self.values.shape != (m,) or not bool((self.values > 0).all())):
            raise SciMLError(f"values must be {m} positive Ritz values, one per vector; pass those of lanczos_ritz_vectors")

    def batch(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch_size, n)`` right-hand sides of unit 2-norm."""
        return self.batch_with_energy(batch_size, generator)[0]

    def batch_with_energy(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Right-hand sides as :meth:`batch` and their Ritz estimates of ``b^T A^-1 b`` (None without ``values``).

        ``b^T A^-1 b ~ sum_i (w_i c_i)^2 / theta_i / ||sum_i w_i c_i v_i||^2`` -- exact when the
        ``v_i`` are eigenvectors, a Gauss-quadrature estimate otherwise. The estimate is a
        lower bound (the energy minimised over the span of the ``v_i``), so the energy loss
        can go below 0: measured with 256 Ritz vectors, 0.93-1.0 of the true value at
        64^2 but 0.58-1.0 at 128^2 (use more Ritz vectors on larger grids).
        """
        c = torch.randn(batch_size, self.vectors.shape[0], generator=generator).to(self.vectors.device) * self.weights
        b = c @ self.vectors
        norm = b.norm(dim=1, keepdim=True)
        energy = None if self.values is None else (c**2 / self.values).sum(dim=1) / norm[:, 0] ** 2
        return b / norm, energy


@dataclasses.dataclass
class TrainingSystem:
    """One training operator: its stencil, coupled-cell mask and Ritz right-hand sides.

    Optionally also a bank of unit-norm DCDM residuals (:func:`dcdm_residuals`) and an
    exact solver ``solve(B) = A^-1 B`` (columns) that gives the energies ``b^T A^-1 b``
    the residuals need (:meth:`draw`).
    """

    grid_shape: tuple[int, ...]
    operator: StencilOperator
    mask: torch.Tensor
    rhs: RitzRightHandSides
    residuals: torch.Tensor | None = None
    solve: object = None

    def draw(self, batch_size: int, generator: torch.Generator, residual_fraction: float = 0.0
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of unit-norm right-hand sides and their energies ``b^T A^-1 b``.

        ``round(residual_fraction * batch_size)`` rows are drawn (with replacement) from
        :attr:`residuals`, the rest are Ritz right-hand sides. With :attr:`solve` set the
        energies are exact, otherwise the Ritz estimates (None without Ritz values).
        """
        has_bank = self.residuals is not None and len(self.residuals) > 0
        from_bank = int(round(residual_fraction * batch_size)) if has_bank else 0
        b, energy = self.rhs.batch_with_energy(batch_size - from_bank, generator)
        if from_bank:
            picks = torch.randint(self.residuals.shape[0], (from_bank,), generator=generator)
            b = torch.cat([b, self.residuals[picks.to(self.residuals.device)]])
        if self.solve is not None:
            rows = b.detach().to("cpu", torch.float64).numpy()
            exact = np.einsum("ij,ji->i", rows, self.solve(np.ascontiguousarray(rows.T)))
            energy = torch.as_tensor(exact, dtype=b.dtype, device=b.device)
        return b, energy

    @classmethod
    def build(cls, A, grid_shape: Sequence[int], n_ritz: int, rng, low_fraction: float = 0.5,
              low_weight: float = 9.0, device="cpu") -> "TrainingSystem":
        """Read the stencil off ``A`` and run Lanczos for its Ritz basis."""
        A = as_matrix(A, "dcdm training")
        coupled = ~decoupled_cells(A)
        values, vectors = lanczos_ritz_vectors(A, n_ritz, rng, start_mask=coupled)
        mask = torch.as_tensor(coupled.reshape(grid_shape), dtype=torch.float32, device=device)
        return cls(tuple(grid_shape), StencilOperator(A, grid_shape, torch.float32, device), mask,
                   RitzRightHandSides(vectors, low_fraction, low_weight, device, values=values))


def dcdm_residuals(model: DCDMNet, A, right_hand_sides: Sequence[np.ndarray], *,
                   grid_shape: Sequence[int] | None = None, rtol: float = 1e-6) -> np.ndarray:
    """Unit-norm residuals ``r_k / ||r_k||`` met by DCDM with ``model`` on ``A x = b``, for each ``b``.

    ``model`` is what :func:`~sciml.solvers.deep_conjugate_direction.dcdm_result` takes:
    a network, a preconditioner bound to ``A``, or a checkpoint path.

    DCDM (:func:`~sciml.solvers.deep_conjugate_direction.dcdm_result`, at most ``n``
    iterations) runs on every right-hand side, and the true residuals after its
    iterations ``1 .. K-1`` (not the converged last one) are kept: the inputs the
    network meets in its own solves -- late, smooth residuals unlike any Ritz
    right-hand side -- for DAgger-style training (``residual_fraction`` of :func:`train_dcdm`).

    Returns
    -------
    ndarray, shape (total, n), float32

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets.obstacle_poisson import pressure_matrix
    >>> A = pressure_matrix(np.ones((8, 8), bool), h=1 / 8)
    >>> R = dcdm_residuals(DCDMNet(dim=2), A, [np.ones(64)])
    >>> R.shape[1], bool(np.allclose(np.linalg.norm(R, axis=1), 1, atol=1e-6))
    (64, True)
    """
    from sciml.solvers.deep_conjugate_direction import dcdm_result

    A = as_matrix(A, "dcdm_residuals")
    rows = []
    for b in right_hand_sides:
        b = np.asarray(b, dtype=float)
        seen = []
        dcdm_result(A, b, rtol=rtol, maxiter=A.shape[0], model=model, grid_shape=grid_shape,
                    callback=lambda x: seen.append(b - A @ x))
        rows += [r / np.linalg.norm(r) for r in seen[:-1] if np.linalg.norm(r) > 0]
    return np.array(rows, dtype=np.float32).reshape(len(rows), A.shape[0])


def dcdm_loss(model: DCDMNet, system: TrainingSystem, b: torch.Tensor, energy: torch.Tensor | None = None
              ) -> torch.Tensor:
    """The loss of the directions ``q = f(b)`` for unit-norm ``b`` of shape ``(B, n)``.

    Without ``energy``, the paper's ``mean ||b - A (q^T b / q^T A q) q||^2``. With
    ``energy`` (``b^T A^-1 b`` per row, :meth:`RitzRightHandSides.batch_with_energy`), the
    energy-norm loss ``mean 1 - (q^T b)^2 / (q^T A q  b^T A^-1 b)``: the squared A-norm of
    the error left by the exact line search along ``q``, relative to that of ``x = 0``
    (see the module docstring).

    The network sees ``b`` scaled to unit RMS over the coupled cells, and its direction
    is zeroed on the decoupled cells, as in :class:`~sciml.solvers.deep_conjugate_direction.DCDMPreconditioner`.
    """
    fields = b.reshape(b.shape[0], 1, *system.grid_shape)
    fields = fields * math.sqrt(float(system.mask.sum()))
    if model.in_channels == 2:
        fields = torch.cat([fields, system.mask.expand_as(fields)], dim=1)
    q = model(fields)[:, 0] * system.mask
    Aq = system.operator(q).reshape(b.shape[0], -1)
    q = q.reshape(b.shape[0], -1)
    curvature = (q * Aq).sum(dim=1).clamp_min(torch.finfo(q.dtype).tiny)  # >= 0 for SPD A
    if energy is not None:
        return (1 - (q * b).sum(dim=1) ** 2 / (curvature * energy)).mean()
    step = (q * b).sum(dim=1) / curvature
    return ((b - step[:, None] * Aq) ** 2).sum(dim=1).mean()


@dataclasses.dataclass
class DCDMTraining:
    """What :func:`train_dcdm` returns: the trained net, the loss per step, the settings."""

    model: DCDMNet
    losses: list[float]
    seconds: float
    settings: dict


def train_dcdm(matrices: Sequence, *, grid_shapes: Sequence[Sequence[int]] | None = None, model: DCDMNet | None = None,
               dim: int | None = None, steps: int = 1000, batch_size: int = 16, lr: float = 1e-3, n_ritz: int = 128,
               low_fraction: float = 0.5, low_weight: float = 9.0, seed: int = 0, device: str = "cpu",
               log_every: int = 0, loss: str = "residual", residual_fraction: float = 0.0,
               residual_rhs: int | Sequence[Sequence[np.ndarray]] = 3, residual_rounds: int = 1) -> DCDMTraining:
    """Train a DCDM network on the operators ``matrices`` with the unsupervised loss.

    Each step draws a batch of Ritz right-hand sides of one operator (cycling through
    the list) and takes one Adam step on :func:`dcdm_loss`; the learning rate decays
    by a cosine schedule to a tenth. See the module docstring for the data and loss.

    Parameters
    ----------
    matrices : sequence of sparse matrices
        SPD grid operators (e.g. :func:`obstacle_training_systems`), all of one dimension.
    grid_shapes : sequence, optional
        Grid of each matrix; default: cubes of ``dim`` dimensions.
    model : DCDMNet, optional
        Network to train further; default a new ``DCDMNet(dim=dim)``.
    dim : int, optional
        Dimension of a new network (default 2).
    steps, batch_size, lr : training length, batch and Adam learning rate.
    n_ritz : int
        Lanczos steps (Ritz vectors) per operator.
    low_fraction, low_weight : float
        The spectral weighting of the right-hand sides (the paper: 9 on the low half).
    loss : {"residual", "energy"}
        The paper's residual loss, or the energy-norm loss (a departure, see the module
        docstring and :func:`dcdm_loss`).
    residual_fraction : float
        Share of every batch drawn from the residuals that DCDM with the given ``model``
        meets on each training operator (:func:`dcdm_residuals`; DAgger-style, a
        departure, see the module docstring). Needs a trained ``model`` to fine-tune;
        with it and ``loss="energy"``, the energies ``b^T A^-1 b`` of all right-hand
        sides are exact (one sparse LU per operator). 0: Ritz right-hand sides only.
    residual_rhs : int or sequence of sequences of ndarray
        The right-hand sides of those DCDM runs: one sequence per operator (best: like
        the systems to be solved, e.g. the sources from ``obstacle_training_systems(...,
        with_rhs=True)``), or a count of random normal ones (on the coupled cells) per operator.
    residual_rounds : int
        With ``residual_fraction > 0``: rounds of (DCDM runs with the current net, their
        residuals added to the bank, ``steps`` steps with a fresh optimizer and schedule);
        ``residual_rounds * steps`` steps in all.
    seed : int
        Seeds the network initialisation, Lanczos starts and batches.
    device : str
    log_every : int
        Print the mean loss every so many steps (0: silent).

    Returns
    -------
    DCDMTraining

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets.obstacle_poisson import pressure_matrix
    >>> A = pressure_matrix(np.ones((8, 8), bool), 1 / 8)
    >>> run = train_dcdm([A], steps=3, batch_size=2, n_ritz=8)
    >>> len(run.losses)
    3
    >>> tuned = train_dcdm([A], model=run.model, steps=2, batch_size=2, n_ritz=8, loss="energy",
    ...                    residual_fraction=0.5, residual_rhs=[[np.ones(64)]])   # fine-tune on its residuals
    >>> tuned.settings["residual_rhs"], tuned.settings["residuals"][0] > 0
    ([1], True)
    """
    started = time.perf_counter()
    if not len(matrices):
        raise SciMLError("train_dcdm needs at least one training matrix")
    if not 0 <= residual_fraction <= 1:
        raise SciMLError(f"residual_fraction must be in [0, 1], got {residual_fraction!r}")
    counts = [("steps", steps), ("batch_size", batch_size), ("n_ritz", n_ritz)]
    count_given = isinstance(residual_rhs, (int, np.integer)) and not isinstance(residual_rhs, bool)
    if residual_fraction:
        counts += [("residual_rounds", residual_rounds)] + ([("residual_rhs", residual_rhs)] if count_given else [])
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise SciMLError(f"{name} must be an integer >= 1, got {value!r}")
    if not lr > 0:
        raise SciMLError(f"lr must be > 0, got {lr!r}")
    if loss not in ("residual", "energy"):
        raise SciMLError(f"loss must be 'residual' (the paper's) or 'energy', got {loss!r}")
    if residual_fraction and model is None:
        raise SciMLError("residual_fraction > 0 fine-tunes a trained network on its own DCDM residuals: pass model= "
                         "(train one with residual_fraction=0 first)")
    if residual_fraction and not count_given and len(residual_rhs) != len(matrices):
        raise SciMLError(f"residual_rhs has {len(residual_rhs)} entries for {len(matrices)} matrices; give one "
                         "sequence of right-hand sides per matrix, or a count of random ones")
    torch.manual_seed(seed)
    if model is None:
        model = DCDMNet(dim=2 if dim is None else dim)
    elif dim is not None and dim != model.dim:
        raise SciMLError(f"dim={dim} but the given model is {model.dim}-D; drop dim= or pass a {dim}-D model")
    model = model.to(device)
    rng = np.random.default_rng(seed)
    if grid_shapes is None:
        grid_shapes = [grid_of(as_matrix(A, "train_dcdm").shape[0], model.dim) for A in matrices]
    elif len(grid_shapes) != len(matrices):
        raise SciMLError(f"got {len(grid_shapes)} grid shapes for {len(matrices)} matrices; give one per matrix")
    systems = [TrainingSystem.build(A, grid_of(as_matrix(A, "train_dcdm").shape[0], model.dim, shape), n_ritz, rng,
                                    low_fraction, low_weight, device) for A, shape in zip(matrices, grid_shapes)]
    starts = []  # the right-hand sides of the DCDM runs, one list per operator
    if residual_fraction and count_given:
        for A in matrices:
            decoupled = decoupled_cells(as_matrix(A, "train_dcdm"))
            starts.append([np.where(decoupled, 0.0, rng.standard_normal(A.shape[0])) for _ in range(residual_rhs)])
    elif residual_fraction:
        starts = [[np.asarray(b, dtype=float) for b in rhs] for rhs in residual_rhs]
    generator = torch.Generator().manual_seed(seed)
    losses = []
    for round_ in range(residual_rounds if residual_fraction else 1):
        if residual_fraction:  # DAgger: add the residuals the current net meets
            model.eval()
            for A, system, rhs in zip(matrices, systems, starts):
                A = as_matrix(A, "train_dcdm")
                bank = torch.as_tensor(dcdm_residuals(model, A, rhs, grid_shape=system.grid_shape), device=device)
                system.residuals = bank if system.residuals is None else torch.cat([system.residuals, bank])
                if system.solve is None and loss == "energy":
                    system.solve = scipy.sparse.linalg.splu(A.tocsc()).solve
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=lr / 10)
        model.train()
        for step in range(steps):
            system = systems[step % len(systems)]
            b, energy = system.draw(batch_size, generator, residual_fraction)
            value = dcdm_loss(model, system, b, energy if loss == "energy" else None)
            if not torch.isfinite(value):
                raise SciMLError(f"the DCDM loss turned non-finite at step {step} of round {round_}; "
                                 f"lower lr (now {lr})")
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(value.detach()))
            if log_every and (step + 1) % log_every == 0:
                print(f"round {round_} step {step + 1}/{steps}: loss {np.mean(losses[-log_every:]):.4f}", flush=True)
    model.eval()
    settings = {"steps": steps, "batch_size": batch_size, "lr": lr, "n_ritz": n_ritz, "low_fraction": low_fraction,
                "low_weight": low_weight, "loss": loss, "seed": seed, "grid_shapes": [list(s.grid_shape) for s in systems]}
    if residual_fraction:
        settings.update(residual_fraction=residual_fraction, residual_rhs=[len(rhs) for rhs in starts],
                        residual_rounds=residual_rounds,
                        residuals=[int(s.residuals.shape[0]) for s in systems])
    return DCDMTraining(model, losses, time.perf_counter() - started, settings)


def obstacle_training_systems(resolution: int | Sequence[int], dim: int = 2, n_layouts: int = 4, seed: int = 0,
                              with_rhs: bool = False, **problem_options) -> list:
    """Matrices of ``n_layouts`` random obstacle layouts of :class:`~sciml.datasets.obstacle_poisson.ObstaclePoisson`.

    With several resolutions, ``n_layouts`` layouts of each -- each size drawn from a
    fresh generator seeded ``seed``, so a single size gives the same layouts either way
    -- interleaved (one of every size, then the next of every size, ...), so that
    :func:`train_dcdm`, which cycles through its list, alternates the grid sizes step by step.
    ``with_rhs=True`` gives ``(A, b)`` pairs, ``b`` the layout's source (for
    ``residual_rhs`` of :func:`train_dcdm`).

    Examples
    --------
    >>> [A.shape for A in obstacle_training_systems(8, n_layouts=2)]
    [(64, 64), (64, 64)]
    >>> [A.shape[0] for A in obstacle_training_systems([4, 8], n_layouts=2)]
    [16, 64, 16, 64]
    """
    from sciml.datasets.obstacle_poisson import ObstaclePoisson

    resolutions = [resolution] if isinstance(resolution, (int, np.integer)) else list(resolution)
    if not resolutions:
        raise SciMLError("obstacle_training_systems needs at least one resolution")
    per_size = []
    for size in resolutions:
        rng = np.random.default_rng(seed)
        problem = ObstaclePoisson(resolution=size, dim=dim, **problem_options)
        per_size.append([problem.assemble(problem.sample_inputs(rng)) for _ in range(n_layouts)])
    return [pair if with_rhs else pair[0] for layout in zip(*per_size) for pair in layout]


def save_dcdm(path: str | os.PathLike, run: DCDMTraining) -> Path:
    """Write the trained network as a sciml checkpoint (config, versions, training settings).

    It loads with :func:`load_dcdm`, :func:`sciml.checkpoint.load_model`, or directly as
    ``DCDMPreconditioner(path, A)``.

    Examples
    --------
    >>> import tempfile, os
    >>> from sciml.models.dcdm_net import DCDMNet
    >>> run = DCDMTraining(DCDMNet(dim=2), [0.5], 1.0, {"grid_shapes": [[16, 16]]})
    >>> path = save_dcdm(os.path.join(tempfile.mkdtemp(), "dcdm.pt"), run)
    >>> load_dcdm(path)[1]["training"]["grid_shapes"]
    [[16, 16]]
    """
    from sciml.checkpoint import model_payload, save_checkpoint
    from sciml.normalization import ChannelNormalizer, Normalizers

    model = run.model
    channels = model.in_channels
    identity = Normalizers(ChannelNormalizer([0.0] * channels, [1.0] * channels), ChannelNormalizer([0.0], [1.0]))
    shapes = run.settings.get("grid_shapes") or [[0] * model.dim]
    payload = model_payload(model, identity, ["residual", "mask"][:channels], ["direction"], shapes[0],
                            [1.0 / max(n, 1) for n in shapes[0]])
    payload["training"] = json.loads(json.dumps({**run.settings, "final_loss": run.losses[-1] if run.losses else None,
                                                 "seconds": run.seconds}))
    return save_checkpoint(path, payload)


def load_dcdm(path: str | os.PathLike, device: str = "cpu") -> tuple[DCDMNet, dict]:
    """The network saved by :func:`save_dcdm` (eval mode, on ``device``) and the checkpoint's metadata."""
    from sciml.checkpoint import load_model

    model, _, meta = load_model(path, device=device)
    if not isinstance(model, DCDMNet):
        raise SciMLError(f"checkpoint {path} holds a {meta['model_name']!r} model, not a DCDM network")
    return model, meta
