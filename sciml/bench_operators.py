"""Benchmark of the neural operators at equal budget: ``sciml bench operators``.

What is compared
    Every model in :data:`MODEL_SETTINGS` (neuraloperator's FNO as the baseline, MgNO,
    LSM, DeepONet with a CNN branch) on the same Darcy data — the FNO benchmark's
    piecewise-constant coefficient, f = 1 — at each training resolution, with the same
    number of epochs, batch size, optimiser (AdamW + cosine schedule) and loss (relative
    H1), over several seeds; each model keeps the learning rate and architecture its
    paper uses. Every trained model is evaluated on held-out data at its training
    resolution and, zero-shot, at twice it. Then DeepONet (MLP branch) on the DeepONet
    paper's antiderivative operator, reported as test MSE (no weight decay there: it is a
    regression to 1e-5 accuracy, as in the paper's plain Adam).

How
    Each (model, resolution, seed) trial runs in its own process, so its peak resident
    memory (``peak_rss_mib``, including the ~0.3 GiB of torch itself) is its own. Rows
    hold relative L2 and H1 errors (mean over test samples), parameters, training
    seconds, inference milliseconds per sample and peak memory; :func:`summarize` gives
    the mean and spread over seeds. Data are generated once into ``out_dir/data`` and
    reused.

Examples
--------
>>> from sciml.bench_operators import run, format_table     # doctest: +SKIP
>>> print(format_table(run(quick=True)))                     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.bench_trials import answer_trial, machine_info, run_in_child

MODEL_SETTINGS = {
    "fno": {"model": {"n_modes": 12, "width": 32, "n_layers": 4}, "lr": 3e-3},
    "mgno": {"model": {"width": 32, "n_layers": 5, "levels": 4}, "lr": 1e-3},
    "lsm": {"model": {"width": 32, "n_scales": 5}, "lr": 1e-3},
    "deeponet": {"model": {"branch": "cnn", "width": 64, "n_basis": 64}, "lr": 1e-3},
}
QUICK_MODEL_SETTINGS = {
    "fno": {"model": {"n_modes": 6, "width": 12, "n_layers": 2}, "lr": 3e-3},
    "mgno": {"model": {"width": 12, "n_layers": 2}, "lr": 1e-3},
    "lsm": {"model": {"width": 12, "n_scales": 3, "n_heads": 4}, "lr": 1e-3},
    "deeponet": {"model": {"branch": "cnn", "width": 32, "n_basis": 32}, "lr": 1e-3},
}
FULL = {"resolutions": [32, 64], "n_train": 1000, "n_test": 200, "epochs": 30, "batch_size": 20, "seeds": [0, 1, 2],
        "antiderivative": {"n_train": 1000, "n_test": 200, "epochs": 500}}
QUICK = {"resolutions": [16], "n_train": 96, "n_test": 16, "epochs": 3, "batch_size": 16, "seeds": [0],
         "antiderivative": {"n_train": 200, "n_test": 20, "epochs": 20}}
ANTIDERIVATIVE_MODEL = {"name": "deeponet", "branch": "mlp", "n_sensors": 100, "width": 40, "n_basis": 40, "dim": 1}
COLUMNS = ["task", "model", "train_res", "eval_res", "seed", "rel_l2", "rel_h1", "mse", "parameters", "epochs",
           "train_s", "infer_ms", "peak_rss_mib"]


# ----------------------------------------------------------------------------- data
def _dataset(path: Path, pde: str, resolution: int, n: int, seed: int, **pde_kwargs) -> str:
    """Generate ``path`` unless a valid file with the same settings is already there."""
    from sciml.dataset_file import read_header
    from sciml.datasets import get_problem
    from sciml.generate import generate_dataset
    from sciml.solvers import LinearSolver

    problem = get_problem(pde)(resolution=resolution, **pde_kwargs)
    if path.exists():
        header = read_header(path)
        if (header.n_samples == n and header.attrs["root_seed"] == seed
                and header.attrs["pde_parameters"] == problem.parameters()):
            return str(path)
    solver = LinearSolver("direct") if problem.dim == 1 else LinearSolver("cg", preconditioner="amg")
    return generate_dataset(problem, solver, n, path, seed=seed, overwrite=True, progress=False).path


def darcy_files(data_dir: Path, resolution: int, n_train: int, n_test: int) -> dict:
    """Train and test files at ``resolution`` and a test file at twice it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        "train": _dataset(data_dir / f"darcy_train_{resolution}.nc", "darcy", resolution, n_train, 100 + resolution),
        "test": _dataset(data_dir / f"darcy_test_{resolution}.nc", "darcy", resolution, n_test, 200 + resolution),
        "test_2x": _dataset(data_dir / f"darcy_test_{2 * resolution}.nc", "darcy", 2 * resolution, n_test,
                            200 + resolution),
    }


# ----------------------------------------------------------------------------- one trial
def run_trial(spec: dict) -> list[dict]:
    """Train one model and evaluate it on each test file (runs inside a child process)."""
    import torch

    from sciml.evaluation import evaluate
    from sciml.loader import train_val_split
    from sciml.training import resolve_config, train

    torch.set_num_threads(spec.get("threads", os.cpu_count() or 1))
    config = resolve_config({
        "model": spec["model"],
        "train": {"epochs": spec["epochs"], "lr": spec["lr"], "seed": spec["seed"], "loss": spec["loss"],
                  "weight_decay": spec.get("weight_decay", 1e-4)},
        "data": {"batch_size": spec["batch_size"]},
    })
    train_set, val_set = train_val_split(spec["train"], 0.1, spec["seed"])
    summary = train(config, train_set, val_set, spec["run_dir"], progress=False)
    rows = []
    for label, path in spec["tests"].items():
        metrics = evaluate(spec["run_dir"], path, out_dir=Path(spec["run_dir"]) / f"eval_{label}", n_figures=1)
        rows.append({
            "task": spec["task"], "model": spec["model"]["name"],
            "train_res": "x".join(map(str, metrics["train_resolution"])),
            "eval_res": "x".join(map(str, metrics["resolution"])), "seed": spec["seed"],
            "rel_l2": metrics["relative_l2"]["mean"], "rel_h1": metrics["relative_h1"]["mean"],
            "mse": metrics["mse"]["mean"], "parameters": metrics["n_parameters"], "epochs": summary["epochs"],
            "train_s": summary["train_seconds"], "infer_ms": 1e3 * metrics["inference_seconds_per_sample"],
        })
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    for row in rows:
        row["peak_rss_mib"] = round(peak)
    return rows


# ----------------------------------------------------------------------------- the suite
def run(quick: bool = False, out_dir: str | None = None, models=None, seeds=None, resolutions=None,
        epochs=None) -> list[dict]:
    """Run the suite; return one row per (task, model, train resolution, eval resolution, seed).

    Parameters
    ----------
    quick : bool
        16x16 Darcy, small models, 3 epochs, one seed (under two minutes on 2 cores).
    out_dir : str, optional
        Where data, runs and ``bench_operators.json`` go (default: a temporary folder).
    models, seeds, resolutions : list, optional
        Subsets of :data:`MODEL_SETTINGS`, of the plan's seeds and training resolutions.
    epochs : int, optional
        Epochs for every Darcy trial instead of the plan's (the budget stays equal).
    """
    plan = dict(QUICK if quick else FULL)
    if resolutions is not None:
        plan["resolutions"] = list(resolutions)
    if epochs is not None:
        plan["epochs"] = int(epochs)
    settings = QUICK_MODEL_SETTINGS if quick else MODEL_SETTINGS
    models = list(models or settings)
    seeds = list(seeds if seeds is not None else plan["seeds"])
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(out_dir or scratch)
        rows = []
        started = time.perf_counter()
        for resolution in plan["resolutions"]:
            files = darcy_files(root / "data", resolution, plan["n_train"], plan["n_test"])
            for name in models:
                for seed in seeds:
                    rows += run_in_child("sciml.bench_operators", {
                        "task": f"darcy{resolution}", "model": {"name": name, **settings[name]["model"]},
                        "lr": settings[name]["lr"], "epochs": plan["epochs"], "batch_size": plan["batch_size"],
                        "seed": seed, "loss": "h1", "train": files["train"],
                        "tests": {"same": files["test"], "2x": files["test_2x"]},
                        "run_dir": str(root / "runs" / f"darcy{resolution}_{name}_seed{seed}"),
                    }, f"{name} on darcy{resolution}")
        anti = plan["antiderivative"]
        data = root / "data"
        data.mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            rows += run_in_child("sciml.bench_operators", {
                "task": "antiderivative", "model": ANTIDERIVATIVE_MODEL, "lr": 3e-3, "weight_decay": 0.0,
                "epochs": anti["epochs"],
                "batch_size": 32, "seed": seed, "loss": "l2",
                "train": _dataset(data / "antiderivative_train.nc", "antiderivative", 100, anti["n_train"], 1),
                "tests": {"same": _dataset(data / "antiderivative_test.nc", "antiderivative", 100, anti["n_test"], 2)},
                "run_dir": str(root / "runs" / f"antiderivative_deeponet_seed{seed}"),
            }, "deeponet on antiderivative")
        if out_dir is not None:
            atomic_write_json(root / "bench_operators.json", {
                "benchmark": "operators", "quick": quick, "plan": plan, "models": settings,
                "machine": machine_info(),
                "seconds": time.perf_counter() - started, "rows": rows, "summary": summarize(rows)})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and spread (population std) over seeds for each task, model and resolution pair."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"], row["train_res"], row["eval_res"]), []).append(row)
    out = []
    for (task, model, train_res, eval_res), group in groups.items():
        entry = {"task": task, "model": model, "train_res": train_res, "eval_res": eval_res, "seeds": len(group)}
        for key in ("rel_l2", "rel_h1", "mse", "train_s", "infer_ms", "peak_rss_mib"):
            values = [r[key] for r in group]
            entry[key] = statistics.fmean(values)
            if key in ("rel_l2", "rel_h1", "mse"):
                entry[f"{key}_std"] = statistics.pstdev(values)
        entry["parameters"] = group[0]["parameters"]
        entry["epochs"] = group[0]["epochs"]
        out.append(entry)
    return out


def format_table(rows: list[dict]) -> str:
    """The seed-averaged summary as a Markdown table."""
    columns = ["task", "model", "train_res", "eval_res", "seeds", "rel_l2", "rel_l2_std", "rel_h1", "mse",
               "parameters", "epochs", "train_s", "infer_ms", "peak_rss_mib"]
    return tables.format_table(summarize(rows), columns)


def main(argv=None) -> None:
    """``python -m sciml.bench_operators [--quick] [--out DIR] [--models ...] [--seeds ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--seeds", nargs="*", type=int)
    parser.add_argument("--resolutions", nargs="*", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial:
        answer_trial(args.trial, run_trial)
        return
    rows = run(quick=args.quick, out_dir=args.out, models=args.models, seeds=args.seeds,
               resolutions=args.resolutions, epochs=args.epochs)
    print(format_table(rows))


if __name__ == "__main__":
    main()
