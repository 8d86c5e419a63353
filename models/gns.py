"""GNS: the full-graph learned particle simulator, and the particle conventions both particle models share.

Follows Sanchez-Gonzalez et al., "Learning to simulate complex physics with graph
networks" (ICML 2020) and DeepMind's ``learning_to_simulate`` code:

* input: the last ``H + 1`` positions of every particle (``H = 5`` velocities),
  particle-major ``(N, H + 1, d)``; time step 1 (velocities and accelerations are
  position differences);
* node features: the ``H`` normalised velocities, the distances to the lower and upper
  walls divided by the connectivity radius and clipped to ``[-1, 1]``, and a learned
  embedding of the particle type; edge features (radius graph): the relative
  displacement ``(x_j - x_i) / R`` and its norm;
* encoder MLPs (LayerNorm), ``M`` residual interaction-network blocks
  (:mod:`~sciml.models.interaction_network`, sum aggregation), decoder MLP to the
  normalised acceleration;
* semi-implicit Euler: ``v_{t+1} = v_t + a``, ``x_{t+1} = x_t + v_{t+1}``;
* training: random-walk noise on the input velocities (:func:`random_walk_noise`), loss =
  mean squared error of the normalised acceleration, whose target is computed from the
  noisy inputs and the next position shifted by the last noise, so the model learns to
  undo the noise; kinematic particles (type 3 in the GNS data) get no noise, no loss,
  and follow prescribed positions in a rollout.

Normalisation (the GNS metadata dict): ``{"vel_mean", "vel_std", "acc_mean", "acc_std"}``,
each a list of ``d`` numbers; :func:`compute_normalization` gets them from trajectories
and, as GNS does, widens the standard deviations by the training noise,
``sqrt(std^2 + noise_std^2)``. Departure: the radius graph is built by
:mod:`~sciml.models.neighbours` (cell list / k-d tree) instead of a k-d tree in the data
pipeline. Shapes: model inputs are particle-major ``(N, time, d)`` as in GNS; whole
trajectories (for :func:`compute_normalization`) are time-major ``(batch, time, N, d)``
as elsewhere in the project.

Examples
--------
>>> import torch
>>> from sciml.models.gns import GNS
>>> model = GNS(radius=0.3, hidden=16, n_message_passing=2)
>>> history = 0.5 + 0.01 * torch.randn(10, 6, 2).cumsum(1)
>>> model.step(history, torch.zeros(10, dtype=torch.long), [[0, 1], [0, 1]]).shape
torch.Size([10, 2])
"""

from __future__ import annotations

import json

import torch
from torch import nn

from sciml.errors import SciMLError
from sciml.models.base import choice, positive_int, spatial_dim
from sciml.models.interaction_network import AGGREGATIONS, Processor, mlp
from sciml.models.neighbours import radius_graph

NORMALIZATION_KEYS = ("vel_mean", "vel_std", "acc_mean", "acc_std")
KINEMATIC_TYPE = 3
"""The particle type of kinematic (boundary) particles in the GNS data sets."""


def positive_float(key: str, value) -> float:
    """``value`` if it is a positive finite number, else a one-line error naming ``model.<key>``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise SciMLError(f"model.{key} must be a positive number, got {value!r}")
    return float(value)


def check_normalization(normalization, dim: int) -> dict:
    """The GNS statistics dict, validated (``None`` gives zero means and unit deviations).

    Examples
    --------
    >>> check_normalization(None, 2)["acc_std"]
    [1.0, 1.0]
    """
    if normalization is None:
        return {key: [0.0 if key.endswith("mean") else 1.0] * dim for key in NORMALIZATION_KEYS}
    if not isinstance(normalization, dict) or set(normalization) - set(NORMALIZATION_KEYS) \
            or set(NORMALIZATION_KEYS) - set(normalization):
        got = sorted(normalization) if isinstance(normalization, dict) else type(normalization).__name__
        raise SciMLError(f"model.normalization must be a dict with exactly the keys {list(NORMALIZATION_KEYS)}, "
                         f"got {got}: use compute_normalization(trajectories)")
    out = {}
    for key in NORMALIZATION_KEYS:
        value = torch.as_tensor(normalization[key], dtype=torch.float64).reshape(-1)
        if value.numel() == 1:
            value = value.expand(dim)
        if value.numel() != dim or not bool(torch.isfinite(value).all()):
            raise SciMLError(f"model.normalization[{key!r}] must be {dim} finite numbers, got {normalization[key]!r}")
        if key.endswith("std") and bool((value <= 0).any()):
            raise SciMLError(f"model.normalization[{key!r}] = {value.tolist()} has a non-positive deviation: "
                             "give positive standard deviations (or a positive noise_std to compute_normalization)")
        out[key] = value.tolist()
    return out


def compute_normalization(trajectories, noise_std: float = 0.0) -> dict:
    """GNS normalisation statistics from position trajectories ``(batch, time, N, d)`` or ``(time, N, d)``.

    Means and standard deviations, per axis, of the velocities (first time differences)
    and accelerations (second differences) over all trajectories, times and particles;
    the deviations are widened by the training noise as in GNS, ``sqrt(std^2 + noise_std^2)``.

    Examples
    --------
    >>> import torch
    >>> t = torch.arange(4.0)[:, None, None]
    >>> x = torch.cat([0.1 * t + torch.rand(1, 5, 1), 0.01 * t**2 + torch.rand(1, 5, 1)], dim=2)
    >>> stats = compute_normalization(x, noise_std=0.001)
    >>> [round(v, 3) + 0.0 for v in stats["vel_mean"]], [round(v, 3) + 0.0 for v in stats["acc_mean"]]
    ([0.1, 0.03], [0.0, 0.02])
    """
    x = torch.as_tensor(trajectories, dtype=torch.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] < 3:
        raise SciMLError(f"trajectories must be (batch, time >= 3, particles, dim), got shape {tuple(x.shape)}")
    vel = x.diff(dim=1)
    acc = vel.diff(dim=1)
    noise_std = float(noise_std)
    stats = {}
    for name, value in (("vel", vel), ("acc", acc)):
        flat = value.reshape(-1, x.shape[-1])
        stats[f"{name}_mean"] = flat.mean(0).tolist()
        stats[f"{name}_std"] = torch.sqrt(flat.var(0, unbiased=False) + noise_std ** 2).tolist()
        if min(stats[f"{name}_std"]) <= 0:
            raise SciMLError(f"the {'velocities' if name == 'vel' else 'accelerations'} have zero spread on some axis "
                             f"({stats[f'{name}_std']}): pass noise_std > 0 or give the statistics by hand")
    return stats


def check_bounds(bounds, dim: int, like: torch.Tensor) -> torch.Tensor:
    """``bounds`` as a ``(d, 2)`` tensor ``[[lower, upper], ...]`` like ``like``, or a one-line error."""
    try:
        b = torch.as_tensor(bounds, dtype=like.dtype, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        b = None
    if b is None or b.shape != (dim, 2) or not bool(torch.isfinite(b).all()) or bool((b[:, 1] <= b[:, 0]).any()):
        raise SciMLError(f"bounds must be {dim} [lower, upper] pairs with lower < upper, got {bounds!r}")
    return b


def check_inside(points: torch.Tensor, bounds: torch.Tensor, what: str) -> None:
    """One-line error if any of ``points (..., d)`` lies outside ``bounds``."""
    outside = ((points < bounds[:, 0]) | (points > bounds[:, 1])).any(-1)
    if bool(outside.any()):
        flat = outside.reshape(-1)
        first = int(flat.nonzero()[0])
        where = [round(v, 6) for v in points.reshape(-1, points.shape[-1])[first].tolist()]
        raise SciMLError(f"{int(flat.sum())} {what} lie outside the domain bounds {bounds.tolist()} "
                         f"(e.g. {where}): drop or clip them, or pass bounds that contain them")


def check_particles(position_sequence, particle_type, bounds, *, dim: int, length: int, n_types: int,
                    batch=None) -> torch.Tensor:
    """Validate a particle-major position history and its types; return the bounds tensor.

    ``position_sequence`` must be ``(N, length, dim)``, finite and inside ``bounds``;
    ``particle_type`` ``(N,)`` integers in ``[0, n_types)``; ``batch`` ``(N,)`` or None.
    """
    x = position_sequence
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[1:] != (length, dim) or not x.dtype.is_floating_point:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise SciMLError(f"positions must be a float tensor of shape (particles, {length}, {dim}) "
                         f"(the last {length} positions of each particle), got {shape}")
    if len(x) == 0:
        raise SciMLError("there are no particles: give at least one")
    if not bool(torch.isfinite(x).all()):
        raise SciMLError("positions contain NaN or infinite values: drop or fix those particles")
    t = particle_type
    if not isinstance(t, torch.Tensor) or t.shape != (len(x),) or t.dtype.is_floating_point or t.dtype == torch.bool:
        shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise SciMLError(f"particle_type must be an integer tensor of shape ({len(x)},), got {shape}")
    if bool((t < 0).any()) or bool((t >= n_types).any()):
        raise SciMLError(f"particle types must lie in [0, {n_types}), got values up to {int(t.max())}: "
                         f"raise model.n_particle_types")
    if batch is not None and (not isinstance(batch, torch.Tensor) or batch.shape != (len(x),)):
        raise SciMLError(f"batch must be a tensor of shape ({len(x)},) giving each particle's scene")
    b = check_bounds(bounds, dim, x)
    check_inside(x, b, "particle positions")
    return b


def random_walk_noise(position_sequence: torch.Tensor, noise_std: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """GNS training noise for a particle-major history ``(N, H + 1, d)``.

    Each of the ``H`` velocities gets a random walk of Gaussian steps of standard
    deviation ``noise_std / sqrt(H)`` (so the last velocity's noise has deviation
    ``noise_std``); positions get the integrated walk, the first position none.

    Examples
    --------
    >>> import torch
    >>> noise = random_walk_noise(torch.zeros(1000, 6, 2), 0.1, torch.Generator().manual_seed(0))
    >>> last_velocity_noise = noise[:, -1] - noise[:, -2]
    >>> noise[:, 0].abs().max().item(), round(last_velocity_noise.std().item(), 2)
    (0.0, 0.1)
    """
    n_vel = position_sequence.shape[1] - 1
    steps = torch.randn(position_sequence[:, 1:].shape, generator=generator, dtype=position_sequence.dtype,
                        device=position_sequence.device) * (noise_std / n_vel ** 0.5)
    velocity_noise = steps.cumsum(1)
    return torch.cat([torch.zeros_like(position_sequence[:, :1]), velocity_noise.cumsum(1)], dim=1)


def next_positions(position_sequence: torch.Tensor, acceleration: torch.Tensor) -> torch.Tensor:
    """Semi-implicit Euler with unit time step: ``x_t + (x_t - x_{t-1}) + a``."""
    last = position_sequence[:, -1]
    return last + (last - position_sequence[:, -2]) + acceleration


def target_accelerations(position_sequence: torch.Tensor, next_position: torch.Tensor) -> torch.Tensor:
    """The acceleration that :func:`next_positions` needs to reach ``next_position``."""
    last = position_sequence[:, -1]
    return (next_position - last) - (last - position_sequence[:, -2])


class ParticleEncoder(nn.Module):
    """GNS node and edge encoders: features of :meth:`node_features` / :meth:`edge_features` to latents.

    Also holds the normalisation statistics (buffers), so both particle models share one
    feature convention.

    Parameters
    ----------
    dim, history, n_particle_types, type_embedding, hidden, mlp_layers : int
        Spatial dimension, velocities per particle, particle types, type-embedding width,
        latent width, MLP hidden layers.
    radius : float
        Connectivity radius (scales displacements and wall distances).
    normalization : dict
        Validated GNS statistics (:func:`check_normalization`).
    """

    def __init__(self, dim: int, history: int, n_particle_types: int, type_embedding: int, hidden: int,
                 mlp_layers: int, radius: float, normalization: dict):
        super().__init__()
        self.radius = radius
        self.type_embedding = nn.Embedding(n_particle_types, type_embedding)
        nn.init.xavier_uniform_(self.type_embedding.weight)
        self.node_mlp = mlp(history * dim + 2 * dim + type_embedding, hidden, hidden, mlp_layers)
        self.edge_mlp = mlp(dim + 1, hidden, hidden, mlp_layers)
        for key in NORMALIZATION_KEYS:
            self.register_buffer(key, torch.tensor(normalization[key], dtype=torch.get_default_dtype()))

    def node_features(self, position_sequence, particle_type, bounds):
        """``[normalised velocities (H d), clipped wall distances (2 d), type embedding]`` per particle."""
        velocities = (position_sequence.diff(dim=1) - self.vel_mean) / self.vel_std
        last = position_sequence[:, -1]
        walls = torch.cat([last - bounds[:, 0], bounds[:, 1] - last], dim=1) / self.radius
        return torch.cat([velocities.flatten(1), walls.clamp(-1.0, 1.0), self.type_embedding(particle_type)], dim=1)

    def edge_features(self, positions, edge_index):
        """``[(x_sender - x_receiver) / R, |x_sender - x_receiver| / R]`` per edge."""
        displacement = (positions[edge_index[0]] - positions[edge_index[1]]) / self.radius
        return torch.cat([displacement, displacement.norm(dim=1, keepdim=True)], dim=1)

    def forward(self, position_sequence, particle_type, bounds, edge_index):
        """Node latents ``(N, hidden)`` and edge latents ``(E, hidden)``."""
        nodes = self.node_mlp(self.node_features(position_sequence, particle_type, bounds))
        edges = self.edge_mlp(self.edge_features(position_sequence[:, -1], edge_index))
        return nodes, edges

    def normalize_acceleration(self, acceleration):
        return (acceleration - self.acc_mean) / self.acc_std

    def denormalize_acceleration(self, acceleration):
        return acceleration * self.acc_std + self.acc_mean


class ParticleModel(nn.Module):
    """What the particle models share: options, checks, Euler stepping, noise and the GNS loss.

    A subclass sets ``self.encoder`` (:class:`ParticleEncoder`) and defines ``forward``,
    the normalised accelerations of the particles it is given.
    """

    def _common_options(self, dim, radius, history, n_particle_types, kinematic_types, normalization,
                        max_neighbours) -> dict:
        dim = spatial_dim(dim, type(self).__name__, allowed=(2, 3))
        if not isinstance(kinematic_types, (list, tuple)) or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in kinematic_types):
            raise SciMLError(f"model.kinematic_types must be a list of particle types, got {kinematic_types!r}")
        if max_neighbours is not None:
            positive_int("max_neighbours", max_neighbours)
        return dict(dim=dim, radius=positive_float("radius", radius), history=positive_int("history", history),
                    n_particle_types=positive_int("n_particle_types", n_particle_types),
                    kinematic_types=list(kinematic_types), normalization=check_normalization(normalization, dim),
                    max_neighbours=max_neighbours)

    def _store_config(self, config: dict) -> None:
        self.config = json.loads(json.dumps(config))

    @property
    def dim(self) -> int:
        return self.config["dim"]

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def check(self, position_sequence, particle_type, bounds, batch=None, length=None) -> torch.Tensor:
        """Validate inputs (see :func:`check_particles`); return the bounds tensor."""
        return check_particles(position_sequence, particle_type, bounds, dim=self.dim,
                               length=self.config["history"] + 1 if length is None else length,
                               n_types=self.config["n_particle_types"], batch=batch)

    def kinematic(self, particle_type: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the kinematic particles."""
        kinds = torch.tensor(self.config["kinematic_types"], dtype=particle_type.dtype, device=particle_type.device)
        return torch.isin(particle_type, kinds)

    def graph(self, positions, batch=None) -> torch.Tensor:
        """The radius graph ``(2, E)`` of ``positions (N, d)``."""
        return radius_graph(positions, self.config["radius"], batch=batch,
                            max_neighbours=self.config["max_neighbours"])

    def noisy_targets(self, position_sequence, particle_type, noise_std, generator=None):
        """Split ``(N, H + 2, d)`` into noisy inputs ``(N, H + 1, d)`` and normalised target accelerations.

        The GNS recipe: random-walk noise on the inputs (not on kinematic particles); the
        target is the acceleration from the noisy last positions to the next position
        shifted by the last position noise.
        """
        inputs, following = position_sequence[:, :-1], position_sequence[:, -1]
        noise = random_walk_noise(inputs, noise_std, generator) if noise_std > 0 else torch.zeros_like(inputs)
        noise = noise * (~self.kinematic(particle_type))[:, None, None].to(noise.dtype)
        noisy = inputs + noise
        target = target_accelerations(noisy, following + noise[:, -1])
        return noisy, self.encoder.normalize_acceleration(target)

    def accelerations(self, position_sequence, particle_type, bounds, batch=None) -> torch.Tensor:
        """Predicted accelerations ``(N, d)`` in position units per step squared."""
        b = self.check(position_sequence, particle_type, bounds, batch)
        return self.encoder.denormalize_acceleration(self(position_sequence, particle_type, b, batch))

    def step(self, position_sequence, particle_type, bounds, batch=None) -> torch.Tensor:
        """Next positions ``(N, d)`` of the particles whose history ``(N, H + 1, d)`` is given."""
        return next_positions(position_sequence, self.accelerations(position_sequence, particle_type, bounds, batch))

    def _prescribed(self, proposed, current, particle_type, kinematic_positions, k):
        """Kinematic particles follow ``kinematic_positions[:, k]`` (or stay put when it is None)."""
        mask = self.kinematic(particle_type)
        if not bool(mask.any()):
            return proposed
        forced = current if kinematic_positions is None else kinematic_positions[:, k]
        return torch.where(mask[:, None], forced, proposed)

    def _check_kinematic(self, kinematic_positions, n_particles, n_steps, like):
        if kinematic_positions is None:
            return None
        k = torch.as_tensor(kinematic_positions, dtype=like.dtype, device=like.device)
        if k.shape != (n_particles, n_steps, self.dim):
            raise SciMLError(f"kinematic_positions must be (particles, n_steps, dim) = ({n_particles}, {n_steps}, "
                             f"{self.dim}), got {tuple(k.shape)}")
        return k


class GNS(ParticleModel):
    """Graph Network-based Simulator on the full radius graph (Sanchez-Gonzalez et al. 2020).

    Parameters
    ----------
    radius : float
        Connectivity radius ``R`` (GNS metadata ``default_connectivity_radius``).
    dim : {2, 3}
        Spatial dimension.
    history : int
        Velocities per particle ``H`` (the input is the last ``H + 1`` positions).
    n_particle_types : int
        Number of particle types (GNS: 9).
    type_embedding : int
        Width of the particle-type embedding (GNS: 16).
    hidden : int
        Latent width (GNS: 128).
    mlp_layers : int
        Hidden layers per MLP (GNS: 2).
    n_message_passing : int
        Processor blocks ``M`` (GNS: 10).
    aggregation : {"sum", "mean"}
        Message aggregation (GNS: sum).
    max_neighbours : int, optional
        Cap on received edges per particle (nearest kept).
    kinematic_types : list of int
        Particle types that are not simulated (GNS: ``[3]``).
    normalization : dict, optional
        GNS statistics (:func:`compute_normalization`); None: zero mean, unit deviation.

    Examples
    --------
    >>> import torch
    >>> model = GNS(radius=0.2, dim=3, hidden=8, n_message_passing=1).double()
    >>> x = 0.5 + 0.01 * torch.randn(20, 6, 3, dtype=torch.float64)
    >>> model(x, torch.zeros(20, dtype=torch.long), torch.tensor([[0.0, 1.0]] * 3)).shape
    torch.Size([20, 3])
    >>> model.rollout(x, torch.zeros(20, dtype=torch.long), [[0, 1]] * 3, n_steps=4).shape
    torch.Size([20, 4, 3])
    """

    def __init__(self, radius: float, dim: int = 2, history: int = 5, n_particle_types: int = 9,
                 type_embedding: int = 16, hidden: int = 128, mlp_layers: int = 2, n_message_passing: int = 10,
                 aggregation: str = "sum", max_neighbours: int | None = None,
                 kinematic_types: list = (KINEMATIC_TYPE,), normalization: dict | None = None):
        super().__init__()
        config = self._common_options(dim, radius, history, n_particle_types, kinematic_types, normalization,
                                      max_neighbours)
        config.update(type_embedding=positive_int("type_embedding", type_embedding),
                      hidden=positive_int("hidden", hidden), mlp_layers=positive_int("mlp_layers", mlp_layers),
                      n_message_passing=positive_int("n_message_passing", n_message_passing),
                      aggregation=choice("aggregation", aggregation, AGGREGATIONS))
        self._store_config(config)
        c = self.config
        self.encoder = ParticleEncoder(c["dim"], c["history"], c["n_particle_types"], c["type_embedding"],
                                       c["hidden"], c["mlp_layers"], c["radius"], c["normalization"])
        self.processor = Processor(c["hidden"], c["n_message_passing"], c["mlp_layers"], c["aggregation"])
        self.decoder = mlp(c["hidden"], c["hidden"], c["dim"], c["mlp_layers"], layer_norm=False)

    def forward(self, position_sequence: torch.Tensor, particle_type: torch.Tensor, bounds: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised accelerations ``(N, d)`` from histories ``(N, H + 1, d)`` (no input checks;
        ``bounds`` a ``(d, 2)`` tensor)."""
        edge_index = self.graph(position_sequence[:, -1], batch)
        nodes, edges = self.encoder(position_sequence, particle_type, bounds, edge_index)
        nodes, _ = self.processor(nodes, edges, edge_index)
        return self.decoder(nodes)

    def rollout(self, position_sequence, particle_type, bounds, n_steps: int, batch=None,
                kinematic_positions=None) -> torch.Tensor:
        """Advance ``n_steps`` steps from the history ``(N, H + 1, d)``; returns ``(N, n_steps, d)``.

        Only the initial history is checked against the bounds; predicted positions are not
        clipped (GNS convention; wall features saturate outside). Kinematic particles follow
        ``kinematic_positions (N, n_steps, d)``, or stay where they are when it is None.
        """
        b = self.check(position_sequence, particle_type, bounds, batch)
        positive_int("n_steps", n_steps)
        kin = self._check_kinematic(kinematic_positions, len(position_sequence), n_steps, position_sequence)
        sequence, out = position_sequence, []
        for k in range(n_steps):
            acc = self.encoder.denormalize_acceleration(self(sequence, particle_type, b, batch))
            new = self._prescribed(next_positions(sequence, acc), sequence[:, -1], particle_type, kin, k)
            out.append(new)
            sequence = torch.cat([sequence[:, 1:], new[:, None]], dim=1)
        return torch.stack(out, dim=1)

    def loss(self, position_sequence, particle_type, bounds, noise_std: float = 0.0, batch=None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One-step GNS loss on ``(N, H + 2, d)`` (inputs then the next position): mean squared
        error of the normalised acceleration over the non-kinematic particles, with
        random-walk input noise of last-step deviation ``noise_std``."""
        b = self.check(position_sequence, particle_type, bounds, batch, length=self.config["history"] + 2)
        noisy, target = self.noisy_targets(position_sequence, particle_type, noise_std, generator)
        free = ~self.kinematic(particle_type)
        return (self(noisy, particle_type, b, batch) - target)[free].square().mean()
