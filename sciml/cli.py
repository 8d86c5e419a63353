"""The ``sciml`` command line: generate, check, train, evaluate, bench, demo.

Every subcommand takes ``--config FILE`` (TOML, YAML or JSON) and dotted overrides such
as ``model.width=32``; the resolved config is written beside its output. Bad input
prints one line (what is wrong, what to do) and exits with status 1.

Examples
--------
::

    sciml generate darcy --n 200 --resolution 32 --out darcy32.nc --solver cg pde.coefficient=lognormal
    sciml generate helmholtz --n 1000 --resolution 32 pde.dim=3 --out h.nc --solver skr --ordering greedy --workers 2
    sciml generate darcy --n 10000 --resolution 64 --out d.nc --scheduler tcp://HOST:8786
    sciml check darcy32.nc
    sciml train fno --data darcy32.nc --out runs/fno --epochs 20 model.width=32
    sciml evaluate runs/fno --data darcy64.nc
    sciml bench            # lists the suites
    sciml demo
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

from sciml.config import apply_overrides, deep_merge, is_override, load_config, write_config
from sciml.errors import SciMLError

DEFAULT_TOLERANCES = {"rtol": 1e-8, "atol": 0.0, "maxiter": None}


def construct(cls, kwargs: dict, where: str):
    """``cls(**kwargs)``, turning unknown keywords into a one-line error naming the valid ones."""
    params = inspect.signature(cls).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(kwargs) - set(params))
        if unknown:
            raise SciMLError(f"unknown {where} setting(s) {unknown}; valid: {', '.join(sorted(params))}")
    return cls(**kwargs)


def _merged_config(base: dict, args, overrides) -> dict:
    config = deep_merge(base, load_config(args.config)) if args.config else base
    return apply_overrides(config, overrides)


# ---------------------------------------------------------------------------- generate
def build_generation(config: dict):
    """The problem and solver a generation config describes.

    ``solver.method`` may be ``auto`` or ``skr``: it is resolved for the problem
    (:func:`sciml.solver_choice.resolve_solver`) and ``config`` updated in place with the
    chosen settings and ``generate.ordering``. Returns ``(problem, solver, choice)``.
    """
    from sciml.datasets import get_problem
    from sciml.solvers import LinearSolver

    pde = dict(config["pde"])
    problem_cls = get_problem(pde.pop("name"))
    problem = construct(problem_cls, pde, "pde")
    choice = resolve_generation_solver(problem, config)
    solver = construct(LinearSolver, dict(config["solver"]), "solver")
    return problem, solver, choice


def resolve_generation_solver(problem, config: dict) -> dict:
    """Fill ``config["solver"]`` and ``config["generate"]["ordering"]`` from ``--solver auto|skr|METHOD``.

    The chosen settings come first, then what the user named (preconditioner, tolerances,
    method options) on top; returns the choice (recorded in the file).
    """
    from sciml.solver_choice import resolve_solver

    given = dict(config["solver"])
    choice = resolve_solver(problem, given.pop("method", "auto"), given.pop("preconditioner", None),
                            config["generate"].get("ordering"))
    config["solver"] = {**choice["solver"], **given}
    config["generate"]["ordering"] = choice["ordering"]
    return choice


def _with_flags(config: dict, overrides, flags) -> dict:
    """``config`` with the given ``(section.key, value)`` flags and the dotted overrides applied;
    ``sciml generate`` needs ``--n`` and ``--out`` in the end."""
    for key, value in flags:
        if value is not None:
            section, name = key.split(".")
            config[section][name] = value
    config = apply_overrides(config, overrides)
    for key, flag in (("n", "--n"), ("out", "--out")):
        if config["generate"].get(key) is None:
            raise SciMLError(f"sciml generate needs {flag} (or generate.{key} in the config)")
    return config


def cmd_generate(args, overrides) -> int:
    from sciml.datasets.trajectory_generator import TRAJECTORY_GENERATORS
    from sciml.generate import generate_dataset

    if args.pde in TRAJECTORY_GENERATORS:
        return generate_trajectories(args, overrides)

    config = {"pde": {"name": args.pde}, "solver": {"method": "auto", **DEFAULT_TOLERANCES},
              "generate": {"seed": 0, "dtype": "float32"}}
    config = _merged_config(config, args, [])
    config = _with_flags(config, overrides, (
        ("pde.resolution", args.resolution), ("generate.n", args.n), ("generate.out", args.out),
        ("generate.seed", args.seed), ("solver.method", args.solver), ("solver.preconditioner", args.preconditioner),
        ("solver.rtol", args.rtol), ("solver.maxiter", args.maxiter), ("generate.ordering", args.ordering),
        ("generate.workers", args.workers), ("generate.chains", args.chains), ("generate.scheduler", args.scheduler)))
    gen = config["generate"]
    if "resolution" not in config["pde"]:
        raise SciMLError("sciml generate needs --resolution (or pde.resolution in the config)")
    problem, solver, choice = build_generation(config)
    report = generate_dataset(problem, solver, gen["n"], gen["out"], seed=gen.get("seed", 0),
                              resume=args.resume, overwrite=args.overwrite, dtype=gen.get("dtype", "float32"),
                              progress=not args.quiet, ordering=gen["ordering"], workers=gen.get("workers"),
                              chains=gen.get("chains"), scheduler=gen.get("scheduler"), solver_choice=choice)
    config_path = write_config(config, str(gen["out"]) + ".config.json")
    print(f"wrote {report.n_written} of {report.n_requested} samples to {report.path} "
          f"({report.n_solved_now} solved now, {report.seconds:.1f} s); config: {config_path}")
    print(f"solver {solver.method} ({choice['rule']}), ordering {gen['ordering']}; {report.time_line()}")
    if report.failures:
        for line in report.failure_lines():
            print(f"sciml generate: failed: {line}", file=sys.stderr)
        print(f"sciml generate: error: {len(report.failures)} samples did not converge and were left out; "
              "try another --solver/--preconditioner or raise solver.maxiter", file=sys.stderr)
        return 1
    return 0


def generate_trajectories(args, overrides) -> int:
    """``sciml generate`` for a time-dependent generator: batched simulation into a trajectory file."""
    from sciml.datasets.trajectory_generator import get_trajectory_generator
    from sciml.simulate import simulate_dataset

    config = _merged_config({"pde": {"name": args.pde}, "generate": {"seed": 0, "batch_size": 8}}, args, [])
    config = _with_flags(config, overrides, (
        ("generate.n", args.n), ("generate.out", args.out), ("generate.seed", args.seed),
        ("pde.resolution", args.resolution), ("generate.device", args.device)))
    gen = config["generate"]
    ignored = [flag for flag, value in (("--solver", args.solver), ("--ordering", args.ordering),
                                        ("--workers", args.workers), ("--scheduler", args.scheduler)) if value]
    if ignored:
        raise SciMLError(f"{args.pde} is time-dependent and simulated in torch batches: drop {', '.join(ignored)} "
                         "(use generate.batch_size and --device)")
    pde = dict(config["pde"])
    generator = construct(get_trajectory_generator(pde.pop("name")), pde, "pde")
    start = time.perf_counter()
    path = simulate_dataset(generator, gen["n"], gen["out"], seed=gen["seed"], batch_size=gen["batch_size"],
                            device=gen.get("device"), resume=args.resume, overwrite=args.overwrite,
                            progress=not args.quiet)
    config_path = write_config(config, str(gen["out"]) + ".config.json")
    print(f"wrote {gen['n']} trajectories of {args.pde} to {path} ({time.perf_counter() - start:.1f} s); "
          f"config: {config_path}")
    return 0


# ---------------------------------------------------------------------------- check
def cmd_check(args, overrides) -> int:
    from sciml.dataset_file import _open_h5
    from sciml.trajectory_file import FORMAT_NAME
    from sciml.validate import check_file, check_trajectory_file

    with _open_h5(args.file) as f:
        is_trajectory = f.attrs.get("sciml_format") in (FORMAT_NAME, FORMAT_NAME.encode())
    if is_trajectory:
        summary = check_trajectory_file(args.file)
        print(f"OK {summary['path']}: {summary['pde']} ({summary['layout']}), {summary['n_samples']} trajectories "
              f"of {summary['frames']} frames, variables {summary['variables']}")
        return 0
    summary = check_file(args.file)
    shape = "x".join(str(s) for s in summary["spatial_shape"])
    print(f"OK {summary['path']}: {summary['pde']}, {summary['n_samples']} samples on {shape} "
          f"({', '.join(summary['dims'])}), inputs {summary['inputs']}, outputs {summary['outputs']}, "
          f"{summary['failed_samples']} failed samples left out")
    return 0


# ---------------------------------------------------------------------------- train / evaluate
DATA_DEFAULTS = {"val_fraction": 0.1, "inputs": None, "outputs": None}


def cmd_train(args, overrides) -> int:
    from sciml import distributed
    from sciml.loader import train_val_split
    from sciml.training import resolve_config, train

    config = {"model": {"name": args.model}, "data": dict(DATA_DEFAULTS)}
    if args.epochs is not None:
        config["train"] = {"epochs": args.epochs}
    config = resolve_config(_merged_config(config, args, overrides))
    data = config["data"]
    train_set, val_set = train_val_split(args.data, data["val_fraction"], config["train"]["seed"],
                                         data["inputs"], data["outputs"])
    summary = train(config, train_set, val_set, args.out, resume=args.resume, progress=not args.quiet)
    if distributed.is_main():
        print(f"trained {summary['epochs']} epochs in {summary['train_seconds']:.1f} s; best validation "
              f"rel. L2 {summary['best_val_l2']:.4g}, rel. H1 {summary['best_val_h1']:.4g}; run: {args.out}")
    return 0


def cmd_evaluate(args, overrides) -> int:
    from sciml.evaluation import evaluate
    from sciml.tables import evaluation_row, format_table

    metrics = evaluate(args.run_dir, args.data, out_dir=args.out, checkpoint=args.checkpoint)
    print(format_table([evaluation_row(metrics, Path(args.run_dir).name)]))
    print(f"metrics and figures: {metrics['out_dir']}")
    return 0


# ---------------------------------------------------------------------------- bench / demo
def cmd_bench(args, overrides) -> int:
    from sciml.bench import SUITES

    if not args.suite:
        print("benchmark suites (run one with `sciml bench NAME [--quick]`):")
        for name, suite in SUITES.items():
            print(f"  {name:16s} {suite.description}")
        return 0
    module = SUITES.get(args.suite).load()
    rows = module.run(quick=args.quick, out_dir=args.out)
    print(module.format_table(rows))
    if args.out:
        print(f"rows written to {args.out}")
    return 0


def cmd_demo(args, overrides) -> int:
    from sciml.demo import run_demo

    run_demo(args.out, quick=args.quick, overrides=overrides)
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sciml", description="Scientific machine learning on PDEs.",
        epilog="Settings: --config FILE (TOML/YAML/JSON) and dotted overrides like model.width=32.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, func, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        p.add_argument("--config", help="config file (.toml, .yaml, .json)")
        return p

    p = add("generate", cmd_generate, "Generate a PDE dataset into a netCDF4 file, sample by sample, "
                                      "in sorted chains on local processes or a dask cluster.")
    p.add_argument("pde", help="PDE problem name, e.g. darcy")
    p.add_argument("--n", type=int, help="number of samples")
    p.add_argument("--resolution", type=int, help="grid points per dimension")
    p.add_argument("--out", help="output file (.nc)")
    p.add_argument("--seed", type=int, help="root seed (default 0)")
    p.add_argument("--solver", help="auto (default: chosen per family and size, see sciml.solver_choice), "
                                    "skr (sorted Krylov recycling: recycled CG if SPD, else GCRO-DR), "
                                    "or a method: cg, gmres, direct, gcrodr, rcg")
    p.add_argument("--preconditioner", help="none, jacobi, ilu, amg (default: the chosen solver's)")
    p.add_argument("--ordering", help="solve order of the batch: none, greedy (the paper's nearest neighbour), "
                                      "curve (Hilbert curve, O(N log N)); default curve for recycling solvers, "
                                      "else none")
    p.add_argument("--workers", type=int, help="local processes (default 1: in this process)")
    p.add_argument("--chains", type=int, help="pieces of the solve order, each with its own solver and "
                                              "recycle space (default: one per worker)")
    p.add_argument("--scheduler", help="dask.distributed scheduler address, e.g. tcp://HOST:8786 (needs "
                                       "dask[distributed] and a filesystem shared with the workers; "
                                       "excludes --workers)")
    p.add_argument("--rtol", type=float, help="true relative residual to reach (default 1e-8)")
    p.add_argument("--maxiter", type=int, help="iteration budget per solve")
    p.add_argument("--device", help="time-dependent generators: torch device, e.g. cuda (default cpu)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted generation")
    p.add_argument("--overwrite", action="store_true", help="replace an existing finished file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("check", cmd_check, "Validate a dataset file; name the first problem found.")
    p.add_argument("file")

    p = add("train", cmd_train, "Train a registered model on a dataset file.")
    p.add_argument("model", help="model name, e.g. fno")
    p.add_argument("--data", required=True, help="training dataset file")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--epochs", type=int)
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("evaluate", cmd_evaluate, "Evaluate a trained run on a dataset file (metrics.json and figures).")
    p.add_argument("run_dir")
    p.add_argument("--data", required=True, help="test dataset file (any resolution the model allows)")
    p.add_argument("--out", help="output folder (default RUN_DIR/eval_<resolution>)")
    p.add_argument("--checkpoint", default="best", choices=["best", "last"])

    p = add("bench", cmd_bench, "List the benchmark suites, or run one.")
    p.add_argument("suite", nargs="?", help="suite name; omit to list them")
    p.add_argument("--quick", action="store_true", help="small sizes, under a minute or two")
    p.add_argument("--out", help="folder for the rows as JSON")

    p = add("demo", cmd_demo, "Generate Darcy data, train FNO, evaluate, print a table and write figures.")
    p.add_argument("--out", default="sciml-demo", help="output folder (default ./sciml-demo)")
    p.add_argument("--quick", action="store_true", help="a much smaller run (about a minute)")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides = [a for a in extra if is_override(a)]
    stray = [a for a in extra if not is_override(a)]
    if stray:
        parser.error(f"unrecognised arguments: {' '.join(stray)} (settings are written section.key=value)")
    try:
        return args.func(args, overrides)
    except SciMLError as exc:
        print(f"sciml {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"sciml {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
