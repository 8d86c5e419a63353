"""Benchmark of the learned DCDM preconditioner against classical ones on obstacle Poisson systems.

What is compared
    On pressure Poisson systems around random obstacles
    (:class:`sciml.datasets.obstacle_poisson.ObstaclePoisson`, Neumann walls, one open
    face), in 2-D and 3-D: DCDM (:func:`sciml.solvers.deep_conjugate_direction.dcdm_result`, two stored
    directions as in Kaneda et al., ICML 2023) against CG, incomplete-factorisation PCG
    in two strengths: IC(0) (``ic0``, no fill, the paper's comparator) and threshold ILU
    (``ilu``, SuperLU's symmetric mode at scipy's default drop tolerance and fill, close to
    a full factorisation: 24 iterations at 512^2 where IC(0) takes 847), smoothed-
    aggregation AMG-PCG (pyamg), deflated PCG seeded with ``k`` Ritz vectors of ``A``
    (:func:`sciml.solvers.deflated_cg.recycled_cg_result`; the vectors from
    :func:`scipy.sparse.linalg.eigsh`, their cost in ``setup_seconds``), and the DCDM
    network as ``M`` of two flexible Krylov methods, pyamg's ``fgmres`` and scipy's
    ``gcrotmk``.

How
    Every method gets at most ``MAX_MATVECS`` (5000; quick: 2000) products with ``A``.
    One stopping rule for all: converged iff the true residual
    ``||b - A x||_2 <= rtol ||b||_2`` with ``rtol = 1e-6``; pyamg's and scipy's solvers
    stop on their own residual estimates and are then judged by the same rule.
    ``iterations`` are the methods' own (DCDM: directions taken; fgmres: inner
    iterations; gcrotmk: products with ``A``, one per inner iteration), ``matvecs`` the
    products with ``A``; ``seconds`` is the solve, ``setup_seconds`` what was built for
    it (IC(0)/ILU factors, AMG hierarchy, Ritz vectors), ``network_seconds`` the part of ``seconds``
    spent in the network. The network is trained once per dimension at ``train_size``
    (:func:`sciml.dcdm_training.train_dcdm`, Ritz right-hand sides, no solutions) or
    loaded from ``--cache``; sizes above the training size test its resolution
    independence. ``TRAINING`` uses two documented departures from the paper: the
    energy-norm loss with uniform Ritz coefficients (:mod:`sciml.dcdm_training`; with
    the paper's residual loss DCDM needs several times CG's iterations here) and a net
    whose depth follows the grid with shared level weights (``levels=0``,
    :class:`~sciml.models.dcdm_net.DCDMNet`); ``training={"loss": "residual",
    "levels": 1, "low_fraction": 0.5}`` is the paper's setting. The 2-D net is then
    fine-tuned in three stages on the residuals of its own DCDM runs at 1-4x the training
    size (:data:`FINE_TUNING`, DAgger-style, a third departure: without it the
    iterations grew 10x from 128^2 to 512^2, the net never having seen the residuals of
    later iterations); ``fine_tuning={}`` skips it. Full run: 2-D
    64^2..512^2 and 3-D 32^3..64^3 (128^3 when a GPU is present), trained at 64^2 and
    32^3; ``--quick``: 2-D only, trained at 16^2 for a few seconds, solved at 32^2.

Examples
--------
>>> from sciml.bench_preconditioners import format_table, run
>>> rows = run(quick=True)                                     # doctest: +SKIP
>>> print(format_table(rows))                                  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pyamg
import pyamg.krylov
import scipy.sparse.linalg as sla
import torch

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.datasets.obstacle_poisson import ObstaclePoisson
from sciml.dcdm_training import load_dcdm, obstacle_training_systems, save_dcdm, train_dcdm
from sciml.errors import SciMLError
from sciml.models.dcdm_net import DCDMNet
from sciml.solvers import cg_result, make_preconditioner
from sciml.solvers.deep_conjugate_direction import DCDMPreconditioner, dcdm_result, decoupled_cells
from sciml.solvers.deflated_cg import recycled_cg_result
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.stopping import CountingOperator

RTOL = 1e-6
RITZ_K = 8
MAX_MATVECS = 5000
SIZES = {2: (64, 128, 256, 512), 3: (32, 64)}
GPU_SIZES = {3: (32, 64, 128)}
TRAIN_SIZE = {2: 64, 3: 32}
TRAINING = {"steps": 1500, "batch_size": 16, "n_ritz": 256, "n_layouts": 8, "lr": 2e-3, "levels": 0,
            "loss": "energy", "low_fraction": 0.0}
FINE_TUNING = {2: (
    {"layouts": ((1, 8), (2, 4)), "seed": 1, "rhs_seed": 5, "steps": 300, "lr": 5e-4, "rounds": 2},
    {"layouts": ((1, 4), (2, 4), (4, 2)), "seed": 2, "rhs_seed": 6, "steps": 200, "lr": 3e-4, "rounds": 1},
    {"layouts": ((2, 4), (4, 4)), "seed": 3, "rhs_seed": 7, "steps": 150, "lr": 2e-4, "rounds": 1},
)}
"""Stages of fine-tuning on the net's own DCDM residuals after ``TRAINING``, per dimension:
``layouts`` are ``(multiple of the training size, obstacle layouts)`` pairs; the residuals come
from runs on each layout's source and 2 random right-hand sides (drawn with ``rhs_seed``);
half of every batch is residuals (:func:`sciml.dcdm_training.train_dcdm`,
``residual_fraction``). 3-D has none yet: its exact energies need a sparse LU at 64^3."""
QUICK = {"sizes": {2: (32,)}, "train_size": {2: 16}, "max_matvecs": 2000,
         "training": {"steps": 100, "batch_size": 8, "n_ritz": 64, "n_layouts": 4, "lr": 2e-3, "levels": 0,
                      "loss": "energy", "low_fraction": 0.0},
         "fine_tuning": {2: ({"layouts": ((1, 2),), "seed": 1, "rhs_seed": 5, "steps": 20, "lr": 5e-4,
                              "rounds": 1},)}}
COLUMNS = ("dim", "size", "layout", "unknowns", "method", "iterations", "matvecs", "setup_seconds", "seconds",
           "network_seconds", "relative_residual", "converged", "cg_fallbacks")


def obstacle_system(size: int, dim: int, seed: int = 100):
    """The benchmark system: one random obstacle layout and source on a ``size^dim`` grid."""
    problem = ObstaclePoisson(resolution=size, dim=dim)
    return problem.assemble(problem.sample_inputs(np.random.default_rng(seed)))


def trained_network(dim: int, train_size: int, training: dict, cache_dir: str | None, device: str,
                    fine_tuning: Sequence[dict] = ()) -> DCDMNet:
    """Load the network for ``dim`` from ``cache_dir`` or train it (and cache it there), then
    fine-tune it stage by stage on its own residuals (:data:`FINE_TUNING`), each stage cached too."""
    tag = f"{training['steps']}steps_{training.get('loss', 'residual')}_levels{training.get('levels', 1)}"

    def cached(tag: str, train) -> DCDMNet:
        path = None if cache_dir is None else Path(cache_dir) / f"dcdm_{dim}d_{train_size}_{tag}.pt"
        if path is not None and path.is_file():
            return load_dcdm(path, device=device)[0]
        run = train()
        if path is not None:
            save_dcdm(path, run)
        return run.model

    def train_base():
        options = {k: v for k, v in training.items() if k not in ("n_layouts", "levels")}
        matrices = obstacle_training_systems(train_size, dim=dim, n_layouts=training["n_layouts"], seed=0)
        torch.manual_seed(training.get("seed", 0))
        return train_dcdm(matrices, model=DCDMNet(dim=dim, levels=training.get("levels", 1)), device=device, **options)

    model = cached(tag, train_base)
    for number, stage in enumerate(fine_tuning, 1):
        digest = hashlib.sha1(json.dumps(list(fine_tuning[:number])).encode()).hexdigest()[:8]
        model = cached(f"{tag}_ft{number}-{digest}", lambda: fine_tune(model, dim, train_size, stage, training, device))
    return model


def fine_tune(model: DCDMNet, dim: int, train_size: int, stage: dict, training: dict, device: str):
    """One :data:`FINE_TUNING` stage: ``model`` trained further on the residuals of its own DCDM runs."""
    pairs = [pair for multiple, layouts in stage["layouts"]
             for pair in obstacle_training_systems(multiple * train_size, dim=dim, n_layouts=layouts,
                                                   seed=stage["seed"], with_rhs=True)]
    rng = np.random.default_rng(stage["rhs_seed"])
    right_hand_sides = [[b] + [np.where(decoupled_cells(A), 0.0, rng.standard_normal(A.shape[0])) for _ in range(2)]
                        for A, b in pairs]
    return train_dcdm([A for A, _ in pairs], model=model, steps=stage["steps"], batch_size=training["batch_size"],
                      lr=stage["lr"], n_ritz=training["n_ritz"], low_fraction=0.0, loss="energy",
                      residual_fraction=0.5, residual_rhs=right_hand_sides, residual_rounds=stage["rounds"],
                      seed=stage["seed"], device=device)


def _judged(method, A, b, x, iterations, matvecs, seconds, setup, network=None, fallbacks=None) -> dict:
    """A row for an outside solver, judged by the true-residual rule."""
    relative = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    return {"method": method, "iterations": iterations, "matvecs": matvecs, "setup_seconds": setup,
            "seconds": seconds, "network_seconds": network, "relative_residual": relative,
            "converged": relative <= RTOL, "cg_fallbacks": fallbacks}


def _ours(method, result, setup) -> dict:
    record = result.record()
    return {"method": method, "iterations": record["iterations"], "matvecs": record["matvecs"],
            "setup_seconds": setup, "seconds": record["seconds"], "network_seconds": record.get("network_seconds"),
            "relative_residual": record["relative_residual"], "converged": record["converged"],
            "cg_fallbacks": record.get("cg_fallbacks")}


def compare(A, b, net: DCDMNet, max_matvecs: int = 5000) -> list[dict]:
    """Every method of the module docstring on one system; one row each.

    Every method gets at most about ``max_matvecs`` products with ``A``; a method that
    has not converged by then is reported as not converged.
    """
    maxiter = max_matvecs
    rows = [_ours("cg", cg_result(A, b, rtol=RTOL, maxiter=maxiter), 0.0)]
    for name, label in (("ic0", "ic0-pcg"), ("ilu", "ilu-pcg"), ("amg", "amg-pcg")):
        started = time.perf_counter()
        M = make_preconditioner(name, A)
        rows.append(_ours(label, cg_result(A, b, rtol=RTOL, maxiter=maxiter, M=M), time.perf_counter() - started))
    started = time.perf_counter()
    _, U = sla.eigsh(A, k=RITZ_K, which="SA", tol=1e-4, ncv=max(4 * RITZ_K, 20))
    space = RecycleSpace(RITZ_K)
    space.store(U, A @ U, operator_key(A), "rcg")
    setup = time.perf_counter() - started
    rows.append(_ours(f"deflated-pcg (k={RITZ_K})",
                      recycled_cg_result(A, b, rtol=RTOL, k=RITZ_K, maxiter=maxiter, recycle=space), setup))

    rows.append(_ours("dcdm", dcdm_result(A, b, rtol=RTOL, maxiter=maxiter, model=net), 0.0))
    pre = DCDMPreconditioner(net, A)
    residuals: list[float] = []
    started = time.perf_counter()
    x, _ = pyamg.krylov.fgmres(A, b, M=pre.aspreconditioner(), tol=RTOL, restart=30, maxiter=maxiter // 30,
                               residuals=residuals)
    rows.append(_judged("fgmres + dcdm", A, b, x, len(residuals) - 1, None, time.perf_counter() - started, 0.0,
                        pre.network_seconds))
    pre = DCDMPreconditioner(net, A)
    op = CountingOperator(A, A.dtype)
    started = time.perf_counter()
    x, _ = sla.gcrotmk(op, b, M=pre.aspreconditioner(), rtol=RTOL, atol=0.0, maxiter=maxiter // 20)
    rows.append(_judged("gcrotmk + dcdm", A, b, x, op.count, op.count, time.perf_counter() - started, 0.0,
                        pre.network_seconds))
    return rows


def run(quick: bool = False, out_dir: str | None = None, *, sizes: dict | None = None, train_size: dict | None = None,
        training: dict | None = None, fine_tuning: dict | None = None, layouts: Sequence[int] = (100,),
        cache_dir: str | None = None, device: str | None = None) -> list[dict]:
    """Train (or load) the networks and run every method on every size; return the rows.

    Parameters
    ----------
    quick : bool
        2-D only: train at 16^2 for a few seconds and solve at 32^2.
    out_dir : str, optional
        Folder to write ``bench_preconditioners.json`` into.
    sizes : dict, optional
        ``{dim: sizes}`` to run (default: the full run; 128^3 only with a GPU).
    train_size, training : dict, optional
        ``{dim: size}`` of the training grid and the training settings
        (``steps, batch_size, n_ritz, n_layouts, lr``).
    fine_tuning : dict, optional
        ``{dim: stages}`` of fine-tuning on the net's own residuals (default
        :data:`FINE_TUNING`; ``{}`` for none).
    layouts : sequence of int
        Seeds of the obstacle layouts to solve (default 100, the benchmark system; training
        uses seeds 0-3, so every layout here is one the net was not trained on).
    cache_dir : str, optional
        Folder of trained networks: loaded when present, written after training.
    device : str, optional
        Where the network trains and runs (default: cuda when available).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if sizes is None:
        sizes = QUICK["sizes"] if quick else ({**SIZES, **GPU_SIZES} if device.startswith("cuda") else SIZES)
    train_size = {**(QUICK["train_size"] if quick else TRAIN_SIZE), **(train_size or {})}
    training = {**(QUICK["training"] if quick else TRAINING), **(training or {})}
    if fine_tuning is None:
        fine_tuning = QUICK["fine_tuning"] if quick else FINE_TUNING
    rows = []
    for dim, dim_sizes in sorted(sizes.items()):
        if dim not in (2, 3):
            raise SciMLError(f"sizes must be given for dims 2 and 3, got dim {dim}")
        net = trained_network(dim, train_size[dim], training, cache_dir, device, fine_tuning.get(dim, ()))
        for layout in layouts:
            for size in dim_sizes:
                A, b = obstacle_system(size, dim, seed=layout)
                for row in compare(A, b, net, QUICK["max_matvecs"] if quick else MAX_MATVECS):
                    rows.append({"dim": dim, "size": size, "layout": layout, "unknowns": A.shape[0], **row})
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        atomic_write_json(os.path.join(out_dir, "bench_preconditioners.json"),
                          {"benchmark": "preconditioners", "rtol": RTOL, "machine": platform.platform(),
                           "cpus": os.cpu_count(), "device": device, "train_size": train_size,
                           "training": training, "fine_tuning": fine_tuning, "rows": rows,
                           "growth": iteration_growth(rows)})
    return rows


def iteration_growth(rows: list[dict]) -> list[dict]:
    """Per dimension, layout and method: iterations at the largest size over those at the smallest.

    Examples
    --------
    >>> rows = [{"dim": 2, "size": s, "layout": 100, "method": "cg", "iterations": i}
    ...         for s, i in ((64, 100), (128, 210))]
    >>> iteration_growth(rows)
    [{'dim': 2, 'layout': 100, 'method': 'cg', 'sizes': '64->128', 'iterations': '100->210', 'growth': 2.1}]
    """
    growth = []
    keys = dict.fromkeys((row["dim"], row["layout"], row["method"]) for row in rows)
    for dim, layout, method in keys:
        mine = sorted((r for r in rows if (r["dim"], r["layout"], r["method"]) == (dim, layout, method)),
                      key=lambda r: r["size"])
        if len(mine) < 2 or not mine[0]["iterations"]:
            continue
        first, last = mine[0], mine[-1]
        growth.append({"dim": dim, "layout": layout, "method": method, "sizes": f"{first['size']}->{last['size']}",
                       "iterations": f"{first['iterations']}->{last['iterations']}",
                       "growth": round(last["iterations"] / first["iterations"], 2)})
    return growth


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (see :func:`sciml.tables.format_table`)."""
    return tables.format_table(rows, list(COLUMNS))


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s)


def main(argv: list[str] | None = None) -> None:
    """``python -m sciml.bench_preconditioners [--quick] [--out DIR] [--cache DIR] [--sizes-2d ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-D only, train at 16^2, solve at 32^2")
    parser.add_argument("--out", default=None, help="folder for bench_preconditioners.json")
    parser.add_argument("--cache", default=None, help="folder of trained networks (loaded if present)")
    parser.add_argument("--sizes-2d", type=_sizes, default=None, help="comma-separated 2-D sizes, e.g. 64,128")
    parser.add_argument("--sizes-3d", type=_sizes, default=None, help="comma-separated 3-D sizes, e.g. 32,64")
    parser.add_argument("--train-2d", type=int, default=None, help="2-D training grid size")
    parser.add_argument("--train-3d", type=int, default=None, help="3-D training grid size")
    parser.add_argument("--steps", type=int, default=None, help="training steps")
    parser.add_argument("--layouts", type=_sizes, default=(100,),
                        help="comma-separated seeds of the obstacle layouts to solve (default 100)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (quick: 1, fastest for the small grids)")
    args = parser.parse_args(argv)
    threads = args.threads or (1 if args.quick else None)
    if threads:
        torch.set_num_threads(threads)
    sizes = None
    if args.sizes_2d is not None or args.sizes_3d is not None:
        sizes = {d: s for d, s in ((2, args.sizes_2d), (3, args.sizes_3d)) if s}
    train_size = {d: s for d, s in ((2, args.train_2d), (3, args.train_3d)) if s}
    training = {"steps": args.steps} if args.steps else None
    rows = run(quick=args.quick, out_dir=args.out, sizes=sizes, train_size=train_size, training=training,
               layouts=args.layouts, cache_dir=args.cache, device=args.device)
    print(format_table(rows))
    growth = iteration_growth(rows)
    if growth:
        print()
        print(tables.format_table(growth))


if __name__ == "__main__":
    main()
