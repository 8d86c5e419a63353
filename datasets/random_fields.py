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

:func:`rbf_random_field` samples the other family used here, the squared-exponential
(RBF) Gaussian process of DeepONet's ODE benchmarks, by a Cholesky factor of its kernel
matrix on the given points.

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

__all__ = ["gaussian_random_field", "check_grf_parameters", "default_sigma", "rbf_random_field"]


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


def rbf_random_field(
    points,
    length_scale: float,
    rng: np.random.Generator | int,
    sigma: float = 1.0,
    jitter: float = 1e-10,
) -> np.ndarray:
    """One sample of a zero-mean Gaussian process with the RBF (squared-exponential) kernel.

    The kernel is k(x, x') = sigma^2 exp(-|x - x'|^2 / (2 l^2)), the input family of the
    DeepONet ODE benchmarks (Lu et al., "Learning nonlinear operators via DeepONet based on
    the universal approximation theorem of operators", Nature Machine Intelligence 3, 2021,
    section "Data generation": l = 0.2 on [0, 1], sigma = 1). The sample is
    ``sigma * L @ xi`` with ``L`` the lower Cholesky factor of R + jitter I, R the kernel's
    correlation matrix on ``points`` and xi ~ N(0, I), so its law at the points is exact up
    to the added white noise of variance jitter sigma^2. Departure from the reference: its
    code factorises the kernel on 1000 equispaced points and interpolates the sample to the
    sensors; here the process is sampled on the requested points themselves, without
    interpolation.

    Parameters
    ----------
    points : int or array_like
        ``n`` for ``n`` equispaced points on [0, 1] including both ends; an array of shape
        ``(n,)`` of 1-D coordinates; or ``(n, d)`` of points in ``d`` dimensions.
    length_scale : float
        Correlation length l > 0; larger is smoother.
    rng : numpy.random.Generator or int
        Source of the normal draws, or a seed for one.
    sigma : float
        Pointwise standard deviation, > 0.
    jitter : float
        Diagonal shift (relative to sigma^2) that keeps the numerically rank-deficient
        kernel matrix positive definite, >= 0.

    Returns
    -------
    numpy.ndarray
        float64 array of shape ``(n,)``.

    Raises
    ------
    SciMLError
        For bad points or parameters, or a kernel matrix Cholesky cannot factorise (raise
        ``jitter``).

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import rbf_random_field
    >>> u = rbf_random_field(100, length_scale=0.2, rng=np.random.default_rng(0))
    >>> u.shape, bool(np.all(u == rbf_random_field(100, 0.2, np.random.default_rng(0))))
    ((100,), True)
    """
    for name, value, zero_allowed in (("length_scale", length_scale, False), ("sigma", sigma, False),
                                      ("jitter", jitter, True)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise SciMLError(f"RBF field parameter {name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
            raise SciMLError(
                f"RBF field parameter {name} must be finite and {'>=' if zero_allowed else '>'} 0, got {value!r}"
            )
    if isinstance(points, (int, np.integer)) and not isinstance(points, bool):
        if points < 1:
            raise SciMLError(f"RBF field needs at least one point, got points={points!r}")
        points = np.linspace(0.0, 1.0, int(points))
    coordinates = np.asarray(points, dtype=np.float64)
    if coordinates.ndim == 1:
        coordinates = coordinates[:, None]
    if coordinates.ndim != 2 or coordinates.shape[0] < 1 or not np.all(np.isfinite(coordinates)):
        raise SciMLError(
            f"RBF field points must be a count or a finite array of shape (n,) or (n, d), got shape "
            f"{np.shape(points)}"
        )
    squared_distances = ((coordinates[:, None, :] - coordinates[None, :, :]) ** 2).sum(axis=-1)
    correlation = np.exp(-squared_distances / (2.0 * float(length_scale) ** 2))
    correlation[np.diag_indices_from(correlation)] += float(jitter)
    try:
        factor = np.linalg.cholesky(correlation)
    except np.linalg.LinAlgError:
        raise SciMLError(
            f"RBF kernel matrix on {len(coordinates)} points with length_scale={length_scale!r} is not "
            f"numerically positive definite with jitter={jitter!r}; raise jitter "
            f"(e.g. to {max(10 * jitter, 1e-10):g})"
        ) from None
    rng = np.random.default_rng(rng)
    return float(sigma) * (factor @ rng.standard_normal(len(coordinates)))
