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
from sciml.errors import DataFileError, SciMLError
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


# ----------------------------------------------------------------------------- sorted chains, solver choice
from types import SimpleNamespace  # noqa: E402

from sciml.generate import cut_chains, order_samples  # noqa: E402
from sciml.solver_choice import choose_solver, resolve_solver  # noqa: E402
from sciml.solvers.ordering import lowpass_features  # noqa: E402
from sciml.dataset_file import sample_seed  # noqa: E402


def test_ordering_features_come_from_the_seeds_one_sample_at_a_time():
    problem = get_problem("darcy")(resolution=16, coefficient="lognormal")
    info = order_samples(problem, 24, root_seed=2, method="greedy")
    assert sorted(info["order"]) == list(range(24)) and info["fields"] == ["a"]
    assert info["path_length"] < info["index_path_length"] and info["seconds"] >= info["sort_seconds"] >= 0
    fields = np.stack([problem.generate_sample(sample_seed(2, i), LinearSolver("direct")).fields["a"]
                       for i in range(24)])
    from sciml.solvers.ordering import ORDERINGS

    expected = ORDERINGS.get("greedy")(lowpass_features(fields))  # one field: its scaling changes no distance rank
    assert info["order"] == expected.tolist()
    none = order_samples(problem, 5, root_seed=2, method="none")
    assert none["order"] == [0, 1, 2, 3, 4] and none["seconds"] == 0.0


def test_chains_are_contiguous_and_cover_the_order():
    assert cut_chains(list(range(7)), 3) == [[0, 1], [2, 3, 4], [5, 6]]
    assert cut_chains([4, 2], 5) == [[4], [2]]
    assert cut_chains([], 2) == []


def test_in_process_chains_give_the_same_data_and_record_the_order(tmp_path):
    problem = get_problem("darcy")(resolution=12, coefficient="lognormal")
    solver = LinearSolver("gmres", preconditioner="ilu", rtol=1e-10)
    one = generate_dataset(problem, solver, 6, tmp_path / "one.nc", seed=1, ordering="curve", progress=False)
    three = generate_dataset(problem, solver, 6, tmp_path / "three.nc", seed=1, ordering="curve", chains=3,
                             progress=False)
    assert (one.chains, three.chains) == (1, 3)
    with h5py.File(one.path, "r") as a, h5py.File(three.path, "r") as b:
        assert a["sample"][()].tolist() == list(range(6))
        np.testing.assert_array_equal(a["solve_position"][()], b["solve_position"][()])
        assert sorted(b["solve_chain"][()].tolist()) == [0, 0, 1, 1, 2, 2]
        np.testing.assert_allclose(a["u"][()], b["u"][()], rtol=0, atol=1e-7 * np.abs(a["u"][()]).max())
        assert (a["solver_seconds"][()] <= a["sample_seconds"][()]).all()
        assert '"method": "curve"' in a.attrs["ordering"]
    assert 0 < one.solver_share <= 1 and "in the solver" in one.time_line()


def test_a_solver_that_cannot_be_copied_runs_in_one_chain_only(tmp_path):
    with pytest.raises(SciMLError, match="cannot be copied into chains"):
        generate_dataset(get_problem("darcy")(resolution=8), FailEveryThird(), 4, tmp_path / "x.nc", chains=2,
                         progress=False)
    assert not (tmp_path / "x.nc.parts").exists()


def fake_problem(dim, resolution, spd):
    return SimpleNamespace(name="fake", dim=dim, grid_shape=(resolution,) * dim, symmetric_positive_definite=spd)


@pytest.mark.parametrize("dim, resolution, spd, method, ordering", [
    (1, 1000, False, "direct", "none"),
    (2, 64, False, "direct", "none"),
    (2, 64, True, "direct", "none"),
    (2, 1024, True, "cg", "none"),
    (3, 32, True, "cg", "none"),
    (3, 32, False, "gmres", "none"),
])
def test_auto_rules(dim, resolution, spd, method, ordering):
    choice = choose_solver(fake_problem(dim, resolution, spd))
    assert (choice["solver"]["method"], choice["ordering"]) == (method, ordering)
    assert choice["rule"].startswith("auto: ")


def test_auto_adds_amg_to_cg_on_large_spd_problems():
    assert choose_solver(fake_problem(3, 32, True))["solver"]["preconditioner"] == "none"
    assert choose_solver(fake_problem(3, 64, True))["solver"] == {"method": "cg", "preconditioner": "amg"}


def test_skr_and_named_methods():
    darcy = get_problem("darcy")(resolution=16)
    assert resolve_solver(fake_problem(3, 16, False), "skr")["solver"] == {
        "method": "gcrodr", "preconditioner": "ilu", "m": 60, "k": 20}
    assert resolve_solver(fake_problem(3, 16, True), "skr")["solver"]["method"] == "rcg"
    assert resolve_solver(darcy, "cg")["solver"] == {"method": "cg", "preconditioner": "amg"}
    assert resolve_solver(darcy, "gmres", preconditioner="ilu")["solver"] == {"method": "gmres", "preconditioner": "ilu"}
    assert resolve_solver(darcy, "gcrodr")["ordering"] == "curve"
    with pytest.raises(SciMLError, match="unknown ordering"):
        resolve_solver(darcy, "auto", ordering="spiral")
