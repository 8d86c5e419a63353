"""GIOROM: a reduced-order neural operator that advances a dense point cloud from a sparse graph.

Follows Viswanath et al., "Reduced-Order Neural Operators: Learning Lagrangian Dynamics on
Highly Sparse Graphs" (arXiv:2407.03925, 2024, code ``HrishikeshVish/GIOROM``). One step:

1. **sample** a small fraction of the particles (``sample_ratio``, random or farthest-point,
   :mod:`~sciml.models.neighbours`), kept fixed through a rollout; a sample that leaves a
   scene's graph empty or mostly disconnected is refused (:meth:`GIOROM.sample`);
2. build the **radius graph** of the sampled particles (radius ``radius``, larger than a
   full-resolution GNS radius since the sample is sparse); node and edge features are the
   GNS ones (:class:`~sciml.models.gns.ParticleEncoder`: type embedding, ``H`` normalised
   velocities, wall distances clipped by the radius; relative displacements);
3. ``n_message_passing`` **interaction-network** blocks
   (:mod:`~sciml.models.interaction_network`, mean aggregation);
4. a **kernel integral** (graph neural operator, Li et al., "Neural operator: graph kernel
   network for PDEs", 2020; the GNO layer of GINO, Li et al. 2023) from the sampled
   particles onto a regular **latent grid** spanning the bounds,
   ``z(g) = mean_{x_j in B(g, r_lat)} kappa((x_j - g) / r_lat) * h_j``;
5. a **transformer** encoder on the latent grid tokens (plus an embedding of their
   coordinates);
6. the same kind of kernel integral **back** from the grid to the sampled particles, merged
   with their latents, then ``n_message_passing`` more interaction-network blocks and the
   decoder MLP to normalised **accelerations** of the sampled particles;
7. a **query decoder** (the neural field): at any point ``x``,
   ``a(x) = MLP(mean_{x_j in B(x, r_x)} kappa_q((x_j - x) / r_x) * V[h_j, a_j])``, a kernel
   interpolation from the sampled particles' final latents and predicted accelerations,
   so the full cloud (e.g. ``10^5`` points) is advanced from a graph on ``~10^3``. The
   ball's radius is ``r_x = r_q`` (``query_radius``) wherever a sampled particle lies
   within ``r_q``; at a point with none (a droplet split off from the sampled ones, a
   particle that drifted away) it widens to the distance of the ``query_neighbours``-th
   nearest sampled particle of the scene, so the field is defined at every point (the
   kernel still sees offsets in the unit ball) and a rollout never stops for want of
   support. The sampled particles are binned once per step
   (:class:`~sciml.models.neighbours.RadiusIndex`) and the queries are searched and
   decoded chunk by chunk (:data:`QUERY_CHUNK`), the kernel's first layer taking the
   offsets the search computed: the same sum as over all pairs at once, added in
   another order (float round-off apart), at a fraction of the time and memory.

A rollout (:meth:`GIOROM.rollout`) samples once and keeps that sample for every step, as
the paper does (the sampled particles form the reduced-order graph; the rest are
advanced by the decoder): every step advances the sampled particles with their graph
prediction and every other particle with the decoded field (semi-implicit Euler on its
own velocity, GNS convention). Training (:meth:`GIOROM.loss`): GNS random-walk noise on
the whole cloud; loss = MSE of the normalised accelerations at the sampled particles
plus MSE of the decoded ones at query particles.

Departures from the paper's code, all deliberate: the kernels are stationary, of the
offset scaled by the radius (an MLP ``kappa``, Hadamard product with the features and a
Monte-Carlo mean, neuraloperator's ``linear`` transform) rather than of the raw
coordinates; latent coordinates are the bounds mapped to the unit box, ``r_lat`` is
``latent_radius`` grid spacings; the transformer is a standard pre-norm softmax encoder
(the code uses GNOT's linear attention); the grid-to-particle result is added to the
processed latents through an MLP (the code replaces them); the interaction blocks are
the plain GNS ones shared with the baseline (the code adds a spectral graph convolution
and distance-weighted messages); the neural-field decoder is trained jointly with the
rest instead of separately, and it is a local kernel interpolation with the nearest-node
widening above: the paper's neural field (which follows LiCROM's code) is an MLP of a
point's coordinates and the reduced state, defined at every point without any
neighbourhood, so its code has no such case.

Examples
--------
>>> import torch
>>> from sciml.models.giorom import GIOROM
>>> stats = {"vel_mean": 0.0, "vel_std": 0.01, "acc_mean": 0.0, "acc_std": 1e-4}
>>> model = GIOROM(radius=0.3, hidden=16, sample_ratio=0.5, latent_resolution=4, heads=2, normalization=stats)
>>> history = 0.5 + 0.01 * torch.randn(40, 6, 2).cumsum(1)
>>> types = torch.zeros(40, dtype=torch.long)
>>> model.rollout(history, types, [[0, 1], [0, 1]], n_steps=2).shape
torch.Size([40, 2, 2])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sciml.errors import SciMLError
from sciml.models.base import choice, positive_int
from sciml.models.gns import (KINEMATIC_TYPE, ParticleEncoder, ParticleModel, check_inside, next_positions,
                              positive_float)
from sciml.models.interaction_network import AGGREGATIONS, Processor, aggregate, mlp
from sciml.models.neighbours import (RadiusIndex, farthest_point_sample, isolated, knn_neighbours, radius_graph,
                                     radius_neighbours, random_sample, sample_counts)

SAMPLINGS = ("farthest", "random")
MAX_CUT_OFF = 0.25
"""Largest fraction of a scene's sampled particles that :meth:`GIOROM.sample` lets the sample
cut off (no sampled neighbour within ``radius`` although they have neighbours in the full
cloud): a few such nodes (splash droplets) just get no messages; more means the graph no
longer describes the material."""
QUERY_CHUNK = 16384
"""Query points per chunk of the query decoder: a chunk's candidate pairs (about 1.7e5 at the
Lagrangian benchmark's density) stay in the CPU's cache; the fastest of 4,096 to 32,768 there
(32,768 took twice as long)."""
DEFAULT_LATENT_RESOLUTION = {2: 16, 3: 8}
"""Latent grid points per axis when ``latent_resolution`` is not given (256 / 512 tokens)."""


class KernelIntegral(nn.Module):
    """Graph kernel integral ``(K f)(x) = mean_{y in B(x, r)} kappa((y - x) / r) * f(y)``.

    The Monte-Carlo form of ``int_{B(x, r)} kappa(x, y) f(y) dy`` (neuraloperator's
    ``IntegralTransform`` with ``transform_type="linear"`` and mean reduction) with a
    stationary kernel: ``kappa`` is an MLP of the scaled offset with GELU activations and
    one output per channel of ``f`` (a diagonal kernel). A point with no neighbour gets 0.
    ``radius`` scales the offsets: one number, or one per point of ``x`` (a ball of its own
    size around each). :meth:`integrate` takes offsets a search has already computed;
    pairs sorted by ``x`` are summed as a sparse product
    (:func:`~sciml.models.interaction_network.aggregate`).

    Parameters
    ----------
    dim : int
        Dimension of the points.
    channels : int
        Channels of ``f`` (and of the result).
    kernel_hidden : int
        Width of the kernel MLP's hidden layers.
    kernel_layers : int
        Number of hidden layers of the kernel MLP.

    Examples
    --------
    >>> import torch
    >>> k = KernelIntegral(dim=2, channels=3, kernel_hidden=8)
    >>> x, y = torch.zeros(2, 2), torch.rand(5, 2)
    >>> k(x, y, torch.ones(5, 3), torch.tensor([0, 0]), torch.tensor([1, 4]), 1.0)[1].tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self, dim: int, channels: int, kernel_hidden: int, kernel_layers: int = 2):
        super().__init__()
        layers: list[nn.Module] = []
        width = dim
        for _ in range(kernel_layers):
            layers += [nn.Linear(width, kernel_hidden), nn.GELU()]
            width = kernel_hidden
        self.kernel = nn.Sequential(*layers, nn.Linear(width, channels))

    def forward(self, x: torch.Tensor, y: torch.Tensor, f_y: torch.Tensor, x_index: torch.Tensor,
                y_index: torch.Tensor, radius: float | torch.Tensor) -> torch.Tensor:
        """``x (M, d)``, ``y (N, d)``, ``f_y (N, C)``, pairs ``(x_index, y_index)`` within ``radius``
        (a number or ``(M,)``) -> ``(M, C)``."""
        offset = y.index_select(0, y_index) - x.index_select(0, x_index)
        if isinstance(radius, torch.Tensor):
            return self.integrate(offset / radius.index_select(0, x_index)[:, None], f_y, x_index, y_index, len(x))
        return self.integrate(offset, f_y, x_index, y_index, len(x), radius)

    def integrate(self, offset: torch.Tensor, f_y: torch.Tensor, x_index: torch.Tensor, y_index: torch.Tensor,
                  n_x: int, radius: float = 1.0) -> torch.Tensor:
        """The mean over each ``x``'s pairs of ``kappa(offset / radius) * f_y[y_index]``, ``(n_x, C)``, from the
        pairs' offsets ``y - x`` ``(E, d)`` (a search that computed them passes them on); ``1 / radius`` is
        folded into the kernel's first layer."""
        first = self.kernel[0]
        kappa = self.kernel[1:](nn.functional.linear(offset, first.weight / radius, first.bias))
        values = f_y.index_select(0, y_index)
        # In place when nothing is recorded for a backward pass: one (E, C) array fewer at inference.
        kappa = kappa * values if torch.is_grad_enabled() else kappa.mul_(values)
        return aggregate(kappa, x_index, n_x, "mean")


def unit_grid(resolution: list[int], dtype=None, device=None) -> torch.Tensor:
    """Points of the regular grid on ``[0, 1]^d`` with ``resolution[k]`` points on axis ``k``, ``(prod, d)``.

    Examples
    --------
    >>> unit_grid([2, 3]).tolist()
    [[0.0, 0.0], [0.0, 0.5], [0.0, 1.0], [1.0, 0.0], [1.0, 0.5], [1.0, 1.0]]
    """
    axes = [torch.linspace(0.0, 1.0, n, dtype=dtype, device=device) for n in resolution]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(resolution))


class GIOROM(ParticleModel):
    """Graph Interaction Operator for Reduced-Order Modelling (Viswanath et al. 2024).

    Parameters
    ----------
    radius : float
        Connectivity radius of the sampled particles' graph.
    dim : {2, 3}
        Spatial dimension.
    history : int
        Velocities per particle ``H``.
    n_particle_types, type_embedding, hidden, mlp_layers : int
        As in :class:`~sciml.models.gns.GNS`.
    n_message_passing : int
        Interaction-network blocks before the latent grid, and again after it.
    aggregation : {"sum", "mean"}
        Message aggregation of the interaction blocks (default mean: robust to the sample's
        varying density).
    sample_ratio : float
        Fraction of the particles in the graph, in ``(0, 1]`` (the paper: 3-30%).
    sampling : {"farthest", "random"}
        How the sample is drawn.
    latent_resolution : int or list of int, optional
        Latent grid points per axis (at least 2); default 16 in 2-D, 8 in 3-D.
    latent_radius : float
        Radius of the grid kernel integrals in grid spacings; above ``sqrt(dim) / 2`` so every
        point of the domain reaches a grid point.
    transformer_layers, heads : int
        Depth and attention heads of the transformer on the latent grid (``heads`` divides
        ``hidden``).
    kernel_hidden : int
        Width of the grid kernel MLPs.
    query_radius : float, optional
        Radius of the query decoder (default ``radius``).
    query_neighbours : int
        Sampled particles that a query point with none within ``query_radius`` is decoded
        from: its nearest ones (default 3).
    query_channels : int
        Channels (and kernel width) of the query decoder; small, and its kernel MLP has
        one hidden layer, since it runs on every (point, sampled neighbour) pair of the
        dense cloud.
    max_neighbours : int, optional
        Cap on received edges per sampled particle.
    kinematic_types : list of int
        Particle types that are not simulated.
    normalization : dict, optional
        GNS statistics (:func:`~sciml.models.gns.compute_normalization`).

    Examples
    --------
    >>> import torch
    >>> model = GIOROM(radius=0.3, dim=3, hidden=8, sample_ratio=0.5, latent_resolution=3, heads=2).double()
    >>> x = 0.5 + 0.01 * torch.randn(30, 6, 3, dtype=torch.float64)
    >>> types, bounds = torch.zeros(30, dtype=torch.long), [[0, 1]] * 3
    >>> idx = model.sample(x[:, -1])
    >>> model.step(x[idx], types[idx], bounds).shape
    torch.Size([15, 3])
    >>> model.query_dynamics(x[:, -1], x[idx], types[idx], bounds).shape
    torch.Size([30, 3])
    >>> model.query_dynamics(x[:, -1, :2], x[idx], types[idx], bounds)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: query points must be a float tensor of shape (points, 3) like the 3-D particles, got (30, 2)
    """

    def __init__(self, radius: float, dim: int = 2, history: int = 5, n_particle_types: int = 9,
                 type_embedding: int = 16, hidden: int = 128, mlp_layers: int = 2, n_message_passing: int = 2,
                 aggregation: str = "mean", sample_ratio: float = 0.1, sampling: str = "farthest",
                 latent_resolution=None, latent_radius: float = 1.5, transformer_layers: int = 2, heads: int = 4,
                 kernel_hidden: int = 64, query_radius: float | None = None, query_neighbours: int = 3,
                 query_channels: int = 16, max_neighbours: int | None = None,
                 kinematic_types: list = (KINEMATIC_TYPE,), normalization: dict | None = None):
        super().__init__()
        config = self._common_options(dim, radius, history, n_particle_types, kinematic_types, normalization,
                                      max_neighbours)
        dim = config["dim"]
        if isinstance(sample_ratio, bool) or not isinstance(sample_ratio, (int, float)) or not 0 < sample_ratio <= 1:
            raise SciMLError(f"model.sample_ratio must be in (0, 1], got {sample_ratio!r}")
        if latent_resolution is None:
            latent_resolution = DEFAULT_LATENT_RESOLUTION[dim]
        resolution = [latent_resolution] * dim if isinstance(latent_resolution, int) else latent_resolution
        if not isinstance(resolution, (list, tuple)) or len(resolution) != dim or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in resolution):
            raise SciMLError(f"model.latent_resolution must be an integer >= 2 or {dim} of them, "
                             f"got {latent_resolution!r}")
        if positive_float("latent_radius", latent_radius) <= math.sqrt(dim) / 2:
            raise SciMLError(f"model.latent_radius = {latent_radius} grid spacings leaves points out of reach of "
                             f"the latent grid: use more than sqrt({dim})/2 = {math.sqrt(dim) / 2:.3f}")
        hidden = positive_int("hidden", hidden)
        if hidden % positive_int("heads", heads):
            raise SciMLError(f"model.heads = {heads} does not divide model.hidden = {hidden}: "
                             "choose heads among the divisors of hidden")
        config.update(type_embedding=positive_int("type_embedding", type_embedding), hidden=hidden,
                      mlp_layers=positive_int("mlp_layers", mlp_layers),
                      n_message_passing=positive_int("n_message_passing", n_message_passing),
                      aggregation=choice("aggregation", aggregation, AGGREGATIONS),
                      sample_ratio=float(sample_ratio), sampling=choice("sampling", sampling, SAMPLINGS),
                      latent_resolution=list(resolution), latent_radius=float(latent_radius),
                      transformer_layers=positive_int("transformer_layers", transformer_layers), heads=heads,
                      kernel_hidden=positive_int("kernel_hidden", kernel_hidden),
                      query_radius=positive_float("query_radius", radius if query_radius is None else query_radius),
                      query_neighbours=positive_int("query_neighbours", query_neighbours),
                      query_channels=positive_int("query_channels", query_channels))
        self._store_config(config)
        c = self.config
        self.encoder = ParticleEncoder(dim, c["history"], c["n_particle_types"], c["type_embedding"], hidden,
                                       c["mlp_layers"], c["radius"], c["normalization"])
        self.processor_in = Processor(hidden, c["n_message_passing"], c["mlp_layers"], c["aggregation"])
        self.to_latent = KernelIntegral(dim, hidden, c["kernel_hidden"])
        self.grid_embedding = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=2 * hidden, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, c["transformer_layers"], norm=nn.LayerNorm(hidden),
                                                 enable_nested_tensor=False)
        self.from_latent = KernelIntegral(dim, hidden, c["kernel_hidden"])
        self.merge = mlp(2 * hidden, hidden, hidden, c["mlp_layers"])
        self.processor_out = Processor(hidden, c["n_message_passing"], c["mlp_layers"], c["aggregation"])
        self.decoder = mlp(hidden, hidden, dim, c["mlp_layers"], layer_norm=False)
        self.query_values = nn.Linear(hidden + dim, c["query_channels"])
        self.query_kernel = KernelIntegral(dim, c["query_channels"], c["query_channels"], kernel_layers=1)
        self.query_out = mlp(c["query_channels"], c["query_channels"], dim, 1, layer_norm=False)

    # ----------------------------------------------------------------------------- the network

    def _sparse(self, position_sequence, particle_type, bounds, batch):
        """Normalised accelerations ``(n, d)`` and final latents ``(n, hidden)`` of the sampled particles."""
        positions = position_sequence[:, -1]
        edge_index = self.graph(positions, batch)
        nodes, edges = self.encoder(position_sequence, particle_type, bounds, edge_index)
        nodes, edges = self.processor_in(nodes, edges, edge_index)

        unit = (positions - bounds[:, 0]) / (bounds[:, 1] - bounds[:, 0])
        scene = torch.zeros(len(positions), dtype=torch.long, device=positions.device) if batch is None else batch
        n_scenes = int(scene.max()) + 1
        grid = unit_grid(self.config["latent_resolution"], positions.dtype, positions.device)
        grids = grid.repeat(n_scenes, 1)
        grid_scene = torch.arange(n_scenes, device=positions.device).repeat_interleave(len(grid))
        r = self.config["latent_radius"] / (min(self.config["latent_resolution"]) - 1)
        to_grid, from_node = radius_neighbours(grids, unit, r, query_batch=grid_scene, point_batch=scene)
        tokens = self.to_latent(grids, unit, nodes, to_grid, from_node, r).view(n_scenes, len(grid), -1)
        tokens = self.transformer(tokens + self.grid_embedding(grid)).reshape(n_scenes * len(grid), -1)
        back = self.from_latent(unit, grids, tokens, from_node, to_grid, r)  # the same pairs, reversed

        nodes = nodes + self.merge(torch.cat([nodes, back], dim=1))
        nodes, _ = self.processor_out(nodes, edges, edge_index)
        return self.decoder(nodes), nodes

    def _decode(self, acceleration, latents, positions, batch, queries, query_batch):
        """Normalised accelerations at ``queries (M, d)`` from the sampled particles at ``positions``.

        The sampled particles are binned once (:class:`~sciml.models.neighbours.RadiusIndex`);
        the queries go through in chunks of :data:`QUERY_CHUNK`, each chunk's search and
        kernel done before the next, so the pairs never exist all at once. A query with no
        sampled particle within ``query_radius`` is decoded afterwards from its
        ``query_neighbours`` nearest ones in its scene, the ball widened to the farthest.
        """
        r = self.config["query_radius"]
        values = self.query_values(torch.cat([latents, acceleration], dim=1))
        index = RadiusIndex(positions, r, batch)
        parts, lonely = [], []
        for begin, q, s, offset in index.chunks(queries, query_batch, QUERY_CHUNK):
            size = min(QUERY_CHUNK, len(queries) - begin)
            parts.append(self.query_kernel.integrate(offset, values, q, s, size, r))
            lonely.append(begin + (torch.bincount(q, minlength=size) == 0).nonzero().flatten())
        field = torch.cat(parts)
        lonely = torch.cat(lonely)
        if len(lonely):
            near_q, near_s = knn_neighbours(queries[lonely], positions, self.config["query_neighbours"],
                                            query_batch=None if query_batch is None else query_batch[lonely],
                                            point_batch=batch)
            unsupported = torch.bincount(near_q, minlength=len(lonely)) == 0
            if bool(unsupported.any()):
                first = int(lonely[unsupported.nonzero()[0]])
                scene = 0 if query_batch is None else int(query_batch[first])
                raise SciMLError(f"{int(unsupported.sum())} query points (e.g. point {first}) belong to scene {scene}, "
                                 "which has no sampled particle: sample every scene (model.sample) and number the "
                                 "scenes alike in batch and query_batch")
            far = queries[lonely]
            distance = (positions[near_s] - far[near_q]).norm(dim=1)
            radius = distance.new_zeros(len(lonely)).scatter_reduce(0, near_q, distance, reduce="amax")
            field = field.index_copy(0, lonely, self.query_kernel(far, positions, values, near_q, near_s, radius))
        return self.query_out(field)

    def forward(self, position_sequence: torch.Tensor, particle_type: torch.Tensor, bounds: torch.Tensor,
                batch: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised accelerations ``(n, d)`` of the sampled particles whose histories ``(n, H + 1, d)``
        are given (no input checks; ``bounds`` a ``(d, 2)`` tensor)."""
        return self._sparse(position_sequence, particle_type, bounds, batch)[0]

    # ----------------------------------------------------------------------------- sampling

    def sample(self, positions: torch.Tensor, batch: torch.Tensor | None = None,
               generator: torch.Generator | None = None, ratio: float | None = None) -> torch.Tensor:
        """Indices of the particles in the sparse graph, ``round(ratio * n)`` per scene.

        ``ratio`` defaults to ``sample_ratio``; another one suits a cloud of another density
        (e.g. a denser cloud sampled to as many nodes per area as in training). Farthest-point
        sampling starts from a random particle when a ``generator`` is given, else from each
        scene's first. Refused with a one-line error (raise the ratio or ``radius``) when a
        scene's graph is empty (fewer than 2 nodes, or no edge within ``radius``) or mostly
        disconnected: more than :data:`MAX_CUT_OFF` of its nodes have no sampled neighbour
        within ``radius`` although they have neighbours in the full cloud. A few such
        nodes (the one sampled particle of a splash droplet) are accepted: the interaction
        blocks send them no messages, and the latent grid still reaches them.
        """
        if not isinstance(positions, torch.Tensor) or positions.ndim != 2 or positions.shape[1] != self.dim:
            shape = tuple(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
            raise SciMLError(f"positions to sample must be (particles, {self.dim}), got {shape}")
        ratio = self.config["sample_ratio"] if ratio is None else ratio
        counts = sample_counts(ratio, batch, len(positions)).to(positions.device)
        scene = torch.zeros(len(positions), dtype=torch.long, device=positions.device) if batch is None \
            else batch.long()
        sizes = torch.bincount(scene)
        if bool((sizes == 0).any()):
            raise SciMLError(f"scene {int((sizes == 0).nonzero()[0])} has no particles: number the scenes in batch "
                             "0, 1, 2, ... without gaps")
        if bool((counts < 2).any()):
            s = int((counts < 2).nonzero()[0])
            raise SciMLError(f"sampling ratio {ratio} keeps {int(counts[s])} of the {int(sizes[s])} particles "
                             f"of scene {s}, an empty graph: raise model.sample_ratio to at least "
                             f"{2 / int(sizes[s]):.3g}")
        if self.config["sampling"] == "farthest":
            index = farthest_point_sample(positions, counts, batch=batch, random_start=generator is not None,
                                          generator=generator)
        else:
            index = random_sample(positions, counts, batch=batch, generator=generator)
        self._check_graph(positions, scene, index, counts, ratio)
        return index

    def _check_graph(self, positions, scene, index, counts, ratio):
        """Refuse a sample whose graph is empty or mostly disconnected in some scene (see :meth:`sample`)."""
        radius, sub_scene, n_scenes = self.config["radius"], scene[index], len(counts)
        edges = radius_graph(positions[index], radius, batch=sub_scene)
        degree = torch.bincount(sub_scene[edges[1]], minlength=n_scenes)
        if bool((degree == 0).any()):
            s = int((degree == 0).nonzero()[0])
            raise SciMLError(f"sampling ratio {ratio} leaves scene {s} an empty graph ({int(counts[s])} sampled "
                             f"particles, none within model.radius = {radius} of another): raise "
                             "model.sample_ratio or model.radius")
        lonely = isolated(edges, len(index))
        if not bool(lonely.any()):
            return
        q, _ = radius_neighbours(positions[index[lonely]], positions, radius, query_batch=sub_scene[lonely],
                                 point_batch=scene)
        cut_off = torch.bincount(q, minlength=int(lonely.sum())) > 1  # more neighbours than the particle itself
        per_scene = torch.bincount(sub_scene[lonely][cut_off], minlength=n_scenes)
        fraction = per_scene.double() / counts.double()
        if bool((fraction > MAX_CUT_OFF).any()):
            s = int(torch.argmax(fraction))
            raise SciMLError(f"sampling ratio {ratio} cuts off {int(per_scene[s])} of the {int(counts[s])} sampled "
                             f"particles of scene {s} (more than {MAX_CUT_OFF:.0%}) from every other node within "
                             f"model.radius = {radius}, though they have full-cloud neighbours: raise "
                             "model.sample_ratio or model.radius")

    # ----------------------------------------------------------------------------- inference

    def _check_queries(self, query_points, bounds, query_batch):
        q = query_points
        if not isinstance(q, torch.Tensor) or q.ndim != 2 or q.shape[1] != self.dim or not q.dtype.is_floating_point:
            shape = tuple(q.shape) if isinstance(q, torch.Tensor) else type(q).__name__
            raise SciMLError(f"query points must be a float tensor of shape (points, {self.dim}) like the "
                             f"{self.dim}-D particles, got {shape}")
        if q.dtype != bounds.dtype:
            raise SciMLError(f"query points must be {bounds.dtype} like the particles, got {q.dtype}: convert them")
        if not bool(torch.isfinite(q).all()):
            raise SciMLError("query points contain NaN or infinite values: drop or fix them")
        check_inside(q, bounds, "query points")
        if query_batch is not None and (not isinstance(query_batch, torch.Tensor) or query_batch.shape != (len(q),)):
            raise SciMLError(f"query_batch must be a tensor of shape ({len(q)},) giving each query point's scene")

    def query_dynamics(self, query_points: torch.Tensor, position_sequence: torch.Tensor,
                       particle_type: torch.Tensor, bounds, batch: torch.Tensor | None = None,
                       query_batch: torch.Tensor | None = None) -> torch.Tensor:
        """Accelerations ``(M, d)`` at arbitrary ``query_points (M, d)`` from the sampled particles.

        ``position_sequence (n, H + 1, d)``, ``particle_type (n,)`` and ``batch`` describe the
        sampled particles; ``query_batch`` gives each query point's scene. A query point
        with no sampled particle within ``query_radius`` is decoded from its
        ``query_neighbours`` nearest ones; only a scene without sampled particles is refused.
        """
        b = self.check(position_sequence, particle_type, bounds, batch)
        self._check_queries(query_points, b, query_batch)
        acceleration, latents = self._sparse(position_sequence, particle_type, b, batch)
        decoded = self._decode(acceleration, latents, position_sequence[:, -1], batch, query_points, query_batch)
        return self.encoder.denormalize_acceleration(decoded)

    def _check_sample_index(self, sample_index, n):
        s = sample_index
        if not isinstance(s, torch.Tensor) or s.ndim != 1 or s.dtype.is_floating_point or len(s) < 2 \
                or int(s.min()) < 0 or int(s.max()) >= n or len(torch.unique(s)) != len(s):
            raise SciMLError(f"sample_index must hold at least 2 distinct particle indices in [0, {n}): "
                             "use model.sample(positions)")

    def _advance(self, sequence, particle_type, bounds, sample_index, batch):
        """Next positions of the whole cloud (no checks): the sample by its graph, the rest by the decoder."""
        sub_batch = None if batch is None else batch[sample_index]
        acceleration, latents = self._sparse(sequence[sample_index], particle_type[sample_index], bounds, sub_batch)
        decoded = self._decode(acceleration, latents, sequence[sample_index, -1], sub_batch, sequence[:, -1], batch)
        decoded = decoded.index_copy(0, sample_index, acceleration)
        return next_positions(sequence, self.encoder.denormalize_acceleration(decoded))

    def advance(self, position_sequence: torch.Tensor, particle_type: torch.Tensor, bounds,
                sample_index: torch.Tensor, batch: torch.Tensor | None = None) -> torch.Tensor:
        """Next positions ``(N, d)`` of the full cloud whose histories ``(N, H + 1, d)`` are given.

        The particles in ``sample_index`` (see :meth:`sample`) move with the graph
        prediction, all others with the accelerations decoded at their positions.
        """
        b = self.check(position_sequence, particle_type, bounds, batch)
        self._check_sample_index(sample_index, len(position_sequence))
        return self._advance(position_sequence, particle_type, b, sample_index, batch)

    def rollout(self, position_sequence, particle_type, bounds, n_steps: int, batch=None, sample_index=None,
                kinematic_positions=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Advance the full cloud ``n_steps`` steps from ``(N, H + 1, d)``; returns ``(N, n_steps, d)``.

        The sample (:meth:`sample` of the last positions unless ``sample_index`` is given) is
        kept for the whole rollout; only the initial history is checked against the bounds.
        Kinematic particles follow ``kinematic_positions (N, n_steps, d)`` or stay put.
        """
        b = self.check(position_sequence, particle_type, bounds, batch)
        positive_int("n_steps", n_steps)
        if sample_index is None:
            sample_index = self.sample(position_sequence[:, -1], batch, generator)
        self._check_sample_index(sample_index, len(position_sequence))
        kin = self._check_kinematic(kinematic_positions, len(position_sequence), n_steps, position_sequence)
        sequence, out = position_sequence, []
        for k in range(n_steps):
            new = self._advance(sequence, particle_type, b, sample_index, batch)
            new = self._prescribed(new, sequence[:, -1], particle_type, kin, k)
            out.append(new)
            sequence = torch.cat([sequence[:, 1:], new[:, None]], dim=1)
        return torch.stack(out, dim=1)

    # ----------------------------------------------------------------------------- training

    def loss(self, position_sequence, particle_type, bounds, noise_std: float = 0.0, batch=None,
             sample_index=None, n_queries: int | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One-step loss on the full cloud ``(N, H + 2, d)`` (inputs then the next position).

        GNS noise and targets (:meth:`~sciml.models.gns.ParticleModel.noisy_targets`) for
        every particle; a fresh sample (unless ``sample_index`` is given); the loss is the
        MSE of the normalised accelerations at the sampled particles plus that of the
        decoded ones at ``n_queries`` random particles (all when None), kinematic particles
        left out.
        """
        b = self.check(position_sequence, particle_type, bounds, batch, length=self.config["history"] + 2)
        noisy, target = self.noisy_targets(position_sequence, particle_type, noise_std, generator)
        if sample_index is None:
            sample_index = self.sample(position_sequence[:, -2], batch, generator)
        self._check_sample_index(sample_index, len(position_sequence))
        sub_batch = None if batch is None else batch[sample_index]
        acceleration, latents = self._sparse(noisy[sample_index], particle_type[sample_index], b, sub_batch)
        free = ~self.kinematic(particle_type)
        loss = (acceleration - target[sample_index])[free[sample_index]].square().mean()
        if n_queries is None:
            queries = torch.arange(len(noisy), device=noisy.device)
        else:
            positive_int("n_queries", n_queries)
            order = torch.randperm(len(noisy), generator=generator, device=noisy.device)
            queries = order[:n_queries]
        decoded = self._decode(acceleration, latents, noisy[sample_index, -1], sub_batch, noisy[queries, -1],
                               None if batch is None else batch[queries])
        used = free[queries]
        if bool(used.any()):
            loss = loss + (decoded - target[queries])[used].square().mean()
        return loss
