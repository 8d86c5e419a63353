"""Relative L2/H1 errors and the finite-difference H1 norm."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sciml.errors import SciMLError
from sciml.metrics import gradient, h1_norm, make_loss, relative_h1, relative_l2


def cell_centres(n, dim):
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    return torch.meshgrid(*([c] * dim), indexing="ij")


def test_identities():
    x = torch.randn(5, 2, 12, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    h = (1 / 12, 1 / 10)
    assert relative_l2(x, x, reduce=False).tolist() == [0.0] * 5
    assert relative_h1(x, x, h, reduce=False).tolist() == [0.0] * 5
    torch.testing.assert_close(relative_l2(torch.zeros_like(x), x, reduce=False), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(relative_h1(torch.zeros_like(x), x, h, reduce=False), torch.ones(5, dtype=torch.float64))
    per_sample = relative_l2(1.5 * x, x, reduce=False)
    torch.testing.assert_close(relative_l2(1.5 * x, x), per_sample.mean())
    torch.testing.assert_close(per_sample, torch.full((5,), 0.5, dtype=torch.float64))
    assert make_loss("l2", h)(1.5 * x, x).item() == pytest.approx(0.5)
    assert make_loss("h1", h)(1.5 * x, x).item() == pytest.approx(0.5)


def test_bad_inputs():
    x = torch.ones(2, 1, 8, 8)
    with pytest.raises(SciMLError, match="identically zero"):
        relative_l2(x, torch.zeros_like(x))
    with pytest.raises(SciMLError, match="differs from truth shape"):
        relative_l2(x, torch.ones(2, 1, 8, 4))
    with pytest.raises(SciMLError, match="at least 3 grid points"):
        relative_h1(x[..., :2], x[..., :2], (0.1, 0.5))
    with pytest.raises(SciMLError, match="has 1 entries"):
        relative_h1(x, x, (0.1,))
    with pytest.raises(SciMLError, match="train.loss"):
        make_loss("l1", (0.1, 0.1))


def test_gradient_exact_for_quadratics_without_periodicity():
    n = 7
    x, y = cell_centres(n, 2)
    u = (x**2 + 3 * x * y - 2 * y**2 + x)[None, None]
    ux, uy = gradient(u, (1 / n, 1 / n))
    torch.testing.assert_close(ux[0, 0], 2 * x + 3 * y + 1, rtol=0, atol=1e-12)
    torch.testing.assert_close(uy[0, 0], 3 * x - 4 * y, rtol=0, atol=1e-12)


def test_h1_norm_converges_to_analytic_value():
    # u = sin(pi x) cos(2 pi y) on [0, 1]^2: ||u||^2 = 1/4, ||u_x||^2 = pi^2/4, ||u_y||^2 = pi^2
    exact = math.sqrt(0.25 + math.pi**2 / 4 + math.pi**2)
    errors = []
    for n in (16, 32, 64, 128):
        x, y = cell_centres(n, 2)
        u = (torch.sin(math.pi * x) * torch.cos(2 * math.pi * y))[None, None]
        errors.append(abs(float(h1_norm(u, (1 / n, 1 / n))[0]) - exact) / exact)
    assert all(e1 / e2 > 3 for e1, e2 in zip(errors[1:], errors[2:])), errors  # second order
    assert errors[-1] < 1e-3


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_resolution_consistency(dim):
    norms = []
    for n in (32, 64):
        coords = cell_centres(n, dim)
        u = math.prod(torch.sin(math.pi * c) + c for c in coords)[None, None]
        norms.append(float(h1_norm(u, (1 / n,) * dim)[0]))
    assert norms[0] == pytest.approx(norms[1], rel=2e-3)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.floats(1e-3, 1e3), dim=st.integers(1, 3))
def test_relative_errors_are_scale_invariant(seed, c, dim):
    g = torch.Generator().manual_seed(seed)
    shape = (3, 2) + (6,) * dim
    true = torch.randn(shape, dtype=torch.float64, generator=g)
    pred = true + 0.3 * torch.randn(shape, dtype=torch.float64, generator=g)
    h = (1 / 6,) * dim
    torch.testing.assert_close(relative_l2(c * pred, c * true, reduce=False), relative_l2(pred, true, reduce=False))
    torch.testing.assert_close(relative_h1(c * pred, c * true, h, reduce=False), relative_h1(pred, true, h, reduce=False))
