"""Figures of predictions and training curves, drawn without a display.

Uses matplotlib's object-oriented API (``matplotlib.figure.Figure`` with the Agg
canvas), so nothing touches pyplot's global state or needs a window system. Fields of
any dimension are drawn: 1-D as lines, 2-D as images, 3-D as the middle slice along the
last axis.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from sciml.figures import plot_sample
>>> x = np.random.default_rng(0).standard_normal((1, 16, 16))
>>> path = plot_sample(os.path.join(tempfile.mkdtemp(), "s.png"), x, x, 0.9 * x, ["a"], ["u"])
>>> path.suffix
'.png'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sciml.errors import SciMLError

AXIS_NAMES = ("x", "y", "z")


def _view(field: np.ndarray, spacing: Sequence[float], dims: Sequence[str]):
    """A 1-D or 2-D view of ``field`` with its extent, axis names and a note on slicing."""
    if field.ndim == 3:
        k = field.shape[2] // 2
        return field[:, :, k], spacing[:2], dims[:2], f" ({dims[2]} index {k})"
    if field.ndim in (1, 2):
        return field, spacing, dims, ""
    raise SciMLError(f"cannot draw a {field.ndim}-D field: fields must be 1-, 2- or 3-D")


def _draw(fig, ax, field, spacing, dims, title, vmin=None, vmax=None, cmap="viridis"):
    view, h, names, note = _view(field, spacing, dims)
    ax.set_title(title + note, fontsize=9)
    if view.ndim == 1:
        ax.plot((np.arange(view.shape[0]) + 0.5) * h[0], view)
        ax.set_xlabel(names[0])
        if vmin is not None:
            pad = 0.05 * (vmax - vmin) if vmax > vmin else 1.0
            ax.set_ylim(vmin - pad, vmax + pad)
        return
    extent = (0.0, view.shape[0] * h[0], 0.0, view.shape[1] * h[1])
    image = ax.imshow(view.T, origin="lower", extent=extent, vmin=vmin, vmax=vmax, cmap=cmap)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    fig.colorbar(image, ax=ax, shrink=0.8)


def plot_sample(path: str | os.PathLike, x: np.ndarray, y: np.ndarray, pred: np.ndarray,
                input_names: Sequence[str], output_names: Sequence[str],
                spacing: Sequence[float] | None = None, dims: Sequence[str] | None = None,
                title: str | None = None) -> Path:
    """Draw one sample: the inputs in the first row, then per output truth, prediction, |error|.

    Parameters
    ----------
    path : path-like
        PNG file to write.
    x : ndarray of shape (C_in, *spatial)
    y, pred : ndarray of shape (C_out, *spatial)
    input_names, output_names : sequence of str
        Channel names for the titles.
    spacing : sequence of float, optional
        Grid spacing (default ``1 / n`` per axis) for the axis extents.
    dims : sequence of str, optional
        Axis names (default "x", "y", "z").
    title : str, optional

    Returns
    -------
    Path
    """
    x, y, pred = (np.asarray(a, dtype=np.float64) for a in (x, y, pred))
    if y.shape != pred.shape or x.shape[1:] != y.shape[1:]:
        raise SciMLError(f"cannot plot input {x.shape}, truth {y.shape} and prediction {pred.shape} together: shapes differ")
    shape = y.shape[1:]
    spacing = tuple(spacing) if spacing is not None else tuple(1.0 / n for n in shape)
    dims = tuple(dims) if dims is not None else AXIS_NAMES[: len(shape)]
    n_cols = max(len(input_names), 3)
    n_rows = 1 + len(output_names)
    fig = Figure(figsize=(3.6 * n_cols, 3.0 * n_rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for c, name in enumerate(input_names):
        axes[0, c].set_axis_on()
        _draw(fig, axes[0, c], x[c], spacing, dims, f"input {name}")
    for r, name in enumerate(output_names, start=1):
        lo, hi = float(min(y[r - 1].min(), pred[r - 1].min())), float(max(y[r - 1].max(), pred[r - 1].max()))
        for c, (field, label) in enumerate(((y[r - 1], "true"), (pred[r - 1], "predicted"))):
            axes[r, c].set_axis_on()
            _draw(fig, axes[r, c], field, spacing, dims, f"{label} {name}", vmin=lo, vmax=hi)
        axes[r, 2].set_axis_on()
        _draw(fig, axes[r, 2], np.abs(pred[r - 1] - y[r - 1]), spacing, dims, f"|error| {name}", cmap="magma")
    if title:
        fig.suptitle(title)
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path


def plot_training_curves(path: str | os.PathLike, history: Sequence[dict]) -> Path:
    """Draw training loss, validation errors and learning rate per epoch.

    Parameters
    ----------
    path : path-like
        PNG file to write.
    history : sequence of dict
        Records of ``history.json`` (``epoch``, ``train_loss``, ``val_l2``, ``val_h1``, ``lr``).

    Examples
    --------
    >>> import tempfile, os
    >>> from sciml.figures import plot_training_curves
    >>> hist = [{"epoch": k, "train_loss": 1 / k, "val_l2": 1 / k, "val_h1": 2 / k, "lr": 1e-3} for k in (1, 2, 3)]
    >>> plot_training_curves(os.path.join(tempfile.mkdtemp(), "c.png"), hist).name
    'c.png'
    """
    if not history:
        raise SciMLError("history.json has no epochs: train at least one epoch before plotting curves")
    epochs = [rec["epoch"] for rec in history]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_err, ax_lr = fig.subplots(1, 2)
    for key, label in (("train_loss", "train loss"), ("val_l2", "val relative L2"), ("val_h1", "val relative H1")):
        ax_err.plot(epochs, [rec[key] for rec in history], marker=".", label=label)
    values = [rec[k] for rec in history for k in ("train_loss", "val_l2", "val_h1")]
    if min(values) > 0:
        ax_err.set_yscale("log")
    ax_err.set_xlabel("epoch")
    ax_err.set_ylabel("relative error")
    ax_err.legend()
    ax_lr.plot(epochs, [rec["lr"] for rec in history], marker=".")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate (epoch start)")
    path = Path(path)
    fig.savefig(path, dpi=90)
    return path
