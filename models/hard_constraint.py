"""Physics as a hard constraint: a mixture of experts that solve for basis weights (Chalapathi et al. 2024).

A base network outputs ``N`` basis functions ``b (B, N, t, *space)``; the layer returns

.. math:: u = \\sum_k 1[\\Omega_k]\\, b \\cdot w_k,

where the domain is split into blocks ``Omega_k`` (``experts`` per axis) and expert ``k``'s
weights minimise, over ``w_k``, the squared PDE residual of ``b . w_k`` at collocation
points in its block, the squared initial/boundary-condition residual at the condition
points (by default all of them, as the reference code does for diffusion-sorption;
``conditions="local"``: those in its block), and ``ridge ||w_k||^2``. All experts of all samples are one batch
of ``B * K`` least-squares problems solved by
:func:`~sciml.solvers.levenberg_marquardt.implicit_least_squares` (one batched linear
solve per iteration) with the implicit-function backward. One expert over the whole
domain (``experts=(1, ..., 1)``) is the global hard constraint; ``mode="soft"`` skips the
solve, takes channel 0 of the base output as ``u`` and gives the residual for the loss
(:meth:`HardConstraintLayer.soft_residual_loss`) at the same points, with the same code.

The PDE comes as a :class:`~sciml.datasets.pde_constraint.PDEConstraint`: its linear
``derivatives`` are applied once to all basis functions on the whole grid, then gathered
at each expert's points, where the pointwise ``pde_residual`` and ``condition_residual``
act on the expansion; being pointwise, their Jacobian with respect to the weights is
assembled from one derivative per derivative channel (see :class:`HardConstraintLayer`).

Examples
--------
>>> import torch
>>> from sciml.datasets.pde_constraint import PDEConstraint
>>> from sciml.models.hard_constraint import HardConstraintLayer
>>> class Heat(PDEConstraint):                        # u_t = u_xx, u given at t = 0 and x = 0, 1
...     derivative_names = ("u", "u_t", "u_xx")
...     def derivatives(self, f):
...         dt, dx = self.spacing
...         f_xx = torch.zeros_like(f)
...         f_xx[..., 1:-1] = (f[..., 2:] - 2 * f[..., 1:-1] + f[..., :-2]) / dx ** 2
...         return {"u": f, "u_t": torch.gradient(f, spacing=dt, dim=-2)[0], "u_xx": f_xx}
...     def pde_residual(self, values, data, index):
...         return values["u_t"] - values["u_xx"]
...     def condition_mask(self):
...         mask = torch.zeros(self.grid_shape, dtype=torch.bool)
...         mask[0], mask[:, 0], mask[:, -1] = True, True, True
...         return mask
...     def condition_residual(self, values, data, index):
...         return values["u"] - data["u"].flatten(1)[:, index[:, 0] * self.grid_shape[1] + index[:, 1]]
>>> heat = Heat(grid_shape=(5, 10), spacing=(0.25, 1 / 9))
>>> t, x = torch.meshgrid(torch.linspace(0, 1, 5), torch.linspace(0, 1, 10), indexing="ij")
>>> exact = x ** 2 + 2 * t                                              # solves u_t = u_xx
>>> basis = torch.stack([torch.ones_like(x), x, x ** 2 + 2 * t, torch.sin(3 * x) * t])[None].double()
>>> layer = HardConstraintLayer(heat, n_basis=4, experts=(1, 2), ridge=1e-12, damping=0.0)
>>> u = layer(basis, {"u": exact[None].double()})
>>> bool(torch.allclose(u[0], exact.double(), atol=1e-8)), layer.record.converged.tolist()
(True, [[True, True]])

References
----------
N. Chalapathi, Y. Du, A. Krishnapriyan, "Scaling physics-informed hard constraints with
mixture-of-experts", ICLR 2024. Reference code (JAX):
https://github.com/ASK-Berkeley/physics-NNs-hard-constraints
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from sciml.datasets.pde_constraint import PDEConstraint
from sciml.errors import ConvergenceError, SciMLError
from sciml.models.base import GridModel, build_model, choice, positive_int
from sciml.solvers.levenberg_marquardt import implicit_least_squares, is_converged, summarize

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def shard_experts(n_experts: int, world_size: int, rank: int) -> range:
    """The contiguous block of experts that process ``rank`` of ``world_size`` solves.

    Sizes differ by at most one (the first ``n_experts % world_size`` ranks take one
    more); a rank beyond ``n_experts`` gets an empty range. Concatenating the ranges in
    rank order gives ``range(n_experts)``.

    Examples
    --------
    >>> [list(shard_experts(5, 2, r)) for r in range(2)]
    [[0, 1, 2], [3, 4]]
    >>> [len(shard_experts(2, 3, r)) for r in range(3)]
    [1, 1, 0]
    """
    if not 0 <= rank < world_size:
        raise SciMLError(f"rank {rank} is outside a world of {world_size} processes")
    base, extra = divmod(n_experts, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def expert_of_points(grid_shape: Sequence[int], experts: Sequence[int]) -> torch.Tensor:
    """Expert (block) number of every grid point, ``grid_shape``, row-major over the expert grid.

    Examples
    --------
    >>> expert_of_points((2, 4), (1, 2)).tolist()
    [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    block = [n // k for n, k in zip(grid_shape, experts)]
    owner = torch.zeros((), dtype=torch.long)
    for n, size, k in zip(grid_shape, block, experts):
        owner = owner.unsqueeze(-1) * k + torch.arange(n) // size
    return owner


def _pad(lists: list[torch.Tensor], fallback: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-width ``(E, W)`` point lists, padded by repeating each list's own points with weight 0."""
    width = max((len(x) for x in lists), default=0)
    index = torch.full((len(lists), width), fallback, dtype=torch.long)
    weight = torch.zeros(len(lists), width, dtype=torch.float64)
    slots = torch.arange(width)
    for e, points in enumerate(lists):
        if len(points):
            index[e] = points[slots % len(points)]
            weight[e, : len(points)] = 1.0
    return index, weight


class _AllGather(torch.autograd.Function):
    """Every rank's tensor, stacked ``(world, ...)``; the backward sums the cotangents over ranks
    and returns this rank's slice (a reduce-scatter), i.e. the gradient of the sum of all ranks' losses."""

    @staticmethod
    def forward(ctx, tensor):
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[dist.get_rank()]


@dataclass
class ConstraintRecord:
    """Per sample and expert, what the last forward pass's solves did (``(B, K)`` tensors).

    ``status`` indexes :data:`sciml.solvers.levenberg_marquardt.STATUS`; ``residual`` is
    the norm of the expert's weighted residual vector (PDE and conditions, without ridge).
    """

    iterations: torch.Tensor
    residual: torch.Tensor
    converged: torch.Tensor
    status: torch.Tensor
    message: str

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


class HardConstraintLayer(torch.nn.Module):
    """Mixture-of-experts hard constraint: ``basis (B, N, *grid) -> u (B, *grid)``.

    Parameters
    ----------
    constraint : PDEConstraint
        The PDE, its conditions and the grid ``(t, *space)``.
    n_basis : int
        Number of basis functions ``N`` (channels of the base network's output).
    experts : sequence of int, optional
        Blocks per grid axis; each must divide that axis's size (unequal blocks are
        refused). Default one block (the global hard constraint).
    points_per_expert : int, optional
        PDE collocation points per expert, drawn once at construction (``seed``) without
        replacement from the block's grid points that are not condition points; default
        all of them. Fixed unless ``resample``.
    resample : bool
        In training mode (``module.train()``, hard or soft), draw each expert's
        ``points_per_expert`` collocation points anew at every forward pass, from the
        same pool (the block's non-condition points), by the layer's own
        :class:`torch.Generator` (seeded by ``seed``; one batched draw for all experts,
        shared by the samples of the batch); in eval mode use the fixed points. The
        reference code draws new points every step (from all of the block's points,
        condition points included). Needs ``points_per_expert``.
    mode : {"hard", "soft"}
        ``"soft"`` returns channel 0 of the basis as ``u`` without solving; train it with
        :meth:`soft_residual_loss` in the loss.
    ridge : float
        Weight of ``||w_k||^2`` (the reference code's residual ``1e-4 w`` is ``ridge = 1e-8``).
    condition_weight : float
        Weight of the squared condition residuals relative to the PDE residuals.
    max_iterations, tol, damping
        Levenberg-Marquardt settings (:func:`~sciml.solvers.levenberg_marquardt.batched_levenberg_marquardt`);
        ``damping=0`` starts with a Gauss-Newton step, exact for a linear PDE.
    hessian : {"exact", "gauss-newton"}
        Hessian of the implicit-function backward.
    initial_weight : float
        Every expert's weights start at this value.
    on_failure : {"report", "raise"}
        An expert that does not converge is always in :attr:`record`; ``"raise"`` also
        raises :class:`~sciml.errors.ConvergenceError` (failing the training step).
    seed : int
        Seed of the collocation-point (and condition-point) draw.
    conditions : {"global", "local"}
        Which initial/boundary-condition points enter each expert's solve. ``"global"``
        (default, the reference code's diffusion-sorption MoE): every condition point of
        the grid, in every expert; expert ``k``'s expansion ``b . w_k`` is evaluated there
        (the basis functions are fields on the whole grid), so every expert is tied to the
        same data and an interior block is not left without boundary information.
        ``"local"``: only the condition points inside the expert's block (the reference
        code's choice for Navier-Stokes, whose initial condition it partitions).
    condition_points : int, optional
        At most this many condition points per expert, drawn once (``seed``) without
        replacement from those the expert sees; default all of them (the reference code
        uses all: 1 024 initial plus 200 boundary points on 1024 x 101). For grids whose
        boundary holds far more points than an expert's collocation points.
    allow_free_experts : bool
        Allow experts that see no condition point (with ``conditions="local"``, a block
        away from the initial frame and the boundary). Their weights are then fixed by
        the PDE and the ridge alone (typically ``u = 0`` for a homogeneous PDE), so by
        default such a partition is refused in hard mode. With ``conditions="global"`` no
        expert is free (unless the constraint has no condition point at all).
    expert_parallel : bool
        With ``torch.distributed`` initialised and more than one process, every process
        solves its :func:`shard_experts` share of the experts for the whole batch and the
        weights are all-gathered (a differentiable all-gather whose backward sums the
        gradient of every rank's copy). Every process must hold the same batch;
        with the same loss on every process, averaging parameter gradients over processes
        (as DDP does) gives the exact gradient. Off by default because data-parallel
        training gives processes different batches. Without it, or with one process, all
        experts of all samples are one batch on the input's device.
    solve_dtype : {None, "float32", "float64"}
        Dtype of the derivatives, the solve and its backward (default: the basis dtype);
        ``u`` is returned in the basis dtype.

    Attributes
    ----------
    record : ConstraintRecord or None
        Per sample and expert iterations, residual and convergence of the last forward
        pass (``None`` in soft mode).
    config : dict
        The JSON-serialisable settings (the constraint by class name, grid and spacing).

    Notes
    -----
    Departures from the reference code: collocation points are fixed unless ``resample``
    (and then drawn from the non-condition points); solver failures
    are recorded per expert instead of their gradients being zeroed; and the condition
    set is an option (the reference gives diffusion-sorption experts the global
    conditions, Navier-Stokes experts their block's share of the initial condition).

    An expert counts as converged only where its weights are stationary: its undamped
    Gauss-Newton step is below ``tol`` relative to ``w_k``
    (:func:`~sciml.solvers.levenberg_marquardt.batched_levenberg_marquardt`). The
    backward pass is the gradient of the minimiser, so weights stopped short of it get
    the gradient of another function. This matters for the experts: each sees the PDE
    only in its block, so ``J^T J`` has weakly determined directions (eigenvalues down to
    the ridge), along which a test relative to the first gradient, or a damped step, stops
    far from the minimiser; on diffusion-sorption (17 x 64, 4 experts) such stops left the
    weights 30-98% and ``u`` 8-30% away from the minimiser while reporting convergence,
    and the mismatched gradients kept the MoE from training.

    The Jacobian of the residuals with respect to ``w_k``, needed at every
    Levenberg-Marquardt iteration, uses that the residuals are pointwise in the
    expansion's derivative values ``v_c = B_c w_k`` (``B_c (P, N)``: basis derivative
    ``c`` at the expert's points): ``J = sum_c diag(dr/dv_c) B_c``, with ``dr/dv_c`` from
    one forward-mode product of the pointwise residual per derivative channel ``c``
    (``C`` channels, not ``N`` basis functions), on contiguous ``(B*K, P, N)`` tensors.
    It is the exact Jacobian (equal to :func:`~sciml.solvers.levenberg_marquardt.batched_jacobian`
    of the residual function); the implicit backward differentiates the residual function itself.
    """

    def __init__(self, constraint: PDEConstraint, n_basis: int, experts: Sequence[int] | None = None,
                 points_per_expert: int | None = None, *, mode: str = "hard", ridge: float = 1e-6,
                 condition_weight: float = 1.0, max_iterations: int = 50, tol: float | None = None,
                 damping: float = 1e-3, hessian: str = "exact", initial_weight: float = 0.0,
                 on_failure: str = "report", seed: int = 0, conditions: str = "global",
                 condition_points: int | None = None, allow_free_experts: bool = False,
                 expert_parallel: bool = False, solve_dtype: str | None = None, resample: bool = False):
        super().__init__()
        if not isinstance(constraint, PDEConstraint):
            raise SciMLError(f"constraint must be a PDEConstraint, got {type(constraint).__name__}")
        grid = constraint.grid_shape
        experts = [1] * len(grid) if experts is None else list(experts)
        if len(experts) != len(grid):
            raise SciMLError(f"experts {experts} has {len(experts)} entries but the grid {list(grid)} has "
                             f"{len(grid)} axes (t, *space): give one block count per axis")
        for axis, (n, k) in enumerate(zip(grid, experts)):
            positive_int("experts", k)
            if n % k:
                raise SciMLError(f"experts {experts} do not divide the grid {list(grid)}: axis {axis} has {n} points, "
                                 f"not a multiple of {k}; choose a divisor of each grid size")
        if points_per_expert is not None:
            positive_int("points_per_expert", points_per_expert)
        if condition_points is not None:
            positive_int("condition_points", condition_points)
        if resample and points_per_expert is None:
            raise SciMLError("resample=True draws points_per_expert collocation points per step from each block: "
                             "set points_per_expert (resampling all of a block's points changes nothing)")
        if not (math.isfinite(ridge) and ridge >= 0 and math.isfinite(condition_weight) and condition_weight > 0):
            raise SciMLError(f"ridge ({ridge}) must be >= 0 and condition_weight ({condition_weight}) > 0")
        self.constraint = constraint
        self.n_experts = math.prod(experts)
        self.config = dict(
            constraint=type(constraint).__name__, grid_shape=list(grid), spacing=list(constraint.spacing),
            n_basis=positive_int("n_basis", n_basis), experts=experts, points_per_expert=points_per_expert,
            mode=choice("mode", mode, ("hard", "soft")), ridge=float(ridge), condition_weight=float(condition_weight),
            max_iterations=positive_int("max_iterations", max_iterations), tol=None if tol is None else float(tol),
            damping=float(damping), hessian=choice("hessian", hessian, ("exact", "gauss-newton")),
            initial_weight=float(initial_weight), on_failure=choice("on_failure", on_failure, ("report", "raise")),
            seed=int(seed), conditions=choice("conditions", conditions, ("global", "local")),
            condition_points=condition_points, allow_free_experts=bool(allow_free_experts),
            expert_parallel=bool(expert_parallel),
            solve_dtype=choice("solve_dtype", solve_dtype, (None, *_DTYPES)), resample=bool(resample),
        )
        self._build_points()
        self.record: ConstraintRecord | None = None

    @property
    def n_basis(self) -> int:
        return self.config["n_basis"]

    def _build_points(self) -> None:
        """Each expert's collocation and condition points (flat grid indices, padded to equal counts)."""
        grid, experts, cfg = self.constraint.grid_shape, self.config["experts"], self.config
        mask = self.constraint.condition_mask()
        if tuple(mask.shape) != grid or mask.dtype != torch.bool:
            raise SciMLError(f"{cfg['constraint']}.condition_mask() is {mask.dtype} of shape {tuple(mask.shape)}: "
                             f"return a boolean mask of the grid shape {list(grid)}")
        cond = torch.as_tensor(self.constraint.condition_index()).long().cpu()
        if cond.ndim != 2 or cond.shape[1] != len(grid):
            raise SciMLError(f"{cfg['constraint']}.condition_index() has shape {tuple(cond.shape)}: "
                             f"return (points, {len(grid)}) grid indices")
        outside = ((cond < 0) | (cond >= torch.tensor(grid))).any(1)
        if bool(outside.any()):
            raise SciMLError(f"condition point {cond[outside][0].tolist()} lies outside the grid {list(grid)}: "
                             f"indices must satisfy 0 <= index < size on every axis")
        strides = torch.tensor([math.prod(grid[a + 1:]) for a in range(len(grid))])
        flat_cond = torch.unique((cond * strides).sum(1))
        owner = expert_of_points(grid, experts).flatten()
        interior = torch.ones(owner.numel(), dtype=torch.bool)
        interior[flat_cond] = False

        def per_expert(points: torch.Tensor) -> list[torch.Tensor]:
            order = torch.argsort(owner[points], stable=True)
            counts = torch.bincount(owner[points], minlength=self.n_experts).tolist()
            return list(torch.split(points[order], counts))

        pde_lists = per_expert(torch.nonzero(interior).flatten())
        cond_lists = per_expert(flat_cond) if cfg["conditions"] == "local" else [flat_cond] * self.n_experts
        generator = torch.Generator().manual_seed(cfg["seed"])
        wanted = cfg["points_per_expert"]
        if wanted is not None:
            fewest = min(len(x) for x in pde_lists)
            if wanted > fewest:
                raise SciMLError(f"points_per_expert = {wanted} exceeds the {fewest} interior points of the smallest "
                                 f"block: use at most {fewest} or leave it unset for all points")
            pde_lists = [x[torch.randperm(len(x), generator=generator)[:wanted].sort().values] for x in pde_lists]
        most = cfg["condition_points"]
        if most is not None:  # drawn after the collocation points: the same seed gives the same collocation points
            cond_lists = [x if len(x) <= most else x[torch.randperm(len(x), generator=generator)[:most].sort().values]
                          for x in cond_lists]
        free = [e for e, x in enumerate(cond_lists) if len(x) == 0]
        if free and cfg["mode"] == "hard" and not cfg["allow_free_experts"]:
            hint = ("the constraint has no condition point at all" if not len(flat_cond) else
                    f"use fewer blocks along time (experts {experts}), conditions='global'")
            raise SciMLError(f"{len(free)} of {self.n_experts} experts (e.g. expert {free[0]}) hold no initial or boundary "
                             f"condition point, so the PDE alone cannot fix their weights: {hint} "
                             f"or pass allow_free_experts=True")
        fallback = int(flat_cond[0]) if len(flat_cond) else 0
        if cfg["resample"]:
            pool, in_pool = _pad(per_expert(torch.nonzero(interior).flatten()), 0)
            self.register_buffer("pde_pool", pool, persistent=False)
            self.register_buffer("pde_pool_mask", in_pool > 0, persistent=False)
            self._resample_generator = generator  # continues after the fixed draw: seeded, reproducible
        pde_index, pde_weight = _pad(pde_lists, 0)
        cond_index, cond_weight = _pad(cond_lists, fallback)
        self.register_buffer("owner", owner, persistent=False)
        self.register_buffer("pde_index", pde_index, persistent=False)
        self.register_buffer("pde_weight", pde_weight, persistent=False)
        self.register_buffer("cond_index", cond_index, persistent=False)
        self.register_buffer("cond_weight", cond_weight, persistent=False)

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"{cfg['constraint']}, n_basis={cfg['n_basis']}, experts={cfg['experts']}, mode={cfg['mode']!r}, "
                f"points={self.pde_index.shape[1]}+{self.cond_index.shape[1]} per expert")

    def _collocation(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This pass's ``(K, P)`` collocation indices and weights: fixed, or (``resample`` in training
        mode) ``P`` drawn without replacement from each expert's pool, all experts in one draw."""
        if not (self.config["resample"] and self.training):
            return self.pde_index, self.pde_weight
        keys = torch.rand(self.pde_pool.shape, generator=self._resample_generator, dtype=torch.float64)
        keys = keys.masked_fill(~self.pde_pool_mask.cpu(), math.inf)  # padding slots are never drawn
        slots = keys.argsort(dim=1)[:, : self.pde_index.shape[1]].sort(dim=1).values
        index = self.pde_pool.gather(1, slots.to(self.pde_pool.device))
        return index, torch.ones_like(self.pde_weight)

    def _grid_index(self, flat: torch.Tensor) -> torch.Tensor:
        return torch.stack(torch.unravel_index(flat.flatten(), self.constraint.grid_shape), dim=-1)

    def _residual_function(self, derivatives: dict[str, torch.Tensor], data: dict, experts: torch.Tensor,
                           collocation: tuple[torch.Tensor, torch.Tensor] | None = None):
        """``residual_fn(w (E, N), *params) -> (E, P + Q)`` and its ``jacobian_fn -> (E, P + Q, N)`` for
        the experts ``experts`` (``E = B * len(experts)``), and their ``params``.

        ``collocation`` is the ``(K, P)`` point indices and weights of :meth:`_collocation`
        (default the fixed points).

        ``derivatives`` maps names to ``(B, N, G)``; the PDE residuals come first, then
        the condition residuals (times ``sqrt(condition_weight)``); padding slots weigh 0.
        The params start with the basis derivative values gathered at the points, one
        contiguous ``(E, P, N)`` tensor per piece (PDE, conditions) and derivative name.
        """
        constraint = self.constraint
        collocation = (self.pde_index, self.pde_weight) if collocation is None else collocation
        names = sorted(derivatives)
        batch, n_basis = next(iter(derivatives.values())).shape[:2]
        n_local = len(experts)
        dtype = derivatives[names[0]].dtype
        pieces = []
        for index, weight, scale, residual in (
                (*collocation, 1.0, constraint.pde_residual),
                (self.cond_index, self.cond_weight, self.config["condition_weight"] ** 0.5,
                 constraint.condition_residual)):
            points = index.to(experts.device)[experts]  # buffers follow the input even if the layer was not moved
            if points.shape[1]:
                weight = (weight.to(experts.device)[experts] * scale).to(dtype)
                pieces.append((points, weight.expand(batch, *weight.shape).reshape(batch * n_local, -1), residual))
        # (B, N, G) -> (B, K * P, N) -> (E, P, N): gathered once per forward pass, contiguous for bmm
        gathered = [derivatives[k].transpose(1, 2)[:, points.flatten()].reshape(batch * n_local, -1, n_basis)
                    for points, _, _ in pieces for k in names]
        grid_index = [self._grid_index(points) for points, _, _ in pieces]
        keys = [k for k, v in data.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
        static = {k: v for k, v in data.items() if k not in keys}
        n_names = len(names)

        def split(params):
            return params[: len(gathered)], {**static, **dict(zip(keys, params[len(gathered):]))}

        def pointwise(j, fields):
            """Piece ``j``'s residual as a function of its ``(B, K * P)`` derivative values, one per name."""
            residual, where = pieces[j][2], grid_index[j]

            def fn(*values):
                r = residual(dict(zip(names, values)), fields, where)
                if tuple(r.shape) != (batch, where.shape[0]):
                    raise SciMLError(f"{type(constraint).__name__} returned a residual of shape {tuple(r.shape)} "
                                     f"for values of shape {(batch, where.shape[0])}: return one value per point")
                return r
            return fn

        def expansion(bases, w):
            """``(B, K * P)`` values of ``b . w_k`` for each ``(E, P, N)`` basis derivative."""
            return [torch.bmm(b, w.unsqueeze(-1)).reshape(batch, -1) for b in bases]

        def residual_fn(w, *params):
            values, fields = split(params)
            out = []
            for j, (_, weight, _) in enumerate(pieces):
                r = pointwise(j, fields)(*expansion(values[j * n_names:(j + 1) * n_names], w))
                out.append(r.reshape(batch * n_local, -1) * weight)
            return torch.cat(out, dim=-1)

        def jacobian_fn(w, *params):
            # r = f(v_1, ..., v_C) pointwise with v_c = B_c w, so dr/dw = sum_c diag(df/dv_c) B_c
            values, fields = split(params)
            out = []
            for j, (_, weight, _) in enumerate(pieces):
                bases = values[j * n_names:(j + 1) * n_names]
                at = tuple(expansion(bases, w))
                fn = pointwise(j, fields)
                # one-hot tangents: channel c's tangent is 1 in batch slot c, vmapped over the C slots
                one_hot = torch.eye(n_names, dtype=w.dtype, device=w.device)
                tangents = tuple(one_hot[c].reshape(-1, 1, 1).expand(n_names, *v.shape) for c, v in enumerate(at))
                slopes = torch.func.vmap(lambda *t: torch.func.jvp(fn, at, t)[1])(*tangents)
                slopes = slopes.reshape(n_names, batch * n_local, -1) * weight
                out.append(sum(slopes[c].unsqueeze(-1) * b for c, b in enumerate(bases)))
            return torch.cat(out, dim=1)

        return residual_fn, jacobian_fn, (*gathered, *(data[k] for k in keys))

    def _check(self, field: torch.Tensor, lead: int, what: str) -> None:
        grid = self.constraint.grid_shape
        if field.ndim != lead + len(grid) or tuple(field.shape[lead:]) != grid or not field.is_floating_point():
            expected = "(batch, " + (f"{self.n_basis}, " if lead == 2 else "") + ", ".join(map(str, grid)) + ")"
            raise SciMLError(f"{what} of shape {tuple(field.shape)} does not fit the constraint: pass a floating "
                             f"{expected} tensor")
        if lead == 2 and field.shape[1] != self.n_basis:
            raise SciMLError(f"basis has {field.shape[1]} functions but the layer expects n_basis = {self.n_basis}: "
                             f"make the base network output {self.n_basis} channels")

    def _cast(self, tensor: torch.Tensor, data: dict) -> tuple[torch.Tensor, dict]:
        name = self.config["solve_dtype"]
        if name is None:
            return tensor, data
        dtype = _DTYPES[name]
        return tensor.to(dtype), {k: v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                                  for k, v in data.items()}

    def _expert_shard(self) -> tuple[int, int] | None:
        if self.config["expert_parallel"] and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            return dist.get_rank(), dist.get_world_size()
        return None

    def _gather(self, local: torch.Tensor, world: int, differentiable: bool) -> torch.Tensor:
        """All experts' ``(B, K, ...)`` from every rank's contiguous share ``(B, K_r, ...)``."""
        shares = [shard_experts(self.n_experts, world, r) for r in range(world)]
        width = len(shares[0])
        padded = torch.cat([local, local.new_zeros(local.shape[0], width - local.shape[1], *local.shape[2:])], dim=1)
        if differentiable:
            parts = _AllGather.apply(padded)
        else:
            parts = [torch.empty_like(padded) for _ in range(world)]
            dist.all_gather(parts, padded)
        return torch.cat([p[:, : len(s)] for p, s in zip(parts, shares)], dim=1)

    def forward(self, basis: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """``u = sum_k 1[Omega_k] b . w_k`` for ``basis (B, N, *grid)``; the solves are in :attr:`record`."""
        self._check(basis, 2, "basis")
        if self.config["mode"] == "soft":
            self.record = None
            return basis[:, 0]
        cfg, batch = self.config, basis.shape[0]
        b, data = self._cast(basis, data)
        shard = self._expert_shard()
        share = range(self.n_experts) if shard is None else shard_experts(self.n_experts, shard[1], shard[0])
        experts = torch.arange(share.start, share.stop, device=b.device)
        derivatives = {k: v.flatten(2) for k, v in self.constraint.derivatives(b).items()}
        residual_fn, jacobian_fn, params = self._residual_function(derivatives, data, experts, self._collocation())
        w0 = torch.full((batch * len(experts), self.n_basis), cfg["initial_weight"], dtype=b.dtype, device=b.device)
        w, report = implicit_least_squares(residual_fn, w0, params, jacobian=jacobian_fn, hessian=cfg["hessian"],
                                           ridge=cfg["ridge"], max_iterations=cfg["max_iterations"], tol=cfg["tol"],
                                           damping=cfg["damping"])
        w = w.reshape(batch, len(experts), self.n_basis)
        stats = [t.reshape(batch, len(experts)) for t in (report.iterations, report.residual, report.status)]
        if shard is not None:
            w = self._gather(w, shard[1], differentiable=True)
            stats = [self._gather(t, shard[1], differentiable=False) for t in stats]
        iterations, residual, status = stats
        n = self.n_experts
        message = summarize(status, iterations, residual, what="expert solves",
                            label=lambda i: f"sample {i // n} expert {i % n}")
        self.record = ConstraintRecord(iterations=iterations, residual=residual, status=status,
                                       converged=is_converged(status), message=message)
        if cfg["on_failure"] == "raise" and not bool(self.record.converged.all()):
            raise ConvergenceError(f"hard constraint: {message}")
        u = torch.einsum("bng,bgn->bg", b.flatten(2), w[:, self.owner.to(w.device)])
        return u.reshape(batch, *self.constraint.grid_shape).to(basis.dtype)

    def soft_residual_loss(self, u: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean squared PDE residual plus ``condition_weight`` times the mean squared condition residual of ``u``.

        Evaluated at the layer's collocation and condition points (those of every expert),
        by the same residual code as the hard solve with one basis function ``u`` of weight 1.
        """
        self._check(u, 1, "u")
        u_cast, data = self._cast(u, data)
        experts = torch.arange(self.n_experts, device=u.device)
        derivatives = {k: v.flatten(1).unsqueeze(1) for k, v in self.constraint.derivatives(u_cast).items()}
        collocation = self._collocation()
        residual_fn, _, params = self._residual_function(derivatives, data, experts, collocation)
        ones = torch.ones(u.shape[0] * self.n_experts, 1, dtype=u_cast.dtype, device=u.device)
        r = residual_fn(ones, *params).square().reshape(u.shape[0], self.n_experts, -1)
        n_pde = self.pde_index.shape[1]
        loss = r[..., :n_pde].sum() / (u.shape[0] * collocation[1].sum()) if n_pde else r.new_zeros(())
        if self.cond_index.shape[1]:  # condition residuals already carry condition_weight
            loss = loss + r[..., n_pde:].sum() / (u.shape[0] * self.cond_weight.sum())
        return loss.to(u.dtype)


class ConstrainedModel(torch.nn.Module):
    """A grid model that outputs ``N`` basis functions, followed by a :class:`HardConstraintLayer`.

    ``forward(x, data)`` maps inputs ``(B, C_in, t, *space)`` to ``u (B, t, *space)``. The
    base model is any registered :class:`~sciml.models.base.GridModel` of dimension
    ``len(grid_shape)`` (time is an axis of the base model's grid).

    Parameters
    ----------
    base : GridModel
        Must have ``out_channels == layer.n_basis`` and accept the constraint's grid.
    layer : HardConstraintLayer
    basis_activation : {None, "gelu"}
        Applied to the base output before the layer: ``"gelu"`` makes the basis
        functions ``GELU(base(x))``, as the reference code's FNO (``activate_last_layer``);
        default none (the base output is the basis).

    Examples
    --------
    >>> import torch
    >>> from sciml.models import build_model
    >>> from sciml.models.hard_constraint import ConstrainedModel, HardConstraintLayer
    >>> from sciml.datasets.pde_constraint import PDEConstraint
    >>> class Decay(PDEConstraint):                    # u_t = -u on (t, x), u(0, x) given
    ...     derivative_names = ("u", "u_t")
    ...     def derivatives(self, f):
    ...         return {"u": f, "u_t": torch.gradient(f, spacing=self.spacing[0], dim=-2)[0]}
    ...     def pde_residual(self, values, data, index):
    ...         return values["u_t"] + values["u"]
    ...     def condition_mask(self):
    ...         mask = torch.zeros(self.grid_shape, dtype=torch.bool)
    ...         mask[0] = True
    ...         return mask
    ...     def condition_residual(self, values, data, index):
    ...         return values["u"] - data["u0"][:, index[:, 1]]
    >>> layer = HardConstraintLayer(Decay((8, 8), (0.1, 0.1)), n_basis=6, experts=(1, 2))
    >>> model = ConstrainedModel(build_model("fno", in_channels=1, out_channels=6, n_modes=4, width=8), layer)
    >>> model(torch.randn(2, 1, 8, 8), {"u0": torch.ones(2, 8)}).shape
    torch.Size([2, 8, 8])
    >>> ConstrainedModel(build_model("fno", in_channels=1, out_channels=5, n_modes=4, width=8), layer)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: base model 'fno' outputs 5 channels but the constraint layer expects n_basis = 6 basis functions: set the model's out_channels to 6
    """

    def __init__(self, base: GridModel, layer: HardConstraintLayer, basis_activation: str | None = None):
        super().__init__()
        if not isinstance(base, GridModel) or not isinstance(layer, HardConstraintLayer):
            raise SciMLError(f"ConstrainedModel needs a GridModel and a HardConstraintLayer, got "
                             f"{type(base).__name__} and {type(layer).__name__}")
        if base.out_channels != layer.n_basis:
            raise SciMLError(f"base model {base.name!r} outputs {base.out_channels} channels but the constraint layer "
                             f"expects n_basis = {layer.n_basis} basis functions: set the model's out_channels to "
                             f"{layer.n_basis}")
        base.check_input(layer.constraint.grid_shape)
        self.base, self.layer = base, layer
        self.activation = choice("basis_activation", basis_activation, (None, "gelu"))
        self.config = {"base": {"name": base.name, **base.config}, "layer": layer.config,
                       "basis_activation": self.activation}

    @property
    def record(self) -> ConstraintRecord | None:
        """The layer's record of the last forward pass."""
        return self.layer.record

    def forward(self, x: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        basis = self.base(x)
        if self.activation == "gelu":
            basis = torch.nn.functional.gelu(basis)
        return self.layer(basis, data)

    def soft_residual_loss(self, u: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """:meth:`HardConstraintLayer.soft_residual_loss`."""
        return self.layer.soft_residual_loss(u, data)


def build_constrained_model(constraint: PDEConstraint, n_basis: int, model: str = "fno", in_channels: int = 1,
                            model_options: dict | None = None, basis_activation: str | None = None,
                            **layer_options) -> ConstrainedModel:
    """A registered model with ``n_basis`` outputs on the constraint's grid, plus the layer
    (``basis_activation``: see :class:`ConstrainedModel`).

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.pde_constraint import PDEConstraint
    >>> class Wave(PDEConstraint):
    ...     derivative_names = ("u",)
    ...     def derivatives(self, f): return {"u": f}
    ...     def pde_residual(self, values, data, index): return values["u"]
    ...     def condition_mask(self): return torch.ones(self.grid_shape, dtype=torch.bool)
    ...     def condition_residual(self, values, data, index): return values["u"]
    >>> model = build_constrained_model(Wave((4, 4, 4), (1.0, 1.0, 1.0)), n_basis=3,
    ...                                 model_options={"n_modes": 2, "width": 4})
    >>> model.base.dim, model.layer.config["experts"]
    (3, [1, 1, 1])
    """
    options = {"dim": constraint.ndim, **(model_options or {})}
    base = build_model(model, in_channels=in_channels, out_channels=n_basis, **options)
    return ConstrainedModel(base, HardConstraintLayer(constraint, n_basis, **layer_options), basis_activation)
