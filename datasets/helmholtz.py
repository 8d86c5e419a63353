"""The Helmholtz equation -Laplacian u - (omega / c(x))^2 u = f with a random wave speed.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import Helmholtz
>>> problem = Helmholtz(resolution=32)
>>> A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
>>> A.shape, A.dtype, round(problem.points_per_wavelength, 2)
((1024, 1024), dtype('complex128'), 8.04)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError, UnknownNameError

from .finite_volume import boundary_face_count, diffusion_matrix, robin_face_coefficient
from .problem import PDEProblem, check_number
from .random_fields import check_grf_parameters, default_sigma, gaussian_random_field

__all__ = ["Helmholtz", "HELMHOLTZ_BOUNDARIES", "MIN_POINTS_PER_WAVELENGTH"]

HELMHOLTZ_BOUNDARIES = ("absorbing", "dirichlet")
MIN_POINTS_PER_WAVELENGTH = 4.0
"""Coarsest accepted grid: below 4 cells per shortest wavelength the discrete waves are
not waves any more (the phase error is O(1)); 8 or more is the usual target."""


class Helmholtz(PDEProblem, name="helmholtz"):
    """-Laplacian u - (omega / c(x))^2 u = f on [0, 1]^d with a random wave speed c(x).

    The wave speed is c = ``speed`` (1 + ``contrast`` tanh(psi)) with psi a Gaussian random
    field of covariance sigma^2 (-Laplacian + tau^2)^(-alpha)
    (:func:`~sciml.datasets.gaussian_random_field`), so c is smooth where psi is and
    bounded in ``speed`` (1 -/+ ``contrast``). The source is fixed: a normalised Gaussian
    f = exp(-|x - x0|^2 / (2 w^2)) / (2 pi w^2)^(d/2) centred at x0 = (1/2, ..., 1/2) with
    width w = ``source_width`` (a resolved point source), so the learned map is c -> u.

    Boundary conditions:

    * ``"absorbing"`` (default): the first-order absorbing (Sommerfeld) condition
      du/dn - i (omega / c) u = 0 for time dependence exp(-i omega t) (Engquist & Majda,
      "Absorbing boundary conditions for the numerical simulation of waves", Math. Comp.
      31, 1977), exact for waves leaving along the normal. The matrix is complex
      symmetric (A = A^T, not Hermitian) and u is complex; it is stored as ``u_real`` and
      ``u_imag`` because the dataset file holds real fields.
    * ``"dirichlet"``: u = 0; the matrix is real symmetric and indefinite, and a sample
      whose (omega / c)^2 falls close to an eigenvalue of the Laplacian is nearly resonant
      (large u, ill-conditioned A); the absorbing condition has no such samples.

    Discretisation: cell-centred finite volumes (:mod:`~sciml.datasets.finite_volume`): the
    two-point Laplacian, the zeroth-order term at the cell centre, the Robin face term
    -(gamma / h) / (1 - gamma h / 2) with gamma = i omega / c_P for the absorbing faces;
    second order for smooth data. With the defaults (omega = 20, c in [0.8, 1.2]) the
    operator is truly indefinite: (omega / c)^2 exceeds dozens of Laplacian eigenvalues
    (28 on a 16^2 grid with c = 1). The SKR data generator (Wang et al., "Accelerating Data
    Generation for Neural Operators via Krylov Subspace Recycling", ICLR 2024) uses so
    small a shift that its "Helmholtz" matrix is positive definite; this is the
    departure that makes the problem the hard, indefinite one.

    Resolution rule: a grid of n cells per axis has
    2 pi c_min n / omega points per shortest wavelength, c_min = ``speed`` (1 - ``contrast``).
    Fewer than 4 is refused; 8 or more is advisable (n >= 32 for the defaults), and the
    pollution error of the phase grows like omega^3 h^2 (Ihlenburg & Babuska, Comput.
    Math. Appl. 30, 1995), so raise n with omega faster than linearly for a fixed accuracy.
    omega does not scale with n, so the same settings at two resolutions describe the
    same PDE.

    Parameters
    ----------
    resolution : int
        Cells per axis; at least 4 points per shortest wavelength (see above).
    dim : int
        1, 2 or 3.
    omega : float
        Angular frequency (> 0); the local wavenumber is omega / c.
    boundary : {"absorbing", "dirichlet"}
    speed : float
        Mean wave speed (> 0).
    contrast : float
        Relative amplitude of the wave-speed variation, 0 <= contrast < 1.
    alpha, tau, sigma : float
        Smoothness (> d/2), inverse length scale and amplitude of the GRF psi; sigma
        defaults to tau^(alpha - d/2).
    source_width : float
        Width w of the Gaussian source (> 0).

    Examples
    --------
    >>> from sciml.datasets import Helmholtz
    >>> from sciml.solvers import LinearSolver
    >>> problem = Helmholtz(resolution=32)
    >>> sample = problem.generate_sample(seed=0, solver=LinearSolver("direct"))
    >>> sorted(sample.fields), sample.record.converged
    (['c', 'f', 'u_imag', 'u_real'], True)
    """

    version = "1"
    parameter_names = ('omega', 'boundary', 'speed', 'contrast', 'alpha', 'tau', 'sigma', 'source_width')
    input_names = ("c", "f")
    output_names = ("u_real", "u_imag")  # ("u",) for boundary="dirichlet"
    ordering_fields = ("c",)  # the source is the same in every sample
    default_solver = {"method": "direct", "preconditioner": "none"}  # indefinite: no CG, no plain AMG

    def __init__(
        self,
        resolution: int,
        dim: int = 2,
        omega: float = 20.0,
        boundary: str = "absorbing",
        speed: float = 1.0,
        contrast: float = 0.2,
        alpha: float = 2.0,
        tau: float = 3.0,
        sigma: float | None = None,
        source_width: float = 0.05,
    ):
        super().__init__(resolution, dim)
        kind = str(boundary).lower()
        if kind not in HELMHOLTZ_BOUNDARIES:
            raise UnknownNameError(
                f"unknown helmholtz boundary {boundary!r}; choose one of: {', '.join(HELMHOLTZ_BOUNDARIES)}"
            )
        check_grf_parameters(self.dim, alpha, tau, sigma)
        self.boundary = kind
        self.omega = check_number("helmholtz", "omega", omega, positive=True)
        self.speed = check_number("helmholtz", "speed", speed, positive=True)
        self.contrast = check_number("helmholtz", "contrast", contrast)
        if not 0.0 <= self.contrast < 1.0:
            raise SciMLError(f"helmholtz setting contrast must be in [0, 1) so that c > 0, got {contrast!r}")
        self.alpha, self.tau = float(alpha), float(tau)
        self.sigma = float(sigma) if sigma is not None else default_sigma(alpha, tau, self.dim)
        self.source_width = check_number("helmholtz", "source_width", source_width, positive=True)
        self.output_names = ("u_real", "u_imag") if kind == "absorbing" else ("u",)
        if self.points_per_wavelength < MIN_POINTS_PER_WAVELENGTH:
            raise SciMLError(
                f"helmholtz resolution {self.resolution} gives {self.points_per_wavelength:.1f} points per "
                f"wavelength at omega={self.omega:g} (slowest wave speed {self.slowest_speed:g}); use resolution "
                f">= {self.resolution_for(MIN_POINTS_PER_WAVELENGTH)} "
                f"({self.resolution_for(8.0)} for 8 points per wavelength)"
            )

    @property
    def slowest_speed(self) -> float:
        """The lower bound ``speed (1 - contrast)`` of the wave speed."""
        return self.speed * (1.0 - self.contrast)

    @property
    def points_per_wavelength(self) -> float:
        """Cells per shortest wavelength 2 pi c_min / omega on this grid."""
        return 2.0 * math.pi * self.slowest_speed * self.resolution / self.omega

    def resolution_for(self, points_per_wavelength: float) -> int:
        """The smallest resolution with at least ``points_per_wavelength`` cells per shortest wavelength.

        Examples
        --------
        >>> Helmholtz(resolution=32).resolution_for(8.0)
        32
        """
        return math.ceil(points_per_wavelength * self.omega / (2.0 * math.pi * self.slowest_speed) - 1e-9)


    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the wave speed ``c`` from a GRF; ``f`` is the fixed Gaussian source."""
        psi = gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng, sigma=self.sigma)
        c = self.speed * (1.0 + self.contrast * np.tanh(psi))
        centres = np.meshgrid(*self.coordinates().values(), indexing="ij", sparse=True)
        squared_distance = sum((x - 0.5) ** 2 for x in centres)
        w2 = self.source_width**2
        f = np.exp(-squared_distance / (2.0 * w2)) / (2.0 * math.pi * w2) ** (self.dim / 2)
        return {"c": c, "f": np.broadcast_to(f, self.grid_shape).copy()}

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The finite-volume system ``A u = f``: complex symmetric (absorbing) or real symmetric (Dirichlet)."""
        c = self.checked_field(inputs, "c", positive=True)
        f = self.checked_field(inputs, "f")
        h = 1.0 / self.resolution
        wavenumber = self.omega / c
        ones = np.ones(self.grid_shape)
        if self.boundary == "dirichlet":
            diagonal = -(wavenumber**2)
            laplacian = diffusion_matrix(ones, h)
        else:
            faces = boundary_face_count(self.grid_shape)
            diagonal = faces * robin_face_coefficient(1j * wavenumber, h) - wavenumber**2
            laplacian = diffusion_matrix(ones, h, boundary="neumann")
        A = sp.csr_matrix(laplacian + sp.diags(diagonal.ravel()))
        return A, f.ravel().astype(A.dtype)

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``u_real`` and ``u_imag`` (absorbing) or the real ``u`` (Dirichlet) on the grid."""
        u = self.check_solution_size(x).reshape(self.grid_shape)
        if self.boundary == "absorbing":
            return {"u_real": u.real.copy(), "u_imag": u.imag.copy()}
        if np.iscomplexobj(u) and np.any(u.imag != 0):
            raise SciMLError("helmholtz (dirichlet) got a complex solution of a real system; check the solver")
        return {"u": u.real.copy()}

    def recommended_solver(self) -> dict[str, Any]:
        """Sparse LU up to 2-D; in 3-D, where LU fill-in grows fast, GMRES with a pivoting ILU.

        The ILU of an indefinite matrix can be poor or unstable; it converged on the
        default settings at 24^3 here, but the choice is provisional (no multigrid for
        indefinite Helmholtz is available in :mod:`sciml.solvers` yet).
        """
        if self.dim == 3:
            return {"method": "gmres", "preconditioner": {"name": "ilu", "symmetric": False}}
        return dict(self.default_solver)
