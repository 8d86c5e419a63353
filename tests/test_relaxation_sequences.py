"""Sequences of linear systems (sciml.datasets.relaxation_sequences): Laplacian, shifts, heat equation."""

import math

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from sciml.datasets.relaxation_sequences import (
    HeatEquationSequence,
    ShiftedLaplacianSequence,
    dirichlet_laplacian,
    laplacian_extreme_eigenvalues,
)
from sciml.errors import SciMLError
from sciml.solvers.sor import ssor_cg_result


@pytest.mark.parametrize("shape", [(4, 5), (3, 3, 2), (7,)])
def test_laplacian_spectrum_matches_the_closed_form(shape):
    A = dirichlet_laplacian(shape, h=0.5).toarray()
    eigenvalues = np.linalg.eigvalsh(A)
    low, high = laplacian_extreme_eigenvalues(shape, h=0.5)
    assert eigenvalues[0] == pytest.approx(low, rel=1e-12)
    assert eigenvalues[-1] == pytest.approx(high, rel=1e-12)
    np.testing.assert_array_equal(A, A.T)


def test_laplacian_is_matlab_delsq_on_the_paper_grid():
    A = dirichlet_laplacian((10, 10))
    assert A.shape == (100, 100) and A.nnz == 100 + 4 * 90
    assert set(np.unique(A.data)) == {-1.0, 4.0}
    assert A[11, 11] == 4.0 and A[11, 12] == -1.0 and A[11, 21] == -1.0 and A[9, 10] == 0.0


@pytest.mark.parametrize("distribution, beta", [("high", (0.5, 1.5)), ("low", (2.0, 6.0))])
def test_shifts_follow_the_paper_distributions(distribution, beta):
    sequence = ShiftedLaplacianSequence((10, 10), distribution, length=3000, seed=3)
    shifts, first = [], None
    for A, b, c in sequence:
        shifts.append(c)
        assert np.linalg.norm(b) <= 10.0
        if first is None:
            first = (A, b, c)
    shifts = np.array(shifts)
    a, bb = beta
    mean = -0.15 + 0.6 * a / (a + bb)
    std = 0.6 * math.sqrt(a * bb / ((a + bb) ** 2 * (a + bb + 1)))
    assert shifts.mean() == pytest.approx(mean, abs=4 * std / math.sqrt(3000))
    assert shifts.std() == pytest.approx(std, rel=0.08)
    low, high = sequence.context_range
    assert (low, high) == pytest.approx((-0.15, 0.45)) and low <= shifts.min() and shifts.max() <= high
    A, b, c = first
    np.testing.assert_allclose((A - sequence.laplacian).toarray(), c * np.eye(100), rtol=0, atol=1e-15)
    A2, b2, c2 = next(iter(ShiftedLaplacianSequence((10, 10), distribution, length=1, seed=3)))
    assert c2 == c and np.array_equal(b2, b)


def test_shifted_sequence_scales_to_realistic_sizes():
    sequence = ShiftedLaplacianSequence((400, 400), "high", length=2, seed=0)
    A, b, c = next(iter(sequence))
    assert A.shape == (160000, 160000) and b.shape == (160000,)
    assert sequence.lambda_min + sequence.context_range[0] > 0  # every A_t stays positive definite
    assert sequence.context_range[1] / sequence.context_range[0] == pytest.approx(0.45 / -0.15)
    assert 1.9 < sequence.optimal_sor_omega(c) < 2.0


def heat_run(nx, steps, dt, diffusivity, forcing, initial):
    heat = HeatEquationSequence(nx, steps, dt, diffusivity=diffusivity, forcing=forcing,
                                initial=initial)
    for A, b, kappa in heat:
        heat.update(sla.spsolve(A.tocsc(), b))
    return heat


def test_crank_nicolson_decays_a_fourier_mode_with_second_order_in_time():
    # u0 = sin(pi x) sin(pi y) is an eigenvector of the discrete Laplacian (eigenvalue lam_h),
    # so the exact semi-discrete solution is exp(-lam_h int_0^t kappa) u0.
    nx = 8
    h = 1.0 / nx
    lam = 2 * (2 - 2 * math.cos(math.pi * h)) / h ** 2
    diffusivity = lambda t: 1.0 + 0.5 * math.sin(2 * math.pi * t)
    integral = lambda t: t + 0.25 / math.pi * (1 - math.cos(2 * math.pi * t))
    mode = lambda p: np.sin(math.pi * p[:, 0]) * np.sin(math.pi * p[:, 1])
    errors = []
    for steps in (10, 20, 40):
        heat = heat_run(nx, steps, 0.2 / steps, diffusivity, lambda t, p: np.zeros(len(p)), mode)
        exact = math.exp(-lam * integral(0.2)) * mode(heat.points)
        errors.append(np.abs(heat.u - exact).max() / np.abs(exact).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.1), orders
    assert errors[-1] < 1e-2


def test_crank_nicolson_with_forcing_against_a_manufactured_solution():
    # u = g(t) sin(pi x) sin(pi y) with f = (g' + kappa lam_h g) sin sin solves the semi-discrete
    # equations exactly; CN must converge to it at second order.
    nx = 6
    h = 1.0 / nx
    lam = 2 * (2 - 2 * math.cos(math.pi * h)) / h ** 2
    kappa = lambda t: 0.5 + t
    g, dg = (lambda t: math.cos(3 * t)), (lambda t: -3 * math.sin(3 * t))
    mode = lambda p: np.sin(math.pi * p[:, 0]) * np.sin(math.pi * p[:, 1])
    forcing = lambda t, p: (dg(t) + kappa(t) * lam * g(t)) * mode(p)
    errors = []
    for steps in (8, 16, 32):
        heat = heat_run(nx, steps, 1.0 / steps, kappa, forcing, lambda p: g(0.0) * mode(p))
        errors.append(np.abs(heat.u - g(1.0) * mode(heat.points)).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 2.0) < 0.15), orders


def test_heat_sequence_protocol_paper_defaults_and_warm_starts():
    heat = HeatEquationSequence(nx=16, steps=6)
    systems = iter(heat)
    A, b, kappa = next(systems)
    assert kappa == pytest.approx(max(0.1 * math.sin(math.pi * 1e-3), 0.0))
    np.testing.assert_allclose((A - A.T).data, 0.0, atol=0.0)
    with pytest.raises(SciMLError, match="update") as error:
        next(systems)
    assert "\n" not in str(error.value)
    cold, warm = [], []
    heat = HeatEquationSequence(nx=16, steps=6)
    for A, b, kappa in heat:
        cold.append(ssor_cg_result(A, b, rtol=1e-8, omega=1.5).iterations)
        result = ssor_cg_result(A, b, heat.u, rtol=1e-8, omega=1.5)
        warm.append(result.iterations)
        heat.update(result.x)
    assert sum(warm) < sum(cold) and heat.step == 6
    assert HeatEquationSequence(nx=400, steps=1).n == 159201
    low, high = HeatEquationSequence(nx=4, steps=5000).context_range
    assert 0.0 <= low < 1e-3 and high == pytest.approx(10.0, rel=1e-4)


@pytest.mark.parametrize("call, match", [
    (lambda: ShiftedLaplacianSequence((10, 10), "medium"), "distribution"),
    (lambda: ShiftedLaplacianSequence((10, 0)), "shape"),
    (lambda: HeatEquationSequence(nx=1), "nx"),
    (lambda: HeatEquationSequence(nx=8, dt=-1.0), "dt"),
    (lambda: list(HeatEquationSequence(nx=4, steps=1, diffusivity=lambda t: -1.0)), "diffusivity"),
    (lambda: HeatEquationSequence(nx=4).update(np.ones(3)), "length 9"),
])
def test_bad_input_is_one_line(call, match):
    with pytest.raises(SciMLError, match=match) as error:
        call()
    assert "\n" not in str(error.value)
