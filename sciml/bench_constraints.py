"""Benchmark of physics constraints, soft against global hard against MoE hard: ``sciml bench constraints``.

What is compared
    On PDEBench's 1-D diffusion-sorption (:mod:`sciml.datasets.diffusion_sorption`),
    three ways of imposing the physics on one base network, as in Chalapathi, Du and
    Krishnapriyan (ICLR 2024): the FNO (:class:`sciml.models.FNO`) on the ``(t, x)``
    grid, whose input is the normalised time, the position and the initial condition
    broadcast over time (the reference code's ``prepare_input``), and which outputs
    ``n_basis`` channels. **soft** (PI-SC) takes channel 0 as ``u``; **global** (PI-HC)
    solves for one set of basis weights per sample over the whole grid; **moe**
    (PI-HC-MoE) splits the grid into ``experts`` blocks (``(1, 4)``: four along ``x``),
    each solving for its own weights (:class:`sciml.models.hard_constraint.HardConstraintLayer`).
    All three train with the same physics-informed loss (:func:`physics_loss`: the norm
    of the PDE residual over the whole grid plus the norm of the initial and boundary
    residuals, no solution data inside the domain, as the reference's
    ``interior_loss_weight: 0``), the same epochs, batch size, data and optimiser (Adam,
    gradients clipped at norm 1, the learning rate halved every ``decay_fraction`` of
    the steps down to ``min_lr``: the reference's ``ds`` schedule, 800 of 4050 steps,
    scaled to the step count), over several seeds.

What is measured
    *Accuracy*: test relative L2 error (mean over held-out initial conditions) inside
    the training window ``t <= t[train_frames - 1]`` (400 of 500) and, as extrapolation,
    on the later frames: the model is run on the whole window (its time input then goes
    past 1) and the hard layers solve on the whole window. Seconds per training step,
    inference milliseconds per sample, peak memory, the share of (sample, expert)
    solves that converged and the Levenberg-Marquardt iterations on the test set: the
    mean over solves (``lm_iters``) and the most in a batch (``lm_iters_max``: the
    batched solver runs until its slowest expert stops, so this sets its time).
    *Timing*: the median of ``repeats`` training steps (forward, loss, backward, Adam)
    and inference passes, after one of each as warm-up, of global against MoE at a
    total of ``points`` collocation points (the global expert holds all of them, each
    MoE expert ``points / K``: both solve the PDE at the same number of points; the
    paper's experts each hold the full count, on one GPU each; every expert also holds
    all the condition points, 1 224 on 1024 x 101) on
    ``timing.n_cells x timing.n_frames``, on the chosen device, with the speedup
    ``global / moe`` and a log-log plot (``bench_constraints_timing.png``).

How
    Every trial (a method and seed, or a method and point count) runs in its own
    process, so ``peak_mib`` is its own: the peak resident memory on the CPU (torch
    included) or ``torch.cuda.max_memory_allocated`` on a GPU. Data are generated once
    into ``out_dir/data`` and reused. ``out_dir/bench_constraints.json`` keeps the rows
    of earlier runs with the same plan, so a full run can be made in pieces
    (``--tasks``, ``--methods``, ``--seeds``, ``--points``) and the last piece prints the
    whole table.

Settings and departures from the reference code (``ASK-Berkeley/physics-NNs-hard-constraints``,
``configs/models/fno2d-64-8m*.yaml``, ``configs/training/ds.yaml``)
    The reference trains on 1024 x 101 with an FNO of 5 Fourier layers of width 64 and
    8 modes, 16 basis functions, 20 000 collocation points per expert drawn anew every
    step, every diffusion-sorption expert also holding all the initial and boundary
    points (``conditions="global"`` here, in every plan), batch 6, 4050 steps,
    Levenberg-Marquardt (optimistix, rtol = atol = 1e-4, at most 100 steps, from
    ``w = 1``, residual ``1e-4 w``: ``ridge = 1e-8``), all in float64; :data:`PAPER` (``--paper``) uses those sizes, for a GPU. :data:`FULL` is
    sized for two CPU cores (128 cells x 51 frames, a 4-layer FNO of width 32, 36
    training samples, 25 epochs: 150 steps); :data:`QUICK` for a minute on one core
    (5 epochs: 30 steps, a smoke test: after 30 steps the soft constraint has not started
    to learn and the hard ones are far from trained; ``--quick --epochs 40`` (240 steps,
    about four minutes) measures what the longer plans measure).
    Departures, in every plan:

    * Levenberg-Marquardt stops on stationarity, the undamped Gauss-Newton step below
      ``tol = 1e-4`` relative to ``w``
      (:func:`~sciml.solvers.levenberg_marquardt.batched_levenberg_marquardt`), not on
      optimistix' Cauchy test (step and value changes, ``rtol = atol = 1e-4``), and starts
      undamped (``damping = 0``). The experts' normal matrices have eigenvalues down
      to the ridge (weakly determined directions); stopping tests on damped steps or
      relative to the first gradient then stop far from the minimiser, whose gradient
      the implicit backward computes (on the quick grid such stops left ``u`` 8-30% off
      and MoE trained to 45% error against 9% with stationary solves);
    * the collocation points are fixed per layer; their number per expert is the
      reference's share of the grid, ``point_fraction``, for both hard methods;
      ``layer: {"resample": True}`` draws them anew every training step (the
      reference's behaviour, here from the block's non-condition points);
    * the PDE residual is ``R(u) u_t - D u_xx`` (the reference: ``u_t - D / R(u) u_xx``),
      the conditions are those of :class:`~sciml.datasets.diffusion_sorption.DiffusionSorptionConstraint`
      (at the faces, PDEBench's outflow sign) with ``condition_weight`` 1, in both the
      solve and the loss; the reference loss takes the outflow values from the data and
      divides the initial residual by the initial condition;
    * the base network runs in float32 (neuraloperator's complex weights), the solve in
      float64; no activation after its last layer (``basis_activation: "gelu"``: the
      basis is GELU of the base output, as the reference's ``activate_last_layer``).
      Both options are off by default: on ``--quick --epochs 40`` (seeds 0, 1, 2) the
      two together left MoE at 9.3% (9.3 without) and moved the global hard constraint
      from 8.1% to 9.1%, worse on every seed (GELU alone took soft from 52% to 31%);
    * the training window (``train_frames``: 400 of 500 time units) follows the paper's
      description of temporal extrapolation; the reference code has no such split. The
      FNO's Fourier modes are per grid, so on the longer window the base network sees
      its frequencies stretched by ``n_frames / train_frames``.

    A non-finite loss stops that trial's training; its row says at which step
    (``diverged_at_step``) and is evaluated as it stands.

Examples
--------
>>> from sciml.bench_constraints import run, format_table      # doctest: +SKIP
>>> print(format_table(run(quick=True, out_dir="bc")))          # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.bench_trials import machine_info, run_in_child
from sciml.errors import SciMLError

METHODS = ("soft", "global", "moe")
HARD_METHODS = ("global", "moe")
TASKS = ("accuracy", "timing")
PAPER_POINT_FRACTION = 20000 / (100 * 1022)
"""The reference's 20 000 points per expert as a share of the interior of its 1024 x 101 grid."""

_LAYER = {"ridge": 1e-8, "tol": 1e-4, "damping": 0.0, "max_iterations": 100, "initial_weight": 1.0,
          "condition_weight": 1.0, "conditions": "global", "resample": False}
FULL = {
    "n_cells": 128, "n_frames": 51, "t_final": 500.0, "train_frames": 41, "n_train": 36, "n_test": 16, "data_seed": 0,
    "model": {"n_modes": 8, "width": 32, "n_layers": 4}, "basis_activation": None, "n_basis": 16, "experts": [1, 4],
    "point_fraction": PAPER_POINT_FRACTION, "layer": dict(_LAYER),
    "epochs": 25, "batch_size": 6, "lr": 1e-3, "min_lr": 1e-4, "decay_fraction": 800 / 4050, "data_weight": 0.0,
    "seeds": [0, 1, 2], "threads": None,
    "timing": {"n_cells": 1024, "n_frames": 101, "batch_size": 2, "points": [100, 1000, 10000, 100000], "repeats": 2},
}
QUICK = {
    **FULL, "n_cells": 64, "n_frames": 21, "train_frames": 17, "n_train": 24, "n_test": 8,
    "model": {"n_modes": 8, "width": 16, "n_layers": 3}, "epochs": 5, "batch_size": 4, "seeds": [0], "threads": 1,
    "timing": {"n_cells": 64, "n_frames": 21, "batch_size": 2, "points": [100, 1000], "repeats": 2},
}
PAPER = {
    **FULL, "n_cells": 1024, "n_frames": 101, "train_frames": 81, "n_train": 2400, "n_test": 200,
    "model": {"n_modes": 8, "width": 64, "n_layers": 5}, "epochs": 10,
    "timing": {"n_cells": 1024, "n_frames": 101, "batch_size": 6, "points": [100, 1000, 10000, 100000], "repeats": 3},
}
ACCURACY_COLUMNS = ["task", "pde", "method", "seed", "grid", "experts", "points_per_expert", "steps", "rel_l2",
                    "rel_l2_extrap", "converged", "lm_iters", "lm_iters_max", "train_converged", "final_loss",
                    "diverged_at_step", "train_s", "step_s", "infer_ms", "peak_mib", "memory", "device",
                    "threads"]
"""Keys of an accuracy row."""
TIMING_COLUMNS = ["task", "pde", "method", "points", "points_per_expert", "experts", "grid", "batch", "step_s",
                  "infer_s", "converged", "lm_iters", "lm_iters_max", "peak_mib", "memory", "device", "threads"]
"""Keys of a timing row."""


# ----------------------------------------------------------------------------- settings
def _merge(base: dict, overrides: dict | None) -> dict:
    """``base`` with ``overrides`` applied (nested dicts merged key by key; unknown keys refused)."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if key not in out:
            raise SciMLError(f"unknown constraints-benchmark setting {key!r}; choose from {sorted(out)}")
        out[key] = _merge(out[key], value) if isinstance(out[key], dict) else copy.deepcopy(value)
    return out


def plan_settings(quick: bool = False, paper: bool = False, settings: dict | None = None) -> dict:
    """The benchmark plan: :data:`QUICK`, :data:`FULL` or :data:`PAPER` with ``settings`` overriding it.

    Examples
    --------
    >>> plan = plan_settings(quick=True, settings={"epochs": 1, "model": {"width": 8}})
    >>> plan["epochs"], plan["model"]["width"], plan["model"]["n_layers"]
    (1, 8, 3)
    """
    if quick and paper:
        raise SciMLError("--quick and --paper exclude each other: choose one plan")
    plan = _merge(PAPER if paper else QUICK if quick else FULL, settings)
    if not 3 <= plan["train_frames"] < plan["n_frames"]:
        raise SciMLError(f"train_frames = {plan['train_frames']} must be at least 3 and below n_frames = "
                         f"{plan['n_frames']}: later frames are the extrapolation test")
    if plan["n_cells"] % math.prod(plan["experts"][1:]) or plan["timing"]["n_cells"] % math.prod(plan["experts"][1:]):
        raise SciMLError(f"experts {plan['experts']} must divide the cells ({plan['n_cells']} and "
                         f"{plan['timing']['n_cells']} for timing): choose a divisor")
    if plan["experts"][0] != 1:
        raise SciMLError(f"experts {plan['experts']} split time; the extrapolation layer needs whole-window "
                         "experts: keep 1 block along time")
    return plan


def points_per_expert(grid_shape, experts, total: int | None = None, fraction: float | None = None) -> int:
    """Collocation points per expert: ``total / K``, or ``fraction`` of the grid's interior.

    The interior is every point off the first frame and the two edge cells (the
    condition points of diffusion-sorption).

    Examples
    --------
    >>> points_per_expert((101, 1024), (1, 4), fraction=PAPER_POINT_FRACTION)
    20000
    >>> points_per_expert((101, 1024), (1, 4), total=100000)
    25000
    """
    n_experts = math.prod(experts)
    if total is not None:
        if total < n_experts or total % n_experts:
            raise SciMLError(f"{total} collocation points do not split evenly over {n_experts} experts: "
                             f"use a multiple of {n_experts}")
        return total // n_experts
    return max(1, round(fraction * (grid_shape[0] - 1) * (grid_shape[1] - 2)))


def _layer_options(method: str, plan: dict, grid_shape, seed: int, total_points: int | None = None) -> dict:
    """The :class:`HardConstraintLayer` options of ``method`` on ``grid_shape``."""
    if method == "soft":
        return {"mode": "soft"}
    experts = [1, 1] if method == "global" else list(plan["experts"])
    points = points_per_expert(grid_shape, experts, total=total_points,
                               fraction=plan["point_fraction"] if total_points is None else None)
    return {"experts": experts, "points_per_expert": points, "seed": seed, "solve_dtype": "float64", **plan["layer"]}


# ----------------------------------------------------------------------------- physics
def physics_loss(constraint, u, initial):
    """Mean over samples of ``||PDE residual||_2`` on the whole grid plus ``||condition residual||_2``.

    The reference code's loss (``pde_loss + ic_loss + bc_loss``, norms, not squares),
    with the residuals of the constraint: the PDE at every grid point and the initial,
    inlet and outflow conditions at the condition points.

    Parameters
    ----------
    constraint : DiffusionSorptionConstraint
    u : Tensor ``(B, n_frames, n_cells)``
    initial : Tensor ``(B, n_cells)``

    Examples
    --------
    >>> import torch
    >>> from sciml.datasets.diffusion_sorption import generate_trajectories, DiffusionSorptionConstraint
    >>> arrays, attrs = generate_trajectories(1, seed=0, n_cells=32, n_frames=11)
    >>> u = torch.as_tensor(arrays["u"])
    >>> c = DiffusionSorptionConstraint.from_attrs(attrs)
    >>> bool(physics_loss(c, u, u[:, 0]) < physics_loss(c, 0.9 * u, u[:, 0]))
    True
    """
    import torch

    data = {"initial": initial}
    values = {k: v.flatten(1) for k, v in constraint.derivatives(u).items()}
    grid = torch.ones(constraint.grid_shape, dtype=torch.bool)
    pde = constraint.pde_residual(values, data, torch.nonzero(grid).to(u.device))
    mask = constraint.condition_mask().flatten().to(u.device)
    conditions = constraint.condition_residual({k: v[:, mask] for k, v in values.items()}, data,
                                               constraint.condition_index().to(u.device))
    return (pde.norm(dim=1) + conditions.norm(dim=1)).mean()


def model_inputs(u0, times, x, t_scale: float):
    """Float32 inputs ``(B, 3, T, X)``: ``t / t_scale``, ``x`` and the initial condition ``u0 (B, X)`` over time.

    Examples
    --------
    >>> import torch
    >>> model_inputs(torch.ones(2, 4), torch.tensor([0.0, 5.0, 10.0]), torch.linspace(0, 1, 4), 10.0).shape
    torch.Size([2, 3, 3, 4])
    """
    import torch

    u0 = torch.as_tensor(u0)
    t = torch.as_tensor(times, dtype=torch.float32, device=u0.device) / t_scale
    x = torch.as_tensor(x, dtype=torch.float32, device=u0.device)
    shape = (u0.shape[0], t.numel(), x.numel())
    return torch.stack([t[:, None].expand(shape), x[None, :].expand(shape),
                        u0.float()[:, None, :].expand(shape)], dim=1)


def _constraint(n_frames: int, n_cells: int, t_final: float, frames: int | None = None):
    """The diffusion-sorption constraint on the first ``frames`` of an ``n_frames x n_cells`` grid."""
    from sciml.datasets.diffusion_sorption import PDEBENCH_CONSTANTS, DiffusionSorptionConstraint

    return DiffusionSorptionConstraint((frames or n_frames, n_cells), (t_final / (n_frames - 1), 1.0 / n_cells),
                                       PDEBENCH_CONSTANTS)


# ----------------------------------------------------------------------------- data
def dataset(data_dir: Path, plan: dict) -> str:
    """``n_train + n_test`` diffusion-sorption trajectories on the plan's grid, generated once and reused."""
    from sciml.datasets.diffusion_sorption import generate_trajectories
    from sciml.trajectory_file import read_trajectories, write_grid_trajectories

    n = plan["n_train"] + plan["n_test"]
    path = Path(data_dir) / f"diffusion_sorption_{plan['n_frames']}x{plan['n_cells']}_n{n}_seed{plan['data_seed']}.nc"
    wanted = {"n_cells": plan["n_cells"], "n_frames": plan["n_frames"], "t_final": plan["t_final"]}
    if path.exists():
        found = read_trajectories(path)
        params = found.attrs["pde_parameters"]
        if (found.n_samples == n and found.attrs.get("root_seed") == plan["data_seed"]
                and all(params.get(k) == v for k, v in wanted.items())):
            return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays, attrs = generate_trajectories(n, plan["data_seed"], n_cells=plan["n_cells"], n_frames=plan["n_frames"],
                                          t_final=plan["t_final"])
    metadata = {k: attrs[k] for k in ("constants", "grid_shape", "dt", "dx", "boundary")}
    return write_grid_trajectories(path, arrays, coords={"time": attrs["time"], "x": attrs["x"]},
                                   attrs={"pde": attrs["pde"], "pde_parameters": attrs["pde_parameters"],
                                          "root_seed": plan["data_seed"], "metadata": metadata},
                                   seeds=attrs["seeds"], dtype=np.float64)


# ----------------------------------------------------------------------------- measuring
def _device(name: str | None):
    import torch

    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SciMLError(f"device {name!r} asked for but CUDA is not available here: use --device cpu")
    return device


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory(device) -> tuple[float, str]:
    """Peak memory of this process in MiB and what was measured."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda-allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "cpu-rss"  # KiB on Linux


def _build(method: str, plan: dict, constraint, seed: int, total_points: int | None = None):
    """The base FNO (``n_basis`` outputs, initialised from ``seed``) and ``method``'s constraint layer
    on ``constraint``'s grid (with ``total_points`` collocation points, default the plan's share)."""
    import torch

    from sciml.models.hard_constraint import build_constrained_model

    torch.manual_seed(seed)
    return build_constrained_model(constraint, plan["n_basis"], in_channels=3,
                                   model_options={**plan["model"], "positional_embedding": None},
                                   basis_activation=plan["basis_activation"],
                                   **_layer_options(method, plan, constraint.grid_shape, seed, total_points))


def _solve_stats(record) -> dict:
    """Share of converged solves and iterations of one forward pass (empty for the soft method)."""
    if record is None:
        return {}
    return {"converged": float(record.converged.float().mean()), "iterations": float(record.iterations.float().mean()),
            "most": int(record.iterations.max()), "solves": record.converged.numel()}


def _pool(stats: list[dict]) -> dict:
    """Over several forward passes' :func:`_solve_stats`: the share of converged solves, their mean
    iterations, and the mean over passes of the most iterations of any solve (the batched solver's
    iteration count, which sets its time)."""
    stats = [s for s in stats if s]
    if not stats:
        return {"converged": None, "lm_iters": None, "lm_iters_max": None}
    total = sum(s["solves"] for s in stats)
    return {"converged": sum(s["converged"] * s["solves"] for s in stats) / total,
            "lm_iters": sum(s["iterations"] * s["solves"] for s in stats) / total,
            "lm_iters_max": statistics.fmean(s["most"] for s in stats)}


def _relative_l2(pred, true):
    """Per-sample ``||pred - true|| / ||true||`` over all but the batch axis, ``(B,)``."""
    return (pred - true).flatten(1).norm(dim=1) / true.flatten(1).norm(dim=1)


def run_accuracy_trial(spec: dict) -> list[dict]:
    """Train one method with one seed on the training window and test it inside and beyond it."""
    import torch

    from sciml.models.hard_constraint import ConstrainedModel, HardConstraintLayer
    from sciml.trajectory_file import read_trajectories

    plan, method, seed = spec["plan"], spec["method"], spec["seed"]
    device = _device(spec["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    data = read_trajectories(spec["data"])
    u = torch.as_tensor(data.fields["u"], dtype=torch.float64, device=device)
    times, x = data.coords["time"], data.coords["x"]
    window = plan["train_frames"]
    t_scale = float(times[window - 1])
    constraint = _constraint(plan["n_frames"], plan["n_cells"], plan["t_final"], window)
    model = _build(method, plan, constraint, seed).to(device)
    train, test = u[: plan["n_train"]], u[plan["n_train"]:]

    optimizer = torch.optim.Adam(model.parameters(), lr=plan["lr"])
    steps_per_epoch = math.ceil(plan["n_train"] / plan["batch_size"])
    total_steps = steps_per_epoch * plan["epochs"]
    decay_every = max(1, round(plan["decay_fraction"] * total_steps))
    floor = plan["min_lr"] / plan["lr"]
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.5 ** (step // decay_every), floor))
    order = torch.Generator().manual_seed(seed)
    train_stats, losses, diverged_at, step = [], [], None, 0
    model.train()
    started = time.perf_counter()
    for _ in range(plan["epochs"]):
        for batch in torch.randperm(plan["n_train"], generator=order).split(plan["batch_size"]):
            target = train[batch.to(device), :window]
            pred = model(model_inputs(target[:, 0], times[:window], x, t_scale), {"initial": target[:, 0]})
            loss = physics_loss(constraint, pred.double(), target[:, 0])
            if plan["data_weight"]:
                loss = loss + plan["data_weight"] * _relative_l2(pred.double(), target).mean()
            step += 1
            if not bool(torch.isfinite(loss)):
                diverged_at = step
                break
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            train_stats.append(_solve_stats(model.record))
        if diverged_at is not None:
            break
    _sync(device)
    train_seconds = time.perf_counter() - started

    model.eval()
    full = _constraint(plan["n_frames"], plan["n_cells"], plan["t_final"])
    whole = ConstrainedModel(model.base, HardConstraintLayer(full, plan["n_basis"],
                                                             **_layer_options(method, plan, full.grid_shape, seed)),
                             plan["basis_activation"]).eval()
    errors, extrapolation, test_stats, infer_seconds = [], [], [], 0.0
    with torch.no_grad():
        for batch in torch.arange(len(test), device=device).split(plan["batch_size"]):
            target = test[batch]
            inputs = model_inputs(target[:, 0], times[:window], x, t_scale)
            _sync(device)
            clock = time.perf_counter()
            pred = model(inputs, {"initial": target[:, 0]})
            _sync(device)
            infer_seconds += time.perf_counter() - clock
            test_stats.append(_solve_stats(model.record))
            errors += _relative_l2(pred.double(), target[:, :window]).tolist()
            pred_whole = whole(model_inputs(target[:, 0], times, x, t_scale), {"initial": target[:, 0]})
            extrapolation += _relative_l2(pred_whole.double()[:, window:], target[:, window:]).tolist()
    solves = _pool(test_stats)
    peak, memory = _peak_memory(device)
    return [{
        "task": "accuracy", "pde": "diffusion-sorption", "method": method, "seed": seed,
        "grid": f"{window}x{plan['n_cells']}", "experts": "x".join(map(str, model.layer.config["experts"])),
        "points_per_expert": model.layer.config["points_per_expert"], "steps": len(losses),
        "rel_l2": statistics.fmean(errors), "rel_l2_extrap": statistics.fmean(extrapolation),
        **solves, "train_converged": _pool(train_stats)["converged"],
        "final_loss": losses[-1] if losses else None, "diverged_at_step": diverged_at,
        "train_s": train_seconds, "step_s": train_seconds / max(1, len(losses)),
        "infer_ms": 1e3 * infer_seconds / len(test), "peak_mib": round(peak), "memory": memory,
        "device": str(device), "threads": torch.get_num_threads(),
    }]


def run_timing_trial(spec: dict) -> list[dict]:
    """Time one training step and one inference pass of a hard method at ``spec["points"]`` collocation points."""
    import torch

    from sciml.datasets.diffusion_sorption import initial_conditions

    plan, method, points = spec["plan"], spec["method"], spec["points"]
    timing = plan["timing"]
    device = _device(spec["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    constraint = _constraint(timing["n_frames"], timing["n_cells"], plan["t_final"])
    model = _build(method, plan, constraint, 0, total_points=points).to(device)
    u0 = torch.as_tensor(initial_conditions(np.random.default_rng(0), timing["batch_size"], timing["n_cells"]),
                         device=device)
    times = np.linspace(0.0, plan["t_final"], timing["n_frames"])
    x = (np.arange(timing["n_cells"]) + 0.5) / timing["n_cells"]
    inputs = model_inputs(u0, times, x, plan["t_final"])
    optimizer = torch.optim.Adam(model.parameters(), lr=plan["lr"])
    stats = []

    def train_step():
        optimizer.zero_grad()
        loss = physics_loss(constraint, model(inputs, {"initial": u0}).double(), u0)
        loss.backward()
        optimizer.step()
        stats.append(_solve_stats(model.record))

    def infer():
        model.eval()
        with torch.no_grad():
            model(inputs, {"initial": u0})
        model.train()
        stats.append(_solve_stats(model.record))

    def seconds(fn) -> float:
        fn()  # warm-up (allocator, kernels)
        out = []
        for _ in range(timing["repeats"]):
            _sync(device)
            clock = time.perf_counter()
            fn()
            _sync(device)
            out.append(time.perf_counter() - clock)
        return statistics.median(out)

    step_s, infer_s = seconds(train_step), seconds(infer)
    peak, memory = _peak_memory(device)
    return [{
        "task": "timing", "pde": "diffusion-sorption", "method": method, "points": points,
        "points_per_expert": model.layer.config["points_per_expert"],
        "experts": "x".join(map(str, model.layer.config["experts"])),
        "grid": f"{timing['n_frames']}x{timing['n_cells']}", "batch": timing["batch_size"],
        "step_s": step_s, "infer_s": infer_s, **_pool(stats), "peak_mib": round(peak), "memory": memory,
        "device": str(device), "threads": torch.get_num_threads(),
    }]


TRIALS = {"accuracy": run_accuracy_trial, "timing": run_timing_trial}


def _run_trial(spec: dict, isolate: bool) -> list[dict]:
    """A trial in a fresh interpreter (``isolate``, so its peak memory is its own) or in this process."""
    if not isolate:
        return TRIALS[spec["task"]](spec)
    return run_in_child("sciml.bench_constraints", spec, f"constraints {spec['task']} {spec['method']}")


# ----------------------------------------------------------------------------- the suite
def _key(row: dict) -> tuple:
    return (row["task"], row["method"], row.get("seed"), row.get("points"))


def _comparable(plan: dict) -> dict:
    """The plan without what only selects trials (seeds, timing points) or threads: pieces of one run share it."""
    out = json.loads(json.dumps(plan))
    for key in ("seeds", "threads"):
        out.pop(key)
    out["timing"].pop("points")
    return out


def _earlier_rows(record: Path, plan: dict) -> list[dict]:
    """Rows of earlier pieces of the same run in ``record``; refuse a record of another plan."""
    if not record.exists():
        return []
    earlier = json.loads(record.read_text())
    if "plan" not in earlier or _comparable(earlier["plan"]) != _comparable(plan):
        raise SciMLError(f"{record} holds results of another plan (grid, model or epochs differ): "
                         "use another --out folder or remove that file")
    return earlier["rows"]


def run(quick: bool = False, out_dir: str | None = None, *, paper: bool = False, seeds=None, epochs=None,
        device: str | None = None, tasks=None, methods=None, points=None, threads: int | None = None,
        settings: dict | None = None, isolate: bool = True) -> list[dict]:
    """Run the suite; return the rows, with those of earlier pieces of the same run in ``out_dir``.

    A piece is a run with the same plan but other ``tasks``, ``methods``, ``seeds``,
    ``points`` or ``threads``; its rows replace earlier rows of the same trial. An
    ``out_dir`` whose record is of another plan is refused.

    Parameters
    ----------
    quick : bool
        64 x 21 grid, small FNO, 5 epochs (30 steps), one seed, timing at 100 and 1000
        points on that grid (about a minute on one core).
    out_dir : str, optional
        Where data, ``bench_constraints.json`` and the timing plot go (default: a
        temporary folder, nothing kept).
    paper : bool
        The reference code's sizes (1024 x 101, FNO 5 x 64, 2400 training samples,
        4000 steps): for a GPU.
    seeds, epochs : optional
        Seeds and epochs of the accuracy trials instead of the plan's.
    device : str, optional
        ``"cpu"`` or ``"cuda"`` (default: CUDA when available).
    tasks : list of str, optional
        Of :data:`TASKS` (default both).
    methods : list of str, optional
        Of :data:`METHODS`; the timing task runs the hard ones among them.
    points : list of int, optional
        Total collocation points of the timing sweep instead of the plan's.
    threads : int, optional
        CPU threads of each isolated trial (default: the plan's; quick 1, full all cores).
    settings : dict, optional
        Overrides of the plan (see :data:`FULL`), e.g. a tiny grid for tests.
    isolate : bool
        Run each trial in its own process (peak memory per trial). ``False`` runs them
        here: ``peak_mib`` is then this process's peak so far.
    """
    overrides = dict(settings or {})
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if seeds is not None:
        overrides["seeds"] = [int(s) for s in seeds]
    if threads is not None:
        overrides["threads"] = int(threads)
    if points is not None:
        overrides["timing"] = {**overrides.get("timing", {}), "points": [int(p) for p in points]}
    plan = plan_settings(quick=quick, paper=paper, settings=overrides)
    tasks = list(tasks or TASKS)
    methods = list(methods or METHODS)
    for name, chosen, valid in (("task", tasks, TASKS), ("method", methods, METHODS)):
        unknown = [c for c in chosen if c not in valid]
        if unknown:
            raise SciMLError(f"unknown {name} {unknown[0]!r}; choose from {list(valid)}")
    chosen_device = _device(device)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(out_dir or scratch)
        root.mkdir(parents=True, exist_ok=True)
        record = root / "bench_constraints.json"
        earlier = _earlier_rows(record, plan)
        started = time.perf_counter()
        rows = []
        if "accuracy" in tasks:
            data = dataset(root / "data", plan)
            for method in methods:
                for seed in plan["seeds"]:
                    rows += _run_trial({"task": "accuracy", "plan": plan, "method": method, "seed": seed,
                                        "data": data, "device": str(chosen_device)}, isolate)
        if "timing" in tasks:
            for total in plan["timing"]["points"]:
                for method in [m for m in methods if m in HARD_METHODS]:
                    rows += _run_trial({"task": "timing", "plan": plan, "method": method, "points": total,
                                        "device": str(chosen_device)}, isolate)
        done = {_key(r) for r in rows}
        rows = [r for r in earlier if _key(r) not in done] + rows
        if out_dir is not None:
            atomic_write_json(record, {"benchmark": "constraints", "quick": quick, "paper": paper, "plan": plan,
                                       "machine": machine_info(chosen_device), "seconds": time.perf_counter() - started,
                                       "rows": rows, "summary": summarize(rows)})
            if any(r["task"] == "timing" for r in rows):
                plot_timing(rows, root / "bench_constraints_timing.png")
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Accuracy: mean and spread over seeds per method. Timing: global against MoE per point count, with speedups."""
    out = []
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["task"] == "accuracy":
            groups.setdefault(row["method"], []).append(row)
    for method in [m for m in METHODS if m in groups]:
        group = groups[method]
        entry = {"task": "accuracy", "method": method, "seeds": len(group), "grid": group[0]["grid"],
                 "experts": group[0]["experts"], "points_per_expert": group[0]["points_per_expert"],
                 "steps": group[0]["steps"]}
        for key in ("rel_l2", "rel_l2_extrap", "converged", "lm_iters", "lm_iters_max", "step_s", "infer_ms",
                    "peak_mib"):
            values = [r[key] for r in group if r[key] is not None]
            entry[key] = statistics.fmean(values) if values else None
            if key.startswith("rel_l2"):
                entry[f"{key}_std"] = statistics.pstdev(values) if values else None
        out.append(entry)
    timing: dict[int, dict[str, dict]] = {}
    for row in rows:
        if row["task"] == "timing":
            timing.setdefault(row["points"], {})[row["method"]] = row
    for total in sorted(timing):
        entry = {"task": "timing", "points": total}
        for method, row in timing[total].items():
            for key in ("step_s", "infer_s", "lm_iters", "lm_iters_max", "converged", "peak_mib"):
                entry[f"{method}_{key}"] = row[key]
        if set(HARD_METHODS) <= set(timing[total]):
            entry["step_speedup"] = entry["global_step_s"] / entry["moe_step_s"]
            entry["infer_speedup"] = entry["global_infer_s"] / entry["moe_infer_s"]
        out.append(entry)
    return out


def plot_timing(rows: list[dict], path) -> Path:
    """Log-log plot of seconds per training step and per inference pass against collocation points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    timing = [r for r in rows if r["task"] == "timing"]
    if not timing:
        raise SciMLError("no timing rows to plot: run the timing task")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for method, colour in (("global", "tab:red"), ("moe", "tab:blue")):
        chosen = sorted((r for r in timing if r["method"] == method), key=lambda r: r["points"])
        if not chosen:
            continue
        label = "global hard" if method == "global" else "MoE hard"
        ax.plot([r["points"] for r in chosen], [r["step_s"] for r in chosen], "o-", color=colour,
                label=f"{label}: training step")
        ax.plot([r["points"] for r in chosen], [r["infer_s"] for r in chosen], "s--", color=colour,
                label=f"{label}: inference")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("collocation points (total)")
    ax.set_ylabel("seconds")
    first = timing[0]
    ax.set_title(f"diffusion-sorption {first['grid']}, batch {first['batch']}, {first['device']}")
    ax.legend(fontsize="small")
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path


def format_table(rows: list[dict]) -> str:
    """The seed-averaged accuracy table and the timing table (with speedups), as Markdown."""
    summary = summarize(rows)
    parts = []
    accuracy = [r for r in summary if r["task"] == "accuracy"]
    if accuracy:
        parts.append(tables.format_table(accuracy, [
            "method", "seeds", "grid", "experts", "points_per_expert", "steps", "rel_l2", "rel_l2_std",
            "rel_l2_extrap", "rel_l2_extrap_std", "converged", "lm_iters", "lm_iters_max", "step_s", "infer_ms",
            "peak_mib"]))
    timing = [r for r in summary if r["task"] == "timing"]
    if timing:
        parts.append(tables.format_table(timing, [
            "points", "global_step_s", "moe_step_s", "step_speedup", "global_infer_s", "moe_infer_s",
            "infer_speedup", "global_lm_iters_max", "moe_lm_iters_max", "global_converged", "moe_converged",
            "global_peak_mib", "moe_peak_mib"]))
    return "\n\n".join(parts) if parts else tables.format_table([])


def main(argv=None) -> None:
    """``python -m sciml.bench_constraints [--quick | --paper] [--out DIR] [--tasks ...] [--methods ...] ...``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 x 21, small FNO, 30 steps, one seed (~1 min)")
    parser.add_argument("--paper", action="store_true", help="the reference code's sizes (1024 x 101): for a GPU")
    parser.add_argument("--out", help="folder for data, bench_constraints.json and the timing plot")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, help="accuracy and/or timing (default both)")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default all (timing: the hard ones)")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds of the accuracy trials")
    parser.add_argument("--epochs", type=int, help="epochs of every accuracy trial")
    parser.add_argument("--points", nargs="+", type=int, help="total collocation points of the timing sweep")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="CPU threads per trial (default: quick 1, else all cores)")
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial:
        spec = json.loads(Path(args.trial).read_text())
        import torch

        torch.set_num_threads(spec["plan"]["threads"] or os.cpu_count() or 1)
        atomic_write_json(spec["rows_out"], TRIALS[spec["task"]](spec))
        return
    rows = run(quick=args.quick, out_dir=args.out, paper=args.paper, seeds=args.seeds, epochs=args.epochs,
               device=args.device, tasks=args.tasks, methods=args.methods, points=args.points, threads=args.threads)
    print(format_table(rows))


if __name__ == "__main__":
    main()
