"""The Poisson equation -Laplacian u = f with Dirichlet data u = g: one matrix, many right-hand sides.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import Poisson
>>> problem = Poisson(resolution=16)
>>> A0, b0 = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
>>> A1, b1 = problem.assemble(problem.sample_inputs(np.random.default_rng(1)))
>>> (A0 != A1).nnz, bool(np.allclose(b0, b1))
(0, False)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse as sp

from sciml.errors import SciMLError

from .finite_volume import boundary_faces, diffusion_matrix
from .problem import PDEProblem, check_number
from .random_fields import check_grf_parameters, default_sigma, gaussian_random_field

__all__ = ["Poisson", "cosine_series_trace"]


def cosine_series_trace(field: np.ndarray, axis: int, side: int) -> np.ndarray:
    """Value on the face ``x_axis = side`` of the cosine series through the cell values of ``field``.

    A field sampled at the cell centres (i + 1/2) / n of [0, 1] along ``axis`` is the
    cosine series sum_k c_k w_k cos(pi k x) with c = DCT-II(field) (orthonormal) and
    w_0 = 1 / sqrt(n), w_k = sqrt(2 / n); at x = 0 every cosine is 1 and at x = 1 it is
    (-1)^k. For a sample of :func:`~sciml.datasets.gaussian_random_field`, which is such
    a series, this is the exact value of the sampled function on the boundary.

    Parameters
    ----------
    field : numpy.ndarray
        Cell values, any number of axes.
    axis : int
        The axis normal to the face.
    side : {0, 1}
        The face at coordinate 0 or 1.

    Returns
    -------
    numpy.ndarray
        The trace, with ``axis`` kept as a length-1 axis (it broadcasts against the layer of
        cells touching the face).

    Examples
    --------
    >>> import numpy as np
    >>> x = (np.arange(8) + 0.5) / 8
    >>> cosine_series_trace(np.cos(np.pi * 3 * x) + 2, axis=0, side=1)
    array([1.])
    """
    field = np.asarray(field, dtype=np.float64)
    if side not in (0, 1) or not -field.ndim <= axis < field.ndim:
        raise SciMLError(f"face needs an axis of a {field.ndim}-D field and side 0 or 1, got axis={axis}, side={side}")
    n = field.shape[axis]
    weights = np.full(n, math.sqrt(2.0 / n))
    weights[0] = math.sqrt(1.0 / n)
    if side == 1:
        weights[1::2] *= -1.0
    coefficients = scipy.fft.dct(field, type=2, norm="ortho", axis=axis)
    return np.expand_dims(np.tensordot(coefficients, weights, axes=([axis], [0])), axis)


class Poisson(PDEProblem, name="poisson"):
    """-Laplacian u = f on [0, 1]^d, u = g on the boundary, with random f and g.

    Both f and g are Gaussian random fields of covariance
    sigma^2 (-Laplacian + tau^2)^(-alpha) (:func:`~sciml.datasets.gaussian_random_field`),
    drawn independently; f with amplitude ``sigma``, g with ``boundary_sigma``. The
    boundary data is the trace of g on the faces, evaluated exactly from its cosine series
    (:func:`cosine_series_trace`), so the stored grid field g determines it; g's values
    inside the domain carry no further information. The learned map is (f, g) -> u.

    Discretisation: cell-centred finite volumes, the two-point Laplacian with the Dirichlet
    value on each boundary face half a cell away (:func:`~sciml.datasets.diffusion_matrix`
    with a = 1), so a face adds 2 g_F / h^2 to the right-hand side of its cell; second
    order. The matrix is the same for every sample (``fixed_operator``) and symmetric
    positive definite; only b changes, the setting of the SKR Poisson benchmark (Wang et
    al., "Accelerating Data Generation for Neural Operators via Krylov Subspace
    Recycling", ICLR 2024), which uses finite elements on an unstructured mesh instead.

    Parameters
    ----------
    resolution : int
        Cells per axis (>= 3).
    dim : int
        1, 2 or 3.
    alpha, tau : float
        GRF smoothness (> d/2) and inverse length scale (> 0) of f and g.
    sigma : float, optional
        Amplitude of f; defaults to tau^(alpha - d/2).
    boundary_sigma : float, optional
        Amplitude of g; defaults to sigma / (d pi^2), which makes the part of u due to g
        about as large as the part due to f (the lowest Dirichlet eigenvalue is d pi^2).

    Examples
    --------
    >>> from sciml.datasets import Poisson
    >>> from sciml.solvers import LinearSolver
    >>> sample = Poisson(resolution=16).generate_sample(seed=0, solver=LinearSolver("direct"))
    >>> sorted(sample.fields), sample.record.converged
    (['f', 'g', 'u'], True)
    """

    version = "1"
    parameter_names = ('alpha', 'tau', 'sigma', 'boundary_sigma')
    input_names = ("f", "g")
    output_names = ("u",)
    default_solver = {"method": "direct", "preconditioner": "none"}  # 2-D; 3-D: recommended_solver
    symmetric_positive_definite = True
    fixed_operator = True

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        alpha: float = 2.0,
        tau: float = 3.0,
        sigma: float | None = None,
        boundary_sigma: float | None = None,
    ):
        super().__init__(resolution, dim)
        check_grf_parameters(self.dim, alpha, tau, sigma)
        self.alpha, self.tau = float(alpha), float(tau)
        self.sigma = float(sigma) if sigma is not None else default_sigma(alpha, tau, self.dim)
        self.boundary_sigma = (
            check_number("poisson", "boundary_sigma", boundary_sigma, positive=True)
            if boundary_sigma is not None
            else self.sigma / (self.dim * math.pi**2)
        )
        self._operator: sp.csr_matrix | None = None


    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the source ``f`` and the boundary-data field ``g`` (in that order) from GRFs."""
        f = gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng, sigma=self.sigma)
        g = gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng, sigma=self.boundary_sigma)
        return {"f": f, "g": g}

    def operator(self) -> sp.csr_matrix:
        """The matrix A, the same for every sample (a fresh copy, so callers may modify it)."""
        if self._operator is None:
            self._operator = diffusion_matrix(np.ones(self.grid_shape), 1.0 / self.resolution)
        return self._operator.copy()

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """``A`` (:meth:`operator`) and ``b = f + 2 g_F / h^2`` summed over each cell's boundary faces."""
        f = self.checked_field(inputs, "f")
        g = self.checked_field(inputs, "g")
        b = f.copy()
        inv_h2 = float(self.resolution) ** 2
        for axis, side, cells in boundary_faces(self.grid_shape):
            b[cells] += 2.0 * inv_h2 * cosine_series_trace(g, axis, side)
        return self.operator(), b.ravel()

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The solution ``u`` on the grid."""
        return {"u": self.check_solution_size(x).reshape(self.grid_shape)}

    def recommended_solver(self) -> dict[str, Any]:
        """Sparse LU up to 2-D; CG with an AMG V-cycle in 3-D, where LU fill-in grows fast."""
        if self.dim == 3:
            return {"method": "cg", "preconditioner": "amg"}
        return dict(self.default_solver)
