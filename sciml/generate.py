"""Dataset generation: a PDE problem, a solver, a seed, a file.

The problem draws sample ``i`` from the seed :func:`~sciml.dataset_file.sample_seed`
``(root_seed, i)``, assembles its system and solves it with the given solver; the
:class:`~sciml.dataset_file.StagedWriter` stages each sample atomically so a killed run
resumes where it stopped.

Examples
--------
>>> from sciml.datasets import get_problem
>>> from sciml.solvers import LinearSolver
>>> from sciml.generate import generate_dataset
>>> report = generate_dataset(get_problem("darcy")(resolution=16),
...                           LinearSolver("cg", preconditioner="amg"),
...                           n_samples=4, out="darcy16.nc", seed=0)   # doctest: +SKIP
>>> report.n_written, report.failures                                 # doctest: +SKIP
(4, [])
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from sciml.dataset_file import StagedWriter, sample_seed


@dataclass
class GenerationReport:
    """What a generation run did."""

    path: str
    n_requested: int
    n_written: int
    n_solved_now: int
    seconds: float
    failures: list[dict] = field(default_factory=list)

    def failure_lines(self) -> list[str]:
        """One line per failed sample: which, the residual reached, what to try."""
        return [
            f"sample {f['sample']} (seed {f['seed']}): {f.get('message') or 'did not converge'}"
            for f in self.failures
        ]


def generation_metadata(problem, solver, n_samples: int, seed: int, dtype: str = "float32") -> dict:
    """Everything a file records about how it was made (also the resume check)."""
    return {
        "pde": problem.name,
        "pde_parameters": problem.parameters(),
        "generator_version": problem.version,
        "root_seed": int(seed),
        "solver": solver.settings(),
        "inputs": list(problem.input_names),
        "outputs": list(problem.output_names),
        "n_samples": int(n_samples),
        "coords": {k: v.tolist() for k, v in problem.coordinates().items()},
        "dtype": str(np.dtype(dtype)),
    }


def generate_dataset(
    problem,
    solver,
    n_samples: int,
    out,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    dtype: str = "float32",
    progress: bool = True,
) -> GenerationReport:
    """Generate ``n_samples`` samples of ``problem`` solved by ``solver`` into ``out``.

    Parameters
    ----------
    problem : sciml.datasets.PDEProblem
    solver : object with ``solve(A, b) -> SolveResult`` and ``settings() -> dict``
        Usually :class:`sciml.solvers.LinearSolver`.
    n_samples : int
    out : path of the netCDF4 file to write.
    seed : int
        Root seed; sample ``i`` uses ``sample_seed(seed, i)``.
    resume : bool
        Continue an interrupted generation of the same settings.
    overwrite : bool
        Replace a finished file at ``out``.
    dtype : str
        Storage type of the fields (the solve itself runs in float64).

    Returns
    -------
    GenerationReport
        Samples whose solve failed are listed in ``failures`` and left out of the file.
    """
    from sciml.errors import SciMLError

    if int(n_samples) != n_samples or n_samples < 1:
        raise SciMLError(f"--n must be a positive integer, got {n_samples!r}")
    start = time.perf_counter()
    writer = StagedWriter(out, generation_metadata(problem, solver, n_samples, seed, dtype), resume, overwrite)
    todo = writer.pending()
    for index in tqdm(todo, desc=f"generating {problem.name}", unit="sample", disable=not progress):
        writer.write(index, problem.generate_sample(sample_seed(seed, index), solver))
    failures = writer.failures()
    path = writer.finalize()
    return GenerationReport(
        path=path,
        n_requested=int(n_samples),
        n_written=int(n_samples) - len(failures),
        n_solved_now=len(todo),
        seconds=time.perf_counter() - start,
        failures=failures,
    )
