"""Benchmark of the time-dependent models at equal budget: ``sciml bench dynamics``.

What is compared
    2-D Navier-Stokes (FNO's forced flow, nu = 1e-3): 10 frames in, 10 and 40 frames
    out, trained at 64^2 and tested at 64^2 and, zero-shot, at 256^2. Models: the
    spatio-temporal SFNO of Spectral-Refiner (Cao et al. 2025) mapping the 10 frames
    directly to the next 10 (``sfno-10``, rolled out 4 times for 40) or 40 (``sfno-40``);
    neuraloperator's FNO (Li et al. 2021) as the baseline in both of that paper's forms,
    autoregressive 2-D with the 10 frames as channels (``fno``) and 3-D space-time with
    the 10 frames repeated along a 40-frame time axis (``fno3d``, :class:`SpaceTimeFNO`);
    and SineNet-K (Zhang et al. 2024) and a U-Net of the same size, autoregressive with the
    10 frames as channels. The Spectral-Refiner then fine-tunes the trained SFNO's 256^2
    predictions on the PDE residual alone. SineNet-K for several K at one parameter count
    against the same-size U-Net, on Navier-Stokes and on shallow water (the PDEArena-style
    preset of :mod:`sciml.datasets.shallow_water`, 4 frames in, 40 out, where ``fno``,
    SineNet and the U-Net are compared).

Budget (equal for every model)
    The same training trajectories, the same number of optimiser steps and batch size,
    AdamW with a cosine schedule over those steps, relative-L2 loss on per-field
    standardised frames (:func:`sciml.rollout.train_one_step`); each model keeps the
    learning rate and weight decay of its paper or reference code (:data:`RECIPES`).
    Steps rather than epochs are equal because a trajectory holds fewer 10 -> 40 windows
    than 10 -> 1 windows; a trial runs the whole number of epochs closest to the step
    budget and reports the steps it took (within a few percent of the budget in the
    ``full`` and ``cpu`` plans).

Metrics
    Each test trajectory is rolled out from its first ``history`` true frames (the
    models' own predictions fed back): relative L2 over space of every predicted frame
    and field, averaged over fields and trajectories. ``one_step_l2`` is the first
    predicted frame, ``rollout_l2_10`` and ``rollout_l2_40`` the mean over the first 10
    and 40 frames. Parameters, training seconds, and inference milliseconds per
    trajectory (a 40-frame rollout, one trajectory at a time). Several seeds (the seed
    sets the initial weights and the batch order; the data are the same for all);
    :func:`summarize` gives the mean and spread over seeds.

Spectral-Refiner
    On a few test trajectories at the test resolution,
    :func:`sciml.models.spectral_refiner.refine` rebuilds the trained SFNO's last
    spectral layer with every mode of the grid, in space and in time, and minimises, per
    trajectory in float64, the ``L2(0, T; H^-1)`` norm (:func:`ns_residual_norm`) of the
    vorticity residual of the last two input frames followed by the prediction, with
    ``alpha = 0.1``, ``s = 1`` (the shift and order of torch-cfd's ``SobolevLoss``), by
    L-BFGS on parameters rescaled by an equilibration preconditioner from 8
    Hessian-vector products (see ``refine``). Reported: error and residual before and
    after, the residual of the true trajectory (the floor the frame spacing sets), seconds
    per trajectory and their ratio to one forward pass. Departure: torch-cfd's fine-tuning
    example keeps 6 time modes. With 6 of the 11 and no preconditioner (this suite's
    earlier setting) L-BFGS crawled: on the ``cpu`` plan the residual fell 23x and the
    error 2.5x in 300 steps; either change alone still leaves the residual above 4e-5
    after 300 steps (at 32^2). With both, 60 steps cut the residual of each of the 8
    ``cpu``-plan test trajectories (at 32^2; the 2 refined at 128^2 alike) by 1.5-5e4x,
    to 1-3e-7, below the true trajectory's (4-16e-7: the refined trajectory minimises
    the centred-difference residual, the truth does not), and the error by 200-450x, to
    1-3e-5 (the discretisation error of that residual at this frame spacing).

Data and the frame spacing
    Navier-Stokes trajectories are :class:`~sciml.datasets.navier_stokes.NavierStokes`
    data of the forced preset, solved at 256^2 (float64, dt = 0.01: within the CFL limit
    for these velocities, and 2e-8 from dt = 0.005 after 6 time units), stored at 64^2
    for training; the test trajectories are stored at 256^2 and Fourier-restricted to
    64^2 (what the generator stores at 64^2). Frames are ``frame_dt = 0.1`` apart after a
    spin-up of 3 time units. Why: the residual takes ``w_t`` from centred differences of
    the frames, so even the exact trajectory has a residual of order ``frame_dt^2``, and
    refinement can approach the truth only to within that floor. Measured on this flow
    (4 trajectories), the data's own H^-1 residual relative to ``||w_t||`` is 1.4e-4 at
    frame_dt 0.1, 5e-4 at 0.2, 5e-3 at 0.5 and 3e-2 at the FNO benchmark's 1.0 (t = 5-20;
    6e-4 at t = 30 with 0.1); in the first time unit it is 4e-3 even at 0.1 (the initial
    field's small scales decay within a frame), hence the spin-up. A prediction with
    1% error starts with a residual of the order of ``||w_t||``, four orders of
    magnitude above the floor. 10 + 40 frames cover 4.9 time units, over which the
    vorticity changes by 40-90% (10-25% over the first 10 frames). The flow is smooth:
    about 1e-6 of the vorticity's norm lies above wavenumber 12 (0.1% above 6), so at
    256^2 the test has no small scales a 64^2 model misses; a spectral model's zero-shot
    error equals its 64^2 error, and what the refiner must remove is large-scale, slowly
    varying error, which the residual penalises weakly. Shallow-water trajectories are
    :class:`~sciml.datasets.shallow_water.ShallowWater` data of the benchmark defaults
    (64^2 cells, frames 0.05 apart). Data are generated once into ``out_dir/data``,
    staged batch by batch (:func:`sciml.simulate.simulate_dataset`), so an interrupted
    generation resumes.

Plans and pieces
    :data:`FULL` (the default) has the papers' model sizes and is meant for a GPU;
    :data:`CPU` is the same protocol scaled to 2 CPU cores (32^2 -> 128^2, smaller
    models, 600 steps) so that every trial takes about 10 minutes; :data:`QUICK` is a
    smoke run. Every trial (task, model, seed) is saved in ``out_dir/trials`` when it ends
    and reused when the same plan asks for it again, and ``bench_dynamics.json`` holds
    every finished trial of the plan: a run can be done in pieces (``--tasks``,
    ``--models``, ``--seeds``), and killed and restarted. Trials are reused whatever
    machine made them (each row names its device): give each machine its own ``--out``.

Departures
    Far smaller training sets and budgets than the papers (1152 trajectories and 10
    epochs for the SFNO, 50 epochs of thousands of trajectories for SineNet); no
    learning-rate warm-up (SineNet's reference warms up over 5 of 50 epochs, torch-cfd
    uses a one-cycle schedule); relative L2 as the SFNO's loss (torch-cfd's default);
    Spectral-Refiner's data spin up for 30 time units and store frames 0.2 apart (here 3
    and 0.1, for the residual floor above and the cost of a 256^2 spin-up);
    history 10 for the autoregressive models on Navier-Stokes (SineNet's data use 4) so
    that every model sees the same 10 frames; FNO modes in neuraloperator's convention
    (24 in all per axis = Li et al.'s 12 per sign).

Examples
--------
>>> from sciml.bench_dynamics import format_table, run          # doctest: +SKIP
>>> print(format_table(run(quick=True)))                        # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.bench_trials import machine_info
from sciml.errors import SciMLError

TASKS = ("data", "ns", "refiner", "sinenet-sweep", "swe")
"""What ``--tasks`` can name; ``data`` only generates the data sets."""

DEFAULT_TASKS = ("ns", "refiner", "sinenet-sweep", "swe")

RECIPES = {
    "sfno": {"lr": 1e-2, "weight_decay": 0.0},     # torch-cfd sfno/train.py: Adam, lr 1e-2 (one-cycle)
    "fno": {"lr": 1e-3, "weight_decay": 1e-4},     # Li et al. (2021): Adam, lr 1e-3, weight decay 1e-4
    "fno3d": {"lr": 1e-3, "weight_decay": 1e-4},
    "sinenet": {"lr": 2e-4, "weight_decay": 1e-5},  # SineNet configs: AdamW, lr 2e-4, weight decay 1e-5
    "unet": {"lr": 2e-4, "weight_decay": 1e-5},     # the SineNet paper's U-Net baselines
}
"""Learning rate and weight decay of each model family, from its paper or reference code."""

FULL = {
    "seeds": [0, 1, 2],
    "threads": None,
    "train": {"steps": 2400, "batch_size": 8},
    "ns": {"nu": 1e-3, "dt": 0.01, "frame_dt": 0.1, "warmup_time": 3.0, "solver_resolution": 256,
           "train_resolution": 64, "test_resolution": 256, "n_train": 128, "n_test": 16, "train_frames": 60,
           "history": 10, "frames": 40, "generation_batch": 16,
           "models": ["sfno-10", "sfno-40", "fno", "fno3d", "sinenet-8", "unet"]},
    "swe": {"resolution": 64, "frame_interval": 0.05, "n_train": 128, "n_test": 16, "train_frames": 54,
            "history": 4, "frames": 40, "generation_batch": 32, "models": ["fno", "sinenet-8", "unet"]},
    "models": {
        "sfno": {"modes_space": 12, "modes_time": 5, "width": 20, "n_layers": 4},
        "fno": {"n_modes": 24, "width": 20, "n_layers": 4},
        "fno3d": {"n_modes": 16, "time_modes": 16, "width": 20, "n_layers": 4, "time_padding": 0.15},
        "sinenet": {"width": 64, "levels": 4, "multiplier": 1.425}
    },
    "sweep": {"waves": [2, 4, 8]},
    "refiner": {"models": ["sfno-10", "sfno-40"], "n_trajectories": 8, "steps": 100, "alpha": 0.1, "s": 1.0,
                "context": 2, "time_modes": None, "probes": 8},
}
"""The full plan, at the papers' model sizes (a GPU run): 64^2 -> 256^2, 128 training trajectories per
PDE, 2400 steps of batch 8, 3 seeds, SineNet at the paper's width 64 (35.5 M parameters)."""

CPU = {
    "seeds": [0, 1, 2],
    "threads": 1,
    "train": {"steps": 600, "batch_size": 8},
    "ns": {"nu": 1e-3, "dt": 0.01, "frame_dt": 0.1, "warmup_time": 3.0, "solver_resolution": 128,
           "train_resolution": 32, "test_resolution": 128, "n_train": 32, "n_test": 8, "train_frames": 60,
           "history": 10, "frames": 40, "generation_batch": 8,
           "models": ["sfno-10", "sfno-40", "fno", "sinenet-8", "unet"]},
    "swe": {"resolution": 32, "frame_interval": 0.05, "n_train": 32, "n_test": 8, "train_frames": 54,
            "history": 4, "frames": 40, "generation_batch": 32, "models": ["fno", "sinenet-8", "unet"]},
    "models": {
        "sfno": {"modes_space": 8, "modes_time": 5, "width": 16, "n_layers": 4},
        "fno": {"n_modes": 16, "width": 20, "n_layers": 4},
        "fno3d": {"n_modes": 12, "time_modes": 12, "width": 8, "n_layers": 4, "time_padding": 0.15},
        "sinenet": {"width": 16, "levels": 3, "multiplier": 1.425}
    },
    "sweep": {"waves": [2, 4, 8]},
    "refiner": {"models": ["sfno-10"], "n_trajectories": 2, "steps": 60, "alpha": 0.1, "s": 1.0,
                "context": 2, "time_modes": None, "probes": 8},
}
"""The same protocol scaled to 2 CPU cores, one thread, every trial within about 10 minutes: 32^2 ->
128^2 (the same 4x zero-shot step), 32 training trajectories, 600 steps, smaller models, 2 refined
trajectories (~1.5 min each); no FNO-3D (~1 s a step even this small) and no refinement of ``sfno-40``
(4 times the frames): add them with ``--models fno3d`` or ``--tasks refiner --models sfno-40``. 600
steps (3 epochs) leave the deeper SineNets short of training (training loss on Navier-Stokes: 0.0086,
0.0093, 0.0136 for K = 2, 4, 8, the U-Net 0.0075), so the SineNet-K sweep is run with ``--steps 1600``
(8 epochs) for every SineNet-K and the U-Net alike (the order persists there: 0.0038, 0.0045, 0.0062,
the U-Net 0.0031; the paper trains 50 epochs on far more data). A trial's file carries the plan's
digest, so these trials sit beside the 600-step ones in the same ``--out``. One step of batch 8 on one
free core: 0.13, 0.21, 0.35 s for SineNet-2, -4, -8 and 0.12 s for the U-Net."""

QUICK = {
    "seeds": [0],
    "threads": 1,
    "train": {"steps": 30, "batch_size": 8},
    "ns": {"nu": 1e-3, "dt": 0.025, "frame_dt": 0.1, "warmup_time": 1.0, "solver_resolution": 64,
           "train_resolution": 32, "test_resolution": 64, "n_train": 6, "n_test": 2, "train_frames": 50,
           "history": 10, "frames": 40, "generation_batch": 6,
           "models": ["sfno-10", "sfno-40", "fno", "fno3d", "sinenet-2", "unet"]},
    "swe": {"resolution": 32, "frame_interval": 0.05, "n_train": 6, "n_test": 2, "train_frames": 44,
            "history": 4, "frames": 40, "generation_batch": 6, "models": ["fno", "sinenet-2", "unet"]},
    "models": {
        "sfno": {"modes_space": 6, "modes_time": 3, "width": 8, "n_layers": 2},
        "fno": {"n_modes": 12, "width": 8, "n_layers": 2},
        "fno3d": {"n_modes": 8, "time_modes": 8, "width": 6, "n_layers": 2, "time_padding": 0.15},
        "sinenet": {"width": 4, "levels": 2, "multiplier": 1.425}
    },
    "sweep": {"waves": [1, 2]},
    "refiner": {"models": ["sfno-10"], "n_trajectories": 2, "steps": 20, "alpha": 0.1, "s": 1.0,
                "context": 2, "time_modes": None, "probes": 8},
}
"""The ``--quick`` plan: tiny grids, models and budgets, one seed, one torch thread (tiny models run
fastest on one; a smoke run, not a measurement)."""

PLANS = {"full": FULL, "cpu": CPU, "quick": QUICK}

COLUMNS = ["task", "model", "resolution", "seeds", "params", "steps", "one_step_l2", "rollout_l2_10",
           "rollout_l2_10_std", "rollout_l2_40", "rollout_l2_40_std", "train_s", "infer_ms"]
"""Columns of the models' table (:func:`format_table`, means over seeds)."""
REFINER_COLUMNS = ["task", "model", "resolution", "seeds", "n_trajectories", "error_before", "error_after",
                   "residual_before", "residual_after", "residual_truth", "refine_s", "forward_ms", "cost_ratio",
                   "steps", "diverged"]
"""Columns of the Spectral-Refiner's table."""
_AVERAGED = ("one_step_l2", "rollout_l2_10", "rollout_l2_40", "train_s", "infer_ms", "error_before", "error_after",
             "residual_before", "residual_after", "residual_truth", "refine_s", "forward_ms", "cost_ratio", "diverged")
_SPREAD = ("one_step_l2", "rollout_l2_10", "rollout_l2_40", "error_before", "error_after", "residual_after")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SciMLError(message)


def _jsonable(value):
    """``value`` as it comes back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(value))


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:10]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- models
class SpaceTimeFNO(torch.nn.Module):
    """The FNO-3D of Li et al. (2021): ``(B, T_in, X, Y)`` frames to the next ``T_out`` frames at once.

    The ``T_in`` input frames are repeated along a time axis of ``T_out`` points and fed,
    as ``T_in`` channels on the space-time grid ``(X, Y, T_out)``, to neuraloperator's
    3-D FNO (:class:`sciml.models.FNO` with ``dim = 3``, grid coordinates appended),
    which outputs one channel: the vorticity at every output time. The time axis is not
    periodic, so it is zero-padded by ``time_padding`` of its length (Li et al. pad 6 of
    40 frames). Spatial resolution is free; ``T_out`` is fixed.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output frames.
    n_modes, time_modes : int
        Kept frequencies per spatial axis and in time (neuraloperator's convention:
        total over both signs).
    width, n_layers : int
    time_padding : float

    Examples
    --------
    >>> import torch
    >>> from sciml.bench_dynamics import SpaceTimeFNO
    >>> model = SpaceTimeFNO(3, 5, n_modes=4, time_modes=4, width=4, n_layers=1)
    >>> tuple(model(torch.zeros(2, 3, 8, 8)).shape)
    (2, 5, 8, 8)
    """

    def __init__(self, in_channels: int, out_channels: int, n_modes: int = 16, time_modes: int = 16,
                 width: int = 20, n_layers: int = 4, time_padding: float = 0.15):
        super().__init__()
        from sciml.models import FNO

        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.config = {"in_channels": self.in_channels, "out_channels": self.out_channels, "n_modes": n_modes,
                       "time_modes": time_modes, "width": width, "n_layers": n_layers, "time_padding": time_padding}
        self.fno = FNO(in_channels=in_channels, out_channels=1, n_modes=[n_modes, n_modes, time_modes], width=width,
                       n_layers=n_layers, domain_padding=[0.0, 0.0, time_padding])

    @property
    def n_parameters(self) -> int:
        return self.fno.n_parameters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, X, Y)`` to ``(B, out_channels, X, Y)``."""
        repeated = x.unsqueeze(-1).expand(*x.shape, self.out_channels)
        return self.fno(repeated)[:, 0].movedim(-1, 1)


def _numbered(name: str, prefix: str) -> int | None:
    """``K`` of a name ``prefix-K`` (a positive integer), or None for another name."""
    if not name.startswith(prefix + "-"):
        return None
    number = name[len(prefix) + 1:]
    _require(number.isdigit() and int(number) >= 1, f"benchmark model {name!r} needs a positive integer after "
                                                    f"'{prefix}-', e.g. {prefix}-8")
    return int(number)


def model_config(name: str, in_channels: int, out_channels: int, plan: dict) -> tuple[str, dict]:
    """The family and keyword arguments of benchmark model ``name`` for the given channels.

    ``sfno-N`` maps the ``in_channels`` frames of one field to the next ``N``; ``fno3d``
    (one field) to the next ``frames`` of the Navier-Stokes plan; ``fno``, ``sinenet-K``
    and ``unet`` to ``out_channels`` (the next frame of every field). ``sinenet-K`` and
    ``unet`` all have the parameter count of the plan's SineNet shape at the largest K
    of the sweep (width, levels and, for that K, the multiplier: the paper's SineNet-8
    has 1.425), matched with :func:`~sciml.models.sinenet.match_parameters` (the
    multiplier of SineNet-K, the width of the U-Net, which has SineNet's levels), with
    circular padding (the domains are periodic).

    Examples
    --------
    >>> from sciml.bench_dynamics import QUICK, model_config
    >>> model_config("sfno-10", 10, 1, QUICK)
    ('sfno', {'in_channels': 10, 'out_channels': 10, 'modes_space': 6, 'modes_time': 3, 'width': 8, 'n_layers': 2})
    """
    from sciml.models.sinenet import count_parameters, match_parameters

    sizes = plan["models"]
    frames, waves = _numbered(name, "sfno"), _numbered(name, "sinenet")
    if frames is not None or name == "fno3d":
        _require(out_channels == 1, f"{name} maps the frames of one field; it cannot predict {out_channels} "
                                    "fields: use fno, sinenet-K or unet")
        if name == "fno3d":
            return "fno3d", {"in_channels": in_channels, "out_channels": plan["ns"]["frames"], **sizes["fno3d"]}
        return "sfno", {"in_channels": in_channels, "out_channels": frames, **sizes["sfno"]}
    if name == "fno":
        return "fno", {"in_channels": in_channels, "out_channels": out_channels, **sizes["fno"]}
    _require(name == "unet" or waves is not None,
             f"unknown benchmark model {name!r}; use sfno-N, fno, fno3d, sinenet-K or unet")
    shared = {"in_channels": in_channels, "out_channels": out_channels, "padding": "circular",
              "levels": sizes["sinenet"]["levels"]}
    reference = {**shared, "waves": max(plan["sweep"]["waves"]), "width": sizes["sinenet"]["width"],
                 "multiplier": sizes["sinenet"]["multiplier"]}
    if waves == reference["waves"]:
        return "sinenet", reference
    target = count_parameters("sinenet", **reference)
    if name == "unet":
        return "unet", match_parameters("unet", target, vary="width", **shared)
    return "sinenet", match_parameters("sinenet", target, vary="multiplier", **shared, waves=waves,
                                       width=sizes["sinenet"]["width"])


def build(name: str, in_channels: int, out_channels: int, plan: dict) -> torch.nn.Module:
    """Benchmark model ``name`` (see :func:`model_config`), freshly initialised from torch's RNG."""
    from sciml.models import build_model

    family, kwargs = model_config(name, in_channels, out_channels, plan)
    return SpaceTimeFNO(**kwargs) if family == "fno3d" else build_model(family, **kwargs)


def task_models(plan: dict, task: str) -> list[str]:
    """The models a task trains: ``"ns"``, ``"swe"`` (the plan's lists) or ``"sinenet-sweep"`` (both PDEs).

    Examples
    --------
    >>> from sciml.bench_dynamics import FULL, task_models
    >>> task_models(FULL, "ns"), task_models(FULL, "sinenet-sweep")
    (['sfno-10', 'sfno-40', 'fno', 'fno3d', 'sinenet-8', 'unet'], ['sinenet-2', 'sinenet-4', 'sinenet-8', 'unet'])
    """
    if task in ("ns", "swe"):
        return list(plan[task]["models"])
    if task == "sinenet-sweep":
        return [f"sinenet-{k}" for k in plan["sweep"]["waves"]] + ["unet"]
    raise SciMLError(f"task {task!r} trains no models; choose one of 'ns', 'swe', 'sinenet-sweep'")


def _family(name: str) -> str:
    return name.split("-")[0]


# ----------------------------------------------------------------------------- data
_SEEDS = {"ns_train": 101, "ns_test": 102, "swe_train": 201, "swe_test": 202}


def _cached_trajectories(generator, n: int, seed: int, batch_size: int, data_dir: Path, stem: str, device):
    """Generate (or resume, or reuse) ``n`` trajectories into ``data_dir`` and read them back.

    The file name carries a digest of the settings, so a file is only ever reused for
    the settings that made it; a half-finished generation resumes batch by batch.
    """
    from sciml.simulate import simulate_dataset
    from sciml.trajectory_file import read_trajectories

    batch_size = min(batch_size, n)
    key = _digest({"parameters": generator.parameters(), "n": n, "seed": seed, "batch": batch_size,
                   "version": generator.version})
    path = data_dir / f"{stem}_{key}.nc"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        simulate_dataset(generator, n, path, seed=seed, batch_size=batch_size, device=device,
                         resume=Path(f"{path}.parts").exists())
    return read_trajectories(path)


def ns_data(plan: dict, data_dir: Path, device=None) -> dict:
    """Navier-Stokes training and test trajectories of the plan (see the module docstring).

    Returns
    -------
    dict
        ``train``: ``{"w": (n_train, train_frames, m, m)}``; ``tests``: ``{m: {"w": ...},
        M: {"w": ...}}`` (the same test trajectories at the training and the test
        resolution, float32 tensors); ``residual``: the keywords of
        :func:`~sciml.datasets.navier_stokes.vorticity_residual` at the test resolution.
    """
    from sciml.datasets.navier_stokes import NavierStokes, residual_settings
    from sciml.datasets.periodic_spectral import resample

    cfg = plan["ns"]

    def generator(frames: int, store: int):
        return NavierStokes(preset="forced", nu=cfg["nu"], frame_dt=cfg["frame_dt"], warmup_time=cfg["warmup_time"],
                            final_time=cfg["warmup_time"] + (frames - 1) * cfg["frame_dt"],
                            resolution=cfg["solver_resolution"], store_resolution=store, dt=cfg["dt"])

    m, big = cfg["train_resolution"], cfg["test_resolution"]
    _require(m <= big <= cfg["solver_resolution"],
             f"Navier-Stokes grids must satisfy train_resolution {m} <= test_resolution {big} <= solver_resolution "
             f"{cfg['solver_resolution']}: the stored frames are restrictions of the solver's")
    train = _cached_trajectories(generator(cfg["train_frames"], m), cfg["n_train"], _SEEDS["ns_train"],
                                 cfg["generation_batch"], data_dir, "ns_train", device)
    test = _cached_trajectories(generator(cfg["history"] + cfg["frames"], big), cfg["n_test"], _SEEDS["ns_test"],
                                cfg["generation_batch"], data_dir, "ns_test", device)
    w_test = torch.from_numpy(np.asarray(test.fields["w"], dtype=np.float32))
    restricted = resample(w_test.double(), (m, m)).float()  # what the generator stores at m^2
    return {"train": {"w": torch.from_numpy(np.asarray(train.fields["w"], dtype=np.float32))},
            "tests": {m: {"w": restricted}, big: {"w": w_test}},
            "residual": residual_settings(test.attrs["metadata"])}


def swe_data(plan: dict, data_dir: Path, device=None) -> dict:
    """Shallow-water training and test trajectories (fields ``h, u, v``) of the plan, like :func:`ns_data`."""
    from sciml.datasets.shallow_water import ShallowWater

    cfg = plan["swe"]

    def generator(frames: int):
        return ShallowWater(resolution=cfg["resolution"], n_frames=frames, frame_interval=cfg["frame_interval"])

    train = _cached_trajectories(generator(cfg["train_frames"]), cfg["n_train"], _SEEDS["swe_train"],
                                 cfg["generation_batch"], data_dir, "swe_train", device)
    test = _cached_trajectories(generator(cfg["history"] + cfg["frames"]), cfg["n_test"], _SEEDS["swe_test"],
                                cfg["generation_batch"], data_dir, "swe_test", device)

    def tensors(t) -> dict:
        return {name: torch.from_numpy(np.asarray(t.fields[name], dtype=np.float32)) for name in t.attrs["fields"]}

    return {"train": tensors(train), "tests": {cfg["resolution"]: tensors(test)}}


# ----------------------------------------------------------------------------- training and evaluation
def _frame_errors(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Relative L2 over space of every (trajectory, frame), float64 ``(B, T)``."""
    pred, true = pred.double(), true.double()
    return (pred - true).flatten(2).norm(dim=2) / true.flatten(2).norm(dim=2)


@torch.no_grad()
def evaluate(model, normalizer, trajectories: dict, history: int, frames: int) -> dict:
    """Roll ``model`` out from the first ``history`` frames of each trajectory and measure it.

    Parameters
    ----------
    model : torch.nn.Module
        ``in_channels = history * fields``, ``out_channels = horizon * fields``.
    normalizer : ChannelNormalizer
        The per-field statistics it was trained with.
    trajectories : dict of str to Tensor (B, T, *space)
        ``T >= history + frames``.
    history, frames : int
        Input frames, and frames to predict (``ceil(frames / horizon)`` model calls).

    Returns
    -------
    dict
        ``one_step_l2`` (first predicted frame), ``rollout_l2_10``, ``rollout_l2_40``
        (mean over the first 10 and 40 frames; None when fewer are predicted),
        ``rollout_l2_per_frame`` and ``infer_ms`` (wall time of the rollout per
        trajectory, run one trajectory at a time after one warm-up call).

    Examples
    --------
    >>> import torch
    >>> from sciml.bench_dynamics import evaluate
    >>> from sciml.models import build_model
    >>> traj = {"w": torch.randn(2, 14, 8, 8, generator=torch.Generator().manual_seed(0))}
    >>> out = evaluate(build_model("unet", in_channels=2, out_channels=1, width=4, levels=1), None, traj, 2, 12)
    >>> len(out["rollout_l2_per_frame"]), out["rollout_l2_10"] > 0, out["rollout_l2_40"]
    (12, True, None)
    """
    from sciml.rollout import rollout

    names = list(trajectories)
    length = next(iter(trajectories.values())).shape[1]
    _require(length >= history + frames, f"test trajectories have {length} frames, fewer than history {history} + "
                                         f"{frames} predicted frames: generate longer ones or predict fewer")
    horizon = model.out_channels // len(names)
    n_steps = math.ceil(frames / horizon)
    device = next(model.parameters()).device
    initial = {name: value[:, :history] for name, value in trajectories.items()}
    rollout(model, {name: value[:1] for name, value in initial.items()}, 1, history, normalizer)  # warm-up
    _synchronize(device)
    start = time.perf_counter()
    predicted = rollout(model, initial, n_steps, history, normalizer, batch_size=1)
    _synchronize(device)
    seconds = time.perf_counter() - start
    errors = torch.stack([_frame_errors(predicted[name][:, :frames],
                                        trajectories[name][:, history: history + frames]) for name in names])
    per_frame = errors.mean(dim=(0, 1))
    n_trajectories = next(iter(trajectories.values())).shape[0]
    return {
        "one_step_l2": float(per_frame[0]),
        "rollout_l2_10": float(per_frame[:10].mean()) if frames >= 10 else None,
        "rollout_l2_40": float(per_frame[:40].mean()) if frames >= 40 else None,
        "rollout_l2_per_frame": per_frame.tolist(),
        "infer_ms": 1e3 * seconds / n_trajectories,
    }


def _epochs_for(steps: int, n_windows: int, batch_size: int) -> int:
    """Whole epochs whose number of optimiser steps is closest to ``steps``."""
    return max(1, round(steps / math.ceil(n_windows / batch_size)))


def _train_and_evaluate(task: str, name: str, seed: int, plan: dict, data: dict, device: torch.device,
                        checkpoint: Path | None) -> list[dict]:
    """One trial: build ``name`` from ``seed``, train it on ``data["train"]``, evaluate on every test grid."""
    from sciml.rollout import WindowDataset, train_one_step

    cfg, budget = plan[task], plan["train"]
    fields = list(data["train"])
    torch.manual_seed(seed)
    model = build(name, cfg["history"] * len(fields), len(fields), plan)
    recipe = RECIPES[_family(name)]
    horizon = model.out_channels // len(fields)
    windows = len(WindowDataset(data["train"], cfg["history"], horizon))
    epochs = _epochs_for(budget["steps"], windows, budget["batch_size"])
    summary = train_one_step(model, data["train"], history=cfg["history"], epochs=epochs,
                             batch_size=budget["batch_size"], lr=recipe["lr"], weight_decay=recipe["weight_decay"],
                             seed=seed, device=device)
    rows = []
    for resolution, test in data["tests"].items():
        metrics = evaluate(model, summary["normalizer"], test, cfg["history"], cfg["frames"])
        rows.append({"task": task, "model": name, "resolution": resolution, "seed": seed,
                     "params": summary["n_parameters"], "steps": summary["steps"], "epochs": epochs,
                     "lr": recipe["lr"], "weight_decay": recipe["weight_decay"], "history": cfg["history"],
                     "horizon": horizon, "n_test": next(iter(test.values())).shape[0], **metrics,
                     "train_s": summary["train_seconds"], "final_loss": summary["final_loss"],
                     "device": str(device)})
    if checkpoint is not None:
        from sciml.checkpoint import model_payload, save_checkpoint
        from sciml.normalization import Normalizers

        norm = summary["normalizer"]
        shape = tuple(data["train"][fields[0]].shape[2:])
        save_checkpoint(checkpoint, model_payload(model, Normalizers(norm, norm), fields, fields, shape,
                                                  [1.0 / n for n in shape]))
    return rows


# ----------------------------------------------------------------------------- Spectral-Refiner
def ns_residual_norm(w: torch.Tensor, *, frame_dt: float, nu: float, forcing=None, drag: float = 0.0,
                     alpha: float = 0.1, s: float = 1.0) -> torch.Tensor:
    """``||R||_{L2(0,T; H^-s)}`` of the vorticity residual of trajectories ``w (B, T, n, n)``, float64 ``(B,)``.

    ``R`` is :func:`~sciml.datasets.navier_stokes.vorticity_residual` and each frame's
    norm :func:`~sciml.datasets.periodic_spectral.negative_sobolev_norm`; the time
    integral is the sum over frames times ``frame_dt``. Differentiable.

    Examples
    --------
    >>> import torch
    >>> from sciml.bench_dynamics import ns_residual_norm
    >>> ns_residual_norm(torch.zeros(2, 3, 8, 8, dtype=torch.float64), frame_dt=0.1, nu=1e-3).tolist()
    [0.0, 0.0]
    """
    from sciml.datasets.navier_stokes import vorticity_residual
    from sciml.datasets.periodic_spectral import negative_sobolev_norm

    r = vorticity_residual(w, frame_dt=frame_dt, nu=nu, forcing=forcing, drag=drag)
    return (frame_dt * negative_sobolev_norm(r, alpha=alpha, s=s).square().sum(dim=-1)).sqrt()


def _refine_trial(name: str, seed: int, plan: dict, data: dict, device: torch.device, checkpoint: Path) -> list[dict]:
    """Spectral-Refiner on the trained SFNO ``name``'s predictions of the first test trajectories (test grid)."""
    from sciml.checkpoint import load_model
    from sciml.models.spectral_refiner import refine

    cfg, ref = plan["ns"], plan["refiner"]
    model, normalizers, _ = load_model(checkpoint, device=device)
    mean, std = float(normalizers.input.mean[0]), float(normalizers.input.std[0])
    resolution, history, out = cfg["test_resolution"], cfg["history"], model.out_channels
    w = data["tests"][resolution]["w"][: ref["n_trajectories"]]
    settings = dict(data["residual"])
    settings["forcing"] = None if settings["forcing"] is None else settings["forcing"].to(device)
    settings.update(alpha=ref["alpha"], s=ref["s"])
    context = ref["context"]
    # every spatial mode, and every time mode unless the plan names fewer; see the module docstring
    modes = None if ref["time_modes"] is None else (resolution // 2, resolution // 2, ref["time_modes"])
    model64 = copy.deepcopy(model).double().eval()

    def residual_norm(prediction: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        frames = torch.cat([inputs[:, -context:], prediction], dim=1) * std + mean
        return ns_residual_norm(frames, **settings)

    per_trajectory = []
    for b in range(w.shape[0]):
        x = ((w[b: b + 1, :history] - mean) / std).to(device)
        truth = w[b: b + 1, history: history + out].to(device, torch.float64)
        with torch.no_grad():
            model(x)  # warm-up, so that refine's timed forward pass is a steady-state one
            before = model64(x.double()) * std + mean
        report = refine(model, x, residual_norm, steps=ref["steps"], modes=modes, probes=ref["probes"])
        after = report.outputs * std + mean
        true_frames = torch.cat([w[b: b + 1, history - context: history].to(device, torch.float64), truth], dim=1)
        per_trajectory.append({
            "error_before": float(_frame_errors(before, truth).mean()),
            "error_after": float(_frame_errors(after, truth).mean()),
            "residual_before": float(report.residual_before[0]), "residual_after": float(report.residual_after[0]),
            "residual_truth": float(ns_residual_norm(true_frames, **settings)[0]),
            "refine_s": report.seconds, "forward_ms": 1e3 * report.forward_seconds,
            "diverged": bool(report.diverged[0]), "steps": report.steps, "modes": list(report.modes),
        })
    mean_of = {key: statistics.fmean(t[key] for t in per_trajectory)
               for key in ("error_before", "error_after", "residual_before", "residual_after", "residual_truth",
                           "refine_s", "forward_ms")}
    return [{"task": "ns-refine", "model": name, "resolution": resolution, "seed": seed,
             "n_trajectories": len(per_trajectory), **mean_of,
             "cost_ratio": 1e3 * mean_of["refine_s"] / mean_of["forward_ms"],
             "steps": per_trajectory[0]["steps"], "diverged": sum(t["diverged"] for t in per_trajectory),
             "modes": per_trajectory[0]["modes"], "alpha": ref["alpha"], "s": ref["s"],
             "per_trajectory": per_trajectory, "device": str(device)}]


# ----------------------------------------------------------------------------- the suite
def _plan_id(plan: dict) -> str:
    """Digest of everything in the plan that changes a trial's result (not the seeds or the threads)."""
    return _digest({k: v for k, v in plan.items() if k not in ("seeds", "threads")})


class _Trials:
    """Finished trials of one plan in ``root/trials``: each a JSON file of rows, reused when asked again.

    A training trial's file name carries the digest of the plan without its refiner
    settings, so changing how the refiner runs reuses the trained models; a refinement
    trial's name carries the digest of the whole plan.
    """

    def __init__(self, root: Path, plan: dict, device: torch.device):
        self.folder = root / "trials"
        self.plan, self.device = plan, device
        self.plan_id = _plan_id(plan)
        self.training_id = _plan_id({k: v for k, v in plan.items() if k != "refiner"})

    def trial_id(self, task: str) -> str:
        return self.plan_id if task == "ns-refine" else self.training_id

    def path(self, task: str, name: str, seed: int, suffix: str = ".json") -> Path:
        return self.folder / f"{task}_{name}_seed{seed}_{self.trial_id(task)}{suffix}"

    def get(self, task: str, name: str, seed: int, compute, needs_checkpoint: bool = False) -> list[dict]:
        path = self.path(task, name, seed)
        if path.exists() and (not needs_checkpoint or self.path(task, name, seed, ".pt").exists()):
            return json.loads(path.read_text())["rows"]
        self.folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        rows = _jsonable(compute())
        atomic_write_json(path, {"plan_id": self.trial_id(task), "task": task, "model": name, "seed": seed,
                                 "seconds": time.perf_counter() - started, "rows": rows})
        return rows

    def all_rows(self) -> list[dict]:
        """Rows of every finished trial of this plan (from earlier pieces too), in :func:`_row_order`."""
        rows = []
        for path in self.folder.glob("*.json"):
            task = path.name.split("_", 1)[0]
            if path.name.endswith(f"_{self.trial_id(task)}.json"):
                rows += json.loads(path.read_text())["rows"]
        return sorted(rows, key=_row_order(self.plan))


def _row_order(plan: dict):
    """Sort key: task, resolution, then the models in the plan's order (SineNet-K by K), then seed."""
    sweep = task_models(plan, "sinenet-sweep")
    models = [m for m in task_models(plan, "ns") + task_models(plan, "swe") if m not in sweep] + sweep
    tasks = ["ns", "ns-refine", "swe"]

    def key(row: dict) -> tuple:
        return (tasks.index(row["task"]) if row["task"] in tasks else len(tasks), row["resolution"],
                models.index(row["model"]) if row["model"] in models else len(models), row["model"], row["seed"])

    return key


def _check_model_name(name) -> None:
    """Raise unless ``name`` is a benchmark model: ``sfno-N``, ``fno``, ``fno3d``, ``sinenet-K`` or ``unet``."""
    _require(isinstance(name, str), f"model names are strings, got {name!r}")
    numbered = _numbered(name, "sfno") is not None or _numbered(name, "sinenet") is not None
    _require(numbered or name in ("fno", "fno3d", "unet"),
             f"unknown benchmark model {name!r}; use sfno-N, fno, fno3d, sinenet-K or unet")


def _trial_pairs(plan: dict, tasks: list, models: list | None) -> list[tuple[str, str]]:
    """The (PDE task, model) trials to run, in order and without repeats (the sweep shares trials).

    By default each PDE task asked for runs the plan's models and ``sinenet-sweep`` adds
    the sweep's on both PDEs; given ``models``, a PDE task runs those that fit it and the
    sweep alone runs the SineNet-K and U-Net among them.
    """
    sweep = task_models(plan, "sinenet-sweep")
    pairs = []
    for task in ("ns", "swe"):
        if models is None:
            names = (task_models(plan, task) if task in tasks else []) + (sweep if "sinenet-sweep" in tasks else [])
        else:
            fits = [m for m in models if task == "ns" or not (m.startswith("sfno-") or m == "fno3d")]
            names = fits if task in tasks else [
                m for m in fits if "sinenet-sweep" in tasks and (m == "unet" or m.startswith("sinenet-"))]
        pairs += [(task, name) for name in dict.fromkeys(names)]
    return pairs


def _choose(what: str, given, valid: list) -> list:
    if given is None:
        return list(valid)
    unknown = [g for g in given if g not in valid]
    _require(not unknown, f"unknown {what} {unknown}; choose from {list(valid)}")
    return list(given)


def run(quick: bool = False, out_dir: str | None = None, *, plan: str | dict | None = None, tasks=None, models=None,
        seeds=None, steps=None, n_train=None, device=None, threads: int | None = None) -> list[dict]:
    """Run the suite (or the named pieces of it); return this call's rows.

    Parameters
    ----------
    quick : bool
        The :data:`QUICK` plan (tiny grids and models, one seed; under two minutes on
        2 cores) instead of :data:`FULL`.
    out_dir : str, optional
        Data, finished trials and ``bench_dynamics.json`` (every finished trial of this
        plan) go here; trials already there are reused. Default: a temporary folder.
    plan : {"full", "cpu", "quick"} or dict, optional
        A plan of :data:`PLANS` by name, or a whole plan in the form of :data:`FULL`
        (for tests and experiments); overrides ``quick``.
    tasks : list of str, optional
        Subset of ``("data", "ns", "refiner", "sinenet-sweep", "swe")``; default all but
        ``data`` (which only generates the data sets).
    models : list of str, optional
        Instead of the plan's models, these (``sfno-N``, ``fno``, ``fno3d``, ``sinenet-K``,
        ``unet``) on each PDE task asked for (``sfno-N`` and ``fno3d``: Navier-Stokes only;
        with ``sinenet-sweep`` alone, only SineNet-K and ``unet``, on both PDEs); the
        refiner refines the SFNOs named.
    seeds : list of int, optional
        Subset of the plan's seeds (or others).
    steps, n_train : int, optional
        Optimiser steps per trial, training trajectories per PDE (change the plan).
    device : str, optional
        Where to generate, train and evaluate; default CUDA when available.
    threads : int, optional
        torch CPU threads during the run (default: the plan's, else torch's); restored after.

    Returns
    -------
    list of dict
        One row per (task, model, seed, test resolution), and one per refined SFNO and seed.
    """
    if plan is None:
        plan = "quick" if quick else "full"
    plan_name = plan if isinstance(plan, str) else "custom"
    if isinstance(plan, str):
        _require(plan in PLANS, f"unknown plan {plan!r}; choose one of {list(PLANS)}")
        plan = PLANS[plan]
    plan = copy.deepcopy(plan)
    if steps is not None:
        _require(isinstance(steps, int) and steps >= 1, f"steps must be a positive integer, got {steps!r}")
        plan["train"]["steps"] = steps
    if n_train is not None:
        _require(isinstance(n_train, int) and n_train >= 1, f"n_train must be a positive integer, got {n_train!r}")
        plan["ns"]["n_train"] = plan["swe"]["n_train"] = n_train
    tasks = _choose("tasks", tasks, list(DEFAULT_TASKS) if tasks is None else list(TASKS))
    if models is not None:
        _require(isinstance(models, (list, tuple)) and len(models) > 0, "models must be a non-empty list of names")
        for name in models:
            _check_model_name(name)
    seeds = [int(s) for s in (plan["seeds"] if seeds is None else seeds)]
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    _require(device.type != "cuda" or torch.cuda.is_available(),
             f"device {str(device)!r} was asked for but CUDA is not available here; use --device cpu")
    threads = threads if threads is not None else plan.get("threads")
    _require(threads is None or (isinstance(threads, int) and threads >= 1),
             f"threads must be a positive integer, got {threads!r}")
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(plan, plan_name, out_dir, tasks, models, seeds, device)
    finally:
        torch.set_num_threads(previous_threads)


def _run(plan: dict, plan_name: str, out_dir, tasks: list, models: list, seeds: list,
         device: torch.device) -> list[dict]:
    """The body of :func:`run`, with the arguments checked."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(out_dir if out_dir is not None else scratch)
        trials = _Trials(root, plan, device)
        started = time.perf_counter()
        ns_tasks, swe_tasks = {"data", "ns", "refiner", "sinenet-sweep"}, {"data", "swe", "sinenet-sweep"}
        data = {}
        if ns_tasks & set(tasks):
            data["ns"] = ns_data(plan, root / "data", device)
        if swe_tasks & set(tasks):
            data["swe"] = swe_data(plan, root / "data", device)

        def trial(task: str, name: str, seed: int) -> list[dict]:
            checkpoint = trials.path(task, name, seed, ".pt") if name.startswith("sfno-") else None
            return trials.get(task, name, seed,
                              lambda: _train_and_evaluate(task, name, seed, plan, data[task], device, checkpoint),
                              needs_checkpoint=checkpoint is not None)

        pairs = _trial_pairs(plan, tasks, models)
        refined = [] if "refiner" not in tasks else (
            plan["refiner"]["models"] if models is None else [m for m in models if m.startswith("sfno-")])
        rows = []
        for seed in seeds:
            for task, name in pairs:
                rows += trial(task, name, seed)
            for name in refined:
                trial("ns", name, seed)  # the trained SFNO (reused when the ns task made it)
                rows += trials.get("ns-refine", name, seed, lambda: _refine_trial(
                    name, seed, plan, data["ns"], device, trials.path("ns", name, seed, ".pt")))
        rows.sort(key=_row_order(plan))
        if out_dir is not None:
            everything = trials.all_rows()
            atomic_write_json(root / "bench_dynamics.json", {
                "benchmark": "dynamics", "plan_name": plan_name, "plan": plan, "plan_id": trials.plan_id,
                "recipes": RECIPES, "machine": machine_info(device), "seconds_this_run": time.perf_counter() - started,
                "rows": everything, "summary": summarize(everything)})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean (and population standard deviation of the errors) over seeds per task, model and resolution.

    Examples
    --------
    >>> from sciml.bench_dynamics import summarize
    >>> rows = [{"task": "ns", "model": "fno", "resolution": 64, "seed": s, "params": 9, "steps": 4,
    ...          "rollout_l2_10": e} for s, e in ((0, 0.1), (1, 0.3))]
    >>> out = summarize(rows)[0]
    >>> out["seeds"], round(out["rollout_l2_10"], 3), round(out["rollout_l2_10_std"], 3)
    (2, 0.2, 0.1)
    """
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"], row["resolution"]), []).append(row)
    out = []
    for (task, model, resolution), group in groups.items():
        entry = {"task": task, "model": model, "resolution": resolution, "seeds": len(group)}
        for key in ("params", "steps", "n_trajectories"):
            if key in group[0]:
                entry[key] = group[0][key]
        for key in _AVERAGED:
            values = [float(r[key]) for r in group if r.get(key) is not None]
            if values:
                entry[key] = statistics.fmean(values)
                if key in _SPREAD:
                    entry[f"{key}_std"] = statistics.pstdev(values)
        out.append(entry)
    return out


def format_table(rows: list[dict]) -> str:
    """The seed-averaged rows as Markdown: one table for the models, one for the Spectral-Refiner."""
    summary = summarize(rows)
    models = [s for s in summary if "one_step_l2" in s]
    refined = [s for s in summary if "error_after" in s]
    parts = [tables.format_table(group, columns) for group, columns in ((models, COLUMNS), (refined, REFINER_COLUMNS))
             if group]
    return "\n\n".join(parts) if parts else "(no rows)"


def main(argv: list[str] | None = None) -> None:
    """``python -m sciml.bench_dynamics [--quick] [--out DIR] [--tasks ...] [--models ...] [--seeds ...] ...``.

    Prints the table of every finished trial of the plan in ``--out`` (or of this run).
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (under two minutes); = --plan quick")
    parser.add_argument("--plan", choices=list(PLANS), help="full (default; papers' sizes, for a GPU), cpu "
                        "(scaled to 2 CPU cores, trials of ~10 min) or quick")
    parser.add_argument("--out", help="folder for data, trials and bench_dynamics.json (reused by later runs)")
    parser.add_argument("--tasks", nargs="+", help=f"subset of {list(TASKS)}; default all but data")
    parser.add_argument("--models", nargs="+", help="only these models, e.g. sfno-10 fno sinenet-8 unet")
    parser.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the plan's)")
    parser.add_argument("--steps", type=int, help="optimiser steps per trial (the equal budget)")
    parser.add_argument("--n-train", type=int, help="training trajectories per PDE")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: the plan's, else one per core; "
                        "use 1 on a machine shared with other jobs)")
    args = parser.parse_args(argv)
    try:
        rows = run(quick=args.quick, out_dir=args.out, plan=args.plan, tasks=args.tasks, models=args.models,
                   seeds=args.seeds, steps=args.steps, n_train=args.n_train, device=args.device, threads=args.threads)
    except SciMLError as err:
        parser.exit(1, f"error: {err}\n")
    if args.out is not None:
        rows = json.loads((Path(args.out) / "bench_dynamics.json").read_text())["rows"]
    print(format_table(rows))


if __name__ == "__main__":
    main()
