"""SOR and SSOR-preconditioned CG (sciml.solvers.sor): against dense formulas, Young's theory, bad input."""


import numpy as np
import pyamg
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from sciml.datasets.relaxation_sequences import ShiftedLaplacianSequence, dirichlet_laplacian
from sciml.errors import SciMLError
from sciml.solvers.sor import (
    RelaxationMatrix,
    SSORPreconditioner,
    optimal_sor_omega,
    sor,
    sor_result,
    ssor_cg,
    ssor_cg_result,
)


def random_spd(n, rng):
    """A sparse-ish symmetric positive definite matrix with positive diagonal, not an M-matrix."""
    B = sp.random_array((n, n), density=0.2, random_state=rng)
    return sp.csr_array(B @ B.T + n * 0.05 * sp.identity(n))


def test_sor_iterates_are_the_dense_splitting(rng):
    n = 30
    A = random_spd(n, rng)
    b = rng.standard_normal(n)
    omega = 1.3
    iterates = []
    result = sor_result(A, b, rtol=1e-10, maxiter=5, omega=omega, callback=iterates.append)
    dense = A.toarray()
    M = np.diag(np.diag(dense)) / omega + np.tril(dense, -1)
    x = np.zeros(n)
    for k in range(5):
        x = x + np.linalg.solve(M, b - dense @ x)
        np.testing.assert_allclose(iterates[k], x, rtol=1e-10, atol=1e-12)
    assert result.iterations == 5 and result.matvecs == 5 and len(result.residual_history) == 6
    assert result.residual_norm == pytest.approx(np.linalg.norm(b - dense @ x), rel=1e-9)


def test_sor_converges_on_the_true_residual_and_warm_starts(rng):
    A = dirichlet_laplacian((12, 12)) + 0.1 * sp.identity(144)
    b = rng.standard_normal(144)
    result = sor_result(A, b, rtol=1e-9, maxiter=5000, omega=1.6)
    assert result.converged and result.message == "" and result.info == 0
    assert np.linalg.norm(b - A @ result.x) <= 1e-9 * np.linalg.norm(b)
    near = sor_result(A, b, result.x + 1e-6 * rng.standard_normal(144), rtol=1e-9, maxiter=5000,
                      omega=1.6)
    assert near.converged and near.iterations < result.iterations
    exact = sor_result(A, b, result.x, rtol=1e-8, maxiter=5000, omega=1.6)
    assert exact.iterations == 0 and exact.converged
    x, info = sor(A, b, rtol=1e-9, maxiter=5000, omega=1.6)
    assert info == 0 and np.array_equal(x, result.x)


def test_young_optimal_omega_gives_the_optimal_spectral_radius():
    # Laplacian + c I in natural ordering is consistently ordered: rho(SOR at omega*) = omega* - 1,
    # the smallest over omega (Young 1971).
    sequence = ShiftedLaplacianSequence((6, 7), "high", length=1)
    shift = 0.05
    A = (sequence.laplacian + shift * sp.identity(42)).toarray()
    D, L = np.diag(np.diag(A)), np.tril(A, -1)
    jacobi = np.max(np.abs(np.linalg.eigvals(np.eye(42) - np.linalg.solve(D, A))))
    assert jacobi == pytest.approx(sequence.jacobi_radius(shift), rel=1e-10)

    def radius(omega):
        M = D / omega + L
        return np.max(np.abs(np.linalg.eigvals(np.eye(42) - np.linalg.solve(M, A))))

    best = sequence.optimal_sor_omega(shift)
    assert radius(best) == pytest.approx(best - 1.0, abs=2e-3)
    assert radius(best) < min(radius(best - 0.05), radius(best + 0.05))
    assert optimal_sor_omega(0.0) == 1.0


def test_ssor_preconditioner_is_the_dense_formula_and_symmetric(rng):
    n = 25
    A = random_spd(n, rng)
    omega = 1.4
    dense = A.toarray()
    D, L, U = np.diag(np.diag(dense)), np.tril(dense, -1), np.triu(dense, 1)
    M = (D + omega * L) @ np.linalg.solve(D, D + omega * U) / (omega * (2.0 - omega))
    operator = SSORPreconditioner(A, omega).aspreconditioner()
    applied = np.column_stack([operator @ e for e in np.eye(n)])
    np.testing.assert_allclose(applied, np.linalg.inv(M), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(applied, applied.T, rtol=1e-9, atol=1e-12)


def test_ssor_cg_beats_plain_cg_and_plugs_into_scipy_and_pyamg(rng):
    A = dirichlet_laplacian((30, 30))
    b = rng.standard_normal(900)
    plain = sla.cg(A, b, rtol=1e-8, maxiter=2000)
    result = ssor_cg_result(A, b, rtol=1e-8, omega=1.7)
    assert result.converged and result.method == "ssor_cg"
    assert np.linalg.norm(b - A @ result.x) <= 1e-8 * np.linalg.norm(b)
    counts = []
    sla.cg(A, b, rtol=1e-8, maxiter=2000, callback=lambda xk: counts.append(1))
    assert result.iterations < len(counts) and plain[1] == 0
    M = SSORPreconditioner(A, 1.7).aspreconditioner()
    x, info = sla.cg(A, b, rtol=1e-8, M=M)
    assert info == 0
    residuals = []
    x, info = pyamg.krylov.cg(A, b, tol=1e-8, M=M, residuals=residuals)
    assert info == 0 and len(residuals) - 1 <= result.iterations + 2
    x, info = ssor_cg(A, b, rtol=1e-8, omega=1.7)
    assert info == 0 and np.array_equal(x, result.x)


def test_capped_and_diverging_solves_say_so():
    A = dirichlet_laplacian((10, 10))
    capped = sor_result(A, np.ones(100), rtol=1e-12, maxiter=7, omega=1.2)
    assert not capped.converged and capped.iterations == 7 and capped.info == 7
    assert "budget 7" in capped.message and "\n" not in capped.message
    indefinite = np.array([[1.0, 3.0], [3.0, 1.0]])  # positive diagonal, SOR diverges
    diverged = sor_result(indefinite, np.ones(2), rtol=1e-8, maxiter=10000, omega=1.0)
    assert not diverged.converged and "diverged" in diverged.message
    assert diverged.iterations < 10000 and np.isfinite(diverged.residual_norm)
    short = ssor_cg_result(A, np.ones(100), rtol=1e-12, maxiter=2, omega=1.2)
    assert not short.converged and short.message.startswith("ssor_cg did not converge")


@pytest.mark.parametrize("matrix, match", [
    (np.array([[0.0, 1.0], [1.0, 2.0]]), "positive diagonal"),
    (np.array([[-2.0, 1.0], [1.0, 2.0]]), "positive diagonal"),
    (np.array([[2.0, 1.0], [1.0, 2.0]]) * 1j, "real matrices"),
])
def test_sor_refuses_matrices_where_it_is_undefined(matrix, match):
    with pytest.raises(SciMLError, match=match) as error:
        sor_result(matrix, np.ones(2))
    assert "\n" not in str(error.value)


def test_ssor_refuses_nonsymmetric_matrices_and_bad_omega():
    nonsymmetric = np.array([[2.0, 1.0], [0.0, 2.0]])
    assert sor_result(nonsymmetric, np.ones(2), rtol=1e-10).converged  # SOR itself is fine
    for call in (lambda: ssor_cg_result(nonsymmetric, np.ones(2)),
                 lambda: SSORPreconditioner(nonsymmetric, 1.0)):
        with pytest.raises(SciMLError, match="symmetric") as error:
            call()
        assert "\n" not in str(error.value)
    spd = np.array([[2.0, -1.0], [-1.0, 2.0]])
    for omega in (0.0, 2.0, -0.5, 2.5, float("nan"), True, "1.5"):
        with pytest.raises(SciMLError, match=r"open interval \(0, 2\)"):
            sor_result(spd, np.ones(2), omega=omega)
        with pytest.raises(SciMLError, match=r"open interval \(0, 2\)"):
            SSORPreconditioner(spd, omega)


def test_relaxation_matrix_is_reused_and_checked_once():
    A = dirichlet_laplacian((5, 5))
    prepared = RelaxationMatrix(A)
    assert RelaxationMatrix(prepared).matrix is prepared.matrix
    assert prepared.is_symmetric()
    b = np.ones(25)
    assert np.array_equal(sor_result(prepared, b, rtol=1e-10, omega=1.5).x,
                          sor_result(A, b, rtol=1e-10, omega=1.5).x)
