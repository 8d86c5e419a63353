"""Helmholtz: second order on manufactured solutions, indefiniteness, symmetry, samples and errors."""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from sciml.datasets import Helmholtz, gaussian_random_field, get_problem
from sciml.errors import SciMLError, UnknownNameError
from sciml.solvers import LinearSolver


def centres(dim, n):
    c = (np.arange(n) + 0.5) / n
    return np.meshgrid(*([c] * dim), indexing="ij")


def solve(A, b):
    """Sparse LU; a complex system as its real form [[Re A, -Im A], [Im A, Re A]], because
    SuperLU's complex path is very slow with multithreaded OpenBLAS on a busy machine."""
    if not np.iscomplexobj(A.data) and not np.iscomplexobj(b):
        return spla.splu(A.tocsc(), permc_spec="MMD_AT_PLUS_A").solve(b)
    A, b = A.astype(complex), np.asarray(b, complex)
    real = sp.bmat([[A.real, -A.imag], [A.imag, A.real]], format="csc")
    x = spla.splu(real, permc_spec="MMD_AT_PLUS_A").solve(np.concatenate([b.real, b.imag]))
    return x[: len(b)] + 1j * x[len(b):]


def orders(resolutions, errors):
    return np.log(np.array(errors[:-1]) / errors[1:]) / np.log(np.array(resolutions[1:]) / resolutions[:-1])


# ------------------------------------------------------------------ manufactured solutions
def dirichlet_manufactured(dim, n, omega):
    """u = exp(s . x) prod sin(pi m_i x_i) (zero on the boundary), variable c, f = -lap u - (omega/c)^2 u."""
    x = centres(dim, n)
    s, m = [0.7, -0.4, 0.3][:dim], [1, 2, 1][:dim]
    E = np.exp(sum(si * xi for si, xi in zip(s, x)))
    S = [np.sin(np.pi * mi * xi) for mi, xi in zip(m, x)]
    C = [np.cos(np.pi * mi * xi) for mi, xi in zip(m, x)]
    u = E * np.prod(S, axis=0)
    lap = sum(
        E * np.prod([S[j] for j in range(dim) if j != i], axis=0)
        * ((s[i] ** 2 - (np.pi * m[i]) ** 2) * S[i] + 2 * s[i] * np.pi * m[i] * C[i])
        for i in range(dim)
    )
    c = 1 + 0.2 * np.sin(2 * np.pi * x[0]) * np.cos(np.pi * x[-1])
    return c, -lap - (omega / c) ** 2 * u, u


CASES = [(1, (16, 32, 64), 10.0), (2, (16, 32, 64), 10.0), (3, (8, 16), 6.0)]


@pytest.mark.parametrize("dim, resolutions, omega", CASES)
def test_second_order_dirichlet_with_variable_wave_speed(dim, resolutions, omega):
    errors = []
    for n in resolutions:
        c, f, u = dirichlet_manufactured(dim, n, omega)
        A, b = Helmholtz(n, dim=dim, omega=omega, boundary="dirichlet").assemble({"c": c, "f": f})
        errors.append(np.sqrt(np.mean((solve(A, b) - u.ravel()) ** 2)))
    assert np.all(orders(resolutions, errors) >= 1.9), errors


@pytest.mark.parametrize("dim, resolutions, k", CASES)
def test_second_order_absorbing_on_an_oblique_plane_wave(dim, resolutions, k):
    """u = exp(i k d . x) solves the equation with f = 0; the Robin data du/dn - i k u = g != 0
    (oblique incidence) enters b through the half-cell face value, (g / h) / (1 - i k h / 2)."""
    d = np.array([1.0, 2.0, 3.0][:dim]) / np.linalg.norm([1.0, 2.0, 3.0][:dim])
    errors = []
    for n in resolutions:
        h, x = 1.0 / n, centres(dim, n)
        u = np.exp(1j * k * sum(di * xi for di, xi in zip(d, x)))
        b = np.zeros(u.shape, complex)
        for axis in range(dim):
            for side, normal in ((0, -1.0), (1, 1.0)):
                layer = tuple(side * (n - 1) if i == axis else slice(None) for i in range(dim))
                face = [xi[layer] for xi in x]
                face[axis] = np.full_like(face[axis], float(side))
                u_face = np.exp(1j * k * sum(di * xi for di, xi in zip(d, face)))
                g = 1j * k * (d[axis] * normal - 1.0) * u_face
                b[layer] += (g / h) / (1 - 1j * k * h / 2)
        A, _ = Helmholtz(n, dim=dim, omega=k, contrast=0.0).assemble({"c": np.ones(u.shape), "f": np.zeros(u.shape)})
        errors.append(np.sqrt(np.mean(np.abs(solve(A, b.ravel()) - u.ravel()) ** 2)))
    assert np.all(orders(resolutions, errors) >= 1.9), errors


# ------------------------------------------------------------------ the operator
def test_default_frequency_is_truly_indefinite():
    """Negative eigenvalues of the Dirichlet matrix, c = 1: the discrete Laplacian's eigenvalues
    sum_i (4 / h^2) sin^2(pi k_i h / 2), k_i = 1..n (cell-centred, boundary half a cell away),
    below omega^2."""
    n = 16
    problem = Helmholtz(n, boundary="dirichlet", contrast=0.0)
    A, _ = problem.assemble(problem.sample_inputs(np.random.default_rng(0)))
    eigenvalues = np.linalg.eigvalsh(A.toarray())
    one_d = 4 * n**2 * np.sin(np.pi * np.arange(1, n + 1) / (2 * n)) ** 2
    expected = int(np.sum(one_d[:, None] + one_d[None, :] < problem.omega**2))
    assert np.sum(eigenvalues < 0) == expected >= 10
    assert np.sum(eigenvalues > 0) == n * n - expected  # nonsingular


def test_absorbing_matrix_is_complex_symmetric_and_dirichlet_real_symmetric():
    absorbing = Helmholtz(32)
    inputs = absorbing.sample_inputs(np.random.default_rng(5))
    A, b = absorbing.assemble(inputs)
    assert A.dtype == np.complex128 and b.dtype == np.complex128
    assert abs(A - A.T).max() == 0
    assert abs(A - A.conj().T).max() > 1.0  # not Hermitian: the absorbing faces are complex
    assert np.all(A.diagonal().imag <= 0) and np.sum(A.diagonal().imag < 0) == 4 * 32 - 4
    D, _ = Helmholtz(32, boundary="dirichlet").assemble(inputs)
    assert D.dtype == np.float64 and abs(D - D.T).max() == 0
    np.testing.assert_allclose((A - D).diagonal()[33], 0.0, atol=1e-9)  # interior rows agree


def test_wave_speed_and_source():
    problem = Helmholtz(24, speed=1.5, contrast=0.3, alpha=2.5, tau=4.0, sigma=2.0, source_width=0.1)
    inputs = problem.sample_inputs(np.random.default_rng(7))
    psi = gaussian_random_field((24, 24), 2.5, 4.0, np.random.default_rng(7), sigma=2.0)
    np.testing.assert_allclose(inputs["c"], 1.5 * (1 + 0.3 * np.tanh(psi)), rtol=1e-14)
    assert 1.5 * 0.7 < inputs["c"].min() and inputs["c"].max() < 1.5 * 1.3
    f = inputs["f"]
    assert f.sum() / 24**2 == pytest.approx(1.0, rel=1e-3)  # unit mass
    assert np.unravel_index(f.argmax(), f.shape) in {(11, 11), (11, 12), (12, 11), (12, 12)}


# ------------------------------------------------------------------ samples
def test_generate_sample_2d_with_the_default_solver():
    problem = Helmholtz(32)
    sample = problem.generate_sample(seed=3, solver=LinearSolver(**problem.recommended_solver()))
    assert sample.record.converged and sorted(sample.fields) == ["c", "f", "u_imag", "u_real"]
    A, b = problem.assemble(sample.fields)
    u = sample.fields["u_real"] + 1j * sample.fields["u_imag"]
    assert np.linalg.norm(A @ u.ravel() - b) <= 1e-8 * np.linalg.norm(b)
    assert np.abs(sample.fields["u_imag"]).max() > 0.1 * np.abs(sample.fields["u_real"]).max()


def test_generate_sample_3d_with_the_recommended_solver():
    problem = Helmholtz(12, dim=3, omega=10.0)
    assert problem.recommended_solver()["method"] == "gmres"
    sample = problem.generate_sample(seed=1, solver=LinearSolver(**problem.recommended_solver(), rtol=1e-10))
    assert sample.record.converged and sample.fields["u_real"].shape == (12, 12, 12)
    A, b = problem.assemble(sample.fields)
    u = sample.fields["u_real"] + 1j * sample.fields["u_imag"]
    np.testing.assert_allclose(u.ravel(), solve(A, b), rtol=1e-7, atol=1e-9 * np.abs(solve(A, b)).max())


def test_registered_and_parameters_round_trip():
    assert get_problem("helmholtz") is Helmholtz
    problem = Helmholtz(40, dim=3, omega=25.0, boundary="Dirichlet")
    params = problem.parameters()
    assert Helmholtz(**json.loads(json.dumps(params))).parameters() == params
    assert params["boundary"] == "dirichlet" and problem.output_names == ("u",)
    assert Helmholtz(32).output_names == ("u_real", "u_imag") and Helmholtz.ordering_fields == ("c",)
    assert not Helmholtz.symmetric_positive_definite and not Helmholtz.fixed_operator
    assert Helmholtz(32).points_per_wavelength == pytest.approx(2 * math.pi * 0.8 * 32 / 20)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"omega": 0.0}, "omega must be finite and > 0"),
        ({"omega": -3.0}, "omega"),
        ({"speed": 0.0}, "speed must be finite and > 0"),
        ({"contrast": 1.0}, r"contrast must be in \[0, 1\)"),
        ({"contrast": -0.1}, "contrast"),
        ({"source_width": 0.0}, "source_width"),
        ({"alpha": 1.0}, "alpha"),
    ],
)
def test_bad_settings_raise(kwargs, match):
    with pytest.raises(SciMLError, match=match):
        Helmholtz(32, **kwargs)


def test_too_coarse_a_grid_for_the_wavelength_is_refused():
    with pytest.raises(SciMLError, match=r"3\.0 points per wavelength .* use resolution >= 16 \(32 for 8"):
        Helmholtz(12)
    with pytest.raises(SciMLError, match=r"use resolution >= 48 \(96 for 8"):
        Helmholtz(32, omega=60.0)
    assert Helmholtz(16).points_per_wavelength >= 4


def test_unknown_boundary_and_bad_fields_raise():
    with pytest.raises(UnknownNameError, match="choose one of: absorbing, dirichlet"):
        Helmholtz(32, boundary="pml")
    problem = Helmholtz(16)
    c = np.ones((16, 16))
    c[2, 3] = 0.0
    with pytest.raises(SciMLError, match="'c' must be finite and > 0"):
        problem.assemble({"c": c, "f": np.ones((16, 16))})
    with pytest.raises(SciMLError, match="lack field 'f'"):
        problem.assemble({"c": np.ones((16, 16))})
    with pytest.raises(SciMLError, match="expected 256"):
        problem.fields_from_solution(np.zeros(255), {})
