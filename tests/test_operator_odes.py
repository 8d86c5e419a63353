"""DeepONet's ODE operators: the RBF forcing, the trapezoidal antiderivative and Newton for ds/dx = -s^2 + u."""


import numpy as np
import pytest
from scipy.integrate import cumulative_trapezoid, solve_ivp
from scipy.interpolate import CubicSpline

import sciml.datasets.operator_odes
from sciml.dataset_file import read_header
from sciml.datasets import PROBLEMS, Antiderivative, NonlinearODE, get_problem, rbf_random_field
from sciml.errors import SciMLError
from sciml.generate import generate_dataset
from sciml.solvers import LinearSolver
from sciml.validate import check_file

DIRECT = LinearSolver("direct", rtol=1e-12)


def observed_orders(errors, resolutions):
    """log(e_k / e_{k+1}) / log(h_k / h_{k+1}) with h = 1 / (n - 1)."""
    errors, h = np.asarray(errors), 1.0 / (np.asarray(resolutions) - 1.0)
    return np.log(errors[:-1] / errors[1:]) / np.log(h[:-1] / h[1:])


class SpySolver:
    """Wraps a LinearSolver, keeps every result, and (without rtol) exposes no tolerances."""

    def __init__(self, inner, expose_tolerances=True):
        self.inner, self.results = inner, []
        if expose_tolerances:
            self.rtol, self.atol, self.method = inner.rtol, inner.atol, inner.method

    def solve(self, A, b, x0=None):
        self.results.append(self.inner.solve(A, b, x0))
        return self.results[-1]


# ------------------------------------------------------------------------ RBF random field
def test_rbf_field_is_reproducible_from_its_seed():
    first = rbf_random_field(50, 0.2, np.random.default_rng(3))
    np.testing.assert_array_equal(first, rbf_random_field(50, 0.2, 3))
    assert not np.allclose(first, rbf_random_field(50, 0.2, 4))
    np.testing.assert_array_equal(first, rbf_random_field(np.linspace(0, 1, 50), 0.2, 3))


@pytest.mark.parametrize("dim", [1, 2])
def test_rbf_field_sample_covariance_matches_the_kernel(dim):
    points = np.random.default_rng(7).uniform(size=(6, dim))
    length, sigma, draws = 0.3, 1.5, 4000
    rng = np.random.default_rng(11)
    samples = np.array([rbf_random_field(points, length, rng, sigma=sigma) for _ in range(draws)])
    kernel = sigma**2 * np.exp(-((points[:, None] - points[None]) ** 2).sum(-1) / (2 * length**2))
    # each entry's Monte Carlo standard error is <= sigma^2 sqrt(2 / draws) ~ 0.05
    np.testing.assert_allclose(samples.T @ samples / draws, kernel, atol=0.2)
    assert abs(samples.mean()) < 0.1


def test_larger_length_scale_gives_smoother_samples():
    n, draws = 101, 200
    h = 1.0 / (n - 1)
    mean_square_increment = {}
    for length in (0.05, 0.4):
        rng = np.random.default_rng(0)
        increments = np.array([np.diff(rbf_random_field(n, length, rng)) for _ in range(draws)])
        mean_square_increment[length] = np.mean(increments**2)
        # E (u_{i+1} - u_i)^2 = 2 sigma^2 (1 - exp(-h^2 / (2 l^2)))
        np.testing.assert_allclose(mean_square_increment[length], 2 * (1 - np.exp(-(h**2) / (2 * length**2))),
                                   rtol=0.15)
    assert mean_square_increment[0.05] > 20 * mean_square_increment[0.4]


@pytest.mark.parametrize("kwargs", [{"length_scale": 0.0}, {"length_scale": np.inf}, {"sigma": -1.0},
                                    {"jitter": -1e-3}, {"points": 0}, {"points": [0.0, np.nan]},
                                    {"points": np.zeros((2, 2, 2))}, {"length_scale": "wide"}])
def test_rbf_field_rejects_bad_parameters(kwargs):
    arguments = {"points": 10, "length_scale": 0.2, "rng": 0, **kwargs}
    with pytest.raises(SciMLError):
        rbf_random_field(**arguments)


def test_rbf_field_without_jitter_says_to_raise_it():
    with pytest.raises(SciMLError, match="raise jitter"):
        rbf_random_field(400, 0.2, 0, jitter=0.0)


# ------------------------------------------------------------------------ antiderivative
def test_antiderivative_converges_at_second_order():
    resolutions, errors = (25, 50, 100, 200), []
    for n in resolutions:
        problem = Antiderivative(resolution=n)
        x = problem.coordinates()["x"]
        result = DIRECT.solve(*problem.assemble({"u": np.cos(2 * np.pi * x)}))
        assert result.converged
        errors.append(np.max(np.abs(result.x - np.sin(2 * np.pi * x) / (2 * np.pi))))
    assert np.all(observed_orders(errors, resolutions) >= 1.9), errors


def test_antiderivative_is_the_cumulative_trapezoid():
    problem = Antiderivative(resolution=64, length_scale=0.1)
    u = problem.sample_inputs(np.random.default_rng(2))["u"]
    A, b = problem.assemble({"u": u})
    assert A.shape == (64, 64) and A.nnz == 2 * 64 - 1 and np.all(A.toarray() == np.tril(A.toarray()))
    expected = cumulative_trapezoid(u, dx=1.0 / 63, initial=0.0)
    np.testing.assert_allclose(DIRECT.solve(A, b).x, expected, rtol=1e-13, atol=1e-15)


def test_antiderivative_sample_through_the_direct_solver():
    problem = get_problem("antiderivative")(resolution=100)
    sample = problem.generate_sample(seed=5, solver=LinearSolver("direct"))
    assert sample.record.converged and sorted(sample.fields) == ["s", "u"]
    u, s = sample.fields["u"], sample.fields["s"]
    assert u.shape == s.shape == (100,) and s[0] == 0.0
    np.testing.assert_array_equal(u, problem.sample_inputs(np.random.default_rng(5))["u"])
    np.testing.assert_allclose(s, cumulative_trapezoid(u, dx=1.0 / 99, initial=0.0), rtol=1e-10, atol=1e-12)


def test_grid_includes_both_ends_and_parameters_rebuild_the_problem():
    assert {"antiderivative", "nonlinear-ode"} <= set(PROBLEMS.names())
    for cls in (Antiderivative, NonlinearODE):
        problem = cls(resolution=11, length_scale=0.3, sigma=2.0)
        x = problem.coordinates()["x"]
        assert x[0] == 0.0 and x[-1] == 1.0
        np.testing.assert_allclose(x, np.arange(11) / 10, rtol=0, atol=1e-15)
        assert problem.dims == ("x",) and problem.grid_shape == (11,)
        assert cls(**problem.parameters()).parameters() == problem.parameters()
    assert NonlinearODE(10, max_newton_steps=7).parameters()["max_newton_steps"] == 7


# ------------------------------------------------------------------------ nonlinear ODE
def test_nonlinear_ode_converges_at_second_order_on_a_manufactured_solution():
    # s = sin(x) solves ds/dx = -s^2 + u for u = cos(x) + sin(x)^2
    resolutions, errors = (25, 50, 100, 200), []
    for n in resolutions:
        problem = NonlinearODE(resolution=n)
        x = problem.coordinates()["x"]
        result = problem.solve({"u": np.cos(x) + np.sin(x) ** 2}, DIRECT)
        assert result.converged, result.message
        errors.append(np.max(np.abs(result.x - np.sin(x))))
    assert np.all(observed_orders(errors, resolutions) >= 1.9), errors


def test_jacobian_is_the_derivative_of_the_residual():
    problem = NonlinearODE(resolution=12)
    rng = np.random.default_rng(1)
    s, u, direction = rng.standard_normal(12), rng.standard_normal(12), rng.standard_normal(12)
    step = 1e-6
    difference = (problem.residual(s + step * direction, u) - problem.residual(s - step * direction, u)) / (2 * step)
    np.testing.assert_allclose(problem.jacobian(s) @ direction, difference, rtol=1e-7, atol=1e-9)


def test_assemble_is_the_newton_system_at_zero_which_is_the_antiderivative():
    u = {"u": Antiderivative(resolution=20).sample_inputs(np.random.default_rng(0))["u"]}
    A, b = NonlinearODE(resolution=20).assemble(u)
    A_ref, b_ref = Antiderivative(resolution=20).assemble(u)
    np.testing.assert_array_equal(A.toarray(), A_ref.toarray())
    np.testing.assert_allclose(b, b_ref, rtol=1e-15, atol=1e-17)


def test_newton_converges_quadratically_and_the_record_totals_the_linear_solves():
    problem = NonlinearODE(resolution=100)
    u = problem.sample_inputs(np.random.default_rng(3))
    spy = SpySolver(LinearSolver("direct", rtol=1e-10))
    result = problem.solve(u, spy)
    history = np.array(result.residual_history)
    assert result.converged and result.message == ""
    assert len(spy.results) == len(history) - 1 <= 8
    assert np.all(np.diff(history[1:] / history[:-1]) < 0)  # the contraction factor shrinks every step
    assert result.relative_residual == history[-1] / history[0] <= 1e-10
    assert result.iterations == sum(r.iterations for r in spy.results)
    assert result.matvecs == sum(r.matvecs for r in spy.results)
    assert result.method == "newton-direct" and result.seconds >= sum(r.seconds for r in spy.results)
    np.testing.assert_allclose(np.linalg.norm(problem.residual(result.x, u["u"])), result.residual_norm, rtol=1e-12)


def test_newton_without_solver_tolerances_uses_its_default():
    problem = NonlinearODE(resolution=60)
    u = problem.sample_inputs(np.random.default_rng(8))
    result = problem.solve(u, SpySolver(LinearSolver("direct", rtol=1e-13), expose_tolerances=False))
    assert result.converged and result.relative_residual <= sciml.datasets.operator_odes.DEFAULT_NEWTON_RTOL
    assert result.method == "newton"


def test_nonlinear_ode_agrees_with_an_adaptive_runge_kutta_solution():
    problem = NonlinearODE(resolution=200)
    x = problem.coordinates()["x"]
    sample = problem.generate_sample(seed=4, solver=LinearSolver("direct"))
    assert sample.record.converged
    forcing = CubicSpline(x, sample.fields["u"])
    reference = solve_ivp(lambda t, y: -(y**2) + forcing(t), (0.0, 1.0), [0.0], method="RK45",
                          rtol=1e-11, atol=1e-13, t_eval=x)
    assert reference.success
    assert np.max(np.abs(sample.fields["s"] - reference.y[0])) < 1e-4


# ------------------------------------------------------------------------ generation
@pytest.mark.parametrize("name", ["antiderivative", "nonlinear-ode"])
def test_generation_writes_a_valid_1d_file(tmp_path, name):
    path = tmp_path / f"{name}.nc"
    report = generate_dataset(get_problem(name)(resolution=32), LinearSolver("direct"), n_samples=3,
                              out=path, seed=1, progress=False)
    assert report.n_written == 3 and report.failures == []
    summary = check_file(path)
    assert summary["pde"] == name and summary["dims"] == ["x"] and summary["spatial_shape"] == [32]
    assert summary["inputs"] == ["u"] and summary["outputs"] == ["s"]
    np.testing.assert_allclose(read_header(path).coords["x"], np.linspace(0, 1, 32))


# ------------------------------------------------------------------------ bad input and failures
@pytest.mark.parametrize("cls", [Antiderivative, NonlinearODE])
def test_bad_settings_and_inputs_raise(cls):
    with pytest.raises(SciMLError, match="1-D"):
        cls(resolution=16, dim=2)
    with pytest.raises(SciMLError):
        cls(resolution=16, length_scale=-0.2)
    problem = cls(resolution=16)
    u = np.zeros(16)
    u[3] = np.inf
    with pytest.raises(SciMLError, match="finite"):
        problem.assemble({"u": u})
    with pytest.raises(SciMLError, match="shape"):
        problem.assemble({"u": np.zeros(15)})
    with pytest.raises(SciMLError, match="lack"):
        problem.assemble({})
    with pytest.raises(SciMLError):
        problem.fields_from_solution(np.zeros(15), {})


def test_newton_settings_and_inputs_are_checked():
    with pytest.raises(SciMLError, match="max_newton_steps"):
        NonlinearODE(resolution=16, max_newton_steps=0)
    with pytest.raises(SciMLError, match="finite"):
        NonlinearODE(resolution=16).solve({"u": np.full(16, np.nan)}, DIRECT)


@pytest.mark.parametrize("problem, u, solver, reason", [
    (NonlinearODE(resolution=100), np.full(100, -400.0), DIRECT, "newton"),  # s blows up near x = 0.08
    (NonlinearODE(resolution=100), np.full(100, -10.0), DIRECT, "newton"),  # s blows up near x = 0.5
    (NonlinearODE(resolution=50, max_newton_steps=1), np.ones(50), DIRECT, "newton did not converge after 1 steps"),
    (NonlinearODE(resolution=50), np.ones(50), LinearSolver("gmres", maxiter=2), "linear solve did not converge"),
])
def test_failed_newton_is_reported_never_returned_as_data(problem, u, solver, reason):
    result = problem.solve({"u": u}, solver)
    assert not result.converged and result.message.startswith("newton") and reason in result.message
    assert np.all(np.isfinite(result.x)) and np.isfinite(result.relative_residual)
    assert result.record()["converged"] is False
