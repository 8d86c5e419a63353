"""Dataset generation: a PDE problem, a solver, a seed, a file; sorted, chained, in parallel.

The problem draws sample ``i`` from the seed :func:`~sciml.dataset_file.sample_seed`
``(root_seed, i)``, assembles its system and solves it with the given solver; the
:class:`~sciml.dataset_file.StagedWriter` stages each sample atomically so a killed run
resumes where it stopped.

Sorted Krylov recycling (Wang et al., "Accelerating Data Generation for Neural Operators
via Krylov Subspace Recycling", ICLR 2024) needs the batch solved in an order where
consecutive systems are alike, by one solver object that carries its recycle space. Here:

1. **Ordering** (:func:`order_samples`). Each sample's inputs are drawn again from its
   seed, one sample at a time, and reduced to low-pass features
   (:func:`sciml.solvers.ordering.lowpass_features`) of the problem's ``ordering_fields``,
   so no more than one sample's fields is ever held; the feature matrix is ordered by
   :data:`sciml.solvers.ordering.ORDERINGS` (``greedy``: the paper's nearest-neighbour
   chain; ``curve``: PCA + Hilbert curve). Departure from the paper, which compares one
   parameter field: with several ordering fields, each field's features are scaled by
   their spread over the batch so every field counts alike. The order and its cost are
   kept in the staging folder (a resume reuses them) and recorded in the file's
   ``ordering`` attribute.
2. **Chains.** The sorted sequence is cut into contiguous chains, one task each; a task
   rebuilds the problem and a fresh solver (its own recycle space) from plain settings
   and stages its samples as it goes (:func:`solve_chain`).
3. **Backends.** ``workers=1``: the chains run one after another in this process.
   ``workers=N``: a spawn-based :class:`concurrent.futures.ProcessPoolExecutor` runs
   the chains ``N`` at a time. ``scheduler=ADDRESS``: a dask.distributed cluster runs
   them (the optional ``dask[distributed]`` extra); its workers stage into the output's
   folder, so the cluster needs a filesystem shared with the client.
4. **Assembly.** When every sample is staged, the parts are assembled into one netCDF4
   file in sample-index order, whatever order they were solved in; each sample records
   its chain and its position in the solve order (``solve_chain``, ``solve_position``).

Results do not depend on the ordering, the chain count or the backend except through
the solver's round-off (each solve meets the same true-residual tolerance).

Failure handling: a killed generation (any backend) resumes from the staged parts,
losing only the samples in flight, one per chain at most. A pool worker that dies stops
the pool (rerun with ``resume=True``); a dask worker that dies has its chain rerun
elsewhere by the scheduler, which skips the samples already staged. A chain that raises
asks the others to stop at their next sample, so they lose nothing.

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
>>> report = generate_dataset(get_problem("darcy")(resolution=16),
...                           LinearSolver("gmres", preconditioner="ilu"), 100, "d.nc",
...                           ordering="greedy", workers=2)            # doctest: +SKIP
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from sciml.dataset_file import StagedWriter, sample_seed
from sciml.errors import SciMLError
from sciml.generation_backends import InProcess, make_backend

ORDER_FILE = "order.json"
"""Where the staging folder keeps the solve order, so a resume reuses it."""
FEATURE_MODES = 8
"""Low-pass DCT modes per axis compared by the orderings."""


@dataclass
class GenerationReport:
    """What a generation run did.

    ``solver_seconds`` and ``sample_seconds`` sum, over the samples solved now, the
    solver's wall time (preconditioner setup included) and the whole per-sample time
    (drawing inputs, assembling, solving, collecting fields); their ratio
    :attr:`solver_share` says how much of the work is the solve and how much Python
    around it. ``worker_seconds`` adds staging I/O and each chain's start-up.
    """

    path: str
    n_requested: int
    n_written: int
    n_solved_now: int
    seconds: float
    failures: list[dict] = field(default_factory=list)
    chains: int = 1
    backend: str = "in-process"
    ordering: dict = field(default_factory=dict)
    solver_seconds: float = 0.0
    sample_seconds: float = 0.0
    worker_seconds: float = 0.0

    @property
    def solver_share(self) -> float | None:
        """Solver seconds over per-sample seconds (None when nothing was solved now)."""
        return self.solver_seconds / self.sample_seconds if self.sample_seconds > 0 else None

    def failure_lines(self) -> list[str]:
        """One line per failed sample: which, the residual reached, what to try."""
        return [
            f"sample {f['sample']} (seed {f['seed']}): {f.get('message') or 'did not converge'}"
            for f in self.failures
        ]

    def time_line(self) -> str:
        """Where the time went, in one line (the CLI prints it)."""
        if not self.n_solved_now:
            return "no sample solved now"
        per = 1e3 / self.n_solved_now
        share = self.solver_share
        text = (f"per sample: solver {self.solver_seconds * per:.3g} ms of {self.sample_seconds * per:.3g} ms"
                f" ({100 * share:.0f}% in the solver), {self.worker_seconds * per:.3g} ms with staging I/O;"
                f" {self.chains} chain(s), {self.backend}")
        if self.ordering.get("method", "none") != "none":
            text += f"; ordering {self.ordering['method']} {self.ordering['seconds']:.2g} s"
        return text


def generation_metadata(problem, solver, n_samples: int, seed: int, dtype: str = "float32",
                        ordering: str = "none", solver_choice: dict | None = None) -> dict:
    """Everything a file records about how it was made (also the resume check)."""
    return {
        "pde": problem.name,
        "pde_parameters": problem.parameters(),
        "generator_version": problem.version,
        "root_seed": int(seed),
        "solver": solver.settings(),
        "solver_choice": solver_choice or {"rule": "given by the caller"},
        "ordering": str(ordering),
        "inputs": list(problem.input_names),
        "outputs": list(problem.output_names),
        "n_samples": int(n_samples),
        "coords": {k: v.tolist() for k, v in problem.coordinates().items()},
        "dtype": str(np.dtype(dtype)),
    }


# ----------------------------------------------------------------------------- problem as plain data
def problem_spec(problem) -> dict:
    """``{"name", "parameters"}``: what a worker needs to rebuild ``problem`` (JSON-able).

    Raises :class:`SciMLError` if the problem's ``parameters()`` do not rebuild it.

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> problem_spec(get_problem("darcy")(resolution=8))["parameters"]["resolution"]
    8
    """
    spec = json.loads(json.dumps({"name": problem.name, "parameters": problem.parameters()}))
    rebuilt = rebuild_problem(spec)
    if json.dumps(rebuilt.parameters(), sort_keys=True) != json.dumps(spec["parameters"], sort_keys=True):
        raise SciMLError(f"problem {problem.name!r} is not rebuilt by its parameters(); make parameters() "
                         "return the constructor's keyword arguments")
    return spec


def rebuild_problem(spec: dict):
    """The problem ``problem_spec`` described."""
    from sciml.datasets import get_problem

    return get_problem(spec["name"])(**spec["parameters"])


# ----------------------------------------------------------------------------- ordering
def ordering_fields(problem) -> tuple[str, ...]:
    """The input fields whose similarity orders the batch (the problem's ``ordering_fields``, else all inputs)."""
    names = tuple(getattr(problem, "ordering_fields", None) or problem.input_names)
    unknown = [n for n in names if n not in problem.input_names]
    if unknown:
        raise SciMLError(f"{problem.name}: ordering_fields {unknown} are not inputs {list(problem.input_names)}")
    return names


def sample_features(problem, seed: int, fields, modes: int = FEATURE_MODES) -> np.ndarray:
    """Low-pass features of one sample's ordering ``fields``, drawn from its ``seed`` as generation does.

    Returns an array of shape ``(len(fields), F)``: one row of DCT features per field.
    """
    from sciml.solvers.ordering import lowpass_features

    inputs = problem.sample_inputs(np.random.default_rng(seed))
    return np.stack([lowpass_features(np.asarray(inputs[name], dtype=float)[None], modes)[0] for name in fields])


def feature_block(task: dict) -> tuple[np.ndarray, float]:
    """Features of the samples ``task["indices"]`` and the seconds they took (a worker's task)."""
    problem = rebuild_problem(task["problem"])  # a fresh worker's imports are start-up, not ordering cost
    started = time.perf_counter()
    features = np.stack([sample_features(problem, sample_seed(task["root_seed"], i), task["fields"], task["modes"])
                         for i in task["indices"]])
    return features, time.perf_counter() - started


def order_samples(problem, n_samples: int, root_seed: int, method: str = "curve",
                  run=None, blocks: int = 1, modes: int = FEATURE_MODES) -> dict:
    """The order to solve samples ``0 .. n_samples - 1`` in, and what computing it cost.

    Parameters
    ----------
    problem : sciml.datasets.PDEProblem
    n_samples, root_seed : int
    method : {"none", "greedy", "curve"}
        A name of :data:`sciml.solvers.ordering.ORDERINGS`.
    run : callable, optional
        ``run(function, tasks) -> results``, e.g. a backend's; by default in this process.
    blocks : int
        Tasks the feature computation is split into.
    modes : int
        DCT modes per axis.

    Returns
    -------
    dict
        ``method``, ``order`` (list of sample indices), ``fields``, ``modes``; the cost:
        ``feature_seconds`` (drawing inputs and transforming them, summed over
        workers), ``sort_seconds``, their sum ``seconds`` and ``wall_seconds`` (worker
        start-up included); and the sum of feature distances between consecutive
        solves, ``path_length`` for this order and ``index_path_length`` for the index
        order. ``"none"`` computes no features and costs 0.

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> info = order_samples(get_problem("darcy")(resolution=16), 20, 0, "greedy")
    >>> sorted(info["order"]) == list(range(20)), info["path_length"] < info["index_path_length"]
    (True, True)
    """
    from sciml.solvers.ordering import ORDERINGS, path_length

    ordering = ORDERINGS.get(method)
    started = time.perf_counter()
    fields = ordering_fields(problem)
    info = {"method": str(method), "fields": list(fields), "modes": int(modes)}
    if method == "none":
        return {**info, "order": list(range(n_samples)), "feature_seconds": 0.0, "sort_seconds": 0.0,
                "seconds": 0.0, "wall_seconds": 0.0, "path_length": 0.0, "index_path_length": 0.0}
    spec = problem_spec(problem)
    tasks = [{"problem": spec, "root_seed": int(root_seed), "fields": list(fields), "modes": int(modes),
              "indices": part.tolist()} for part in np.array_split(np.arange(n_samples), max(1, blocks)) if len(part)]
    run = run or (lambda function, items: [function(item) for item in items])
    blocks = run(feature_block, tasks)
    features = np.concatenate([block for block, _ in blocks])  # (N, n_fields, F)
    if not np.all(np.isfinite(features)):
        raise SciMLError(f"{problem.name}: the ordering fields {list(fields)} hold NaN or Inf; check the inputs")
    spread = np.sqrt(((features - features.mean(0)) ** 2).mean(axis=(0, 2)))
    features = (features / np.where(spread > 0, spread, 1.0)[:, None]).reshape(n_samples, -1)
    sorting = time.perf_counter()
    order = np.asarray(ordering(features), dtype=np.int64)
    sort_seconds = time.perf_counter() - sorting
    return {**info, "order": order.tolist(), "feature_seconds": float(sum(t for _, t in blocks)),
            "sort_seconds": sort_seconds, "seconds": float(sum(t for _, t in blocks)) + sort_seconds,
            "wall_seconds": time.perf_counter() - started, "path_length": path_length(features, order),
            "index_path_length": path_length(features, np.arange(n_samples))}


def cut_chains(sequence: list, chains: int) -> list[list]:
    """Cut ``sequence`` into at most ``chains`` contiguous, nearly equal, non-empty pieces.

    >>> cut_chains([5, 1, 4, 2, 3], 2)
    [[5, 1], [4, 2, 3]]
    """
    edges = np.linspace(0, len(sequence), max(1, min(chains, len(sequence))) + 1).round().astype(int)
    return [list(sequence[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]


# ----------------------------------------------------------------------------- one chain
def solve_chain(task: dict, solver=None, on_sample=None) -> dict:
    """Solve one chain of samples in order with one solver object, staging each as it goes.

    The task a worker runs: ``task`` is plain data (``problem`` spec, ``solver``
    settings, ``root_seed``, ``out``, ``chain``, ``samples`` as ``[position, index]``
    pairs). A fresh :class:`~sciml.solvers.LinearSolver` is built from the settings, so
    the chain carries its own recycle space. Samples already staged (a rerun after a
    dead worker) are skipped; the chain stops early when another chain asked to stop.

    Parameters
    ----------
    task : dict
    solver : object, optional
        Use this solver object instead of building one (in-process runs only).
    on_sample : callable, optional
        Called after every staged sample (in-process progress).

    Returns
    -------
    dict
        ``chain``, ``solved``, ``failed``, ``skipped``, ``stopped`` (bool),
        ``solver_seconds``, ``sample_seconds``, ``seconds``.
    """
    from sciml.solvers import LinearSolver

    started = time.perf_counter()
    problem = rebuild_problem(task["problem"])
    solver = LinearSolver.from_settings(task["solver"]) if solver is None else solver
    writer = StagedWriter.attach(task["out"])
    summary = {"chain": task["chain"], "solved": 0, "failed": 0, "skipped": 0, "stopped": False,
               "solver_seconds": 0.0, "sample_seconds": 0.0}
    for position, index in task["samples"]:
        if writer.stop_requested():
            summary["stopped"] = True
            break
        if writer.is_staged(index):
            summary["skipped"] += 1
            continue
        begun = time.perf_counter()
        sample = problem.generate_sample(sample_seed(task["root_seed"], index), solver)
        elapsed = time.perf_counter() - begun
        writer.write(index, sample, {"chain": task["chain"], "position": position, "sample_seconds": elapsed})
        summary["solved" if sample.record.converged else "failed"] += 1
        summary["solver_seconds"] += float(sample.record.seconds)
        summary["sample_seconds"] += elapsed
        if on_sample is not None:
            on_sample()
    summary["seconds"] = time.perf_counter() - started
    return summary


# ----------------------------------------------------------------------------- the driver
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
    ordering: str = "none",
    workers: int | None = None,
    chains: int | None = None,
    scheduler: str | None = None,
    solver_choice: dict | None = None,
) -> GenerationReport:
    """Generate ``n_samples`` samples of ``problem`` solved by ``solver`` into ``out``.

    Parameters
    ----------
    problem : sciml.datasets.PDEProblem
    solver : LinearSolver, or object with ``solve(A, b) -> SolveResult`` and ``settings() -> dict``
        Every chain gets its own copy of a :class:`~sciml.solvers.LinearSolver` (rebuilt
        from its settings, so each carries its own recycle space); any other object runs
        only in-process as one chain.
    n_samples : int
    out : path of the netCDF4 file to write.
    seed : int
        Root seed; sample ``i`` uses ``sample_seed(seed, i)``.
    resume : bool
        Continue an interrupted generation of the same settings (any backend, any
        number of chains).
    overwrite : bool
        Replace a finished file at ``out``.
    dtype : str
        Storage type of the fields (the solve itself runs in float64).
    progress : bool
        Show a progress bar.
    ordering : {"none", "greedy", "curve"}
        Order in which samples are solved (:func:`order_samples`); the file stores
        them in index order regardless.
    workers : int, optional
        Local processes (default 1: in this process). Excludes ``scheduler``.
    chains : int, optional
        Contiguous pieces of the solve order, each one task with its own solver
        (default: one per worker, or per worker thread of the cluster).
    scheduler : str, optional
        Address of a dask.distributed scheduler to run the chains on; its workers must
        see ``out``'s folder (a shared filesystem).
    solver_choice : dict, optional
        How the solver was chosen (:func:`sciml.solver_choice.resolve_solver`), recorded.

    Returns
    -------
    GenerationReport
        Samples whose solve failed are listed in ``failures`` and left out of the file.

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> from sciml.solvers import LinearSolver
    >>> report = generate_dataset(get_problem("darcy")(resolution=16), LinearSolver("gmres"), 8,
    ...                           "d.nc", ordering="greedy", workers=2)   # doctest: +SKIP
    >>> report.chains, report.time_line()                                # doctest: +SKIP
    """
    from sciml.solvers import LinearSolver

    if isinstance(n_samples, bool) or int(n_samples) != n_samples or n_samples < 1:
        raise SciMLError(f"--n must be a positive integer, got {n_samples!r}")
    if chains is not None and (isinstance(chains, bool) or int(chains) != chains or chains < 1):
        raise SciMLError(f"--chains must be a positive integer, got {chains!r}")
    backend = make_backend(workers, scheduler)
    rebuildable = isinstance(solver, LinearSolver)
    if not rebuildable and not (isinstance(backend, InProcess) and chains in (None, 1)):
        raise SciMLError(f"solver {type(solver).__name__} cannot be copied into chains; pass a LinearSolver "
                         "or run with workers=1, chains=1")
    from sciml.solvers.ordering import ORDERINGS

    ORDERINGS.get(ordering)
    start = time.perf_counter()
    n_samples = int(n_samples)
    spec = problem_spec(problem)
    metadata = generation_metadata(problem, solver, n_samples, seed, dtype, ordering, solver_choice)
    with backend:  # connect first: an unreachable cluster leaves nothing behind
        writer = StagedWriter(out, metadata, resume, overwrite)
        writer.clear_stop()
        info = writer.staged_json(ORDER_FILE)
        if info is None:
            info = order_samples(problem, n_samples, seed, ordering, backend.run, backend.slots)
            writer.stage_json(ORDER_FILE, info)
        pending = set(writer.pending())
        sequence = [[position, index] for position, index in enumerate(info["order"]) if index in pending]
        pieces = cut_chains(sequence, chains or backend.slots)
        tasks = [{"problem": spec, "solver": solver.settings(), "root_seed": int(seed), "out": os.fspath(out),
                  "chain": c, "samples": piece}
                 for c, piece in enumerate(pieces)]
        bar = tqdm(total=len(sequence), desc=f"generating {problem.name}", unit="sample", disable=not progress)
        with bar:
            if isinstance(backend, InProcess):
                copy = (lambda: type(solver).from_settings(solver.settings())) if rebuildable else (lambda: solver)
                results = [solve_chain(task, copy(), on_sample=functools.partial(bar.update, 1)) for task in tasks]
            else:
                already = n_samples - len(sequence)

                def poll():
                    good, failed = writer.staged()
                    bar.update(len(good) + len(failed) - already - bar.n)

                results = backend.run(solve_chain, tasks, poll, on_failure=lambda: writer.request_stop())
    missing = writer.pending()
    if missing:
        raise SciMLError(f"{len(missing)} samples were not solved (a chain stopped early); rerun with --resume")
    failures = writer.failures()
    ordering_attr = {k: v for k, v in info.items() if k != "order"}
    path = writer.finalize({"ordering": ordering_attr,
                            "generation": {"backend": backend.name, "chains": len(tasks)}})
    totals = {key: float(sum(r[key] for r in results)) for key in ("solver_seconds", "sample_seconds", "seconds")}
    return GenerationReport(
        path=path,
        n_requested=n_samples,
        n_written=n_samples - len(failures),
        n_solved_now=int(sum(r["solved"] + r["failed"] for r in results)),
        seconds=time.perf_counter() - start,
        failures=failures,
        chains=len(tasks),
        backend=backend.name,
        ordering=ordering_attr,
        solver_seconds=totals["solver_seconds"],
        sample_seconds=totals["sample_seconds"],
        worker_seconds=totals["seconds"],
    )
