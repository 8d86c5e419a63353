"""GCRO-DR(m, k) with a caller-held recycle space: convergence on the true residual, real
and complex systems, recycling across a sequence, rebinding, breakdowns and LinearSolver."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from sciml.errors import SciMLError
from sciml.solvers import (
    LinearSolver,
    RecycleSpace,
    gcrodr,
    gcrodr_result,
    make_preconditioner,
    operator_key,
)


def laplacian(nx, ny):
    """5-point Laplacian on an nx x ny grid of the unit square (Dirichlet), CSR."""
    def second(n):
        return sp.diags_array([-1.0, 2.0, -1.0], offsets=[-1, 0, 1], shape=(n, n)) * (n + 1) ** 2
    return sp.csr_array(sp.kron(second(nx), sp.eye_array(ny)) + sp.kron(sp.eye_array(nx), second(ny)))


def convection_diffusion(n, wind):
    """-Lap u + wind (u_x + u_y / 2) by central differences: real and nonsymmetric."""
    first = sp.diags_array([-1.0, 1.0], offsets=[-1, 1], shape=(n, n)) * (n + 1) / 2
    eye = sp.eye_array(n)
    return sp.csr_array(laplacian(n, n) + wind * (sp.kron(first, eye) + 0.5 * sp.kron(eye, first)))


def helmholtz(n, kappa):
    """-Lap u - kappa^2 u with a first-order absorbing term on the boundary cells:
    complex symmetric, non-Hermitian and indefinite."""
    edge = np.zeros((n, n), dtype=bool)
    edge[[0, -1], :] = edge[:, [0, -1]] = True
    absorbing = sp.diags_array(edge.ravel().astype(float)) * (1j * kappa * (n + 1))
    return sp.csr_array(laplacian(n, n) - kappa**2 * sp.eye_array(n * n) - absorbing)


def relative_residual(A, b, x):
    return np.linalg.norm(b - A @ x) / np.linalg.norm(b)


def rebinding_products(result):
    """Applications of A beyond Arnoldi steps and true-residual checks (history: the start
    residual, one estimate per step, one true residual per cycle); 0 when U, C are reused."""
    return result.matvecs - (len(result.residual_history) - 1)


def test_nonsymmetric_real_system_meets_the_rule_equals_a_direct_solve_and_stays_real():
    A = convection_diffusion(24, wind=20.0)
    b = np.random.default_rng(0).standard_normal(A.shape[0])
    space = RecycleSpace(k=8)
    result = gcrodr_result(A, b, rtol=1e-10, m=25, recycle=space)
    assert result.converged and result.message == "" and result.method == "gcrodr"
    assert relative_residual(A, b, result.x) <= 1e-10
    assert result.relative_residual == pytest.approx(relative_residual(A, b, result.x), rel=1e-12)
    exact = sla.spsolve(sp.csc_array(A), b)
    assert np.linalg.norm(result.x - exact) <= 1e-7 * np.linalg.norm(exact)
    assert space.size == 8 and space.U.dtype == np.float64 and space.key == operator_key(A)
    assert np.allclose(space.C.T @ space.C, np.eye(8), atol=1e-12)
    assert np.allclose(A @ space.U, space.C, atol=1e-8 * np.abs(space.C).max())
    x, info = gcrodr(A, b, rtol=1e-10, m=25, k=8)
    assert info == 0 and relative_residual(A, b, x) <= 1e-10


def test_complex_helmholtz_with_absorbing_boundary():
    A = helmholtz(24, kappa=8.0)
    rng = np.random.default_rng(1)
    b = rng.standard_normal(A.shape[0]) + 1j * rng.standard_normal(A.shape[0])
    space = RecycleSpace(k=10)
    result = gcrodr_result(A, b, rtol=1e-10, m=30, recycle=space)
    assert result.converged and result.x.dtype == np.complex128
    assert relative_residual(A, b, result.x) <= 1e-10
    exact = sla.spsolve(sp.csc_array(A), b)
    assert np.linalg.norm(result.x - exact) <= 1e-7 * np.linalg.norm(exact)
    assert space.U.dtype == np.complex128 and space.size == 10
    # the next wavenumber starts from this space and converges too
    A_next = helmholtz(24, kappa=8.05)
    following = gcrodr_result(A_next, b, rtol=1e-10, m=30, recycle=space)
    assert following.converged and relative_residual(A_next, b, following.x) <= 1e-10


def test_carried_space_needs_clearly_fewer_matvecs_on_a_slowly_changing_sequence():
    """Indefinite shifted Laplacians L - c_t I (a few negative eigenvalues), c_t = 30 + t/2,
    new random right-hand side each time, n = 2050: deflating the recycled directions saves
    about 40% of the applications of A from the second system on."""
    L = laplacian(50, 41)
    rng = np.random.default_rng(0)
    systems = [(sp.csr_array(L - (30.0 + 0.5 * t) * sp.eye_array(L.shape[0])),
                rng.standard_normal(L.shape[0])) for t in range(5)]
    space = RecycleSpace(k=10)
    carried, fresh = [], []
    for A, b in systems:
        with_space = gcrodr_result(A, b, rtol=1e-8, m=30, recycle=space)
        without = gcrodr_result(A, b, rtol=1e-8, m=30, k=10)
        assert with_space.converged and without.converged
        assert relative_residual(A, b, with_space.x) <= 1e-8
        carried.append(with_space.matvecs)
        fresh.append(without.matvecs)
    assert carried[0] == fresh[0]  # the first system starts from an empty space either way
    assert sum(carried[1:]) < 0.7 * sum(fresh[1:]), (carried, fresh)


def test_same_matrix_new_right_hand_side_reuses_u_and_c_without_products():
    A = convection_diffusion(20, wind=10.0)
    rng = np.random.default_rng(2)
    space = RecycleSpace(k=6)
    first = gcrodr_result(A, rng.standard_normal(400), rtol=1e-9, m=20, recycle=space)
    assert first.converged and rebinding_products(first) == 0  # empty space: nothing to bind
    again = gcrodr_result(A, rng.standard_normal(400), rtol=1e-9, m=20, recycle=space)
    assert again.converged and rebinding_products(again) == 0
    A_new = convection_diffusion(20, wind=10.5)
    rebound = gcrodr_result(A_new, rng.standard_normal(400), rtol=1e-9, m=20, recycle=space)
    assert rebound.converged and rebinding_products(rebound) == 6  # C = A U, one block product
    assert space.key == operator_key(A_new)


def test_incompatible_spaces_and_sizes_are_refused_with_one_line():
    A = convection_diffusion(10, wind=5.0)
    b = np.ones(100)
    space = RecycleSpace(k=4)
    gcrodr_result(A, b, m=10, recycle=space)
    checks = [
        (dict(A=convection_diffusion(12, 5.0), b=np.ones(144), recycle=space), "144 unknowns"),
        (dict(A=A, b=b, k=6, recycle=space), "exceeds"),
        (dict(A=A, b=b, m=4, k=4), "m > k"),
        (dict(A=A, b=b, m=0), "integer >= 1"),
        (dict(A=A, b=b, recycle=[]), "RecycleSpace"),
    ]
    for arguments, expected in checks:
        with pytest.raises(SciMLError) as caught:
            gcrodr_result(**arguments)
        assert expected in str(caught.value) and "\n" not in str(caught.value)
    other = RecycleSpace(k=4)
    other.store(np.eye(100)[:, :2], np.eye(100)[:, :2], key="x", method="another")
    with pytest.raises(SciMLError, match="another"):
        gcrodr_result(A, b, m=10, recycle=other)


def test_right_ilu_preconditioning_converges_on_the_true_residual():
    A = convection_diffusion(30, wind=40.0)
    b = np.random.default_rng(3).standard_normal(900)
    M = make_preconditioner(("ilu", {"drop_tol": 1e-2}), A)
    space = RecycleSpace(k=10)
    preconditioned = gcrodr_result(A, b, rtol=1e-10, m=30, M=M, recycle=space)
    plain = gcrodr_result(A, b, rtol=1e-10, m=30, k=10)
    assert preconditioned.converged and relative_residual(A, b, preconditioned.x) <= 1e-10
    assert preconditioned.iterations < plain.iterations / 2
    assert space.key == operator_key(A)  # U in the solution variable: the space is bound to A alone
    again = gcrodr_result(A, b[::-1].copy(), rtol=1e-10, m=30, M=M, recycle=space)
    assert again.converged and rebinding_products(again) == 0


def test_linear_solver_keeps_its_space_caches_m_and_round_trips():
    solver = LinearSolver("gcrodr", preconditioner=("ilu", {"drop_tol": 0.1}), rtol=1e-9, m=30, k=10)
    settings = json.loads(json.dumps(solver.settings()))
    assert settings["options"] == {"m": 30, "k": 10} and "recycle" not in json.dumps(settings)
    assert LinearSolver.from_settings(settings).settings() == settings
    assert isinstance(solver.recycle, RecycleSpace) and solver.recycle.k == 10
    A = convection_diffusion(24, wind=15.0)
    rng = np.random.default_rng(4)
    first = solver.solve(A, rng.standard_normal(576))
    assert first.converged and solver.recycle.size == 10
    second = solver.solve(A, rng.standard_normal(576))  # same A: same M, same key, no products
    assert second.converged and rebinding_products(second) == 0
    third = solver.solve(convection_diffusion(24, wind=15.5), rng.standard_normal(576))
    assert third.converged and rebinding_products(third) == 10
    solver.reset()
    assert solver.recycle.is_empty
    assert LinearSolver("gmres").recycle is None
    with pytest.raises(SciMLError, match="recycle"):
        LinearSolver("gcrodr", recycle=RecycleSpace(3))


def test_too_small_maxiter_is_reported():
    A = convection_diffusion(20, wind=10.0)
    b = np.random.default_rng(5).standard_normal(400)
    result = gcrodr_result(A, b, rtol=1e-10, m=20, k=5, maxiter=7)
    assert not result.converged and result.iterations == 7 and result.info == 7
    assert "maxiter" in result.message and "\n" not in result.message
    assert np.isfinite(result.x).all() and result.relative_residual > 1e-10


def test_lucky_breakdowns_give_the_exact_answer():
    b = np.random.default_rng(6).standard_normal(50)
    space = RecycleSpace(k=3)
    result = gcrodr_result(sp.eye_array(50).tocsr(), b, rtol=1e-12, m=10, recycle=space)
    assert result.converged and result.iterations == 1 and np.allclose(result.x, b, rtol=1e-14)
    # b in an invariant subspace of dimension 2: Arnoldi stops after two steps
    A = sp.csr_array(sp.block_diag([np.array([[2.0, 1.0], [0.0, 3.0]]), sp.eye_array(48) * 5.0]))
    b = np.zeros(50)
    b[:2] = [1.0, 1.0]
    result = gcrodr_result(A, b, rtol=1e-12, m=10, recycle=space)
    assert result.converged and result.iterations == 2
    np.testing.assert_allclose(result.x[:2], np.linalg.solve([[2.0, 1.0], [0.0, 3.0]], [1.0, 1.0]))
    assert np.abs(result.x[2:]).max() <= 1e-12


def test_dependent_recycled_directions_are_dropped():
    n = 60
    stretch = sp.diags_array(np.r_[1.0, 1e14, np.ones(n - 2)]).tocsr()
    U = np.zeros((n, 2))
    U[0, :] = 1.0
    U[1, 1] = 1e-13  # independent under `stretch`, dependent under any moderate operator
    space = RecycleSpace(k=2)
    space.store(U, stretch @ U, key=operator_key(stretch), method="gcrodr-x")
    assert space.size == 2
    A = convection_diffusion(int(np.sqrt(n + 4)), 1.0)[:n, :n] + 4 * sp.eye_array(n)
    b = np.random.default_rng(7).standard_normal(n)
    result = gcrodr_result(sp.csr_array(A), b, rtol=1e-10, m=10, recycle=space)
    assert result.converged and space.dropped >= 1
    assert relative_residual(A, b, result.x) <= 1e-10


def test_non_finite_preconditioner_is_reported_and_callback_sees_every_cycle():
    A = convection_diffusion(12, wind=5.0)
    b = np.ones(144)
    M = sla.LinearOperator(A.shape, matvec=lambda v: np.full_like(v, np.inf), dtype=float)
    result = gcrodr_result(A, b, M=M)
    assert not result.converged and "non-finite" in result.message and np.isfinite(result.x).all()
    seen = []
    result = gcrodr_result(A, b, rtol=1e-10, m=12, k=4, callback=lambda xk: seen.append(xk.copy()))
    cycles = len(result.residual_history) - 1 - result.iterations
    assert result.converged and len(seen) == cycles and np.array_equal(seen[-1], result.x)
    zero = gcrodr_result(A, np.zeros(144), x0=np.ones(144))
    assert zero.converged and zero.iterations == 0 and not zero.x.any()


def test_right_preconditioned_cycles_match_a_dense_reference_on_a_complex_system():
    """Parks et al.'s cycle with x = M y and U kept in the solution variable, checked
    against dense linear algebra: the first cycle is GMRES(m) on A M; the second minimises
    ||r|| over x + span([U, M K_{m-k}]), K the Krylov space of (I - C C^H) A M on the
    projected residual; each time the space's preimage Y spans the k harmonic Ritz vectors
    of A M on [Y, K] of smallest magnitude, U = M Y and C = A U. A slip in the variable
    (U left in y, C = A M U, a missing M in the update, the Ritz problem on the wrong
    basis) breaks these equalities."""
    rng = np.random.default_rng(8)
    n, m, k = 60, 12, 4
    noise = lambda: (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) / np.sqrt(n)  # noqa: E731
    A = np.diag(np.linspace(-2.0, 5.0, n)) + 0.3 * noise()
    M = np.linalg.inv(A + 0.5 * noise())
    b = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    AM = A @ M

    def krylov(operator, start, size):
        return np.linalg.qr(np.column_stack([np.linalg.matrix_power(operator, j) @ start
                                             for j in range(size)]))[0]

    def harmonic_ritz(S):  # (A M s - theta s) orthogonal to A M S, smallest |theta|
        F = AM @ S
        theta, P = np.linalg.eig(np.linalg.solve(F.conj().T @ S, F.conj().T @ F))
        return S @ P[:, np.argsort(np.abs(theta))[:k]]

    def same_span(X, Y):
        Q = np.linalg.qr(X)[0]
        return np.linalg.norm(Y - Q @ (Q.conj().T @ Y)) <= 1e-8 * np.linalg.norm(Y)

    space = RecycleSpace(k=k)
    first = gcrodr_result(A, b, rtol=1e-14, m=m, M=M, recycle=space, maxiter=m)
    assert not first.converged and first.iterations == m
    S = krylov(AM, b, m)
    expected = M @ S @ np.linalg.lstsq(AM @ S, b, rcond=None)[0]
    assert np.linalg.norm(first.x - expected) <= 1e-9 * np.linalg.norm(expected)
    assert same_span(space.preimage, harmonic_ritz(S)) and np.allclose(M @ space.preimage, space.U)
    assert np.allclose(A @ space.U, space.C, atol=1e-12)
    Y, C = space.preimage.copy(), space.C.copy()
    second = gcrodr_result(A, b, first.x, rtol=1e-14, m=m, M=M, recycle=space, maxiter=m - k)
    r = b - A @ first.x
    S = np.column_stack([Y, krylov(AM - C @ (C.conj().T @ AM), r - C @ (C.conj().T @ r), m - k)])
    expected = first.x + M @ S @ np.linalg.lstsq(AM @ S, r, rcond=None)[0]
    assert np.linalg.norm(second.x - expected) <= 1e-9 * np.linalg.norm(expected)
    assert same_span(space.preimage, harmonic_ritz(S)) and np.allclose(M @ space.preimage, space.U)
    assert np.allclose(A @ space.U, space.C, atol=1e-12)


class CountingM(sla.LinearOperator):
    """A preconditioner that counts its applications (one per column)."""

    def __init__(self, M):
        super().__init__(dtype=M.dtype, shape=M.shape)
        self.M, self.count = M, 0

    def _matmat(self, X):
        self.count += X.shape[1]
        return self.M @ X

    def _matvec(self, v):
        return self._matmat(v.reshape(-1, 1))[:, 0]


def test_new_matrix_and_new_preconditioner_rebind_with_k_products_of_a_and_no_m():
    """U lives in the solution variable, so C = A U: a new A costs k products with A and a
    new M nothing; M is applied exactly once per Arnoldi step."""
    rng = np.random.default_rng(9)
    space = RecycleSpace(k=6)
    for wind in (30.0, 31.0):
        A = convection_diffusion(24, wind)
        M = CountingM(make_preconditioner(("ilu", {"drop_tol": 1e-2}), A))
        result = gcrodr_result(A, rng.standard_normal(576), rtol=1e-9, m=20, M=M, recycle=space)
        assert result.converged and space.size == 6 and space.key == operator_key(A)
        assert M.count == result.iterations
    assert rebinding_products(result) == 6
    same_matrix = CountingM(make_preconditioner(("ilu", {"drop_tol": 5e-2}), A))
    again = gcrodr_result(A, rng.standard_normal(576), rtol=1e-9, m=20, M=same_matrix, recycle=space)
    assert again.converged and rebinding_products(again) == 0 and same_matrix.count == again.iterations


def test_preconditioned_solves_equal_the_unpreconditioned_ones_on_a_m():
    """With one M for the sequence the stored preimage Y = M^-1 U is exact, so the solve in
    x follows Parks et al.'s algebra step for step: the same iterations as GCRO-DR without
    preconditioner on A M (where U = Y), and x = M y, also as the matrix changes."""
    rng = np.random.default_rng(10)
    n = 400
    M = np.linalg.inv(convection_diffusion(20, 10.0).toarray() + 50.0 * np.eye(n))
    in_x, in_y = RecycleSpace(k=6), RecycleSpace(k=6)
    for wind in (10.0, 10.0, 10.5, 11.0):
        A = convection_diffusion(20, wind)
        b = rng.standard_normal(n)
        x = gcrodr_result(A, b, rtol=1e-9, m=20, M=M, recycle=in_x)
        y = gcrodr_result(A @ M, b, rtol=1e-9, m=20, recycle=in_y)
        assert x.converged and y.converged and x.iterations == y.iterations
        assert np.linalg.norm(x.x - M @ y.x) <= 1e-7 * np.linalg.norm(x.x)
        assert np.allclose(in_x.U, M @ in_x.preimage)


def test_a_space_of_the_preconditioned_variable_gcrodr_is_refused():
    A = convection_diffusion(10, wind=5.0)
    old = RecycleSpace(k=2)
    old.store(np.eye(100)[:, :2], A @ np.eye(100)[:, :2], key="x", method="gcrodr")
    with pytest.raises(SciMLError, match="'gcrodr'"):
        gcrodr_result(A, np.ones(100), m=10, recycle=old)
