"""Darcy flow: finite-volume matrix, convergence on a manufactured solution, inputs and errors."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sciml.datasets import PROBLEMS, Darcy, diffusion_matrix, gaussian_random_field, get_problem
from sciml.errors import SciMLError, UnknownNameError


# ------------------------------------------------------------------ manufactured solution
def manufactured(dim, n):
    """a = 1 + 0.5 sin(2 pi x1) prod_{i>1} cos(2 pi x_i), u = prod sin(pi x_i), f = -div(a grad u)."""
    centres = (np.arange(n) + 0.5) / n
    x = np.meshgrid(*([centres] * dim), indexing="ij")
    sin, cos = [np.sin(np.pi * xi) for xi in x], [np.cos(np.pi * xi) for xi in x]
    sin2, cos2 = [np.sin(2 * np.pi * xi) for xi in x], [np.cos(2 * np.pi * xi) for xi in x]
    rest = np.prod(cos2[1:], axis=0) if dim > 1 else np.ones_like(x[0])
    a = 1 + 0.5 * sin2[0] * rest
    u = np.prod(sin, axis=0)
    grad_u = [np.pi * cos[i] * np.prod([sin[j] for j in range(dim) if j != i], axis=0) for i in range(dim)]
    grad_a = [np.pi * cos2[0] * rest] + [
        -np.pi * sin2[0] * sin2[i] * np.prod([cos2[j] for j in range(1, dim) if j != i], axis=0)
        for i in range(1, dim)
    ]
    # -div(a grad u) = -a lap(u) - grad(a) . grad(u), lap(u) = -d pi^2 u
    f = a * dim * np.pi**2 * u - sum(ga * gu for ga, gu in zip(grad_a, grad_u))
    return a, f, u


@pytest.mark.parametrize("dim, resolutions", [(2, (16, 32, 64)), (3, (8, 16)), (1, (16, 32, 64))])
def test_second_order_on_a_manufactured_solution(dim, resolutions):
    errors = []
    for n in resolutions:
        a, f, u = manufactured(dim, n)
        A, b = Darcy(n, dim=dim).assemble({"a": a, "f": f})
        x = spla.spsolve(A.tocsc(), b)
        errors.append(np.sqrt(np.mean((x - u.ravel()) ** 2)))  # discrete L2 error at cell centres
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders >= 1.9), (errors, orders)


# ------------------------------------------------------------------ the matrix
@pytest.mark.parametrize("coefficient", ["piecewise", "lognormal"])
def test_matrix_is_symmetric_positive_definite(coefficient):
    problem = Darcy(12, coefficient=coefficient)
    A, _ = problem.assemble(problem.sample_inputs(np.random.default_rng(3)))
    assert isinstance(A, sp.csr_matrix) and A.shape == (144, 144)
    assert abs(A - A.T).max() <= 1e-12 * abs(A).max()
    dense = A.toarray()
    np.linalg.cholesky(dense)  # raises LinAlgError unless positive definite
    assert np.linalg.eigvalsh(dense).min() > 0


def test_constant_coefficient_gives_the_five_point_laplacian():
    n, c = 6, 2.5
    h = 1.0 / n
    # 1-D Dirichlet Laplacian with the boundary half a cell away: 3 on the end diagonals
    T = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1]).tolil()
    T[0, 0] = T[n - 1, n - 1] = 3.0
    I = sp.identity(n)
    expected = c / h**2 * (sp.kron(T, I) + sp.kron(I, T))
    A, b = Darcy(n).assemble({"a": np.full((n, n), c), "f": np.ones((n, n))})
    np.testing.assert_allclose(A.toarray(), expected.toarray(), rtol=1e-14)
    np.testing.assert_array_equal(b, np.ones(n * n))


def test_1d_is_the_harmonic_mean_tridiagonal():
    a = np.array([1.0, 4.0, 0.5, 2.0, 8.0])
    h = 0.2
    expected = np.zeros((5, 5))
    for i in range(5):
        for j in (i - 1, i + 1):
            if 0 <= j < 5:
                face = 2 * a[i] * a[j] / (a[i] + a[j]) / h**2
                expected[i, j] = -face
                expected[i, i] += face
            else:
                expected[i, i] += a[i] / (h / 2) / h  # boundary flux a_P u_P / (h/2), per cell width
    np.testing.assert_allclose(diffusion_matrix(a, h).toarray(), expected, rtol=1e-14)


def test_unknowns_are_numbered_in_c_order_on_a_box():
    a = np.random.default_rng(0).uniform(0.5, 2.0, size=(3, 4, 5))
    A = diffusion_matrix(a, h=0.5)
    for axis, step in enumerate(([1, 0, 0], [0, 1, 0], [0, 0, 1])):
        p, q = (1, 2, 3), tuple(np.add((1, 2, 3), step))
        i, j = np.ravel_multi_index(p, a.shape), np.ravel_multi_index(q, a.shape)
        assert A[i, j] == pytest.approx(-2 * a[p] * a[q] / (a[p] + a[q]) / 0.25, rel=1e-14)
    corner = np.ravel_multi_index((0, 0, 0), a.shape)
    interior_sum = sum(-A[corner, np.ravel_multi_index(q, a.shape)] for q in ((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    assert A[corner, corner] == pytest.approx(interior_sum + 3 * 2 * a[0, 0, 0] / 0.25, rel=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple),
        elements=st.floats(1e-3, 1e3),
    ),
    st.floats(1e-2, 1.0),
)
def test_random_positive_coefficient_gives_an_m_matrix(a, h):
    A = diffusion_matrix(a, h)
    diagonal = A.diagonal()
    off = A - sp.diags(diagonal)
    row_sums = np.asarray(A.sum(axis=1)).ravel()
    assert abs(A - A.T).max() <= 1e-12 * diagonal.max()
    assert np.all(diagonal > 0)
    assert off.nnz == 0 or off.data.max() <= 0
    assert np.all(row_sums >= -1e-12 * diagonal)
    assert row_sums.max() > 0  # strictly dominant next to the boundary


# ------------------------------------------------------------------ the problem
def test_piecewise_coefficient_is_the_thresholded_field():
    problem = Darcy(16)
    inputs = problem.sample_inputs(np.random.default_rng(4))
    psi = gaussian_random_field((16, 16), 2.0, 3.0, np.random.default_rng(4))
    np.testing.assert_array_equal(inputs["a"], np.where(psi >= 0, 12.0, 3.0))
    assert set(np.unique(inputs["a"])) == {3.0, 12.0}
    np.testing.assert_array_equal(inputs["f"], np.ones((16, 16)))


def test_lognormal_coefficient_is_the_exponentiated_field():
    problem = Darcy(16, dim=3, coefficient="lognormal", alpha=2.5, tau=4.0, sigma=0.5, source=-2.0)
    inputs = problem.sample_inputs(np.random.default_rng(4))
    psi = gaussian_random_field((16, 16, 16), 2.5, 4.0, np.random.default_rng(4), sigma=0.5)
    assert np.all(inputs["a"] > 0)
    np.testing.assert_allclose(np.log(inputs["a"]), psi, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(inputs["f"], np.full((16, 16, 16), -2.0))


def test_registered_and_parameters_round_trip():
    assert get_problem("darcy") is Darcy and "darcy" in PROBLEMS
    problem = Darcy(8, dim=1, coefficient="LogNormal", tau=5.0)
    params = problem.parameters()
    assert params == {"resolution": 8, "dim": 1, "coefficient": "lognormal", "alpha": 2.0, "tau": 5.0,
                      "sigma": 5.0**1.5, "high": 12.0, "low": 3.0, "source": 1.0}
    assert Darcy(**json.loads(json.dumps(params))).parameters() == params
    assert (Darcy.version, Darcy.input_names, Darcy.output_names) == ("1", ("a", "f"), ("u",))


def test_generate_sample_solves_the_system():
    from sciml.solvers import LinearSolver

    problem = Darcy(16, coefficient="lognormal")
    sample = problem.generate_sample(seed=2, solver=LinearSolver("direct"))
    assert sample.seed == 2 and sorted(sample.fields) == ["a", "f", "u"] and sample.record.converged
    A, b = problem.assemble({"a": sample.fields["a"], "f": sample.fields["f"]})
    np.testing.assert_allclose(sample.fields["u"].ravel(), spla.spsolve(A.tocsc(), b), rtol=1e-10)
    assert sample.fields["u"].shape == (16, 16) and sample.fields["u"].min() > 0  # f = 1 > 0: u > 0 inside
    again = problem.generate_sample(seed=2, solver=LinearSolver("direct"))
    np.testing.assert_array_equal(again.fields["a"], sample.fields["a"])


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value", [np.nan, np.inf, 0.0, -1.0])
def test_bad_coefficient_values_raise(value):
    problem = Darcy(8)
    a = np.ones((8, 8))
    a[3, 5] = value
    with pytest.raises(SciMLError, match="'a' must be finite and > 0"):
        problem.assemble({"a": a, "f": np.ones((8, 8))})
    with pytest.raises(SciMLError, match="finite and > 0"):
        diffusion_matrix(a, 0.125)


@pytest.mark.parametrize(
    "inputs, match",
    [
        ({"a": np.ones((8, 8)), "f": np.full((8, 8), np.nan)}, "'f' must be finite"),
        ({"a": np.ones((8, 7)), "f": np.ones((8, 8))}, r"shape \(8, 7\), expected the grid shape \(8, 8\)"),
        ({"a": np.ones((8, 8))}, "lack field 'f'"),
    ],
)
def test_bad_inputs_raise(inputs, match):
    with pytest.raises(SciMLError, match=match):
        Darcy(8).assemble(inputs)


def test_unknown_coefficient_family_lists_the_valid_ones():
    with pytest.raises(UnknownNameError, match="unknown darcy coefficient family 'smooth'; choose one of: lognormal, piecewise"):
        Darcy(8, coefficient="smooth")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"high": -1.0}, "high"),
        ({"low": 0.0}, "low"),
        ({"source": float("inf")}, "source"),
        ({"alpha": 1.0}, "alpha"),  # alpha <= d/2 = 1 in 2-D
        ({"tau": -3.0}, "tau"),
        ({"sigma": 0.0}, "sigma"),
        ({"high": "12"}, "high"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(SciMLError, match=match):
        Darcy(8, **kwargs)


def test_solution_of_the_wrong_size_raises():
    with pytest.raises(SciMLError, match="expected 64"):
        Darcy(8).fields_from_solution(np.zeros(63), {})
