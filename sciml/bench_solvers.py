"""Benchmark of the linear solvers on variable-coefficient diffusion systems.

What is compared
    On the Darcy systems the generator solves (:class:`sciml.datasets.Darcy`: cell-centred
    finite volumes of ``-div(a grad u) = 1`` on the unit square, harmonic face averages),
    with a log-normal coefficient ``a = exp(z)``, ``z`` a Gaussian random field
    (alpha 2, tau 3, amplitude 1.5), every combination a
    generator would pick: ``cg`` with no, Jacobi, ILU and smoothed-aggregation AMG
    preconditioning, ``gmres`` with AMG, and sparse LU (``direct``); and, as the outside
    baseline, pyamg's own ``MultilevelSolver.solve(b, tol=rtol, accel='cg')``.

How
    One stopping rule for all: converged iff the true residual
    ``||b - A x||_2 <= rtol ||b||_2`` with ``rtol = 1e-8``. Our solvers stop on it
    (:mod:`sciml.solvers.stopping`); pyamg's solve stops on its own recursive residual
    and is then judged by the same rule. Seconds are wall time of one run of
    preconditioner setup plus solve (pyamg: hierarchy setup plus solve), on sizes
    64^2 to 512^2 (quick: 32^2, 64^2). ``matvecs`` counts applications of
    ``A`` including the true-residual checks; pyamg does not expose its count (None).

Examples
--------
>>> from sciml.bench_solvers import darcy_system, format_table, run
>>> A, b = darcy_system(8, seed=0)
>>> A.shape, bool(abs(A - A.T).max() < 1e-12)
((64, 64), True)
>>> rows = run(quick=True)                                     # doctest: +SKIP
>>> print(format_table(rows))                                  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import pyamg
import scipy.sparse as sp

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.datasets import Darcy
from sciml.solvers import LinearSolver

RTOL = 1e-8
SIGMA = 1.5  # log-normal amplitude: max(a)/min(a) of a few hundred at alpha=2, tau=3
SIZES = (64, 128, 256, 512)
QUICK_SIZES = (32, 64)
CONFIGURATIONS = (
    ("cg", "none"),
    ("cg", "jacobi"),
    ("cg", "ilu"),
    ("cg", "amg"),
    ("gmres", "amg"),
    ("direct", "none"),
)
COLUMNS = ("size", "unknowns", "method", "preconditioner", "iterations", "matvecs", "seconds",
           "relative_residual", "converged")


def darcy_system(size: int, seed: int = 0, dim: int = 2) -> tuple[sp.csr_matrix, np.ndarray]:
    """The benchmark system: Darcy with a log-normal coefficient (contrast of a few hundred)
    on a ``size``-per-side grid, drawn from ``seed``; the generator's own assembly."""
    problem = Darcy(resolution=size, dim=dim, coefficient="lognormal", alpha=2.0, tau=3.0, sigma=SIGMA)
    return problem.assemble(problem.sample_inputs(np.random.default_rng(seed)))


def _pyamg_row(A, b) -> dict:
    """pyamg's own AMG-preconditioned CG, judged by the true-residual rule."""
    started = time.perf_counter()
    residuals: list[float] = []
    ml = pyamg.smoothed_aggregation_solver(A)
    x = ml.solve(b, tol=RTOL, accel="cg", maxiter=10 * A.shape[0], residuals=residuals)
    seconds = time.perf_counter() - started
    relative = float(np.linalg.norm(b - A @ x) / np.linalg.norm(b))
    return {"method": "pyamg.solve(accel='cg')", "preconditioner": "amg",
            "iterations": len(residuals) - 1, "matvecs": None, "seconds": seconds,
            "relative_residual": relative, "converged": relative <= RTOL}


def run(quick: bool = False, out_dir: str | None = None) -> list[dict]:
    """Run every configuration on every size; return the rows (and write them as JSON).

    Parameters
    ----------
    quick : bool
        Sizes 32^2 and 64^2 instead of 64^2 to 512^2.
    out_dir : str, optional
        Folder to write ``bench_solvers.json`` into (created if needed).

    Returns
    -------
    list of dict
        One row per (size, configuration) with the keys in ``COLUMNS``.
    """
    rows = []
    for size in QUICK_SIZES if quick else SIZES:
        A, b = darcy_system(size)
        for method, preconditioner in CONFIGURATIONS:
            result = LinearSolver(method, preconditioner, rtol=RTOL).solve(A, b)
            record = result.record()
            rows.append({"size": size, "unknowns": A.shape[0], "method": method,
                         "preconditioner": preconditioner,
                         **{key: record[key] for key in COLUMNS[4:]}})
        rows.append({"size": size, "unknowns": A.shape[0], **_pyamg_row(A, b)})
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        atomic_write_json(os.path.join(out_dir, "bench_solvers.json"),
                          {"benchmark": "solvers", "rtol": RTOL, "machine": platform.platform(),
                           "cpus": os.cpu_count(), "rows": rows})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (see :func:`sciml.tables.format_table`)."""
    return tables.format_table(rows, list(COLUMNS))


def main(argv: list[str] | None = None) -> None:
    """``python -m sciml.bench_solvers [--quick] [--out DIR]``: run and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 32^2 and 64^2 only")
    parser.add_argument("--out", default=None, help="folder for bench_solvers.json")
    args = parser.parse_args(argv)
    print(format_table(run(quick=args.quick, out_dir=args.out)))


if __name__ == "__main__":
    main()
