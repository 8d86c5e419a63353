"""Sequences of related linear systems for learning the SOR factor online.

The two sequences of Khodak, Chow, Balcan & Talwalkar, "Learning to Relax: Setting
Solver Parameters Across a Sequence of Linear System Instances", ICLR 2024 (sec. 6 and
their code):

- :class:`ShiftedLaplacianSequence`: ``A_t = A + c_t I`` with ``A`` the Dirichlet
  finite-difference Laplacian (MATLAB's ``delsq``, diagonal ``2 d``), random shifts
  ``c_t`` and right-hand sides drawn from a radially truncated standard normal;
- :class:`HeatEquationSequence`: the 2-D heat equation ``u_t = kappa(t) Delta u + f``
  on the unit square by Crank-Nicolson, with a time-varying diffusivity and a moving
  forcing bump; each time step is one system, warm-started from the previous step.

Both are iterables of ``(A, b, context)`` with a scalar context (the shift ``c_t``,
the diffusivity ``kappa``). Systems of the heat sequence depend on the previous
solution, so after solving one the caller hands the solution back with
:meth:`HeatEquationSequence.update`. Both use :func:`dirichlet_laplacian`, the
vertex-centred difference operator of the paper, rather than the cell-centred
finite-volume :func:`sciml.datasets.finite_volume.diffusion_matrix`: its spectrum is
known in closed form, which gives the instance-optimal SOR factor exactly.

Examples
--------
>>> sequence = ShiftedLaplacianSequence((10, 10), "high", length=3, seed=0)
>>> [(A.shape, b.shape, round(c, 3)) for A, b, c in sequence]
[((100, 100), (100,), -0.043), ((100, 100), (100,), 0.007), ((100, 100), (100,), 0.046)]
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError

__all__ = [
    "dirichlet_laplacian",
    "laplacian_extreme_eigenvalues",
    "ShiftedLaplacianSequence",
    "HeatEquationSequence",
    "SHIFT_DISTRIBUTIONS",
]

SHIFT_DISTRIBUTIONS = {"high": (0.5, 1.5), "low": (2.0, 6.0)}
"""Beta(a, b) parameters of the paper's high- and low-variance shift distributions:
``c = -0.15 + 0.6 u``, ``u ~ Beta(a, b)``, on the 10x10 grid."""

PAPER_SHIFT = (-0.15, 0.6)
"""Offset and width of the paper's shifts ``c = -0.15 + 0.6 u`` (for the 10x10 grid)."""


def _check_shape(shape) -> tuple[int, ...]:
    shape = (int(shape),) if np.isscalar(shape) else tuple(shape)
    if not shape or any(isinstance(m, bool) or int(m) != m or m < 1 for m in shape):
        raise SciMLError(f"grid shape must be positive integers per axis, got {shape!r}")
    return tuple(int(m) for m in shape)


def dirichlet_laplacian(shape, h: float = 1.0) -> sp.csr_array:
    """The (2d+1)-point finite-difference ``-Delta`` with zero Dirichlet values, scaled by ``1/h^2``.

    Unknowns are the interior grid points, numbered in C order; along every axis the
    1-D operator is ``tridiag(-1, 2, -1)``, and the d-dimensional one is their
    Kronecker sum. With ``h = 1`` and shape ``(m, m)`` this is MATLAB's
    ``delsq(numgrid('S', m + 2))``, the matrix of the paper.

    Parameters
    ----------
    shape : int or tuple of int
        Interior points per axis.
    h : float
        Grid spacing.

    Returns
    -------
    scipy.sparse.csr_array
        Symmetric positive definite, eigenvalues in :func:`laplacian_extreme_eigenvalues`.

    Examples
    --------
    >>> dirichlet_laplacian((2, 2)).toarray()
    array([[ 4., -1., -1.,  0.],
           [-1.,  4.,  0., -1.],
           [-1.,  0.,  4., -1.],
           [ 0., -1., -1.,  4.]])
    """
    shape = _check_shape(shape)
    if not (isinstance(h, (int, float, np.integer, np.floating)) and math.isfinite(h) and h > 0):
        raise SciMLError(f"grid spacing h must be a finite number > 0, got {h!r}")
    total = sp.csr_array((int(np.prod(shape)),) * 2)
    for axis, m in enumerate(shape):
        one_d = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(m, m))
        before = sp.identity(int(np.prod(shape[:axis])), format="csr")
        after = sp.identity(int(np.prod(shape[axis + 1:])), format="csr")
        total = total + sp.kron(sp.kron(before, one_d), after)
    matrix = sp.csr_array(total / float(h) ** 2)
    matrix.sort_indices()
    return matrix


def laplacian_extreme_eigenvalues(shape, h: float = 1.0) -> tuple[float, float]:
    """Smallest and largest eigenvalue of :func:`dirichlet_laplacian` (closed form).

    ``sum_k (2 - 2 cos(pi j / (m_k + 1))) / h^2`` with ``j = 1`` and ``j = m_k``.

    Examples
    --------
    >>> [round(v, 4) for v in laplacian_extreme_eigenvalues((10, 10))]
    [0.162, 7.838]
    """
    shape = _check_shape(shape)
    low = sum(2.0 - 2.0 * math.cos(math.pi / (m + 1)) for m in shape) / h ** 2
    high = sum(2.0 - 2.0 * math.cos(math.pi * m / (m + 1)) for m in shape) / h ** 2
    return low, high


def _shifted(matrix: sp.csr_array, diagonal_positions: np.ndarray, shift: float) -> sp.csr_array:
    """``matrix + shift I`` sharing the index arrays of ``matrix`` (its diagonal is stored)."""
    data = matrix.data.copy()
    data[diagonal_positions] += shift
    return sp.csr_array((data, matrix.indices, matrix.indptr), shape=matrix.shape)


def _diagonal_positions(matrix: sp.csr_array) -> np.ndarray:
    """Index into ``matrix.data`` of every diagonal entry (all of which must be stored)."""
    rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    positions = np.flatnonzero(rows == matrix.indices)
    if positions.size != matrix.shape[0]:
        raise SciMLError("the matrix must store every diagonal entry; build it with dirichlet_laplacian")
    return positions


class ShiftedLaplacianSequence:
    """``A_t = A + c_t I`` with random shifts: the paper's diagonal-shift sequence.

    ``A`` is :func:`dirichlet_laplacian` (``h = 1``), ``c_t = s (-0.15 + 0.6 u_t)`` with
    ``u_t ~ Beta(0.5, 1.5)`` ("high" variance: most shifts near the most ill-conditioned
    end) or ``Beta(2, 6)`` ("low"), and ``b_t`` a standard normal vector redrawn until
    ``||b_t|| <= sqrt(n)``. On the paper's 10x10 grid ``s = 1``; on other grids ``s =
    lambda_min(A) / lambda_min(A_10x10)``, so that the shifts keep the same relation to
    the smallest eigenvalue (``A_t`` stays positive definite; the paper uses only 10x10,
    so this scaling is our extension to realistic sizes).

    Parameters
    ----------
    shape : tuple of int
        Interior grid points per axis; ``(10, 10)`` is the paper's n = 100.
    distribution : {"high", "low"}
        Which Beta distribution the shifts follow.
    length : int
        Number of systems.
    seed : int or numpy.random.Generator
        Randomness of the shifts and right-hand sides.

    Attributes
    ----------
    context_range : (float, float)
        Interval every shift lies in (the ChebCB / binning range).

    Examples
    --------
    >>> sequence = ShiftedLaplacianSequence((10, 10), "low", length=2, seed=1)
    >>> A, b, c = next(iter(sequence))
    >>> bool(np.linalg.norm(b) <= 10.0), round(sequence.optimal_sor_omega(c), 3)
    (True, 1.561)
    """

    def __init__(self, shape=(10, 10), distribution: str = "high", length: int = 5000, seed=0):
        if distribution not in SHIFT_DISTRIBUTIONS:
            raise SciMLError(f"unknown shift distribution {distribution!r}; use one of "
                             f"{sorted(SHIFT_DISTRIBUTIONS)}")
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 1:
            raise SciMLError(f"length must be an integer >= 1, got {length!r}")
        self.shape = _check_shape(shape)
        self.distribution = distribution
        self.length = int(length)
        self.seed = seed
        self.laplacian = dirichlet_laplacian(self.shape)
        self._diagonal = _diagonal_positions(self.laplacian)
        self.lambda_min, self.lambda_max = laplacian_extreme_eigenvalues(self.shape)
        self.scale = self.lambda_min / laplacian_extreme_eigenvalues((10, 10))[0]
        offset, width = PAPER_SHIFT
        self.context_range = (self.scale * offset, self.scale * (offset + width))

    @property
    def n(self) -> int:
        return self.laplacian.shape[0]

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[sp.csr_array, np.ndarray, float]]:
        rng = np.random.default_rng(self.seed)
        a, b = SHIFT_DISTRIBUTIONS[self.distribution]
        offset, width = PAPER_SHIFT
        for _ in range(self.length):
            shift = self.scale * (offset + width * float(rng.beta(a, b)))
            yield _shifted(self.laplacian, self._diagonal, shift), self._rhs(rng), shift

    def _rhs(self, rng: np.random.Generator) -> np.ndarray:
        """Standard normal in R^n conditioned on ``||b|| <= sqrt(n)`` (rejection, as the paper)."""
        while True:
            b = rng.standard_normal(self.n)
            if b @ b <= self.n:
                return b

    def jacobi_radius(self, shift: float) -> float:
        """Spectral radius of the Jacobi iteration matrix of ``A + shift I`` (closed form)."""
        d = 2.0 * len(self.shape)
        return (d - self.lambda_min) / (d + shift)

    def optimal_sor_omega(self, shift: float) -> float:
        """Young's instance-optimal SOR factor ``2 / (1 + sqrt(1 - rho_J^2))`` for ``A + shift I``.

        Exact here: the natural ordering of the (2d+1)-point stencil is consistently
        ordered and the Jacobi eigenvalues are real, in ``(-1, 1)`` for ``shift > -lambda_min``.
        """
        from sciml.solvers.sor import optimal_sor_omega

        return optimal_sor_omega(self.jacobi_radius(shift))


def bump(points: np.ndarray, center, radius: float) -> np.ndarray:
    """Smooth bump ``exp(1 - 1 / (1 - |x - c|^2 / r^2))`` inside the ball, 0 outside (peak 1).

    Examples
    --------
    >>> bump(np.array([[0.5, 0.5], [0.9, 0.9]]), (0.5, 0.5), 0.25).tolist()
    [1.0, 0.0]
    """
    s = np.sum((points - np.asarray(center)) ** 2, axis=-1) / radius ** 2
    inside = s < 1.0
    out = np.zeros(s.shape)
    out[inside] = np.exp(1.0 - 1.0 / (1.0 - s[inside]))
    return out


def paper_diffusivity(t: float) -> float:
    """The paper's diffusivity ``max(0.1 sin(2 pi t), -10 sin(2 pi t))``: slow half-periods
    with ``kappa <= 0.1`` alternate with fast ones up to ``kappa = 10``."""
    s = math.sin(2.0 * math.pi * t)
    return max(0.1 * s, -10.0 * s)


def paper_forcing(t: float, points: np.ndarray) -> np.ndarray:
    """The paper's forcing: ``32 bump`` of radius 1/8 circling the centre at radius 1/4, 8 turns per unit time."""
    angle = 16.0 * math.pi * t
    return 32.0 * bump(points, (0.5 + math.cos(angle) / 4.0, 0.5 + math.sin(angle) / 4.0), 0.125)


def paper_initial(points: np.ndarray) -> np.ndarray:
    """The paper's initial temperature: a bump of radius 1/4 in the middle."""
    return bump(points, (0.5, 0.5), 0.25)


class HeatEquationSequence:
    """Crank-Nicolson steps of ``u_t = kappa(t) Delta u + f(t, x)`` on the unit square, u = 0 on the boundary.

    With ``L = dirichlet_laplacian((nx - 1, nx - 1), h = 1/nx)`` (``-Delta`` on the
    ``(nx - 1)^2`` interior points) and ``t_{k+1/2} = t_k + dt/2``, step ``k`` solves

        (I + dt/2 kappa(t_{k+1/2}) L) u_{k+1} = (I - dt/2 kappa(t_{k+1/2}) L) u_k + dt f(t_{k+1/2}),

    the midpoint form of Crank-Nicolson: second order in ``dt`` and unconditionally
    stable, and the system matrix is symmetric positive definite. The defaults are the
    paper's (Khodak et al., ICLR 2024, sec. 6 and their ``Heat2D``): ``kappa`` from
    :func:`paper_diffusivity`, a forcing bump circling the centre, a bump as initial
    value, 5000 steps to ``t = 5``; ``nx = 400`` gives 159,201 unknowns. The context of
    each system is ``kappa(t_{k+1/2})``.

    Iterating yields ``(A, b, kappa)``; solve ``A u = b`` (warm start: ``x0 = self.u``)
    and pass the solution to :meth:`update` before asking for the next system.

    Parameters
    ----------
    nx : int
        Grid cells per side (``nx - 1`` interior points), at least 2.
    steps : int
        Number of time steps (systems).
    dt : float
        Time step.
    diffusivity, forcing, initial : callable
        ``kappa(t) >= 0``, ``f(t, points)`` and ``u0(points)`` for points of shape ``(n, 2)``.

    Examples
    --------
    >>> import scipy.sparse.linalg as sla
    >>> heat = HeatEquationSequence(nx=8, steps=3)
    >>> for A, b, kappa in heat:
    ...     heat.update(sla.spsolve(A.tocsc(), b))
    >>> heat.step, round(heat.t, 6), heat.u.shape
    (3, 0.003, (49,))
    """

    def __init__(self, nx: int = 100, steps: int = 5000, dt: float = 1e-3,
                 diffusivity=paper_diffusivity, forcing=paper_forcing, initial=paper_initial):
        if isinstance(nx, bool) or not isinstance(nx, (int, np.integer)) or nx < 2:
            raise SciMLError(f"nx must be an integer >= 2 (cells per side), got {nx!r}")
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise SciMLError(f"steps must be an integer >= 1, got {steps!r}")
        if not (isinstance(dt, (int, float, np.floating)) and math.isfinite(dt) and dt > 0):
            raise SciMLError(f"dt must be a finite number > 0, got {dt!r}")
        self.nx, self.steps, self.dt = int(nx), int(steps), float(dt)
        self.diffusivity, self.forcing = diffusivity, forcing
        h = 1.0 / self.nx
        self.laplacian = dirichlet_laplacian((self.nx - 1, self.nx - 1), h)
        self._diagonal = _diagonal_positions(self.laplacian)
        axis = h * np.arange(1, self.nx)
        self.points = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
        self.u = np.asarray(initial(self.points), dtype=np.float64)
        self.t, self.step = 0.0, 0
        self._pending = False

    @property
    def n(self) -> int:
        return self.laplacian.shape[0]

    @property
    def context_range(self) -> tuple[float, float]:
        """Smallest and largest diffusivity over the step midpoints (the ChebCB / binning range)."""
        kappas = [float(self.diffusivity((k + 0.5) * self.dt)) for k in range(self.steps)]
        return min(kappas), max(kappas)

    def __len__(self) -> int:
        return self.steps

    def system(self) -> tuple[sp.csr_array, np.ndarray, float]:
        """The system ``(A, b, kappa)`` of the current step (from ``self.u`` at ``self.t``)."""
        half = self.t + 0.5 * self.dt
        kappa = float(self.diffusivity(half))
        if not (math.isfinite(kappa) and kappa >= 0):
            raise SciMLError(f"diffusivity must be finite and >= 0, got {kappa!r} at t = {half}")
        a = 0.5 * self.dt * kappa
        A = sp.csr_array((a * self.laplacian.data, self.laplacian.indices, self.laplacian.indptr),
                         shape=self.laplacian.shape)
        A.data[self._diagonal] += 1.0
        b = self.u - a * (self.laplacian @ self.u) + self.dt * np.asarray(
            self.forcing(half, self.points), dtype=np.float64)
        return A, b, kappa

    def update(self, u: np.ndarray) -> None:
        """Accept the solution of the current system and advance one step."""
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.n,) or not np.isfinite(u).all():
            raise SciMLError(f"update needs the finite solution of length {self.n}, got shape "
                             f"{u.shape}; pass result.x of the solve")
        self.u, self.t, self.step = u, self.t + self.dt, self.step + 1
        self._pending = False

    def __iter__(self) -> Iterator[tuple[sp.csr_array, np.ndarray, float]]:
        while self.step < self.steps:
            if self._pending:
                raise SciMLError("call update(x) with the solution of the previous system before "
                                 "asking for the next one")
            self._pending = True
            yield self.system()
