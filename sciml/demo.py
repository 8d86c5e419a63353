"""``sciml demo``: the whole pipeline on Darcy flow in about five minutes on two CPU cores.

1. generate Darcy data (the FNO benchmark's piecewise-constant coefficient, f = 1) with
   AMG-preconditioned CG: a training set at 32x32, test sets at 32x32 and 64x64;
2. train neuraloperator's FNO on the training set (relative H1 loss);
3. evaluate at the training resolution and at twice it (zero-shot super-resolution);
4. print a results table and say where the data, run, metrics and figures went.

Examples
--------
>>> from sciml.demo import run_demo
>>> results = run_demo("sciml-demo", quick=True)     # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from sciml.config import apply_overrides, write_config

DEMO_CONFIG = {
    "data": {"train_samples": 1000, "test_samples": 200, "resolution": 32, "fine_test_samples": 100,
             "coefficient": "piecewise", "val_fraction": 0.1, "batch_size": 20},
    "model": {"name": "fno", "n_modes": 12, "width": 32, "n_layers": 4},
    "train": {"epochs": 30, "lr": 3e-3, "weight_decay": 1e-4, "scheduler": "cosine", "loss": "h1", "seed": 0},
}
QUICK_OVERRIDES = ["data.train_samples=96", "data.test_samples=16", "data.fine_test_samples=8",
                   "data.resolution=16", "model.n_modes=6", "model.width=12", "train.epochs=4", "data.batch_size=8"]


def run_demo(out_dir="sciml-demo", quick: bool = False, overrides=(), progress: bool = True) -> dict:
    """Run the demo into ``out_dir`` (its data, run and evaluation subfolders are replaced).

    Returns the metrics of both evaluations, keyed by resolution.
    """
    from sciml.datasets import get_problem
    from sciml.evaluation import evaluate
    from sciml.generate import generate_dataset
    from sciml.loader import GridDataset, train_val_split
    from sciml.solvers import LinearSolver
    from sciml.tables import evaluation_row, format_table
    from sciml.training import resolve_config, train

    config = apply_overrides(DEMO_CONFIG, list(QUICK_OVERRIDES if quick else []) + list(overrides))
    data = config["data"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(config, out / "demo_config.json")
    start = time.perf_counter()

    solver = LinearSolver("cg", preconditioner="amg", rtol=1e-8)
    res = int(data["resolution"])
    files = {
        "train": (out / f"darcy_train_{res}.nc", res, data["train_samples"], 0),
        "test": (out / f"darcy_test_{res}.nc", res, data["test_samples"], 1),
        "test_fine": (out / f"darcy_test_{2 * res}.nc", 2 * res, data["fine_test_samples"], 2),
    }
    print(f"[1/3] generating Darcy data ({data['coefficient']} coefficient) with AMG-preconditioned CG")
    for name, (path, resolution, n, seed) in files.items():
        problem = get_problem("darcy")(resolution=resolution, coefficient=data["coefficient"])
        report = generate_dataset(problem, solver, n, path, seed=seed, overwrite=True, progress=progress)
        print(f"      {name:9s} {report.n_written} samples at {resolution}x{resolution} -> {path} "
              f"({report.seconds:.1f} s)")

    print(f"[2/3] training neuraloperator's FNO for {config['train']['epochs']} epochs")
    run_dir = out / "run_fno"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train_config = resolve_config({"model": config["model"], "train": config["train"],
                                   "data": {"batch_size": data["batch_size"]}})
    train_set, val_set = train_val_split(files["train"][0], data["val_fraction"], config["train"]["seed"])
    summary = train(train_config, train_set, val_set, run_dir, progress=progress)

    print("[3/3] evaluating at the training resolution and at twice it")
    results, rows = {}, []
    for name in ("test", "test_fine"):
        path, resolution, _, _ = files[name]
        metrics = evaluate(run_dir, GridDataset(path), out_dir=out / f"eval_{resolution}")
        results[resolution] = metrics
        rows.append(evaluation_row(metrics, "FNO (neuraloperator)"))
    print()
    print(format_table(rows))
    print()
    print(f"done in {time.perf_counter() - start:.0f} s; {summary['n_parameters']} parameters, "
          f"trained in {summary['train_seconds']:.0f} s")
    print(f"data:      {out}/darcy_*.nc (inspect with `sciml check FILE` or xarray)")
    print(f"run:       {run_dir} (config.json, history.json, checkpoints/)")
    for resolution, metrics in results.items():
        print(f"eval {resolution:<4d}: {metrics['out_dir']} (metrics.json, sample_*.png, training_curves.png)")
    return results
