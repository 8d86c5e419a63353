"""The moving least squares material point method (MLS-MPM) in torch, 2-D and 3-D, batched.

One step (Hu et al. 2018, in the compact form of taichi's mpm88/mpm99):

1. constitutive update per particle: ``F <- (I + dt C) F``, then the material's return
   mapping and Kirchhoff stress ``tau = P F^T`` (:mod:`sciml.datasets.mpm_materials`);
2. particle to grid with quadratic B-spline weights ``w_ip`` and APIC affine momentum:
   ``m_i = sum_p w_ip m_p``, ``(m v)_i = sum_p w_ip (m_p v_p + A_p (x_i - x_p))`` with
   ``A_p = -dt 4 / dx^2 V_p tau_p + m_p C_p`` (MLS-MPM folds the stress force into the
   affine term);
3. grid update: ``v_i = (m v)_i / m_i + dt g``, then the walls;
4. grid to particle: ``v_p = sum_i w_ip v_i``, ``C_p = 4 / dx^2 sum_i w_ip v_i (x_i - x_p)^T``,
   ``x_p <- x_p + dt v_p``.

The transfers conserve mass, linear and angular momentum exactly (up to round-off) away
from walls and without gravity; the tests check this.

Batches. ``B`` independent scenes share one grid shape but not their particles: a batch
is a set of flat particle arrays with a ``scene`` index per particle (any number of
particles per scene, no padding), scattered with ``index_add_`` onto a ``(B, *grid)``
grid. Code is dimension-generic (the ``3^d`` stencil offsets come from
``itertools.product``) and device-agnostic: the grid follows the particles' device.

Domain. The cube ``[0, size]^d`` with ``resolution`` cells per axis (nodes ``0 .. resolution``);
``padding`` cells along every face are wall nodes, so particles must start inside
:attr:`MPMSimulator.bounds` ``= [padding dx, size - padding dx]`` per axis. Gravity
acts along the last axis (``-g e_d``) unless a vector is given. Walls: ``"slip"`` zeroes
the velocity component into the wall at wall nodes (the material may separate from it,
as in mpm88), with optional Coulomb friction on the tangential part (Stomakhin et al.
2013), one coefficient per material averaged at a node with the particles' mass
weights, so sand can grip the floor while water slides; ``"sticky"`` zeroes the whole
velocity; ``"none"`` has no walls (free space). Particles can sink up to about a cell
and a half into the padding before the walls stop them.

Stability. An explicit step needs ``dt c / dx`` below a Courant number of order one,
``c`` the fastest small-strain wave speed of the materials. The tightest mode is a lone
particle's own volume oscillation (its stress feeds back through ``C``): with
``omega^2 = 4 d c^2 / dx^2`` it is stable for ``c dt / dx < 1 / sqrt(d)`` only, and the
fluid's equation of state stiffens under compression. The simulator therefore refuses
``dt (c + |v|_max) / dx > max_cfl`` at the start, default ``max_cfl = 0.3`` (taichi's
mpm99 runs its jelly and water at about 0.5 by this measure; splashing water then goes
unstable in our tests). During a run every step checks that ``F``, the stress and the
positions are finite, that no particle left the grid (the stencil of a particle within
one cell of the grid edge no longer fits) and that no particle moves more than a cell per
step; a failure raises :class:`MPMInstabilityError` naming the step, scene, material and
particle.

References
----------
Hu, Fang, Ge, Qu, Zhu, Pradhana & Jiang, "A moving least squares material point method
with displacement discontinuity and two-way rigid body coupling", ACM TOG 37(4), 2018.
Jiang, Schroeder, Selle, Teran & Stomakhin, "The affine particle-in-cell method",
ACM TOG 34(4), 2015 (APIC, angular momentum conservation).
Stomakhin, Schroeder, Chai, Teran & Selle, "A material point method for snow
simulation", ACM TOG 32(4), 2013 (wall friction).

Examples
--------
>>> import torch
>>> sim = MPMSimulator(dim=2, resolution=16, materials=["elastic"], dt=1e-4)
>>> x = 0.4 + 0.2 * torch.rand(50, 2, generator=torch.Generator().manual_seed(0))
>>> particles = sim.make_particles(x, material=torch.zeros(50, dtype=torch.long), volume=1e-4)
>>> after = sim.run(particles, n_steps=10)
>>> round(float(after.v[:, 1].mean()), 5)  # free fall: -g * 10 dt
-0.00981
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from typing import Sequence

import torch

from sciml.datasets.mpm_materials import Material, get_material
from sciml.datasets.problem import check_number
from sciml.errors import SciMLError

__all__ = ["Particles", "MPMSimulator", "MPMInstabilityError", "BOUNDARIES"]

BOUNDARIES = ("slip", "sticky", "none")


class MPMInstabilityError(SciMLError):
    """An MPM run that went unstable; ``step``, ``scene``, ``material`` and ``particle`` say where."""

    def __init__(self, message: str, step: int, scene: int, material: str, particle: int):
        super().__init__(message)
        self.step, self.scene, self.material, self.particle = step, scene, material, particle


@dataclass(frozen=True)
class Particles:
    """The particles of a batch of scenes, as flat arrays (``N`` particles in all).

    Attributes
    ----------
    x, v : torch.Tensor
        Positions and velocities, ``(N, d)``.
    C : torch.Tensor
        APIC affine velocity matrices (the velocity gradient), ``(N, d, d)``.
    F : torch.Tensor
        Deformation gradients, ``(N, d, d)``.
    plastic : torch.Tensor
        Accumulated plastic strain, ``(N,)``.
    mass, volume : torch.Tensor
        Rest mass and volume, ``(N,)``.
    material : torch.Tensor
        Index into :attr:`MPMSimulator.materials`, ``(N,)`` int64.
    scene : torch.Tensor
        Scene of each particle in ``0 .. n_scenes - 1``, ``(N,)`` int64.
    n_scenes : int
        Number of scenes ``B`` (the grid's batch size).
    scene_offset : int
        Number that error reports give scene 0 (for batches cut from a longer list).
    """

    x: torch.Tensor
    v: torch.Tensor
    C: torch.Tensor
    F: torch.Tensor
    plastic: torch.Tensor
    mass: torch.Tensor
    volume: torch.Tensor
    material: torch.Tensor
    scene: torch.Tensor
    n_scenes: int
    scene_offset: int = 0

    def momentum(self) -> torch.Tensor:
        """Total linear momentum per scene, ``(B, d)``."""
        out = self.x.new_zeros(self.n_scenes, self.x.shape[1])
        return out.index_add_(0, self.scene, self.mass[:, None] * self.v)


class MPMSimulator:
    """Explicit MLS-MPM on a regular grid over ``[0, size]^d`` (see the module notes).

    Parameters
    ----------
    dim : int
        2 or 3.
    resolution : int
        Grid cells per axis (``dx = size / resolution``).
    materials : sequence
        Material specs (names such as ``"fluid"``, ``"elastic"``, ``"sand"``,
        ``"plastic"``, ``(name, kwargs)`` or :class:`~sciml.datasets.mpm_materials.Material`
        instances); a particle's ``material`` indexes this list.
    dt : float
        Time step.
    size : float
        Side of the cubic domain (default 1).
    gravity : float or sequence of float
        ``g`` along ``-e_d`` (default 9.81), or the full gravity vector.
    boundary : {"slip", "sticky", "none"}
        Wall condition at the ``padding`` cells along every face.
    friction : float or sequence of float
        Coulomb friction coefficient of ``"slip"`` walls, one for all materials or one
        per material (default 0: free slip).
    padding : int
        Wall cells per face (>= 2, default 3).
    max_cfl : float
        Largest ``dt (c + |v|) / dx`` accepted (default 0.3, see the module notes).
    dtype : torch.dtype
        ``torch.float32`` (default) or ``torch.float64``.
    """

    def __init__(self, dim: int, resolution: int, materials: Sequence, dt: float, *, size: float = 1.0,
                 gravity: float | Sequence[float] = 9.81, boundary: str = "slip",
                 friction: float | Sequence[float] = 0.0,
                 padding: int = 3, max_cfl: float = 0.3, dtype: torch.dtype = torch.float32):
        if dim not in (2, 3) or isinstance(dim, bool):
            raise SciMLError(f"MPM dim must be 2 or 3, got {dim!r}")
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 2:
            raise SciMLError(f"MPM padding must be an integer >= 2 (the stencil is 3 nodes wide), got {padding!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2 * padding + 2:
            raise SciMLError(f"MPM resolution must be an integer >= 2 * padding + 2 = {2 * padding + 2}, "
                             f"got {resolution!r}")
        if boundary not in BOUNDARIES:
            raise SciMLError(f"MPM boundary {boundary!r} is not supported; choose one of {list(BOUNDARIES)}")
        if dtype not in (torch.float32, torch.float64):
            raise SciMLError(f"MPM dtype must be torch.float32 or torch.float64, got {dtype!r}")
        if isinstance(materials, (str, dict, Material)) or not len(materials):
            raise SciMLError(f"MPM materials must be a non-empty list of material specs, got {materials!r}")
        self.dim, self.resolution, self.padding, self.boundary, self.dtype = dim, resolution, padding, boundary, dtype
        self.size = check_number("MPM", "size", size, positive=True)
        self.dt = check_number("MPM", "dt", dt, positive=True)
        self.max_cfl = check_number("MPM", "max_cfl", max_cfl, positive=True)
        self.dx = self.size / resolution
        self.materials: list[Material] = [get_material(spec) for spec in materials]
        if isinstance(friction, (list, tuple)) and len(friction) != len(self.materials):
            raise SciMLError(f"MPM friction needs one coefficient or one per material ({len(self.materials)}), "
                             f"got {len(friction)}")
        self.friction = tuple(check_number("MPM", "friction", mu) for mu in
                              (friction if isinstance(friction, (list, tuple)) else [friction] * len(self.materials)))
        if min(self.friction) < 0:
            raise SciMLError(f"MPM wall friction must be >= 0 (one number, or one per material), got {friction!r}")
        if isinstance(gravity, (int, float)) and not isinstance(gravity, bool):
            g = check_number("MPM", "gravity", gravity)
            self.gravity = tuple([0.0] * (dim - 1) + [-g])
        else:
            self.gravity = tuple(check_number("MPM", "gravity", c) for c in gravity)
            if len(self.gravity) != dim:
                raise SciMLError(f"MPM gravity vector must have {dim} components, got {list(gravity)!r}")
        self.wave_speed = max(m.wave_speed() for m in self.materials)
        cfl = self.dt * self.wave_speed / self.dx
        if cfl > self.max_cfl:
            stiffest = max(self.materials, key=lambda m: m.wave_speed())
            raise SciMLError(
                f"MPM time step dt={self.dt:g} is unstable: dt * c / dx = {cfl:.3g} > max_cfl = {self.max_cfl:g} "
                f"for material {stiffest.name!r} (wave speed c = {self.wave_speed:.3g}, dx = {self.dx:.3g}); "
                f"use dt <= {self.max_cfl * self.dx / self.wave_speed:.3g} or a softer material")
        self.grid_shape = (resolution + 1,) * dim
        offsets = torch.tensor(list(itertools.product(range(3), repeat=dim)), dtype=torch.long)
        strides = torch.tensor([math.prod(self.grid_shape[a + 1:]) for a in range(dim)], dtype=torch.long)
        self._offsets, self._strides = offsets, strides
        self._cache: dict[torch.device, tuple[torch.Tensor, ...]] = {}

    # -- setup -------------------------------------------------------------------
    @property
    def bounds(self) -> list[list[float]]:
        """Where the walls are, ``[[lo, hi]] * d``: particles must start inside."""
        lo = self.padding * self.dx
        return [[lo, self.size - lo] for _ in range(self.dim)]

    def material_names(self) -> list[str]:
        """Names of :attr:`materials` in index order."""
        return [m.name for m in self.materials]

    def make_particles(self, x, material, volume, v=None, scene=None, n_scenes: int | None = None,
                       scene_offset: int = 0) -> Particles:
        """Particles at rest (``F = I``, ``C = 0``) with mass ``density * volume``, checked.

        Parameters
        ----------
        x : array_like
            Positions ``(N, d)``, inside :attr:`bounds`.
        material : array_like of int
            Index into :attr:`materials` per particle, ``(N,)``.
        volume : float or array_like
            Rest volume per particle.
        v : array_like, optional
            Initial velocities ``(N, d)`` (default zero).
        scene : array_like of int, optional
            Scene index per particle (default all 0).
        n_scenes : int, optional
            Number of scenes (default ``max(scene) + 1``).
        scene_offset : int
            Number error messages give scene 0 (default 0).

        Returns
        -------
        Particles
            On the device of ``x`` (when a tensor), in the simulator's dtype.
        """
        device = x.device if isinstance(x, torch.Tensor) else None
        x = torch.as_tensor(x, dtype=self.dtype, device=device)
        if x.ndim != 2 or x.shape[1] != self.dim or x.shape[0] == 0:
            raise SciMLError(f"MPM positions must have shape (N, {self.dim}) with N > 0, got {tuple(x.shape)}")
        n = x.shape[0]
        device = x.device
        material = torch.as_tensor(material, device=device)
        if material.shape != (n,) or material.is_floating_point():
            raise SciMLError(f"MPM material must be {n} integer indices into the materials list, "
                             f"got shape {tuple(material.shape)} of {material.dtype}")
        material = material.long()
        if int(material.min()) < 0 or int(material.max()) >= len(self.materials):
            raise SciMLError(f"MPM material indices must lie in 0..{len(self.materials) - 1} "
                             f"(materials {self.material_names()}), got {int(material.min())}..{int(material.max())}")
        scene = (torch.zeros(n, dtype=torch.long, device=device) if scene is None
                 else torch.as_tensor(scene, device=device).long())
        if scene.shape != (n,) or int(scene.min()) < 0:
            raise SciMLError(f"MPM scene must be {n} non-negative integer indices, got shape {tuple(scene.shape)}")
        n_scenes = int(scene.max()) + 1 if n_scenes is None else n_scenes
        if int(scene.max()) >= n_scenes:
            raise SciMLError(f"MPM scene indices go up to {int(scene.max())} but n_scenes = {n_scenes}")
        volume = torch.as_tensor(volume, dtype=self.dtype, device=device).expand(n).clone()
        if not bool(torch.isfinite(volume).all() and (volume > 0).all()):
            raise SciMLError("MPM particle volumes must be finite and > 0")
        v = torch.zeros_like(x) if v is None else torch.as_tensor(v, dtype=self.dtype, device=device)
        if v.shape != x.shape or not bool(torch.isfinite(v).all()):
            raise SciMLError(f"MPM velocities must be finite with the shape of the positions {tuple(x.shape)}")
        self._check_inside_bounds(x, scene + scene_offset)
        speed = float(torch.linalg.vector_norm(v, dim=1).max())
        cfl = self.dt * (self.wave_speed + speed) / self.dx
        if cfl > self.max_cfl:
            raise SciMLError(f"MPM time step dt={self.dt:g} is unstable for initial speeds up to {speed:.3g}: "
                             f"dt * (c + |v|) / dx = {cfl:.3g} > max_cfl = {self.max_cfl:g}; lower dt or the speeds")
        density = torch.tensor([m.density for m in self.materials], dtype=self.dtype, device=device)
        eye = torch.eye(self.dim, dtype=self.dtype, device=device)
        return Particles(x=x, v=v, C=torch.zeros(n, self.dim, self.dim, dtype=self.dtype, device=device),
                         F=eye.expand(n, -1, -1).clone(), plastic=torch.zeros(n, dtype=self.dtype, device=device),
                         mass=density[material] * volume, volume=volume, material=material, scene=scene,
                         n_scenes=n_scenes, scene_offset=int(scene_offset))

    def _check_inside_bounds(self, x: torch.Tensor, scene: torch.Tensor) -> None:
        lo, hi = self.bounds[0]
        outside = ~((x >= lo) & (x <= hi)).all(dim=1)
        if bool(outside.any()):
            first = int(torch.nonzero(outside)[0, 0])
            where = [round(c, 4) for c in x[first].tolist()]
            raise SciMLError(
                f"{int(outside.sum())} MPM particle(s) lie outside the domain bounds [{lo:g}, {hi:g}]^{self.dim} "
                f"(first: particle {first} of scene {int(scene[first])} at {where}); "
                f"move them inside or enlarge size/resolution")

    # -- the three phases ----------------------------------------------------------
    def _constants(self, device: torch.device):
        if device not in self._cache:
            node = torch.stack(torch.meshgrid(*[torch.arange(m, device=device) for m in self.grid_shape],
                                              indexing="ij"), dim=-1).reshape(-1, self.dim)
            lower = node < self.padding
            upper = node > self.resolution - self.padding
            self._cache[device] = (self._offsets.to(device), self._strides.to(device), lower, upper,
                                   torch.tensor(self.gravity, dtype=self.dtype, device=device))
        return self._cache[device]

    def _stencil(self, p: Particles):
        """Flat grid indices ``(N, K)``, weights ``(N, K)`` and ``x_i - x_p`` ``(N, K, d)`` of the 3^d stencil."""
        offsets, strides = self._constants(p.x.device)[:2]
        xg = p.x / self.dx
        base = torch.floor(xg - 0.5)
        fx = xg - base  # in [0.5, 1.5)
        w = torch.stack([0.5 * (1.5 - fx) ** 2, 0.75 - (fx - 1.0) ** 2, 0.5 * (fx - 0.5) ** 2], dim=-1)
        weights = w[:, 0]
        for a in range(1, self.dim):  # outer product in itertools.product order (last axis fastest)
            weights = (weights[:, :, None] * w[:, a, None, :]).reshape(len(w), -1)
        dpos = (offsets.to(p.x.dtype) - fx[:, None, :]) * self.dx
        nodes = base.long()[:, None, :] + offsets
        flat = p.scene[:, None] * math.prod(self.grid_shape) + (nodes * strides).sum(-1)
        return flat, weights, dpos

    def particle_to_grid(self, p: Particles, tau: torch.Tensor | None = None, stencil=None):
        """Grid mass ``(B, *grid)`` and momentum ``(B, *grid, d)`` from the particles.

        ``tau`` is the Kirchhoff stress per particle ``(N, d, d)`` (omitted: no stress,
        the bare APIC transfer).
        """
        flat, weights, dpos = self._stencil(p) if stencil is None else stencil
        affine = p.mass[:, None, None] * p.C
        if tau is not None:
            affine = affine - (self.dt * 4.0 / self.dx ** 2) * p.volume[:, None, None] * tau
        contrib = weights[..., None] * (p.mass[:, None, None] * p.v[:, None, :]
                                        + torch.einsum("nab,nkb->nka", affine, dpos))
        n_nodes = p.n_scenes * math.prod(self.grid_shape)
        mass = p.x.new_zeros(n_nodes).index_add_(0, flat.reshape(-1), (weights * p.mass[:, None]).reshape(-1))
        momentum = p.x.new_zeros(n_nodes, self.dim).index_add_(0, flat.reshape(-1), contrib.reshape(-1, self.dim))
        return mass.reshape(p.n_scenes, *self.grid_shape), momentum.reshape(p.n_scenes, *self.grid_shape, self.dim)

    def node_friction(self, p: Particles, mass: torch.Tensor, stencil=None) -> float | torch.Tensor:
        """Wall friction coefficient at the nodes: the number when all materials share it, else
        the mass-weighted average of the particles' coefficients, ``(B, *grid)``."""
        if len(set(self.friction)) == 1:
            return self.friction[0]
        flat, weights, _ = self._stencil(p) if stencil is None else stencil
        mu = torch.tensor(self.friction, dtype=p.mass.dtype, device=p.mass.device)[p.material]
        weighted = torch.zeros_like(mass).reshape(-1).index_add_(0, flat.reshape(-1),
                                                                  (weights * (p.mass * mu)[:, None]).reshape(-1))
        return weighted.reshape(mass.shape) / torch.where(mass > 0, mass, torch.ones_like(mass))

    def grid_update(self, mass: torch.Tensor, momentum: torch.Tensor,
                    friction: float | torch.Tensor = 0.0) -> torch.Tensor:
        """Grid velocity ``(B, *grid, d)``: momentum / mass, plus ``dt g``, then the walls (nodes with mass only).

        ``friction`` is the walls' Coulomb coefficient, a number or per node (:meth:`node_friction`).
        """
        _, _, lower, upper, gravity = self._constants(mass.device)
        B = mass.shape[0]
        if isinstance(friction, torch.Tensor):
            friction = friction.reshape(B, -1)
        mass, momentum = mass.reshape(B, -1, 1), momentum.reshape(B, -1, self.dim)
        filled = mass > 0
        v = torch.where(filled, momentum / torch.where(filled, mass, torch.ones_like(mass)) + self.dt * gravity,
                        torch.zeros_like(momentum))
        if self.boundary == "slip":
            axis = torch.eye(self.dim, dtype=torch.bool, device=v.device)
            for a in range(self.dim):  # walls normal to axis a; corners see each wall in turn
                into = (lower[:, a] & (v[..., a] < 0)) | (upper[:, a] & (v[..., a] > 0))
                normal_speed = torch.where(into, v[..., a].abs(), torch.zeros_like(v[..., a]))
                v = torch.where(into.unsqueeze(-1) & axis[a], torch.zeros_like(v), v)
                if isinstance(friction, torch.Tensor) or friction > 0:
                    tangential = torch.linalg.vector_norm(v, dim=-1)
                    safe = torch.where(tangential > 0, tangential, torch.ones_like(tangential))
                    scale = (1.0 - friction * normal_speed / safe).clamp(min=0.0)
                    v = v * torch.where(into, scale, torch.ones_like(scale)).unsqueeze(-1)
        elif self.boundary == "sticky":
            v = torch.where((lower | upper).any(-1, keepdim=True), torch.zeros_like(v), v)
        return v.reshape(B, *self.grid_shape, self.dim)

    def grid_to_particle(self, p: Particles, grid_v: torch.Tensor, stencil=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Particle velocities ``(N, d)`` and APIC matrices ``C`` ``(N, d, d)`` from the grid velocity."""
        flat, weights, dpos = self._stencil(p) if stencil is None else stencil
        gv = grid_v.reshape(-1, self.dim)[flat]  # (N, K, d)
        v = (weights[..., None] * gv).sum(1)
        C = (4.0 / self.dx ** 2) * torch.einsum("nk,nka,nkb->nab", weights, gv, dpos)
        return v, C

    def stress(self, p: Particles) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``F <- (I + dt C) F``, each material's return mapping and the Kirchhoff stress.

        Returns ``(F, plastic, tau)``; particles are grouped by material with index masks.
        """
        eye = torch.eye(self.dim, dtype=p.F.dtype, device=p.F.device)
        F_trial = (eye + self.dt * p.C) @ p.F
        F, plastic, tau = torch.empty_like(F_trial), torch.empty_like(p.plastic), torch.empty_like(F_trial)
        for index, material in enumerate(self.materials):
            rows = torch.nonzero(p.material == index).squeeze(1)
            if rows.numel():
                F[rows], plastic[rows], tau[rows] = material.stress_update(F_trial[rows], p.plastic[rows])
        return F, plastic, tau

    # -- stepping -----------------------------------------------------------------
    def step(self, p: Particles, step: int = 0) -> Particles:
        """One MLS-MPM step; ``step`` only labels an :class:`MPMInstabilityError`."""
        F, plastic, tau = self.stress(p)
        stencil = self._stencil(p)
        mass, momentum = self.particle_to_grid(p, tau, stencil)
        grid_v = self.grid_update(mass, momentum, self.node_friction(p, mass, stencil))
        v, C = self.grid_to_particle(p, grid_v, stencil)
        x = p.x + self.dt * v
        self._check(p, step, {
            "non-finite deformation gradient or stress":
                ~(torch.isfinite(F).flatten(1).all(1) & torch.isfinite(tau).flatten(1).all(1)),
            "non-finite position": ~torch.isfinite(x).all(1),
            "particle left the grid": ((x < self.dx) | (x > self.size - self.dx)).any(1),
            "particle moved more than a cell in one step": torch.linalg.vector_norm(v, dim=1) * self.dt > self.dx,
        })
        return replace(p, x=x, v=v, C=C, F=F, plastic=plastic)

    def _check(self, p: Particles, step: int, failures: dict[str, torch.Tensor]) -> None:
        """Raise :class:`MPMInstabilityError` for the first failure (in order) that any particle shows."""
        if not bool(torch.stack([bad.any() for bad in failures.values()]).any()):  # one device sync per step
            return
        what, bad = next((what, bad) for what, bad in failures.items() if bool(bad.any()))
        i = int(torch.nonzero(bad)[0, 0])
        scene, material = p.scene_offset + int(p.scene[i]), self.materials[int(p.material[i])].name
        raise MPMInstabilityError(
            f"MPM simulation unstable at step {step}: {what} ({int(bad.sum())} particle(s); first: particle {i}, "
            f"material {material!r}, scene {scene}); lower dt (now {self.dt:g}) or use softer materials",
            step=step, scene=scene, material=material, particle=i)

    def run(self, p: Particles, n_steps: int, first_step: int = 0) -> Particles:
        """``n_steps`` steps from ``p``; steps are numbered from ``first_step`` in error reports."""
        for k in range(n_steps):
            p = self.step(p, first_step + k)
        return p

    def rollout(self, p: Particles, n_frames: int, substeps: int) -> tuple[torch.Tensor, Particles]:
        """Positions ``(n_frames, N, d)``: the initial ones and then every ``substeps`` steps.

        Returns the positions and the final particles.
        """
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 1:
            raise SciMLError(f"MPM n_frames must be a positive integer, got {n_frames!r}")
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise SciMLError(f"MPM substeps must be a positive integer, got {substeps!r}")
        frames = [p.x]
        for frame in range(1, n_frames):
            p = self.run(p, substeps, first_step=(frame - 1) * substeps)
            frames.append(p.x)
        return torch.stack(frames), p
