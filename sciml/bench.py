"""Benchmark suites, listed by ``sciml bench`` and run by ``sciml bench NAME``.

Each suite is a module with ``run(quick=False, out_dir=None) -> list[dict]`` and
``format_table(rows) -> str``; this registry maps names to those modules so the command
line imports a suite only when it runs. Every suite compares in one run, with one
stopping rule (the true relative residual) and one budget, against the strongest fair
baseline, and writes its rows as JSON.

Examples
--------
>>> from sciml.bench import SUITES
>>> "solvers" in SUITES
True
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from sciml.registry import Registry


@dataclass(frozen=True)
class Suite:
    """A benchmark suite: its module and what it measures."""

    module: str
    description: str

    def load(self):
        return importlib.import_module(self.module)


SUITES: Registry[Suite] = Registry("benchmark suite")
SUITES.register(
    "solvers",
    Suite(
        "sciml.bench_solvers",
        "Darcy (log-normal) SPD systems 64^2-512^2: CG with none/Jacobi/ILU/AMG, GMRES+AMG, direct, "
        "against pyamg's own solver; true relative residual 1e-8",
    ),
)
SUITES.register(
    "operators",
    Suite(
        "sciml.bench_operators",
        "FNO (baseline), MgNO, LSM, DeepONet on Darcy 32^2/64^2 at equal epochs, zero-shot at 2x, "
        "several seeds; DeepONet on the antiderivative operator (MSE)",
    ),
)
SUITES.register(
    "recycling",
    Suite(
        "sciml.bench_recycling",
        "sorted Krylov recycling (GCRO-DR / recycled CG) against GMRES(40), gcrotmk, lgmres, CG, AMG and "
        "direct solves on Darcy, Poisson, Helmholtz and advection-diffusion sequences, 2-D and 3-D",
    ),
)
SUITES.register(
    "preconditioners",
    Suite(
        "sciml.bench_preconditioners",
        "DCDM (learned conjugate directions) against CG, IC/ILU-PCG, AMG-PCG and deflated PCG, and "
        "DCDM as M in FCG/FGMRES, on obstacle Poisson systems; true relative residual 1e-6",
    ),
)
SUITES.register(
    "relaxation",
    Suite(
        "sciml.bench_relaxation",
        "SOR/SSOR-PCG with omega learned online by bandits (Tsallis-INF, contextual) against every fixed "
        "omega, the best in hindsight, the instance-optimal one, CG and AMG-CG",
    ),
)
SUITES.register(
    "lagrangian",
    Suite(
        "sciml.bench_lagrangian",
        "GIOROM at sampling ratios 1..1/32 against the full-graph GNS on 2-D MPM water: rollout MSE, time per "
        "step, peak memory; a 1e5-point cloud advanced from about 1e3 graph nodes",
    ),
)
SUITES.register(
    "constraints",
    Suite(
        "sciml.bench_constraints",
        "soft vs global hard vs MoE hard constraints on PDEBench diffusion-sorption: test relative L2 in the "
        "window and in extrapolation, step and inference time against collocation points 1e2-1e5, peak memory, "
        "experts converged",
    ),
)
SUITES.register(
    "dynamics",
    Suite(
        "sciml.bench_dynamics",
        "SFNO (+ Spectral-Refiner), FNO 2-D/3-D, SineNet-K and a same-size U-Net on Navier-Stokes (10 frames in, "
        "10/40 out, zero-shot at 4x resolution) and shallow water, equal optimiser steps, several seeds",
    ),
)
