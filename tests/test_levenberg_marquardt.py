"""Batched Levenberg-Marquardt and its implicit-function backward (float64, tiny problems)."""

import pytest
import torch

from sciml.errors import ConvergenceError, SciMLError
from sciml.solvers.levenberg_marquardt import (STATUS, batched_jacobian, batched_levenberg_marquardt,
                                               implicit_least_squares)

F64 = torch.float64


def rosenbrock(w, a):
    """Residuals (10 (w1 - w0^2), a - w0): minimum 0 at (a, a^2)."""
    return torch.stack([10 * (w[:, 1] - w[:, 0] ** 2), a - w[:, 0]], dim=-1)


def test_rosenbrock_batch_converges_to_known_minima():
    a = torch.tensor([1.0, -1.0, 2.0, 0.5], dtype=F64)
    w0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0], [3.0, -2.0], [1.0, 5.0]], dtype=F64)
    w, report = batched_levenberg_marquardt(rosenbrock, w0, (a,), max_iterations=200, tol=1e-12)
    assert report.converged.all(), report.message
    torch.testing.assert_close(w, torch.stack([a, a ** 2], dim=-1), rtol=0, atol=1e-8)
    assert (report.iterations >= 2).all() and report.iterations.dtype == torch.long
    assert (report.residual < 1e-8).all()
    assert report.message.startswith("Levenberg-Marquardt: 4/4 problems converged")


def test_affine_problems_match_lstsq_with_ridge():
    torch.manual_seed(0)
    A, b, ridge = torch.randn(3, 7, 4, dtype=F64), torch.randn(3, 7, dtype=F64), 1e-2

    def affine(w):
        return torch.einsum("emn,en->em", A, w) - b

    augmented = torch.cat([A, ridge ** 0.5 * torch.eye(4, dtype=F64).expand(3, 4, 4)], dim=1)
    expected = torch.linalg.lstsq(augmented, torch.cat([b, torch.zeros(3, 4, dtype=F64)], 1).unsqueeze(-1)).solution
    w, report = batched_levenberg_marquardt(affine, torch.zeros(3, 4, dtype=F64), ridge=ridge, tol=1e-12)
    assert report.converged.all(), report.message
    torch.testing.assert_close(w, expected.squeeze(-1), rtol=1e-9, atol=1e-10)
    # undamped, the first (Gauss-Newton) step is exact and the next stationarity test stops it
    w_gn, report_gn = batched_levenberg_marquardt(affine, torch.zeros(3, 4, dtype=F64), ridge=ridge, damping=0.0)
    torch.testing.assert_close(w_gn, expected.squeeze(-1), rtol=1e-9, atol=1e-10)
    assert report_gn.iterations.tolist() == [1, 1, 1]


def test_ill_conditioned_problems_stop_only_at_the_minimiser():
    # singular values 1 and 1e-4, a far start and the default damping: a gradient test relative to the
    # first gradient (or a damped step) is met long before the weak direction has converged
    torch.manual_seed(2)
    u, _ = torch.linalg.qr(torch.randn(2, 6, 2, dtype=F64))
    v, _ = torch.linalg.qr(torch.randn(2, 2, 2, dtype=F64))
    A = u @ torch.diag(torch.tensor([1.0, 1e-4], dtype=F64)) @ v.transpose(1, 2)
    b = torch.randn(2, 6, dtype=F64)
    expected = torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)
    w, report = batched_levenberg_marquardt(lambda w: torch.einsum("emn,en->em", A, w) - b,
                                            torch.full((2, 2), 100.0, dtype=F64), tol=1e-4, max_iterations=200)
    assert report.converged.all() and {STATUS[int(s)] for s in report.status} == {"stationary"}, report.message
    assert ((w - expected).norm(dim=-1) <= 1e-3 * expected.norm(dim=-1)).all()


def test_jacobian_of_independent_problems():
    torch.manual_seed(1)
    w, c = torch.randn(3, 2, dtype=F64), torch.randn(3, 4, dtype=F64)

    def fn(w, c):
        return torch.sin(w[:, :1] * c) + w[:, 1:] ** 2 * c

    expected = torch.stack([torch.autograd.functional.jacobian(lambda x: fn(x[None], c[e:e + 1])[0], w[e])
                            for e in range(3)])
    torch.testing.assert_close(batched_jacobian(fn, w, (c,)), expected)


def test_a_given_jacobian_is_used():
    a = torch.tensor([1.0, 2.0], dtype=F64)
    calls = []

    def jacobian(w, a):  # of rosenbrock
        calls.append(1)
        zero = torch.zeros_like(a)
        return torch.stack([torch.stack([-20 * w[:, 0], 10 + zero], -1), torch.stack([zero - 1, zero], -1)], 1)

    w0 = torch.tensor([[-1.2, 1.0], [0.0, 0.0]], dtype=F64)
    w, report = batched_levenberg_marquardt(rosenbrock, w0, (a,), jacobian=jacobian, tol=1e-12, max_iterations=200)
    assert report.converged.all() and len(calls) == int(report.iterations.max()) + 1
    torch.testing.assert_close(w, torch.stack([a, a ** 2], dim=-1), rtol=0, atol=1e-8)
    with pytest.raises(SciMLError, match="jacobian returned shape"):
        batched_levenberg_marquardt(rosenbrock, w0, (a,), jacobian=lambda w, a: jacobian(w, a)[:, :1])


def test_failures_are_reported_per_problem_never_masked():
    shift = torch.tensor([1.0, -5.0, 1.0], dtype=F64)

    def fn(w, shift):  # problem 1: sqrt of a negative number at the start
        return torch.stack([torch.sqrt(shift + w[:, 0]) - 2.0, w[:, 1] - 1.0], dim=-1)

    w, report = batched_levenberg_marquardt(fn, torch.zeros(3, 2, dtype=F64), (shift,), tol=1e-12)
    assert report.converged.tolist() == [True, False, True]
    assert STATUS[int(report.status[1])] == "non_finite" and report.iterations[1] == 0
    assert torch.isfinite(w).all() and w[1].tolist() == [0.0, 0.0]          # kept, not replaced
    assert torch.isnan(report.residual[1])                                   # reported as it is
    torch.testing.assert_close(w[0], torch.tensor([3.0, 1.0], dtype=F64))
    assert "1 failed: problem 1 (non-finite residual or Jacobian)" in report.message
    with pytest.raises(ConvergenceError, match="2/3 problems converged"):
        report.raise_if_failed()

    _, short = batched_levenberg_marquardt(rosenbrock, torch.tensor([[-1.2, 1.0]], dtype=F64),
                                           (torch.ones(1, dtype=F64),), max_iterations=2)
    assert STATUS[int(short.status[0])] == "max_iterations" and not short.converged.any()


def test_steps_into_non_finite_region_are_rejected():
    # Gauss-Newton from w = 10 jumps to w < 0 where log is nan; LM rejects, damps and converges.
    w, report = batched_levenberg_marquardt(lambda w: torch.log(w) - torch.log(torch.tensor(2.0, dtype=F64)),
                                            torch.full((1, 1), 10.0, dtype=F64), damping=0.0, tol=1e-12)
    assert report.all_converged and report.iterations[0] > 2
    torch.testing.assert_close(w, torch.full((1, 1), 2.0, dtype=F64))


def test_bad_input():
    with pytest.raises(SciMLError, match="non-finite"):
        batched_levenberg_marquardt(rosenbrock, torch.tensor([[float("nan"), 0.0]], dtype=F64), (torch.ones(1),))
    with pytest.raises(SciMLError, match="problems, unknowns"):
        batched_levenberg_marquardt(rosenbrock, torch.zeros(2, dtype=F64), (torch.ones(1),))
    with pytest.raises(SciMLError, match="hessian"):
        implicit_least_squares(rosenbrock, torch.zeros(1, 2, dtype=F64), (torch.ones(1),), hessian="newton")


def curved(w, theta):
    """Three residuals in two unknowns, non-zero at the minimum (so the exact Hessian matters)."""
    return torch.stack([w[:, 0] + theta[:, 0] * w[:, 1] ** 2 - 1.0,
                        w[:, 1] - theta[:, 1] * torch.sin(w[:, 0]),
                        w[:, 0] * w[:, 1] - theta[:, 2]], dim=-1)


def solve_curved(theta, hessian="exact", max_iterations=200):
    w, report = implicit_least_squares(curved, torch.full((theta.shape[0], 2), 0.5, dtype=F64), (theta,),
                                       hessian=hessian, ridge=1e-3, tol=1e-14, max_iterations=max_iterations)
    assert report.all_converged, report.message
    return w


def test_implicit_backward_gradcheck_float64():
    theta = torch.tensor([[0.3, 0.8, 0.9], [0.5, -0.4, 0.2]], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(solve_curved, (theta,), eps=1e-6, atol=1e-6, rtol=1e-5)
    # Gauss-Newton drops the second-order term: a different (approximate) gradient here
    exact = torch.autograd.grad(solve_curved(theta).sum(), theta)[0]
    approximate = torch.autograd.grad(solve_curved(theta, "gauss-newton").sum(), theta)[0]
    assert (exact - approximate).abs().max() > 1e-3


def test_backward_memory_does_not_depend_on_iterations():
    saved = []

    def pack(t):
        saved.append(t.shape)
        return t

    results = {}
    for start in ([0.9, 0.8], [-3.0, 10.0]):  # few vs many iterations
        a = torch.ones(1, dtype=F64, requires_grad=True)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            w, report = implicit_least_squares(rosenbrock, torch.tensor([start], dtype=F64), (a,),
                                               tol=1e-13, max_iterations=300)
        w.sum().backward()
        results[tuple(start)] = (int(report.iterations[0]), list(saved), a.grad.clone())
    (few, saved_few, grad_few), (many, saved_many, grad_many) = results.values()
    assert many >= few + 15
    assert saved_few == saved_many and len(saved_few) == 2                  # w* and a, nothing per iteration
    torch.testing.assert_close(grad_few, grad_many)
    torch.testing.assert_close(grad_few, torch.tensor([3.0], dtype=F64))     # d(a + a^2)/da at a = 1
