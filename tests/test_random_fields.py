"""Gaussian random fields: the KL expansion of FNO's GRF.m, checked against an explicit cosine sum."""

import math

import numpy as np
import pytest

from sciml.datasets import gaussian_random_field
from sciml.errors import SciMLError


def cosine_basis(n):
    """L2(0,1)-orthonormal Neumann eigenfunctions c_k cos(pi k x) at the cell centres, as columns."""
    x = (np.arange(n) + 0.5) / n
    k = np.arange(n)
    basis = np.sqrt(2.0) * np.cos(np.pi * np.outer(x, k))
    basis[:, 0] = 1.0
    return basis


def kl_sum(shape, alpha, tau, sigma, xi):
    """sum_k sigma (pi^2 |k|^2 + tau^2)^(-alpha/2) xi_k phi_k(x) with phi_k products of cosines."""
    k2 = np.zeros(shape)
    for axis, n in enumerate(shape):
        k2 = k2 + (np.pi * np.arange(n).reshape([-1 if i == axis else 1 for i in range(len(shape))])) ** 2
    coef = sigma * (k2 + tau**2) ** (-alpha / 2)
    coef[(0,) * len(shape)] = 0.0
    field = coef * xi
    for axis, n in enumerate(shape):
        field = np.moveaxis(np.tensordot(cosine_basis(n), field, axes=(1, axis)), 0, axis)
    return field


def test_matches_the_fno_matlab_recipe_in_2d():
    # GRF.m: coef = tau^(alpha-1) (pi^2 (K1^2 + K2^2) + tau^2)^(-alpha/2), L = s coef xi, L(1,1) = 0, idct2(L)
    n, alpha, tau = 24, 2.0, 3.0
    xi = np.random.default_rng(5).standard_normal((n, n))
    expected = kl_sum((n, n), alpha, tau, tau ** (alpha - 1), xi)
    field = gaussian_random_field((n, n), alpha, tau, np.random.default_rng(5))
    np.testing.assert_allclose(field, expected, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shape", [(40,), (12, 7), (6, 5, 4)])
def test_is_the_kl_sum_in_any_dimension(shape):
    alpha, tau = 2.5, 4.0
    xi = np.random.default_rng(1).standard_normal(shape)
    expected = kl_sum(shape, alpha, tau, tau ** (alpha - len(shape) / 2), xi)
    np.testing.assert_allclose(gaussian_random_field(shape, alpha, tau, 1), expected, rtol=1e-12, atol=1e-13)


def test_reproducible_from_seed_and_seeds_differ():
    first = gaussian_random_field((16, 16), 2.0, 3.0, np.random.default_rng(7))
    again = gaussian_random_field((16, 16), 2.0, 3.0, np.random.default_rng(7))
    other = gaussian_random_field((16, 16), 2.0, 3.0, np.random.default_rng(8))
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, gaussian_random_field((16, 16), 2.0, 3.0, 7))
    assert np.abs(first - other).max() > 0.1


@pytest.mark.parametrize("shape", [(64,), (32, 32), (8, 9, 10)])
def test_constant_mode_is_zero(shape):
    field = gaussian_random_field(shape, 2.0, 3.0, np.random.default_rng(0))
    assert field.shape == shape and field.dtype == np.float64
    assert abs(field.mean()) < 1e-14 * max(1.0, np.abs(field).max())
    assert field.std() > 0


def test_sigma_scales_the_field():
    base = gaussian_random_field((16, 16), 2.0, 3.0, 3)
    np.testing.assert_allclose(gaussian_random_field((16, 16), 2.0, 3.0, 3, sigma=6.0), 2.0 * base, rtol=1e-13)


def test_mean_square_matches_the_covariance_eigenvalues():
    # E[grid mean of u^2] = sum_{k != 0} sigma^2 (pi^2 |k|^2 + tau^2)^(-alpha) (Parseval on the grid)
    n, alpha, tau, samples = 16, 2.0, 3.0, 400
    k1, k2 = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    eig = tau ** (2 * alpha - 2) * (np.pi**2 * (k1**2 + k2**2) + tau**2) ** (-alpha)
    eig[0, 0] = 0.0
    rng = np.random.default_rng(11)
    mean_square = np.mean([np.mean(gaussian_random_field((n, n), alpha, tau, rng) ** 2) for _ in range(samples)])
    standard_error = math.sqrt(2 * np.sum(eig**2) / samples)
    assert abs(mean_square - eig.sum()) < 4 * standard_error


def test_larger_alpha_is_smoother():
    def roughness(alpha):
        values = []
        for seed in range(4):
            u = gaussian_random_field((64, 64), alpha, 3.0, seed)
            values.append((np.mean(np.diff(u, axis=0) ** 2) + np.mean(np.diff(u, axis=1) ** 2)) / np.var(u))
        return np.mean(values)

    r = [roughness(alpha) for alpha in (1.5, 2.0, 3.0)]
    assert r[0] > 2 * r[1] > 4 * r[2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"alpha": 1.0}, "alpha"),  # alpha <= d/2 in 2-D
        ({"alpha": -1.0}, "alpha"),
        ({"tau": 0.0}, "tau"),
        ({"tau": float("nan")}, "tau"),
        ({"sigma": -1.0}, "sigma"),
        ({"shape": (0, 4)}, "shape"),
        ({"shape": (4.5, 4)}, "shape"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    args = {"shape": (8, 8), "alpha": 2.0, "tau": 3.0, "rng": 0} | kwargs
    with pytest.raises(SciMLError, match=match):
        gaussian_random_field(**args)


def test_alpha_bound_depends_on_dimension():
    gaussian_random_field(16, alpha=0.75, tau=3.0, rng=0)  # fine in 1-D
    with pytest.raises(SciMLError, match="d/2 = 1.5"):
        gaussian_random_field((4, 4, 4), alpha=1.5, tau=3.0, rng=0)
