"""Poisson: second order with Dirichlet data, the boundary trace, one fixed SPD matrix, the
problem-interface flags (SPD, fixed operator, ordering fields), samples and errors."""

import json
import math

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from sciml.datasets import PROBLEMS, Darcy, PDEProblem, Poisson, gaussian_random_field, get_problem
from sciml.datasets.poisson import cosine_series_trace
from sciml.errors import SciMLError
from sciml.solvers import LinearSolver


def centres(dim, n):
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(*([c] * dim), indexing="ij")


# ------------------------------------------------------------------ manufactured solution
def manufactured(dim, n):
    """u = 1 + sum_i cos(pi (i+1) x_i) + prod_i cos(pi x_i): nonzero on the boundary and a finite
    cosine series, so its cell values give its exact trace; f = -lap u."""
    x = centres(dim, n)
    single = [np.cos(np.pi * (i + 1) * xi) for i, xi in enumerate(x)]
    product = np.prod([np.cos(np.pi * xi) for xi in x], axis=0)
    u = 1 + sum(single) + product
    f = sum(np.pi**2 * (i + 1) ** 2 * s for i, s in enumerate(single)) + dim * np.pi**2 * product
    return f, u


@pytest.mark.parametrize("dim, resolutions", [(1, (16, 32, 64)), (2, (16, 32, 64)), (3, (8, 16))])
def test_second_order_on_a_manufactured_solution(dim, resolutions):
    errors = []
    for n in resolutions:
        f, u = manufactured(dim, n)
        A, b = Poisson(n, dim=dim).assemble({"f": f, "g": u})
        x = spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(b)
        errors.append(np.sqrt(np.mean((x - u.ravel()) ** 2)))
    orders = np.log(np.array(errors[:-1]) / errors[1:]) / np.log(np.array(resolutions[1:]) / resolutions[:-1])
    assert np.all(orders >= 1.9), (errors, orders)


def test_trace_of_a_cosine_series_is_exact_on_every_face():
    x, y = centres(2, 12)
    g = np.cos(2 * np.pi * x) * np.cos(3 * np.pi * y) + 0.5 * np.cos(np.pi * y) + 0.25
    yc = y[0]
    xc = x[:, 0]
    expected = {
        (0, 0): np.cos(3 * np.pi * yc) + 0.5 * np.cos(np.pi * yc) + 0.25,  # x = 0
        (0, 1): np.cos(3 * np.pi * yc) + 0.5 * np.cos(np.pi * yc) + 0.25,  # x = 1
        (1, 0): np.cos(2 * np.pi * xc) + 0.75,  # y = 0
        (1, 1): -np.cos(2 * np.pi * xc) - 0.25,  # y = 1
    }
    for (axis, side), values in expected.items():
        trace = cosine_series_trace(g, axis, side)
        assert trace.shape == ((1, 12) if axis == 0 else (12, 1))
        np.testing.assert_allclose(trace.ravel(), values, atol=1e-13)


def test_harmonic_solution_lies_between_the_extremes_of_its_boundary_data():
    """f = 0: the M-matrix makes u a weighted average of the face values (discrete maximum principle)."""
    problem = Poisson(20)
    g = problem.sample_inputs(np.random.default_rng(2))["g"]
    A, b = problem.assemble({"f": np.zeros((20, 20)), "g": g})
    u = spla.spsolve(A.tocsc(), b)
    traces = np.concatenate([cosine_series_trace(g, axis, side).ravel() for axis in (0, 1) for side in (0, 1)])
    assert traces.min() < u.min() and u.max() < traces.max()


# ------------------------------------------------------------------ the operator
def test_one_spd_matrix_for_every_sample():
    problem = Poisson(12)
    systems = [problem.assemble(problem.sample_inputs(np.random.default_rng(seed))) for seed in range(3)]
    A0 = systems[0][0]
    for A, b in systems[1:]:
        assert (A != A0).nnz == 0 and not np.allclose(b, systems[0][1])
    np.linalg.cholesky(A0.toarray())
    assert abs(A0 - A0.T).max() == 0
    A0.data[:] = 0.0  # callers get a copy: the next sample is unaffected
    assert problem.assemble(problem.sample_inputs(np.random.default_rng(4)))[0].nnz == 5 * 144 - 4 * 12


def test_problem_flags_and_ordering_fields():
    assert Poisson.fixed_operator and Poisson.symmetric_positive_definite
    assert Poisson.ordering_fields == ("f", "g")  # the default: all inputs
    assert Darcy.symmetric_positive_definite and not Darcy.fixed_operator and Darcy.ordering_fields == ("a",)
    for name in PROBLEMS.names():
        cls = get_problem(name)
        assert set(cls.ordering_fields) <= set(cls.input_names), name
    with pytest.raises(SciMLError, match="ordering_fields names 'b', which is not an input"):
        type("Bad", (Poisson,), {"ordering_fields": ("f", "b")})
    assert issubclass(Poisson, PDEProblem)


def test_sources_are_independent_fields():
    problem = Poisson(16, dim=3, alpha=2.5, tau=4.0, sigma=0.5, boundary_sigma=0.2)
    inputs = problem.sample_inputs(np.random.default_rng(9))
    rng = np.random.default_rng(9)
    f = gaussian_random_field((16,) * 3, 2.5, 4.0, rng, sigma=0.5)
    g = gaussian_random_field((16,) * 3, 2.5, 4.0, rng, sigma=0.2)
    np.testing.assert_array_equal(inputs["f"], f)
    np.testing.assert_array_equal(inputs["g"], g)
    assert Poisson(16).boundary_sigma == pytest.approx(3.0 / (2 * math.pi**2))


# ------------------------------------------------------------------ samples
@pytest.mark.parametrize("dim, n", [(2, 24), (3, 12)])
def test_generate_sample_with_the_recommended_solver(dim, n):
    problem = Poisson(n, dim=dim)
    settings = problem.recommended_solver()
    assert settings["method"] == ("direct" if dim == 2 else "cg")
    sample = problem.generate_sample(seed=5, solver=LinearSolver(**settings, rtol=1e-10))
    assert sample.record.converged and sorted(sample.fields) == ["f", "g", "u"]
    A, b = problem.assemble(sample.fields)
    np.testing.assert_allclose(sample.fields["u"].ravel(), spla.spsolve(A.tocsc(), b), rtol=1e-7,
                               atol=1e-8 * np.abs(sample.fields["u"]).max())


def test_registered_and_parameters_round_trip():
    assert get_problem("poisson") is Poisson
    problem = Poisson(10, dim=3, tau=5.0)
    params = problem.parameters()
    assert Poisson(**json.loads(json.dumps(params))).parameters() == params
    assert (Poisson.version, Poisson.input_names, Poisson.output_names) == ("1", ("f", "g"), ("u",))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [({"alpha": 1.0}, "alpha"), ({"tau": 0.0}, "tau"), ({"sigma": -1.0}, "sigma"),
     ({"boundary_sigma": 0.0}, "boundary_sigma must be finite and > 0"), ({"dim": 4}, "dim")],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(SciMLError, match=match):
        Poisson(8, **kwargs)


def test_bad_fields_raise():
    g = np.ones((8, 8))
    g[0, 0] = np.inf
    with pytest.raises(SciMLError, match="'g' must be finite"):
        Poisson(8).assemble({"f": np.ones((8, 8)), "g": g})
    with pytest.raises(SciMLError, match=r"shape \(8, 9\)"):
        Poisson(8).assemble({"f": np.ones((8, 9)), "g": np.ones((8, 8))})
