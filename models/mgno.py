"""MgNO: a neural operator whose linear operators are multigrid V-cycles of convolutions.

Examples
--------
>>> import torch
>>> from sciml.models.mgno import MgNO
>>> model = MgNO(in_channels=2, out_channels=1, width=8, n_layers=2)
>>> tuple(model(torch.zeros(3, 2, 33, 20)).shape)
(3, 1, 33, 20)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from sciml.errors import SciMLError
from sciml.models.base import GridModel, choice, positive_int, spatial_dim

MIN_COARSE = 4
"""Fewest points per axis on any level of the V-cycle (the coarsest grid included)."""

_PADDINGS = {"zero": ("zeros", "constant"), "periodic": ("circular", "circular"), "reflect": ("reflect", "reflect")}
"""Boundary handling -> (``padding_mode`` of torch's convolutions, ``mode`` of ``F.pad``)."""

_ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "tanh": nn.Tanh, "silu": nn.SiLU}




def max_levels(spatial_shape: Sequence[int]) -> int:
    """Most V-cycle levels a grid allows: halvings (``n -> ceil(n / 2)``) keeping >= ``MIN_COARSE`` points.

    Zero when the grid itself has fewer than ``MIN_COARSE`` points on an axis.

    Examples
    --------
    >>> from sciml.models.mgno import max_levels
    >>> max_levels((64, 64)), max_levels((33, 47)), max_levels((16,)), max_levels((3, 8))
    (5, 4, 3, 0)
    """
    n = min(int(s) for s in spatial_shape)
    levels = 0
    while n >= MIN_COARSE:
        levels += 1
        n = -(-n // 2)
    return levels


def _parse_smoothing(smoothing, levels: int | None) -> list:
    """Validate ``smoothing``: one ``[pre, post]`` pair, or (with an int ``levels``) one pair per level."""
    def pair(value) -> list[int]:
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value))
        if not ok:
            raise SciMLError(
                f"model.smoothing entry {value!r} is not a [pre, post] pair of step counts: "
                "give e.g. [1, 1], or one pair per level such as [[1, 0], [1, 0], [2, 0]]"
            )
        if sum(value) == 0:
            raise SciMLError(f"model.smoothing {list(value)} has no smoothing step: "
                             "give each level at least one pre- or post-smoothing step")
        return [int(v) for v in value]

    if isinstance(smoothing, (list, tuple)) and smoothing and all(isinstance(s, (list, tuple)) for s in smoothing):
        if levels is None or len(smoothing) != levels:
            raise SciMLError(
                f"model.smoothing has {len(smoothing)} per-level pairs but model.levels = {levels}: "
                "set model.levels to the number of pairs, or give one [pre, post] pair for every level"
            )
        return [pair(s) for s in smoothing]
    return pair(smoothing)


class _Level(nn.Module):
    """The learned operators of one V-cycle level: ``A``, the smoothers, restriction and prolongation.

    ``A`` maps the solution space (``u_channels``) to the data space (``f_channels``); every
    smoother ``S`` maps back. ``restrict`` (stride-2 convolution) acts on data-space residuals
    and ``prolong`` (transposed stride-2 convolution) on solution-space corrections.
    """

    def __init__(self, dim, f_channels, u_channels, pre, post, with_transfer, with_operator, padding):
        super().__init__()
        conv = getattr(nn, f"Conv{dim}d")
        mode, self._pad_mode = _PADDINGS[padding]

        def stencil(c_in, c_out, stride=1):
            return conv(c_in, c_out, 3, stride=stride, padding=1, bias=False, padding_mode=mode)

        self.A = stencil(u_channels, f_channels) if with_operator else None
        self.pre = nn.ModuleList(stencil(f_channels, u_channels) for _ in range(pre))
        self.post = nn.ModuleList(stencil(f_channels, u_channels) for _ in range(post))
        self.restrict = stencil(f_channels, f_channels, stride=2) if with_transfer else None
        self.prolong = (getattr(nn, f"ConvTranspose{dim}d")(u_channels, u_channels, 3, stride=2, bias=False)
                        if with_transfer else None)

    def smooth(self, f: torch.Tensor, u: torch.Tensor | None, smoothers: nn.ModuleList) -> torch.Tensor | None:
        """``u <- u + S (f - A u)`` for each smoother ``S``; ``u = None`` stands for ``u = 0``."""
        for S in smoothers:
            u = S(f) if u is None else u + S(f - self.A(u))
        return u

    def interpolate(self, coarse: torch.Tensor, fine_shape: Sequence[int]) -> torch.Tensor:
        """Transposed stride-2 convolution onto a grid of ``fine_shape`` (``ceil(n / 2)`` -> ``n``).

        Coarse point ``j`` sits on fine point ``2 j``. The coarse grid is first padded by one
        point per side with the boundary mode (so periodic and reflecting corrections wrap
        or mirror instead of being cut off), then the full transposed convolution is cropped
        to the ``n`` fine points; nothing depends on the grid size except this crop.
        """
        padded = F.pad(coarse, [1, 1] * (coarse.ndim - 2), mode=self._pad_mode)
        full = self.prolong(padded)
        return full[(..., *(slice(3, 3 + n) for n in fine_shape))]


class MultigridVCycle(nn.Module):
    """The linear operator ``W_mg``: one multi-channel multigrid V-cycle of 3-wide convolutions.

    With ``f`` (``in_channels``) as right-hand side and ``u`` (``out_channels``) starting at
    zero, on each level ``l`` (finest ``l = 0``)::

        u_l <- u_l + S_{l,i} * (f_l - A_l * u_l)      i = 1..pre       (pre-smoothing)
        f_{l+1} = R_l *_2 (f_l - A_l * u_l),  u_{l+1} = 0                (restrict the residual)
        ... the same on level l + 1, recursively down to the coarsest level ...
        u_l <- u_l + P_l *_2^T u_{l+1}                                   (coarse-grid correction)
        u_l <- u_l + S'_{l,i} * (f_l - A_l * u_l)     i = 1..post      (post-smoothing)

    ``*`` is a 3x3 (3, 3x3x3) convolution, ``*_2`` a stride-2 one and ``*_2^T`` its
    transpose. There is no bias and no activation, so ``W_mg`` is linear in ``f``.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of ``f`` and of ``u``.
    dim : int
        Spatial dimensions (1, 2 or 3).
    levels : int or None
        Fixed number of levels, each with its own operators (as in the paper), or None:
        as many levels as the input grid allows (:func:`max_levels`), all sharing one set
        of operators, as a geometric multigrid reuses its stencils on every level.
    smoothing : [pre, post] or list of [pre, post]
        Smoothing steps per level; a list of pairs (one per level) needs an int ``levels``.
    padding : {"zero", "periodic", "reflect"}
        Boundary handling of every convolution.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.mgno import MultigridVCycle
    >>> vcycle = MultigridVCycle(1, 4, dim=1, levels=3, smoothing=[[1, 0], [1, 0], [2, 0]])
    >>> tuple(vcycle(torch.zeros(2, 1, 17)).shape)
    (2, 4, 17)
    """

    def __init__(self, in_channels: int, out_channels: int, dim: int, levels: int | None = None,
                 smoothing=(1, 1), padding: str = "zero"):
        super().__init__()
        schedule = _parse_smoothing(smoothing, levels)
        choice("padding", padding, _PADDINGS)
        self.levels = levels
        if not isinstance(schedule[0], list):
            schedule = [schedule] * (1 if levels is None else levels)
        self.ops = nn.ModuleList(
            _Level(dim, in_channels, out_channels, pre, post,
                   with_transfer=levels is None or l < levels - 1,
                   # on a fixed coarsest level, A only enters from the second smoothing step on
                   with_operator=levels is None or l < levels - 1 or pre + post > 1,
                   padding=padding)
            for l, (pre, post) in enumerate(schedule)
        )

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        """Apply the V-cycle to ``f`` of shape ``(B, in_channels, *grid)``."""
        shape = list(f.shape[2:])
        depth = max_levels(shape) if self.levels is None else self.levels
        if depth < 1 or max_levels(shape) < depth:
            raise SciMLError(f"grid {shape} is too coarse for a {max(depth, 1)}-level V-cycle: "
                             f"every level needs >= {MIN_COARSE} points per axis")
        return self._cycle(f, 0, depth)

    def _cycle(self, f: torch.Tensor, level: int, depth: int) -> torch.Tensor:
        ops = self.ops[0 if self.levels is None else level]
        u = ops.smooth(f, None, ops.pre)
        if level < depth - 1:
            residual = f if u is None else f - ops.A(u)
            correction = ops.interpolate(self._cycle(ops.restrict(residual), level + 1, depth), f.shape[2:])
            u = correction if u is None else u + correction
        return ops.smooth(f, u, ops.post)


class MgNO(GridModel, name="mgno"):
    """Multigrid neural operator (He, Liu & Xu, ICLR 2024) for 1-, 2- or 3-D grids.

    Each of the ``n_layers`` layers is ``u <- act(W_mg u + B u)``: ``W_mg`` a
    :class:`MultigridVCycle` (the paper's multi-channel V-cycle, its Fig. 1, with learned
    3-wide convolution stencils ``A`` and smoothers ``S``, stride-2 restriction of the
    residual and transposed-convolution prolongation; linear in ``u``) and ``B`` a 1x1
    convolution with bias (the reference code's pointwise term). The last layer has no
    activation. There is no lifting or projection: the first layer's V-cycle takes the
    ``in_channels`` input fields as its right-hand side ``f`` and returns a ``width``-channel
    ``u``; the last takes ``width`` channels to ``out_channels`` (``A`` maps ``u`` channels to
    ``f`` channels and ``S`` back, so the V-cycle changes channels itself, and so does ``B``).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    dim : int, default 2
        Spatial dimensions (1, 2 or 3).
    width : int, default 32
        Channels between layers.
    n_layers : int, default 5
        V-cycle layers (at least 1; with 1 the layer maps ``in_channels`` to ``out_channels``).
    levels : int or None, default None
        None: as many levels as each input grid allows (coarsest grid 4-7 points per axis),
        with one set of operators shared by all levels, so any resolution >= 4 runs with the
        full depth. An int: that many levels, each with its own operators (the paper's
        setting; ``levels=5`` matches its Darcy runs), on grids with >= 4 points per axis on
        the coarsest level.
    smoothing : [pre, post] or list of [pre, post], default [1, 1]
        Smoothing steps on each level before and after the coarse-grid correction; one
        pair per level is accepted with an int ``levels`` (the reference's Darcy runs use
        ``[[1, 0], [1, 0], [1, 0], [2, 0], [2, 0]]``).
    padding : {"zero", "periodic", "reflect"}, default "zero"
        Boundary handling of all convolutions: "zero" for Dirichlet problems such as Darcy,
        "periodic" for periodic domains, "reflect" otherwise.
    activation : {"gelu", "relu", "tanh", "silu"}, default "gelu"

    Notes
    -----
    Departures from the paper and its reference code (github.com/xlliu2017/MgNO):

    - Resolution independence. The reference prolongs with ``ConvTranspose2d(kernel 4,
      stride 2, padding 1)``, whose output has the fine grid's size only when it is even, and
      its NS/Helmholtz variants add ``LayerNorm`` with shapes fixed to one grid (64^2 or
      101^2). Here the prolongation is a kernel-3 transposed convolution applied to the
      coarse grid padded by the boundary mode and cropped to the fine grid, so any size
      (odd included) works, and periodic/reflecting boundaries are respected on the way
      up as well as on the way down; there is no normalisation layer.
    - The coarse right-hand side is the restricted residual ``R (f - A u)`` and the
      coarse iterate starts at zero (the standard V-cycle); the reference code's default
      (``use_res=False``) restricts ``f`` itself and carries ``Pi u`` down as the coarse
      initial guess. Within a level one ``A`` serves all smoothing steps and the
      residual (one operator ``A^l`` per level, as in multigrid and MgNet); the reference
      gives every step its own ``A``. Post-smoothing (an option of the reference code,
      off in its Darcy runs) is on by default here: ``smoothing=[1, 1]``.
    - ``levels=None`` shares operators across levels (see above); the paper fixes the
      number of levels and gives each its own operators (``levels=int`` here).
    - The last layer is a V-cycle to ``out_channels``, not the reference's final 1x1
      convolution, following the paper's "no projection".

    References
    ----------
    J. He, X. Liu, J. Xu, "MgNO: Efficient Parameterization of Linear Operators via
    Multigrid", ICLR 2024, arXiv:2310.19809.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.mgno import MgNO
    >>> model = MgNO(in_channels=1, out_channels=1, dim=1, width=4, n_layers=2, levels=3, padding="periodic")
    >>> tuple(model(torch.zeros(2, 1, 47)).shape)
    (2, 1, 47)
    >>> model.check_input((12,))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: grid [12] is too coarse for model.levels=3: use resolution >= 13 or set model.levels <= 2
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 2,
        width: int = 32,
        n_layers: int = 5,
        levels: int | None = None,
        smoothing: Sequence = (1, 1),
        padding: str = "zero",
        activation: str = "gelu",
    ):
        dim = spatial_dim(dim, "MgNO")
        if levels is not None:
            levels = positive_int("levels", levels)
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=dim,
                width=positive_int("width", width),
                n_layers=positive_int("n_layers", n_layers),
                levels=levels,
                smoothing=_parse_smoothing(smoothing, levels),
                padding=choice("padding", padding, _PADDINGS),
                activation=choice("activation", activation, _ACTIVATIONS),
            )
        )
        cfg = self.config
        channels = [in_channels] + [cfg["width"]] * (cfg["n_layers"] - 1) + [out_channels]
        conv1x1 = getattr(nn, f"Conv{dim}d")
        self.vcycles = nn.ModuleList(
            MultigridVCycle(c_in, c_out, dim, levels, cfg["smoothing"], padding)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.pointwise = nn.ModuleList(conv1x1(c_in, c_out, 1) for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.act = _ACTIVATIONS[activation]()

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also require ``MIN_COARSE`` points per axis, and on the coarsest of ``levels`` levels."""
        super().check_input(spatial_shape)
        shape = [int(n) for n in spatial_shape]
        if min(shape) < MIN_COARSE:
            raise SciMLError(f"grid {shape} is too small for MgNO: use resolution >= {MIN_COARSE} on every axis")
        levels = self.config["levels"]
        if levels is not None and max_levels(shape) < levels:
            need = (MIN_COARSE - 1) * 2 ** (levels - 1) + 1
            raise SciMLError(
                f"grid {shape} is too coarse for model.levels={levels}: "
                f"use resolution >= {need} or set model.levels <= {max_levels(shape)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)``."""
        self.check_batch(x)
        last = len(self.vcycles) - 1
        for i, (vcycle, pointwise) in enumerate(zip(self.vcycles, self.pointwise)):
            x = vcycle(x) + pointwise(x)
            if i < last:
                x = self.act(x)
        return x
