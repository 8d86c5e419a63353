"""2-D incompressible Navier-Stokes in vorticity form on the periodic unit square, in torch.

The equation for the vorticity ``w = v_x - u_y`` of a velocity ``(u, v)`` on [0, 1)^2 is

    w_t + (u, v) . grad w = nu Lap w - mu w + f,    (u, v) = (psi_y, -psi_x),   -Lap psi = w,

with viscosity ``nu > 0``, optional linear drag ``mu >= 0`` and a steady forcing ``f``.
Fields are sampled at the nodes ``x_j = j / n`` of an ``n x n`` grid, axes ``(x, y)`` last,
batched over samples as ``(B, n, n)``; trajectories are ``(B, T, n, n)``.

* :func:`integrate_vorticity`: the batched pseudo-spectral solver (2/3 de-aliasing,
  Crank-Nicolson for the viscous and drag terms, three explicit Runge-Kutta stages for
  advection and forcing; second order in time), on the input's device and dtype.
* :func:`fno_forced_flow` and :func:`mcwilliams_decaying`: the two benchmark settings as
  :class:`NavierStokesConfig`; :func:`generate_trajectories` makes data from a config in
  memory, :class:`NavierStokes` (``sciml generate navier-stokes``) the same data through
  :func:`sciml.simulate.simulate_dataset` into a trajectory file.
* :func:`vorticity_residual`: the residual of a stored trajectory, as Spectral-Refiner
  measures it (:func:`residual_settings` reads its arguments from a file's metadata);
  :class:`NavierStokesConstraint`: the same PDE as a
  :class:`~sciml.datasets.pde_constraint.PDEConstraint` for hard and soft constraints.

Bad input is refused before any time step: a non-square grid, a field that is not
periodic (:func:`check_periodic`), a time step over the advective limit
:data:`CFL_LIMIT`. A run that diverges (a non-finite value, or the enstrophy growing by
more than :data:`BLOWUP_FACTOR`) raises :class:`~sciml.errors.SimulationDiverged` naming the
sample and the step; nothing from it is returned. The initial vorticity of the forced flow
is :func:`~sciml.datasets.periodic_spectral.periodic_gaussian_random_field`.

References: Li et al., "Fourier Neural Operator for Parametric Partial Differential
Equations", ICLR 2021 (the forced-flow data); Cao et al., "Spectral-Refiner: Accurate
Fine-Tuning of Spatiotemporal Fourier Neural Operator for Turbulent Flows", ICLR 2025 (its
``torch-cfd`` code: the residual, the McWilliams data); McWilliams, "The emergence of
isolated coherent vortices in turbulent flow", J. Fluid Mech. 146, 1984; Spalart, Moser &
Rogers, "Spectral methods for the Navier-Stokes equations with one infinite and two
periodic directions", J. Comput. Phys. 96, 1991 (the time stepper).

Examples
--------
>>> import math, torch
>>> from sciml.datasets.navier_stokes import integrate_vorticity
>>> x = torch.arange(16, dtype=torch.float64) / 16
>>> w0 = (torch.sin(2 * math.pi * x)[:, None] * torch.sin(2 * math.pi * x)[None, :])[None]  # Taylor-Green
>>> out = integrate_vorticity(w0, dt=0.01, n_steps=10, nu=0.01, record_every=5)
>>> out["w"].shape, out["t"].tolist()
(torch.Size([1, 3, 16, 16]), [0.0, 0.05, 0.1])
>>> decay = math.exp(-0.01 * 8 * math.pi**2 * 0.1)
>>> bool(torch.allclose(out["w"][:, -1], decay * w0, atol=1e-6))
True
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch

from sciml.dataset_file import sample_seed
from sciml.errors import SciMLError, SimulationDiverged

from .pde_constraint import PDEConstraint
from .periodic_spectral import (
    dealias_mask,
    derivative_symbols,
    fft_wavenumbers,
    inverse_laplacian_symbol,
    irfft,
    laplacian_symbol,
    periodic_gaussian_random_field,
    resample,
    rfft,
    velocity,
)
from .random_fields import check_grf_parameters
from .trajectory_generator import TrajectoryGenerator

__all__ = [
    "CFL_LIMIT",
    "BLOWUP_FACTOR",
    "PERIODICITY_FACTOR",
    "check_periodic",
    "max_velocity",
    "stable_time_step",
    "integrate_vorticity",
    "mcwilliams_vorticity",
    "fno_forcing",
    "NavierStokesConfig",
    "fno_forced_flow",
    "mcwilliams_decaying",
    "generate_trajectories",
    "NavierStokes",
    "residual_settings",
    "vorticity_residual",
    "NavierStokesConstraint",
]

#: Largest Courant number ``dt * max|u| / dx`` the solver accepts. The explicit stages
#: (Runge-Kutta 3) are stable on the imaginary axis up to sqrt(3); with the 2/3 rule the
#: advection eigenvalues of a frozen velocity are at most (2 pi / 3) sqrt(2) |u| / dx, which
#: gives 0.58. 0.5 is jax-cfd's default ``max_courant_number``.
CFL_LIMIT = 0.5

#: A run has diverged when a sample's enstrophy exceeds this multiple of the larger of its
#: initial enstrophy and the enstrophy of the steady Stokes response to the forcing. Neither
#: a decaying flow (whose enstrophy cannot grow) nor a forced one (which the viscous
#: balance bounds by the Stokes response) comes near it.
BLOWUP_FACTOR = 1e3

#: A field is refused as non-periodic when, along an axis, its jump from the last to the first
#: grid line exceeds this multiple of its largest jump between neighbouring lines inside the
#: grid. On a periodic field the wrap-around pair is one neighbour pair like the others.
PERIODICITY_FACTOR = 8.0

# Spalart, Moser & Rogers (1991), appendix A: substage k solves
# (1 - beta_k dt L) w_k = (1 + alpha_k dt L) w_{k-1} + dt (gamma_k N(w_{k-1}) + zeta_k N(w_{k-2})).
_SMR91_STAGES = (
    (29 / 96, 37 / 160, 8 / 15, 0.0),
    (-3 / 40, 5 / 24, 5 / 12, -17 / 60),
    (1 / 6, 1 / 6, 3 / 4, -5 / 12),
)
_HOST_CHECK_EVERY = 100  # steps between host-side divergence checks (a device sync each)


# ----------------------------------------------------------------------------- bad input


def _number(name: str, value, *, minimum: float = 0.0, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SciMLError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        raise SciMLError(f"{name} must be finite and {'>' if strict else '>='} {minimum:g}, got {value!r}")
    return value


def _count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SciMLError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _round_down(value: float) -> float:
    """``value`` rounded down to three significant digits (a step that is safe to suggest)."""
    scale = 10.0 ** (math.floor(math.log10(value)) - 2)
    return math.floor(value / scale) * scale


def check_periodic(field: torch.Tensor, name: str = "field") -> None:
    """Raise :class:`SciMLError` unless ``field (..., n, n)`` looks like samples of a periodic field.

    Along each of the last two axes, the jump from the last grid line to the first (the
    wrap-around neighbours) is compared with the largest jump between neighbouring lines
    inside the grid, per sample; more than :data:`PERIODICITY_FACTOR` times that (and more
    than 1e-10 of the field's size) means the periodic extension jumps: a field sampled on a
    non-periodic box, or with the end point ``x = 1`` in place of ``x = 0``. A smooth
    non-periodic field on an ``n``-point grid jumps about ``n`` times its neighbour
    differences, so grids of 9 points or fewer can pass unnoticed.

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.navier_stokes import check_periodic
    >>> x = torch.arange(32, dtype=torch.float64) / 32
    >>> check_periodic(torch.cos(2 * torch.pi * x)[:, None] + 0 * x)   # periodic: passes
    >>> check_periodic(x[:, None] + 0 * x, name="initial vorticity")
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: initial vorticity is not periodic: sample 0 jumps by 0.969 from its last to its first row, ...
    """
    field = torch.as_tensor(field)
    samples = field.detach().reshape(-1, *field.shape[-2:])
    scale = samples.abs().amax(dim=(-2, -1))
    for axis, line in ((-2, "row"), (-1, "column")):
        inside = samples.diff(dim=axis).abs().amax(dim=(-2, -1))
        wrap = (samples.select(axis, 0) - samples.select(axis, -1)).abs().amax(dim=-1)
        bad = (wrap > PERIODICITY_FACTOR * inside) & (wrap > 1e-10 * scale)
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0, 0])
            ratio = f"{wrap[b] / inside[b]:.3g}x" if inside[b] > 0 else "infinitely many times"
            raise SciMLError(
                f"{name} is not periodic: sample {b} jumps by {wrap[b]:.3g} from its last to its first {line}, "
                f"{ratio} its largest jump between neighbouring {line}s ({inside[b]:.3g}); give samples of a "
                "periodic field at x = j/n, j = 0..n-1"
            )


def _square_fields(value, name: str, *, batched: bool) -> torch.Tensor:
    """``value`` as a real floating tensor ``(B, n, n)`` (or ``(n, n)``), finite, square, periodic."""
    field = torch.as_tensor(value)
    if not field.is_floating_point():
        field = field.to(torch.float64)
    want = 3 if batched else 2
    if field.ndim != want:
        layout = "(batch, n, n)" if batched else "(n, n)"
        raise SciMLError(f"{name} must have shape {layout}, got {tuple(field.shape)}")
    if field.shape[-1] != field.shape[-2] or field.shape[-1] < 4:
        raise SciMLError(
            f"{name} has grid {tuple(field.shape[-2:])}, but the solver works on the periodic unit square "
            "with an n x n grid, n >= 4: resample it to a square grid"
        )
    if not bool(torch.isfinite(field).all()):
        raise SciMLError(f"{name} contains NaN or inf; give finite values")
    check_periodic(field, name)
    return field


# ----------------------------------------------------------------------------- solver


def max_velocity(w: torch.Tensor) -> torch.Tensor:
    """The largest speed ``max |(u, v)|`` on the grid of each vorticity field ``w (..., n, n)``.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.navier_stokes import max_velocity
    >>> x = torch.arange(16, dtype=torch.float64) / 16
    >>> w = 2 * math.pi * torch.cos(2 * math.pi * x)[:, None] + 0 * x   # v = sin(2 pi x)
    >>> round(max_velocity(w).item(), 12)
    1.0
    """
    u, v = velocity(w)
    return (u**2 + v**2).sqrt().amax(dim=(-2, -1))


def stable_time_step(w: torch.Tensor, cfl_limit: float = CFL_LIMIT) -> float:
    """The largest ``dt`` with Courant number ``dt * max|u| * n`` at most ``cfl_limit`` for all of ``w``.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.navier_stokes import stable_time_step
    >>> x = torch.arange(16, dtype=torch.float64) / 16
    >>> round(stable_time_step(2 * math.pi * torch.cos(2 * math.pi * x)[:, None] + 0 * x), 12)
    0.03125
    """
    speed = float(max_velocity(w).max()) if w.numel() else 0.0
    return math.inf if speed == 0 else cfl_limit / (speed * w.shape[-1])


def _dealiased(w: torch.Tensor) -> torch.Tensor:
    return irfft(dealias_mask(w.shape[-2:], device=w.device) * rfft(w), w.shape[-2:])


def integrate_vorticity(
    w0,
    *,
    dt: float,
    n_steps: int,
    nu: float,
    forcing=None,
    drag: float = 0.0,
    record_every: int = 1,
    warmup_steps: int = 0,
    out_resolution: int | None = None,
    t0: float = 0.0,
    cfl_limit: float = CFL_LIMIT,
    blowup_factor: float = BLOWUP_FACTOR,
) -> dict[str, torch.Tensor]:
    """Integrate ``w_t + u . grad w = nu Lap w - mu w + f`` for a batch of vorticities ``w0 (B, n, n)``.

    Pseudo-spectral in space: the state is the vorticity's ``rfft`` coefficients; the
    velocity is ``(psi_y, -psi_x)`` with ``-Lap psi = w``; the product ``u . grad w`` is
    formed on the grid from the modes kept by the 2/3 rule (:func:`dealias_mask`) and
    truncated to them, which makes the scheme the alias-free Galerkin truncation (the
    initial vorticity and forcing are projected onto those modes first, so frame 0 is that
    projection). In time: the low-storage IMEX scheme of Spalart, Moser & Rogers (1991),
    three Runge-Kutta stages for advection and forcing with Crank-Nicolson-type implicit
    viscosity and drag in each stage; second order overall, and unlike Heun's or AB2 its
    explicit part is stable for pure advection (Courant number up to :data:`CFL_LIMIT`).

    Departures from the FNO data code (Li et al. 2021; forward Euler advection with
    Crank-Nicolson viscosity, first order): second order, strict 2/3 mask applied to the
    product's factors as well as the product. Spectral-Refiner's ``torch-cfd`` offers the
    same family of IMEX Runge-Kutta/Crank-Nicolson steppers.

    Parameters
    ----------
    w0 : torch.Tensor or array_like
        Initial vorticities ``(B, n, n)``, periodic, on any device; the computation runs in
        its dtype (float64 for accuracy, float32 for speed).
    dt : float
        Time step.
    n_steps : int
        Steps after the warm-up; a multiple of ``record_every``.
    nu : float
        Kinematic viscosity, > 0.
    forcing : array_like, optional
        Steady forcing ``f (n, n)`` of the vorticity equation.
    drag : float
        Linear drag coefficient ``mu >= 0``.
    record_every : int
        Steps between recorded frames.
    warmup_steps : int
        Steps taken before the first recorded frame (spin-up that is not stored).
    out_resolution : int, optional
        Grid of the returned frames; they are Fourier restrictions (or interpolations) of
        the solution (:func:`~sciml.datasets.periodic_spectral.resample`). Defaults to ``n``.
    t0 : float
        Time of ``w0``.
    cfl_limit, blowup_factor : float
        The refusal thresholds :data:`CFL_LIMIT` and :data:`BLOWUP_FACTOR`; change them only
        knowingly.

    Returns
    -------
    dict
        ``"w"`` and ``"psi"`` (stream function), each ``(B, T, m, m)`` with
        ``T = n_steps / record_every + 1`` frames at times ``"t"`` (float64, ``(T,)``).

    Raises
    ------
    SciMLError
        Before any step: a non-square, non-finite or non-periodic ``w0`` or ``forcing``, bad
        parameters, or ``dt * max|u| * n > cfl_limit`` (the message gives the ``dt`` to use).
    SimulationDiverged
        When a sample's vorticity becomes non-finite or its enstrophy grows past
        ``blowup_factor`` times its reference; names the sample and the step.

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.navier_stokes import integrate_vorticity, fno_forcing
    >>> w0 = torch.zeros(2, 16, 16, dtype=torch.float64)
    >>> out = integrate_vorticity(w0, dt=0.05, n_steps=4, nu=1e-2, forcing=fno_forcing(16), out_resolution=8)
    >>> out["w"].shape, bool(out["w"][:, -1].abs().max() > 0)
    (torch.Size([2, 5, 8, 8]), True)
    """
    w0 = _square_fields(w0, "initial vorticity", batched=True)
    n = w0.shape[-1]
    dt = _number("dt", dt)
    nu = _number("nu", nu)
    drag = _number("drag", drag, strict=False)
    t0 = _number("t0", t0, minimum=-math.inf)
    cfl_limit = _number("cfl_limit", cfl_limit)
    blowup_factor = _number("blowup_factor", blowup_factor, minimum=1.0)
    n_steps = _count("n_steps", n_steps)
    record_every = _count("record_every", record_every)
    warmup_steps = _count("warmup_steps", warmup_steps, minimum=0)
    if n_steps % record_every:
        raise SciMLError(f"n_steps = {n_steps} is not a multiple of record_every = {record_every}; "
                         f"use n_steps = {(n_steps // record_every + 1) * record_every}")
    out_n = n if out_resolution is None else _count("out_resolution", out_resolution)

    shape, kw = (n, n), dict(device=w0.device, dtype=w0.dtype)
    mask = dealias_mask(shape, device=w0.device).to(w0.dtype)
    ikx, iky = derivative_symbols(shape, **kw)
    inverse_laplacian = inverse_laplacian_symbol(shape, **kw)
    linear = nu * laplacian_symbol(shape, **kw) - drag
    multiplicity = torch.full((n // 2 + 1,), 2.0, **kw)
    multiplicity[0] = 1.0
    if n % 2 == 0:
        multiplicity[-1] = 1.0

    def enstrophy(c):  # mean of w^2 over the box, by Parseval
        return (multiplicity * (c.real**2 + c.imag**2)).sum(dim=(-2, -1))

    w_hat = mask * rfft(w0)
    f_hat = None
    if forcing is not None:
        forcing = _square_fields(forcing, "forcing", batched=False)
        if tuple(forcing.shape) != shape:
            raise SciMLError(f"forcing has grid {tuple(forcing.shape)} but the vorticity has {shape}; "
                             "give f on the same grid")
        f_hat = mask * rfft(forcing.to(**kw))

    speed = max_velocity(irfft(w_hat, shape))
    courant = dt * speed * n
    if float(courant.max()) > cfl_limit:
        b = int(courant.argmax())
        stable = _round_down(cfl_limit / (float(speed[b]) * n))
        raise SciMLError(
            f"time step dt = {dt:g} is unstable: Courant number dt*max|u|/dx = {float(courant[b]):.3g} > {cfl_limit:g} "
            f"(sample {b}, max|u| = {float(speed[b]):.3g}, dx = 1/{n} at t = {t0:g}); use dt <= {stable:.3g}"
        )

    reference = enstrophy(w_hat)
    if f_hat is not None:
        steady = torch.where(linear != 0, f_hat / torch.where(linear != 0, -linear, 1.0), 0.0)
        reference = torch.maximum(reference, enstrophy(steady))
    limit = blowup_factor * reference
    first_bad = torch.full_like(reference, -1, dtype=torch.long)

    def tendency(c):
        psi = inverse_laplacian * c  # = -psi_hat
        u, v, wx, wy = irfft(torch.stack([-iky * psi, ikx * psi, ikx * c, iky * c]), shape)
        out = -mask * rfft(u * wx + v * wy)
        return out if f_hat is None else out + f_hat

    stages = [((1 + a * dt * linear), 1 / (1 - b * dt * linear), g * dt, z * dt) for a, b, g, z in _SMR91_STAGES]
    n_frames = n_steps // record_every + 1
    frames = {name: w0.new_empty((w0.shape[0], n_frames, out_n, out_n)) for name in ("w", "psi")}

    def record(frame: int, c):
        frames["w"][:, frame] = resample(irfft(c, shape), (out_n, out_n))
        frames["psi"][:, frame] = resample(irfft(-inverse_laplacian * c, shape), (out_n, out_n))

    def raise_if_diverged():
        if bool((first_bad >= 0).any()):
            failed = torch.where(first_bad >= 0, first_bad, torch.iinfo(torch.long).max)
            b = int(failed.argmin())
            step = int(failed[b])
            others = int((first_bad >= 0).sum()) - 1
            raise SimulationDiverged(
                f"vorticity diverged in sample {b} at step {step} (t = {t0 + step * dt:g})"
                + (f" and in {others} other sample(s)" if others else "")
                + f": it became non-finite or its enstrophy grew over {blowup_factor:g}x; reduce dt or raise the "
                "resolution, nothing from this run is kept",
                sample=b, step=step, time=t0 + step * dt,
            )

    total = warmup_steps + n_steps
    if warmup_steps == 0:
        record(0, w_hat)
    for step in range(1, total + 1):
        previous = None
        for explicit, implicit, gamma, zeta in stages:
            current = tendency(w_hat)
            rhs = explicit * w_hat + gamma * current
            if previous is not None:
                rhs = rhs + zeta * previous
            w_hat = implicit * rhs
            previous = current
        z = enstrophy(w_hat)
        bad = ~torch.isfinite(z) | (z > limit)
        first_bad = torch.where((first_bad < 0) & bad, step, first_bad)
        recorded = step >= warmup_steps and (step - warmup_steps) % record_every == 0
        if recorded or step % _HOST_CHECK_EVERY == 0 or step == total:
            raise_if_diverged()
        if recorded:
            record((step - warmup_steps) // record_every, w_hat)
    times = t0 + dt * (warmup_steps + record_every * torch.arange(n_frames, dtype=torch.float64))
    return {"w": frames["w"], "psi": frames["psi"], "t": times}


# ----------------------------------------------------------------------------- initial data and forcing


def mcwilliams_vorticity(n: int, rng, peak_wavenumber: float = 4.0,
                         energy: float = 0.5 / (2 * math.pi) ** 2) -> np.ndarray:
    """A random initial vorticity ``(n, n)`` of McWilliams' (1984) decaying turbulence on [0, 1)^2.

    The stream function has independent Gaussian Fourier coefficients with
    ``E|psi_k|^2 ~ |k|^-1 (1 + (|k| / k0)^4)^-1`` (``k`` the integer wavenumber, ``k0`` the
    peak wavenumber), scaled so that the mean kinetic energy ``<|u|^2> / 2`` is ``energy``;
    the vorticity is ``-Lap psi``. Modes with ``|k_j| = n / 2`` (Nyquist) are left out, so
    spectral first derivatives (the velocity) are exact. McWilliams used k0 = 6 and energy 1/2 on [0, 2 pi)^2;
    Spectral-Refiner k0 = 4. The default energy is McWilliams' 1/2 carried to the unit box
    with time unchanged (lengths and velocities divided by 2 pi, vorticity unchanged).
    Departure from ``torch-cfd``'s ``vorticity_field``: there the noise is multiplied by the
    spectrum itself rather than its square root, and the energy set to 1/4.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.navier_stokes import mcwilliams_vorticity
    >>> from sciml.datasets.periodic_spectral import velocity
    >>> w = torch.as_tensor(mcwilliams_vorticity(32, rng=0, energy=0.5))
    >>> u, v = velocity(w)
    >>> round(float((u**2 + v**2).mean() / 2), 12)
    0.5
    """
    n = _count("n", n, minimum=4)
    peak_wavenumber = _number("peak_wavenumber", peak_wavenumber)
    energy = _number("energy", energy)
    rng = np.random.default_rng(rng)
    kx, ky = fft_wavenumbers((n, n))
    k = np.sqrt(kx**2 + ky**2)
    spectrum = np.zeros((n, n))
    kept = (k > 0) & (2 * np.abs(kx) < n) & (2 * np.abs(ky) < n)  # no Nyquist modes: derivatives stay exact
    spectrum[kept] = 1.0 / (k[kept] * (1.0 + (k[kept] / peak_wavenumber) ** 4))
    xi = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    psi = np.fft.ifft2(np.sqrt(spectrum) * xi, norm="forward").real
    psi_hat = np.fft.fft2(psi, norm="forward")
    psi_hat[0, 0] = 0.0
    laplacian = 4 * math.pi**2 * k**2
    mean_speed_squared = float((laplacian * np.abs(psi_hat) ** 2).sum())
    w_hat = laplacian * psi_hat * math.sqrt(2 * energy / mean_speed_squared)
    return np.fft.ifft2(w_hat, norm="forward").real


def fno_forcing(n: int, amplitude: float = 0.1) -> torch.Tensor:
    """The forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))`` of the FNO forced flow, float64 ``(n, n)``.

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import fno_forcing
    >>> f = fno_forcing(4)
    >>> f.shape, round(float(f[0, 0]), 12)
    (torch.Size([4, 4]), 0.1)
    """
    n = _count("n", n)
    x = torch.arange(n, dtype=torch.float64) / n
    phase = 2 * math.pi * (x[:, None] + x[None, :])
    return amplitude * (torch.sin(phase) + torch.cos(phase))


# ----------------------------------------------------------------------------- presets and generation


def _whole_steps(name: str, duration: float, dt: float) -> int:
    steps = round(duration / dt)
    if abs(steps * dt - duration) > 1e-9 * max(duration, dt):
        raise SciMLError(f"{name} = {duration:g} is not a whole number of time steps dt = {dt:g}; "
                         f"choose dt dividing it, e.g. {duration / max(steps, 1):g}")
    return steps


@dataclass(frozen=True)
class NavierStokesConfig:
    """A data-generation setting for :func:`generate_trajectories` (build it with a preset).

    Attributes
    ----------
    name : str
        Preset name, stored with the data.
    nu, drag : float
        Viscosity and linear drag.
    dt : float
        Solver time step.
    frame_dt : float
        Time between stored frames, a multiple of ``dt``.
    n_frames : int
        Stored frames (>= 3, the residual needs three), the first at ``warmup_time``.
    warmup_time : float
        Simulated time before the first stored frame, a multiple of ``dt``.
    resolution, store_resolution : int
        Solver grid and stored grid (Fourier restriction).
    initial : str
        ``"grf"`` (:func:`~sciml.datasets.periodic_spectral.periodic_gaussian_random_field`
        with ``grf_alpha``, ``grf_tau``)
        or ``"mcwilliams"`` (:func:`mcwilliams_vorticity` with ``peak_wavenumber``, ``energy``).
    forcing : str
        ``"fno"`` (:func:`fno_forcing` with ``forcing_amplitude``) or ``"none"``.
    """

    name: str
    nu: float
    dt: float
    frame_dt: float
    n_frames: int
    warmup_time: float = 0.0
    resolution: int = 256
    store_resolution: int = 64
    drag: float = 0.0
    initial: str = "grf"
    grf_alpha: float = 2.5
    grf_tau: float = 7.0
    peak_wavenumber: float = 4.0
    energy: float = 0.5 / (2 * math.pi) ** 2
    forcing: str = "fno"
    forcing_amplitude: float = 0.1

    def __post_init__(self):
        for name in ("nu", "dt", "frame_dt", "peak_wavenumber", "energy"):
            _number(f"NavierStokesConfig.{name}", getattr(self, name))
        for name in ("warmup_time", "drag"):
            _number(f"NavierStokesConfig.{name}", getattr(self, name), strict=False)
        _number("NavierStokesConfig.forcing_amplitude", self.forcing_amplitude, minimum=-math.inf)
        _count("NavierStokesConfig.n_frames", self.n_frames, minimum=3)
        _count("NavierStokesConfig.resolution", self.resolution, minimum=4)
        _count("NavierStokesConfig.store_resolution", self.store_resolution, minimum=4)
        if self.initial not in ("grf", "mcwilliams"):
            raise SciMLError(f"NavierStokesConfig.initial = {self.initial!r} is not known; use 'grf' or 'mcwilliams'")
        if self.forcing not in ("fno", "none"):
            raise SciMLError(f"NavierStokesConfig.forcing = {self.forcing!r} is not known; use 'fno' or 'none'")
        if self.initial == "grf":
            check_grf_parameters(2, self.grf_alpha, self.grf_tau)
        self.steps()

    def steps(self) -> tuple[int, int]:
        """``(warmup_steps, steps_per_frame)``; raises unless both times are whole numbers of steps."""
        return (_whole_steps("warmup_time", self.warmup_time, self.dt),
                _whole_steps("frame_dt", self.frame_dt, self.dt))

    def initial_vorticity(self, rng) -> np.ndarray:
        """One initial vorticity on the solver grid."""
        if self.initial == "grf":
            return periodic_gaussian_random_field((self.resolution,) * 2, self.grf_alpha, self.grf_tau, rng)
        return mcwilliams_vorticity(self.resolution, rng, self.peak_wavenumber, self.energy)

    def forcing_field(self) -> torch.Tensor | None:
        """The forcing on the solver grid, or None."""
        return fno_forcing(self.resolution, self.forcing_amplitude) if self.forcing == "fno" else None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def fno_forced_flow(
    nu: float = 1e-3,
    *,
    final_time: float = 50.0,
    frame_dt: float = 1.0,
    warmup_time: float = 0.0,
    resolution: int = 256,
    store_resolution: int = 64,
    dt: float = 1e-3,
) -> NavierStokesConfig:
    """The forced flow of the FNO benchmark (Li et al. 2021), also Spectral-Refiner's first test.

    Initial vorticity from :func:`~sciml.datasets.periodic_spectral.periodic_gaussian_random_field`
    (alpha 2.5, tau 7),
    forcing ``0.1 (sin 2 pi (x + y) + cos 2 pi (x + y))``, no drag, solved at 256^2 and
    stored at 64^2. Li et al. use nu = 1e-3 to t = 50, 1e-4 to t = 30, 1e-5 to t = 20, one
    frame per time unit; Spectral-Refiner uses nu = 1e-3, ``warmup_time=30``, ``frame_dt=0.2``.
    Departures: the FNO code steps with dt = 1e-4 (first order) and Spectral-Refiner stores
    bilinear subsamples; here dt = 1e-3 (second order, the Spectral-Refiner step, within
    :data:`CFL_LIMIT` for these flows) and the stored frames are Fourier restrictions.

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import fno_forced_flow
    >>> config = fno_forced_flow(1e-4, final_time=30.0)
    >>> config.n_frames, config.steps()
    (31, (0, 1000))
    """
    final_time, frame_dt = _number("final_time", final_time), _number("frame_dt", frame_dt)
    warmup_time = _number("warmup_time", warmup_time, strict=False)
    n_frames = round((final_time - warmup_time) / frame_dt) + 1
    if n_frames < 3 or abs((n_frames - 1) * frame_dt - (final_time - warmup_time)) > 1e-9 * final_time:
        raise SciMLError(f"final_time - warmup_time = {final_time - warmup_time:g} must be at least two whole "
                         f"frames of frame_dt = {frame_dt:g}")
    return NavierStokesConfig(
        name="fno-forced-flow", nu=nu, dt=dt, frame_dt=frame_dt, n_frames=n_frames, warmup_time=warmup_time,
        resolution=resolution, store_resolution=store_resolution, initial="grf", forcing="fno",
    )


def mcwilliams_decaying(
    nu: float = 1e-3 / (2 * math.pi) ** 2,
    *,
    peak_wavenumber: float = 4.0,
    warmup_time: float = 4.5,
    final_time: float = 10.0,
    n_frames: int = 101,
    resolution: int = 256,
    store_resolution: int = 64,
    dt: float = 1e-3,
) -> NavierStokesConfig:
    """Decaying 2-D turbulence from McWilliams' (1984) random initial spectrum, unforced.

    Defaults are Spectral-Refiner's McWilliams data (nu = 1e-3 on [0, 2 pi)^2, peak
    wavenumber 4, spin-up to t = 4.5, 100 intervals to t = 10, dt = 1e-3, 256^2 stored at
    64^2) carried to the unit square with time unchanged: lengths and velocities divided by
    2 pi, so nu / (2 pi)^2 and the energy of :func:`mcwilliams_vorticity`; vorticity and
    times are the same. McWilliams (1984) used peak wavenumber 6 and a hyperviscosity.

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import mcwilliams_decaying
    >>> config = mcwilliams_decaying()
    >>> config.frame_dt, config.steps()
    (0.055, (4500, 55))
    """
    n_frames = _count("n_frames", n_frames, minimum=3)
    final_time, warmup_time = _number("final_time", final_time), _number("warmup_time", warmup_time, strict=False)
    if final_time <= warmup_time:
        raise SciMLError(f"final_time = {final_time:g} must exceed warmup_time = {warmup_time:g}: the frames lie "
                         "between them")
    return NavierStokesConfig(
        name="mcwilliams-decaying", nu=nu, dt=dt, frame_dt=round((final_time - warmup_time) / (n_frames - 1), 12),
        n_frames=n_frames, warmup_time=warmup_time, resolution=resolution, store_resolution=store_resolution,
        initial="mcwilliams", peak_wavenumber=peak_wavenumber, forcing="none",
    )


_EQUATION = "w_t + u.grad w = nu Lap w - drag w + f, u = (psi_y, -psi_x), -Lap psi = w"
_FORCING_FORMULAS = {"fno": "{amplitude:g} (sin 2 pi (x + y) + cos 2 pi (x + y))", "none": "none"}


def _description(config: NavierStokesConfig) -> dict:
    """What the stored data is: equation, domain and grid, scheme (text stored with the data)."""
    return {
        "equation": _EQUATION,
        "domain": "periodic unit square [0,1)^2, nodes x_j = j/n, axes (x, y) last",
        "scheme": "pseudo-spectral, 2/3 de-aliasing, IMEX RK3/Crank-Nicolson (Spalart-Moser-Rogers 1991), "
                  f"solved at {config.resolution}^2, stored frames are Fourier restrictions to "
                  f"{config.store_resolution}^2",
    }


def _stored_forcing(config: NavierStokesConfig) -> torch.Tensor | None:
    """The forcing on the stored grid (the Fourier restriction of the solver's), float64, or None."""
    forcing = config.forcing_field()
    return None if forcing is None else resample(forcing, (config.store_resolution,) * 2)


def _initial_batch(config: NavierStokesConfig, seeds, device, dtype: torch.dtype) -> torch.Tensor:
    """Initial vorticities ``(len(seeds), n, n)`` on the solver grid, the ``i``-th from ``default_rng(seeds[i])``."""
    fields = [config.initial_vorticity(np.random.default_rng(int(s))) for s in seeds]
    return torch.as_tensor(np.stack(fields), dtype=dtype, device=device)


def _refuse_unstable(config: NavierStokesConfig, speeds: torch.Tensor, label) -> None:
    """A one-line SciMLError, before any step, if ``config.dt`` exceeds the CFL limit for a sample
    of initial speeds ``speeds``; ``label(i)`` names sample ``i``."""
    n = config.resolution
    courant = config.dt * speeds * n
    if float(courant.max()) > CFL_LIMIT:
        i = int(courant.argmax())
        raise SciMLError(
            f"time step dt = {config.dt:g} is unstable for {config.name}: Courant number dt*max|u|/dx = "
            f"{float(courant[i]):.3g} > {CFL_LIMIT:g} ({label(i)}, max|u| = {float(speeds[i]):.3g}, dx = 1/{n}); "
            f"use dt <= {_round_down(CFL_LIMIT / (float(speeds[i]) * n)):.3g} that divides frame_dt and warmup_time"
        )


def _integrate(config: NavierStokesConfig, w0: torch.Tensor, label, first: int = 0) -> dict[str, torch.Tensor]:
    """:func:`integrate_vorticity` of a batch under ``config``; a divergence is re-raised naming
    ``label(first + b)`` for the batch's sample ``b`` (``first + b`` is the error's ``sample``)."""
    warmup_steps, steps_per_frame = config.steps()
    try:
        return integrate_vorticity(
            w0, dt=config.dt, n_steps=(config.n_frames - 1) * steps_per_frame, nu=config.nu,
            forcing=config.forcing_field(), drag=config.drag, record_every=steps_per_frame,
            warmup_steps=warmup_steps, out_resolution=config.store_resolution, cfl_limit=CFL_LIMIT,
        )
    except SimulationDiverged as error:
        sample = first + error.sample
        raise SimulationDiverged(
            f"{config.name} {label(sample)} diverged at step {error.step} (t = {error.time:g}); reduce dt = "
            f"{config.dt:g} or raise the resolution {config.resolution}, nothing was stored",
            sample=sample, step=error.step, time=error.time,
        ) from None


def generate_trajectories(
    config: NavierStokesConfig,
    n_samples: int,
    seed: int,
    *,
    batch_size: int = 8,
    device=None,
    dtype: torch.dtype = torch.float64,
) -> tuple[dict[str, np.ndarray], dict]:
    """Vorticity trajectories of ``config`` for ``n_samples`` random initial conditions.

    Sample ``i`` starts from ``config.initial_vorticity(numpy.random.default_rng(s_i))`` with
    ``s_i =`` :func:`sciml.dataset_file.sample_seed` ``(seed, i)``, the seeds
    :func:`sciml.simulate.simulate_dataset` gives :class:`NavierStokes`, so both make the
    same data, and it does not depend on ``n_samples`` or ``batch_size``. Batches of
    ``batch_size`` samples run through :func:`integrate_vorticity` on ``device`` (default:
    torch's, the CPU) in ``dtype``. Every initial condition is checked against
    :data:`CFL_LIMIT` before the first step of any batch.

    Returns
    -------
    arrays : dict
        ``"w"`` vorticity and ``"psi"`` stream function (``-Lap psi = w``, zero mean, so the
        velocity is ``(psi_y, -psi_x)``), each ``(n_samples, n_frames, m, m)``; ``"f"`` the
        forcing ``(m, m)`` (zeros when unforced). ``m = config.store_resolution``; numpy, ``dtype``.
    attrs : dict
        The config's fields plus ``t0`` (time of frame 0), ``seed``, ``n_samples``, ``seeds``
        and ``equation``, ``domain`` and ``scheme`` descriptions: with ``frame_dt``, ``nu``,
        ``drag`` and ``f`` everything :func:`vorticity_residual` needs.

    Raises
    ------
    SciMLError
        Bad arguments, or a time step over the CFL limit (before any work).
    SimulationDiverged
        A diverging sample, named by its index in the data set (its ``sample``) and its step.

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import fno_forced_flow, generate_trajectories
    >>> config = fno_forced_flow(final_time=0.2, frame_dt=0.1, resolution=16, store_resolution=8, dt=0.05)
    >>> arrays, attrs = generate_trajectories(config, n_samples=2, seed=0)
    >>> arrays["w"].shape, arrays["f"].shape, attrs["frame_dt"], attrs["t0"]
    ((2, 3, 8, 8), (8, 8), 0.1, 0.0)
    """
    if not isinstance(config, NavierStokesConfig):
        raise SciMLError(f"config must be a NavierStokesConfig (see fno_forced_flow, mcwilliams_decaying), "
                         f"got {config!r}")
    n_samples = _count("n_samples", n_samples)
    batch_size = _count("batch_size", batch_size)
    seed = _count("seed", seed, minimum=0)
    if dtype not in (torch.float32, torch.float64):
        raise SciMLError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    seeds = [sample_seed(seed, i) for i in range(n_samples)]
    starts = range(0, n_samples, batch_size)

    def label(i: int) -> str:
        return f"sample {i} (seed {seeds[i]})"

    speeds = torch.cat([max_velocity(_dealiased(_initial_batch(config, seeds[s:s + batch_size], device, dtype)))
                        for s in starts])
    _refuse_unstable(config, speeds, label)
    parts: dict[str, list[np.ndarray]] = {"w": [], "psi": []}
    for start in starts:
        out = _integrate(config, _initial_batch(config, seeds[start:start + batch_size], device, dtype), label, start)
        for name in parts:
            parts[name].append(out[name].cpu().numpy())

    m = config.store_resolution
    f = _stored_forcing(config)
    f = np.zeros((m, m), dtype=parts["w"][0].dtype) if f is None else f.to(dtype).numpy()
    arrays = {"w": np.concatenate(parts["w"]), "psi": np.concatenate(parts["psi"]), "f": f}
    attrs = {**config.as_dict(), "t0": config.warmup_time, "seed": seed, "n_samples": n_samples, "seeds": seeds,
             **_description(config)}
    return arrays, attrs


PRESETS = {"forced": fno_forced_flow, "decaying": mcwilliams_decaying}
"""The presets of :class:`NavierStokes` by name: the function building each :class:`NavierStokesConfig`."""

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class NavierStokes(TrajectoryGenerator, name="navier-stokes"):
    """Navier-Stokes vorticity trajectories for :func:`sciml.simulate.simulate_dataset` (``sciml generate``).

    The data of :func:`generate_trajectories` for the preset's :class:`NavierStokesConfig`:
    with the same root seed and batch size, ``simulate_dataset(NavierStokes(...), n, out,
    seed=s)`` writes ``generate_trajectories(config, n, s)`` (as float32, the file's dtype).

    Parameters
    ----------
    preset : {"forced", "decaying"}
        :func:`fno_forced_flow` (FNO's forced flow) or :func:`mcwilliams_decaying`
        (McWilliams' decaying turbulence).
    dtype : {"float64", "float32"}
        Precision of the computation.
    **settings
        Keywords of the preset's function (e.g. ``nu``, ``final_time``, ``frame_dt`` or
        ``n_frames``, ``warmup_time``, ``resolution``, ``store_resolution``, ``dt``); an
        unknown one is refused, naming the valid ones.

    Notes
    -----
    Fields ``w`` (vorticity) and ``psi`` (stream function), ``(b, T, m, m)`` with
    ``m = store_resolution``. Coordinates: ``time`` the frame times (the first at
    ``warmup_time``); ``x`` and ``y`` the grid nodes ``j / m`` (the solver's nodes ``j / n``,
    Fourier-restricted), not cell centres. :meth:`metadata` holds ``frame_dt``, ``nu``,
    ``drag``, ``t0`` and the forcing ``f`` on the stored grid as a nested ``(m, m)`` list
    (``None`` unforced; its formula in ``forcing_formula``), so :func:`residual_settings`
    rebuilds :func:`vorticity_residual`'s arguments from a file alone. The whole config is
    in ``metadata()["config"]``. The CFL check runs per batch, before its first step.

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import NavierStokes
    >>> generator = NavierStokes(final_time=0.2, frame_dt=0.1, resolution=16, store_resolution=8, dt=0.05)
    >>> generator.simulate([11, 12])["w"].shape, generator.coords()["time"].tolist()
    ((2, 3, 8, 8), [0.0, 0.1, 0.2])
    >>> NavierStokes(preset="decaying", frame_dt=0.1)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: unknown navier-stokes setting(s) ['frame_dt'] for preset 'decaying'; valid: preset, ...
    """

    version = "1"

    def __init__(self, preset: str = "forced", dtype: str = "float64", **settings):
        if preset not in PRESETS:
            raise SciMLError(f"unknown navier-stokes preset {preset!r}; choose one of {sorted(PRESETS)}")
        if dtype not in _DTYPES:
            raise SciMLError(f"navier-stokes dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        signature = inspect.signature(PRESETS[preset])
        unknown = sorted(set(settings) - set(signature.parameters))
        if unknown:
            raise SciMLError(f"unknown navier-stokes setting(s) {unknown} for preset {preset!r}; valid: preset, "
                             f"dtype, {', '.join(signature.parameters)}")
        bound = signature.bind(**settings)
        bound.apply_defaults()
        self.preset, self.dtype, self.settings = preset, dtype, dict(bound.arguments)
        self.config = PRESETS[preset](**settings)

    def parameters(self) -> dict:
        """``preset``, ``dtype`` and every keyword of the preset (defaults filled in)."""
        return {"preset": self.preset, "dtype": self.dtype, **self.settings}

    def coords(self) -> dict[str, np.ndarray]:
        """Frame times and the stored grid's nodes ``x_j = y_j = j / m``."""
        warmup_steps, steps_per_frame = self.config.steps()
        m = self.config.store_resolution
        time = self.config.dt * (warmup_steps + steps_per_frame * np.arange(self.config.n_frames))
        return {"time": time, "x": np.arange(m) / m, "y": np.arange(m) / m}

    def metadata(self) -> dict:
        """What :func:`vorticity_residual` needs (see Notes), the config and the descriptions."""
        config = self.config
        forcing = _stored_forcing(config)
        return {"frame_dt": config.frame_dt, "nu": config.nu, "drag": config.drag, "t0": config.warmup_time,
                "forcing": None if forcing is None else forcing.tolist(),
                "forcing_formula": _FORCING_FORMULAS[config.forcing].format(amplitude=config.forcing_amplitude),
                "config": config.as_dict(), **_description(config)}

    def simulate(self, seeds, device=None) -> dict:
        """``{"w", "psi"}``, each ``(len(seeds), n_frames, m, m)``; sample ``i`` from ``default_rng(seeds[i])``.

        Runs on ``device`` (default: torch's, the CPU). A time step over the CFL limit for
        any sample of the batch is refused before its first step; a diverging sample raises
        :class:`~sciml.errors.SimulationDiverged` naming it (its index in this batch, its
        seed) and the step.
        """
        seeds = [int(s) for s in seeds]
        m = self.config.store_resolution
        if not seeds:
            return {name: np.zeros((0, self.config.n_frames, m, m)) for name in ("w", "psi")}

        def label(b: int) -> str:
            return f"sample {b} of this batch (seed {seeds[b]})"

        w0 = _initial_batch(self.config, seeds, device, _DTYPES[self.dtype])
        _refuse_unstable(self.config, max_velocity(_dealiased(w0)), label)
        out = _integrate(self.config, w0, label)
        return {name: out[name].cpu().numpy() for name in ("w", "psi")}


def residual_settings(metadata: dict) -> dict:
    """The keywords of :func:`vorticity_residual` for a trajectory file's data, from its metadata alone.

    ``frame_dt``, ``nu``, ``drag`` and ``forcing`` (a float64 ``(m, m)`` tensor, or None).

    Examples
    --------
    >>> from sciml.datasets.navier_stokes import NavierStokes, residual_settings
    >>> settings = residual_settings(NavierStokes(resolution=16, store_resolution=8).metadata())
    >>> settings["frame_dt"], settings["nu"], tuple(settings["forcing"].shape)
    (1.0, 0.001, (8, 8))
    """
    missing = [key for key in ("frame_dt", "nu", "drag", "forcing") if key not in metadata]
    if missing:
        raise SciMLError(f"metadata lacks {missing}: pass the metadata of a navier-stokes trajectory file "
                         "(read_trajectories(path).metadata)")
    forcing = metadata["forcing"]
    return {"frame_dt": float(metadata["frame_dt"]), "nu": float(metadata["nu"]), "drag": float(metadata["drag"]),
            "forcing": None if forcing is None else torch.tensor(forcing, dtype=torch.float64)}


# ----------------------------------------------------------------------------- residual and constraint


def _trajectory(w, name: str = "trajectory") -> torch.Tensor:
    w = torch.as_tensor(w)
    if not w.is_floating_point() or w.ndim < 3 or w.shape[-1] != w.shape[-2] or w.shape[-3] < 3:
        raise SciMLError(f"{name} must be a real (..., T, n, n) tensor with T >= 3 frames on a square grid, "
                         f"got shape {tuple(w.shape)} of dtype {w.dtype}")
    return w


def _padded_size(n: int) -> int:
    """Smallest even grid > 3n/2: a product of two fields with modes |k| <= n/2 is alias-free there."""
    return 2 * (3 * n // 4 + 1)


def vorticity_residual(w, *, frame_dt: float, nu: float, forcing=None, drag: float = 0.0) -> torch.Tensor:
    """The residual ``R = w_t + u . grad w - nu Lap w + mu w - f`` of trajectories ``w (..., T, n, n)``, float64.

    Follows Spectral-Refiner (Cao et al., ICLR 2025; ``update_residual`` in its ``torch-cfd``
    code): every spatial term is spectral, the velocity comes from the stream function
    ``-Lap psi = w``, and the residual is meant to be measured in a negative Sobolev norm
    (:func:`~sciml.datasets.periodic_spectral.negative_sobolev_norm`, their ``s = 1``).
    Departures: ``w_t`` is the second-order centred difference of the stored frames
    (second-order one-sided at the first and last frame, :func:`torch.gradient` with
    ``edge_order=2``) rather than an extra solver step, so a trajectory of the exact
    solution has residual ``O(frame_dt^2)``; the product ``u . grad w`` is formed alias-free
    on a 3/2-padded grid and restricted to the ``n x n`` modes instead of truncated by the
    2/3 mask. Differentiable with autograd (the Spectral-Refiner fine-tunes through it).

    Parameters
    ----------
    w : torch.Tensor or array_like
        Vorticity frames, ``T >= 3``, equally spaced by ``frame_dt``.
    frame_dt, nu, drag : float
        Time between frames, viscosity, linear drag.
    forcing : array_like, optional
        ``f``, ``(n, n)`` or broadcastable to ``w`` without its time axis, e.g. ``(B, n, n)``.

    Returns
    -------
    torch.Tensor
        float64 ``R`` of the shape of ``w``.

    Examples
    --------
    >>> import math, torch
    >>> from sciml.datasets.navier_stokes import vorticity_residual
    >>> x, t = torch.arange(16, dtype=torch.float64) / 16, 0.01 * torch.arange(5, dtype=torch.float64)
    >>> shape = torch.sin(2 * math.pi * x)[:, None] * torch.sin(2 * math.pi * x)[None, :]
    >>> w = torch.exp(-0.01 * 8 * math.pi**2 * t)[None, :, None, None] * shape   # Taylor-Green, nu = 0.01
    >>> r = vorticity_residual(w, frame_dt=0.01, nu=0.01)
    >>> bool(r.abs().max() < 1e-4 * w.abs().max())
    True
    """
    w = _trajectory(w, "vorticity trajectory").to(torch.float64)
    frame_dt = _number("frame_dt", frame_dt)
    nu = _number("nu", nu, strict=False)
    drag = _number("drag", drag, strict=False)
    n = w.shape[-1]
    shape, kw = (n, n), dict(device=w.device, dtype=torch.float64)
    ikx, iky = derivative_symbols(shape, **kw)
    c = rfft(w)
    psi = inverse_laplacian_symbol(shape, **kw) * c  # = -psi_hat
    factors = irfft(torch.stack([-iky * psi, ikx * psi, ikx * c, iky * c]), shape)
    u, v, wx, wy = resample(factors, (_padded_size(n),) * 2)
    advection = resample(u * wx + v * wy, shape)
    w_t = torch.gradient(w, spacing=frame_dt, dim=-3, edge_order=2)[0]
    residual = w_t + advection - nu * irfft(laplacian_symbol(shape, **kw) * c, shape) + drag * w
    if forcing is not None:
        f = torch.as_tensor(forcing).to(**kw)
        if f.shape[-2:] != shape:
            raise SciMLError(f"forcing has grid {tuple(f.shape[-2:])} but the trajectory has {shape}; "
                             "give f on the same grid")
        residual = residual - f.unsqueeze(-3)
    return residual


class NavierStokesConstraint(PDEConstraint):
    """The vorticity equation on a ``(t, x, y)`` grid of ``n_frames x n x n`` as a :class:`PDEConstraint`.

    Derivatives (all linear in ``w``, applied to each basis function): ``w``, ``w_t``
    (centred in time, second-order one-sided at the ends), and the spectral ``w_x``, ``w_y``,
    ``lap_w`` and ``psi_x``, ``psi_y`` of the stream function ``-Lap psi = w``. The pointwise
    residual is ``w_t + psi_y w_x - psi_x w_y - nu lap_w + drag w - f`` (the product taken
    at the grid points, as collocation does). The condition is the initial frame:
    ``w(0, x) = data["initial"] (B, n, n)``. Used by the hard-constraint layer of
    Chalapathi, Du & Krishnapriyan (ICLR 2024) on the Navier-Stokes data of this module.

    Parameters
    ----------
    n_frames, resolution : int
        Grid ``(n_frames, resolution, resolution)`` on ``[t0, t0 + (n_frames - 1) frame_dt] x [0, 1)^2``.
    frame_dt, nu, drag : float
        Time between frames, viscosity, linear drag.
    forcing : array_like, optional
        ``f (n, n)``.

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.navier_stokes import NavierStokesConstraint, fno_forcing
    >>> c = NavierStokesConstraint(n_frames=4, resolution=8, frame_dt=0.1, nu=1e-3, forcing=fno_forcing(8))
    >>> c.grid_shape, c.spacing, int(c.condition_mask().sum())
    ((4, 8, 8), (0.1, 0.125, 0.125), 64)
    """

    derivative_names = ("w", "w_t", "w_x", "w_y", "lap_w", "psi_x", "psi_y")

    def __init__(self, n_frames: int, resolution: int, frame_dt: float, nu: float, forcing=None, drag: float = 0.0):
        n_frames = _count("n_frames", n_frames, minimum=3)
        n = _count("resolution", resolution, minimum=4)
        super().__init__((n_frames, n, n), (_number("frame_dt", frame_dt), 1.0 / n, 1.0 / n))
        self.nu = _number("nu", nu, strict=False)
        self.drag = _number("drag", drag, strict=False)
        self.forcing = None if forcing is None else _square_fields(forcing, "forcing", batched=False)
        if self.forcing is not None and tuple(self.forcing.shape) != (n, n):
            raise SciMLError(f"forcing has grid {tuple(self.forcing.shape)} but the constraint grid is {(n, n)}")

    def derivatives(self, fields: torch.Tensor) -> dict[str, torch.Tensor]:
        if tuple(fields.shape[-3:]) != self.grid_shape:
            raise SciMLError(f"fields of shape {tuple(fields.shape)} do not end in the constraint grid "
                             f"{list(self.grid_shape)}: pass (..., n_frames, n, n)")
        shape, kw = self.grid_shape[1:], dict(device=fields.device, dtype=fields.dtype)
        ikx, iky = derivative_symbols(shape, **kw)
        c = rfft(fields)
        psi_hat = -inverse_laplacian_symbol(shape, **kw) * c
        lap = laplacian_symbol(shape, **kw)
        spectral = irfft(torch.stack([ikx * c, iky * c, lap * c, ikx * psi_hat, iky * psi_hat]), shape)
        w_t = torch.gradient(fields, spacing=self.spacing[0], dim=-3, edge_order=2)[0]
        return {"w": fields, "w_t": w_t, **dict(zip(("w_x", "w_y", "lap_w", "psi_x", "psi_y"), spectral))}

    def pde_residual(self, values, data, index):
        residual = (values["w_t"] + values["psi_y"] * values["w_x"] - values["psi_x"] * values["w_y"]
                    - self.nu * values["lap_w"] + self.drag * values["w"])
        if self.forcing is not None:
            residual = residual - self.forcing.to(residual)[index[:, 1], index[:, 2]]
        return residual

    def condition_mask(self) -> torch.Tensor:
        mask = torch.zeros(self.grid_shape, dtype=torch.bool)
        mask[0] = True
        return mask

    def condition_residual(self, values, data, index):
        if "initial" not in data:
            raise SciMLError("NavierStokesConstraint needs data['initial'], the initial vorticity (B, n, n)")
        w = values["w"]
        initial = torch.as_tensor(data["initial"]).to(w)[:, index[:, 1], index[:, 2]]
        return w - initial.reshape(initial.shape[0], *([1] * (w.ndim - 2)), initial.shape[-1])
