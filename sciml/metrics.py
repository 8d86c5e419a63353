"""Relative L2 and H1 errors of fields on regular grids, in any dimension.

All functions take batches ``(B, C, *spatial)``. Norms are over channels and space
together, with the quadrature weight ``prod(spacing)`` (the rectangle rule), so the same
function sampled at two resolutions has nearly the same norm. Gradients use second-order
finite differences that need no periodicity: central in the interior, one-sided
second-order at the boundary (``torch.gradient(..., edge_order=2)``).

Examples
--------
>>> import torch
>>> from sciml.metrics import relative_l2, relative_h1
>>> true = torch.ones(2, 1, 8, 8)
>>> float(relative_l2(1.1 * true, true))
0.1...
>>> relative_h1(true, true, spacing=(0.125, 0.125), reduce=False).tolist()
[0.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from sciml.errors import SciMLError

LOSSES = ("l2", "h1")


def _check(u: torch.Tensor, spacing: Sequence[float] | None = None) -> None:
    if u.ndim < 3:
        raise SciMLError(f"expected a batch of fields (batch, channels, *grid), got shape {tuple(u.shape)}")
    if spacing is not None:
        if len(spacing) != u.ndim - 2:
            raise SciMLError(f"spacing {list(spacing)} has {len(spacing)} entries but the fields are {u.ndim - 2}-D")
        if any(not h > 0 for h in spacing):
            raise SciMLError(f"grid spacing must be positive, got {list(spacing)}")


def _norm_per_sample(u: torch.Tensor) -> torch.Tensor:
    # vector_norm's gradient at zero is 0 rather than sqrt's 0 * inf = NaN
    return torch.linalg.vector_norm(u.reshape(u.shape[0], -1), dim=1)


def gradient(u: torch.Tensor, spacing: Sequence[float]) -> list[torch.Tensor]:
    """Partial derivatives of ``u`` along each spatial axis, second-order accurate.

    Central differences inside, one-sided second-order differences on the boundary, so
    the result is exact for quadratics and needs no periodicity. Each axis needs at
    least 3 points.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import gradient
    >>> x = torch.linspace(0, 1, 5, dtype=torch.float64)
    >>> gradient((x**2)[None, None], spacing=(0.25,))[0].flatten().tolist()
    [0.0, 0.5, 1.0, 1.5, 2.0]
    """
    _check(u, spacing)
    if min(u.shape[2:]) < 3:
        raise SciMLError(f"H1 norms need at least 3 grid points per axis, got grid {list(u.shape[2:])}")
    dims = list(range(2, u.ndim))
    return list(torch.gradient(u, spacing=[float(h) for h in spacing], dim=dims, edge_order=2))


def l2_norm(u: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Per-sample L2 norm ``sqrt(prod(h) * sum u**2)`` over channels and space, shape ``(B,)``.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import l2_norm
    >>> l2_norm(torch.ones(1, 1, 10, 10), spacing=(0.1, 0.1)).tolist()
    [1.0]
    """
    _check(u, spacing)
    return math.sqrt(math.prod(spacing)) * _norm_per_sample(u)


def h1_norm(u: torch.Tensor, spacing: Sequence[float]) -> torch.Tensor:
    """Per-sample H1 norm ``sqrt(||u||^2 + ||grad u||^2)`` over channels and space, shape ``(B,)``.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import h1_norm
    >>> x = (torch.arange(10, dtype=torch.float64) + 0.5) / 10    # cell centres on [0, 1]
    >>> round(float(h1_norm(x[None, None], spacing=(0.1,))[0]), 4)  # exact: sqrt(4/3) = 1.1547
    1.1543
    """
    parts = torch.stack([u, *gradient(u, spacing)], dim=1)
    return math.sqrt(math.prod(spacing)) * _norm_per_sample(parts)


def _relative(err: torch.Tensor, ref: torch.Tensor, what: str, reduce: bool) -> torch.Tensor:
    if bool((ref == 0).any()):
        raise SciMLError(
            f"relative {what} error is undefined: a true field is identically zero; "
            "drop such samples or use data whose outputs are not all zero"
        )
    out = err / ref
    return out.mean() if reduce else out


def _check_pair(pred: torch.Tensor, true: torch.Tensor) -> None:
    if pred.shape != true.shape:
        raise SciMLError(f"prediction shape {tuple(pred.shape)} differs from truth shape {tuple(true.shape)}")
    _check(true)


def relative_l2(pred: torch.Tensor, true: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """Relative L2 error ``||pred - true|| / ||true||`` per sample, or its batch mean.

    On a uniform grid the quadrature weight cancels, so no spacing is needed.

    Parameters
    ----------
    pred, true : Tensor of shape (B, C, *spatial)
    reduce : bool
        Return the batch mean (a scalar) instead of the ``(B,)`` per-sample errors.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import relative_l2
    >>> true = torch.randn(3, 2, 16)
    >>> relative_l2(torch.zeros_like(true), true, reduce=False).tolist()
    [1.0, 1.0, 1.0]
    """
    _check_pair(pred, true)
    return _relative(_norm_per_sample(pred - true), _norm_per_sample(true), "L2", reduce)


def relative_h1(pred: torch.Tensor, true: torch.Tensor, spacing: Sequence[float], reduce: bool = True) -> torch.Tensor:
    """Relative H1 error ``||pred - true||_H1 / ||true||_H1`` per sample, or its batch mean.

    The H1 norm is the L2 norm plus the H1 seminorm, ``sqrt(||u||^2 + ||grad u||^2)``,
    with gradients from :func:`gradient`.

    Parameters
    ----------
    pred, true : Tensor of shape (B, C, *spatial)
    spacing : sequence of float
        Grid spacing per spatial axis.
    reduce : bool
        Return the batch mean (a scalar) instead of the ``(B,)`` per-sample errors.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import relative_h1
    >>> true = torch.rand(2, 1, 8, 8) + 1
    >>> relative_h1(torch.zeros_like(true), true, spacing=(0.125, 0.125), reduce=False).tolist()
    [1.0, 1.0]
    """
    _check_pair(pred, true)
    return _relative(h1_norm(pred - true, spacing), h1_norm(true, spacing), "H1", reduce)


def make_loss(name: str, spacing: Sequence[float]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The training loss ``loss(pred, true) -> scalar``: batch-mean relative "l2" or "h1" error.

    Examples
    --------
    >>> import torch
    >>> from sciml.metrics import make_loss
    >>> loss = make_loss("h1", spacing=(0.125, 0.125))
    >>> true = torch.rand(2, 1, 8, 8) + 1
    >>> float(loss(true, true))
    0.0
    """
    key = str(name).lower()
    if key == "l2":
        return relative_l2
    if key == "h1":
        spacing = tuple(float(h) for h in spacing)

        def h1_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
            return relative_h1(pred, true, spacing)

        return h1_loss
    raise SciMLError(f"unknown loss {name!r}: set train.loss to one of {list(LOSSES)}")
