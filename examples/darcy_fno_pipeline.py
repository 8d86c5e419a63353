"""The demo's steps written out with the Python API: generate, train, evaluate.

Run:  python examples/darcy_fno_pipeline.py --out example-run [--quick]
"""

import argparse
from pathlib import Path

from sciml.datasets import get_problem
from sciml.evaluation import evaluate
from sciml.generate import generate_dataset
from sciml.loader import GridDataset, train_val_split
from sciml.solvers import LinearSolver
from sciml.training import resolve_config, train

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="example-run")
parser.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
args = parser.parse_args()
out = Path(args.out)
out.mkdir(parents=True, exist_ok=True)
resolution, n_train, n_test, epochs = (16, 40, 8, 2) if args.quick else (32, 500, 100, 20)

# 1. A PDE problem and a solver: any solver from sciml.solvers drops in.
problem = get_problem("darcy")(resolution=resolution, coefficient="piecewise")
solver = LinearSolver("cg", preconditioner="amg", rtol=1e-8)
train_file = generate_dataset(problem, solver, n_train, out / "train.nc", seed=0, overwrite=True).path
test_file = generate_dataset(problem, solver, n_test, out / "test.nc", seed=1, overwrite=True).path

# 2. Train neuraloperator's FNO; the run folder keeps config, history and checkpoints.
config = resolve_config({
    "model": {"name": "fno", "n_modes": resolution // 2 - 2, "width": 16 if args.quick else 32},
    "train": {"epochs": epochs, "loss": "h1"},
    "data": {"batch_size": 8},
})
train_set, val_set = train_val_split(train_file, val_fraction=0.1, seed=0)
summary = train(config, train_set, val_set, out / "run")

# 3. Evaluate on held-out data: metrics.json and figures.
metrics = evaluate(out / "run", GridDataset(test_file))
print(f"test relative L2 {metrics['relative_l2']['mean']:.4f}, H1 {metrics['relative_h1']['mean']:.4f}; "
      f"figures in {metrics['out_dir']}")
