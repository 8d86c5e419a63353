"""One-step training and rollout: window pairing, exact rollouts of known linear dynamics,
errors, training that lowers the loss (and is seeded), and any GridModel fits."""

import copy

import numpy as np
import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.base import GridModel
from sciml.models.sinenet import SineNet
from sciml.models.unet import UNet
from sciml.rollout import (WindowDataset, evaluate_rollout, fit_field_normalizer, from_channels, rollout,
                           to_channels, train_one_step)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ShiftAndExtrapolate(GridModel):
    """The exact step map of two linear dynamics, for windows of 2 frames of 2 fields on a periodic 1-D grid:
    field "s" moves one point right per step, field "e" changes linearly in time
    (``e_{t+1} = 2 e_t - e_{t-1}``, so the order of the frames in the window matters).
    With ``horizon = 2`` it predicts two frames per call."""

    def __init__(self, horizon: int = 1):
        super().__init__(dict(in_channels=4, out_channels=2 * horizon, dim=1))
        self.horizon = horizon
        self.anchor = torch.nn.Parameter(torch.zeros((), dtype=torch.float64))  # sets device and dtype

    def forward(self, x):
        frames = from_channels(x, 2)                   # (B, 2, fields, n)
        s, e_old, e = frames[:, 1, 0], frames[:, 0, 1], frames[:, 1, 1]
        out = [torch.stack([torch.roll(s, k, dims=-1), (k + 1) * e - k * e_old], dim=1) for k in range(1, self.horizon + 1)]
        return to_channels(torch.stack(out, dim=1))


def linear_trajectories(n_traj=3, n_times=9, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    s0, a, b = torch.randn(3, n_traj, n, generator=g, dtype=torch.float64)
    t = torch.arange(n_times, dtype=torch.float64)
    return {"s": torch.stack([torch.roll(s0, k, dims=-1) for k in range(n_times)], dim=1),
            "e": a[:, None] + t[None, :, None] * b[:, None]}


def test_windows_pair_history_with_the_next_frames():
    b, t, f = np.meshgrid(np.arange(2), np.arange(7), np.arange(3), indexing="ij")
    values = 100.0 * b + 10 * t + f                                    # (traj, time, field)
    traj = {name: np.repeat(values[..., k, None], 5, axis=-1) for k, name in enumerate("abc")}
    ds = WindowDataset(traj, history=3, horizon=2)
    assert len(ds) == 2 * 3 and ds.windows_per_trajectory == 3 and ds.field_names == ["a", "b", "c"]
    for i in range(len(ds)):
        tr, start = divmod(i, 3)
        x, y = ds[i]
        assert x.shape == (9, 5) and y.shape == (6, 5)
        expect_x = [100 * tr + 10 * (start + k) + fld for k in range(3) for fld in range(3)]
        expect_y = [100 * tr + 10 * (start + 3 + k) + fld for k in range(2) for fld in range(3)]
        assert x[:, 0].tolist() == expect_x and y[:, 0].tolist() == expect_y
    xb, yb = ds.batch([4, 1])
    torch.testing.assert_close(xb[0], ds[4][0])
    torch.testing.assert_close(yb[1], ds[1][1])


def test_short_trajectories_and_bad_models_are_refused():
    traj = {"u": torch.zeros(2, 4, 8)}
    message = "trajectory shorter than the model's input window: 4 frames, but history 4 \\+ horizon 1 = 5 are needed"
    with pytest.raises(SciMLError, match=message):
        WindowDataset(traj, history=4)
    model = SineNet(in_channels=4, out_channels=1, dim=1, waves=1, width=2, levels=1)
    with pytest.raises(SciMLError, match="trajectory shorter than the model's input window"):
        train_one_step(model, traj, history=4, epochs=1, batch_size=2, lr=1e-3, weight_decay=0.0, seed=0)
    with pytest.raises(SciMLError, match="input window plus the rollout: 4 frames, but history 2 \\+ 3 steps"):
        evaluate_rollout(SineNet(in_channels=2, out_channels=1, dim=1, waves=1, width=2, levels=1), traj, 2, n_steps=3)
    with pytest.raises(SciMLError, match="takes 4 input channels but history 3 of fields \\['u'\\] needs 3"):
        rollout(model, traj, n_steps=1, history=3)
    with pytest.raises(SciMLError, match="same \\(batch, time, \\*space\\) shape"):
        WindowDataset({"u": torch.zeros(2, 5, 8), "v": torch.zeros(2, 5, 9)}, history=2)
    with pytest.raises(SciMLError, match="not a multiple of the 2 fields"):
        rollout(SineNet(in_channels=4, out_channels=3, dim=1, waves=1, width=2, levels=1),
                {"u": torch.zeros(1, 2, 8), "v": torch.zeros(1, 2, 8)}, n_steps=1, history=2)


@pytest.mark.parametrize("normalized", [False, True])
@pytest.mark.parametrize("horizon", [1, 2])
def test_rollout_of_the_exact_step_map_reproduces_the_trajectory(horizon, normalized):
    traj = linear_trajectories()
    norm = fit_field_normalizer(traj) if normalized else None
    model = ShiftAndExtrapolate(horizon)
    n_steps = 7 // horizon
    pred = rollout(model, {k: v[:, :2] for k, v in traj.items()}, n_steps=n_steps, history=2, normalizer=norm,
                   batch_size=2)
    for name in traj:
        assert pred[name].shape == (3, n_steps * horizon, 16)
        torch.testing.assert_close(pred[name], traj[name][:, 2: 2 + n_steps * horizon], rtol=0, atol=1e-11)
    # a window longer than history: only its last frames count
    later = rollout(model, {k: v[:, :4] for k, v in traj.items()}, n_steps=1, history=2, normalizer=norm)
    torch.testing.assert_close(later["s"], traj["s"][:, 4: 4 + horizon], rtol=0, atol=1e-11)


def test_evaluate_rollout_errors():
    traj = linear_trajectories()
    exact = evaluate_rollout(ShiftAndExtrapolate(), traj, history=2, n_steps=5)
    assert exact["one_step_l2"] < 1e-13 and exact["rollout_l2"] < 1e-12
    assert len(exact["rollout_l2_per_step"]) == 5 and exact["n_trajectories"] == 3 and exact["horizon"] == 1
    assert exact["inference_seconds"] >= 0

    class Zero(ShiftAndExtrapolate):
        def forward(self, x):
            return torch.zeros_like(x[:, :2])

    zero = evaluate_rollout(Zero(), traj, history=2, n_steps=5, batch_size=2)
    assert zero["one_step_l2"] == pytest.approx(1.0) and zero["rollout_l2_per_step"] == pytest.approx([1.0] * 5)


def shift_trajectories(n_traj=4, n_times=8, n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    u0 = torch.randn(n_traj, n, generator=g).cumsum(-1)
    u0 = u0 - torch.linspace(0, 1, n) * u0[:, -1:]  # periodic-ish and smooth
    return {"u": torch.stack([torch.roll(u0, k, dims=-1) for k in range(n_times)], dim=1)}


def test_training_lowers_the_loss_and_is_seeded():
    traj = shift_trajectories()
    torch.manual_seed(0)
    model = SineNet(in_channels=2, out_channels=1, dim=1, waves=1, width=6, levels=1, padding="circular")
    twin = copy.deepcopy(model)
    options = dict(history=2, epochs=8, batch_size=6, lr=5e-3, weight_decay=1e-4, seed=3, noise=0.01)
    before = evaluate_rollout(model, traj, history=2, n_steps=3, normalizer=fit_field_normalizer(traj))
    out = train_one_step(model, traj, **options)
    assert out["losses"][-1] < 0.5 * out["losses"][0] and out["final_loss"] == out["losses"][-1]
    assert out["n_windows"] == 4 * 6 and out["steps"] == 8 * 4 and out["n_parameters"] == model.n_parameters
    assert train_one_step(twin, traj, **options)["losses"] == out["losses"]
    after = evaluate_rollout(model, traj, history=2, n_steps=3, normalizer=out["normalizer"])
    assert after["one_step_l2"] < 0.5 * before["one_step_l2"]


@pytest.mark.parametrize("name, options", [("fno", {"n_modes": 4, "width": 4, "n_layers": 1}),
                                           ("mgno", {"width": 4, "n_layers": 1, "padding": "periodic"}),
                                           (UNet.name, {"width": 4, "levels": 1})])
def test_any_grid_model_trains_and_rolls_out(name, options):
    traj = shift_trajectories(n_traj=2, n_times=6)
    torch.manual_seed(0)
    model = build_model(name, in_channels=3, out_channels=1, dim=1, **options)
    out = train_one_step(model, traj, history=3, epochs=1, batch_size=4, lr=1e-3, weight_decay=0.0, seed=0,
                         loss="mse")
    result = evaluate_rollout(model, traj, history=3, n_steps=3, normalizer=out["normalizer"])
    assert np.isfinite(out["final_loss"]) and len(result["rollout_l2_per_step"]) == 3
