"""Fourier calculus for periodic fields on the unit box [0, 1)^d, in torch.

A field sampled at the nodes ``x_j = j / n`` of a periodic grid is the trigonometric
polynomial ``u(x) = sum_k c_k exp(2 pi i k.x)`` through its samples (``c`` is the FFT with
``norm="forward"``). Every function here acts on that polynomial exactly, over the last
``dim`` axes of a tensor (any leading batch axes), with :func:`torch.fft.rfftn`:

* :func:`derivative_symbols`, :func:`laplacian_symbol`: the Fourier multipliers
  ``2 pi i k_j`` and ``-|2 pi k|^2``; :func:`dealias_mask`: Orszag's 2/3 rule;
* :func:`gradient`, :func:`laplacian`, :func:`inverse_laplacian`, and in 2-D
  :func:`stream_function` and :func:`velocity` (``u = (psi_y, -psi_x)``, ``-Lap psi = w``);
* :func:`resample`: exact Fourier restriction (the L2-orthogonal projection onto the
  coarser grid's trigonometric polynomials) or zero-padding interpolation;
* :func:`negative_sobolev_norm`: ``||(alpha - Lap)^(-s/2) r||_{L2}`` by Parseval;
* :func:`periodic_gaussian_random_field`: FNO's periodic Gaussian random field (numpy, with
  :func:`fft_wavenumbers`, the integer wavenumbers of the full numpy FFT layout), the initial
  data of the Navier-Stokes and shallow-water generators.

The multipliers follow the pseudo-spectral Navier-Stokes code of the FNO benchmark (Li et
al., "Fourier Neural Operator for Parametric Partial Differential Equations", ICLR 2021)
and of Spectral-Refiner (Cao et al., ICLR 2025); departures: any dimension, the Nyquist
mode of a first derivative is set to zero (so the derivative of a real field is real),
and the 2/3 mask is the strict ``|k_j| < n_j / 3`` that is alias-free for every ``n``.
Everything is autograd-differentiable and follows the input's device and dtype.

Examples
--------
>>> import math, torch
>>> from sciml.datasets.periodic_spectral import gradient, laplacian
>>> x = torch.arange(16, dtype=torch.float64) / 16
>>> u = torch.sin(2 * math.pi * x)[:, None] * torch.ones(16, dtype=torch.float64)
>>> bool(torch.allclose(gradient(u)[0], 2 * math.pi * torch.cos(2 * math.pi * x)[:, None].expand(16, 16)))
True
>>> bool(torch.allclose(laplacian(u), -4 * math.pi**2 * u))
True
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from sciml.errors import SciMLError

from .random_fields import check_grf_parameters, default_sigma

__all__ = [
    "integer_wavenumbers",
    "derivative_symbols",
    "laplacian_symbol",
    "inverse_laplacian_symbol",
    "dealias_mask",
    "rfft",
    "irfft",
    "gradient",
    "laplacian",
    "inverse_laplacian",
    "stream_function",
    "velocity",
    "resample",
    "negative_sobolev_norm",
    "fft_wavenumbers",
    "periodic_gaussian_random_field",
]


def _spatial_shape(u: torch.Tensor, dim: int) -> tuple[int, ...]:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise SciMLError(f"dim must be a positive number of spatial axes, got {dim!r}")
    if not isinstance(u, torch.Tensor) or not u.is_floating_point():
        raise SciMLError(f"expected a real floating-point torch tensor, got {type(u).__name__}"
                         + (f" of dtype {u.dtype}" if isinstance(u, torch.Tensor) else ""))
    if u.ndim < dim:
        raise SciMLError(f"a field with {dim} spatial axes needs at least {dim} dimensions, got shape {tuple(u.shape)}")
    return tuple(u.shape[-dim:])


def integer_wavenumbers(shape: Sequence[int], *, device=None, dtype=torch.float64) -> list[torch.Tensor]:
    """The integer wavenumbers ``k_j`` of the :func:`rfft` coefficients of a ``shape`` grid.

    One tensor per axis, shaped to broadcast against the ``rfftn`` layout (the last axis
    holds ``0 .. n // 2``; the others the FFT order ``0, 1, .., -1``).

    Examples
    --------
    >>> from sciml.datasets.periodic_spectral import integer_wavenumbers
    >>> kx, ky = integer_wavenumbers((4, 4))
    >>> kx.flatten().tolist(), ky.flatten().tolist()
    ([0.0, 1.0, -2.0, -1.0], [0.0, 1.0, 2.0])
    """
    shape = tuple(int(n) for n in shape)
    d = len(shape)
    out = []
    for axis, n in enumerate(shape):
        if axis == d - 1:
            k = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        else:
            k = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype)
        out.append(k.reshape([k.numel() if a == axis else 1 for a in range(d)]).round())
    return out


def derivative_symbols(shape: Sequence[int], *, device=None, dtype=torch.float64) -> list[torch.Tensor]:
    """The multipliers ``2 pi i k_j`` of d/dx_j on the :func:`rfft` layout, Nyquist modes zero.

    The Nyquist mode ``k_j = -n_j / 2`` of an even axis has no odd real counterpart, so its
    first derivative is set to zero; that keeps the derivative of a real field real.
    """
    shape = tuple(int(n) for n in shape)
    symbols = []
    for n, k in zip(shape, integer_wavenumbers(shape, device=device, dtype=dtype)):
        if n % 2 == 0:
            k = torch.where(k.abs() == n // 2, torch.zeros_like(k), k)
        symbols.append(1j * (2 * math.pi) * k)
    return symbols


def laplacian_symbol(shape: Sequence[int], *, device=None, dtype=torch.float64) -> torch.Tensor:
    """The multiplier ``-|2 pi k|^2`` of the Laplacian on the :func:`rfft` layout (Nyquist kept)."""
    return -sum((2 * math.pi * k) ** 2 for k in integer_wavenumbers(shape, device=device, dtype=dtype))


def dealias_mask(shape: Sequence[int], *, device=None) -> torch.Tensor:
    """Orszag's 2/3 rule: True on the :func:`rfft` modes with ``|k_j| < n_j / 3`` on every axis.

    A product of two fields with only these modes, formed pointwise on the grid, has exact
    coefficients on these modes (the aliases of its modes ``|k_j| < 2 n_j / 3`` fall outside
    them), so truncating a pseudo-spectral product to the mask is a Galerkin truncation.
    FNO's mask ``|k_j| <= n_j / 3`` is the same unless 3 divides ``n_j``.

    Examples
    --------
    >>> from sciml.datasets.periodic_spectral import dealias_mask
    >>> dealias_mask((6, 6)).int().tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 0, 0]]
    """
    shape = tuple(int(n) for n in shape)
    mask = torch.ones((), dtype=torch.bool, device=device)
    for n, k in zip(shape, integer_wavenumbers(shape, device=device)):
        mask = mask & (3 * k.abs() < n)
    return mask


def rfft(u: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """``rfftn`` over the last ``dim`` axes with ``norm="forward"`` (coefficients ``c_k`` of u)."""
    _spatial_shape(u, dim)
    return torch.fft.rfftn(u, dim=tuple(range(-dim, 0)), norm="forward")


def irfft(coefficients: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`rfft`: the real field of grid ``shape`` with these coefficients."""
    shape = tuple(int(n) for n in shape)
    return torch.fft.irfftn(coefficients, s=shape, dim=tuple(range(-len(shape), 0)), norm="forward")


def _symbols_for(u: torch.Tensor, dim: int):
    shape = _spatial_shape(u, dim)
    return shape, dict(device=u.device, dtype=u.dtype)


def gradient(u: torch.Tensor, dim: int = 2) -> tuple[torch.Tensor, ...]:
    """The spectral partial derivatives ``(d u/dx_1, .., d u/dx_dim)`` over the last ``dim`` axes.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.periodic_spectral import gradient
    >>> x = torch.arange(8, dtype=torch.float64) / 8
    >>> (du,) = gradient(torch.cos(2 * math.pi * x), dim=1)
    >>> bool(torch.allclose(du, -2 * math.pi * torch.sin(2 * math.pi * x)))
    True
    """
    shape, kw = _symbols_for(u, dim)
    c = rfft(u, dim)
    return tuple(irfft(s * c, shape) for s in derivative_symbols(shape, **kw))


def laplacian(u: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """The spectral Laplacian over the last ``dim`` axes."""
    shape, kw = _symbols_for(u, dim)
    return irfft(laplacian_symbol(shape, **kw) * rfft(u, dim), shape)


def inverse_laplacian_symbol(shape: Sequence[int], *, device=None, dtype=torch.float64) -> torch.Tensor:
    """``1 / (-|2 pi k|^2)`` on the :func:`rfft` layout, 0 on the mean mode (zero-mean inverse)."""
    symbol = laplacian_symbol(shape, device=device, dtype=dtype)
    inverse = torch.zeros_like(symbol)
    nonzero = symbol != 0
    inverse[nonzero] = 1.0 / symbol[nonzero]
    return inverse


def inverse_laplacian(u: torch.Tensor, dim: int = 2) -> torch.Tensor:
    """The zero-mean periodic ``p`` with ``Lap p = u - mean(u)`` over the last ``dim`` axes.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.periodic_spectral import inverse_laplacian, laplacian
    >>> u = torch.randn(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(laplacian(inverse_laplacian(u)), u - u.mean(dim=(-2, -1), keepdim=True)))
    True
    """
    shape, kw = _symbols_for(u, dim)
    return irfft(inverse_laplacian_symbol(shape, **kw) * rfft(u, dim), shape)


def stream_function(w: torch.Tensor) -> torch.Tensor:
    """The zero-mean stream function ``psi`` of a 2-D vorticity ``w (..., n, n)``: ``-Lap psi = w - mean(w)``."""
    return -inverse_laplacian(w, dim=2)


def velocity(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The velocity ``(u, v) = (psi_y, -psi_x)`` of a 2-D vorticity ``w = v_x - u_y`` (axes ``x, y`` last).

    The velocity is divergence-free with zero mean (the FNO / Spectral-Refiner convention).

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.periodic_spectral import gradient, velocity
    >>> from sciml.datasets.periodic_spectral import resample
    >>> coarse = torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> w = resample(coarse, (8, 8))  # no Nyquist content, which first derivatives drop
    >>> u, v = velocity(w)
    >>> bool(torch.allclose(gradient(v)[0] - gradient(u)[1], w - w.mean()))
    True
    """
    shape, kw = _symbols_for(w, 2)
    psi_hat = -inverse_laplacian_symbol(shape, **kw) * rfft(w, 2)
    ikx, iky = derivative_symbols(shape, **kw)
    return irfft(iky * psi_hat, shape), irfft(-ikx * psi_hat, shape)


def _resize_axis(c: torch.Tensor, axis: int, m: int) -> torch.Tensor:
    """Fourier coefficients (FFT order along ``axis``, length n) of a real signal, resized to m."""
    n = c.shape[axis]
    h = (min(n, m) - 1) // 2  # modes -h..h exist on both grids
    low, high = c.narrow(axis, 0, h + 1), c.narrow(axis, n - h, h)
    mid_shape = list(c.shape)
    if m < n and m % 2 == 0:  # fold the two aliases +-m/2 onto the coarse Nyquist mode
        mid = c.narrow(axis, m // 2, 1) + c.narrow(axis, n - m // 2, 1)
    elif m > n and n % 2 == 0:  # split the coarse Nyquist mode evenly onto +-n/2
        half = c.narrow(axis, n // 2, 1) / 2
        mid_shape[axis] = m - 2 * h - 3
        mid = torch.cat([half, c.new_zeros(mid_shape), half], dim=axis)
    else:
        mid_shape[axis] = m - 2 * h - 1
        mid = c.new_zeros(mid_shape)
    return torch.cat([low, mid, high], dim=axis)


def resample(u: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The periodic field ``u`` on a grid of ``shape`` (last ``len(shape)`` axes), in Fourier space.

    To a coarser grid this is the L2-orthogonal projection onto the coarse grid's real
    trigonometric polynomials (modes ``|k| < m/2``, plus ``cos(pi m x)`` on an even axis,
    whose coefficient collects both aliases ``+-m/2``): the spectral restriction, not point
    subsampling. To a finer grid it is trigonometric interpolation (zero padding, the coarse
    Nyquist mode split evenly between ``+-n/2``). Restricting an interpolant gives the field
    back exactly; interpolating a restriction is exact for fields without modes ``|k| >= m/2``.

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.periodic_spectral import resample
    >>> u = torch.randn(2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> fine = resample(u, (12, 16))
    >>> fine.shape, bool(torch.allclose(resample(fine, (8, 8)), u))
    (torch.Size([2, 12, 16]), True)
    """
    shape = tuple(int(m) for m in shape)
    if not shape or any(m < 1 for m in shape):
        raise SciMLError(f"resample needs a target grid of positive sizes, got {shape!r}")
    _spatial_shape(u, len(shape))
    for axis, m in zip(range(u.ndim - len(shape), u.ndim), shape):
        if u.shape[axis] == m:
            continue
        c = torch.fft.fft(u, dim=axis, norm="forward")
        u = torch.fft.ifft(_resize_axis(c, axis, m), dim=axis, norm="forward").real
    return u


def negative_sobolev_norm(r, alpha: float = 1.0, s: float = 1.0, dim: int = 2) -> torch.Tensor:
    """``||(alpha - Lap)^(-s/2) r||_{L2([0,1)^dim)}`` of each field ``r (..., *grid)``, exactly, in float64.

    By Parseval the squared norm is ``sum_k (alpha + |2 pi k|^2)^(-s) |c_k|^2`` over the
    Fourier coefficients ``c_k`` of the grid's trigonometric polynomial. With ``s = 1`` this
    is the (shifted) H^-1 norm in which Spectral-Refiner (Cao et al., ICLR 2025) measures the
    Navier-Stokes residual (their ``SobolevLoss`` with ``norm_order=-1`` and weight
    ``alpha + 4 pi^2 |k|^2``); ``s = 0`` is the L2 norm and ``s < 0`` a positive Sobolev norm.
    Differentiable: gradients flow back to ``r`` through the cast to float64.

    Parameters
    ----------
    r : torch.Tensor or array_like
        Real fields on periodic grids over the last ``dim`` axes.
    alpha : float
        Shift, > 0 (keeps the mean mode, where ``-Lap`` vanishes, in the norm).
    s : float
        Order: the norm is that of H^-s.
    dim : int
        Number of trailing spatial axes.

    Returns
    -------
    torch.Tensor
        float64, shape ``r.shape[:-dim]``.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.periodic_spectral import negative_sobolev_norm
    >>> x = torch.arange(16, dtype=torch.float64) / 16
    >>> r = torch.cos(2 * math.pi * 3 * x)[:, None].expand(16, 16)  # ||r||_L2 = 1/sqrt(2)
    >>> value = negative_sobolev_norm(r, alpha=1.0, s=1.0)
    >>> math.isclose(value.item(), (1 + (6 * math.pi) ** 2) ** -0.5 / math.sqrt(2), rel_tol=1e-12)
    True
    """
    r = torch.as_tensor(r)
    for name, value in (("alpha", alpha), ("s", s)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SciMLError(f"negative_sobolev_norm: {name} must be a finite number, got {value!r}")
    if alpha <= 0:
        raise SciMLError(f"negative_sobolev_norm: alpha must be > 0 (the mean mode has weight alpha^-s), got {alpha!r}")
    shape = _spatial_shape(r, dim)
    r = r.to(torch.float64)
    c = rfft(r, dim)
    weight = (alpha - laplacian_symbol(shape, device=r.device)) ** (-s)
    n_last = shape[-1]
    k_last = torch.arange(c.shape[-1], device=r.device)
    # Each interior rfft column stands for the modes k and -k.
    multiplicity = torch.where((k_last == 0) | (2 * k_last == n_last), 1.0, 2.0).to(torch.float64)
    squared = (multiplicity * weight * (c.real**2 + c.imag**2)).sum(dim=tuple(range(-dim, 0)))
    return squared.sqrt()


def fft_wavenumbers(shape: Sequence[int]) -> list[np.ndarray]:
    """The integer wavenumbers of the full numpy ``fftn`` layout of a ``shape`` grid, as a sparse meshgrid.

    Examples
    --------
    >>> from sciml.datasets.periodic_spectral import fft_wavenumbers
    >>> kx, ky = fft_wavenumbers((4, 2))
    >>> kx.ravel().tolist(), ky.ravel().tolist(), kx.shape, ky.shape
    ([0.0, 1.0, -2.0, -1.0], [0.0, -1.0], (4, 1), (1, 2))
    """
    return np.meshgrid(*(np.fft.fftfreq(int(n), d=1.0 / int(n)) for n in shape), indexing="ij", sparse=True)


def periodic_gaussian_random_field(shape, alpha: float, tau: float, rng, sigma: float | None = None, *,
                                   std: float | None = None) -> np.ndarray:
    """One sample of FNO's periodic Gaussian random field on [0, 1)^d, at the nodes ``j / n`` (numpy, float64).

    ``u(x) = Re sum_k sqrt(2) sigma (4 pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k exp(2 pi i k.x)``
    over the grid's wavenumbers ``k != 0``, with ``xi_k`` complex standard normals (real and
    imaginary parts N(0, 1)) and ``sigma = tau^(alpha - d/2)`` by default: the ``GaussianRF``
    of the FNO Navier-Stokes data (Li et al. 2021; alpha = 2.5, tau = 7 there), whose
    covariance is ``2 sigma^2 (-Lap + tau^2)^(-alpha)`` on the torus, so its pointwise
    variance is ``sum_k 2 sigma^2 (4 pi^2 |k|^2 + tau^2)^(-alpha)``. Its parameters mean
    what they mean in :func:`~sciml.datasets.gaussian_random_field`, which samples the
    Neumann (cosine) version and so is not periodic. The field is stationary, so the same
    values serve as samples at the cell centres ``(j + 1/2) / n`` (same law).

    Parameters
    ----------
    shape : int or sequence of int
        Grid points per axis, any dimension.
    alpha, tau, sigma : float
        Smoothness (> d/2), inverse length scale and amplitude, as above. On a box of
        side ``L`` the covariance ``(-Lap_L + tau^2)^(-alpha)`` is that of the unit box with
        ``tau L`` (up to a constant factor, which ``std`` removes).
    rng : numpy.random.Generator or int
        Source of the normals, or a seed for one.
    std : float, optional
        Scale the field to this pointwise standard deviation instead (then ``sigma`` must
        not be given): the same field at every resolution, not FNO's tau-dependent amplitude.

    Examples
    --------
    >>> from sciml.datasets.periodic_spectral import periodic_gaussian_random_field
    >>> w = periodic_gaussian_random_field((32, 32), alpha=2.5, tau=7.0, rng=0)
    >>> w.shape, bool(abs(w.mean()) < 1e-12)
    ((32, 32), True)
    """
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not shape or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1 for n in shape):
        raise SciMLError(f"GRF shape must be a positive int or a tuple of positive ints, got {shape!r}")
    check_grf_parameters(len(shape), alpha, tau, sigma)
    if std is not None:
        if sigma is not None:
            raise SciMLError("give the GRF amplitude as sigma or as std (pointwise standard deviation), not both")
        if isinstance(std, bool) or not isinstance(std, (int, float, np.integer, np.floating)) \
                or not math.isfinite(std) or std <= 0:
            raise SciMLError(f"GRF std (pointwise standard deviation) must be a finite number > 0, got {std!r}")
    sigma = default_sigma(alpha, tau, len(shape)) if sigma is None else sigma
    rng = np.random.default_rng(rng)
    k_squared = sum(k**2 for k in fft_wavenumbers(shape))
    amplitude = math.sqrt(2.0) * sigma * (4 * math.pi**2 * k_squared + tau**2) ** (-alpha / 2)
    amplitude[(0,) * len(shape)] = 0.0
    if std is not None:
        variance = float((amplitude**2).sum())  # pointwise variance: sum_k amplitude_k^2
        if variance == 0.0:
            raise SciMLError(f"a GRF on the grid {shape} has no mode but the mean; use at least 2 points on an axis")
        amplitude *= std / math.sqrt(variance)
    xi = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return np.fft.ifftn(amplitude * xi, norm="forward").real
