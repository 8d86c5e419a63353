"""The caller-held recycle space: binding to a new operator, reuse, refusal of wrong systems."""

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import aslinearoperator

from sciml.errors import SciMLError
from sciml.solvers.recycle_space import RecycleSpace, operator_key


def laplacian(n, shift=0.0):
    return (sp.diags_array([-1.0, 2.0 + shift, -1.0], offsets=[-1, 0, 1], shape=(n, n))).tocsr()


def filled_space(A, k=4, seed=0, dtype=float):
    U = np.random.default_rng(seed).standard_normal((A.shape[0], k)).astype(dtype)
    space = RecycleSpace(k)
    space.store(U, A @ U, operator_key(A), method="test")
    return space


def test_store_makes_c_orthonormal_and_consistent():
    A = laplacian(40, 0.3)
    space = filled_space(A)
    assert space.size == 4
    np.testing.assert_allclose(space.C.T @ space.C, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(A @ space.U, space.C, atol=1e-12)


def test_bind_reuses_for_same_operator_and_rebinds_for_a_new_one():
    A = laplacian(40, 0.3)
    space = filled_space(A)
    U_before = space.U.copy()
    assert space.bind(A, operator_key(A)) == 0
    np.testing.assert_array_equal(space.U, U_before)
    B = laplacian(40, 0.7)
    assert space.bind(aslinearoperator(B), operator_key(B)) == 4
    np.testing.assert_allclose(B @ space.U, space.C, atol=1e-12)
    np.testing.assert_allclose(space.C.T @ space.C, np.eye(4), atol=1e-12)


def test_dependent_directions_are_dropped():
    A = laplacian(30, 0.5)
    U = np.random.default_rng(1).standard_normal((30, 3))
    U = np.column_stack([U, U[:, 0] - 2 * U[:, 2]])
    space = RecycleSpace(5)
    space.store(U, A @ U, operator_key(A), method="test")
    assert space.size == 3 and space.dropped == 1


def test_zero_space_is_cleared_not_kept():
    A = laplacian(10)
    space = RecycleSpace(2)
    space.store(np.zeros((10, 2)), np.zeros((10, 2)), operator_key(A), method="test")
    assert space.is_empty and space.dropped == 2


def test_complex_space_for_a_complex_operator():
    A = (laplacian(30) - 0.5j * sp.eye_array(30)).tocsr()
    space = filled_space(A, dtype=complex)
    np.testing.assert_allclose(space.C.conj().T @ space.C, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(A @ space.U, space.C, atol=1e-12)


@pytest.mark.parametrize(
    "n, dtype, method, words",
    [(41, float, "test", "length 40"), (40, float, "other", "filled by 'test'")],
)
def test_incompatible_use_is_refused(n, dtype, method, words):
    space = filled_space(laplacian(40))
    with pytest.raises(SciMLError, match=words):
        space.check_compatible(n, dtype, method)


def test_complex_space_refused_for_a_real_system():
    A = (laplacian(20) + 1j * sp.eye_array(20)).tocsr()
    space = filled_space(A, dtype=complex)
    with pytest.raises(SciMLError, match="complex"):
        space.check_compatible(20, np.float64, "test")
    space.check_compatible(20, np.complex128, "test")


def test_non_finite_directions_are_refused():
    space = RecycleSpace(2)
    with pytest.raises(SciMLError, match="non-finite"):
        space.store(np.full((5, 2), np.nan), np.ones((5, 2)), "key", method="test")


def test_operator_key_tracks_entries_and_preconditioner():
    A = laplacian(20)
    assert operator_key(A) == operator_key(A.copy())
    assert operator_key(A) != operator_key(laplacian(20, 1e-9))
    M = aslinearoperator(sp.eye_array(20))
    assert operator_key(A, M) == operator_key(A, M)
    assert operator_key(A, M) != operator_key(A)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k_is_refused(k):
    with pytest.raises(SciMLError, match="k >= 1"):
        RecycleSpace(k)


def test_identity_keys_hold_their_objects_so_a_freed_id_is_never_reused():
    """Python reuses the id of a freed object: a key by identity must keep its object alive,
    or a new operator could inherit the fingerprint of the last one."""
    keys = []
    for _ in range(30):
        keys.append(operator_key(aslinearoperator(np.eye(3))))  # the operator is freed at once
    assert len(set(keys)) == 30
    M = aslinearoperator(np.eye(3))
    assert operator_key(np.eye(3), M).held == (M,)


def test_orthonormal_c_is_kept_as_given_and_mc_follows_a_change_of_basis():
    A = laplacian(40, 0.3)
    rng = np.random.default_rng(3)
    Q, R = np.linalg.qr(rng.standard_normal((40, 3)))
    U = np.linalg.solve(A.toarray(), Q)  # C = A U = Q is orthonormal already: stored as given
    space = RecycleSpace(3)
    space.store(U, Q, operator_key(A), method="test")
    np.testing.assert_array_equal(space.C, Q)
    np.testing.assert_array_equal(space.U, U)
    M = np.diag(rng.uniform(1.0, 2.0, 40))  # C not orthonormal: QR, and M C changes basis with C
    U = rng.standard_normal((40, 3))
    space.store(U, A @ U, operator_key(A), method="test", MC=M @ (A @ U), preconditioner=M)
    np.testing.assert_allclose(space.C.T @ space.C, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(space.MC, M @ space.C, atol=1e-12)
    assert space.preconditioner is M
    space.bind(A * 2.0, operator_key(A * 2.0))  # a new operator: M C is forgotten
    assert space.MC is None and space.preconditioner is None
    with pytest.raises(SciMLError, match="shape of C"):
        space.store(U, A @ U, "key", method="test", MC=np.ones((40, 2)), preconditioner=M)


def test_preimage_follows_every_change_of_basis_and_survives_rebinding():
    """``preimage`` (Y with M Y = U) is transformed with U by store's and bind's QR and,
    unlike MC, kept when the operator changes; it is dropped only with the space."""
    A = laplacian(40, 0.3)
    M = np.diag(np.linspace(1.0, 2.0, 40))
    Y = np.random.default_rng(3).standard_normal((40, 3))
    space = RecycleSpace(3)
    space.store(M @ Y, A @ M @ Y, operator_key(A), method="test", preimage=Y)
    np.testing.assert_allclose(M @ space.preimage, space.U, atol=1e-12)
    B = laplacian(40, 0.9)
    assert space.bind(B, operator_key(B)) == 3
    np.testing.assert_allclose(M @ space.preimage, space.U, atol=1e-12)
    np.testing.assert_allclose(B @ space.U, space.C, atol=1e-12)
    with pytest.raises(SciMLError, match="preimage must have the shape"):
        space.store(space.U, space.C, operator_key(B), method="test", preimage=Y[:, :2])
    space.clear()
    assert space.preimage is None


def test_cholesky_qr_serves_a_well_conditioned_c_and_pivoted_qr_an_ill_conditioned_one():
    rng = np.random.default_rng(8)
    C = rng.standard_normal((60, 4))
    Q, R = RecycleSpace._cholesky_qr(C)
    np.testing.assert_allclose(Q.T @ Q, np.eye(4), atol=1e-13)
    np.testing.assert_allclose(Q @ R, C, atol=1e-12)
    assert np.allclose(R, np.triu(R))
    nearly_dependent = np.column_stack([C[:, :3], C[:, 0] + 1e-9 * C[:, 1]])
    assert RecycleSpace._cholesky_qr(nearly_dependent) is None  # too ill-conditioned: pivoted QR instead
    A = laplacian(60, 0.3)
    U = np.linalg.solve(A.toarray(), nearly_dependent)
    space = RecycleSpace(4)
    space.store(U, nearly_dependent, operator_key(A), method="test")
    np.testing.assert_allclose(space.C.T @ space.C, np.eye(space.size), atol=1e-12)
    np.testing.assert_allclose(A @ space.U, space.C, atol=1e-8)


def test_scratch_is_the_same_memory_until_its_shape_changes_or_the_space_is_cleared():
    space = RecycleSpace(3)
    first = space.scratch(20, float, 5)
    assert len(first) == 3 and all(block.shape == (20, 5) and block.flags.f_contiguous for block in first)
    assert all(np.shares_memory(a, b) for a, b in zip(first, space.scratch(20, float, 4)))
    assert not np.shares_memory(first[0], space.scratch(20, complex, 4)[0])
    wider = space.scratch(20, complex, 9, count=2)
    assert len(wider) == 2 and wider[0].shape == (20, 9)
    space.clear()
    assert not np.shares_memory(wider[0], space.scratch(20, complex, 9, count=2)[0])
