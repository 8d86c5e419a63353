"""Advection-diffusion: convergence orders, M-matrix and maximum principle, divergence-free
random velocities, the convection matrix, samples and errors."""

import json

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sciml.datasets import AdvectionDiffusion, convection_matrix, diffusion_matrix, gaussian_random_field, get_problem
from sciml.datasets.advection_diffusion import cosine_series_derivative, curl_of_potential
from sciml.errors import SciMLError
from sciml.solvers import LinearSolver


def centres(dim, n):
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(*([c] * dim), indexing="ij")


def derivative_matrix(n):
    """Dense d/dx of the cosine series through n cell values, built from the basis functions."""
    x = (np.arange(n) + 0.5) / n
    k = np.arange(n)
    w = np.where(k == 0, np.sqrt(1 / n), np.sqrt(2 / n))
    values = w * np.cos(np.pi * np.outer(x, k))
    slopes = -np.pi * k * w * np.sin(np.pi * np.outer(x, k))
    return slopes @ np.linalg.inv(values)


def along(matrix, field, axis):
    return np.moveaxis(np.tensordot(matrix, field, axes=([1], [axis])), 0, axis)


# ------------------------------------------------------------------ manufactured solution
def manufactured(dim, n, eps):
    """u = prod sin(pi x_i), v_i = cos(pi (x_{i+1} + i/4)) + 1/2 (both signs), f = -eps lap u + v . grad u."""
    x = centres(dim, n)
    S, C = [np.sin(np.pi * xi) for xi in x], [np.cos(np.pi * xi) for xi in x]
    u = np.prod(S, axis=0)
    grad = [np.pi * C[i] * np.prod([S[j] for j in range(dim) if j != i], axis=0) for i in range(dim)]
    v = [np.cos(np.pi * (x[(i + 1) % dim] + 0.25 * i)) + 0.5 for i in range(dim)]
    return v, eps * dim * np.pi**2 * u + sum(vi * gi for vi, gi in zip(v, grad)), u


def errors_for(dim, resolutions, eps, scheme):
    errors = []
    for n in resolutions:
        v, f, u = manufactured(dim, n, eps)
        h = 1.0 / n
        A = eps * diffusion_matrix(np.ones(u.shape), h) + convection_matrix(v, h, scheme)
        errors.append(np.sqrt(np.mean((spla.splu(A.tocsc()).solve(f.ravel()) - u.ravel()) ** 2)))
    errors = np.array(errors)
    return errors, np.log(errors[:-1] / errors[1:]) / np.log(np.array(resolutions[1:]) / resolutions[:-1])


@pytest.mark.parametrize("dim, resolutions", [(2, (16, 32, 64)), (3, (8, 16))])
def test_upwind_is_first_order(dim, resolutions):
    """eps = 0.1: the cell Peclet number drops below 1 on these grids, the asymptotic regime, where
    the upwind error |v| h / 2 u'' dominates: first order, not better."""
    errors, orders = errors_for(dim, resolutions, eps=0.1, scheme="upwind")
    assert np.all((orders >= 0.8) & (orders <= 1.2)), (errors, orders)


def test_central_is_second_order_when_diffusion_resolves_the_flow():
    errors, orders = errors_for(2, (16, 32, 64), eps=0.1, scheme="central")
    assert np.all(orders >= 1.9), (errors, orders)


# ------------------------------------------------------------------ the matrix
@pytest.mark.parametrize("dim, n", [(2, 16), (3, 8)])
def test_default_problem_is_a_convection_dominated_m_matrix(dim, n):
    problem = AdvectionDiffusion(n, dim=dim)
    assert problem.cell_peclet > 10
    A, b = problem.assemble(problem.sample_inputs(np.random.default_rng(1)))
    diagonal = A.diagonal()
    off = (A - sp.diags(diagonal)).tocsr()
    off.eliminate_zeros()
    row_sums = np.asarray(A.sum(axis=1)).ravel()
    assert np.all(diagonal > 0) and off.data.max() < 0
    assert np.all(row_sums >= -1e-12 * diagonal) and row_sums.max() > 0
    assert abs(A - A.T).max() > 0.1 * diagonal.max()  # nonsymmetric
    inverse = np.linalg.inv(A.toarray())
    assert inverse.min() >= -1e-12 * inverse.max()  # inverse-monotone: the discrete maximum principle
    u = inverse @ b
    assert u.min() > 0


def test_central_rows_are_exact_for_a_quadratic_and_upwind_is_the_one_sided_difference():
    n, h = 6, 1.0 / 6
    x = (np.arange(n) + 0.5) * h
    v = np.array([1.0, -2.0, 0.5, 0.0, -1.0, 3.0])
    exact = v * (1 - 2 * x)  # v u' for u = x (1 - x), which vanishes on both faces
    np.testing.assert_allclose(convection_matrix([v], h, "central") @ (x * (1 - x)), exact, rtol=1e-13, atol=1e-13)
    expected = np.zeros((n, n))
    for i in range(n):
        if v[i] > 0:  # difference towards the lower neighbour, or the face value 0 half a cell away
            expected[i, i] += v[i] / (h if i > 0 else h / 2)
            if i > 0:
                expected[i, i - 1] -= v[i] / h
        elif v[i] < 0:
            expected[i, i] -= v[i] / (h if i < n - 1 else h / 2)
            if i < n - 1:
                expected[i, i + 1] += v[i] / h
    np.testing.assert_allclose(convection_matrix([v], h).toarray(), expected, rtol=1e-14)


def test_convection_matrix_numbers_unknowns_in_c_order():
    rng = np.random.default_rng(0)
    v = [rng.uniform(0.5, 1.0, (3, 4, 5)) for _ in range(3)]  # positive: every row looks back
    C = convection_matrix(v, h=0.5)
    p = (1, 2, 3)
    i = np.ravel_multi_index(p, (3, 4, 5))
    for axis in range(3):
        q = tuple(np.subtract(p, np.eye(3, dtype=int)[axis]))
        assert C[i, np.ravel_multi_index(q, (3, 4, 5))] == pytest.approx(-v[axis][p] / 0.5, rel=1e-14)
    assert C[i, i] == pytest.approx(sum(vi[p] for vi in v) / 0.5, rel=1e-14)


# ------------------------------------------------------------------ the velocity
@pytest.mark.parametrize("dim, n", [(2, 24), (3, 10)])
def test_sampled_velocity_is_divergence_free_with_the_requested_speed(dim, n):
    problem = AdvectionDiffusion(n, dim=dim, speed=2.0)
    inputs = problem.sample_inputs(np.random.default_rng(3))
    v = [inputs[name] for name in ("vx", "vy", "vz")[:dim]]
    D = derivative_matrix(n)
    divergence = sum(along(D, vi, i) for i, vi in enumerate(v))
    gradient = max(np.abs(along(D, vi, j)).max() for vi in v for j in range(dim))
    assert np.abs(divergence).max() <= 1e-12 * gradient
    assert np.sqrt(sum(vi**2 for vi in v)).max() == pytest.approx(2.0, rel=1e-14)
    np.testing.assert_array_equal(inputs["f"], np.ones((n,) * dim))


def test_spectral_derivative_and_curl_match_the_analytic_fields():
    n = 10
    field = gaussian_random_field((n, n, n), 2.0, 3.0, np.random.default_rng(2))
    for axis in range(3):
        np.testing.assert_allclose(cosine_series_derivative(field, axis), along(derivative_matrix(n), field, axis),
                                   atol=1e-10 * np.abs(field).max() * n)
    x, y, z = centres(3, n)
    cx, cy, cz = (np.cos(np.pi * m * t) for m, t in ((1, x), (2, y), (1, z)))
    sx, sy, sz = (np.sin(np.pi * m * t) for m, t in ((1, x), (2, y), (1, z)))
    # A = (0, 0, cx cy cz): curl A = (d_y A_z, -d_x A_z, 0)
    velocity = curl_of_potential({(0,): 0 * x, (1,): 0 * x, (2,): cx * cy * cz})
    np.testing.assert_allclose(velocity[0], -2 * np.pi * cx * sy * cz, atol=1e-12)
    np.testing.assert_allclose(velocity[1], np.pi * sx * cy * cz, atol=1e-12)
    np.testing.assert_allclose(velocity[2], 0.0, atol=1e-12)
    vx, vy = curl_of_potential({(): (cx * cy)[:, :, 0]})  # 2-D: (d_y psi, -d_x psi)
    np.testing.assert_allclose(vx, (-2 * np.pi * cx * sy)[:, :, 0], atol=1e-12)
    np.testing.assert_allclose(vy, (np.pi * sx * cy)[:, :, 0], atol=1e-12)
    with pytest.raises(SciMLError, match="needs one grid field per increasing 1-tuple"):
        curl_of_potential({(0,): x, (1,): x})


# ------------------------------------------------------------------ samples
@pytest.mark.parametrize("dim, n", [(2, 32), (3, 12)])
def test_generate_sample_with_the_recommended_solver(dim, n):
    problem = AdvectionDiffusion(n, dim=dim)
    sample = problem.generate_sample(seed=4, solver=LinearSolver(**problem.recommended_solver(), rtol=1e-10))
    names = ["f", "u", "vx", "vy"] + (["vz"] if dim == 3 else [])
    assert sample.record.converged and sorted(sample.fields) == names
    assert problem.input_names == tuple(names[2:]) + ("f",) and problem.ordering_fields == tuple(names[2:])
    A, b = problem.assemble(sample.fields)
    np.testing.assert_allclose(sample.fields["u"].ravel(), spla.spsolve(A.tocsc(), b), rtol=1e-6,
                               atol=1e-8 * sample.fields["u"].max())
    assert sample.fields["u"].min() > 0  # f = 1 > 0


def test_registered_and_parameters_round_trip():
    assert get_problem("advection-diffusion") is AdvectionDiffusion
    problem = AdvectionDiffusion(20, dim=3, eps=0.01, scheme="Central")
    params = problem.parameters()
    assert AdvectionDiffusion(**json.loads(json.dumps(params))).parameters() == params
    assert params["scheme"] == "central" and problem.input_names == ("vx", "vy", "vz", "f")
    assert not AdvectionDiffusion.symmetric_positive_definite and not AdvectionDiffusion.fixed_operator


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"eps": 0.0}, "eps must be finite and > 0"),
        ({"eps": -1e-3}, "eps"),
        ({"speed": 0.0}, "speed must be finite and > 0"),
        ({"source": float("nan")}, "source"),
        ({"scheme": "weno"}, "choose one of: upwind, central"),
        ({"dim": 1}, "needs dim 2 or 3"),
        ({"alpha": 1.5, "dim": 3}, "alpha"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(SciMLError, match=match):
        AdvectionDiffusion(8, **kwargs)


def test_bad_fields_raise():
    problem = AdvectionDiffusion(8)
    with pytest.raises(SciMLError, match="lack field 'vy'"):
        problem.assemble({"vx": np.ones((8, 8)), "f": np.ones((8, 8))})
    with pytest.raises(SciMLError, match="one grid-shaped array per axis"):
        convection_matrix([np.ones((4, 4))], h=0.25)
    with pytest.raises(SciMLError, match="velocity must be finite"):
        convection_matrix([np.full(4, np.nan)], h=0.25)
