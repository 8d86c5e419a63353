"""SineNet: K U-shaped "waves" in sequence, each evolving the latent fields part of one time step.

The building blocks (residual convolution stages, average-pool downsampling, cubic
upsampling that respects periodic boundaries, one U-shaped wave) are shared with
:class:`sciml.models.unet.UNet`, the same-size single-U baseline.

Examples
--------
>>> import torch
>>> from sciml.models.sinenet import SineNet
>>> model = SineNet(in_channels=4, out_channels=1, waves=2, width=4, levels=2, padding="circular")
>>> tuple(model(torch.zeros(3, 4, 16, 12)).shape)
(3, 1, 16, 12)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sciml.errors import SciMLError
from sciml.models.base import GridModel, build_model, choice, positive_int, spatial_dim

PADDINGS = ("circular", "zeros")
"""Boundary handling: "circular" for periodic domains, "zeros" otherwise."""

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU}

_UPSAMPLE_BORDER = {"circular": "circular", "zeros": "replicate"}
"""How cubic upsampling extends the coarse grid past the boundary for each padding."""


def _keys_cubic(s: float, a: float = -0.75) -> float:
    """Keys' (1981) cubic convolution kernel with ``a = -0.75``, the one torch's "bicubic" uses."""
    s = abs(s)
    if s <= 1:
        return (a + 2) * s**3 - (a + 3) * s**2 + 1
    if s < 2:
        return a * s**3 - 5 * a * s**2 + 8 * a * s - 4 * a
    return 0.0


# With half-pixel centres (align_corners=False), fine point 2k sits at coarse coordinate
# k - 1/4 and fine point 2k + 1 at k + 1/4; each is a 4-tap stencil of coarse points.
_EVEN_TAPS = tuple(_keys_cubic(s) for s in (1.75, 0.75, 0.25, 1.25))  # coarse k-2, k-1, k, k+1
_ODD_TAPS = tuple(_keys_cubic(s) for s in (1.25, 0.25, 0.75, 1.75))   # coarse k-1, k, k+1, k+2


def cubic_upsample(x: torch.Tensor, border: str = "circular") -> torch.Tensor:
    """Double every spatial axis of ``(B, C, *grid)`` by separable cubic interpolation.

    Along each axis, fine point ``2k`` (``2k + 1``) is the Keys cubic interpolant
    (``a = -0.75``) at coarse coordinate ``k - 1/4`` (``k + 1/4``), the half-pixel-centre
    convention of ``torch.nn.functional.interpolate(mode="bicubic", align_corners=False)``.
    In 2-D this *is* torch's bicubic upsampling (to round-off); written per axis it works in
    1-, 2- and 3-D. The coarse grid is extended by two points per side first: periodically
    (``border="circular"``, as SineNet's reference code does for periodic domains) or by
    repeating the edge value (``"replicate"``, what torch's bicubic does).

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import cubic_upsample
    >>> cubic_upsample(torch.ones(1, 1, 3), border="replicate").tolist()
    [[[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]]
    """
    if border not in _UPSAMPLE_BORDER.values():
        raise SciMLError(f"cubic_upsample border {border!r} is not supported; choose 'circular' or 'replicate'")
    d = x.ndim - 2
    for axis in range(2, x.ndim):
        n = x.shape[axis]
        pad = [0] * (2 * d)
        pad[2 * (x.ndim - 1 - axis)] = pad[2 * (x.ndim - 1 - axis) + 1] = 2
        p = F.pad(x, pad, mode=border)
        even = sum(w * p.narrow(axis, j, n) for j, w in enumerate(_EVEN_TAPS))
        odd = sum(w * p.narrow(axis, j + 1, n) for j, w in enumerate(_ODD_TAPS))
        x = torch.stack([even, odd], dim=axis + 1).flatten(axis, axis + 1)
    return x


class ConvBlock(nn.Sequential):
    """Two (3-wide convolution, GroupNorm with one group, activation) stages.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import ConvBlock
    >>> tuple(ConvBlock(3, 3, 5, "circular", "gelu")(torch.zeros(1, 3, 4, 4, 4)).shape)
    (1, 5, 4, 4, 4)
    """

    def __init__(self, dim: int, c_in: int, c_out: int, padding: str, activation: str):
        conv = getattr(nn, f"Conv{dim}d")
        super().__init__(
            conv(c_in, c_out, 3, padding=1, padding_mode=padding), nn.GroupNorm(1, c_out), ACTIVATIONS[activation](),
            conv(c_out, c_out, 3, padding=1, padding_mode=padding), nn.GroupNorm(1, c_out), ACTIVATIONS[activation](),
        )


class ResidualStage(nn.Module):
    """``blocks`` :class:`ConvBlock` s with residual connections, at one resolution.

    ``forward(h, extra)``: the first block sees ``h`` concatenated with ``extra`` (skip or
    pooled wave input, if any) and its residual is a 1x1 convolution of ``h`` alone;
    each further block adds its own input (identity residual)::

        h1 = block_1([h, extra]) + conv1x1(h),   h_{i+1} = block_{i+1}(h_i) + h_i

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import ResidualStage
    >>> stage = ResidualStage(1, 4, 2, 6, blocks=2, padding="zeros", activation="gelu")
    >>> tuple(stage(torch.zeros(1, 4, 8), torch.zeros(1, 2, 8)).shape)
    (1, 6, 8)
    """

    def __init__(self, dim: int, c_in: int, c_extra: int, c_out: int, blocks: int, padding: str, activation: str):
        super().__init__()
        self.blocks = nn.ModuleList(
            ConvBlock(dim, c_in + c_extra if i == 0 else c_out, c_out, padding, activation) for i in range(blocks)
        )
        self.shortcut = getattr(nn, f"Conv{dim}d")(c_in, c_out, 1)

    def forward(self, h: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        first = h if extra is None else torch.cat([h, extra], dim=1)
        out = self.blocks[0](first) + self.shortcut(h)
        for block in self.blocks[1:]:
            out = block(out) + out
        return out


def level_channels(width: int, multiplier: float, levels: int) -> list[int]:
    """Channels per resolution: ``int(width * multiplier**l)`` for ``l = 0..levels``.

    Examples
    --------
    >>> from sciml.models.sinenet import level_channels
    >>> level_channels(64, 1.425, 4)   # SineNet-8 of Zhang et al. (2024)
    [64, 91, 129, 185, 263]
    """
    return [int(width * multiplier**level) for level in range(levels + 1)]


class UWave(nn.Module):
    """One U-shaped pass: ``levels`` downsampling stages, then as many upsampling stages.

    On the way down, level ``l`` average-pools the features by 2 and applies a
    :class:`ResidualStage` (``channels[l-1] -> channels[l]``); with ``disentangle`` the
    stage also receives the wave's input, average-pooled to the same grid, as extra
    channels (levels >= 2; on level 1 it would duplicate the pooled features). On the way
    up, each level upsamples by :func:`cubic_upsample` and applies a stage to the
    upsampled features concatenated with the skip of that level from this wave's encoder
    (the finest skip is the wave's input). Channels in and out are ``channels[0]``.

    Parameters
    ----------
    dim : int
        Spatial dimensions.
    channels : list of int
        Channels per resolution, finest first (``levels + 1`` entries).
    blocks : int
        :class:`ConvBlock` s per stage.
    padding : {"circular", "zeros"}
        Convolution padding; "circular" also makes the upsampling periodic, "zeros" makes it
        repeat the edge value.
    activation : {"gelu", "relu", "silu"}
    disentangle : bool
        Feed the pooled wave input to every encoder level.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import UWave
    >>> wave = UWave(2, [4, 6, 8], blocks=1, padding="circular", activation="gelu", disentangle=True)
    >>> tuple(wave(torch.zeros(2, 4, 8, 12)).shape)
    (2, 4, 8, 12)
    """

    def __init__(self, dim: int, channels: Sequence[int], blocks: int, padding: str, activation: str,
                 disentangle: bool):
        super().__init__()
        levels = len(channels) - 1
        self.disentangle = disentangle
        self.border = _UPSAMPLE_BORDER[padding]
        self.pool = getattr(F, f"avg_pool{dim}d")
        stage = dict(dim=dim, blocks=blocks, padding=padding, activation=activation)
        self.down = nn.ModuleList(
            ResidualStage(c_in=channels[l], c_extra=channels[0] if disentangle and l > 0 else 0,
                          c_out=channels[l + 1], **stage)
            for l in range(levels)
        )
        self.up = nn.ModuleList(
            ResidualStage(c_in=channels[l + 1], c_extra=channels[l], c_out=channels[l], **stage)
            for l in reversed(range(levels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips, h, pooled_input = [x], x, x
        for l, stage in enumerate(self.down):
            h = self.pool(h, 2)
            extra = None
            if self.disentangle:
                # the wave input pooled to this level; on the first level it equals h
                pooled_input = h if l == 0 else self.pool(pooled_input, 2)
                extra = pooled_input if l > 0 else None
            h = stage(h, extra)
            skips.append(h)
        h = skips.pop()
        for stage in self.up:
            h = stage(cubic_upsample(h, self.border), skips.pop())
        return h


class UShapedModel(GridModel):
    """Shared parts of :class:`SineNet` and :class:`~sciml.models.unet.UNet` (not registered).

    A 3-wide convolution lifts the inputs to ``width`` channels, the subclass's U-shaped
    part works on the lifted fields, and a 3-wide convolution projects to the outputs.
    Grids must halve ``levels`` times and keep >= 2 points per axis on the coarsest level.
    """

    def _build_ends(self) -> None:
        cfg = self.config
        conv = getattr(nn, f"Conv{cfg['dim']}d")
        self.lift = conv(cfg["in_channels"], cfg["width"], 3, padding=1, padding_mode=cfg["padding"])
        self.project = conv(cfg["width"], cfg["out_channels"], 3, padding=1, padding_mode=cfg["padding"])

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also require every axis to be a multiple of ``2**levels``, at least ``2**(levels + 1)``."""
        super().check_input(spatial_shape)
        shape = [int(n) for n in spatial_shape]
        levels = self.config["levels"]
        step = 2**levels
        if min(shape) < 2 * step:
            raise SciMLError(f"grid {shape} is too small for model.levels = {levels}: use multiples of {step} "
                             f"that are >= {2 * step} on every axis, or lower model.levels")
        if any(n % step for n in shape):
            raise SciMLError(f"grid {shape} does not halve model.levels = {levels} times: use sizes that are "
                             f"multiples of {step} on every axis, or lower model.levels")


def check_multiplier(value) -> float:
    """``value`` as a float if it is a finite number >= 1, else a one-line error naming ``model.multiplier``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 1:
        raise SciMLError(f"model.multiplier must be a number >= 1 (channel growth per level), got {value!r}")
    return float(value)


class SineNet(UShapedModel, name="sinenet"):
    """SineNet (Zhang et al., ICLR 2024): ``waves`` U-shaped waves in sequence, for 1-, 2- or 3-D grids.

    The input stacks the last ``history`` frames of every field as channels
    (``in_channels = history * fields``; see :mod:`sciml.rollout` for the layout) and the
    output is the next frame(s), ``out_channels = horizon * fields``. The network::

        x_0 = lift(input)                        3-wide convolution to ``width`` channels
        x_k = x_{k-1} + V_k(x_{k-1}),  k = 1..K  wave residual around each wave V_k
        output = project(x_K)                    3-wide convolution to ``out_channels``

    Each wave ``V_k`` is a :class:`UWave` with ``levels`` average-pool halvings and
    ``int(width * multiplier**l)`` channels on level ``l``: residual stages of two
    (convolution, GroupNorm, GELU) pairs, the wave input pooled into every encoder level
    ("disentangled" from the evolving features), cubic upsampling, and skips taken from
    the same wave's encoder only, so a skip is at most one wave (a fraction ``1/K`` of the
    time step) out of step with the decoder features it joins: the misalignment the paper
    shows a single U-Net suffers.

    Parameters
    ----------
    in_channels, out_channels : int
        ``history * fields`` and ``horizon * fields``.
    dim : int, default 2
        Spatial dimensions (1, 2 or 3).
    waves : int, default 8
        ``K``, the number of waves.
    width : int, default 64
        Channels on the finest level (the reference's ``hidden_channels``).
    levels : int, default 4
        Halvings per wave (the reference's ``num_layers``): ``levels + 1`` resolutions, so
        grids must be multiples of ``2**levels`` (with >= 2 points on the coarsest grid).
    multiplier : float, default 1.425
        Channel growth per level. The paper keeps ``width = 64`` and lowers the multiplier as
        ``K`` grows so that all SineNet-K have ~35.5 M parameters: 1.8075, 1.611, 1.5, 1.425
        for K = 2, 4, 6, 8; :func:`match_parameters` finds such a multiplier (or width).
    blocks : int, default 1
        :class:`ConvBlock` s per stage.
    padding : {"zeros", "circular"}, default "zeros"
        "circular" for periodic domains: circular convolutions and periodic upsampling
        make the model exactly equivariant to periodic shifts by multiples of ``2**levels``.
    activation : {"gelu", "relu", "silu"}, default "gelu"
    disentangle : bool, default True
        Feed each wave's input, pooled, to its encoder levels (the paper's ablation turns
        it off).

    Notes
    -----
    Follows the authors' code (``sinenet_dual.py`` and ``models/registry.py`` in
    github.com/divelab/AIRS, OpenPDE/SineNet), checked part by part: 3-wide lift and
    projection convolutions; per wave, ``levels`` (average-pool, stage) encoder levels and
    as many (upsample, stage) decoder levels; a stage's first block has a 1x1-convolution
    shortcut of the pooled or upsampled features alone, the others identity shortcuts;
    GroupNorm with one group; encoder levels >= 2 also see the wave input pooled to their
    grid; decoder skips come from the same wave (the finest one is the wave input);
    periodic upsampling is bicubic on the grid extended periodically by two points; the
    wave residual wraps every wave; SineNet-K of one size keep ``width`` and lower the
    multiplier (the registry's 1.8075, 1.611, 1.5, 1.425 for K = 2, 4, 6, 8). Like the
    reference, the output is the next frame itself (in the training normalisation), not
    an increment of the last input frame. Differences:

    - Upsampling is separable cubic interpolation (:func:`cubic_upsample`), equal to the
      reference's torch "bicubic" in 2-D, so the same code runs in 1-D and 3-D.
    - Any grid whose sides are multiples of ``2**levels`` works; the reference assumed its
      datasets' sizes (four halvings).

    With ``in_channels = 12``, ``out_channels = 3`` (history 4 of a scalar and a 2-D vector)
    and the defaults, the model has 35,490,219 parameters, the reference's SineNet-8.

    References
    ----------
    X. Zhang, J. Helwig, Y. Lin, Y. Xie, C. Fu, S. Wojtowytsch, S. Ji, "SineNet: Learning
    Temporal Dynamics in Time-Dependent Partial Differential Equations", ICLR 2024.
    O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
    Segmentation", MICCAI 2015. J. K. Gupta, J. Brandstetter, "Towards Multi-spatiotemporal-
    scale Generalized PDE Modeling" (PDEArena), TMLR 2023.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sinenet import SineNet
    >>> model = SineNet(in_channels=2, out_channels=1, dim=1, waves=3, width=4, levels=3)
    >>> tuple(model(torch.zeros(2, 2, 40)).shape)
    (2, 1, 40)
    >>> model.check_input((36,))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: grid [36] does not halve model.levels = 3 times: use sizes that are multiples of 8 on every axis, or lower model.levels
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 2,
        waves: int = 8,
        width: int = 64,
        levels: int = 4,
        multiplier: float = 1.425,
        blocks: int = 1,
        padding: str = "zeros",
        activation: str = "gelu",
        disentangle: bool = True,
    ):
        if not isinstance(disentangle, bool):
            raise SciMLError(f"model.disentangle must be true or false, got {disentangle!r}")
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=spatial_dim(dim, "SineNet"),
                waves=positive_int("waves", waves),
                width=positive_int("width", width),
                levels=positive_int("levels", levels),
                multiplier=check_multiplier(multiplier),
                blocks=positive_int("blocks", blocks),
                padding=choice("padding", padding, PADDINGS),
                activation=choice("activation", activation, ACTIVATIONS),
                disentangle=disentangle,
            )
        )
        cfg = self.config
        channels = level_channels(cfg["width"], cfg["multiplier"], cfg["levels"])
        self._build_ends()
        self.waves = nn.ModuleList(
            UWave(cfg["dim"], channels, cfg["blocks"], cfg["padding"], cfg["activation"], cfg["disentangle"])
            for _ in range(cfg["waves"])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)``."""
        self.check_batch(x)
        x = self.lift(x)
        for wave in self.waves:
            x = x + wave(x)
        return self.project(x)


def count_parameters(name: str, **config) -> int:
    """Trainable parameters of ``build_model(name, **config)``, counted without allocating weights.

    The model is built on PyTorch's "meta" device, so even a 35 M parameter SineNet costs
    milliseconds and no memory.

    Examples
    --------
    >>> import sciml.models.sinenet
    >>> from sciml.models.sinenet import count_parameters
    >>> count_parameters("sinenet", in_channels=12, out_channels=3)
    35490219
    """
    with torch.device("meta"):
        return build_model(name, **config).n_parameters


def match_parameters(name: str, n_parameters: int, vary: str = "width", **config) -> dict:
    """The ``config`` of model ``name`` with ``vary`` set so its parameter count is closest to ``n_parameters``.

    ``vary = "width"`` searches integer widths; ``vary = "multiplier"`` searches the channel
    growth per level (a float >= 1), as the SineNet paper does to give SineNet-K the same
    size for every K. The count never decreases as the varied option grows, so a bracket
    and bisection find the closest count (widths exactly; multipliers to 1e-5). Counting
    builds the model on the "meta" device (:func:`count_parameters`), ~0.05 s per try.
    Use it to compare models of different shape at equal size.

    Parameters
    ----------
    name : str
        A registered model with an int ``width`` (and, for "multiplier", a float
        ``multiplier``) option, e.g. "sinenet" or "unet".
    n_parameters : int
        The target parameter count.
    vary : {"width", "multiplier"}
    **config
        The model's other options (``in_channels``, ``out_channels``, ``waves``, ...).

    Returns
    -------
    dict
        ``config`` plus the chosen ``vary`` value; ``build_model(name, **result)`` builds it.

    Examples
    --------
    >>> import sciml.models.sinenet
    >>> from sciml.models.sinenet import count_parameters, match_parameters
    >>> cfg = match_parameters("sinenet", 35_490_219, vary="multiplier", in_channels=12, out_channels=3, waves=2)
    >>> round(cfg["multiplier"], 3), abs(count_parameters("sinenet", **cfg) / 35_490_219 - 1) < 0.001
    (1.807, True)
    """
    target = positive_int("n_parameters", n_parameters)
    choice("vary", vary, ("width", "multiplier"))
    config = {k: v for k, v in config.items() if k != vary}
    counts: dict = {}

    def count(value) -> int:
        if value not in counts:
            counts[value] = count_parameters(name, **config, **{vary: value})
        return counts[value]

    def closest(lo, hi):
        return min((lo, hi), key=lambda v: abs(count(v) - target))

    if vary == "width":
        # the count grows about quadratically with the width: guess, gallop to a bracket, bisect
        guess = max(1, round(16 * math.sqrt(target / count(16))))
        if count(guess) < target:
            lo, step = guess, 1
            while count(lo + step) < target:
                lo, step = lo + step, 2 * step
                if lo > 2**20:
                    raise SciMLError(f"no width up to {2**20} gives {target} parameters: check n_parameters")
            hi = lo + step
        else:
            hi, step = guess, 1
            while count(max(hi - step, 1)) >= target:
                if hi - step <= 1:
                    return dict(config, width=1)
                hi, step = hi - step, 2 * step
            lo = max(hi - step, 1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
        return dict(config, width=closest(lo, hi))

    lo, hi = 1.0, 2.0
    if count(lo) > target:
        raise SciMLError(f"{name} has {count(lo)} parameters already with multiplier 1 > {target}: "
                         "lower its width or waves, or vary the width instead")
    while count(hi) < target:
        lo, hi = hi, 2 * hi
        if hi > 64:
            raise SciMLError(f"no multiplier up to 64 gives {target} parameters: raise the width or check n_parameters")
    while hi - lo > 1e-5:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return dict(config, multiplier=closest(lo, hi))
