"""DCDM: the network, its unsupervised training, the iteration and the drop-in preconditioner."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pyamg.krylov
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch

from sciml.checkpoint import load_model
from sciml.datasets.obstacle_poisson import ObstaclePoisson, pressure_matrix
from sciml.dcdm_training import (
    RitzRightHandSides,
    StencilOperator,
    TrainingSystem,
    dcdm_loss,
    dcdm_residuals,
    lanczos_ritz_vectors,
    obstacle_training_systems,
    save_dcdm,
    train_dcdm,
)
from sciml.errors import SciMLError
from sciml.models.base import build_model
from sciml.models.dcdm_net import DCDMNet
from sciml.solvers import cg_result
from sciml.solvers.deep_conjugate_direction import DCDMPreconditioner, dcdm, dcdm_result

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def trained():
    """A net trained for a few steps at 16^2 on two obstacle layouts (seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = train_dcdm(obstacle_training_systems(16, n_layouts=2, seed=0), steps=60, batch_size=4, n_ritz=32,
                     lr=2e-3, seed=0)
    torch.set_num_threads(threads)
    return run


def _system(size, seed=7, dim=2):
    problem = ObstaclePoisson(resolution=size, dim=dim)
    return problem.assemble(problem.sample_inputs(np.random.default_rng(seed)))


def test_network_is_dimension_generic_and_resolution_independent(one_torch_thread):
    net2, net3 = DCDMNet(dim=2), DCDMNet(dim=3)
    assert 0.1e6 < net3.n_parameters < 0.15e6 and net2.n_parameters < net3.n_parameters
    for shape in [(16, 16), (32, 32), (15, 9)]:  # twice the size, odd sizes
        mask = torch.ones(1, 1, *shape)
        mask[..., 0] = 0
        out = net2(torch.cat([torch.randn(1, 1, *shape), mask], dim=1))
        assert out.shape == (1, 1, *shape) and torch.all(out[..., 0] == 0)
    assert net3(torch.randn(2, 2, 5, 6, 7)).shape == (2, 1, 5, 6, 7)
    assert build_model("dcdm-net", dim=3, width=8).config["width"] == 8
    with pytest.raises(SciMLError, match="out_channels"):
        DCDMNet(out_channels=2)


@pytest.mark.parametrize("shape", [(5, 7), (4, 3, 5)])
def test_stencil_operator_matches_the_sparse_matrix(shape):
    fluid = np.ones(shape, bool)
    fluid[(1,) * len(shape)] = False
    A = pressure_matrix(fluid, h=0.1)
    u = np.random.default_rng(0).standard_normal((3, A.shape[0]))
    Au = StencilOperator(A, shape)(torch.tensor(u).reshape(3, *shape)).reshape(3, -1).numpy()
    assert np.allclose(Au, (A @ u.T).T)
    with pytest.raises(SciMLError, match="stencil"):
        StencilOperator(A + sp.eye(A.shape[0], k=2), shape)


def test_lanczos_ritz_values_approximate_the_low_spectrum():
    A = pressure_matrix(np.ones((12, 12), bool), h=1 / 12)
    values, vectors = lanczos_ritz_vectors(A, 60, rng=0)
    lowest = np.linalg.eigvalsh(A.toarray())[:2]
    assert np.allclose(values[:2], lowest, rtol=1e-6)
    assert vectors.shape == (60, 144) and vectors.dtype == np.float32
    assert np.linalg.norm(A @ vectors[0] - values[0] * vectors[0]) < 1e-3 * values[0]


def test_training_lowers_the_unsupervised_loss(trained):
    losses = trained.losses
    assert len(losses) == 60 and np.all(np.isfinite(losses))
    assert np.mean(losses[-10:]) < 0.85 * np.mean(losses[:10])


def test_dcdm_converges_on_the_true_residual_with_one_matvec_per_iteration(trained, one_torch_thread):
    A, b = _system(32)  # twice the training size
    seen = []
    result = dcdm_result(A, b, model=trained.model, rtol=1e-6, callback=lambda x: seen.append(1))
    assert result.converged and result.message == ""
    assert np.linalg.norm(b - A @ result.x) <= 1e-6 * np.linalg.norm(b)
    assert len(seen) == result.iterations
    extra = result.cg_fallbacks + result.residual_replacements + 2  # start and final true residual
    assert result.matvecs <= result.iterations + extra
    record = result.record()
    assert record["network_calls"] + record["cg_fallbacks"] >= result.iterations and record["network_seconds"] > 0
    x, info = dcdm(A, b, model=trained.model, rtol=1e-6)
    assert info == 0 and np.allclose(x, result.x)


def test_useless_directions_fall_back_to_cg_steps(one_torch_thread):
    net = DCDMNet(dim=2)
    for parameter in net.parameters():
        torch.nn.init.zeros_(parameter)  # q = 0: no direction at all
    A, b = _system(16)
    result = dcdm_result(A, b, model=net, rtol=1e-8)
    assert result.converged
    assert result.cg_fallbacks == result.iterations  # every step is a CG step
    assert result.network_calls == result.iterations - result.nondecreasing_steps
    assert result.iterations <= 2 * cg_result(A, b, rtol=1e-8).iterations
    unconverged = dcdm_result(A, b, model=net, rtol=1e-8, maxiter=3)
    assert not unconverged.converged and "3 CG fallback steps" in unconverged.message


def test_bad_systems_are_refused(one_torch_thread):
    net = DCDMNet(dim=2)
    A, b = _system(8)
    with pytest.raises(SciMLError, match="not symmetric"):
        dcdm_result(A + sp.eye(64, k=1), b, model=net)
    indefinite = sp.diags_array([-1.5, 1.0, -1.5], offsets=[-1, 0, 1], shape=(64, 64)).tocsr()
    with pytest.raises(SciMLError, match="p\\^T A p"):
        dcdm_result(indefinite, np.ones(64), model=net, rtol=1e-10)
    A3, b3 = _system(8, dim=3)  # 512 unknowns: not a 2-D square grid
    with pytest.raises(SciMLError, match="not a 2-D cubic grid"):
        dcdm_result(A3, b3, model=net)
    with pytest.raises(SciMLError, match="network is 2-D"):
        dcdm_result(A3, b3, model=net, grid_shape=(8, 8, 8))
    with pytest.raises(SciMLError, match="M=None"):
        dcdm_result(A, b, model=net, M=sp.eye(64))


def test_preconditioner_drops_into_scipy_and_pyamg(trained, one_torch_thread):
    # the contract: numpy in, numpy out, accepted as M= by flexible methods. How fast they
    # converge depends on how well the net is trained (a few steps here), so the test asks
    # only that each returns a finite iterate no worse than x = 0 and used the network.
    A, b = _system(16)
    pre = DCDMPreconditioner(trained.model, A)
    M = pre.aspreconditioner()
    assert M.shape == A.shape and (M @ b[:, None]).shape == (A.shape[0], 1)
    for solve in (lambda: sla.gcrotmk(A, b, M=M, rtol=1e-6, atol=0.0, maxiter=5),
                  lambda: pyamg.krylov.fgmres(A, b, M=M, tol=1e-6, maxiter=5, restart=20)):
        calls = pre.calls
        x, _ = solve()
        assert np.isfinite(x).all() and np.linalg.norm(b - A @ x) < np.linalg.norm(b)
        assert pre.calls > calls
    assert pre.network_seconds > 0
    with pytest.raises(SciMLError, match="bound to a 256x256"):
        pre.apply(np.ones(10))


def test_checkpoint_round_trip(trained, tmp_path, one_torch_thread):
    path = save_dcdm(tmp_path / "dcdm.pt", trained)
    model, _, meta = load_model(path)
    assert meta["model_name"] == "dcdm-net" and meta["training"]["steps"] == 60
    assert "torch" in meta["format"]["packages"]
    A, b = _system(16)
    from_path = dcdm_result(A, b, model=str(path), rtol=1e-6)
    assert from_path.converged
    assert from_path.iterations == dcdm_result(A, b, model=trained.model, rtol=1e-6).iterations


def test_example_runs(tmp_path):
    done = subprocess.run([sys.executable, str(EXAMPLES / "dcdm_in_scipy.py"), "--steps", "20", "--size", "16"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if "products with A" in line]
    assert len(lines) == 2 and "info 0" in lines[0] and "true relative residual" in lines[1]


class _Exact(DCDMPreconditioner):
    """f(r) = A^-1 r by a sparse direct solve on the coupled cells (and r / a_ii on the rest)."""

    def __init__(self, A):
        super().__init__(DCDMNet(dim=2), A)
        self.lu = sla.splu(sp.csc_matrix(A)[~self.decoupled][:, ~self.decoupled])

    def _direction(self, r):
        z = r / self.diagonal
        z[~self.decoupled] = self.lu.solve(r[~self.decoupled])
        return z


class _Identity(DCDMPreconditioner):
    def _direction(self, r):
        return r.copy()


def test_iteration_with_exact_inverse_and_identity(one_torch_thread):
    # f = A^-1: one step; f = identity: conjugating r against the last directions is CG
    A, b = _system(24)
    exact = dcdm_result(A, b, model=_Exact(A), rtol=1e-8)
    assert exact.converged and exact.iterations == 1 and exact.cg_fallbacks == 0
    cg = cg_result(A, b, rtol=1e-8).iterations
    for n_previous in (1, 2):
        same = dcdm_result(A, b, model=_Identity(DCDMNet(dim=2), A), rtol=1e-8, n_previous=n_previous)
        assert same.converged and abs(same.iterations - cg) <= 2


def test_shared_levels_follow_the_grid(one_torch_thread):
    fixed, shared = DCDMNet(dim=2), DCDMNet(dim=2, levels=0, coarsest=4)
    assert shared.n_parameters == fixed.n_parameters  # one set of level blocks, reused
    for shape in [(4, 4), (9, 20), (64, 64)]:
        assert shared(torch.randn(1, 2, *shape).abs().round()).shape == (1, 1, *shape)
    with pytest.raises(SciMLError, match="levels"):
        DCDMNet(levels=-1)


def test_energy_of_ritz_right_hand_sides_and_energy_loss():
    A = pressure_matrix(np.ones((6, 6), bool), h=1 / 6)
    values, vectors = lanczos_ritz_vectors(A, 36, rng=0)  # the whole spectrum: exact eigenpairs
    rhs = RitzRightHandSides(vectors, low_fraction=0.0, values=values)
    b, energy = rhs.batch_with_energy(3, torch.Generator().manual_seed(0))
    solved = sla.spsolve(sp.csc_matrix(A), b.double().numpy().T).T
    assert np.allclose(energy.numpy(), (b.double().numpy() * solved).sum(axis=1), rtol=1e-4)
    system = TrainingSystem((6, 6), StencilOperator(A, (6, 6), torch.float32), torch.ones(6, 6), rhs)

    class Fixed(torch.nn.Module):  # returns given directions, whatever it is shown
        in_channels = 1

        def __init__(self, q):
            super().__init__()
            self.q = q

        def forward(self, fields):
            return self.q.reshape(fields.shape)

    exact = Fixed(torch.tensor(solved, dtype=torch.float32))
    assert float(dcdm_loss(exact, system, b, energy)) < 1e-4
    steepest = float(dcdm_loss(Fixed(b), system, b, energy))
    assert 0.05 < steepest < 1
    with pytest.raises(SciMLError, match="loss must be"):
        train_dcdm([A], steps=1, loss="l2")


def test_energy_loss_gives_far_better_directions_than_the_residual_loss(trained, one_torch_thread):
    # same data, net and steps as the `trained` fixture (the paper's residual loss); at this
    # tiny scale (60 steps) neither beats CG, but the energy loss is several times better
    energy = train_dcdm(obstacle_training_systems(16, n_layouts=2, seed=0), steps=60, batch_size=4, n_ritz=32,
                        lr=2e-3, low_fraction=0.0, loss="energy", seed=0)
    assert energy.settings["loss"] == "energy" and np.mean(energy.losses[-10:]) < np.mean(energy.losses[:10])
    A, b = _system(16)
    with_energy = dcdm_result(A, b, model=energy.model, rtol=1e-6)
    with_residual = dcdm_result(A, b, model=trained.model, rtol=1e-6)
    assert with_energy.converged and with_energy.iterations < 0.5 * with_residual.iterations


def test_multi_size_training_systems_interleave_the_sizes(one_torch_thread):
    one, two = obstacle_training_systems(8, n_layouts=2, seed=3), obstacle_training_systems([8, 4], n_layouts=2, seed=3)
    assert [A.shape[0] for A in two] == [64, 16, 64, 16]
    assert all((A != B).nnz == 0 for A, B in zip(one, two[::2]))  # one size: the same layouts either way
    run = train_dcdm(two, model=DCDMNet(dim=2, levels=0, coarsest=2), steps=4, batch_size=2, n_ritz=8,
                     loss="energy", low_fraction=0.0)
    assert run.settings["grid_shapes"] == [[8, 8], [4, 4], [8, 8], [4, 4]]
    with pytest.raises(SciMLError, match="at least one resolution"):
        obstacle_training_systems([])


def test_dcdm_residuals_and_exact_energies_of_a_residual_bank(one_torch_thread):
    A, b = _system(16)
    net = _Identity(DCDMNet(dim=2), A)  # DCDM is CG: its residuals are CG's
    seen = []
    result = dcdm_result(A, b, model=net, rtol=1e-6, callback=lambda x: seen.append(b - A @ x))
    bank = dcdm_residuals(net, A, [b])
    assert bank.shape == (result.iterations - 1, 256) and bank.dtype == np.float32
    assert np.allclose(bank[-1], seen[-2] / np.linalg.norm(seen[-2]), atol=1e-6)  # the converged last is left out
    values, vectors = lanczos_ritz_vectors(A, 16, rng=0)
    rhs = RitzRightHandSides(vectors, low_fraction=0.0, values=values)
    system = TrainingSystem((16, 16), StencilOperator(A, (16, 16), torch.float32), torch.ones(16, 16), rhs,
                            residuals=torch.as_tensor(bank), solve=sla.splu(sp.csc_matrix(A)).solve)
    drawn, energy = system.draw(8, torch.Generator().manual_seed(0), residual_fraction=0.5)
    rows = drawn.double().numpy()
    assert sum(any(np.allclose(row, r) for r in bank) for row in rows) == 4
    assert np.allclose(energy.numpy(), (rows * sla.spsolve(sp.csc_matrix(A), rows.T).T).sum(axis=1), rtol=1e-5)


def test_fine_tuning_on_own_residuals_records_its_banks(one_torch_thread):
    pairs = obstacle_training_systems(8, n_layouts=2, seed=0, with_rhs=True)
    matrices = [A for A, _ in pairs]
    assert all((A != B).nnz == 0 for A, B in zip(matrices, obstacle_training_systems(8, n_layouts=2, seed=0)))
    torch.manual_seed(0)
    net = DCDMNet(dim=2, levels=0, coarsest=2)
    run = train_dcdm(matrices, model=net, steps=4, batch_size=4, n_ritz=16, loss="energy", low_fraction=0.0,
                     residual_fraction=0.5, residual_rhs=[[b] for _, b in pairs], residual_rounds=2)
    assert run.settings["residual_fraction"] == 0.5 and run.settings["residual_rhs"] == [1, 1]
    assert all(0 < count <= 2 * 63 for count in run.settings["residuals"])  # <= n - 1 per DCDM run, two rounds
    assert len(run.losses) == 8 and np.all(np.isfinite(run.losses))
    with pytest.raises(SciMLError, match="pass model="):
        train_dcdm(matrices, steps=1, residual_fraction=0.5)
    with pytest.raises(SciMLError, match="residual_fraction"):
        train_dcdm(matrices, model=net, steps=1, residual_fraction=1.5)
    with pytest.raises(SciMLError, match="residual_rounds"):
        train_dcdm(matrices, model=net, steps=1, residual_fraction=0.5, residual_rounds=0)
    with pytest.raises(SciMLError, match="one sequence of right-hand sides per matrix"):
        train_dcdm(matrices, model=net, steps=1, residual_fraction=0.5, residual_rhs=[[pairs[0][1]]])
