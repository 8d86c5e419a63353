"""Benchmark of learned relaxation factors: bandits against fixed and instance-optimal omega.

What is compared (Khodak, Chow, Balcan & Talwalkar, "Learning to Relax", ICLR 2024, sec. 6)
    *Shifted Laplacians* (:class:`~sciml.datasets.relaxation_sequences.ShiftedLaplacianSequence`,
    10x10 grid, n = 100, the paper's high- and low-variance shifts), solved by SOR to
    ``rtol = 1e-8`` from ``x0 = 0`` with an iteration budget of 10,000: every fixed omega
    of the paper's grid ``linspace(1, 1.95, 20)``, the best of them in hindsight, the
    instance-optimal omega (Young's ``2 / (1 + sqrt(1 - rho_J^2))``, exact from the
    known spectrum), Tsallis-INF, one Tsallis-INF per context bin and ChebCB (context:
    the shift), plain CG and AMG-preconditioned CG.
    *Heat equation* (:class:`~sciml.datasets.relaxation_sequences.HeatEquationSequence`,
    Crank-Nicolson, warm starts), solved by SSOR-preconditioned CG: fixed omega in
    ``(1, 1.3, 1.5, 1.75, 1.95)`` (1 is the usual default: symmetric Gauss-Seidel, the
    default relaxation of PETSc's PCSOR and pyamg's smoothers; 1.5 the paper's other
    baseline), the best of those, the instance-optimal omega by search over the grid
    (up to nx = 100), Tsallis-INF and ChebCB (context: the diffusivity), plain and AMG CG.
    ChebCB runs with ``model="rate"`` and ``exploration=30``
    (:class:`~sciml.solvers.bandits.ChebCB`: it regresses the rate ``1 / (cost + 1)`` on a
    surface shared by the arms, a departure from the paper's per-arm cost regression).

How
    Every method runs the whole sequence itself; ``iterations`` is the total over the
    sequence, ``seconds`` the total wall time of the solves (learners: their ``solve``
    calls, learner overhead included; AMG: setup included). Each seed draws a new
    shift sequence and new learner draws; rows give mean and standard deviation over
    seeds. ``capped`` counts solves that hit the budget (fed back at the cap). A
    plot of cumulative iterations against instances is written per sequence.

Examples
--------
>>> from sciml.bench_relaxation import format_table, run
>>> rows = run(quick=True)                                     # doctest: +SKIP
>>> print(format_table(rows))                                  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.datasets.relaxation_sequences import (SHIFT_DISTRIBUTIONS, HeatEquationSequence,
                                                ShiftedLaplacianSequence)
from sciml.errors import SciMLError
from sciml.solvers.krylov import cg_result
from sciml.solvers.learned_relaxation import PAPER_OMEGAS, LearnedRelaxation
from sciml.solvers.preconditioners import make_preconditioner
from sciml.solvers.sor import RelaxationMatrix, sor_result, ssor_cg_result

RTOL = 1e-8
SOR_BUDGET = 10000
HEAT_OMEGAS = (1.0, 1.3, 1.5, 1.75, 1.95)
USUAL_OMEGA = 1.0
COLUMNS = ("sequence", "n", "instances", "method", "iterations", "iterations_std", "seconds",
           "seconds_std", "vs_best_fixed", "vs_instance_optimal", "capped", "seeds")


def learner_specs(context_range) -> dict:
    """The learners compared, as :class:`LearnedRelaxation` specs."""
    return {
        "tsallis_inf": ("tsallis_inf", {"scale": "mean"}),
        "binned_tsallis_inf": ("binned_tsallis_inf", {"context_range": tuple(context_range),
                                                      "n_bins": 5, "scale": "mean"}),
        "chebcb": ("chebcb", {"context_range": tuple(context_range), "degree": 5,
                              "scale": "mean", "model": "rate", "exploration": 30.0}),
    }


class _Trace:
    """Per-instance iterations and seconds of one method on one seed."""

    def __init__(self):
        self.iterations: list[int] = []
        self.seconds: list[float] = []
        self.capped = 0

    def add(self, iterations: int, seconds: float, converged: bool = True) -> None:
        self.iterations.append(int(iterations))
        self.seconds.append(float(seconds))
        self.capped += not converged


def _krylov(A, b, x0, preconditioner: str):
    started = time.perf_counter()
    M = make_preconditioner(preconditioner, A)
    result = cg_result(A, b, x0, rtol=RTOL, maxiter=SOR_BUDGET, M=M)
    return result, time.perf_counter() - started


def shifted_traces(distribution: str, length: int, seed: int) -> dict[str, _Trace]:
    """Run every method on one shifted-Laplacian sequence; return ``{method: trace}``."""
    sequence = ShiftedLaplacianSequence((10, 10), distribution, length=length, seed=seed)
    traces: dict[str, _Trace] = {}
    tuners = {name: LearnedRelaxation("sor", learner=spec, rtol=RTOL, maxiter=SOR_BUDGET, seed=seed)
              for name, spec in learner_specs(sequence.context_range).items()}
    for A, b, shift in sequence:
        R = RelaxationMatrix(A)
        for omega in PAPER_OMEGAS:
            result = sor_result(R, b, rtol=RTOL, maxiter=SOR_BUDGET, omega=omega)
            traces.setdefault(f"sor omega={omega:.2f}", _Trace()).add(
                result.iterations, result.seconds, result.converged)
        result = sor_result(R, b, rtol=RTOL, maxiter=SOR_BUDGET,
                            omega=sequence.optimal_sor_omega(shift))
        traces.setdefault("sor instance-optimal (Young)", _Trace()).add(
            result.iterations, result.seconds, result.converged)
        for name, tuner in tuners.items():
            result = tuner.solve(A, b, context=shift)
            traces.setdefault(f"sor {name}", _Trace()).add(result.iterations, result.seconds,
                                                           result.converged)
        for preconditioner in ("none", "amg"):
            result, seconds = _krylov(A, b, None, preconditioner)
            traces.setdefault(f"cg {preconditioner}", _Trace()).add(
                result.iterations, seconds, result.converged)
    return traces


def heat_traces(nx: int, steps: int, dt: float, seed: int,
                instance_optimal: bool) -> dict[str, _Trace]:
    """Run every method on the heat sequence (each its own simulation); return ``{method: trace}``."""
    traces: dict[str, _Trace] = {}
    context_range = HeatEquationSequence(nx=2, steps=steps, dt=dt).context_range

    def simulate(name, solve):
        heat = HeatEquationSequence(nx=nx, steps=steps, dt=dt)
        trace = traces.setdefault(name, _Trace())
        for A, b, kappa in heat:
            result, seconds = solve(A, b, heat.u, kappa)
            trace.add(result.iterations, seconds, result.converged)
            heat.update(result.x)

    def timed(result):
        return result, result.seconds

    for omega in HEAT_OMEGAS:
        simulate(f"ssor_cg omega={omega:.2f}", lambda A, b, u, k, w=omega: timed(
            ssor_cg_result(A, b, u, rtol=RTOL, maxiter=SOR_BUDGET, omega=w)))
    for name in ("tsallis_inf", "chebcb"):
        tuner = LearnedRelaxation("ssor_cg", omegas=PAPER_OMEGAS,
                                  learner=learner_specs(context_range)[name], rtol=RTOL,
                                  maxiter=SOR_BUDGET, seed=seed)
        simulate(f"ssor_cg {name}", lambda A, b, u, k, t=tuner: timed(t.solve(A, b, u, context=k)))
    if instance_optimal:
        def best(A, b, u, kappa):
            R = RelaxationMatrix(A)
            results = [ssor_cg_result(R, b, u, rtol=RTOL, maxiter=SOR_BUDGET, omega=w)
                       for w in PAPER_OMEGAS]
            chosen = min(results, key=lambda r: (not r.converged, r.iterations))
            return chosen, chosen.seconds
        simulate("ssor_cg instance-optimal (grid search)", best)
    for preconditioner in ("none", "amg"):
        simulate(f"cg {preconditioner}", lambda A, b, u, k, p=preconditioner: _krylov(A, b, u, p))
    return traces


def _rows(sequence: str, n: int, per_seed: list[dict[str, _Trace]], fixed_prefix: str,
          optimal_name: str | None) -> list[dict]:
    """Mean and spread over seeds of every method's totals, with the hindsight comparators."""
    names = list(per_seed[0])
    totals = {m: np.array([sum(s[m].iterations) for s in per_seed], dtype=float) for m in names}
    seconds = {m: np.array([sum(s[m].seconds) for s in per_seed]) for m in names}
    fixed = [m for m in names if m.startswith(fixed_prefix)]
    best_fixed = np.min(np.array([totals[m] for m in fixed]), axis=0)  # per seed, in hindsight
    rows = []
    for m in names:
        row = {"sequence": sequence, "n": n, "instances": len(per_seed[0][m].iterations),
               "method": m, "iterations": float(totals[m].mean()),
               "iterations_std": float(totals[m].std()), "seconds": float(seconds[m].mean()),
               "seconds_std": float(seconds[m].std()),
               "vs_best_fixed": float(np.mean(totals[m] / best_fixed)),
               "vs_instance_optimal": (float(np.mean(totals[m] / totals[optimal_name]))
                                       if optimal_name else None),
               "capped": int(sum(s[m].capped for s in per_seed)), "seeds": len(per_seed)}
        rows.append(row)
    best = min(fixed, key=lambda m: totals[m].mean())
    rows.append({**next(r for r in rows if r["method"] == best),
                 "method": f"best fixed in hindsight ({best.split('=')[-1]})"})
    return rows


def plot(per_seed: list[dict[str, _Trace]], title: str, path: str) -> None:
    """Cumulative iterations against instances (mean over seeds), one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 5))
    for m in per_seed[0]:
        if "omega=" in m and not any(f"{w:.2f}" in m for w in (1.0, 1.5, 1.8)):
            continue  # three fixed omegas keep the plot readable; the table has all
        curves = np.array([np.cumsum(s[m].iterations) for s in per_seed])
        axis.plot(np.arange(1, curves.shape[1] + 1), curves.mean(axis=0), label=m)
    axis.set_xlabel("instance")
    axis.set_ylabel("cumulative iterations")
    axis.set_yscale("log")
    axis.set_title(title)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def run(quick: bool = False, out_dir: str | None = None, seeds: int | None = None,
        instances: int | None = None, heat_sizes: tuple[int, ...] | None = None,
        heat_steps: int | None = None, heat_dt: float | None = None,
        shifts: tuple[str, ...] | None = None) -> list[dict]:
    """Run the benchmark; return the rows (and write JSON and plots into ``out_dir``).

    Parameters
    ----------
    quick : bool
        60 high-variance shifted instances and 50 heat steps of ``dt = 0.02`` (one
        period of the diffusivity) at nx = 25, 2 seeds (under a minute); otherwise
        5000 instances of both shift distributions and 1000 heat steps of the paper's
        ``dt = 1e-3`` (again one period) at nx = 25 ... 400, 3 seeds.
    out_dir : str, optional
        Folder for ``bench_relaxation.json`` and the plots.
    seeds, instances, heat_sizes, heat_steps, heat_dt : optional
        Override the sizes chosen by ``quick``.
    shifts : tuple of str, optional
        Shift distributions to run (keys of
        :data:`~sciml.datasets.relaxation_sequences.SHIFT_DISTRIBUTIONS`); default
        ``("high",)`` with ``quick``, else both.

    Returns
    -------
    list of dict
        One row per (sequence, method) with the keys in ``COLUMNS``.
    """
    seeds = seeds or (2 if quick else 3)
    instances = instances or (60 if quick else 5000)
    distributions = shifts or (("high",) if quick else ("high", "low"))
    unknown = [d for d in distributions if d not in SHIFT_DISTRIBUTIONS]
    if unknown:
        raise SciMLError(f"unknown shift distribution {unknown[0]!r}; use some of "
                         f"{sorted(SHIFT_DISTRIBUTIONS)}")
    heat_sizes = heat_sizes or ((25,) if quick else (25, 50, 100, 200, 400))
    heat_steps = heat_steps or (50 if quick else 1000)
    heat_dt = heat_dt or (0.02 if quick else 1e-3)
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
    rows = []
    for distribution in distributions:
        per_seed = [shifted_traces(distribution, instances, seed) for seed in range(seeds)]
        name = f"shifted-{distribution}"
        rows += _rows(name, 100, per_seed, "sor omega=", "sor instance-optimal (Young)")
        if out_dir is not None:
            plot(per_seed, f"{name}, n = 100, SOR", os.path.join(out_dir, f"bench_relaxation_{name}.png"))
    for nx in heat_sizes:
        search = nx <= 100
        per_seed = [heat_traces(nx, heat_steps, heat_dt, seed, search) for seed in range(seeds)]
        name = f"heat-nx{nx}"
        rows += _rows(name, (nx - 1) ** 2, per_seed, "ssor_cg omega=",
                      "ssor_cg instance-optimal (grid search)" if search else None)
        if out_dir is not None:
            plot(per_seed, f"heat, nx = {nx}, SSOR-PCG", os.path.join(out_dir, f"bench_relaxation_{name}.png"))
    if out_dir is not None:
        atomic_write_json(os.path.join(out_dir, "bench_relaxation.json"),
                          {"benchmark": "relaxation", "rtol": RTOL, "budget": SOR_BUDGET,
                           "usual_omega": USUAL_OMEGA, "machine": platform.platform(),
                           "cpus": os.cpu_count(), "rows": rows})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (see :func:`sciml.tables.format_table`)."""
    return tables.format_table(rows, list(COLUMNS))


def main(argv: list[str] | None = None) -> None:
    """``python -m sciml.bench_relaxation [--quick] [--out DIR] [--seeds S] [--instances T]
    [--heat-sizes NX ...] [--heat-steps K] [--heat-dt DT] [--shifts high low]``: run and print
    the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--out", default=None, help="folder for bench_relaxation.json and plots")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--instances", type=int, default=None, help="shifted-Laplacian instances")
    parser.add_argument("--heat-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--heat-steps", type=int, default=None)
    parser.add_argument("--heat-dt", type=float, default=None)
    parser.add_argument("--shifts", nargs="+", default=None,
                        help="shift distributions to run (high, low); default both")
    args = parser.parse_args(argv)
    rows = run(quick=args.quick, out_dir=args.out, seeds=args.seeds, instances=args.instances,
               heat_sizes=None if args.heat_sizes is None else tuple(args.heat_sizes),
               heat_steps=args.heat_steps, heat_dt=args.heat_dt,
               shifts=None if args.shifts is None else tuple(args.shifts))
    print(format_table(rows))


if __name__ == "__main__":
    main()
