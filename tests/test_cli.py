"""The command line: every subcommand has --help; bad input gets one clear line and a
non-zero exit, and nothing already written is lost."""

import subprocess
import sys

import h5py
import numpy as np
import pytest

from sciml.cli import main

COMMANDS = ["generate", "check", "train", "evaluate", "bench", "demo"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    assert lines[0].startswith("sciml ") and "error:" in lines[0]
    return lines[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command):
    done = subprocess.run([sys.executable, "-m", "sciml", command, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "usage: sciml " + command in done.stdout


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["generate", "plasma", "--n", 2, "--resolution", 8], "unknown PDE 'plasma'; choose one of: advection-diffusion"),
        (["generate", "darcy", "--n", 2, "--resolution", 8, "--solver", "bicg"], "unknown solver"),
        (["generate", "darcy", "--n", 2, "--resolution", 8, "--preconditioner", "ssor"], "unknown preconditioner"),
        (["generate", "darcy", "--n", 2, "--resolution", 8, "pde.coefficient=smooth"], "coefficient"),
        (["generate", "darcy", "--n", 2, "--resolution", 8, "pde.high=-1"], "high"),
        (["generate", "darcy", "--n", 2, "--resolution", 8, "pde.colour=red"], "unknown pde setting"),
        (["generate", "darcy", "--n", 2, "--resolution", 8], "needs --out"),
        (["train", "transformer", "--data", "x.nc", "--out", "run"], "unknown model 'transformer'"),
        (["bench", "nosuchsuite"], "unknown benchmark suite"),
    ],
)
def test_bad_names_and_settings_get_one_line(capsys, tmp_path, argv, expected):
    argv = [a if a not in ("x.nc", "run") else tmp_path / a for a in argv]
    if argv[0] == "generate" and "needs --out" not in expected:
        argv += ["--out", tmp_path / "d.nc"]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert expected in error_line(err)


def test_generate_then_check(capsys, tmp_path):
    out = tmp_path / "d.nc"
    code, stdout, _ = run(capsys, "generate", "darcy", "--n", 3, "--resolution", 10, "--out", out, "--quiet",
                          "pde.coefficient=lognormal", "solver.rtol=1e-10")
    assert code == 0 and "wrote 3 of 3 samples" in stdout
    assert (tmp_path / "d.nc.config.json").exists()
    code, stdout, _ = run(capsys, "check", out)
    assert code == 0 and stdout.startswith("OK") and "3 samples on 10x10" in stdout


def test_each_problem_gets_a_solver_that_suits_it(capsys, tmp_path):
    import json

    code, _, err = run(capsys, "generate", "antiderivative", "--n", 2, "--resolution", 20, "--out",
                       tmp_path / "a.nc", "--quiet")
    assert code == 0, err
    assert json.loads((tmp_path / "a.nc.config.json").read_text())["solver"]["method"] == "direct"
    code, _, err = run(capsys, "generate", "darcy", "--n", 2, "--resolution", 8, "--out", tmp_path / "d.nc",
                       "--quiet", "--solver", "direct")
    assert code == 0, err
    assert json.loads((tmp_path / "d.nc.config.json").read_text())["solver"]["preconditioner"] == "none"


def test_non_convergence_is_reported_not_stored(capsys, tmp_path):
    out = tmp_path / "d.nc"
    code, _, err = run(capsys, "generate", "darcy", "--n", 2, "--resolution", 16, "--out", out, "--quiet",
                       "--solver", "cg", "--preconditioner", "none", "--maxiter", 1)
    assert code == 1
    assert "no sample" in err and "converged" in err
    assert not out.exists()


def test_check_names_the_problem(capsys, tmp_path, darcy_file):
    code, _, err = run(capsys, "check", tmp_path / "none.nc")
    assert code == 1 and "no such file" in error_line(err)
    truncated = tmp_path / "t.nc"
    truncated.write_bytes(darcy_file.read_bytes()[:5000])
    code, _, err = run(capsys, "check", truncated)
    assert code == 1 and "truncated" in error_line(err)


def test_train_rejects_data_that_do_not_fit(capsys, tmp_path, darcy_file):
    code, _, err = run(capsys, "train", "fno", "--data", darcy_file, "--out", tmp_path / "run", "--quiet",
                       "--epochs", 1, "model.n_modes=32")
    assert code == 1 and "too small" in error_line(err)
    code, _, err = run(capsys, "train", "fno", "--data", darcy_file, "--out", tmp_path / "run2", "--quiet",
                       "data.inputs=[\"nu\"]")
    assert code == 1 and "no input variable" in error_line(err)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["u"] = np.zeros(3)
    code, _, err = run(capsys, "train", "fno", "--data", foreign, "--out", tmp_path / "run3")
    assert code == 1 and "not a sciml dataset" in error_line(err)


def test_train_evaluate_round_trip(capsys, tmp_path, darcy_file):
    run_dir = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "fno", "--data", darcy_file, "--out", run_dir, "--epochs", 2,
                            "--quiet", "model.width=8", "model.n_modes=4", "data.batch_size=4")
    assert code == 0, err
    assert (run_dir / "config.json").exists() and (run_dir / "checkpoints" / "best.pt").exists()
    code, stdout, err = run(capsys, "evaluate", run_dir, "--data", darcy_file)
    assert code == 0, err
    assert "rel_l2" in stdout and "metrics and figures" in stdout


def test_bench_lists_suites(capsys):
    code, stdout, _ = run(capsys, "bench")
    assert code == 0 and "solvers" in stdout


def test_unrecognised_argument_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["check", "a.nc", "--frobnicate"])
    assert exc.value.code == 2
