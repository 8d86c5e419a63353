"""Recycled (deflated) CG: the true-residual rule, recycling across a slowly varying sequence,
no rebinding for a new right-hand side, refusals, breakdowns and dependent spaces."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sciml.datasets import diffusion_matrix, gaussian_random_field
from sciml.errors import SciMLError
from sciml.solvers import cg_result, make_preconditioner
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.deflated_cg import _Deflation, recycled_cg, recycled_cg_result


def darcy_matrix(resolution, t, theta=0.1):
    """Log-normal Darcy matrix on a path through two GRF samples: A(t) varies slowly with t."""
    shape = (resolution, resolution)
    psi0, psi1 = (gaussian_random_field(shape, 2.0, 3.0, seed) for seed in (0, 1))
    a = np.exp(np.cos(theta * t) * psi0 + np.sin(theta * t) * psi1)
    return diffusion_matrix(a, 1.0 / resolution)


def true_residual(A, b, x):
    return np.linalg.norm(b - A @ x)


@pytest.mark.parametrize("preconditioner", ["none", "jacobi", "amg"])
def test_meets_the_true_residual_rule_and_matches_a_direct_solve(preconditioner):
    space = RecycleSpace(k=6)
    b = np.random.default_rng(0).standard_normal(24 * 24)
    for t in range(3):  # the second and third solves run deflated
        A = darcy_matrix(24, t)
        M = make_preconditioner(preconditioner, A)
        result = recycled_cg_result(A, b, rtol=1e-10, M=M, k=6, recycle=space)
        assert result.converged, result.message
        assert true_residual(A, b, result.x) <= 1e-10 * np.linalg.norm(b)
        assert result.residual_norm == pytest.approx(true_residual(A, b, result.x), rel=1e-6)
        np.testing.assert_allclose(result.x, spla.spsolve(A.tocsc(), b), rtol=1e-6, atol=1e-12)
    assert space.size == 6 and space.method == "rcg"


def test_carried_space_needs_clearly_fewer_iterations_than_plain_cg():
    space = RecycleSpace(k=8)
    b = np.ones(32 * 32)
    plain, recycled, plain_matvecs, recycled_matvecs = [], [], [], []
    for t in range(6):
        A = darcy_matrix(32, t)
        reference = cg_result(A, b, rtol=1e-8)
        result = recycled_cg_result(A, b, rtol=1e-8, k=8, recycle=space)
        assert reference.converged and result.converged
        plain.append(reference.iterations)
        recycled.append(result.iterations)
        plain_matvecs.append(reference.matvecs)
        recycled_matvecs.append(result.matvecs)
    assert recycled[0] == plain[0]  # an empty space is plain CG
    assert sum(recycled[1:]) < 0.8 * sum(plain[1:])
    assert sum(recycled_matvecs[1:]) < 0.85 * sum(plain_matvecs[1:])  # rebinding included


def test_new_right_hand_side_reuses_the_space_without_products():
    A = darcy_matrix(20, 0)
    rng = np.random.default_rng(1)
    space = RecycleSpace(k=5)
    recycled_cg_result(A, rng.standard_normal(400), rtol=1e-9, k=5, recycle=space)
    key = space.key
    same = recycled_cg_result(A, rng.standard_normal(400), rtol=1e-9, k=5, recycle=space)
    assert same.converged and space.key == key == operator_key(A)
    assert same.matvecs == same.iterations + 1  # the iterations and one true-residual check
    B = darcy_matrix(20, 1)
    size = space.size
    changed = recycled_cg_result(B, rng.standard_normal(400), rtol=1e-9, k=5, recycle=space)
    assert changed.converged
    assert changed.matvecs == changed.iterations + 1 + size  # plus one block product A U


def test_a_fixed_matrix_and_preconditioner_carry_m_c_instead_of_applying_m_again():
    """With the same A and M object the space carries M C, so the Rayleigh-Ritz step applies
    M to no extra vector; a new M object for the same matrix selects with the stale M C
    (here equal to the exact one), also without applying M, and gives the same iterations."""
    A = darcy_matrix(20, 0)
    rng = np.random.default_rng(4)
    jacobi = make_preconditioner("jacobi", A)
    applications = []

    def counted_jacobi(v):
        applications.append(1)
        return jacobi @ v

    M = spla.LinearOperator(A.shape, matvec=counted_jacobi, dtype=float)
    carried, fresh = RecycleSpace(k=5), RecycleSpace(k=5)
    for _ in range(3):
        b = rng.standard_normal(400)
        applications.clear()
        result = recycled_cg_result(A, b, rtol=1e-9, k=5, M=M, recycle=carried)
        used = len(applications)
        applications.clear()
        other = recycled_cg_result(A, b, rtol=1e-9, k=5, recycle=fresh,
                                   M=spla.LinearOperator(A.shape, matvec=counted_jacobi, dtype=float))
        assert result.converged and other.converged and result.iterations == other.iterations
        np.testing.assert_allclose(result.x, other.x, rtol=1e-8)
    assert carried.preconditioner is M and carried.MC.shape == carried.C.shape
    assert fresh.preconditioner is None and fresh.MC.shape == fresh.C.shape  # stale: not bound to an M
    assert used == len(applications)  # neither applies M to A W


def test_a_new_matrix_and_preconditioner_select_with_the_stale_m_a_w():
    """After a change of A and M the Rayleigh-Ritz step uses the previous M A W for its W-block:
    k fewer applications of M per solve than applying the new M, the deflation stays exact
    (same true-residual rule), and the iterations stay within one of the exact selection's."""
    spaces = {True: RecycleSpace(k=6), False: RecycleSpace(k=6)}
    totals = {True: 0, False: 0}
    b = np.ones(24 * 24)
    for t in range(5):
        A = darcy_matrix(24, t, theta=0.05)
        for stale in (True, False):
            applications = []
            jacobi = make_preconditioner("jacobi", A)
            M = spla.LinearOperator(A.shape, matvec=lambda v: applications.append(1) or jacobi @ v,
                                    matmat=lambda X: applications.extend([1] * X.shape[1]) or jacobi @ X,
                                    dtype=float)
            result = recycled_cg_result(A, b, rtol=1e-9, k=6, M=M, recycle=spaces[stale], stale_selection=stale)
            assert result.converged and true_residual(A, b, result.x) <= 1e-9 * np.linalg.norm(b)
            extra = len(applications) - result.iterations  # z_0 and, unless the harvest is full, z_last
            assert extra - (6 if t and not stale else 0) in (0, 1)
            totals[stale] += result.iterations
    assert totals[True] <= totals[False] + 4


def test_refuses_a_nonsymmetric_matrix():
    A = darcy_matrix(10, 0).tolil()
    A[0, 1] += 5.0
    with pytest.raises(SciMLError, match="gcrodr"):
        recycled_cg_result(A.tocsr(), np.ones(100))
    with pytest.raises(SciMLError, match="gcrodr"):
        recycled_cg_result(np.triu(np.ones((4, 4))) + 4 * np.eye(4), np.ones(4))


def test_refuses_a_space_of_another_size_or_method():
    space = RecycleSpace(k=4)
    recycled_cg_result(darcy_matrix(10, 0), np.ones(100), rtol=1e-8, k=4, recycle=space)
    with pytest.raises(SciMLError, match="new RecycleSpace"):
        recycled_cg_result(darcy_matrix(12, 0), np.ones(144), recycle=space)
    other = RecycleSpace(k=4)
    other.store(np.eye(100)[:, :2], darcy_matrix(10, 0) @ np.eye(100)[:, :2], "key", method="gcrodr")
    with pytest.raises(SciMLError, match="gcrodr"):
        recycled_cg_result(darcy_matrix(10, 0), np.ones(100), recycle=other)
    with pytest.raises(SciMLError, match="k"):
        recycled_cg_result(darcy_matrix(10, 0), np.ones(100), k=0)


def test_too_small_maxiter_reports_non_convergence():
    A = darcy_matrix(24, 0)
    b = np.ones(576)
    result = recycled_cg_result(A, b, rtol=1e-10, maxiter=5, recycle=RecycleSpace(4), k=4)
    assert not result.converged and result.iterations == 5
    assert "did not converge" in result.message and "maxiter" in result.message
    assert np.isfinite(result.x).all()
    assert result.residual_norm == pytest.approx(true_residual(A, b, result.x))
    x, info = recycled_cg(A, b, rtol=1e-10, maxiter=5)
    assert info == 5 and np.isfinite(x).all()


def test_indefinite_matrix_stops_with_a_message():
    A = sp.diags_array(np.r_[-1.0, np.linspace(1.0, 2.0, 9)]).tocsr()
    result = recycled_cg_result(A, np.eye(10)[0] + 0.1, rtol=1e-10, recycle=RecycleSpace(3), k=3)
    assert not result.converged
    assert "not positive definite" in result.message
    assert np.isfinite(result.x).all()


def test_dependent_directions_are_dropped_and_the_solve_still_converges():
    A = darcy_matrix(16, 0)
    rng = np.random.default_rng(2)
    u, v = rng.standard_normal((2, 256))
    U = np.column_stack([u, v, u + v, 2 * u])
    space = RecycleSpace(k=4)
    space.store(U, A @ U, operator_key(A), method="rcg")
    assert space.size == 2 and space.dropped == 2
    b = rng.standard_normal(256)
    result = recycled_cg_result(A, b, rtol=1e-10, k=4, recycle=space)
    assert result.converged
    np.testing.assert_allclose(result.x, spla.spsolve(A.tocsc(), b), rtol=1e-7)


def test_a_space_spanning_the_solution_needs_no_iteration():
    # b in the span of three eigenvectors: CG ends after three steps, whose directions span the
    # solution; fewer than k directions are found, and the next solve is exact at the start.
    A = sp.diags_array(np.linspace(1.0, 10.0, 50)).tocsr()
    b = np.zeros(50)
    b[[0, 7, 20]] = 1.0
    space = RecycleSpace(k=5)
    first = recycled_cg_result(A, b, rtol=1e-12, k=5, recycle=space)
    assert first.converged and first.iterations == 3 and space.size == 3
    second = recycled_cg_result(A, 2 * b, rtol=1e-12, k=5, recycle=space)
    assert second.converged and second.iterations == 0
    np.testing.assert_allclose(second.x, 2 * b / A.diagonal(), rtol=1e-12)


def test_deflation_drops_non_positive_directions_of_w_a_w():
    space = RecycleSpace(k=3)
    space.U = np.eye(6)[:, :3]
    space.C = np.eye(6)[:, :3] @ np.diag([1.0, 1e-16, -1.0])  # U^T C = diag(1, 1e-16, -1)
    space.key = "bound"
    deflation, dropped, products = _Deflation.from_space(space, 6, np.float64, key="bound")
    assert deflation.size == 1 and dropped == 2 and products == 0
    np.testing.assert_allclose(deflation.W.T @ deflation.AW, np.eye(1))


def test_complex_hermitian_system_and_callback():
    rng = np.random.default_rng(3)
    n = 60
    skew = sp.random_array((n, n), density=0.05, rng=rng)
    A = (sp.diags_array(np.full(n, 4.0)) + 1j * (skew - skew.T)).tocsr()
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    space = RecycleSpace(k=3)
    for right_hand_side in (b, b.conj()):
        seen = []
        result = recycled_cg_result(A, right_hand_side, rtol=1e-10, k=3, recycle=space,
                                    callback=seen.append)
        assert result.converged
        assert true_residual(A, right_hand_side, result.x) <= 1e-10 * np.linalg.norm(b)
        assert len(seen) == result.iterations > 0
        np.testing.assert_allclose(seen[-1], result.x)
    assert np.iscomplexobj(space.U) and space.size == 3


def complex_hermitian_matrix(n, seed):
    skew = sp.random_array((n, n), density=0.05, rng=np.random.default_rng(seed))
    return (sp.diags_array(np.linspace(12.0, 400.0, n)) + 1j * (skew - skew.T)).tocsr()


@pytest.mark.parametrize("case", ["real, jacobi", "complex, no preconditioner"])
def test_projected_matrices_from_the_recurrence_match_explicit_products(monkeypatch, case):
    """F = Z^H A Z and G = (A Z)^H M A Z built from CG's coefficients equal the block products of
    the kept directions, W-blocks included (same A and M: M A W is exact)."""
    import sciml.solvers.deflated_cg as deflated_cg

    captured = []
    original = deflated_cg._rayleigh_ritz
    monkeypatch.setattr(deflated_cg, "_rayleigh_ritz",
                        lambda space, harvest, *rest: captured.append(harvest) or original(space, harvest, *rest))
    A = darcy_matrix(24, 0) if case.startswith("real") else complex_hermitian_matrix(200, 6)
    M = make_preconditioner("jacobi", A) if case.startswith("real") else None
    space = RecycleSpace(k=4)
    rng = np.random.default_rng(5)
    for _ in range(2):
        b = rng.standard_normal(A.shape[0]) * (1 if M is not None else 1 + 1j)
        assert recycled_cg_result(A, b, rtol=1e-9, k=4, M=M, recycle=space).converged
    harvest = captured[-1]
    assert harvest.offset == 4 and harvest.count == 16
    Z, AZ, MAZ = harvest.blocks()
    F, G = deflated_cg._projected_matrices(harvest, MAZ)
    for recurrence, explicit in ((F, Z.conj().T @ AZ), (G, AZ.conj().T @ MAZ)):
        np.testing.assert_allclose(recurrence, explicit, atol=1e-8 * np.abs(explicit).max())
