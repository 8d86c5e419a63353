"""Parallel generation: a process pool and a real dask LocalCluster give the sequential run's
data; bad worker counts and unreachable clusters get one clear line; a killed pool run resumes."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from sciml.cli import main
from sciml.datasets import get_problem
from sciml.errors import SciMLError
from sciml.generate import generate_dataset
from sciml.generation_backends import connect_scheduler
from sciml.solvers import METHODS, LinearSolver

N = 10
RTOL = 1e-10


def recycling_solver():
    """GCRO-DR carries a recycle space along each chain; GMRES stands in where it is not registered yet."""
    if "gcrodr" in METHODS:
        return LinearSolver("gcrodr", preconditioner="ilu", rtol=RTOL, m=20, k=5)
    return LinearSolver("gmres", preconditioner="ilu", rtol=RTOL)


def contents(path):
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in ("a", "u", "seed", "sample", "solve_position", "solve_chain",
                                      "solver_relative_residual")}
        data["attrs"] = {k: f.attrs[k] for k in ("ordering", "generation")}
    return data


def assert_same_dataset(one, other):
    for key in ("a", "seed", "sample", "solve_position"):
        np.testing.assert_array_equal(one[key], other[key])
    scale = np.abs(one["u"]).max()
    np.testing.assert_allclose(one["u"], other["u"], rtol=0, atol=1e3 * RTOL * scale)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same batch generated sequentially (one chain) and by a pool of 2 (two chains)."""
    folder = tmp_path_factory.mktemp("parallel")
    problem = get_problem("darcy")(resolution=16, coefficient="lognormal")
    sequential = generate_dataset(problem, recycling_solver(), N, folder / "seq.nc", seed=4, ordering="greedy",
                                  progress=False)
    pool = generate_dataset(problem, recycling_solver(), N, folder / "pool.nc", seed=4, ordering="greedy",
                            workers=2, progress=False)
    return folder, problem, sequential, pool


def test_pool_with_two_chains_equals_the_sequential_run(runs):
    _, _, sequential, pool = runs
    assert (sequential.chains, pool.chains) == (1, 2) and pool.backend == "process pool of 2"
    one, two = contents(sequential.path), contents(pool.path)
    assert_same_dataset(one, two)
    assert one["sample"].tolist() == list(range(N))                  # stored in index order
    assert sorted(one["solve_position"].tolist()) == list(range(N))  # solved in sorted order
    assert set(two["solve_chain"].tolist()) == {0, 1}
    first = two["solve_position"][two["solve_chain"] == 0]
    second = two["solve_position"][two["solve_chain"] == 1]
    assert first.max() < second.min()                                # contiguous pieces of the order
    ordering = json.loads(two["attrs"]["ordering"])
    assert ordering["method"] == "greedy" and ordering["fields"] == ["a"]
    assert ordering["path_length"] < ordering["index_path_length"]
    assert json.loads(two["attrs"]["generation"])["chains"] == 2
    assert 0 < pool.solver_share <= 1 and pool.n_solved_now == N


def test_dask_local_cluster_equals_the_pool_run(runs):
    distributed = pytest.importorskip("distributed")
    folder, problem, _, pool = runs
    with distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        report = generate_dataset(problem, recycling_solver(), N, folder / "dask.nc", seed=4, ordering="greedy",
                                  scheduler=cluster.scheduler_address, progress=False)
    assert report.chains == 2 and report.backend.startswith("dask scheduler")
    assert_same_dataset(contents(pool.path), contents(report.path))


def one_line(capsys, *argv):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and len(lines) == 1, err
    return lines[0]


def test_unreachable_or_malformed_scheduler_fails_with_one_line(capsys, tmp_path):
    out = tmp_path / "d.nc"
    base = ["generate", "darcy", "--n", 2, "--resolution", 8, "--out", out, "--quiet", "--scheduler"]
    assert "cannot reach the dask scheduler at tcp://127.0.0.1:1" in one_line(capsys, *base, "tcp://127.0.0.1:1")
    assert "is not a dask address" in one_line(capsys, *base, "no::such::address")
    assert not out.exists() and not (tmp_path / "d.nc.parts").exists()  # nothing left behind


@pytest.mark.parametrize("flags, expected", [
    (["--workers", 0], "--workers must be a positive integer"),
    (["--workers", -3], "--workers must be a positive integer"),
    (["--chains", 0], "--chains must be a positive integer"),
    (["--workers", 2, "--scheduler", "tcp://127.0.0.1:1"], "exclude each other"),
    (["--ordering", "random"], "unknown ordering 'random'"),
])
def test_bad_parallel_settings_get_one_line(capsys, tmp_path, flags, expected):
    line = one_line(capsys, "generate", "darcy", "--n", 2, "--resolution", 8, "--out", tmp_path / "d.nc", "--quiet",
                    *flags)
    assert expected in line
    assert not (tmp_path / "d.nc.parts").exists()


def test_missing_dask_is_one_clear_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the optional extra were not installed
    with pytest.raises(SciMLError, match=r"needs dask.distributed.*pip install 'dask\[distributed\]'"):
        connect_scheduler("tcp://127.0.0.1:8786")


def test_sigkill_of_a_pool_run_then_resume_loses_nothing(tmp_path):
    out = tmp_path / "killed.nc"
    n = 40
    cmd = [sys.executable, "-m", "sciml", "generate", "darcy", "--n", str(n), "--resolution", "32", "--out", str(out),
           "--seed", "7", "--solver", "direct", "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    staging = tmp_path / "killed.nc.parts"
    deadline = time.time() + 90
    while time.time() < deadline:
        if staging.exists() and len([p for p in os.listdir(staging) if p.startswith("sample_")]) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    staged = len([p for p in os.listdir(staging) if p.startswith("sample_")])
    assert 4 <= staged < n
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not staging.exists()
    with h5py.File(out, "r") as f:
        resumed = {k: f[k][()] for k in ("a", "u", "seed", "sample")}
    assert resumed["sample"].tolist() == list(range(n)) and len(set(resumed["seed"].tolist())) == n
    fresh = generate_dataset(get_problem("darcy")(resolution=32), LinearSolver("direct"), n,
                             tmp_path / "fresh.nc", seed=7, progress=False)
    with h5py.File(fresh.path, "r") as f:
        np.testing.assert_array_equal(resumed["a"], f["a"][()])
        np.testing.assert_allclose(resumed["u"], f["u"][()], rtol=1e-5, atol=1e-8)
