"""One-step training and autoregressive rollout of grid models on time-dependent data.

Trajectories are a mapping ``{field: array (B, T, *space)}`` (NumPy or torch), e.g.
``{"w": ...}`` or ``{"h": ..., "u": ..., "v": ...}``, all of one shape. A model sees a
window of the last ``history`` frames of every field stacked as channels and predicts the
next ``horizon`` frames (``horizon = out_channels / fields``, normally 1). Channels are
time-major, oldest frame first: channel ``t * F + f`` holds field ``f`` (in the mapping's
order) at frame ``t`` of the window, the layout of SineNet's and PDEArena's code
(a reshape of ``(B, T, F, *space)``). So any :class:`~sciml.models.base.GridModel` with
``in_channels = history * F`` and ``out_channels = horizon * F`` (FNO, MgNO, SineNet,
U-Net, ...) can be trained and rolled out here.

Normalisation (as in the SineNet reference code): each field is standardised with one
mean and one standard deviation over all training trajectories, frames and points
(:func:`fit_field_normalizer`, a :class:`~sciml.normalization.ChannelNormalizer` over
fields); the model maps standardised windows to standardised frames, rollouts feed its
standardised predictions back, and errors are measured after decoding, in physical units.

Examples
--------
>>> import torch
>>> from sciml.rollout import WindowDataset
>>> traj = {"u": torch.arange(5.0).reshape(1, 5, 1).expand(1, 5, 4), "v": torch.zeros(1, 5, 4)}
>>> ds = WindowDataset(traj, history=2)
>>> len(ds), [tuple(t.shape) for t in ds[0]]
(3, [(4, 4), (2, 4)])
>>> ds[1][0][:, 0].tolist(), ds[1][1][:, 0].tolist()   # channels (t, field): u1 v1 u2 v2 -> u3 v3
([1.0, 0.0, 2.0, 0.0], [3.0, 0.0])
"""

from __future__ import annotations

import math
import time
from typing import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from sciml.errors import SciMLError
from sciml.metrics import relative_l2
from sciml.normalization import ChannelNormalizer, RunningStats

LOSSES = ("relative_l2", "mse")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SciMLError(message)


def _positive_int(name: str, value) -> int:
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1,
             f"{name} must be a positive integer, got {value!r}")
    return value


def _field_names(trajectories) -> list[str]:
    _require(isinstance(trajectories, Mapping) and len(trajectories) > 0,
             "trajectories must be a non-empty mapping {field: array (batch, time, *space)}")
    return [str(k) for k in trajectories]


def stack_fields(trajectories: Mapping) -> tuple[list[str], torch.Tensor]:
    """Field names and one tensor ``(B, T, F, *space)`` from ``{field: (B, T, *space)}``.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.rollout import stack_fields
    >>> names, data = stack_fields({"h": np.zeros((2, 6, 8, 8)), "u": np.ones((2, 6, 8, 8))})
    >>> names, tuple(data.shape)
    (['h', 'u'], (2, 6, 2, 8, 8))
    """
    names = _field_names(trajectories)
    arrays = [torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v) for v in trajectories.values()]
    shape = tuple(arrays[0].shape)
    for name, a in zip(names, arrays):
        _require(a.ndim >= 3, f"field {name!r} has shape {tuple(a.shape)}: trajectories are (batch, time, *space) arrays")
        _require(tuple(a.shape) == shape, f"field {name!r} has shape {tuple(a.shape)} but field {names[0]!r} has "
                                          f"{shape}: give every field the same (batch, time, *space) shape")
        _require(a.is_floating_point(), f"field {name!r} has dtype {a.dtype}: store trajectories as floating point")
    return names, torch.stack(arrays, dim=2)


def to_channels(frames: torch.Tensor) -> torch.Tensor:
    """``(B, T, F, *space) -> (B, T * F, *space)``, channel ``t * F + f`` (time-major)."""
    return frames.flatten(1, 2)


def from_channels(x: torch.Tensor, n_fields: int) -> torch.Tensor:
    """Inverse of :func:`to_channels`: ``(B, T * F, *space) -> (B, T, F, *space)``."""
    return x.unflatten(1, (x.shape[1] // n_fields, n_fields))


def fit_field_normalizer(trajectories: Mapping) -> ChannelNormalizer:
    """One mean and standard deviation per field, over all trajectories, frames and points (float64).

    Examples
    --------
    >>> import torch
    >>> from sciml.rollout import fit_field_normalizer
    >>> norm = fit_field_normalizer({"a": 2 + 3 * torch.randn(4, 10, 32, 32, generator=torch.Generator().manual_seed(0))})
    >>> [round(v, 1) for v in norm.mean.tolist() + norm.std.tolist()]
    [2.0, 3.0]
    """
    return _fit_stacked(stack_fields(trajectories)[1])


def _fit_stacked(data: torch.Tensor) -> ChannelNormalizer:
    """Per-field statistics of ``(B, T, F, *space)``, one trajectory at a time (bounded float64 copies)."""
    stats = RunningStats()
    for trajectory in data:
        stats.update(trajectory)
    return stats.normalizer()


def _scale(norm: ChannelNormalizer | None, frames: torch.Tensor, decode: bool = False) -> torch.Tensor:
    """Encode (or decode) frames ``(B, T, F, *space)`` field by field; ``None`` leaves them as they are."""
    if norm is None:
        return frames
    flat = frames.flatten(0, 1)
    return (norm.decode(flat) if decode else norm.encode(flat)).reshape(frames.shape)


def _model_horizon(model, history: int, names: list[str]) -> int:
    """Check the model's channels against ``history`` and the fields; return its ``horizon``."""
    n = len(names)
    c_in, c_out = getattr(model, "in_channels", None), getattr(model, "out_channels", None)
    _require(c_in == history * n, f"the model takes {c_in} input channels but history {history} of fields {names} "
                                  f"needs {history * n}: build it with in_channels = history * fields")
    _require(isinstance(c_out, int) and c_out >= n and c_out % n == 0,
             f"the model has {c_out} output channels, not a multiple of the {n} fields {names}: "
             "build it with out_channels = fields (one-step) or horizon * fields")
    return c_out // n


def _device_dtype(model) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters(), None)
    return (p.device, p.dtype) if p is not None else (torch.device("cpu"), torch.get_default_dtype())


def _channel_relative_l2(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of every (sample, channel) over space, ``(B, C)``: the reference's scaled L2."""
    rel = relative_l2(pred.flatten(0, 1).unsqueeze(1), true.flatten(0, 1).unsqueeze(1), reduce=False)
    return rel.reshape(pred.shape[:2])


class WindowDataset(Dataset):
    """Every (``history`` frames -> next ``horizon`` frames) window of a set of trajectories.

    Item ``i`` is window start ``s`` of trajectory ``b`` (``i = b * W + s``, ``W = T -
    history - horizon + 1`` windows per trajectory): ``x`` of shape ``(history * F, *space)``
    and ``y`` of shape ``(horizon * F, *space)``, in the time-major layout of
    :func:`to_channels`, in physical units.

    Parameters
    ----------
    trajectories : mapping of str to array (B, T, *space)
    history : int
        Frames the model sees.
    horizon : int, default 1
        Frames it predicts.

    Attributes
    ----------
    field_names : list of str
    data : Tensor (B, T, F, *space)
    windows_per_trajectory : int

    Examples
    --------
    >>> import torch
    >>> from sciml.rollout import WindowDataset
    >>> WindowDataset({"u": torch.zeros(2, 4, 8)}, history=4)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: trajectory shorter than the model's input window: 4 frames, but history 4 + horizon 1 = 5 are needed; use longer trajectories or a shorter history
    """

    def __init__(self, trajectories: Mapping, history: int, horizon: int = 1):
        self.history = _positive_int("history", history)
        self.horizon = _positive_int("horizon", horizon)
        self.field_names, self.data = stack_fields(trajectories)
        n_times = self.data.shape[1]
        _require(n_times >= history + horizon,
                 f"trajectory shorter than the model's input window: {n_times} frames, but history {history} + "
                 f"horizon {horizon} = {history + horizon} are needed; use longer trajectories or a shorter history")
        self.windows_per_trajectory = n_times - history - horizon + 1

    @property
    def n_fields(self) -> int:
        return len(self.field_names)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape[3:])

    def __len__(self) -> int:
        return self.data.shape[0] * self.windows_per_trajectory

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows ``indices`` at once: ``x (n, history * F, *space)``, ``y (n, horizon * F, *space)``."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        _require(bool(((idx >= 0) & (idx < len(self))).all()), f"window index out of range 0..{len(self) - 1}")
        b, s = idx // self.windows_per_trajectory, idx % self.windows_per_trajectory
        frames = self.data[b[:, None], s[:, None] + torch.arange(self.history + self.horizon)]
        return to_channels(frames[:, : self.history]), to_channels(frames[:, self.history:])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.batch([i])
        return x[0], y[0]


def train_one_step(model, trajectories: Mapping, *, history: int, epochs: int, batch_size: int, lr: float,
                   weight_decay: float, seed: int, loss: str = "relative_l2", noise: float = 0.0, device=None,
                   normalizer: ChannelNormalizer | None = None) -> dict:
    """Train ``model`` to map every ``history``-frame window to the frame(s) after it.

    The recipe of the SineNet reference code: fields standardised per field, optional
    Gaussian noise of standard deviation ``noise`` added to the standardised inputs, the
    loss on standardised values, AdamW, and a cosine learning-rate schedule over all steps
    (stepped per batch). The reference warms the rate up linearly over its first 5 of 50
    epochs; there is no warm-up here.

    Parameters
    ----------
    model : GridModel
        ``in_channels = history * fields``, ``out_channels = horizon * fields``; its initial
        weights are the caller's (seed torch before building it). Trained in place.
    trajectories : mapping of str to array (B, T, *space)
    history, epochs, batch_size : int
    lr, weight_decay : float
    seed : int
        Seeds the window order and the noise; with the same initial weights a run is
        reproducible on one device.
    loss : {"relative_l2", "mse"}
        "relative_l2": mean over samples, predicted frames and fields of each field's
        relative L2 error over space (the reference's scaled L2 loss); "mse": mean square.
    noise : float
        Standard deviation of the input noise, in standardised units.
    device : str or torch.device, optional
        Move the model there first; by default train where the model is.
    normalizer : ChannelNormalizer, optional
        Per-field statistics; by default :func:`fit_field_normalizer` on ``trajectories``.

    Returns
    -------
    dict
        ``final_loss`` (mean over the last epoch), ``losses`` (per epoch), ``epochs``,
        ``steps``, ``n_windows``, ``train_seconds``, ``n_parameters``, ``device`` and
        ``normalizer`` (pass it to :func:`rollout` and :func:`evaluate_rollout`; it is not
        JSON, drop it before writing the dict out).

    Examples
    --------
    >>> import torch
    >>> from sciml.models.unet import UNet
    >>> from sciml.rollout import train_one_step
    >>> traj = {"u": torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(0))}
    >>> _ = torch.manual_seed(0)
    >>> model = UNet(in_channels=2, out_channels=1, width=4, levels=1)
    >>> out = train_one_step(model, traj, history=2, epochs=2, batch_size=4, lr=1e-3, weight_decay=0.0, seed=0)
    >>> out["steps"], len(out["losses"]), out["n_windows"]
    (4, 2, 8)
    """
    _require(isinstance(model, torch.nn.Module), f"model must be a torch module, got {type(model).__name__}")
    _positive_int("epochs", epochs)
    _positive_int("batch_size", batch_size)
    _require(isinstance(seed, int) and not isinstance(seed, bool), f"seed must be an integer, got {seed!r}")
    for name, value, low in (("lr", lr, 0.0), ("weight_decay", weight_decay, None), ("noise", noise, None)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        _require(ok and (value > low if low is not None else value >= 0),
                 f"{name} must be a number {'> 0' if low is not None else '>= 0'}, got {value!r}")
    _require(loss in LOSSES, f"loss {loss!r} is unknown; choose one of {list(LOSSES)}")
    horizon = _model_horizon(model, _positive_int("history", history), _field_names(trajectories))
    dataset = WindowDataset(trajectories, history, horizon)
    norm = _fit_stacked(dataset.data) if normalizer is None else normalizer
    _require(norm.n_channels == dataset.n_fields, f"the normaliser has {norm.n_channels} fields but the trajectories "
                                                  f"have {dataset.n_fields} {dataset.field_names}: fit it on these fields")

    if device is not None:
        model.to(torch.device(device))
    device, dtype = _device_dtype(model)
    n_fields, n = dataset.n_fields, len(dataset)
    steps_per_epoch = math.ceil(n / batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    order = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed)

    losses = []
    model.train()
    t0 = time.perf_counter()
    for epoch in range(epochs):
        total = torch.zeros((), dtype=torch.float64, device=device)
        for idx in torch.randperm(n, generator=order).split(batch_size):
            x, y = dataset.batch(idx)
            x = _scale(norm, from_channels(x.to(device, dtype), n_fields))
            y = _scale(norm, from_channels(y.to(device, dtype), n_fields))
            if noise > 0:
                x = x + noise * torch.randn(x.shape, generator=noise_gen, device=device, dtype=dtype)
            pred = model(to_channels(x))
            target = to_channels(y)
            value = (_channel_relative_l2(pred, target).mean() if loss == "relative_l2"
                     else F.mse_loss(pred, target))
            optimizer.zero_grad(set_to_none=True)
            value.backward()
            optimizer.step()
            scheduler.step()
            total += value.detach() * len(idx)
        losses.append(float(total / n))
        _require(math.isfinite(losses[-1]), f"training diverged at epoch {epoch + 1}: lower lr (now {lr:g})")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    model.eval()
    return {
        "final_loss": losses[-1],
        "losses": losses,
        "epochs": epochs,
        "steps": epochs * steps_per_epoch,
        "n_windows": n,
        "train_seconds": seconds,
        "n_parameters": getattr(model, "n_parameters", None) or sum(p.numel() for p in model.parameters()),
        "device": str(device),
        "normalizer": norm,
    }


@torch.no_grad()
def rollout(model, initial_window: Mapping, n_steps: int, history: int, normalizer: ChannelNormalizer | None = None,
            batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """Autoregressive prediction: apply the model ``n_steps`` times, feeding its predictions back.

    Starts from the last ``history`` frames of ``initial_window``; each call predicts the
    next ``horizon`` frames from the latest ``history`` frames (true or predicted), in
    standardised units when a ``normalizer`` is given, decoded at the end.

    Parameters
    ----------
    model : GridModel
        ``in_channels = history * fields``, ``out_channels = horizon * fields``.
    initial_window : mapping of str to array (B, T0, *space)
        ``T0 >= history``.
    n_steps : int
        Model applications; the result has ``n_steps * horizon`` frames.
    history : int
    normalizer : ChannelNormalizer, optional
        The per-field statistics the model was trained with (``None``: physical units).
    batch_size : int, optional
        Trajectories per model call (default: all at once).

    Returns
    -------
    dict of str to Tensor (B, n_steps * horizon, *space)
        The predicted frames after the window, per field, on the input's device.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import SineNet
    >>> from sciml.rollout import rollout
    >>> model = SineNet(in_channels=2, out_channels=1, waves=1, width=4, levels=1)
    >>> pred = rollout(model, {"w": torch.zeros(3, 2, 8, 8)}, n_steps=5, history=2)
    >>> tuple(pred["w"].shape)
    (3, 5, 8, 8)
    """
    names, frames = stack_fields(initial_window)
    _positive_int("n_steps", n_steps)
    _positive_int("history", history)
    _model_horizon(model, history, names)
    _require(frames.shape[1] >= history, f"the initial window has {frames.shape[1]} frames but the model needs "
                                         f"history = {history}: give at least {history} frames")
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
    device, dtype = _device_dtype(model)
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for window in frames[:, -history:].split(batch_size or frames.shape[0]):
            state = _scale(normalizer, window.to(device, dtype))
            steps = []
            for _ in range(n_steps):
                pred = from_channels(model(to_channels(state)), len(names))
                steps.append(pred)
                state = torch.cat([state, pred], dim=1)[:, -history:]
            chunks.append(_scale(normalizer, torch.cat(steps, dim=1), decode=True).to(frames.device))
    finally:
        model.train(was_training)
    predicted = torch.cat(chunks, dim=0)
    return {name: predicted[:, :, f] for f, name in enumerate(names)}


@torch.no_grad()
def evaluate_rollout(model, trajectories: Mapping, history: int, n_steps: int,
                     normalizer: ChannelNormalizer | None = None, batch_size: int | None = None) -> dict:
    """One-step and rollout relative L2 errors of ``model`` on ``trajectories``, in physical units.

    Errors are per field and frame (the relative L2 norm over space, as the SineNet and
    PDEArena code measure them), then averaged over fields and trajectories.

    - ``one_step_l2``: mean over every window of :class:`WindowDataset` (true inputs);
    - ``rollout_l2_per_step``: for predicted frame ``k = 1..n_steps * horizon`` of a rollout
      from each trajectory's first ``history`` frames, the mean error against the truth;
    - ``rollout_l2``: their mean over the horizon.

    Parameters
    ----------
    model, history, normalizer, batch_size
        As for :func:`rollout`.
    trajectories : mapping of str to array (B, T, *space)
        ``T >= history + n_steps * horizon``.
    n_steps : int
        Model applications in the rollout.

    Returns
    -------
    dict
        ``one_step_l2``, ``rollout_l2``, ``rollout_l2_per_step`` (list), ``inference_seconds``
        (wall time of the rollout), ``n_trajectories``, ``n_steps``, ``history``, ``horizon``.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.unet import UNet
    >>> from sciml.rollout import evaluate_rollout
    >>> traj = {"w": torch.randn(2, 7, 8, 8, generator=torch.Generator().manual_seed(0))}
    >>> out = evaluate_rollout(UNet(in_channels=3, out_channels=1, width=4, levels=1), traj, history=3, n_steps=4)
    >>> len(out["rollout_l2_per_step"]), out["rollout_l2"] > 0
    (4, True)
    """
    horizon = _model_horizon(model, _positive_int("history", history), _field_names(trajectories))
    dataset = WindowDataset(trajectories, history, horizon)
    names, data = dataset.field_names, dataset.data
    frames = _positive_int("n_steps", n_steps) * horizon
    _require(data.shape[1] >= history + frames,
             f"trajectory shorter than the model's input window plus the rollout: {data.shape[1]} frames, but history "
             f"{history} + {n_steps} steps x {horizon} frames = {history + frames} are needed; use fewer n_steps")
    device, dtype = _device_dtype(model)
    was_training = model.training
    model.eval()
    try:
        errors = []
        for idx in torch.arange(len(dataset)).split(batch_size or len(dataset)):
            x, y = dataset.batch(idx)
            pred = from_channels(model(to_channels(_scale(normalizer, from_channels(x.to(device, dtype), len(names))))),
                                 len(names))
            pred = to_channels(_scale(normalizer, pred, decode=True))
            errors.append(_channel_relative_l2(pred.double(), y.to(device, torch.float64)).cpu())
    finally:
        model.train(was_training)
    one_step = float(torch.cat(errors).mean())

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    predicted = rollout(model, {n: data[:, :history, f] for f, n in enumerate(names)}, n_steps, history,
                        normalizer, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    pred = torch.stack([predicted[n] for n in names], dim=2).double()           # (B, frames, F, *space)
    true = data[:, history: history + frames].double()
    per_frame = _channel_relative_l2(to_channels(pred), to_channels(true))      # (B, frames * F)
    per_step = per_frame.unflatten(1, (frames, len(names))).mean(dim=(0, 2))
    return {
        "one_step_l2": one_step,
        "rollout_l2": float(per_step.mean()),
        "rollout_l2_per_step": per_step.tolist(),
        "inference_seconds": seconds,
        "n_trajectories": int(data.shape[0]),
        "n_steps": n_steps,
        "history": history,
        "horizon": horizon,
    }
