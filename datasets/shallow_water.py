"""Nonlinear shallow-water equations on a periodic box: a batched finite-volume solver in torch.

The conservative variables U = (h, h u_1, ..., h u_d) of depth h and velocity u obey

    dh/dt + div(h u) = 0,
    d(h u_j)/dt + div(h u_j u) + d_j (g h^2 / 2) = S_j,

on a periodic box with flat bottom, gravity g and, in 2-D, the Coriolis source
S = (f h v, -f h u) of an f-plane. The scheme is second-order MUSCL (LeVeque 2002,
ch. 6 and 13): the primitive variables (h, u) are reconstructed linearly in each cell with
a minmod or monotonized-central (MC, van Leer 1977) limited slope, each face gets the
Rusanov (local Lax-Friedrichs; Rusanov 1961) or HLL flux (Harten, Lax & van Leer 1983, with
the wave-speed bounds of Davis 1988), and time advances with the two-stage strong-stability-
preserving Runge-Kutta method (Heun; Gottlieb, Shu & Tadmor 2001). The code is
dimension-generic and batched over samples, and runs on whatever device the input is on.

Time steps. The signal rate of a sample is
r = |f| + sum_i (max_cells |u_i| + max_cells sqrt(g h)) / dx_i, and a step dt has CFL
number dt r. The limited face values of h and u lie between neighbouring cell values, so
r bounds the wave speeds |u_i| + sqrt(g h) the fluxes see. :data:`CFL_LIMIT` = 1/2 is the CFL number up to which a
forward-Euler MUSCL step with a minmod or MC slope is TVD for scalar 1-D conservation
laws (each SSP-RK2 stage is such a step), and the usual bound under which MUSCL schemes
with positive face depths keep the depth positive (Perthame & Shu 1996); a given ``dt``
above it is refused before any step, and adaptive steps use ``cfl`` / r, shortened so
that they land exactly on the frame times. Each sample takes its own steps, so a
trajectory does not depend on the other samples in its batch. A non-finite state, a depth h <= 0, a rate that grows more
than ``blowup_factor`` times its initial value, or a fixed ``dt`` whose CFL number
grows past the limit stops the run with a :class:`~sciml.errors.SimulationDiverged` that names
the sample and the step; nothing is returned for a diverged run.

Why primitive variables: with them the face velocity is bounded by the neighbouring cell
velocities, which is what makes r a bound for the fluxes (reconstructing h u can give
large face velocities where h is small). A lake at rest (constant h, u = 0)
gives equal fluxes on every face and stays at rest exactly; mass and, without Coriolis,
momentum are conserved to rounding because the fluxes telescope on the periodic grid.

The benchmark preset (:class:`ShallowWaterConfig`, :func:`generate_trajectories` in memory,
:class:`ShallowWater` for ``sciml generate shallow-water`` through :func:`sciml.simulate.simulate_dataset`)
follows PDEArena's ShallowWater-2D (Gupta & Brandstetter, "Towards Multi-spatiotemporal-
scale Generalized PDE Modeling", TMLR 2023), also used by SineNet (Zhang et al., ICLR
2024), in spirit: random initial states evolved by the nonlinear shallow-water equations,
stored as frames at a fixed interval. Departures: PDEArena integrates the spherical
equations with the spectral model SpeedyWeather.jl (T62, a 192 x 96 grid, 20 simulated
days) and stores pressure and vorticity; here the domain is the periodic plane in
non-dimensional units, the solver is a finite-volume scheme that captures shocks, and
depth h and velocity (u, v) are stored.

References: R. J. LeVeque, *Finite Volume Methods for Hyperbolic Problems*, Cambridge
University Press, 2002. V. V. Rusanov, USSR Comput. Math. Math. Phys. 1 (1961) 267-279.
A. Harten, P. D. Lax, B. van Leer, SIAM Review 25 (1983) 35-61. S. F. Davis, SIAM J. Sci.
Stat. Comput. 9 (1988) 445-473. B. van Leer, J. Comput. Phys. 23 (1977) 276-299.
S. Gottlieb, C.-W. Shu, E. Tadmor, SIAM Review 43 (2001) 89-112. B. Perthame, C.-W. Shu,
Numer. Math. 73 (1996) 119-130.

Examples
--------
>>> import torch
>>> from sciml.datasets.shallow_water import simulate_shallow_water
>>> x = (torch.arange(16, dtype=torch.float64) + 0.5) / 16
>>> h = 1 + 0.1 * torch.exp(-((x[:, None] - 0.5) ** 2 + (x[None, :] - 0.5) ** 2) / 0.01)
>>> state = torch.stack([h, 0 * h, 0 * h])[None]          # (batch, (h, hu, hv), x, y)
>>> frames, steps = simulate_shallow_water(state, [0.0, 0.1], spacing=1 / 16)
>>> frames.shape, bool(abs(frames[0, 1, 0].sum() - h.sum()) < 1e-12)
(torch.Size([1, 2, 3, 16, 16]), True)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import torch

from sciml.dataset_file import sample_seed
from sciml.errors import SciMLError, SimulationDiverged, UnknownNameError

from .periodic_spectral import gradient, periodic_gaussian_random_field
from .problem import SPATIAL_DIMS, check_number
from .trajectory_generator import TrajectoryGenerator

__all__ = [
    "CFL_LIMIT",
    "FLUXES",
    "LIMITERS",
    "ShallowWater",
    "ShallowWaterConfig",
    "check_initial_state",
    "generate_trajectories",
    "initial_state",
    "shallow_water_rhs",
    "signal_rate",
    "simulate_shallow_water",
]

CFL_LIMIT = 0.5
"""Largest CFL number dt * r (see :func:`signal_rate`) the scheme is run at."""

VELOCITY_NAMES = ("u", "v", "w")
GENERATOR_VERSION = 2  # 2: the random-field initial states come from periodic_spectral's GRF sampler


# ----------------------------------------------------------------------------- limiters

def _minmod(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Slope (times dx) minmod(a, b): the smaller one-sided difference, 0 at extrema."""
    return 0.5 * (torch.sign(backward) + torch.sign(forward)) * torch.minimum(backward.abs(), forward.abs())


def _monotonized_central(backward: torch.Tensor, forward: torch.Tensor) -> torch.Tensor:
    """Slope (times dx) minmod((a + b) / 2, 2 a, 2 b) of van Leer's MC limiter."""
    magnitude = torch.minimum(0.5 * (backward + forward).abs(), 2 * torch.minimum(backward.abs(), forward.abs()))
    return 0.5 * (torch.sign(backward) + torch.sign(forward)) * magnitude


LIMITERS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "minmod": _minmod,
    "mc": _monotonized_central,
}
"""Slope limiters by name: limited slope (times dx) from the backward and forward differences."""


# ----------------------------------------------------------------------------- fluxes

def _conservative(primitive: torch.Tensor) -> torch.Tensor:
    """(h, u_1..u_d) -> (h, h u_1..h u_d) along channel dim 1."""
    depth = primitive[:, :1]
    return torch.cat([depth, depth * primitive[:, 1:]], dim=1)


def _physical_flux(primitive: torch.Tensor, axis: int, gravity: float) -> torch.Tensor:
    """Flux of U along ``axis``: (h u_a, h u_a u_j + delta_aj g h^2 / 2)."""
    depth = primitive[:, :1]
    mass = depth * primitive[:, 1 + axis:2 + axis]
    momentum = mass * primitive[:, 1:]
    pressure = 0.5 * gravity * depth * depth
    return torch.cat([mass, momentum[:, :axis], momentum[:, axis:axis + 1] + pressure, momentum[:, axis + 1:]], dim=1)


def _rusanov_flux(left: torch.Tensor, right: torch.Tensor, axis: int, gravity: float) -> torch.Tensor:
    """Rusanov: mean of the two fluxes minus (a / 2) (U_R - U_L), a the larger |u_a| + c."""
    speed = torch.maximum(left[:, 1 + axis:2 + axis].abs() + torch.sqrt(gravity * left[:, :1]),
                          right[:, 1 + axis:2 + axis].abs() + torch.sqrt(gravity * right[:, :1]))
    mean_flux = 0.5 * (_physical_flux(left, axis, gravity) + _physical_flux(right, axis, gravity))
    return mean_flux - 0.5 * speed * (_conservative(right) - _conservative(left))


def _hll_flux(left: torch.Tensor, right: torch.Tensor, axis: int, gravity: float) -> torch.Tensor:
    """HLL with Davis' bounds s_L = min(u_L - c_L, u_R - c_R), s_R = max(u_L + c_L, u_R + c_R).

    Written with s_L^- = min(s_L, 0) and s_R^+ = max(s_R, 0), which gives F_L for
    supersonic flow to the right, F_R to the left and the HLL average otherwise.
    """
    normal_left, normal_right = left[:, 1 + axis:2 + axis], right[:, 1 + axis:2 + axis]
    celerity_left, celerity_right = torch.sqrt(gravity * left[:, :1]), torch.sqrt(gravity * right[:, :1])
    slowest = torch.clamp(torch.minimum(normal_left - celerity_left, normal_right - celerity_right), max=0.0)
    fastest = torch.clamp(torch.maximum(normal_left + celerity_left, normal_right + celerity_right), min=0.0)
    flux_left, flux_right = _physical_flux(left, axis, gravity), _physical_flux(right, axis, gravity)
    jump = _conservative(right) - _conservative(left)
    return (fastest * flux_left - slowest * flux_right + slowest * fastest * jump) / (fastest - slowest)


FLUXES: dict[str, Callable[..., torch.Tensor]] = {"rusanov": _rusanov_flux, "hll": _hll_flux}
"""Numerical fluxes by name: ``flux(left, right, axis, gravity)`` on primitive face states."""


def _pick(kind: str, name, table: dict):
    if name not in table:
        raise UnknownNameError(f"unknown shallow-water {kind} {name!r}; choose one of {sorted(table)}")
    return table[name]


# ----------------------------------------------------------------------------- right-hand side

def _spacing(spacing, dim: int) -> tuple[float, ...]:
    values = (spacing,) * dim if isinstance(spacing, (int, float, np.integer, np.floating)) else tuple(spacing)
    if len(values) != dim:
        raise SciMLError(f"shallow-water spacing needs one value per axis ({dim}), got {spacing!r}")
    return tuple(check_number("shallow-water", "spacing", value, positive=True) for value in values)


def shallow_water_rhs(state: torch.Tensor, spacing, gravity: float, coriolis: float = 0.0,
                      limiter: str = "mc", flux: str = "hll") -> torch.Tensor:
    """dU/dt of the MUSCL finite-volume semi-discretisation on a periodic grid.

    For every axis the primitive variables get limited slopes, the faces get the
    numerical flux of their two reconstructed states, and the flux difference over each
    cell is divided by the cell width (LeVeque 2002, ch. 6); in 2-D the Coriolis source
    (0, f h v, -f h u) is added pointwise.

    Parameters
    ----------
    state : torch.Tensor
        ``(batch, 1 + d, *grid)``: depth h > 0 and momenta h u_1..h u_d per cell.
    spacing : float or sequence of float
        Cell widths, one for all axes or one per axis.
    gravity : float
        Gravitational acceleration g.
    coriolis : float
        Coriolis parameter f (2-D only).
    limiter : {"mc", "minmod"}
    flux : {"hll", "rusanov"}

    Returns
    -------
    torch.Tensor
        Same shape, dtype and device as ``state``.

    Examples
    --------
    >>> import torch
    >>> lake = torch.ones(2, 3, 8, 8, dtype=torch.float64) * torch.tensor([2.0, 0.0, 0.0]).view(1, 3, 1, 1)
    >>> bool((shallow_water_rhs(lake, 1 / 8, gravity=9.81, coriolis=1.0) == 0).all())
    True
    """
    dim = state.ndim - 2
    widths = _spacing(spacing, dim)
    limit = _pick("limiter", limiter, LIMITERS)
    numerical_flux = _pick("flux", flux, FLUXES)
    if coriolis and dim != 2:
        raise SciMLError(f"a Coriolis parameter needs a 2-D shallow-water state, got {dim}-D; set coriolis=0")
    primitive = torch.cat([state[:, :1], state[:, 1:] / state[:, :1]], dim=1)
    tendency = torch.zeros_like(state)
    for axis in range(dim):
        grid_dim = 2 + axis
        backward = primitive - primitive.roll(1, grid_dim)          # q_i - q_{i-1}
        half_slope = 0.5 * limit(backward, backward.roll(-1, grid_dim))
        left = primitive + half_slope                              # left state of face i + 1/2
        right = (primitive - half_slope).roll(-1, grid_dim)        # right state of face i + 1/2
        face_flux = numerical_flux(left, right, axis, gravity)
        tendency = tendency - (face_flux - face_flux.roll(1, grid_dim)) / widths[axis]
    if coriolis:
        tendency = tendency + coriolis * torch.cat([torch.zeros_like(state[:, :1]), state[:, 2:3], -state[:, 1:2]], dim=1)
    return tendency


def signal_rate(state: torch.Tensor, spacing, gravity: float, coriolis: float = 0.0) -> torch.Tensor:
    """Per-sample rate r = |f| + sum_i (max |u_i| + max sqrt(g h)) / dx_i; dt r is the CFL number.

    Examples
    --------
    >>> import torch
    >>> state = torch.zeros(1, 3, 4, 4, dtype=torch.float64); state[:, 0] = 4.0
    >>> signal_rate(state, 0.5, gravity=1.0)          # 2 * sqrt(4) / 0.5
    tensor([8.], dtype=torch.float64)
    """
    dim = state.ndim - 2
    widths = _spacing(spacing, dim)
    grid_dims = tuple(range(1, dim + 1))
    celerity = torch.sqrt(gravity * state[:, 0].amax(dim=grid_dims))
    rate = torch.full(state.shape[:1], abs(float(coriolis)), dtype=state.dtype, device=state.device)
    for axis in range(dim):
        speed = (state[:, 1 + axis] / state[:, 0]).abs().amax(dim=grid_dims) + celerity
        rate = rate + speed / widths[axis]
    return rate


def _ssp_rk2_step(state: torch.Tensor, dt: torch.Tensor, rhs: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Heun / SSP-RK2: U1 = U + dt L(U), U_new = (U + U1 + dt L(U1)) / 2, with per-sample dt."""
    dt = dt.view(-1, *(1,) * (state.ndim - 1))
    stage = state + dt * rhs(state)
    return 0.5 * (state + (stage + dt * rhs(stage)))


# ----------------------------------------------------------------------------- input checks

def check_initial_state(state, periodic_jump_ratio: float = 10.0) -> torch.Tensor:
    """``state`` as a float tensor if it is a valid periodic shallow-water state, else a one-line error.

    A valid state has shape ``(batch, 1 + d, *grid)`` with d in 1..3, is finite, has depth
    h > 0 in every cell (the scheme has no wetting and drying) and is periodic-compatible:
    for every sample, variable and axis the largest jump across the periodic seam (last
    cell to first) is at most ``periodic_jump_ratio`` times the largest jump between
    interior neighbours along that axis (plus rounding, 1e-12 of the variable's size). A
    smooth periodic field, or one with interior discontinuities, passes; a ramp or a
    field sampled on a non-periodic box fails, since there the seam is one jump of the
    size of the whole variation while the interior steps shrink with the cell width.

    Examples
    --------
    >>> import torch
    >>> x = (torch.arange(32, dtype=torch.float64) + 0.5) / 32
    >>> ramp = torch.stack([1 + x, 0 * x])[None]          # 1-D: (batch, (h, hu), x)
    >>> check_initial_state(ramp)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: initial shallow-water state is not periodic: sample 0, variable h, axis x jumps by 0.969 across the periodic boundary but at most 0.0312 between interior neighbours (ratio 31 > 10); give a periodic field or raise periodic_jump_ratio
    """
    if not isinstance(state, torch.Tensor):
        try:
            state = torch.as_tensor(np.asarray(state, dtype=np.float64))
        except (TypeError, ValueError):
            raise SciMLError(f"initial shallow-water state must be a numeric array, got {type(state).__name__}") from None
    if not state.is_floating_point():
        state = state.to(torch.float64)
    dim = state.ndim - 2
    if dim not in (1, 2, 3) or state.shape[1] != 1 + dim or 0 in state.shape:
        raise SciMLError(
            f"initial shallow-water state must have shape (batch, 1 + d, *grid) with channels (h, hu[, hv[, hw]]) "
            f"and d in 1..3, got shape {tuple(state.shape)}"
        )
    if not bool(torch.isfinite(state).all()):
        raise SciMLError("initial shallow-water state has NaN or infinite values; give finite fields")
    min_depth = state[:, 0].flatten(1).amin(dim=1)
    if bool((min_depth <= 0).any()):
        sample = int(torch.nonzero(min_depth <= 0)[0, 0])
        raise SciMLError(
            f"initial depth h must be > 0 in every cell (no wetting and drying), sample {sample} has min h = "
            f"{float(min_depth[sample]):.3g}; raise the mean depth or lower the perturbation"
        )
    ratio = check_number("shallow-water", "periodic_jump_ratio", periodic_jump_ratio, positive=True)
    names = ("h",) + tuple(f"h{name}" for name in VELOCITY_NAMES[:dim])
    for axis in range(dim):
        if state.shape[2 + axis] < 3:
            continue
        seam = _channel_max((state.select(2 + axis, 0) - state.select(2 + axis, -1)).abs())
        interior = _channel_max(state.diff(dim=2 + axis).abs())
        size = _channel_max(state.abs())
        bad = seam > ratio * interior + 1e-12 * size
        if bool(bad.any()):
            sample, channel = (int(i) for i in torch.nonzero(bad)[0])
            jump, step = float(seam[sample, channel]), float(interior[sample, channel])
            shown_ratio = f"{jump / step:.3g}" if step > 0 else "inf"
            raise SciMLError(
                f"initial shallow-water state is not periodic: sample {sample}, variable {names[channel]}, axis "
                f"{SPATIAL_DIMS[axis]} jumps by {jump:.3g} across the periodic boundary but at most {step:.3g} "
                f"between interior neighbours (ratio {shown_ratio} > {ratio:g}); give a periodic field or raise "
                f"periodic_jump_ratio"
            )
    return state


def _channel_max(values: torch.Tensor) -> torch.Tensor:
    """(batch, channel, ...) -> (batch, channel) maximum over the rest."""
    return values.reshape(*values.shape[:2], -1).amax(dim=2)


def _frame_times(frame_times) -> list[float]:
    try:
        times = [float(t) for t in np.atleast_1d(np.asarray(frame_times, dtype=np.float64))]
    except (TypeError, ValueError):
        times = []
    if not times or not all(math.isfinite(t) for t in times) or times[0] < 0 or any(
            b <= a for a, b in zip(times, times[1:])):
        raise SciMLError(f"shallow-water frame_times must be a non-empty increasing sequence of finite times >= 0, "
                         f"got {frame_times!r}")
    return times


def _fixed_step_counts(times: list[float], dt: float) -> list[int]:
    """Steps of size ``dt`` between consecutive frames (from t = 0); each gap must be a multiple of dt."""
    counts = []
    for start, end in zip([0.0] + times[:-1], times):
        count = round((end - start) / dt)
        if abs(count * dt - (end - start)) > 1e-9 * max(end - start, dt):
            raise SciMLError(
                f"the frame gap {end - start:g} (from t = {start:g} to {end:g}) is not a multiple of dt = {dt:g}; "
                f"choose dt = gap / k for an integer k, e.g. {(end - start) / max(1, math.ceil((end - start) / dt)):.6g}"
            )
        counts.append(count)
    return counts


# ----------------------------------------------------------------------------- time integration

def simulate_shallow_water(
    initial,
    frame_times: Sequence[float],
    spacing=1.0,
    *,
    gravity: float = 1.0,
    coriolis: float = 0.0,
    cfl: float = 0.4,
    dt: float | None = None,
    limiter: str = "mc",
    flux: str = "hll",
    blowup_factor: float = 100.0,
    periodic_jump_ratio: float = 10.0,
    sample_ids: Sequence[int | str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Evolve a batch of periodic shallow-water states and record them at ``frame_times``.

    Runs the MUSCL / SSP-RK2 scheme of the module docstring from t = 0, on the device and
    in the dtype of ``initial`` (numpy input becomes a float64 CPU tensor).

    Parameters
    ----------
    initial : torch.Tensor or array_like
        ``(batch, 1 + d, *grid)`` conservative state (h, h u_1, ..., h u_d), checked by
        :func:`check_initial_state`.
    frame_times : sequence of float
        Increasing times >= 0 at which the state is recorded (0 records the initial state).
    spacing : float or sequence of float
        Cell widths.
    gravity, coriolis : float
        g > 0 and the f-plane Coriolis parameter (2-D only).
    cfl : float
        CFL number of adaptive steps, in (0, :data:`CFL_LIMIT`].
    dt : float, optional
        Fixed step instead; every gap between frame times must be a multiple of it, and a
        dt whose CFL number exceeds :data:`CFL_LIMIT` for any sample is refused before any
        step with the largest stable dt in the message.
    limiter : {"mc", "minmod"}
    flux : {"hll", "rusanov"}
    blowup_factor : float
        A sample whose signal rate grows past this multiple of its initial rate has blown up.
    periodic_jump_ratio : float
        Tolerance of the periodicity test of :func:`check_initial_state`.
    sample_ids : sequence of int or str, optional
        Names of the samples in error messages (default 0..batch-1): ``sample {id}``.

    Returns
    -------
    frames : torch.Tensor
        ``(batch, len(frame_times), 1 + d, *grid)`` conservative states at the frame times.
    steps : torch.Tensor
        ``(batch,)`` int64 number of steps each sample took.

    Raises
    ------
    SciMLError
        For bad input or settings, or an unstable ``dt`` (before any step).
    SimulationDiverged
        For a run that diverges (non-finite values, h <= 0, blow-up, or a fixed dt that
        becomes unstable), naming the sample, the step and the time; its ``sample`` is the
        sample's index in the batch.

    Examples
    --------
    >>> import torch
    >>> state = torch.zeros(1, 3, 8, 8, dtype=torch.float64); state[:, 0] = 1.0
    >>> simulate_shallow_water(state, [0.1], spacing=1 / 8, dt=0.1)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: time step dt=0.1 gives CFL number 1.6 > 0.5 for sample 0; the largest stable dt is 0.03125: use dt <= 0.03125 or leave dt unset for adaptive steps
    """
    state = check_initial_state(initial, periodic_jump_ratio)
    batch, dim = state.shape[0], state.ndim - 2
    widths = _spacing(spacing, dim)
    times = _frame_times(frame_times)
    gravity = check_number("shallow-water", "gravity", gravity, positive=True)
    coriolis = check_number("shallow-water", "coriolis", coriolis)
    blowup_factor = _blowup_factor(blowup_factor)
    _pick("limiter", limiter, LIMITERS)
    _pick("flux", flux, FLUXES)
    if coriolis and dim != 2:
        raise SciMLError(f"a Coriolis parameter needs a 2-D shallow-water state, got {dim}-D; set coriolis=0")
    ids = list(range(batch)) if sample_ids is None else [i if isinstance(i, str) else int(i) for i in sample_ids]
    if len(ids) != batch:
        raise SciMLError(f"sample_ids has {len(ids)} entries for a batch of {batch}; give one id per sample")

    def rhs(u: torch.Tensor) -> torch.Tensor:
        return shallow_water_rhs(u, widths, gravity, coriolis, limiter, flux)

    initial_rate = signal_rate(state, widths, gravity, coriolis).cpu().to(torch.float64)
    if dt is None:
        cfl = check_number("shallow-water", "cfl", cfl, positive=True)
        if cfl > CFL_LIMIT:
            raise SciMLError(f"shallow-water cfl={cfl:g} exceeds the stable limit {CFL_LIMIT}; use cfl <= {CFL_LIMIT}")
        step_counts = None
    else:
        dt = check_number("shallow-water", "dt", dt, positive=True)
        _refuse_unstable_dt(dt, initial_rate, ids)
        step_counts = _fixed_step_counts(times, dt)

    current, device = state.clone(), state.device
    rate = initial_rate.clone()
    time = torch.zeros(batch, dtype=torch.float64)
    steps = torch.zeros(batch, dtype=torch.int64)
    frames = []
    for frame, target in enumerate(times):
        fixed_dt = None
        if step_counts is not None and step_counts[frame]:
            fixed_dt = (target - (times[frame - 1] if frame else 0.0)) / step_counts[frame]
        active = torch.nonzero(time < target).flatten()
        while active.numel():
            remaining = target - time[active]
            if fixed_dt is None:   # the fewest equal steps of CFL number <= cfl that end on the frame time
                counts = torch.ceil(remaining * rate[active] / cfl).clamp(min=1)
                step_dt = remaining / counts
            else:
                counts = torch.round(remaining / fixed_dt).clamp(min=1)
                step_dt = torch.full_like(remaining, fixed_dt)
            on_device = active.to(device)
            advanced = _ssp_rk2_step(current[on_device], step_dt.to(device, state.dtype), rhs)
            steps[active] += 1
            rate[active] = _check_step(advanced, widths, gravity, coriolis, blowup_factor * initial_rate[active],
                                       fixed_dt, active.tolist(), [ids[i] for i in active.tolist()], steps[active],
                                       time[active] + step_dt)
            current[on_device] = advanced
            landing = counts == 1
            time[active] = torch.where(landing, torch.full_like(remaining, target), time[active] + step_dt)
            active = active[~landing]
        frames.append(current.clone())
    return torch.stack(frames, dim=1), steps


def _blowup_factor(value) -> float:
    factor = check_number("shallow-water", "blowup_factor", value, positive=True)
    if factor <= 1:
        raise SciMLError(f"shallow-water blowup_factor must be > 1 (a growth factor of the signal rate), got {value!r}")
    return factor


def _refuse_unstable_dt(dt: float, rate: torch.Tensor, ids: Sequence[int | str]) -> None:
    """A one-line SciMLError when dt times the largest per-sample signal rate exceeds CFL_LIMIT."""
    worst = int(torch.argmax(rate))
    if dt * float(rate[worst]) > CFL_LIMIT:
        largest = CFL_LIMIT / float(rate[worst])
        raise SciMLError(
            f"time step dt={dt:g} gives CFL number {dt * float(rate[worst]):.3g} > {CFL_LIMIT} for sample "
            f"{ids[worst]}; the largest stable dt is {largest:.4g}: use dt <= {largest:.4g} or leave dt unset for "
            f"adaptive steps"
        )


def _check_step(state, widths, gravity, coriolis, blowup_rate, fixed_dt, positions, ids, steps, times) -> torch.Tensor:
    """The new per-sample signal rate (CPU float64) of a just-advanced batch, or a SimulationDiverged
    naming the first sample that is non-finite, has h <= 0, has blown up or makes a fixed dt unstable
    (its ``sample`` is the sample's position in the whole batch, ``positions[i]`` for row ``i``)."""
    summary = torch.stack([torch.isfinite(state).flatten(1).all(dim=1).to(state.dtype),
                           state[:, 0].flatten(1).amin(dim=1),
                           signal_rate(state, widths, gravity, coriolis)]).cpu().to(torch.float64)  # one transfer
    finite, min_depth, rate = summary[0] == 1, summary[1], summary[2]
    positive = finite & (min_depth > 0)
    blown = positive & (rate > blowup_rate)
    unstable = positive & (rate * fixed_dt > CFL_LIMIT) if fixed_dt is not None else torch.zeros_like(blown)
    bad = ~positive | blown | unstable
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        where = f"sample {ids[i]} at step {int(steps[i])} (t = {float(times[i]):.4g})"
        if not bool(finite[i]):
            what = "NaN or infinite values"
        elif not bool(positive[i]):
            what = f"depth h <= 0 (min h = {float(min_depth[i]):.3g})"
        elif bool(blown[i]):
            what = (f"blow-up: signal rate {float(rate[i]):.3g} exceeds blowup_factor times the initial one "
                    f"({float(blowup_rate[i]):.3g}); lower the initial amplitudes, or raise blowup_factor if the growth "
                    f"is physical")
        else:
            what = (f"the fixed dt={fixed_dt:g} now has CFL number {float(rate[i]) * fixed_dt:.3g} > {CFL_LIMIT}; "
                    f"use a smaller dt or adaptive steps")
        if not bool(positive[i]):
            what += "; lower cfl or dt, or the initial amplitudes"
        raise SimulationDiverged(f"shallow-water run diverged in {where}: {what} (nothing was stored)",
                                 sample=positions[i], step=int(steps[i]), time=float(times[i]))
    return rate


# ----------------------------------------------------------------------------- benchmark preset

@dataclasses.dataclass(frozen=True)
class ShallowWaterConfig:
    """Settings of the shallow-water benchmark (:func:`generate_trajectories`); defaults are the benchmark.

    The box [0, length]^d with ``resolution`` cells per axis (an int: a square 2-D grid)
    is periodic; the fluid has background depth H = ``mean_depth`` under gravity
    ``gravity`` (non-dimensional: with the defaults the gravity-wave speed sqrt(g H) is 1
    and crosses the box in unit time), and is recorded in ``n_frames`` frames
    ``frame_interval`` apart, the first at t = 0. ``cfl``, ``dt``, ``limiter``,
    ``flux``, ``blowup_factor`` and ``coriolis`` go to :func:`simulate_shallow_water`;
    ``batch_size`` samples are integrated together (in float64) and the arrays are
    returned in ``dtype``.

    Initial depth (``height``):
      ``"bumps"``: H plus 1..``max_bumps`` periodic Gaussian bumps
      exp(-sum_i (L / pi)^2 sin^2(pi (x_i - c_i) / L) / (2 w^2)) (a Gaussian of width w
      near its centre that is smooth and exactly periodic), with uniform random centres
      c, widths w / L in ``bump_width`` and amplitudes / mean depth uniform in
      [-``bump_amplitude``, ``bump_amplitude``] (so the depth stays above
      (1 - max_bumps bump_amplitude) H > 0);
      ``"grf"``: mean depth times 1 + a periodic Gaussian random field of covariance
      proportional to (-Laplacian + tau^2)^(-alpha) (the periodic family of FNO's
      Navier-Stokes initial vorticity, alpha = 2.5, tau = 7, drawn by
      :func:`~sciml.datasets.periodic_spectral.periodic_gaussian_random_field`), without its
      mean and, unlike FNO's tau-dependent amplitude, scaled to pointwise standard deviation
      ``grf_amplitude`` at every resolution.
    Initial velocity (``velocity``): ``"rest"``; ``"grf"``, each component an independent
    periodic GRF with the same spectrum and standard deviation ``velocity_amplitude``
    sqrt(g H); or ``"geostrophic"`` (2-D, coriolis != 0): u = -(g / f) dh/dy,
    v = (g / f) dh/dx of the initial depth, by spectral derivatives, which balances
    the pressure gradient by the Coriolis force up to the advection terms and the
    scheme's truncation error (first order in the maximum norm at extrema, where the
    limiters clip).

    Examples
    --------
    >>> ShallowWaterConfig(resolution=32).grid_shape
    (32, 32)
    >>> ShallowWaterConfig(limiter="superbee")
    Traceback (most recent call last):
    ...
    sciml.errors.UnknownNameError: unknown shallow-water limiter 'superbee'; choose one of ['mc', 'minmod']
    """

    resolution: int | tuple[int, ...] = 64
    length: float = 1.0
    gravity: float = 1.0
    mean_depth: float = 1.0
    coriolis: float = 0.0
    n_frames: int = 21
    frame_interval: float = 0.05
    cfl: float = 0.4
    dt: float | None = None
    limiter: str = "mc"
    flux: str = "hll"
    height: str = "bumps"
    max_bumps: int = 3
    bump_amplitude: float = 0.3
    bump_width: tuple[float, float] = (0.05, 0.15)
    grf_alpha: float = 2.5
    grf_tau: float = 7.0
    grf_amplitude: float = 0.1
    velocity: str = "rest"
    velocity_amplitude: float = 0.1
    blowup_factor: float = 100.0
    batch_size: int = 32
    dtype: str = "float32"

    def __post_init__(self):
        what = "shallow-water"
        single = _is_int(self.resolution)
        resolution = (self.resolution,) if single else tuple(np.atleast_1d(np.asarray(self.resolution, dtype=object)))
        if not 1 <= len(resolution) <= 3 or not all(_is_int(n) and n >= 3 for n in resolution):
            raise SciMLError(f"{what} resolution must be an int >= 3 (square 2-D grid) or 1 to 3 such ints, "
                             f"got {self.resolution!r}")
        object.__setattr__(self, "resolution", int(self.resolution) if single else tuple(int(n) for n in resolution))
        for name in ("length", "gravity", "mean_depth", "frame_interval", "cfl", "grf_alpha", "grf_tau",
                     "grf_amplitude", "velocity_amplitude"):
            object.__setattr__(self, name, check_number(what, name, getattr(self, name), positive=True))
        object.__setattr__(self, "coriolis", check_number(what, "coriolis", self.coriolis))
        object.__setattr__(self, "blowup_factor", _blowup_factor(self.blowup_factor))
        object.__setattr__(self, "bump_amplitude", check_number(what, "bump_amplitude", self.bump_amplitude))
        for name in ("n_frames", "max_bumps", "batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise SciMLError(f"{what} setting {name} must be a positive integer, got {value!r}")
        if self.dt is not None:
            object.__setattr__(self, "dt", check_number(what, "dt", self.dt, positive=True))
            _fixed_step_counts([self.frame_interval], self.dt)
        if self.cfl > CFL_LIMIT:
            raise SciMLError(f"{what} cfl={self.cfl:g} exceeds the stable limit {CFL_LIMIT}; use cfl <= {CFL_LIMIT}")
        _pick("limiter", self.limiter, LIMITERS)
        _pick("flux", self.flux, FLUXES)
        _pick("height", self.height, {"bumps": None, "grf": None})
        _pick("velocity", self.velocity, {"rest": None, "grf": None, "geostrophic": None})
        _pick("dtype", self.dtype, {"float32": None, "float64": None})
        if not 0 <= self.bump_amplitude < 1 / self.max_bumps:
            raise SciMLError(f"{what} bump_amplitude must be in [0, 1 / max_bumps) = [0, {1 / self.max_bumps:.3g}) so "
                             f"the depth stays positive, got {self.bump_amplitude!r}")
        widths = tuple(self.bump_width) if isinstance(self.bump_width, (list, tuple)) else ()
        if len(widths) != 2 or not 0 < check_number(what, "bump_width", widths[0]) <= \
                check_number(what, "bump_width", widths[1]) <= 0.5:
            raise SciMLError(f"{what} bump_width must be (min, max) with 0 < min <= max <= 0.5 (fractions of the "
                             f"length), got {self.bump_width!r}")
        object.__setattr__(self, "bump_width", (float(widths[0]), float(widths[1])))
        dim = len(self.grid_shape)
        if self.coriolis and dim != 2:
            raise SciMLError(f"{what} coriolis needs a 2-D grid, got resolution {self.resolution!r}; set coriolis=0")
        if self.velocity == "geostrophic" and (dim != 2 or not self.coriolis):
            raise SciMLError(f"{what} velocity='geostrophic' needs a 2-D grid and coriolis != 0; set coriolis or "
                             f"choose velocity='rest' or 'grf'")
        if self.height == "grf" or self.velocity == "grf":
            if self.grf_alpha <= dim / 2:
                raise SciMLError(f"{what} grf_alpha={self.grf_alpha:g} must exceed d/2 = {dim / 2:g} for a field of "
                                 f"finite variance")

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Cells per axis."""
        return (self.resolution,) * 2 if isinstance(self.resolution, int) else tuple(self.resolution)

    @property
    def spacing(self) -> tuple[float, ...]:
        """Cell widths length / n per axis."""
        return tuple(self.length / n for n in self.grid_shape)

    @property
    def frame_times(self) -> list[float]:
        """Recorded times k * frame_interval, k = 0..n_frames-1."""
        return [k * self.frame_interval for k in range(self.n_frames)]

    @property
    def field_names(self) -> tuple[str, ...]:
        """Names of the returned arrays: h and one velocity per axis."""
        return ("h",) + VELOCITY_NAMES[:len(self.grid_shape)]

    def to_dict(self) -> dict:
        """JSON-ready settings (tuples as lists)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in dataclasses.asdict(self).items()}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _as_config(config) -> ShallowWaterConfig:
    if isinstance(config, ShallowWaterConfig):
        return config
    if config is None:
        return ShallowWaterConfig()
    if not isinstance(config, dict):
        raise SciMLError(f"shallow-water config must be a ShallowWaterConfig or a dict, got {type(config).__name__}")
    known = {f.name for f in dataclasses.fields(ShallowWaterConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise SciMLError(f"unknown shallow-water settings {unknown}; valid ones are {sorted(known)}")
    return ShallowWaterConfig(**config)


def _cell_centres(config: ShallowWaterConfig) -> list[np.ndarray]:
    """Cell-centre coordinates per axis, broadcastable to the grid."""
    shape = config.grid_shape
    return [((np.arange(n) + 0.5) * (config.length / n)).reshape([-1 if i == axis else 1 for i in range(len(shape))])
            for axis, n in enumerate(shape)]


def _periodic_random_field(config: ShallowWaterConfig, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean periodic GRF on the box of covariance proportional to (-Laplacian + tau^2)^(-alpha), unit
    pointwise variance: :func:`~sciml.datasets.periodic_spectral.periodic_gaussian_random_field` with
    ``tau L`` on the unit box (the same covariance up to a factor, which ``std=1`` removes), taken at the
    cell centres (the field is stationary, so its law there is the law at the nodes)."""
    return periodic_gaussian_random_field(config.grid_shape, config.grf_alpha, config.grf_tau * config.length, rng,
                                          std=1.0)


def initial_state(config: ShallowWaterConfig, rng: np.random.Generator) -> np.ndarray:
    """One random initial state ``(1 + d, *grid)`` (h, h u, ...) of the benchmark, float64.

    Examples
    --------
    >>> import numpy as np
    >>> state = initial_state(ShallowWaterConfig(resolution=16), np.random.default_rng(0))
    >>> state.shape, bool(state[0].min() > 0), bool((state[1:] == 0).all())
    ((3, 16, 16), True, True)
    """
    shape, length, depth = config.grid_shape, config.length, config.mean_depth
    dim = len(shape)
    if config.height == "bumps":
        centres = _cell_centres(config)
        height = np.full(shape, depth)
        for _ in range(int(rng.integers(1, config.max_bumps + 1))):
            centre = rng.uniform(0.0, length, size=dim)
            width = rng.uniform(*config.bump_width) * length
            amplitude = rng.uniform(-config.bump_amplitude, config.bump_amplitude) * depth
            chord = sum((length / np.pi * np.sin(np.pi * (x - c) / length)) ** 2 for x, c in zip(centres, centre))
            height = height + amplitude * np.exp(-chord / (2 * width ** 2))
    else:
        height = depth * (1.0 + config.grf_amplitude * _periodic_random_field(config, rng))
    if config.velocity == "rest":
        velocity = [np.zeros(shape) for _ in range(dim)]
    elif config.velocity == "grf":
        scale = config.velocity_amplitude * math.sqrt(config.gravity * depth)
        velocity = [scale * _periodic_random_field(config, rng) for _ in range(dim)]
    else:
        ratio = config.gravity / config.coriolis
        dh_dx, dh_dy = (derivative.numpy() / length for derivative in gradient(torch.from_numpy(height), dim=2))
        velocity = [-ratio * dh_dy, ratio * dh_dx]
    return np.stack([height] + [height * u for u in velocity])


def _device(device) -> torch.device:
    """``device``, or CUDA when available and None was given; a CUDA device without CUDA is refused."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SciMLError(f"device {str(device)!r} was asked for but CUDA is not available here; use device='cpu'")
    return device


def _initial_states(config: ShallowWaterConfig, seeds: Sequence[int]) -> np.ndarray:
    """``(len(seeds), 1 + d, *grid)`` initial states, the ``i``-th drawn from ``default_rng(seeds[i])``."""
    return np.stack([initial_state(config, np.random.default_rng(int(s))) for s in seeds])


def _simulate(config: ShallowWaterConfig, initial: np.ndarray, device: torch.device,
              sample_ids) -> tuple[dict, np.ndarray]:
    """One batch: ``({"h", "u", ...}: (b, n_frames, *grid) float64, steps (b,))``; see simulate_shallow_water."""
    batch = torch.as_tensor(initial, dtype=torch.float64, device=device)
    frames, taken = simulate_shallow_water(
        batch, config.frame_times, config.spacing, gravity=config.gravity, coriolis=config.coriolis,
        cfl=config.cfl, dt=config.dt, limiter=config.limiter, flux=config.flux,
        blowup_factor=config.blowup_factor, sample_ids=sample_ids)
    frames = frames.cpu().numpy()
    fields = {"h": frames[:, :, 0]}
    fields.update({name: frames[:, :, 1 + axis] / frames[:, :, 0] for axis, name in enumerate(config.field_names[1:])})
    return fields, taken.numpy()


def _description(config: ShallowWaterConfig) -> dict:
    """What the stored data is: equation, domain and grid, scheme (text stored with the data)."""
    return {
        "equation": ("h_t + div(h u) = 0, (h u)_t + div(h u u) + grad(g h^2 / 2) = f (h v, -h u) (2-D), flat bottom; "
                     "h is the cell average of depth, u, v the cell-averaged momenta divided by h"),
        "domain": (f"periodic box [0, {config.length:g})^{len(config.grid_shape)}, cell centres "
                   f"x_i = (i + 1/2) length / n, axes ({', '.join(SPATIAL_DIMS[:len(config.grid_shape)])}) last"),
        "scheme": (f"periodic finite volumes, MUSCL ({config.limiter} limiter on h, u) with the {config.flux} flux, "
                   f"SSP-RK2, " + (f"fixed dt={config.dt:g}" if config.dt is not None else f"adaptive dt at CFL "
                                   f"{config.cfl:g}")),
    }


def generate_trajectories(config, n_samples: int, seed: int, device=None) -> tuple[dict[str, np.ndarray], dict]:
    """Random shallow-water trajectories of the benchmark, batched over samples.

    Sample ``i`` starts from :func:`initial_state` drawn with the seed
    :func:`~sciml.dataset_file.sample_seed` ``(seed, i)`` (as :func:`sciml.simulate.simulate_dataset`
    does with :class:`ShallowWater`, which gives the same data) and takes its own adaptive (or
    the fixed) steps, so it is the same whatever ``n_samples`` and ``batch_size`` are.
    All initial states are drawn and checked (positive depth, stable ``dt``) before any
    time step; a run that diverges raises :class:`~sciml.errors.SimulationDiverged` naming the
    sample (``sample``: its index in the data set) and the step, and nothing is returned.

    Parameters
    ----------
    config : ShallowWaterConfig or dict or None
        Settings (a dict is checked for unknown keys; None is the benchmark default).
    n_samples : int
    seed : int
        Root seed.
    device : str or torch.device, optional
        Where to integrate (float64); default CUDA when available, else CPU.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        ``"h"``, ``"u"``, ``"v"`` (and ``"w"`` in 3-D), each ``(n_samples, n_frames, *grid)``
        in ``config.dtype``: cell-averaged depth and momentum / depth at the frame times.
    attrs : dict
        JSON-ready description: generator name and version, settings, root seed, number
        of samples, equation, domain, frame times, cell spacing, cell-centre coordinates
        per axis (``"x"``, ``"y"``), the steps each sample took and the scheme.

    Examples
    --------
    >>> arrays, attrs = generate_trajectories({"resolution": 16, "n_frames": 3, "frame_interval": 0.02},
    ...                                       n_samples=2, seed=0, device="cpu")
    >>> arrays["h"].shape, sorted(arrays), attrs["times"]
    ((2, 3, 16, 16), ['h', 'u', 'v'], [0.0, 0.02, 0.04])
    """
    config = _as_config(config)
    if not _is_int(n_samples) or n_samples < 1:
        raise SciMLError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not _is_int(seed) or seed < 0:
        raise SciMLError(f"seed must be a non-negative integer, got {seed!r}")
    device = _device(device)
    initial = _initial_states(config, [sample_seed(seed, i) for i in range(n_samples)])
    initial_tensor = check_initial_state(torch.from_numpy(initial))
    if config.dt is not None:   # refuse an unstable dt for any sample before integrating the first batch
        _refuse_unstable_dt(config.dt, signal_rate(initial_tensor, config.spacing, config.gravity, config.coriolis),
                            range(n_samples))
    names = config.field_names
    dtype = np.dtype(config.dtype)
    arrays = {name: np.empty((n_samples, config.n_frames, *config.grid_shape), dtype=dtype) for name in names}
    steps = np.empty(n_samples, dtype=np.int64)
    for start in range(0, n_samples, config.batch_size):
        stop = min(start + config.batch_size, n_samples)
        try:
            fields, steps[start:stop] = _simulate(config, initial[start:stop], device, range(start, stop))
        except SimulationDiverged as error:
            raise SimulationDiverged(str(error), sample=start + error.sample, step=error.step,
                                     time=error.time) from None
        for name in names:
            arrays[name][start:stop] = fields[name]
    attrs = {
        "generator": "shallow-water",
        "generator_version": GENERATOR_VERSION,
        "config": config.to_dict(),
        "root_seed": int(seed),
        "n_samples": int(n_samples),
        "fields": list(names),
        "times": config.frame_times,
        "spacing": list(config.spacing),
        **{SPATIAL_DIMS[axis]: x.ravel().tolist() for axis, x in enumerate(_cell_centres(config))},
        "n_steps": steps.tolist(),
        **_description(config),
    }
    return arrays, attrs


_DRIVER_SETTINGS = ("batch_size", "dtype")  # the driver batches; the trajectory file stores float32


class ShallowWater(TrajectoryGenerator, name="shallow-water"):
    """Shallow-water trajectories for :func:`sciml.simulate.simulate_dataset` (``sciml generate shallow-water``).

    The data of :func:`generate_trajectories`: with the same root seed,
    ``simulate_dataset(ShallowWater(**settings), n, out, seed=s)`` writes
    ``generate_trajectories(settings, n, s)`` (as float32, the file's dtype).

    Parameters
    ----------
    **settings
        The fields of :class:`ShallowWaterConfig` except ``batch_size`` and ``dtype`` (the
        driver's ``generate.batch_size`` batches, the file stores float32; the integration
        is float64); an unknown one is refused, naming the valid ones.

    Notes
    -----
    Fields ``h`` (depth) and ``u``, ``v`` (``w`` in 3-D; momentum / depth), each
    ``(b, n_frames, *grid)``. Coordinates: ``time`` the frame times ``k frame_interval``;
    ``x``, ``y`` the cell centres ``(i + 1/2) length / n`` (finite volumes: the values are
    cell averages), not grid nodes. An unstable fixed ``dt`` is refused per batch before
    its first step; a diverging sample raises :class:`~sciml.errors.SimulationDiverged`
    naming it (index in this batch, seed) and the step. The number of steps each sample took
    (``n_steps`` of :func:`generate_trajectories`) is not stored.

    Examples
    --------
    >>> from sciml.datasets.shallow_water import ShallowWater
    >>> generator = ShallowWater(resolution=8, n_frames=3, frame_interval=0.02)
    >>> sorted(generator.simulate([1, 2], device="cpu")), generator.coords()["x"][:2].tolist()
    (['h', 'u', 'v'], [0.0625, 0.1875])
    """

    version = str(GENERATOR_VERSION)

    def __init__(self, **settings):
        valid = [f.name for f in dataclasses.fields(ShallowWaterConfig) if f.name not in _DRIVER_SETTINGS]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise SciMLError(f"unknown shallow-water setting(s) {unknown}; valid: {', '.join(valid)}")
        self.config = ShallowWaterConfig(**settings)

    def parameters(self) -> dict:
        """Every setting of the config (defaults filled in) but ``batch_size`` and ``dtype``."""
        return {k: v for k, v in self.config.to_dict().items() if k not in _DRIVER_SETTINGS}

    def coords(self) -> dict[str, np.ndarray]:
        """Frame times and the cell centres per axis."""
        centres = {SPATIAL_DIMS[axis]: x.ravel() for axis, x in enumerate(_cell_centres(self.config))}
        return {"time": np.asarray(self.config.frame_times), **centres}

    def metadata(self) -> dict:
        """Gravity, Coriolis parameter, mean depth, box length, spacing, frame interval and the descriptions."""
        config = self.config
        return {"gravity": config.gravity, "coriolis": config.coriolis, "mean_depth": config.mean_depth,
                "length": config.length, "spacing": list(config.spacing), "frame_interval": config.frame_interval,
                **_description(config)}

    def simulate(self, seeds, device=None) -> dict:
        """``{"h", "u", ...}``, float64 ``(len(seeds), n_frames, *grid)``; sample ``i`` from ``default_rng(seeds[i])``.

        Runs on ``device`` (default CUDA when available, else CPU).
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            return {name: np.zeros((0, self.config.n_frames, *self.config.grid_shape))
                    for name in self.config.field_names}
        labels = [f"{b} of this batch (seed {s})" for b, s in enumerate(seeds)]
        fields, _ = _simulate(self.config, _initial_states(self.config, seeds), _device(device), labels)
        return fields
