"""Steady Darcy flow -div(a grad u) = f on the unit cube with u = 0 on the boundary.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import Darcy
>>> problem = Darcy(resolution=32, coefficient="lognormal")
>>> inputs = problem.sample_inputs(np.random.default_rng(0))
>>> A, b = problem.assemble(inputs)
>>> A.shape, b.shape
((1024, 1024), (1024,))
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError, UnknownNameError

from .finite_volume import diffusion_matrix
from .problem import PDEProblem
from .random_fields import check_grf_parameters, default_sigma, gaussian_random_field

__all__ = ["Darcy", "COEFFICIENT_FAMILIES"]

COEFFICIENT_FAMILIES = ("lognormal", "piecewise")


def _finite_number(name: str, value, positive: bool) -> float:
    """``value`` as a float, or a one-line :class:`SciMLError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SciMLError(f"darcy setting {name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise SciMLError(f"darcy setting {name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return float(value)


class Darcy(PDEProblem, name="darcy"):
    """Darcy flow -div(a(x) grad u(x)) = f(x) on [0, 1]^d, u = 0 on the boundary.

    The benchmark of the Fourier Neural Operator paper (Li et al., "Fourier Neural
    Operator for Parametric Partial Differential Equations", ICLR 2021, section 5.2):
    the coefficient ``a`` is drawn from a Gaussian random field psi ~ N(0, C) with
    C = sigma^2 (-Laplacian + tau^2)^(-alpha) (Neumann Laplacian,
    :func:`~sciml.datasets.gaussian_random_field`), the source is constant, and the
    learned map is a -> u.

    Coefficient families:

    * ``"piecewise"``: a = ``high`` where psi >= 0 and ``low`` where psi < 0 (FNO's
      thresholded field; the paper states 12 and 3, its ``demo.m`` uses 12 and 4).
    * ``"lognormal"``: a = exp(psi), with smoothness ``alpha``, length scale 1/``tau``
      and amplitude ``sigma`` (as FNO's ``lognorm_a``).

    Discretisation: cell-centred finite volumes with harmonic-mean face coefficients and
    the Dirichlet condition on the boundary faces
    (:func:`~sciml.datasets.diffusion_matrix`); the ``resolution`` cells per axis are the
    grid the fields live on, so ``a``, ``f`` and ``u`` share one grid and the matrix is
    symmetric positive definite. Departures from the references: FNO's ``solve_gwf.m``
    spline-interpolates ``a`` to the vertices and uses vertex-centred finite differences
    with arithmetic-mean face coefficients; the SKR data generator (Wang et al.,
    "Accelerating Data Generation for Neural Operators via Krylov Subspace Recycling",
    ICLR 2024) discretises -Laplacian(a u) instead of the conservative -div(a grad u)
    used here, which is the Darcy equation.

    Parameters
    ----------
    resolution : int
        Cells per axis (>= 3).
    dim : int
        1, 2 or 3.
    coefficient : {"piecewise", "lognormal"}
        Coefficient family.
    alpha, tau : float
        GRF smoothness (> d/2) and inverse length scale (> 0); FNO uses 2 and 3.
    high, low : float
        The two values of the piecewise family (> 0).
    source : float
        The constant source f.
    sigma : float, optional
        GRF amplitude; defaults to tau^(alpha - d/2) (FNO's tau^(alpha-1) in 2-D). Only
        the lognormal family depends on it.

    Examples
    --------
    >>> from sciml.datasets import Darcy
    >>> from sciml.solvers import LinearSolver
    >>> sample = Darcy(resolution=16).generate_sample(seed=0, solver=LinearSolver("direct"))
    >>> sample.fields["u"].shape, sorted(set(sample.fields["a"].ravel().tolist()))
    ((16, 16), [3.0, 12.0])
    """

    version = "1"
    parameter_names = ('coefficient', 'alpha', 'tau', 'sigma', 'high', 'low', 'source')
    input_names = ("a", "f")
    output_names = ("u",)
    default_solver = {"method": "cg", "preconditioner": "amg"}  # SPD: see `sciml bench solvers`
    symmetric_positive_definite = True
    ordering_fields = ("a",)  # f is the same constant in every sample

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        coefficient: str = "piecewise",
        alpha: float = 2.0,
        tau: float = 3.0,
        high: float = 12.0,
        low: float = 3.0,
        source: float = 1.0,
        sigma: float | None = None,
    ):
        super().__init__(resolution, dim)
        family = str(coefficient).lower()
        if family not in COEFFICIENT_FAMILIES:
            raise UnknownNameError(
                f"unknown darcy coefficient family {coefficient!r}; choose one of: {', '.join(COEFFICIENT_FAMILIES)}"
            )
        check_grf_parameters(self.dim, alpha, tau, sigma)
        self.coefficient = family
        self.alpha = float(alpha)
        self.tau = float(tau)
        self.sigma = float(sigma) if sigma is not None else default_sigma(alpha, tau, self.dim)
        self.high = _finite_number("high", high, positive=True)
        self.low = _finite_number("low", low, positive=True)
        self.source = _finite_number("source", source, positive=False)


    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw ``a`` from the coefficient family and set ``f`` to the constant source."""
        psi = gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng, sigma=self.sigma)
        if self.coefficient == "piecewise":
            a = np.where(psi >= 0, self.high, self.low)
        else:
            a = np.exp(psi)
        return {"a": a, "f": np.full(self.grid_shape, self.source)}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The finite-volume system ``A u = f`` (``b`` is ``f`` at the cell centres, C order)."""
        a, f = self.checked_field(inputs, "a", positive=True), self.checked_field(inputs, "f")
        return diffusion_matrix(a, 1.0 / self.resolution), f.ravel().copy()

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The pressure ``u`` on the grid."""
        return {"u": self.check_solution_size(x).reshape(self.grid_shape)}
