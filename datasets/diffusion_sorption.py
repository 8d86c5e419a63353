"""1-D diffusion-sorption of PDEBench: a finite-volume generator and its physics constraint.

A dissolved contaminant ``u(t, x)`` diffuses through a porous medium and sorbs onto it
with a Freundlich isotherm (sorbed mass ``k_f u^n_f`` per unit solid mass), which slows
it by the retardation factor ``R(u)``:

    u_t = D / R(u) u_xx,   R(u) = 1 + (1 - phi) / phi rho_s k_f n_f u^(n_f - 1),

on ``x in (0, 1)``, ``t in (0, 500]``, with the solubility ``u(t, 0) = 1`` at the inlet,
the outflow condition ``u(t, 1) = -D u_x(t, 1)`` (the diffusive flux out equals ``u``)
and ``u(0, x)`` drawn from ``U(0, 0.2)``. Equivalently the total concentration
``u + (1 - phi) / phi rho_s k_f u^n_f`` (dissolved plus sorbed) obeys a conservation law
with flux ``-D u_x``. Constants ``D = 5e-4``, ``phi = 0.29``, ``rho_s = 2880``,
``k_f = 3.5e-4``, ``n_f = 0.874``, on 1024 cells and 101 frames (``dt = 5``).

Because ``n_f < 1``, ``u^(n_f - 1)`` is singular at ``u = 0``. PDEBench evaluates
``(u + 1e-6)^(n_f - 1)``; here, as in the MoE hard-constraint code, ``u`` is also
clipped at 0 first, ``(max(u, 0) + 1e-6)^(n_f - 1)``, so a slightly negative value from
a time integrator or a network gives ``R(0)`` instead of NaN.

References
----------
Takamoto et al., "PDEBench: An Extensive Benchmark for Scientific Machine Learning",
NeurIPS 2022 Datasets and Benchmarks (code: ``pdebench/data_gen/src/sim_diff_sorp.py``,
``configs/diff-sorp.yaml``). Praditia et al., "Finite Volume Neural Network: Modeling
Subsurface Contaminant Transport", ICLR 2021 workshop (the problem's origin).
Chalapathi, Du, Krishnapriyan, "Scaling Physics-Informed Hard Constraints with
Mixture-of-Experts", ICLR 2024 (code: ``neptune/pdes/diffusion_sorption.py``).

Departures from PDEBench's generator, each deliberate:

* The boundary conditions hold at the faces ``x = 0`` and ``x = 1``, to second order.
  PDEBench puts the inlet value 1 and the outflow ghost value one whole cell (not half
  a cell) from the edge centres, a first-order placement; at 1024 cells its
  discretisation's solution differs from this one by at most about 0.009 (at t = 5,
  next to the inlet) and 0.001 at t = 500.
* The outflow sign. PDEBench's code sets the ghost value ``D (u[-2] - u[-1]) / dx``,
  i.e. ``u(1) = -D u_x(1)``, which is what is implemented here; the paper and the MoE
  code write ``u(1) = +D u_x(1)``; with ``u_x(1) = u(1) / D`` that problem has a mode
  ``sinh(kappa x)`` growing like ``exp(D kappa^2 t / R)``, ``tanh(kappa) / kappa = D``,
  i.e. ``kappa ~ 1 / D`` and a growth rate ``~ 1 / (R D) ~ 600`` per unit time, so it
  cannot be the intended condition.
* Time integration by BDF with the exact sparse Jacobian (PDEBench: explicit RK45 at
  scipy's default tolerances), to ``rtol = 1e-6``.
* The initial condition. PDEBench's code draws one ``U(0, 0.2)`` value per sample and
  makes ``u(0, x)`` that constant (``initial="constant"``, the default here);
  ``initial="pointwise"`` draws every cell independently, the paper's ``u(0, x) ~
  U(0, 0.2)`` read literally. Seeds follow :func:`sciml.dataset_file.sample_seed`, so
  the samples are PDEBench's distribution, not its exact draws.
* PDEBench's config says 501 frames; its released data (``dt = 5`` in its metadata)
  and the MoE paper use 101.

Examples
--------
>>> from sciml.datasets.diffusion_sorption import generate_trajectories
>>> arrays, attrs = generate_trajectories(2, seed=0, n_cells=32, n_frames=11)
>>> arrays["u"].shape, attrs["dt"], round(float(arrays["u"][0, -1, 0]), 3)
((2, 11, 32), 50.0, 0.967)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from scipy.integrate import solve_ivp

from sciml.errors import SciMLError

from .pde_constraint import PDEConstraint
from .trajectory_generator import TrajectoryGenerator

__all__ = ["SorptionConstants", "PDEBENCH_CONSTANTS", "solve_trajectory", "boundary_fluxes",
           "initial_conditions", "generate_trajectories", "DiffusionSorption", "DiffusionSorptionConstraint"]

INITIAL_KINDS = ("constant", "pointwise")


def _number(name: str, value, low: float = 0.0, strict: bool = True) -> float:
    """``value`` as a finite float above ``low`` (or at least ``low``), else a one-line SciMLError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SciMLError(f"diffusion-sorption setting {name} must be a number, got {value!r}")
    if not math.isfinite(value) or (value <= low if strict else value < low):
        raise SciMLError(f"diffusion-sorption setting {name} must be finite and {'>' if strict else '>='} {low:g}, "
                         f"got {value!r}")
    return float(value)


def _count(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise SciMLError(f"diffusion-sorption setting {name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class SorptionConstants:
    """The physical constants of the problem; the defaults are PDEBench's.

    Parameters
    ----------
    D : float
        Diffusion coefficient (> 0).
    porosity : float
        Porosity phi, in (0, 1].
    rho_s : float
        Dry bulk density (>= 0).
    k_f : float
        Freundlich sorption coefficient (>= 0; 0 is the heat equation, ``R = 1``).
    n_f : float
        Freundlich exponent (> 0).
    solubility : float
        The inlet value ``u(t, 0)``.
    epsilon : float
        Shift that keeps ``u^(n_f - 1)`` finite at ``u = 0`` (PDEBench's 1e-6).

    Examples
    --------
    >>> c = SorptionConstants()
    >>> round(c.sorption, 4), round(float(c.retardation(np.array([0.1]))[0]), 4)
    (2.4679, 3.8829)
    """

    D: float = 5e-4
    porosity: float = 0.29
    rho_s: float = 2880.0
    k_f: float = 3.5e-4
    n_f: float = 0.874
    solubility: float = 1.0
    epsilon: float = 1e-6

    def __post_init__(self):
        for name, low, strict in (("D", 0.0, True), ("porosity", 0.0, True), ("rho_s", 0.0, False),
                                  ("k_f", 0.0, False), ("n_f", 0.0, True), ("solubility", 0.0, False),
                                  ("epsilon", 0.0, True)):
            object.__setattr__(self, name, _number(name, getattr(self, name), low, strict))
        if self.porosity > 1:
            raise SciMLError(f"diffusion-sorption setting porosity must be in (0, 1], got {self.porosity!r}")

    @classmethod
    def from_dict(cls, values: dict | None) -> "SorptionConstants":
        """Constants from a dict of overrides (unknown names are refused, listing the valid ones)."""
        values = dict(values or {})
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SciMLError(f"unknown diffusion-sorption constant {unknown[0]!r}; choose from {known}")
        return cls(**values)

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    @property
    def sorption(self) -> float:
        """``(1 - phi) / phi rho_s k_f``: sorbed mass per dissolved mass at ``u = 1``."""
        return (1.0 - self.porosity) / self.porosity * self.rho_s * self.k_f

    def _shifted(self, u):
        if isinstance(u, torch.Tensor):
            return u.clamp(min=0) + self.epsilon
        return np.clip(np.asarray(u, dtype=np.float64), 0.0, None) + self.epsilon

    def retardation(self, u):
        """``R(u) = 1 + sorption n_f (max(u, 0) + epsilon)^(n_f - 1)`` of a numpy array or torch tensor."""
        return 1.0 + self.sorption * self.n_f * self._shifted(u) ** (self.n_f - 1.0)

    def retardation_derivative(self, u: np.ndarray) -> np.ndarray:
        """``dR/du`` (0 where ``u < 0``, where ``R`` is constant)."""
        u = np.asarray(u, dtype=np.float64)
        slope = self.sorption * self.n_f * (self.n_f - 1.0) * self._shifted(u) ** (self.n_f - 2.0)
        return np.where(u > 0, slope, 0.0)

    def total_concentration(self, u):
        """Dissolved plus sorbed, ``u + sorption (max(u, 0) + epsilon)^n_f``: ``d/dt`` of it is ``R(u) u_t``
        for ``u >= 0``, so its integral changes only by the boundary fluxes."""
        return u + self.sorption * self._shifted(u) ** self.n_f


PDEBENCH_CONSTANTS = SorptionConstants()


def _face_coefficients(n_cells: int, constants: SorptionConstants) -> np.ndarray:
    """Flux per unit jump at the ``n_cells + 1`` faces: ``D / dx`` inside, ``2 D / dx`` at the inlet
    (half a cell to the face where ``u = solubility``) and ``2 D / (dx + 2 D)`` at the outlet, where
    eliminating the face value from ``u_f = -D u_x`` and ``u_x = (u_f - u[-1]) / (dx / 2)`` gives the
    outflow ``u_f = 2 D / (dx + 2 D) u[-1]``."""
    dx, D = 1.0 / n_cells, constants.D
    faces = np.full(n_cells + 1, D / dx)
    faces[0], faces[-1] = 2 * D / dx, 2 * D / (dx + 2 * D)
    return faces


def boundary_fluxes(u, constants: SorptionConstants = PDEBENCH_CONSTANTS) -> tuple[np.ndarray, np.ndarray]:
    """The scheme's inflow at ``x = 0`` and outflow at ``x = 1`` for cell values ``u (..., n_cells)``.

    Inflow ``2 D (solubility - u[0]) / dx``, outflow ``2 D / (dx + 2 D) u[-1]`` (the face value
    ``u(1)`` itself, as ``-D u_x(1) = u(1)``). With these, ``d/dt sum(total_concentration(u)) dx =
    inflow - outflow`` holds exactly for the semi-discrete system.

    Examples
    --------
    >>> inflow, outflow = boundary_fluxes(np.full(4, 0.5))
    >>> float(inflow), round(float(outflow), 6)
    (0.002, 0.001992)
    """
    u = np.asarray(u, dtype=np.float64)
    faces = _face_coefficients(u.shape[-1], constants)
    return faces[0] * (constants.solubility - u[..., 0]), faces[-1] * u[..., -1]


def _system(n_cells: int, constants: SorptionConstants) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(A, b)`` with ``A u + b`` the net inflow of every cell divided by ``dx``."""
    dx = 1.0 / n_cells
    faces = _face_coefficients(n_cells, constants)
    inner = faces[1:-1] / dx
    A = sp.diags([inner, -(faces[:-1] + faces[1:]) / dx, inner], [-1, 0, 1], format="csr")
    b = np.zeros(n_cells)
    b[0] = faces[0] * constants.solubility / dx
    return A, b


def solve_trajectory(u0, times, constants: SorptionConstants = PDEBENCH_CONSTANTS, *, rtol: float = 1e-6,
                     atol: float = 1e-9, label: str = "trajectory") -> np.ndarray:
    """The cell values ``(len(times), n_cells)`` from the cell values ``u0`` at ``times[0]``.

    Cell-centred finite volumes on ``n_cells = len(u0)`` equal cells of [0, 1], two-point
    fluxes ``-D (u[i+1] - u[i]) / dx`` and the boundary fluxes of :func:`boundary_fluxes`,
    so ``R(u_i) du_i/dt = (flux in - flux out) / dx``; integrated by scipy's BDF with the
    exact tridiagonal Jacobian ``diag(1/R) A - diag((A u + b) R' / R^2)``.

    Raises
    ------
    SciMLError
        For an initial condition that is not finite and >= 0, bad times or tolerances, and
        when the integrator fails (the message names ``label``).

    Examples
    --------
    >>> u = solve_trajectory(np.zeros(16), [0.0, 100.0])
    >>> u.shape, bool(u[1, 0] > u[1, -1] >= 0)
    ((2, 16), True)
    """
    u0 = np.asarray(u0, dtype=np.float64)
    if u0.ndim != 1 or u0.size < 1:
        raise SciMLError(f"{label}: initial condition must be a non-empty 1-D array of cell values, got shape {u0.shape}")
    bad = ~(np.isfinite(u0) & (u0 >= 0))
    if bad.any():
        raise SciMLError(f"{label}: initial condition must be finite and >= 0 (a concentration); {int(bad.sum())} "
                         f"cell(s) are not (first: {u0[np.flatnonzero(bad)[0]]!r})")
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size < 2 or not np.isfinite(times).all() or (np.diff(times) <= 0).any():
        raise SciMLError(f"{label}: times must be at least 2 finite, strictly increasing values, got {times!r}")
    rtol, atol = _number("rtol", rtol), _number("atol", atol)
    A, b = _system(u0.size, constants)

    def rhs(t, u):
        return (A @ u + b) / constants.retardation(u)

    def jacobian(t, u):
        r = constants.retardation(u)
        return (sp.diags(1.0 / r) @ A - sp.diags((A @ u + b) * constants.retardation_derivative(u) / r**2)).tocsc()

    result = solve_ivp(rhs, (times[0], times[-1]), u0, method="BDF", t_eval=times, jac=jacobian,
                       rtol=rtol, atol=atol)
    if not result.success or result.y.shape != (u0.size, times.size) or not np.isfinite(result.y).all():
        reached = result.t[-1] if result.t.size else times[0]
        raise SciMLError(f"{label}: BDF integration failed at t = {reached:g} of {times[-1]:g} ({result.message}); "
                         "nothing was stored: check the constants or loosen rtol/atol")
    return result.y.T.copy()


def initial_conditions(rng: np.random.Generator, n_samples: int, n_cells: int, initial: str = "constant",
                       high: float = 0.2) -> np.ndarray:
    """``(n_samples, n_cells)`` initial conditions from ``U(0, high)``, one value per sample or per cell.

    Examples
    --------
    >>> u0 = initial_conditions(np.random.default_rng(0), 3, 5)
    >>> u0.shape, bool((u0 == u0[:, :1]).all()), bool(((0 <= u0) & (u0 < 0.2)).all())
    ((3, 5), True, True)
    """
    if initial not in INITIAL_KINDS:
        raise SciMLError(f"diffusion-sorption initial condition {initial!r} is unknown; choose from {list(INITIAL_KINDS)}")
    high = _number("initial_max", high)
    if initial == "constant":
        return np.repeat(rng.uniform(0.0, high, (n_samples, 1)), n_cells, axis=1)
    return rng.uniform(0.0, high, (n_samples, n_cells))


def _sample(seed: int, n_cells: int, times: np.ndarray, constants: SorptionConstants, initial: str,
            initial_max: float, rtol: float, atol: float, label: str) -> np.ndarray:
    u0 = initial_conditions(np.random.default_rng(seed), 1, n_cells, initial, initial_max)[0]
    return solve_trajectory(u0, times, constants, rtol=rtol, atol=atol, label=label)


class DiffusionSorption(TrajectoryGenerator, name="diffusion-sorption"):
    """PDEBench's 1-D diffusion-sorption trajectories, one BDF solve per sample (see the module).

    Each solve at 1024 x 101 takes about 0.1-0.3 s on one CPU core (BDF, about 50 LU
    factorisations of the tridiagonal Jacobian); the samples are independent and cheap,
    so the loop runs in this process.

    Parameters
    ----------
    n_cells, n_frames : int
        Cells on [0, 1] and output frames on ``[0, t_final]`` (1024 and 101 in PDEBench).
    t_final : float
        End time (500).
    initial : {"constant", "pointwise"}
        One ``U(0, initial_max)`` value per sample (PDEBench's code) or one per cell.
    initial_max : float
        Upper end of the initial values (0.2).
    rtol, atol : float
        BDF tolerances.
    **constants
        Overrides of :class:`SorptionConstants` (``D``, ``k_f``, ...).

    Examples
    --------
    >>> generator = DiffusionSorption(n_cells=16, n_frames=3)
    >>> generator.simulate([1, 2])["u"].shape, generator.coords()["time"].tolist()
    ((2, 3, 16), [0.0, 250.0, 500.0])
    """

    version = "1"

    def __init__(self, n_cells: int = 1024, n_frames: int = 101, t_final: float = 500.0, initial: str = "constant",
                 initial_max: float = 0.2, rtol: float = 1e-6, atol: float = 1e-9, **constants):
        self.n_cells = _count("n_cells", n_cells, 1)
        self.n_frames = _count("n_frames", n_frames, 2)
        self.t_final = _number("t_final", t_final)
        if initial not in INITIAL_KINDS:
            raise SciMLError(f"diffusion-sorption initial condition {initial!r} is unknown; choose from {list(INITIAL_KINDS)}")
        self.initial = initial
        self.initial_max = _number("initial_max", initial_max)
        self.rtol, self.atol = _number("rtol", rtol), _number("atol", atol)
        self.constants = SorptionConstants.from_dict(constants)

    def parameters(self) -> dict[str, Any]:
        return {"n_cells": self.n_cells, "n_frames": self.n_frames, "t_final": self.t_final,
                "initial": self.initial, "initial_max": self.initial_max, "rtol": self.rtol, "atol": self.atol,
                **self.constants.as_dict()}

    def coords(self) -> dict[str, np.ndarray]:
        return {"time": np.linspace(0.0, self.t_final, self.n_frames),
                "x": (np.arange(self.n_cells) + 0.5) / self.n_cells}

    def metadata(self) -> dict[str, Any]:
        """The constants, spacings and where the conditions hold: what :class:`DiffusionSorptionConstraint` needs."""
        return {"constants": self.constants.as_dict(), "grid_shape": [self.n_frames, self.n_cells],
                "dt": self.t_final / (self.n_frames - 1), "dx": 1.0 / self.n_cells,
                "boundary": "u = solubility at the face x = 0; u = -D u_x at the face x = 1; data at cell centres"}

    def simulate(self, seeds: Sequence[int], device=None) -> dict:
        """``{"u": (len(seeds), n_frames, n_cells)}``; sample ``i`` from ``numpy.random.default_rng(seeds[i])``.

        ``device`` is ignored (the solves run on the CPU). A failed solve raises
        :class:`SciMLError` naming the sample and its seed; nothing of it is returned.
        """
        times = self.coords()["time"]
        u = [_sample(int(s), self.n_cells, times, self.constants, self.initial, self.initial_max, self.rtol,
                     self.atol, label=f"diffusion-sorption sample {i} of this batch (seed {int(s)})") for i, s in enumerate(seeds)]
        return {"u": np.stack(u) if u else np.zeros((0, self.n_frames, self.n_cells))}


def generate_trajectories(n_samples: int, seed: int, *, n_cells: int = 1024, n_frames: int = 101,
                          t_final: float = 500.0, initial: str = "constant", initial_max: float = 0.2,
                          constants: dict | SorptionConstants | None = None, rtol: float = 1e-6,
                          atol: float = 1e-9) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``n_samples`` trajectories ``{"u": (n, n_frames, n_cells)}`` (float64) and their attributes.

    Sample ``i`` uses the seed :func:`sciml.dataset_file.sample_seed` ``(seed, i)``, as
    :func:`sciml.simulate.simulate_dataset` does with :class:`DiffusionSorption`, so both
    give the same data. The attributes hold ``pde``, ``pde_parameters``, ``constants``,
    ``grid_shape``, the grid (``x``, cell centres; ``dx``), ``time`` and ``dt``, ``boundary``,
    ``root_seed`` and ``seeds``.

    Examples
    --------
    >>> arrays, attrs = generate_trajectories(1, seed=3, n_cells=8, n_frames=2, constants={"k_f": 0.0})
    >>> arrays["u"].shape, attrs["constants"]["k_f"], attrs["x"][:2].tolist()
    ((1, 2, 8), 0.0, [0.0625, 0.1875])
    """
    from sciml.dataset_file import sample_seed

    n_samples = _count("n_samples", n_samples, 1)
    seed = _count("seed", seed, 0)
    if isinstance(constants, SorptionConstants):
        constants = constants.as_dict()
    generator = DiffusionSorption(n_cells=n_cells, n_frames=n_frames, t_final=t_final, initial=initial,
                                  initial_max=initial_max, rtol=rtol, atol=atol, **(constants or {}))
    seeds = [sample_seed(seed, i) for i in range(n_samples)]
    coords = generator.coords()
    attrs = {"pde": DiffusionSorption.name, "pde_parameters": generator.parameters(), **generator.metadata(),
             "x": coords["x"], "time": coords["time"], "root_seed": seed, "seeds": seeds}
    return generator.simulate(seeds), attrs


def _second_derivative(fields: torch.Tensor, h: float) -> torch.Tensor:
    """Second-order ``d^2/dx^2`` along the last axis: centred inside, one-sided 4-point at the ends."""
    out = torch.empty_like(fields)
    out[..., 1:-1] = fields[..., 2:] - 2 * fields[..., 1:-1] + fields[..., :-2]
    out[..., 0] = 2 * fields[..., 0] - 5 * fields[..., 1] + 4 * fields[..., 2] - fields[..., 3]
    out[..., -1] = 2 * fields[..., -1] - 5 * fields[..., -2] + 4 * fields[..., -3] - fields[..., -4]
    return out / h**2


class DiffusionSorptionConstraint(PDEConstraint):
    """The diffusion-sorption PDE and its conditions on the data's ``(t, x)`` grid of cell centres.

    Parameters
    ----------
    grid_shape : (int, int)
        ``(n_frames, n_cells)``, at least ``(3, 4)``.
    spacing : (float, float)
        ``(dt, dx)``; the cell centres are ``x_j = (j + 1/2) dx``, so ``dx = 1 / n_cells``.
    constants : SorptionConstants
        Must be those of the data.

    Notes
    -----
    *Derivatives* (linear, second order): ``u_t`` and ``u_x`` centred, one-sided 3-point
    at the first/last frame and cell (:func:`torch.gradient`, ``edge_order=2``);
    ``u_xx`` the 3-point stencil, one-sided 4-point at the edge cells.

    *PDE residual*: ``R(u) u_t - D u_xx``, the equation multiplied through by ``R`` so
    there is no division by ``R`` and the residual is linear in ``u_t`` and ``u_xx``.
    On the data it is small once the solution is smooth in time; in the first frames
    (``dt = 5`` against a boundary layer of width ``sqrt(D t / R)`` that starts at the
    jump between ``u(0, x) < 0.2`` and the inlet value 1) the finite-difference ``u_t``
    is poor and the residual is of the order of its terms.

    *Conditions* (mask: the first frame and the first and last cell): at ``t = 0``
    ``u - data["initial"]`` (the initial condition takes the corners); for ``t > 0`` at
    the first cell ``u(t, 0) - solubility`` and at the last cell ``u(t, 1) + D u_x(t, 1)``.
    The conditions hold at the faces ``x = 0, 1``, half a cell from the centres, so the
    face values come from a Taylor step of the centre values,
    ``u(0) = u - dx/2 u_x + dx^2/8 u_xx``, ``u(1) = u + dx/2 u_x + dx^2/8 u_xx``,
    ``u_x(1) = u_x + dx/2 u_xx`` (second order; evaluating at the centres instead would
    be off by ``dx/2 u_x``, at 1024 cells as large as the ``D u_x`` term itself). The
    outflow sign is PDEBench's code's (see the module); the MoE code's residual
    ``u - D u_x`` differs from it by ``2 D u_x``.

    ``data["initial"]`` is ``(B, n_cells)``. Every condition is linear in ``u``.

    Examples
    --------
    >>> import torch
    >>> arrays, attrs = generate_trajectories(1, seed=0, n_cells=64, n_frames=11)
    >>> c = DiffusionSorptionConstraint.from_attrs(attrs)
    >>> u = torch.as_tensor(arrays["u"])
    >>> residual = c.residual_on_grid(u, {"initial": u[:, 0]})
    >>> values = {k: v.flatten(1)[:, c.condition_mask().flatten()] for k, v in c.derivatives(u).items()}
    >>> conditions = c.condition_residual(values, {"initial": u[:, 0]}, c.condition_index())
    >>> residual.shape, int(c.condition_mask().sum()), bool(conditions.abs().max() < 1e-3)
    (torch.Size([1, 11, 64]), 84, True)
    """

    derivative_names = ("u", "u_t", "u_x", "u_xx")

    def __init__(self, grid_shape: Sequence[int], spacing: Sequence[float],
                 constants: SorptionConstants = PDEBENCH_CONSTANTS):
        super().__init__(grid_shape, spacing)
        if self.ndim != 2 or self.grid_shape[0] < 3 or self.grid_shape[1] < 4:
            raise SciMLError(f"diffusion-sorption grid {list(self.grid_shape)} must be (n_frames >= 3, n_cells >= 4) "
                             "for second-order one-sided differences")
        if not isinstance(constants, SorptionConstants):
            raise SciMLError(f"constants must be a SorptionConstants, got {type(constants).__name__}")
        self.constants = constants

    @classmethod
    def from_attrs(cls, attrs: dict) -> "DiffusionSorptionConstraint":
        """The constraint of data from :func:`generate_trajectories` (its attributes) or of a trajectory
        file (its ``metadata``, :meth:`DiffusionSorption.metadata`)."""
        missing = [k for k in ("grid_shape", "constants", "dt", "dx") if k not in attrs]
        if missing:
            raise SciMLError(f"diffusion-sorption attributes lack {missing}; pass those of generate_trajectories "
                             "or the file's metadata")
        return cls(attrs["grid_shape"], (attrs["dt"], attrs["dx"]), SorptionConstants.from_dict(attrs["constants"]))

    def derivatives(self, fields: torch.Tensor) -> dict[str, torch.Tensor]:
        """``u``, ``u_t``, ``u_x``, ``u_xx`` of ``fields (..., n_frames, n_cells)`` (see Notes)."""
        if tuple(fields.shape[-2:]) != self.grid_shape:
            raise SciMLError(f"fields of shape {tuple(fields.shape)} do not end with the grid {list(self.grid_shape)}")
        dt, dx = self.spacing
        return {"u": fields,
                "u_t": torch.gradient(fields, spacing=dt, dim=-2, edge_order=2)[0],
                "u_x": torch.gradient(fields, spacing=dx, dim=-1, edge_order=2)[0],
                "u_xx": _second_derivative(fields, dx)}

    def pde_residual(self, values: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
                     index: torch.Tensor) -> torch.Tensor:
        """``R(u) u_t - D u_xx`` at the points (``index`` is not needed: no forcing)."""
        return self.constants.retardation(values["u"]) * values["u_t"] - self.constants.D * values["u_xx"]

    def condition_mask(self) -> torch.Tensor:
        mask = torch.zeros(self.grid_shape, dtype=torch.bool)
        mask[0] = True
        mask[:, 0] = True
        mask[:, -1] = True
        return mask

    def condition_residual(self, values: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
                           index: torch.Tensor) -> torch.Tensor:
        """Initial, inlet and outflow residuals at condition points ``index (Q, 2)`` (see Notes)."""
        u, u_x, u_xx = values["u"], values["u_x"], values["u_xx"]
        frame, cell = index[:, 0].to(u.device), index[:, 1].to(u.device)
        first, inlet, outlet = frame == 0, cell == 0, cell == self.grid_shape[1] - 1
        if not bool((first | inlet | outlet).all()):
            raise SciMLError("condition_residual got points off the condition mask; pass condition_index()")
        if "initial" not in data or tuple(data["initial"].shape[1:]) != (self.grid_shape[1],):
            raise SciMLError(f"data['initial'] must be (batch, {self.grid_shape[1]}): the initial condition per sample")
        initial = data["initial"].to(u)[:, cell]
        initial = initial.reshape(initial.shape[:1] + (1,) * (u.dim() - 2) + initial.shape[1:])
        h = self.spacing[1]
        at_inlet = u - h / 2 * u_x + h**2 / 8 * u_xx - self.constants.solubility
        at_outlet = (u + h / 2 * u_x + h**2 / 8 * u_xx) + self.constants.D * (u_x + h / 2 * u_xx)
        return torch.where(first, u - initial, torch.where(inlet, at_inlet, at_outlet))
