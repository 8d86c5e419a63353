"""PDEBench's 1-D diffusion-sorption: conservation, convergence, the linear limit, the constraint, bad input."""

import numpy as np
import pytest
import torch
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq

import sciml.datasets.diffusion_sorption as ds
from sciml.dataset_file import sample_seed
from sciml.datasets.diffusion_sorption import (DiffusionSorption, DiffusionSorptionConstraint, SorptionConstants,
                                               boundary_fluxes, generate_trajectories, solve_trajectory)
from sciml.errors import SciMLError


def centres(n):
    return (np.arange(n) + 0.5) / n


@pytest.mark.parametrize("D", [5e-4, 0.05])
def test_total_contaminant_changes_only_by_the_boundary_fluxes(D):
    """d/dt of the integral of u + (1-phi)/phi rho_s k_f u^n_f equals inflow - outflow."""
    constants = SorptionConstants(D=D)
    times = np.linspace(0.0, 500.0, 2001)
    u = solve_trajectory(np.full(64, 0.1), times, constants, rtol=1e-10, atol=1e-12)
    assert u.min() > 0  # where the total concentration's derivative is R(u)
    mass = constants.total_concentration(u).mean(axis=-1)
    inflow, outflow = boundary_fluxes(u, constants)
    net = inflow - outflow
    start = 200  # t = 50: past the initial layer, where the trapezoid rule resolves the fluxes
    transported = np.concatenate([[0.0], np.cumsum((net[start + 1:] + net[start:-1]) / 2 * np.diff(times[start:]))])
    scale = np.trapezoid(np.abs(inflow[start:]) + np.abs(outflow[start:]), times[start:])
    assert np.abs((mass[start:] - mass[start]) - transported).max() < 1e-3 * scale
    assert outflow[-1] > 0 and inflow[-1] > 0


def test_second_order_in_space_for_a_smooth_solution():
    """A smooth initial condition satisfying both boundary conditions; reference on 640 cells."""
    D = 0.25  # large enough that the outflow condition u(1) = -D u_x(1) is far from u(1) = 0
    constants, a = SorptionConstants(D=D), 1 / (1 + 2 * D)  # u0 = 1 - a x^2: u0(0) = 1, u0(1) + D u0'(1) = 0

    def solve(n):
        return solve_trajectory(1 - a * centres(n) ** 2, [0.0, 1.0, 2.0], constants, rtol=1e-11, atol=1e-13)[1:]

    reference = CubicSpline(centres(640), solve(640), axis=1)
    errors = [np.abs(solve(n) - reference(centres(n))).max() for n in (20, 40, 80)]
    orders = np.log2(np.array(errors[:-1]) / errors[1:])
    assert np.all(orders > 1.8), (errors, orders)


def heat_series(x, t, D, c0, lambdas):
    """u_t = D u_xx, u(0) = 1, u(1) = -D u_x(1), u(0, x) = c0, by eigenfunctions sin(lambda x)."""
    slope = -1 / (1 + D)  # steady state 1 + slope x
    projection = (c0 - 1) * (1 - np.cos(lambdas)) / lambdas - slope * (np.sin(lambdas) / lambdas**2
                                                                       - np.cos(lambdas) / lambdas)
    norm = 0.5 - np.sin(2 * lambdas) / (4 * lambdas)
    modes = np.sin(np.outer(lambdas, x)) * np.exp(-D * lambdas**2 * t)[:, None]
    return 1 + slope * x + (projection / norm) @ modes


def test_without_sorption_it_is_the_heat_equation():
    D, c0 = 0.05, 0.1
    lambdas = np.array([brentq(lambda s: np.sin(s) + D * s * np.cos(s), (n - 0.5) * np.pi, n * np.pi, xtol=1e-14)
                        for n in range(1, 301)])  # sin + D lambda cos = 0: the outflow condition
    times = np.array([0.0, 0.5, 1.0, 2.0, 4.0])
    errors = []
    for n in (100, 200):
        u = solve_trajectory(np.full(n, c0), times, SorptionConstants(D=D, k_f=0.0), rtol=1e-11, atol=1e-13)
        errors.append(max(np.abs(u[i] - heat_series(centres(n), t, D, c0, lambdas)).max()
                          for i, t in enumerate(times) if t > 0))
    assert errors[1] < 5e-5 and errors[0] / errors[1] > 3.5, errors


def constraint_and_data(n_cells=128, initial="constant", **constants):
    arrays, attrs = generate_trajectories(1, seed=4, n_cells=n_cells, n_frames=101, initial=initial,
                                          constants=constants)
    u = torch.as_tensor(arrays["u"])
    return DiffusionSorptionConstraint.from_attrs(attrs), u, {"initial": u[:, 0]}


def relative_pde_residual(constraint, u, data):
    terms = constraint.derivatives(u)
    r = constraint.constants.retardation(u) * terms["u_t"]
    residual = constraint.residual_on_grid(u, data)
    later = slice(10, None)  # after t = 50: the frames (dt = 5) resolve u_t
    return (residual[:, later].norm() / (r[:, later].norm() + (constraint.constants.D * terms["u_xx"][:, later]).norm())).item()


def condition_values(constraint, u, data):
    mask = constraint.condition_mask().flatten()
    values = {k: v.flatten(1)[:, mask] for k, v in constraint.derivatives(u).items()}
    index = constraint.condition_index()
    return index, constraint.condition_residual(values, data, index)[0]


@pytest.mark.parametrize("initial", ["constant", "pointwise"])
def test_constraint_residuals_are_small_on_data_and_large_when_perturbed(initial):
    constraint, u, data = constraint_and_data(initial=initial)
    clean = relative_pde_residual(constraint, u, data)
    assert clean < 3e-3
    index, conditions = condition_values(constraint, u, data)
    assert conditions[index[:, 0] == 0].abs().max() == 0 and conditions.abs().max() < 3e-3

    x, t = torch.as_tensor(centres(128)), torch.linspace(0, 1, 101, dtype=torch.float64)[:, None]
    bump = 0.01 * torch.sin(3 * torch.pi * x) * t  # leaves the initial frame alone
    assert relative_pde_residual(constraint, u + bump, data) > 20 * clean
    _, perturbed = condition_values(constraint, u + 0.01 * t, data)
    assert perturbed.abs().max() > 3 * conditions.abs().max()


def test_outflow_residual_has_the_generator_sign():
    """With D = 0.05 the outflow term is large; the residual u(1) + D u_x(1) vanishes on the data,
    u(1) - D u_x(1) (the MoE code's sign) does not."""
    constraint, u, data = constraint_and_data(D=0.05)
    index, conditions = condition_values(constraint, u, data)
    outlet = (index[:, 1] == 127) & (index[:, 0] >= 10)
    u_x = constraint.derivatives(u)["u_x"][0, 10:, -1]
    assert conditions[outlet].abs().max() < 0.02 * (0.05 * u_x.abs()).min()


def test_derivatives_and_face_values_are_exact_for_quadratics():
    constraint = DiffusionSorptionConstraint((5, 6), (0.5, 1 / 6), SorptionConstants(D=0.1))
    t = torch.arange(5, dtype=torch.float64)[:, None] * 0.5
    x = torch.as_tensor(centres(6))[None]
    u = (1 + 0.3 * x - 0.7 * x**2 + 0.2 * t - 0.1 * t**2 + 0.05 * t * x)[None]
    d = constraint.derivatives(u)
    torch.testing.assert_close(d["u_t"][0], (0.2 - 0.2 * t + 0.05 * x).expand(5, 6))
    torch.testing.assert_close(d["u_x"][0], (0.3 - 1.4 * x + 0.05 * t).expand(5, 6))
    torch.testing.assert_close(d["u_xx"][0], torch.full((5, 6), -1.4, dtype=torch.float64))
    index, conditions = condition_values(constraint, u, {"initial": torch.zeros(1, 6, dtype=torch.float64)})
    at_zero = 1 + 0.2 * t[1:, 0] - 0.1 * t[1:, 0] ** 2  # u(t, 0)
    at_one = 1 + 0.3 - 0.7 + 0.2 * t[1:, 0] - 0.1 * t[1:, 0] ** 2 + 0.05 * t[1:, 0]
    torch.testing.assert_close(conditions[(index[:, 1] == 0) & (index[:, 0] > 0)], at_zero - 1)
    torch.testing.assert_close(conditions[(index[:, 1] == 5) & (index[:, 0] > 0)],
                               at_one + 0.1 * (0.3 - 1.4 + 0.05 * t[1:, 0]))
    torch.testing.assert_close(conditions[index[:, 0] == 0], u[0, 0])


def test_retardation_is_finite_at_and_below_zero():
    c = SorptionConstants()
    r = c.retardation(torch.tensor([-1.0, 0.0, 1e-12], dtype=torch.float64))
    assert torch.isfinite(r).all() and r[0] == r[1] == 1 + c.sorption * c.n_f * c.epsilon ** (c.n_f - 1)
    assert np.isclose(c.retardation(np.array([1.0]))[0], 1 + c.sorption * c.n_f * (1 + 1e-6) ** (c.n_f - 1))
    assert SorptionConstants(k_f=0.0).retardation(np.array([0.3]))[0] == 1.0


def test_generator_matches_simulate_and_draws_the_documented_initial_conditions():
    arrays, attrs = generate_trajectories(2, seed=7, n_cells=16, n_frames=3)
    again = DiffusionSorption(n_cells=16, n_frames=3).simulate([sample_seed(7, 0), sample_seed(7, 1)])
    np.testing.assert_array_equal(arrays["u"], again["u"])
    first = arrays["u"][:, 0]
    assert np.all(first == first[:, :1]) and np.all((0 <= first) & (first < 0.2)) and first[0, 0] != first[1, 0]
    assert attrs["seeds"] == [sample_seed(7, 0), sample_seed(7, 1)] and attrs["time"].tolist() == [0, 250, 500]
    pointwise = generate_trajectories(1, seed=7, n_cells=16, n_frames=2, initial="pointwise")[0]["u"][0, 0]
    assert np.unique(pointwise).size == 16 and pointwise.max() < 0.2


def test_a_trajectory_file_carries_what_the_constraint_needs(tmp_path):
    from sciml.simulate import simulate_dataset
    from sciml.trajectory_file import read_trajectories

    path = simulate_dataset(DiffusionSorption(n_cells=16, n_frames=5), 2, tmp_path / "ds.nc", seed=1, batch_size=1)
    stored = read_trajectories(path)
    constraint = DiffusionSorptionConstraint.from_attrs(stored.metadata)
    assert constraint.grid_shape == (5, 16) and constraint.spacing == (125.0, 1 / 16)
    assert constraint.constants == SorptionConstants()
    arrays, _ = generate_trajectories(2, seed=1, n_cells=16, n_frames=5)
    np.testing.assert_allclose(stored.fields["u"], arrays["u"], rtol=1e-6)


def test_a_failed_solve_names_the_sample_and_stores_nothing(monkeypatch):
    real = ds.solve_ivp
    calls = []

    def failing_second(*args, **kwargs):
        calls.append(1)
        result = real(*args, **kwargs)
        if len(calls) == 2:
            result.success, result.message = False, "Required step size is less than spacing between numbers."
        return result

    monkeypatch.setattr(ds, "solve_ivp", failing_second)
    with pytest.raises(SciMLError, match=rf"sample 1 of this batch \(seed {sample_seed(0, 1)}\).*BDF integration failed"):
        generate_trajectories(3, seed=0, n_cells=8, n_frames=2)


@pytest.mark.parametrize("call, message", [
    (lambda: generate_trajectories(0, seed=0), "n_samples must be an integer >= 1"),
    (lambda: generate_trajectories(1, seed=0, n_cells=0), "n_cells must be an integer >= 1"),
    (lambda: generate_trajectories(1, seed=0, n_frames=1), "n_frames must be an integer >= 2"),
    (lambda: generate_trajectories(1, seed=0, t_final=-5.0), "t_final must be finite and > 0"),
    (lambda: generate_trajectories(1, seed=0, initial="gaussian"), "choose from"),
    (lambda: generate_trajectories(1, seed=0, constants={"Dm": 1.0}), "unknown diffusion-sorption constant 'Dm'"),
    (lambda: SorptionConstants(porosity=1.5), "porosity must be in"),
    (lambda: SorptionConstants(D=0.0), "D must be finite and > 0"),
    (lambda: solve_trajectory(np.array([0.1, -0.01]), [0, 1]), "finite and >= 0"),
    (lambda: solve_trajectory(np.array([0.1, np.nan]), [0, 1]), "finite and >= 0"),
    (lambda: solve_trajectory(np.zeros(4), [1.0, 0.0]), "strictly increasing"),
    (lambda: DiffusionSorptionConstraint((2, 8), (1.0, 0.125)), "n_frames >= 3, n_cells >= 4"),
])
def test_bad_input_is_refused_in_one_line(call, message):
    with pytest.raises(SciMLError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_constraint_refuses_points_off_the_mask_and_missing_initial_data():
    constraint = DiffusionSorptionConstraint((4, 6), (1.0, 1 / 6))
    u = torch.zeros(1, 4, 6, dtype=torch.float64)
    values = {k: v.flatten(1)[:, :3] for k, v in constraint.derivatives(u).items()}
    interior = torch.tensor([[0, 0], [1, 2], [2, 5]])
    with pytest.raises(SciMLError, match="off the condition mask"):
        constraint.condition_residual(values, {"initial": u[:, 0]}, interior)
    with pytest.raises(SciMLError, match=r"data\['initial'\] must be"):
        constraint.condition_residual(values, {}, constraint.condition_index()[:3])
