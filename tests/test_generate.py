"""Generation: reproducible, resumable after SIGKILL, failures never stored as data."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sciml.dataset_file import StagedWriter
from sciml.datasets import get_problem
from sciml.errors import DataFileError
from sciml.generate import generate_dataset
from sciml.solvers import LinearSolver
from sciml.validate import check_file


def _fields(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("a", "f", "u", "seed", "sample")}


def test_same_seed_same_data_any_solver(tmp_path):
    problem = get_problem("darcy")(resolution=12)
    a = generate_dataset(problem, LinearSolver("cg", preconditioner="amg", rtol=1e-10), 4, tmp_path / "a.nc",
                         seed=3, progress=False)
    b = generate_dataset(problem, LinearSolver("direct"), 4, tmp_path / "b.nc", seed=3, progress=False)
    fa, fb = _fields(a.path), _fields(b.path)
    np.testing.assert_array_equal(fa["a"], fb["a"])
    np.testing.assert_allclose(fa["u"], fb["u"], rtol=1e-5, atol=1e-7)


def test_existing_output_is_never_clobbered(tmp_path):
    problem = get_problem("darcy")(resolution=8)
    out = tmp_path / "d.nc"
    generate_dataset(problem, LinearSolver("direct"), 2, out, progress=False)
    before = out.read_bytes()
    with pytest.raises(DataFileError, match="exists; pass --overwrite"):
        generate_dataset(problem, LinearSolver("direct"), 2, out, progress=False)
    assert out.read_bytes() == before


class FailEveryThird:
    """A real solver whose every third solve gets a budget too small to converge."""

    def __init__(self):
        self.good = LinearSolver("cg", preconditioner="none")
        self.starved = LinearSolver("cg", preconditioner="none", maxiter=1)
        self.calls = 0

    def solve(self, A, b, x0=None):
        self.calls += 1
        return (self.starved if self.calls % 3 == 0 else self.good).solve(A, b, x0)

    def settings(self):
        return self.good.settings()


def test_failed_samples_are_reported_and_left_out(tmp_path):
    report = generate_dataset(get_problem("darcy")(resolution=12), FailEveryThird(), 6, tmp_path / "f.nc",
                              progress=False)
    assert [f["sample"] for f in report.failures] == [2, 5]
    assert all("residual" in line for line in report.failure_lines())
    summary = check_file(report.path)
    assert summary["n_samples"] == 4 and summary["failed_samples"] == 2
    assert _fields(report.path)["sample"].tolist() == [0, 1, 3, 4]


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "r.nc"
    problem = get_problem("darcy")(resolution=8)
    StagedWriter(out, {"pde": "darcy", "n_samples": 3, "root_seed": 0})
    with pytest.raises(DataFileError, match="interrupted generation; rerun with --resume"):
        StagedWriter(out, {"pde": "darcy", "n_samples": 3, "root_seed": 0})
    with pytest.raises(DataFileError, match="cannot resume: root_seed"):
        StagedWriter(out, {"pde": "darcy", "n_samples": 3, "root_seed": 1}, resume=True)
    assert problem.resolution == 8


def test_sigkill_then_resume_loses_nothing_and_duplicates_nothing(tmp_path):
    out = tmp_path / "killed.nc"
    cmd = [sys.executable, "-m", "sciml", "generate", "darcy", "--n", "60", "--resolution", "48",
           "--out", str(out), "--seed", "5", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staging = tmp_path / "killed.nc.parts"
    deadline = time.time() + 60
    while time.time() < deadline:
        if staging.exists() and len([p for p in os.listdir(staging) if p.startswith("sample_")]) >= 5:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed run must not leave a readable final file"
    staged_before = len([p for p in os.listdir(staging) if p.startswith("sample_")])
    assert 5 <= staged_before < 60
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"({60 - staged_before} solved now" in done.stdout
    assert not staging.exists()
    resumed = _fields(out)
    assert resumed["sample"].tolist() == list(range(60))
    assert len(set(resumed["seed"].tolist())) == 60
    fresh = generate_dataset(get_problem("darcy")(resolution=48), LinearSolver("cg", preconditioner="amg"), 60,
                             tmp_path / "fresh.nc", seed=5, progress=False)
    expected = _fields(fresh.path)
    for name in ("a", "f", "seed"):
        np.testing.assert_array_equal(resumed[name], expected[name])
    np.testing.assert_allclose(resumed["u"], expected["u"], rtol=1e-5, atol=1e-8)
