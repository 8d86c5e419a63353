"""Random particle scenes simulated with MLS-MPM: trajectories and GNS-style metadata.

Each scene drops one or several boxes of material (random sizes, positions and initial
velocities) into the walled domain of :class:`sciml.datasets.mpm.MPMSimulator`; they fall,
hit the walls and each other. Boxes are sampled with a jittered lattice of
``particles_per_cell`` particles per cell and axis, do not overlap, and carry one
material each, drawn per scene (as GNS's Water, Sand and Goop sets) or per box
(``mixed``, as its MultiMaterial set). By default the walls grip sand (Coulomb friction
0.5) and solids (0.3) and let water slide. Scenes are simulated in batches on one grid;
scene ``i`` is drawn from ``numpy.random.default_rng([seed, i])``, so a scene does not
depend on the batch size or on the number of scenes.

The output follows the data of Sanchez-Gonzalez et al. (2020): per scene, positions
``(T, N_i, d)`` (float32) at ``T = n_frames`` frames ``frame_dt`` apart, including the
initial one, and a particle type per particle; the metadata has ``bounds``,
``sequence_length``, ``default_connectivity_radius``, ``dim``, ``dt`` and the
statistics ``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` of the finite
differences ``x_t - x_(t-1)`` and ``x_(t+1) - 2 x_t + x_(t-1)`` of positions, per axis
over every particle and frame of the whole set (in length per frame and per frame^2, as
there: no division by ``dt``). Particle types keep GNS's numbers where a material
matches (:data:`PARTICLE_TYPES`). GIOROM (Viswanath et al.) trains on data of this
kind for water, sand, elastic and plastic materials. :class:`ParticleScenes` gives the same
scenes as the registered trajectory generator ``"mpm"`` (``sciml generate mpm``), one scene
per seed, written into a :mod:`sciml.trajectory_file` of the ``particles`` layout.

Bounds. GNS's ``bounds`` is the box that holds every particle of the data; its models
take wall distances from it and refuse particles outside it. Here it is the box the
simulator guarantees, :func:`confined_bounds` ``= [dx, size - dx]`` per axis, not the
walls: MPM walls act on grid nodes (the ``padding`` cells along each face), and a
particle keeps an interpolated velocity from non-wall nodes until its whole 3-node
stencil lies on wall nodes, so material sinks into the padding, a cell or more when it
lands fast, and no step of the MLS-MPM update caps that depth. What the simulator does
guarantee is its check that raises :class:`~sciml.datasets.mpm.MPMInstabilityError` when
a particle leaves ``[dx, size - dx]`` (beyond, its stencil no longer fits in the grid),
so every trajectory it returns lies in that box. The walls (the initial boxes lie
inside them) are the metadata's ``walls``.

References
----------
Sanchez-Gonzalez, Godwin, Pfaff, Ying, Leskovec & Battaglia, "Learning to simulate complex
physics with graph networks", ICML 2020 (the datasets' metadata.json).
Viswanath et al., "Reduced-order neural operators: learning Lagrangian dynamics on
highly sparse graphs" (GIOROM), 2024.

Examples
--------
>>> config = SceneConfig(resolution=16, materials=("elastic",), n_boxes=(1, 1), max_speed=0.0)
>>> data = simulate_scenes(config, n_scenes=2, n_frames=3, substeps=None, seed=0)
>>> data.positions[0].shape, data.positions[0].dtype, sorted(set(data.particle_type[0].tolist()))
((3, 28, 2), dtype('float32'), [8])
>>> data.metadata["sequence_length"], data.metadata["bounds"], data.metadata["walls"][0]
(3, [[0.0625, 0.9375], [0.0625, 0.9375]], [0.1875, 0.8125])
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sciml.datasets.mpm import MPMInstabilityError, MPMSimulator
from sciml.datasets.mpm_materials import get_material
from sciml.datasets.problem import check_number
from sciml.datasets.trajectory_generator import TrajectoryGenerator
from sciml.errors import SciMLError

__all__ = ["PARTICLE_TYPES", "SceneConfig", "ParticleTrajectories", "ParticleScenes", "confined_bounds",
           "sample_scene", "simulate_scenes"]

PARTICLE_TYPES = {"fluid": 5, "sand": 6, "plastic": 7, "elastic": 8}
"""Particle type per material name: GNS's water (5), sand (6) and goop (7) numbers (DeepMind's
``learning_to_simulate``, whose data also use 0 for rigid solids and 3 for kinematic boundary
particles); the elastic solid, absent there, takes the next free number (GNS models embed 9
types)."""


def _pair(name: str, value, integer: bool = False) -> tuple:
    kind = int if integer else (int, float)
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, kind) for v in value) or value[0] > value[1]):
        raise SciMLError(f"scene setting {name} must be a pair (low, high) of {'integers' if integer else 'numbers'} "
                         f"with low <= high, got {value!r}")
    return tuple(value)


@dataclass
class SceneConfig:
    """Settings of random box-drop scenes (all JSON-serialisable).

    Parameters
    ----------
    dim : int
        2 or 3.
    resolution : int
        Grid cells per axis (GNS-like data: 64 or 128 in 2-D).
    size : float
        Side of the cubic domain.
    padding : int
        Wall cells per face; the walls sit at ``padding * size / resolution``.
    materials : sequence
        Material specs to draw from (names or ``{"name": ..., **settings}``).
    mixed : bool
        Draw a material per box (True) or per scene (False, default).
    n_boxes : (int, int)
        Inclusive range of the number of boxes per scene.
    box_size : (float, float)
        Range of box sides, as fractions of ``size``, drawn per axis.
    particles_per_cell : int
        Lattice particles per cell and axis (``ppc^d`` per cell).
    jitter : float
        Uniform jitter of lattice points, as a fraction of their spacing (< 1).
    max_speed : float
        Initial velocity components are uniform in ``[-max_speed, max_speed]``, per box.
    frame_dt : float
        Time between stored frames (GNS: 0.0025).
    friction : float or dict
        Coulomb friction of the walls, one number or ``{material name: coefficient}``
        (names left out: 0). Default: sand 0.5 (it piles up instead of spreading over a
        frictionless floor), elastic and plastic 0.3, fluid 0 (free slip).
    gravity, boundary, max_cfl :
        As in :class:`~sciml.datasets.mpm.MPMSimulator`.
    connectivity_radius : float or None
        ``default_connectivity_radius`` of the metadata; None: 4 lattice spacings.
    batch_size : int
        Scenes simulated together on one batched grid.
    dtype : {"float32", "float64"}
        Simulation precision (positions are stored as float32).
    """

    dim: int = 2
    resolution: int = 64
    size: float = 1.0
    padding: int = 3
    materials: tuple = ("fluid", "elastic", "sand", "plastic")
    mixed: bool = False
    n_boxes: tuple = (1, 3)
    box_size: tuple = (0.1, 0.3)
    particles_per_cell: int = 2
    jitter: float = 0.5
    max_speed: float = 1.0
    frame_dt: float = 2.5e-3
    gravity: float = 9.81
    boundary: str = "slip"
    friction: float | dict = field(default_factory=lambda: {"sand": 0.5, "elastic": 0.3, "plastic": 0.3})
    max_cfl: float = 0.3
    connectivity_radius: float | None = None
    batch_size: int = 8
    dtype: str = "float32"

    def __post_init__(self):
        self.materials = tuple(self.materials) if isinstance(self.materials, (list, tuple)) else self.materials
        if not isinstance(self.materials, tuple) or not self.materials:
            raise SciMLError(f"scene setting materials must be a non-empty list of material specs, "
                             f"got {self.materials!r}")
        for spec in self.materials:
            name = get_material(spec).name
            if name not in PARTICLE_TYPES:
                raise SciMLError(f"scene material {name!r} has no particle type; add it to PARTICLE_TYPES")
        self.n_boxes = _pair("n_boxes", self.n_boxes, integer=True)
        self.box_size = _pair("box_size", self.box_size)
        if self.n_boxes[0] < 1:
            raise SciMLError(f"scene setting n_boxes must be >= 1, got {self.n_boxes!r}")
        if self.dim not in (2, 3) or isinstance(self.dim, bool):
            raise SciMLError(f"scene setting dim must be 2 or 3, got {self.dim!r}")
        for key in ("resolution", "padding", "particles_per_cell", "batch_size"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SciMLError(f"scene setting {key} must be a positive integer, got {value!r}")
        for key, positive in (("size", True), ("frame_dt", True), ("max_cfl", True), ("max_speed", False),
                              ("jitter", False), ("gravity", False)):
            check_number("scene", key, getattr(self, key), positive=positive)
        if not 0.0 <= self.jitter < 1.0 or self.max_speed < 0:
            raise SciMLError(f"scene settings need 0 <= jitter < 1 and max_speed >= 0, got {self.jitter!r}, "
                             f"{self.max_speed!r}")
        friction = self.friction.values() if isinstance(self.friction, dict) else [self.friction]
        if (isinstance(self.friction, dict) and not set(self.friction) <= set(PARTICLE_TYPES)) or any(
                isinstance(mu, bool) or not isinstance(mu, (int, float)) or not mu >= 0 for mu in friction):
            raise SciMLError(f"scene setting friction must be a number >= 0 or a dict {{material name: number >= 0}} "
                             f"with names from {sorted(PARTICLE_TYPES)}, got {self.friction!r}")
        if self.dtype not in ("float32", "float64"):
            raise SciMLError(f"scene setting dtype must be 'float32' or 'float64', got {self.dtype!r}")
        if self.connectivity_radius is not None and not self.connectivity_radius > 0:
            raise SciMLError(f"scene setting connectivity_radius must be > 0 or None, got {self.connectivity_radius!r}")
        dx = self.size / self.resolution
        room = self.size - 2 * self.padding * dx
        spacing = dx / self.particles_per_cell
        if not (2 * spacing <= self.box_size[0] * self.size and self.box_size[1] * self.size <= room):
            raise SciMLError(f"scene box_size {self.box_size!r} must lie between two particle spacings "
                             f"({2 * spacing / self.size:.3g}) and the room between the walls ({room / self.size:.3g})")

    @property
    def spacing(self) -> float:
        """Lattice spacing of the particles, ``dx / particles_per_cell``."""
        return self.size / self.resolution / self.particles_per_cell

    def wall_friction(self, materials) -> list[float]:
        """Wall friction coefficient of each material in ``materials``."""
        if isinstance(self.friction, dict):
            return [float(self.friction.get(m.name, 0.0)) for m in materials]
        return [float(self.friction)] * len(materials)

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON types."""
        out = dataclasses.asdict(self)
        out["materials"] = [get_material(spec).config() for spec in self.materials]
        out["n_boxes"], out["box_size"] = list(self.n_boxes), list(self.box_size)
        return out


@dataclass
class ParticleTrajectories:
    """Simulated scenes: ragged per-scene arrays and the dataset metadata.

    Attributes
    ----------
    positions : list of numpy.ndarray
        Per scene, ``(T, N_i, d)`` float32.
    particle_type : list of numpy.ndarray
        Per scene, ``(N_i,)`` int64 (:data:`PARTICLE_TYPES`).
    material : list of numpy.ndarray
        Per scene, ``(N_i,)`` int64 index into ``metadata["materials"]``.
    metadata : dict
        GNS-style metadata plus the simulation settings (JSON-serialisable).
    """

    positions: list = field(default_factory=list)
    particle_type: list = field(default_factory=list)
    material: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def _place_boxes(config: SceneConfig, rng: np.random.Generator, lo: float, hi: float) -> list[np.ndarray]:
    """Non-overlapping boxes ``[[low corner], [high corner]]`` on the particle lattice, a cell apart."""
    dx, h, d = config.size / config.resolution, config.spacing, config.dim
    boxes: list[np.ndarray] = []
    wanted = int(rng.integers(config.n_boxes[0], config.n_boxes[1] + 1))
    for _ in range(50 * wanted):  # rejection sampling; a crowded scene keeps the boxes that fit
        if len(boxes) == wanted:
            break
        counts = np.floor(rng.uniform(*config.box_size, size=d) * config.size / h).astype(int)
        side = counts * h
        corner = lo + rng.uniform(0.0, 1.0, size=d) * (hi - lo - side)
        box = np.stack([corner, corner + side])
        if all(np.any((box[0] >= other[1] + dx) | (other[0] >= box[1] + dx)) for other in boxes):
            boxes.append(box)
    return boxes


def sample_scene(config: SceneConfig, rng: np.random.Generator, bounds) -> dict[str, np.ndarray]:
    """One random scene: particle positions, velocities, material indices and volumes.

    Parameters
    ----------
    config : SceneConfig
        Scene settings.
    rng : numpy.random.Generator
        Source of randomness.
    bounds : list of [lo, hi]
        Walls of the simulator (:attr:`MPMSimulator.bounds`); boxes lie inside.

    Returns
    -------
    dict
        ``x`` ``(N, d)``, ``v`` ``(N, d)``, ``material`` ``(N,)`` int64 (index into
        ``config.materials``) and ``volume`` (float, the lattice cell ``spacing^d``).

    Examples
    --------
    >>> import numpy as np
    >>> config = SceneConfig(resolution=16, n_boxes=(2, 2))
    >>> scene = sample_scene(config, np.random.default_rng(0), [[0.1875, 0.8125]] * 2)
    >>> scene["x"].shape, len(np.unique(scene["material"]))
    ((75, 2), 1)
    """
    h, d = config.spacing, config.dim
    lo, hi = bounds[0]
    scene_material = int(rng.integers(len(config.materials)))
    xs, vs, ms = [], [], []
    for box in _place_boxes(config, rng, lo, hi):
        counts = np.rint((box[1] - box[0]) / h).astype(int)
        lattice = np.stack(np.meshgrid(*[np.arange(c) + 0.5 for c in counts], indexing="ij"), axis=-1).reshape(-1, d)
        jitter = rng.uniform(-0.5, 0.5, size=lattice.shape) * config.jitter
        xs.append(box[0] + (lattice + jitter) * h)
        vs.append(np.broadcast_to(rng.uniform(-config.max_speed, config.max_speed, size=d), lattice.shape))
        material = int(rng.integers(len(config.materials))) if config.mixed else scene_material
        ms.append(np.full(len(lattice), material, dtype=np.int64))
    return {"x": np.concatenate(xs), "v": np.concatenate(vs), "material": np.concatenate(ms), "volume": h ** d}


class _Moments:
    """Per-axis mean and standard deviation pooled over arrays (Chan et al.'s parallel update)."""

    def __init__(self, dim: int):
        self.n, self.mean, self.m2 = 0, np.zeros(dim), np.zeros(dim)

    def add(self, values: np.ndarray) -> None:
        values = values.reshape(-1, values.shape[-1]).astype(np.float64)
        n = len(values)
        if n == 0:
            return
        mean = values.mean(axis=0)
        m2 = ((values - mean) ** 2).sum(axis=0)
        total = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / total
        self.n = total

    def result(self) -> tuple[list[float], list[float]]:
        return self.mean.tolist(), np.sqrt(self.m2 / self.n).tolist()


def _stable_substeps(config: SceneConfig, materials) -> int:
    speed = max(m.wave_speed() for m in materials) + config.max_speed * math.sqrt(config.dim)
    return max(1, math.ceil(config.frame_dt * speed * config.resolution / (config.size * config.max_cfl)))


def _materials_and_substeps(config: SceneConfig, substeps) -> tuple[list, int]:
    """The scene's materials and the MPM steps per frame (the fewest stable ones when None)."""
    materials = [get_material(spec) for spec in config.materials]
    needed = _stable_substeps(config, materials)
    if substeps is None:
        return materials, needed
    if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < needed:
        raise SciMLError(f"substeps={substeps!r} gives an unstable MPM step for these materials and speeds "
                         f"(dt (c + |v|) / dx > max_cfl = {config.max_cfl:g}); use substeps >= {needed}")
    return materials, substeps


def _simulator(config: SceneConfig, materials, substeps: int) -> MPMSimulator:
    return MPMSimulator(config.dim, config.resolution, materials, config.frame_dt / substeps, size=config.size,
                        gravity=config.gravity, boundary=config.boundary, friction=config.wall_friction(materials),
                        padding=config.padding, max_cfl=config.max_cfl, dtype=getattr(torch, config.dtype))


def _device(device) -> torch.device:
    return torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))


def _simulate_batch(sim: MPMSimulator, scenes: list[dict], n_frames: int, substeps: int, device,
                    scene_offset: int = 0) -> list[np.ndarray]:
    """Positions ``(n_frames, N_i, d)`` (float32) of the sampled ``scenes``, simulated together."""
    counts = [len(s["x"]) for s in scenes]
    particles = sim.make_particles(
        torch.as_tensor(np.concatenate([s["x"] for s in scenes]), device=device),
        material=np.concatenate([s["material"] for s in scenes]), volume=scenes[0]["volume"],
        v=np.concatenate([s["v"] for s in scenes]),
        scene=np.repeat(np.arange(len(scenes)), counts), n_scenes=len(scenes), scene_offset=scene_offset)
    frames, _ = sim.rollout(particles, n_frames, substeps)
    return [positions.cpu().numpy().astype(np.float32) for positions in torch.split(frames, counts, dim=1)]


def confined_bounds(sim: MPMSimulator) -> list[list[float]]:
    """The box ``[[dx, size - dx]] * d`` that every particle of a finished MPM run lies in (see the module notes).

    Examples
    --------
    >>> from sciml.datasets.mpm import MPMSimulator
    >>> confined_bounds(MPMSimulator(2, 16, ["fluid"], 1e-4))
    [[0.0625, 0.9375], [0.0625, 0.9375]]
    """
    return [[sim.dx, sim.size - sim.dx] for _ in range(sim.dim)]


def _scene_metadata(config: SceneConfig, sim: MPMSimulator, n_frames: int, substeps: int) -> dict[str, Any]:
    """The GNS metadata keys that do not need the data, and the simulation settings."""
    radius = config.connectivity_radius if config.connectivity_radius is not None else 4 * config.spacing
    return {"bounds": confined_bounds(sim), "walls": sim.bounds, "sequence_length": n_frames,
            "default_connectivity_radius": radius, "dim": config.dim, "dt": config.frame_dt, "substeps": substeps,
            "mpm_dt": sim.dt, "dx": sim.dx,
            "materials": [m.config() for m in sim.materials],
            "particle_types": {m.name: PARTICLE_TYPES[m.name] for m in sim.materials}}


def _statistics(positions) -> dict[str, list[float]]:
    """GNS ``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` over every frame and particle of ``positions``."""
    velocity, acceleration = _Moments(positions[0].shape[-1]), _Moments(positions[0].shape[-1])
    for p in positions:
        p = np.asarray(p, dtype=np.float64)
        velocity.add(np.diff(p, axis=0))
        acceleration.add(np.diff(p, n=2, axis=0))
    vel_mean, vel_std = velocity.result()
    acc_mean, acc_std = acceleration.result()
    return {"vel_mean": vel_mean, "vel_std": vel_std, "acc_mean": acc_mean, "acc_std": acc_std}


def _config(config) -> SceneConfig:
    if config is None:
        return SceneConfig()
    if isinstance(config, dict):
        unknown = sorted(set(config) - {f.name for f in dataclasses.fields(SceneConfig)})
        if unknown:
            raise SciMLError(f"unknown scene setting {unknown[0]!r}; valid settings are "
                             f"{[f.name for f in dataclasses.fields(SceneConfig)]}")
        return SceneConfig(**config)
    return config


def simulate_scenes(config: SceneConfig | dict | None, n_scenes: int, n_frames: int, substeps: int | None,
                    seed: int, device=None) -> ParticleTrajectories:
    """Draw ``n_scenes`` random scenes and simulate ``n_frames`` frames of each.

    Parameters
    ----------
    config : SceneConfig, dict or None
        Scene settings (a dict is passed to :class:`SceneConfig`; None: defaults).
    n_scenes : int
        Number of scenes.
    n_frames : int
        Frames per scene including the initial one (>= 3, for accelerations).
    substeps : int or None
        MPM steps per frame (``dt = frame_dt / substeps``); None: the fewest within
        ``max_cfl`` (e.g. 21 at the default 64^2 settings).
    seed : int
        Scene ``i`` is drawn from ``numpy.random.default_rng([seed, i])``.
    device : str or torch.device, optional
        Where to simulate (default: CUDA when available, else the CPU).

    Returns
    -------
    ParticleTrajectories
        Positions, particle types, material indices and metadata.

    Raises
    ------
    SciMLError
        For bad settings or too few substeps; :class:`~sciml.datasets.mpm.MPMInstabilityError`
        (naming the step, scene and material) when a simulation goes unstable.
    """
    config = _config(config)
    for key, value, least in (("n_scenes", n_scenes, 1), ("n_frames", n_frames, 3), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SciMLError(f"{key} must be an integer >= {least}, got {value!r}")
    materials, substeps = _materials_and_substeps(config, substeps)
    device = _device(device)
    sim = _simulator(config, materials, substeps)
    out = ParticleTrajectories()
    types = np.array([PARTICLE_TYPES[m.name] for m in materials], dtype=np.int64)
    for start in range(0, n_scenes, config.batch_size):
        scenes = [sample_scene(config, np.random.default_rng([seed, i]), sim.bounds)
                  for i in range(start, min(start + config.batch_size, n_scenes))]
        for positions, scene in zip(_simulate_batch(sim, scenes, n_frames, substeps, device, start), scenes):
            out.positions.append(positions)
            out.material.append(scene["material"])
            out.particle_type.append(types[scene["material"]])
    out.metadata = {**_scene_metadata(config, sim, n_frames, substeps), **_statistics(out.positions),
                    "n_scenes": n_scenes, "seed": seed, "config": config.to_dict()}
    return out


class ParticleScenes(TrajectoryGenerator, name="mpm"):
    """Random MPM box-drop scenes as a registered particle-trajectory generator (``sciml generate mpm``).

    The scenes of :func:`simulate_scenes` for :func:`sciml.simulate.simulate_dataset`:
    one scene per seed the driver passes (sample ``i`` gets ``sample_seed(root, i)``), drawn
    from ``numpy.random.default_rng(seed)``, so a scene depends on its seed alone (not on
    the batch it is simulated in, up to float round-off of the batched grid). The whole
    batch of the driver (``generate.batch_size``) is one batched MPM run.

    Parameters
    ----------
    n_frames : int
        Frames per scene including the initial one (>= 3; default 100).
    substeps : int, optional
        MPM steps per frame; None: the fewest within ``max_cfl`` (:meth:`parameters`
        records the number used).
    **settings
        :class:`SceneConfig` fields (``dim``, ``resolution``, ``materials``, ``n_boxes``,
        ``box_size``, ``frame_dt``, ...) except ``batch_size``; an unknown one is refused,
        naming the valid ones. A single material name is accepted for ``materials``.

    Notes
    -----
    Layout ``"particles"``: per scene ``position (n_frames, N_i, d)`` float32 and
    ``particle_type (N_i,)`` (:data:`PARTICLE_TYPES`). :meth:`metadata` holds the GNS
    keys ``bounds`` (:func:`confined_bounds`, the box every particle stays in),
    ``sequence_length``, ``default_connectivity_radius``, ``dim`` and ``dt`` (the frame
    interval), plus ``walls`` (where the walls are: the initial boxes lie inside,
    particles can sink past them into the padding), ``particle_types`` (material name ->
    type), ``materials``, ``substeps``, ``mpm_dt`` and ``dx``; :meth:`dataset_metadata`
    adds GNS's ``vel_mean``, ``vel_std``, ``acc_mean`` and ``acc_std`` over the whole
    finished dataset.

    Examples
    --------
    >>> from sciml.datasets.particle_scenes import ParticleScenes
    >>> generator = ParticleScenes(resolution=16, materials="elastic", n_boxes=[1, 1], max_speed=0.0, n_frames=3)
    >>> out = generator.simulate([5, 6], device="cpu")
    >>> [p.shape[0] for p in out["position"]], generator.metadata()["particle_types"]
    ([3, 3], {'elastic': 8})
    >>> ParticleScenes(colour="red")
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: unknown mpm setting(s) ['colour']; valid: n_frames, substeps, dim, resolution, ...
    """

    layout = "particles"
    version = "2"  # 2: metadata bounds are the confined box, the walls moved to "walls"

    def __init__(self, n_frames: int = 100, substeps: int | None = None, **settings):
        valid = [f.name for f in dataclasses.fields(SceneConfig) if f.name != "batch_size"]
        unknown = sorted(set(settings) - set(valid))
        if unknown:
            raise SciMLError(f"unknown mpm setting(s) {unknown}; valid: n_frames, substeps, {', '.join(valid)}")
        if isinstance(settings.get("materials"), (str, dict)):
            settings["materials"] = [settings["materials"]]
        if isinstance(n_frames, bool) or not isinstance(n_frames, int) or n_frames < 3:
            raise SciMLError(f"mpm n_frames must be an integer >= 3 (accelerations need three frames), "
                             f"got {n_frames!r}")
        self.config = SceneConfig(**settings)
        self.materials, self.substeps = _materials_and_substeps(self.config, substeps)
        self.n_frames = n_frames
        self.sim = _simulator(self.config, self.materials, self.substeps)
        self.types = np.array([PARTICLE_TYPES[m.name] for m in self.materials], dtype=np.int64)

    def parameters(self) -> dict[str, Any]:
        """The scene settings as JSON (materials in full), ``n_frames`` and the ``substeps`` used."""
        settings = self.config.to_dict()
        del settings["batch_size"]
        return {"n_frames": self.n_frames, "substeps": self.substeps, **settings}

    def coords(self) -> dict[str, np.ndarray]:
        """The frame times ``k * frame_dt``."""
        return {"time": self.config.frame_dt * np.arange(self.n_frames)}

    def metadata(self) -> dict[str, Any]:
        """GNS-style metadata without the data statistics (see Notes)."""
        return _scene_metadata(self.config, self.sim, self.n_frames, self.substeps)

    def simulate(self, seeds, device=None) -> dict:
        """``{"position": [(n_frames, N_i, d)], "particle_type": [(N_i,)]}``, one scene per seed.

        Runs on ``device`` (default: CUDA when available, else the CPU). An unstable run
        raises :class:`~sciml.errors.SciMLError` naming the sample of the batch, its seed,
        the step and the particle.
        """
        seeds = [int(s) for s in seeds]
        if not seeds:
            return {"position": [], "particle_type": []}
        scenes = [sample_scene(self.config, np.random.default_rng(s), self.sim.bounds) for s in seeds]
        try:
            positions = _simulate_batch(self.sim, scenes, self.n_frames, self.substeps, _device(device))
        except MPMInstabilityError as err:
            raise SciMLError(f"sample {err.scene} of this batch (seed {seeds[err.scene]}): {err}") from None
        return {"position": positions, "particle_type": [self.types[s["material"]] for s in scenes]}

    def dataset_metadata(self, read_all) -> dict[str, Any]:
        """GNS's ``vel_mean``, ``vel_std``, ``acc_mean``, ``acc_std`` over the whole dataset (per axis,
        of the frame differences, in length per frame and per frame^2)."""
        return _statistics(read_all().fields["position"])
