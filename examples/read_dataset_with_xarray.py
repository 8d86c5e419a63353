"""Open a sciml dataset with xarray and plot one sample's coefficient and solution.

Run:  python examples/read_dataset_with_xarray.py FILE [--out figure.png]
Make FILE first, e.g.  sciml generate darcy --n 4 --resolution 32 --out darcy.nc
"""

import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import xarray as xr  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("file")
parser.add_argument("--sample", type=int, default=0)
parser.add_argument("--out", default="sample.png")
args = parser.parse_args()

with xr.open_dataset(args.file, engine="h5netcdf") as ds:
    print(ds)
    print("PDE parameters:", json.loads(ds.attrs["pde_parameters"]))
    print("solver:", json.loads(ds.attrs["solver"]))
    sample = ds.isel(sample=args.sample)
    print(f"sample {int(sample['sample'])}: seed {int(sample['seed'])}, "
          f"{int(sample['solver_iterations'])} iterations, true relative residual "
          f"{float(sample['solver_relative_residual']):.2e}")
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    # x is the first array axis; transpose so x runs horizontally.
    sample["a"].T.plot(ax=axes[0])
    sample["u"].T.plot(ax=axes[1])
    axes[0].set_title("coefficient a")
    axes[1].set_title("solution u")
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
print(f"figure written to {args.out}")
