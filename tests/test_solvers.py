"""Conformance of every (method, preconditioner) pair to the one true-residual rule,
plus the failure, input and convention cases of sciml.solvers."""

import json

import numpy as np
import pyamg
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from sciml.errors import SciMLError, UnknownNameError
from sciml.solvers import (
    METHODS,
    PRECONDITIONERS,
    LinearSolver,
    SolveResult,
    cg,
    cg_result,
    direct,
    direct_result,
    gmres,
    gmres_result,
    make_preconditioner,
)

RTOL = 1e-8
KRYLOV = ("cg", "gmres")
PAIRS = [(m, p) for m in METHODS.names() for p in PRECONDITIONERS.names()
         if m != "direct" or p == "none"]


def laplacian(n):
    """2-D 5-point Laplacian on an n x n grid (Dirichlet), CSR."""
    T = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n))
    eye = sp.eye_array(n)
    return sp.csr_array(sp.kron(T, eye) + sp.kron(eye, T))


@pytest.fixture
def spd():
    """Seeded SPD system: 16x16 Laplacian plus a random positive diagonal shift."""
    rng = np.random.default_rng(0)
    A = sp.csr_array(laplacian(16) + sp.diags_array(rng.uniform(0.01, 0.1, 256)))
    return A, rng.standard_normal(256)


def true_relative_residual(A, b, x):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


@pytest.mark.parametrize("method,preconditioner", PAIRS)
def test_every_pair_meets_the_true_residual_rule(spd, method, preconditioner):
    A, b = spd
    result = LinearSolver(method, preconditioner, rtol=RTOL).solve(A, b)
    independent = true_relative_residual(A, b, result.x)
    assert result.converged and result.info == 0 and result.message == ""
    assert independent <= RTOL
    assert result.relative_residual == pytest.approx(independent, rel=1e-12)
    assert result.residual_norm == pytest.approx(independent * np.linalg.norm(b), rel=1e-12)
    assert result.residual_history[0] == pytest.approx(np.linalg.norm(b))
    assert result.residual_history[-1] == result.residual_norm
    assert result.iterations >= 1 and result.seconds > 0 and result.method == method
    if method in KRYLOV:
        assert result.matvecs >= result.iterations
    record = result.record()
    assert set(record) == {"iterations", "matvecs", "relative_residual", "residual_norm",
                           "seconds", "converged", "method"}
    assert json.loads(json.dumps(record)) == record


@pytest.mark.parametrize("method,preconditioner",
                         [("gmres", "none"), ("gmres", "jacobi"), ("gmres", "ilu"),
                          ("gmres", "amg"), ("direct", "none")])
def test_complex_non_hermitian_system(method, preconditioner):
    rng = np.random.default_rng(1)
    A = sp.csr_array(laplacian(12) + 1j * sp.diags_array(rng.uniform(0.5, 1.0, 144)))
    b = rng.standard_normal(144) + 1j * rng.standard_normal(144)
    result = LinearSolver(method, preconditioner, rtol=1e-10).solve(A, b)
    assert result.converged and result.x.dtype == np.complex128
    assert true_relative_residual(A, b, result.x) <= 1e-10


def test_cg_on_complex_hermitian_system():
    rng = np.random.default_rng(2)
    skew = sp.random_array((144, 144), density=0.02, rng=rng)
    # Hermitian; the skew part has norm below 1, so the shifted Laplacian stays positive definite
    A = sp.csr_array(laplacian(12) + sp.eye_array(144) + 0.1j * (skew - skew.T))
    b = rng.standard_normal(144) + 1j * rng.standard_normal(144)
    x, info = cg(A, b, rtol=1e-10)
    assert info == 0 and true_relative_residual(A, b, x) <= 1e-10


def test_scipy_cg_false_convergence_is_caught_and_repaired(spd):
    """From a huge x0 scipy's recursive residual says 'converged' while the true residual
    is far above the tolerance; our cg restarts on the true residual and gets there."""
    A, b = spd
    x0 = 1e8 * np.random.default_rng(3).standard_normal(256)
    x_scipy, info_scipy = sla.cg(A, b, x0=x0, rtol=1e-10)
    assert info_scipy == 0 and true_relative_residual(A, b, x_scipy) > 10 * 1e-10
    for solve in (cg_result, gmres_result):
        result = solve(A, b, x0=x0, rtol=1e-10)
        assert result.converged
        assert true_relative_residual(A, b, result.x) <= 1e-10
        assert result.relative_residual == pytest.approx(true_relative_residual(A, b, result.x))


@pytest.mark.parametrize("solve", [cg_result, gmres_result])
def test_budget_exhausted_is_reported(spd, solve):
    A, b = spd
    result = solve(A, b, rtol=1e-10, maxiter=2)
    assert not result.converged and result.iterations == 2 and result.info == 2
    assert result.relative_residual > 1e-10
    assert "maxiter" in result.message and "preconditioner='amg'" in result.message
    assert "\n" not in result.message
    x, info = (cg if solve is cg_result else gmres)(A, b, rtol=1e-10, maxiter=2)
    assert info == 2 and np.array_equal(x, result.x)
    with pytest.raises(SciMLError, match="did not converge"):
        result.raise_if_unconverged()


def test_cg_breakdown_on_indefinite_matrix_is_reported():
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    b = np.array([1.0, 0.0])
    result = cg_result(A, b)
    assert not result.converged and "method='gmres'" in result.message
    assert np.isfinite(result.x).all()
    assert gmres_result(A, b, rtol=1e-12).converged


def test_zero_right_hand_side_gives_zero(spd):
    A, _ = spd
    for solve in (cg_result, gmres_result, direct_result):
        result = solve(A, np.zeros(256), x0=np.ones(256))
        assert result.converged and not result.x.any()
        assert result.iterations == 0 and result.relative_residual == 0.0


def test_callback_sees_every_iterate(spd):
    A, b = spd
    seen = []
    result = cg_result(A, b, rtol=RTOL, callback=lambda xk: seen.append(xk.copy()))
    assert len(seen) == result.iterations
    assert true_relative_residual(A, b, seen[-1]) == pytest.approx(result.relative_residual)
    cycles = []
    result = gmres_result(A, b, rtol=RTOL, restart=5, callback=lambda xk: cycles.append(xk.copy()))
    assert len(cycles) == -(-result.iterations // 5)  # one call per restart cycle
    np.testing.assert_array_equal(cycles[-1], result.x)


def test_accepts_dense_arrays_operators_and_sparse_matrices(spd):
    A, b = spd
    for operand in (A.toarray(), sla.aslinearoperator(A), sp.csr_matrix(A), sp.coo_array(A)):
        x, info = cg(operand, b.reshape(-1, 1), rtol=RTOL)
        assert info == 0 and x.shape == (256,) and true_relative_residual(A, b, x) <= RTOL
    x, info = direct(A.toarray(), b, rtol=RTOL)
    assert info == 0


def test_scipy_convention_functions_are_derived(spd):
    A, b = spd
    x, info = gmres(A, b, rtol=RTOL, restart=20)
    assert info == 0 and np.array_equal(x, gmres_result(A, b, rtol=RTOL, restart=20).x)
    assert cg.__name__ == "cg" and "(x, info)" in cg.__doc__


def test_amg_preconditioner_works_in_pyamg_fgmres(spd):
    A, b = spd
    M = make_preconditioner(("amg", {"max_coarse": 20}), A)
    assert isinstance(M, sla.LinearOperator)
    residuals = []
    x, info = pyamg.krylov.fgmres(A, b, tol=1e-10, M=M, residuals=residuals)
    assert info == 0 and true_relative_residual(A, b, x) <= 1e-9
    assert len(residuals) < 20


def test_linear_solver_settings_round_trip():
    solver = LinearSolver("gmres", ("ilu", {"drop_tol": 1e-3}), rtol=1e-6, maxiter=500, restart=30)
    settings = json.loads(json.dumps(solver.settings()))
    assert settings == {"method": "gmres", "preconditioner": {"name": "ilu", "drop_tol": 1e-3},
                        "rtol": 1e-6, "atol": 0.0, "maxiter": 500, "options": {"restart": 30}}
    assert LinearSolver.from_settings(settings).settings() == settings


def one_line_error(exc_type, call, *args, **kwargs):
    with pytest.raises(exc_type) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert message and "\n" not in message
    return message


def test_bad_inputs_raise_one_line_errors(spd):
    A, b = spd
    assert "square" in one_line_error(SciMLError, cg, sp.csr_array(np.ones((3, 4))), np.ones(3))
    assert "length 256" in one_line_error(SciMLError, gmres, A, np.ones(5))
    A_nan = A.copy()
    A_nan.data[7] = np.nan
    assert "NaN" in one_line_error(SciMLError, cg, A_nan, b)
    assert "NaN" in one_line_error(SciMLError, direct, A, np.full(256, np.inf))
    assert "rtol" in one_line_error(SciMLError, cg, A, b, rtol=-1.0)
    assert "atol" in one_line_error(SciMLError, cg, A, b, atol=-1.0)
    assert "maxiter" in one_line_error(SciMLError, gmres, A, b, maxiter=0)
    assert "restart" in one_line_error(SciMLError, gmres, A, b, restart=0)
    assert "sparse matrix" in one_line_error(SciMLError, direct, sla.aslinearoperator(A), b)
    assert "LinearSolver" in one_line_error(SciMLError, cg, A, b, M="amg")
    assert "LinearOperator" in one_line_error(SciMLError, make_preconditioner, "ilu",
                                              sla.aslinearoperator(A))
    zero_diagonal = np.array([[0.0, 1.0], [1.0, 2.0]])
    assert "row 0" in one_line_error(SciMLError, make_preconditioner, "jacobi", zero_diagonal)
    assert "singular" in one_line_error(SciMLError, direct, np.zeros((2, 2)), np.ones(2))


def test_bad_names_and_options_fail_at_construction():
    assert "cg, direct, gcrodr, gmres, rcg" in one_line_error(UnknownNameError, LinearSolver, "bicgstab")
    assert "amg, ic0, ilu, jacobi, none" in one_line_error(UnknownNameError, LinearSolver, "cg", "ssor")
    assert "restart" in one_line_error(SciMLError, LinearSolver, "cg", restart=10)
    assert "fill_factor" in one_line_error(SciMLError, LinearSolver, "cg", ("ilu", {"fill": 2}))
    assert "max_coarse" in one_line_error(SciMLError, LinearSolver, "cg", {"name": "amg", "x": 1})
    assert "no preconditioner" in one_line_error(SciMLError, LinearSolver, "direct", "amg")
    assert "settings" in one_line_error(SciMLError, LinearSolver.from_settings, {"solver": "cg"})


def test_solve_result_info_follows_scipy():
    result = SolveResult(np.zeros(1), False, 0, 1, 1.0, 1.0, [1.0, 1.0], 1e-3, "cg", "failed")
    assert result.info == 1
    assert SolveResult(np.zeros(1), True, 3, 4, 0.0, 0.0, [1.0, 0.0], 1e-3, "cg").info == 0


def test_non_finite_preconditioner_output_is_reported(spd):
    A, b = spd
    M = sla.LinearOperator(A.shape, matvec=lambda v: np.full_like(v, np.inf), dtype=float)
    result = gmres_result(A, b, M=M)
    assert not result.converged and "non-finite" in result.message
    assert np.isfinite(result.x).all()


def test_quick_benchmark_suite_runs_and_every_row_meets_the_rule(tmp_path):
    from sciml.bench_solvers import format_table, run

    rows = run(quick=True, out_dir=str(tmp_path))
    assert all(row["converged"] and row["relative_residual"] <= 1e-8 for row in rows)
    assert len(rows) == 2 * 7
    assert json.loads((tmp_path / "bench_solvers.json").read_text())["rows"] == rows
    assert "pyamg.solve(accel='cg')" in format_table(rows)


def test_ic0_is_incomplete_cholesky_without_fill_on_a_3d_stencil():
    T = sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(6, 6))
    eye = sp.eye_array(6)
    A = sp.csr_array(sp.kron(sp.kron(T, eye), eye) + sp.kron(sp.kron(eye, T), eye) + sp.kron(sp.kron(eye, eye), T))
    M = make_preconditioner("ic0", A)
    # M^-1 is the inverse of (D + L) D^-1 (D + L^T) with L = tril(A, -1) and the recurrence's D
    lower = sp.tril(A, -1, format="csr")
    d = np.empty(A.shape[0])
    for i in range(A.shape[0]):
        row = slice(lower.indptr[i], lower.indptr[i + 1])
        d[i] = A[i, i] - np.sum(lower.data[row] ** 2 / d[lower.indices[row]])
    factor = lower + sp.diags_array(d)
    x = np.random.default_rng(0).standard_normal(A.shape[0])
    assert np.allclose(M @ (factor @ ((factor.T @ x) / d)), x, rtol=1e-12, atol=1e-12)
    b = np.random.default_rng(1).standard_normal(A.shape[0])
    assert cg_result(A, b, rtol=RTOL, M=M).iterations < cg_result(A, b, rtol=RTOL).iterations


def test_ic0_refuses_a_pattern_that_needs_fill_and_a_non_positive_pivot():
    nine_point = sp.csr_array(laplacian(4) + sp.diags_array([-0.1], offsets=[5], shape=(16, 16))
                              + sp.diags_array([-0.1], offsets=[-5], shape=(16, 16)))
    with pytest.raises(SciMLError, match="fill-in"):
        make_preconditioner("ic0", nine_point)
    with pytest.raises(SciMLError, match="pivot"):
        make_preconditioner("ic0", np.array([[1.0, 2.0], [2.0, 1.0]]))
