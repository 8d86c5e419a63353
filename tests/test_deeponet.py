"""DeepONet: both forward forms, the POD variant, input checks, and learning the antiderivative."""

import math

import numpy as np
import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.deeponet import DeepONet, cell_centres


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _model(grid, branch, **kwargs):
    if branch == "mlp":
        kwargs["n_sensors"] = math.prod(grid)
    return DeepONet(in_channels=2, out_channels=3, dim=len(grid), branch=branch, width=8, depth=2, n_basis=5, **kwargs)


@pytest.mark.parametrize("branch", ["mlp", "cnn"])
@pytest.mark.parametrize("grid", [(20,), (8, 12)])
def test_shapes_gradients_and_point_queries(branch, grid):
    torch.manual_seed(0)
    model = _model(grid, branch).double()
    x = torch.randn(4, 2, *grid, dtype=torch.float64)
    out = model(x)
    assert out.shape == (4, 3, *grid) and out.dtype == torch.float64

    y = torch.rand(4, 7, len(grid), dtype=torch.float64)
    points = model.forward_points(x, y)
    assert points.shape == (4, 3, 7)
    (out.square().mean() + points.square().mean()).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not no_grad, f"parameters without gradient: {no_grad}"

    # the Cartesian-product form is the pointwise form at the cell centres
    with torch.no_grad():
        centres = cell_centres(grid, dtype=torch.float64).expand(4, -1, -1)
        torch.testing.assert_close(model.forward_points(x, centres).reshape(out.shape), model(x), rtol=1e-12, atol=1e-12)
        # sample i at its own points equals evaluating that sample alone
        torch.testing.assert_close(points[1:2], model.forward_points(x[1:2], y[1:2]), rtol=1e-12, atol=1e-12)


def test_resolution_change_only_for_cnn():
    torch.manual_seed(0)
    cnn = _model((16, 16), "cnn")
    assert cnn.supports_resolution_change
    assert cnn(torch.randn(2, 2, 24, 20)).shape == (2, 3, 24, 20)
    mlp = _model((16, 16), "mlp")
    assert not mlp.supports_resolution_change and not _model((16, 16), "cnn", pod=True).supports_resolution_change
    with pytest.raises(SciMLError, match=r"too small for the CNN branch's 2 stride-2 convolutions: use resolution >= 4"):
        cnn.check_input((16, 3))


def test_sensor_count_and_option_errors():
    model = build_model("deeponet", in_channels=1, out_channels=1, dim=1, n_sensors=100)
    model.check_input((100,))
    with pytest.raises(SciMLError, match=r"^model.n_sensors=100 but the data has 64 points"):
        model.check_input((64,))
    with pytest.raises(SciMLError, match="model.n_sensors=100 but the data has 64 points"):
        model(torch.zeros(1, 1, 64))
    with pytest.raises(SciMLError, match="set model.n_sensors"):
        build_model("deeponet", in_channels=1, out_channels=1)
    with pytest.raises(SciMLError, match="only for branch = 'mlp'"):
        build_model("deeponet", in_channels=1, out_channels=1, branch="cnn", n_sensors=16)
    with pytest.raises(SciMLError, match="model.activation"):
        build_model("deeponet", in_channels=1, out_channels=1, n_sensors=8, activation="swish")
    with pytest.raises(SciMLError, match="model.branch"):
        build_model("deeponet", in_channels=1, out_channels=1, branch="fno")
    with pytest.raises(SciMLError, match="query points must have shape"):
        model.forward_points(torch.zeros(2, 1, 100), torch.zeros(2, 5, 2))
    with pytest.raises(SciMLError, match="fit_pod needs a model built with pod = true"):
        model.fit_pod(torch.zeros(4, 1, 100))


def test_pod_modes_reconstruct_low_rank_data():
    rng = np.random.default_rng(3)
    grid, n_samples, rank, p = (8, 6), 30, 3, 5
    n_points = math.prod(grid)
    # per channel: mean + rank-3 combinations of fixed random fields
    mean = rng.standard_normal((3, n_points))
    fields = rng.standard_normal((3, rank, n_points))
    weights = rng.standard_normal((n_samples, 3, rank))
    data = torch.from_numpy(mean + np.einsum("ncr,crp->ncp", weights, fields)).reshape(n_samples, 3, *grid)
    x = torch.from_numpy(rng.standard_normal((n_samples, 2, *grid)))

    torch.manual_seed(0)
    model = DeepONet(in_channels=2, out_channels=3, dim=2, n_sensors=n_points, width=40, depth=1, n_basis=p,
                     pod=True).double()
    assert [n for n, _ in model.named_buffers()] == ["pod_mean", "pod_modes", "pod_grid"]
    with pytest.raises(SciMLError, match="call model.fit_pod"):
        model(x)
    captured = model.fit_pod(data)
    torch.testing.assert_close(captured, torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    assert all("pod" not in name for name, _ in model.named_parameters())

    # the modes are orthonormal for the mean over grid points and span the data
    gram = torch.einsum("nkc,njc->ckj", model.pod_modes, model.pod_modes) / n_points
    torch.testing.assert_close(gram, torch.eye(p, dtype=torch.float64).expand(3, p, p), rtol=0, atol=1e-12)
    coeffs = model.pod_coefficients(data)
    rebuilt = model.pod_mean + torch.einsum("bkc,nkc->bcn", coeffs, model.pod_modes)
    torch.testing.assert_close(rebuilt.reshape(data.shape), data, rtol=0, atol=1e-10)

    # solve the branch's last layer for those coefficients: the model then reproduces the data
    hidden = model.branch[:-1](x.flatten(1))
    design = torch.cat([hidden, torch.ones(n_samples, 1, dtype=torch.float64)], dim=1)
    solution = torch.linalg.lstsq(design, coeffs.reshape(n_samples, -1)).solution
    with torch.no_grad():
        model.branch[-1].weight.copy_(solution[:-1].T)
        model.branch[-1].bias.copy_(solution[-1])
        torch.testing.assert_close(model(x), data, rtol=0, atol=1e-8)

    out = model(x)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())

    # the buffers round-trip through a state dict into a freshly built (unfitted) model
    fresh = build_model("deeponet", **model.config).double()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)

    fresh.check_input(grid)
    with pytest.raises(SciMLError, match=r"fitted on grid \[8, 6\] but the data's grid is \[6, 8\].*cannot change resolution"):
        fresh.check_input((6, 8))
    with pytest.raises(SciMLError, match="only evaluates on the grid"):
        fresh.forward_points(x, torch.rand(n_samples, 4, 2, dtype=torch.float64))
    with pytest.raises(SciMLError, match="build the model with n_basis = 3"):
        fresh.fit_pod(data, n_modes=3)


def _antiderivative_data(n_samples, m, rng):
    """Random sums of sines and cosines (frequencies 1..4) on ``m`` cell centres and their integrals.

    The target is the cumulative trapezoidal integral from the first sensor,
    ``s(x_j) = int_{x_0}^{x_j} u``: the antiderivative operator, the first example of Lu et al. 2021.
    """
    x = (np.arange(m) + 0.5) / m
    k = np.arange(1, 5)
    a, b = rng.standard_normal((2, n_samples, 4)) / k
    u = a @ np.sin(2 * np.pi * k[:, None] * x) + b @ np.cos(2 * np.pi * k[:, None] * x)
    s = np.concatenate([np.zeros((n_samples, 1)), np.cumsum((u[:, 1:] + u[:, :-1]) / 2, axis=1) / m], axis=1)
    return torch.from_numpy(u[:, None]).float(), torch.from_numpy(s[:, None]).float()


def test_learns_the_antiderivative():
    rng = np.random.default_rng(0)
    u_train, s_train = _antiderivative_data(500, 100, rng)
    u_test, s_test = _antiderivative_data(200, 100, rng)
    torch.manual_seed(0)
    model = DeepONet(in_channels=1, out_channels=1, dim=1, n_sensors=100, width=40, depth=2, n_basis=40)
    steps = 1000
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        loss = (model(u_train) - s_train).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        mse = float((model(u_test) - s_test).square().mean())
        baseline = float((s_test - s_train.mean()).square().mean())
    assert mse < 1e-3 and mse < 1e-2 * baseline, (mse, baseline)


SMALL_CONFIG = {"branch": "cnn", "width": 8, "depth": 2, "n_basis": 8}
"""For tests/test_models.py (in_channels=2, out_channels=3, dim=2; 16x16 then 24x20; (2, 2) is too small)."""


def test_pod_deeponet_trains_through_the_training_loop(tmp_path):
    import numpy as np

    from sciml.evaluation import evaluate
    from sciml.loader import ArrayDataset
    from sciml.training import train

    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 32)
    coeffs = rng.standard_normal((40, 3))
    u = coeffs @ np.stack([np.sin(np.pi * x), np.sin(2 * np.pi * x), np.cos(np.pi * x)])
    s = coeffs @ np.stack([np.cos(np.pi * x), np.cos(2 * np.pi * x), x])
    data = ArrayDataset({"u": u, "s": s}, ["u"], ["s"])
    config = {"model": {"name": "deeponet", "dim": 1, "n_sensors": 32, "pod": True, "n_basis": 3, "width": 16},
              "train": {"epochs": 30, "loss": "l2", "lr": 1e-2}, "data": {"batch_size": 8}}
    summary = train(config, data, data, tmp_path / "run", progress=False)
    assert summary["best_val_l2"] < 0.2
    assert evaluate(tmp_path / "run", data)["relative_l2"]["mean"] < 0.2
