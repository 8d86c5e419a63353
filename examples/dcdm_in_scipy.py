"""Train a tiny DCDM network and drop it into scipy's gcrotmk as the preconditioner.

The network of the deep conjugate direction method (Kaneda et al., ICML 2023) is
trained for a few seconds, without any solutions (energy-norm loss, depth following the
grid), on the pressure Poisson systems of a few random obstacle layouts at 16^2; its ``.aspreconditioner()`` then goes in as ``M=``
of :func:`scipy.sparse.linalg.gcrotmk` (a flexible method, as a network is a nonlinear
preconditioner) on a new layout at 32^2 -- twice the training size. The script prints
how many products with ``A`` gcrotmk needs with and without it, and checks the true
residual of both answers.

Run: ``python examples/dcdm_in_scipy.py`` (about 10-20 s on two CPU cores).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.sparse.linalg import gcrotmk

from sciml.datasets.obstacle_poisson import ObstaclePoisson
from sciml.dcdm_training import obstacle_training_systems, train_dcdm
from sciml.models.dcdm_net import DCDMNet
from sciml.solvers.deep_conjugate_direction import DCDMPreconditioner
from sciml.solvers.stopping import CountingOperator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="training steps")
    parser.add_argument("--size", type=int, default=32, help="grid of the test system")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)

    # levels=0 and the energy loss are this toolkit's departures from the paper (see their docstrings)
    run = train_dcdm(obstacle_training_systems(16, n_layouts=4, seed=0), model=DCDMNet(dim=2, levels=0),
                     steps=args.steps, batch_size=8, n_ritz=64, lr=2e-3, loss="energy", low_fraction=0.0, seed=0)
    print(f"trained {args.steps} steps at 16^2 in {run.seconds:.1f} s: loss {np.mean(run.losses[:10]):.3f} -> "
          f"{np.mean(run.losses[-10:]):.3f}")

    problem = ObstaclePoisson(resolution=args.size)
    A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(123)))
    rtol = 1e-6
    for label, M in (("none", None), ("DCDM network", DCDMPreconditioner(run.model, A).aspreconditioner())):
        op = CountingOperator(A, A.dtype)
        x, info = gcrotmk(op, b, M=M, rtol=rtol, atol=0.0, maxiter=50)  # at most about 1000 products
        relative = np.linalg.norm(b - A @ x) / np.linalg.norm(b)
        print(f"gcrotmk, M = {label:12s}: {op.count:4d} products with A, info {info}, "
              f"true relative residual {relative:.1e}")


if __name__ == "__main__":
    main()
