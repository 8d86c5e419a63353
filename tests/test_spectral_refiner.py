"""Spectral-Refiner: per-trajectory fine-tuning of the SFNO's last layer without ground truth.

The test PDE is the heat equation w_t = nu Lap w on the periodic unit square, whose exact
solution is a spectral formula; the residual is Crank-Nicolson in time and is measured in
the negative Sobolev norm ||(1 - Lap)^(-1/2) R|| through Parseval, as in the paper.
"""

import math

import numpy as np
import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.sfno import SFNO
from sciml.models.spectral_refiner import RefinementReport, _equilibration_scales, refine

NU, DT, T_IN, T_OUT, N = 1e-3, 0.05, 4, 4, 16


def laplacian_symbol(n: int) -> torch.Tensor:
    """|2 pi k|^2 on an n x n grid of the unit square (fft2 ordering)."""
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    return (2 * math.pi) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2)


def heat_trajectories(batch: int, seed: int) -> torch.Tensor:
    """Exact heat-equation trajectories (batch, T_IN + T_OUT, N, N) from smooth random data."""
    g = torch.Generator().manual_seed(seed)
    k2 = laplacian_symbol(N)
    w0_hat = torch.fft.fft2(torch.randn(batch, N, N, generator=g, dtype=torch.float64)) * torch.exp(-k2 / 300)
    t = DT * torch.arange(T_IN + T_OUT, dtype=torch.float64)
    trajectory = torch.fft.ifft2(w0_hat[:, None] * torch.exp(-NU * k2 * t[:, None, None])).real
    return trajectory / trajectory[:, :1].flatten(1).std(dim=1)[:, None, None, None]


def heat_residual(prediction: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """Per-sample H^-1 norm of the Crank-Nicolson residual, starting from the last input frame."""
    w_hat = torch.fft.fft2(torch.cat([inputs[:, -1:], prediction], dim=1), norm="forward")
    k2 = laplacian_symbol(w_hat.shape[-1]).to(w_hat.device)
    r = (w_hat[:, 1:] - w_hat[:, :-1]) / DT + NU * k2 * (w_hat[:, 1:] + w_hat[:, :-1]) / 2
    return (r.abs().square() / (1 + k2)).sum(dim=(-2, -1)).mean(dim=1).sqrt()


def unrefined_prediction(model, x):
    """The model's own prediction, computed in float64 on a copy."""
    copy = build_model("sfno", **model.config)
    copy.load_state_dict(model.state_dict())
    with torch.no_grad():
        return copy.double()(x.double())


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = SFNO(in_channels=T_IN, out_channels=T_OUT, modes_space=2, modes_time=2, width=6, n_layers=1)
    trajectory = heat_trajectories(2, seed=0)
    return model, trajectory[:, :T_IN].float(), trajectory[:, T_IN:]


def test_refinement_without_data_reduces_residual_and_error(problem, one_torch_thread):
    model, x, truth = problem
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    report = refine(model, x, heat_residual, ground_truth=truth, steps=30)
    assert isinstance(report, RefinementReport) and report.steps == 30 and not report.diverged.any()
    assert report.modes == (8, 8, 5)  # every frequency of the 16 x 16 grid and of 4 output frames
    assert report.outputs.shape == truth.shape and report.outputs.dtype == torch.float64
    assert bool(torch.isfinite(report.outputs).all())
    # in 30 steps the residual falls by more than six orders of magnitude, and the error against
    # the exact solution (never shown to the refiner) by more than four, from about 12%
    assert np.all(report.residual_after < 1e-6 * report.residual_before)
    assert np.all(report.error_after < 1e-4 * report.error_before) and np.all(report.error_before > 0.1)
    torch.testing.assert_close(torch.as_tensor(report.residual_after), heat_residual(report.outputs, x.double()))
    assert report.seconds > 0 and report.forward_seconds > 0
    assert "residual reduced by a median factor" in report.message and "error_after" in report.summary()
    # the caller's model is untouched
    assert all(torch.equal(v, before_state[k]) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32


def test_the_preconditioner_is_what_makes_lbfgs_converge(problem, one_torch_thread):
    model, x, truth = problem
    plain = refine(model, x, heat_residual, ground_truth=truth, steps=20, probes=0)
    scaled = refine(model, x, heat_residual, ground_truth=truth, steps=20, probes=8)
    # on the raw parameters L-BFGS has cut the residual less than 1000x after 20 steps and the
    # error about 5x; on the equilibrated ones, the residual 1000x more and the error 100x more
    assert np.all(plain.residual_after > 1e-3 * plain.residual_before) and np.all(plain.error_after > 0.01)
    assert np.all(scaled.residual_after < 1e-3 * plain.residual_after)
    assert np.all(scaled.error_after < 1e-2 * plain.error_after)


def test_equilibration_scales_are_exact_for_a_separable_objective():
    curvature = torch.tensor([[1e-6, 1.0], [1e4, 0.0]], dtype=torch.float64)

    def objective(thetas):  # a separable quadratic: its Hessian is diag(curvature)
        return 0.5 * (curvature * thetas[0].square()).sum() + thetas[0].sum()

    (scales,) = _equilibration_scales(objective, [curvature.shape], probes=2, like=curvature)
    expected = curvature.clamp_min(1e4 * torch.finfo(torch.float64).eps).rsqrt()  # the flat one: the largest scale
    torch.testing.assert_close(scales, expected, rtol=1e-12, atol=0)
    with pytest.raises(SciMLError, match="does not depend on the last spectral layer"):
        _equilibration_scales(lambda thetas: thetas[0].sum(), [(3,)], probes=2, like=curvature)


def test_refinement_starts_from_the_model_prediction(problem, one_torch_thread):
    model, x, _ = problem
    report = refine(model, x, heat_residual, steps=1)
    prediction = unrefined_prediction(model, x)
    torch.testing.assert_close(torch.as_tensor(report.residual_before), heat_residual(prediction, x.double()))
    assert report.error_before is None and report.error_after is None


def test_adam_refines_each_sample_as_if_alone(problem, one_torch_thread):
    model, x, truth = problem
    both = refine(model, x, heat_residual, ground_truth=truth, steps=30, optimizer="adam", lr=3e-3)
    first = refine(model, x[:1], heat_residual, ground_truth=truth[:1], steps=30, optimizer="adam", lr=3e-3)
    torch.testing.assert_close(both.outputs[:1], first.outputs, rtol=1e-9, atol=1e-12)
    assert np.all(both.residual_after < 0.1 * both.residual_before)
    assert np.all(both.error_after < both.error_before)


def test_a_non_finite_residual_keeps_the_unrefined_output(problem, one_torch_thread):
    model, x, _ = problem
    calls = []

    def breaks_after_first_call(prediction, inputs):
        calls.append(1)
        r = heat_residual(prediction, inputs)
        return r if len(calls) == 1 else r * float("nan")

    with pytest.raises(SciMLError, match="Hessian-vector products are not finite") as err:
        refine(model, x, breaks_after_first_call, steps=5)  # the preconditioner's probes meet it first
    assert "\n" not in str(err.value)
    calls.clear()
    report = refine(model, x, breaks_after_first_call, steps=5, probes=0)
    assert report.diverged.all() and report.steps == 1 and "non-finite" in report.message
    assert "\n" not in report.message
    torch.testing.assert_close(report.outputs, unrefined_prediction(model, x), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(report.residual_after, report.residual_before)


def test_a_growing_residual_is_reported(problem, one_torch_thread):
    model, x, _ = problem
    report = refine(model, x, heat_residual, steps=3, optimizer="adam", lr=10.0)
    assert report.diverged.all() and "grew" in report.message and "try a smaller lr, fewer modes" in report.message
    torch.testing.assert_close(report.outputs, unrefined_prediction(model, x), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(report.residual_after, report.residual_before)


def test_bad_input_is_one_line(problem, one_torch_thread):
    model, x, truth = problem
    fno = build_model("fno", in_channels=T_IN, out_channels=T_OUT, n_modes=4, width=4)
    cases = [
        (dict(model=fno), "has no final spectral layer"),
        (dict(inputs=x[:, :2]), "fewer than the 4-frame input window"),
        (dict(ground_truth=truth[:, :2]), "ground_truth has shape"),
        (dict(ground_truth=truth * torch.tensor([1.0, 0.0])[:, None, None, None]), r"samples \[1\] is zero"),
        (dict(modes=(8, 8)), "must list 3 integers"),
        (dict(modes=(1, 8, 5)), "between the trained modes"),
        (dict(modes=(8, 8, 6)), "between the trained modes"),
        (dict(steps=0), "steps must be a positive integer"),
        (dict(optimizer="sgd"), "choose one of"),
        (dict(probes=-1), "probes must be a non-negative integer"),
        (dict(probes=True), "probes must be a non-negative integer"),
        (dict(residual_norm=lambda w, inputs: w.sum()), "not a tensor of shape"),
        (dict(residual_norm=lambda w, inputs: w.flatten(1).sum(1) * float("inf")), "not finite"),
    ]
    for change, message in cases:
        kwargs = dict(model=model, inputs=x, residual_norm=heat_residual, steps=1)
        kwargs.update(change)
        with pytest.raises(SciMLError, match=message) as err:
            refine(kwargs.pop("model"), kwargs.pop("inputs"), kwargs.pop("residual_norm"), **kwargs)
        assert "\n" not in str(err.value)
