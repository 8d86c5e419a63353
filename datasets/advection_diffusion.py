"""Steady convection-dominated advection-diffusion -eps Laplacian u + v . grad u = f with random v.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import AdvectionDiffusion
>>> problem = AdvectionDiffusion(resolution=32)
>>> A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
>>> A.shape, bool(abs(A - A.T).max() > 0), round(problem.cell_peclet, 2)
((1024, 1024), True, 15.62)
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse as sp

from sciml.errors import SciMLError, UnknownNameError

from .finite_volume import CONVECTION_SCHEMES, convection_matrix, diffusion_matrix
from .problem import SPATIAL_DIMS, PDEProblem, check_number
from .random_fields import check_grf_parameters, default_sigma, gaussian_random_field

__all__ = ["AdvectionDiffusion", "cosine_series_derivative", "curl_of_potential"]


def cosine_series_derivative(field: np.ndarray, axis: int) -> np.ndarray:
    """d/dx_axis of the cosine series through the cell values of ``field``, at the cell centres.

    Along ``axis`` the field is sum_k c_k w_k cos(pi k x) with c = DCT-II(field)
    (orthonormal, w_0 = 1/sqrt(n), w_k = sqrt(2/n)); its derivative
    -sum_k pi k c_k w_k sin(pi k x) is a sine series, evaluated by an orthonormal DST-III
    (the inverse DST-II, whose basis sin(pi (m + 1)(i + 1/2) / n) has the same weights for
    m + 1 < n). Exact for the samples of :func:`~sciml.datasets.gaussian_random_field`.

    Examples
    --------
    >>> import numpy as np
    >>> x = (np.arange(16) + 0.5) / 16
    >>> bool(np.allclose(cosine_series_derivative(np.cos(2 * np.pi * x), 0), -2 * np.pi * np.sin(2 * np.pi * x)))
    True
    """
    field = np.asarray(field, dtype=np.float64)
    n = field.shape[axis]
    coefficients = scipy.fft.dct(field, type=2, norm="ortho", axis=axis)
    frequencies = np.pi * np.arange(n, dtype=np.float64)
    derivative = np.zeros_like(coefficients)
    shifted = [slice(None)] * field.ndim
    source = [slice(None)] * field.ndim
    shifted[axis], source[axis] = slice(0, n - 1), slice(1, n)
    scale = np.expand_dims(-frequencies[1:], tuple(i for i in range(field.ndim) if i != axis % field.ndim))
    derivative[tuple(shifted)] = scale * coefficients[tuple(source)]
    return scipy.fft.idst(derivative, type=2, norm="ortho", axis=axis)


def _levi_civita(permutation: tuple[int, ...]) -> int:
    """Sign of a permutation of 0..d-1 (+1 even, -1 odd)."""
    sign, seen = 1, list(permutation)
    for i in range(len(seen)):
        while seen[i] != i:
            j = seen[i]
            seen[i], seen[j] = seen[j], seen[i]
            sign = -sign
    return sign


def curl_of_potential(potential: dict[tuple[int, ...], np.ndarray]) -> list[np.ndarray]:
    """The divergence-free field v_i = sum_{j, K} eps_{i j K} d_j A_K of a (d-2)-form potential.

    ``potential`` maps each increasing (d-2)-tuple K of axes to a cell field A_K: one
    stream function under the key () in 2-D (v = (d_y psi, -d_x psi)), the three
    components of a vector potential under (0,), (1,), (2,) in 3-D (v = curl A). The
    derivatives are those of the fields' cosine series (:func:`cosine_series_derivative`),
    so div v = sum_{i, j} eps_{i j K} d_i d_j A_K = 0 holds exactly for the series and to
    rounding at the cell centres.

    Examples
    --------
    >>> import numpy as np
    >>> x = (np.arange(8) + 0.5) / 8
    >>> vx, vy = curl_of_potential({(): np.cos(np.pi * x)[:, None] * np.ones(8)})
    >>> bool(np.allclose(vx, 0)), bool(np.allclose(vy, np.pi * np.sin(np.pi * x)[:, None]))
    (True, True)
    """
    fields = {tuple(key): np.asarray(value, dtype=np.float64) for key, value in potential.items()}
    shape = next(iter(fields.values())).shape if fields else ()
    dim = len(shape)
    expected = set(itertools.combinations(range(dim), dim - 2)) if dim >= 2 else None
    if not expected or set(fields) != expected or any(f.shape != shape for f in fields.values()):
        raise SciMLError(
            f"a {dim}-D potential needs one grid field per increasing {max(dim - 2, 0)}-tuple of axes "
            f"(keys {sorted(expected) if expected else 'none: dim must be >= 2'}), got keys {sorted(fields)}"
        )
    velocity = [np.zeros(shape) for _ in range(dim)]
    for permutation in itertools.permutations(range(dim)):
        i, j, key = permutation[0], permutation[1], permutation[2:]
        if key in fields:  # each K once, in increasing order
            velocity[i] += _levi_civita(permutation) * cosine_series_derivative(fields[key], j)
    return velocity


class AdvectionDiffusion(PDEProblem, name="advection-diffusion"):
    """-eps Laplacian u + v . grad u = f on [0, 1]^d, u = 0 on the boundary, random v.

    The velocity is divergence-free: the curl of a random potential
    (:func:`curl_of_potential`), a stream function psi in 2-D (v = (d_y psi, -d_x psi)) and
    a vector potential with three independent components in 3-D (v = curl A), each a
    Gaussian random field of covariance sigma^2 (-Laplacian + tau^2)^(-alpha)
    (:func:`~sciml.datasets.gaussian_random_field`), rescaled so that max |v| over the
    cells equals ``speed``. The flow enters and leaves through the boundary (in 2-D the
    stream function's zero normal derivative makes v normal to it), and u forms boundary
    layers of width ~eps / |v| at the outflow. The source is the constant
    ``source``, so the learned map is v -> u.

    Discretisation: cell-centred, the two-point Laplacian
    (:func:`~sciml.datasets.diffusion_matrix`) plus the convection matrix
    (:func:`~sciml.datasets.convection_matrix`) of the non-conservative v . grad u, which
    equals div(v u) for the divergence-free v. With ``scheme="upwind"`` (default) the
    matrix is an M-matrix at every cell Peclet number speed h / (2 eps), so the discrete
    maximum principle holds and u >= 0 for f >= 0, but the scheme is first order and adds
    the numerical diffusion |v| h / 2 (Roos, Stynes & Tobiska, *Robust Numerical Methods
    for Singularly Perturbed Differential Equations*, 2008, sec. III.2).
    ``scheme="central"`` is second order but oscillates when the cell Peclet number
    exceeds 1. With the defaults (eps = 1e-3, speed = 1) the cell Peclet number is
    500 / resolution: convection-dominated below 500 cells per axis.

    Velocity components are stored as separate fields ``vx``, ``vy`` (and ``vz`` in 3-D),
    so ``input_names`` and ``ordering_fields`` of an instance depend on ``dim``.

    Parameters
    ----------
    resolution : int
        Cells per axis (>= 3).
    dim : int
        2 or 3 (a divergence-free velocity in 1-D is constant).
    eps : float
        Diffusivity (> 0).
    speed : float
        Maximum speed |v| over the cells (> 0).
    alpha, tau, sigma : float
        Smoothness (> d/2), inverse length scale and amplitude of the potential's GRF
        (only its shape matters, since v is rescaled to ``speed``).
    source : float
        The constant source f.
    scheme : {"upwind", "central"}
        Convection differences.

    Examples
    --------
    >>> from sciml.datasets import AdvectionDiffusion
    >>> from sciml.solvers import LinearSolver
    >>> sample = AdvectionDiffusion(resolution=16).generate_sample(seed=0, solver=LinearSolver("direct"))
    >>> sorted(sample.fields), bool(sample.fields["u"].min() > 0)
    (['f', 'u', 'vx', 'vy'], True)
    """

    version = "1"
    parameter_names = ('eps', 'speed', 'alpha', 'tau', 'sigma', 'source', 'scheme')
    input_names = ("vx", "vy", "f")  # 2-D; an instance holds those of its dim
    output_names = ("u",)
    ordering_fields = ("vx", "vy")
    default_solver = {"method": "direct", "preconditioner": "none"}  # 2-D; 3-D: recommended_solver

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        eps: float = 1e-3,
        speed: float = 1.0,
        alpha: float = 3.0,
        tau: float = 3.0,
        sigma: float | None = None,
        source: float = 1.0,
        scheme: str = "upwind",
    ):
        super().__init__(resolution, dim)
        if self.dim < 2:
            raise SciMLError("advection-diffusion needs dim 2 or 3 (a divergence-free velocity in 1-D is constant)")
        scheme = str(scheme).lower()
        if scheme not in CONVECTION_SCHEMES:
            raise UnknownNameError(
                f"unknown convection scheme {scheme!r}; choose one of: {', '.join(CONVECTION_SCHEMES)}"
            )
        check_grf_parameters(self.dim, alpha, tau, sigma)
        self.eps = check_number("advection-diffusion", "eps", eps, positive=True)
        self.speed = check_number("advection-diffusion", "speed", speed, positive=True)
        self.alpha, self.tau = float(alpha), float(tau)
        self.sigma = float(sigma) if sigma is not None else default_sigma(alpha, tau, self.dim)
        self.source = check_number("advection-diffusion", "source", source)
        self.scheme = scheme
        self.velocity_names = tuple(f"v{axis}" for axis in SPATIAL_DIMS[: self.dim])
        self.input_names = (*self.velocity_names, "f")
        self.ordering_fields = self.velocity_names

    @property
    def cell_peclet(self) -> float:
        """The largest cell Peclet number speed h / (2 eps)."""
        return self.speed / (2.0 * self.eps * self.resolution)


    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the potential's components (in increasing key order), take the curl, rescale."""
        keys = itertools.combinations(range(self.dim), self.dim - 2)
        potential = {
            key: gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng, sigma=self.sigma) for key in keys
        }
        velocity = curl_of_potential(potential)
        largest = float(np.sqrt(sum(v**2 for v in velocity)).max())
        if largest == 0.0:
            raise SciMLError("advection-diffusion drew a zero velocity field; use another seed")
        fields = {name: v * (self.speed / largest) for name, v in zip(self.velocity_names, velocity)}
        fields["f"] = np.full(self.grid_shape, self.source)
        return fields

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The system ``(eps D + C) u = f``: diffusion ``D`` and convection ``C`` matrices."""
        velocity = [self.checked_field(inputs, name) for name in self.velocity_names]
        f = self.checked_field(inputs, "f")
        h = 1.0 / self.resolution
        A = self.eps * diffusion_matrix(np.ones(self.grid_shape), h) + convection_matrix(velocity, h, self.scheme)
        return sp.csr_matrix(A), f.ravel().copy()

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The solution ``u`` on the grid."""
        return {"u": self.check_solution_size(x).reshape(self.grid_shape)}

    def recommended_solver(self) -> dict[str, Any]:
        """Sparse LU in 2-D; GMRES with ILU in 3-D, where LU fill-in grows fast."""
        if self.dim == 3:
            return {"method": "gmres", "preconditioner": {"name": "ilu", "symmetric": False}}
        return dict(self.default_solver)
