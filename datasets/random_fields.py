"""Gaussian random fields on the unit cube, sampled by a Karhunen-Loeve expansion.

The field has mean zero and covariance operator

    C = sigma^2 (-Laplacian + tau^2 I)^(-alpha)

with the Laplacian taken with zero Neumann boundary conditions on [0, 1]^d. Its
eigenfunctions are the cosine products phi_k(x) = prod_i c_{k_i} cos(pi k_i x_i) (with
c_0 = 1, c_k = sqrt(2), orthonormal in L2) and its eigenvalues are
sigma^2 (pi^2 |k|^2 + tau^2)^(-alpha), so a sample is

    u(x) = sum_k sigma (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k phi_k(x),   xi_k ~ N(0, 1),

truncated to the modes the grid resolves and evaluated at the cell centres with one
orthonormal inverse DCT-II (:func:`scipy.fft.idctn`).

Reference: ``GRF.m`` of the Fourier Neural Operator Darcy benchmark (Li et al., "Fourier
Neural Operator for Parametric Partial Differential Equations", ICLR 2021), which uses
alpha = 2, tau = 3, amplitude ``tau^(alpha-1)`` and drops the constant mode. Departures:
the code is dimension-generic (the reference is 2-D only) and the default amplitude is
sigma = tau^(alpha - d/2), which equals the reference's tau^(alpha-1) for d = 2 and makes
the pointwise variance independent of tau as tau grows in any dimension (the convention
of the neuraloperator Python ``GaussianRF``). The reference's coefficient scale ``s`` is
written here as sqrt(number of cells), which is the same in 2-D and keeps the expansion
an exact KL sum in 1-D, 3-D and on non-square boxes.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import gaussian_random_field
>>> field = gaussian_random_field((64, 64), alpha=2.0, tau=3.0, rng=np.random.default_rng(0))
>>> field.shape, bool(abs(field.mean()) < 1e-12)
((64, 64), True)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.fft

from sciml.errors import SciMLError

__all__ = ["gaussian_random_field", "check_grf_parameters", "default_sigma"]


def default_sigma(alpha: float, tau: float, dim: int) -> float:
    """The default amplitude sigma = tau^(alpha - d/2) (tau^(alpha-1) in 2-D, as in FNO)."""
    return float(tau) ** (float(alpha) - dim / 2)


def check_grf_parameters(dim: int, alpha, tau, sigma=None) -> None:
    """Raise :class:`SciMLError` unless (alpha, tau, sigma) define a field in ``dim`` dimensions.

    The covariance sigma^2 (-Laplacian + tau^2)^(-alpha) is trace class on [0, 1]^d only
    for alpha > d/2; for smaller alpha the pointwise variance of the truncated expansion
    grows without bound as the grid is refined, so the data would depend on the resolution.

    Examples
    --------
    >>> from sciml.datasets.random_fields import check_grf_parameters
    >>> check_grf_parameters(2, alpha=2.0, tau=3.0)
    """
    for name, value in (("alpha", alpha), ("tau", tau)) + ((("sigma", sigma),) if sigma is not None else ()):
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise SciMLError(f"GRF parameter {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value <= 0:
            raise SciMLError(f"GRF parameter {name} must be finite and > 0, got {value!r}")
    if alpha <= dim / 2:
        raise SciMLError(
            f"GRF smoothness alpha={alpha!r} must exceed d/2 = {dim / 2:g} in {dim}-D, otherwise the "
            f"field is not square-integrable and its variance grows with resolution; use alpha > {dim / 2:g}"
        )


def gaussian_random_field(
    shape: int | Sequence[int],
    alpha: float,
    tau: float,
    rng: np.random.Generator | int,
    sigma: float | None = None,
) -> np.ndarray:
    """One sample of a zero-mean GRF with covariance sigma^2 (-Laplacian + tau^2 I)^(-alpha).

    Follows the KL sampler of the FNO Darcy benchmark (``GRF.m``, Li et al. 2021) in any
    dimension; see the module docstring for the normalisation and where it departs.

    Parameters
    ----------
    shape : int or sequence of int
        Cells per axis; the field is sampled at the cell centres ``(i + 1/2) / n`` of the
        unit cube (a box shape gives anisotropic cells on the same cube).
    alpha : float
        Smoothness exponent, > d/2. Larger is smoother.
    tau : float
        Inverse length scale, > 0. Larger gives shorter correlation length.
    rng : numpy.random.Generator or int
        Source of the normal KL coefficients, or a seed for one.
    sigma : float, optional
        Amplitude; defaults to tau^(alpha - d/2), which is the FNO reference's tau^(alpha-1) in 2-D.

    Returns
    -------
    numpy.ndarray
        float64 array of ``shape``. The constant mode is zero, so the grid mean is zero to
        rounding.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import gaussian_random_field
    >>> u = gaussian_random_field(128, alpha=1.5, tau=5.0, rng=0)   # 1-D
    >>> u.shape
    (128,)
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape or any(not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise SciMLError(f"GRF shape must be a positive int or a tuple of positive ints, got {shape!r}")
    dim = len(shape)
    check_grf_parameters(dim, alpha, tau, sigma)
    if sigma is None:
        sigma = default_sigma(alpha, tau, dim)
    rng = np.random.default_rng(rng)

    wavenumbers = np.meshgrid(*(np.arange(n, dtype=float) for n in shape), indexing="ij", sparse=True)
    laplacian_eigenvalues = sum(np.pi**2 * k**2 for k in wavenumbers)
    sqrt_covariance_eigenvalues = sigma * (laplacian_eigenvalues + tau**2) ** (-alpha / 2)

    xi = rng.standard_normal(shape)
    # sqrt(N) turns the orthonormal DCT basis into the L2-orthonormal eigenfunctions phi_k.
    coefficients = math.sqrt(math.prod(shape)) * sqrt_covariance_eigenvalues * xi
    coefficients[(0,) * dim] = 0.0
    return scipy.fft.idctn(coefficients, type=2, norm="ortho")
