"""The Latent Spectral Model: a U-Net whose skips solve in a latent space of a few tokens.

Examples
--------
>>> import torch
>>> from sciml.models.lsm import LSM
>>> model = LSM(in_channels=2, out_channels=1, width=8, n_scales=3, patch_size=4)
>>> tuple(model(torch.zeros(3, 2, 27, 31)).shape)
(3, 1, 27, 31)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sciml.errors import SciMLError
from sciml.models.base import GridModel, positive_int, spatial_dim

_INTERPOLATION = {1: "linear", 2: "bilinear", 3: "trilinear"}



def _layer(kind: str, dim: int):
    """``nn.Conv2d``, ``nn.BatchNorm3d``, ... for ``dim`` spatial dimensions."""
    return getattr(nn, f"{kind}{dim}d")


def _double_conv(dim: int, c_in: int, c_out: int, c_mid: int) -> nn.Sequential:
    """Two (3-point convolution, batch norm, ReLU) stages: the U-Net's unit."""
    conv, norm = _layer("Conv", dim), _layer("BatchNorm", dim)
    return nn.Sequential(
        conv(c_in, c_mid, kernel_size=3, padding=1, bias=False), norm(c_mid), nn.ReLU(),
        conv(c_mid, c_out, kernel_size=3, padding=1, bias=False), norm(c_out), nn.ReLU(),
    )


class SpectralTransition(nn.Module):
    """The latent transition of the neural spectral block: a learned trigonometric series.

    Each channel ``c`` of a token ``T`` is mapped through a truncated trigonometric
    expansion of the latent operator in the token's own value (the latent coordinate),

    .. math::

        \\mathcal{F}(T)_c = T_c + \\sum_{k=0}^{K-1} a_{c,k} \\cos(\\omega_k T_c)
                          + \\sum_{k=1}^{K-1} b_{c,k} \\sin(\\omega_k T_c),
        \\qquad \\omega_k = k\\pi / K,

    with learned coefficients ``a`` (``cos_weight``) and ``b`` (``sin_weight``) and
    ``K = num_basis``. :meth:`basis_operator` is the sum without the residual ``T``.
    The frequencies ``k pi / K`` and the residual follow the authors' code; the
    ``k = 0`` sine (identically zero, so its weight never trains) is left out, so the
    ``k = 0`` cosine is the series' constant term.

    Parameters
    ----------
    channels : int
        Channels of a token.
    num_basis : int
        ``K``: cosines ``k = 0..K-1`` and sines ``k = 1..K-1``.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.lsm import SpectralTransition
    >>> step = SpectralTransition(channels=4, num_basis=3)
    >>> tuple(step(torch.zeros(2, 5, 4)).shape)
    (2, 5, 4)
    """

    def __init__(self, channels: int, num_basis: int):
        super().__init__()
        self.num_basis = num_basis
        self.cos_weight = nn.Parameter(torch.rand(channels, num_basis) / channels)
        self.sin_weight = nn.Parameter(torch.rand(channels, num_basis - 1) / channels)

    def basis_operator(self, tokens: torch.Tensor) -> torch.Tensor:
        """``sum_k a_k cos(w_k T) + b_k sin(w_k T)`` per channel, for tokens ``(..., channels)``."""
        k = torch.arange(self.num_basis, dtype=tokens.dtype, device=tokens.device)
        angles = tokens[..., None] * (k * (math.pi / self.num_basis))
        return (torch.einsum("...ck,ck->...c", torch.cos(angles), self.cos_weight)
                + torch.einsum("...ck,ck->...c", torch.sin(angles[..., 1:]), self.sin_weight))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """``T + basis_operator(T)`` for tokens ``(..., channels)``."""
        return tokens + self.basis_operator(tokens)


class NeuralSpectralBlock(nn.Module):
    """Patchwise neural spectral block: pixels -> latent tokens -> transition -> pixels.

    The feature map ``(B, C, *grid)`` is cut into patches of ``patch_size`` points
    (after reflect-padding each axis to a whole number of patches; see
    :meth:`patch_shape`). In every patch, ``num_token`` learned latent tokens attend to
    the patch's pixels (multi-head attention, keys and values a linear map of the
    pixels, residual to the learned tokens), pass through :class:`SpectralTransition`,
    and the pixels attend back to them (queries a linear map of the pixels, keys and
    values the tokens, residual to the pixels). The padding is cropped off. Per patch
    of pixels ``x`` (``P x C``) and per head, with ``d`` channels a head:

    .. math::

        T = \\mathrm{softmax}\\big(T_0 (x W_k)^\\top / \\sqrt{d}\\big)\\, x W_v + T_0, \\qquad
        T' = \\mathcal{F}(T), \\qquad
        x' = x + \\mathrm{softmax}\\big(x W_q\\, T'^\\top / \\sqrt{d}\\big)\\, T',

    where ``T_0`` are the learned tokens and ``F`` is :class:`SpectralTransition`.

    Parameters
    ----------
    dim : int
        Spatial dimensions.
    channels : int
        Channels of the feature map; divisible by ``n_heads``.
    num_basis, num_token, n_heads : int
    patch_size : sequence of int
        Largest patch, per axis, in grid points.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.lsm import NeuralSpectralBlock
    >>> block = NeuralSpectralBlock(2, channels=8, num_basis=4, num_token=2, n_heads=2, patch_size=(4, 4))
    >>> tuple(block(torch.randn(1, 8, 9, 6)).shape)
    (1, 8, 9, 6)
    """

    def __init__(self, dim: int, channels: int, num_basis: int, num_token: int, n_heads: int,
                 patch_size: Sequence[int]):
        super().__init__()
        self.dim, self.n_heads, self.patch_size = dim, n_heads, tuple(patch_size)
        self.latent = nn.Parameter(torch.rand(n_heads, num_token, channels // n_heads) / channels)
        self.to_key_value = nn.Linear(channels, 2 * channels)
        self.to_query = nn.Linear(channels, channels)
        self.transition = SpectralTransition(channels, num_basis)

    def patch_shape(self, grid: Sequence[int]) -> tuple[int, ...]:
        """Patch size per axis for a feature map of shape ``grid``.

        An axis of ``n`` points gets ``m = ceil(n / p)`` patches of ``ceil(n / m) <= p``
        points, so it is padded by fewer than ``m`` points and a coarse map (``n < p``)
        is one patch.
        """
        sizes = []
        for n, p in zip(grid, self.patch_size):
            n_patches = -(-n // p)
            sizes.append(-(-n // n_patches))
        return tuple(sizes)

    def _heads(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(B', L, C) -> (B', heads, L, C / heads)``."""
        return pixels.unflatten(-1, (self.n_heads, -1)).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, C, *grid)`` to ``(B, C, *grid)``."""
        batch, channels, *grid = x.shape
        patch = self.patch_shape(grid)
        counts = [-(-n // p) for n, p in zip(grid, patch)]
        padding = [m * p - n for n, p, m in zip(grid, patch, counts)]
        if any(padding):
            # F.pad lists (left, right) pairs from the last axis backwards
            x = F.pad(x, [v for pad in reversed(padding) for v in (0, pad)], mode="reflect")
        d = self.dim
        # (B, C, m1, p1, ..., md, pd) -> (B * m1..md, p1..pd, C)
        split = x.reshape(batch, channels, *[v for mp in zip(counts, patch) for v in mp])
        order = [0, *range(2, 2 + 2 * d, 2), *range(3, 3 + 2 * d, 2), 1]
        pixels = split.permute(order).reshape(batch * math.prod(counts), math.prod(patch), channels)

        key, value = self._heads(self.to_key_value(pixels)).chunk(2, dim=-1)
        latent = self.latent.expand(pixels.shape[0], -1, -1, -1)
        tokens = F.scaled_dot_product_attention(latent, key, value) + latent
        tokens = self.transition(tokens.transpose(1, 2).flatten(2))
        query = self._heads(self.to_query(pixels))
        update = F.scaled_dot_product_attention(query, *[self._heads(tokens)] * 2)
        pixels = pixels + update.transpose(1, 2).flatten(2)

        # back to (B, C, m1 p1, ..., md pd), then crop the padding
        inverse = [0, 2 * d + 1, *[v for i in range(d) for v in (1 + i, 1 + d + i)]]
        x = pixels.reshape(batch, *counts, *patch, channels).permute(inverse)
        x = x.reshape(batch, channels, *[m * p for m, p in zip(counts, patch)])
        return x[(..., *[slice(0, n) for n in grid])]


class LSM(GridModel, name="lsm"):
    """Latent Spectral Model (Wu et al. 2023) for 1-, 2- or 3-D grids.

    The input and its grid coordinates on ``[0, 1]`` are lifted pointwise to ``width``
    channels and fed to a U-Net of ``n_scales`` levels (double 3-point convolutions
    with batch norm and ReLU; max-pooling by 2 down; linear interpolation up, to the
    skip's exact shape, then concatenation and a double convolution). Every skip,
    the bottleneck included, passes through a :class:`NeuralSpectralBlock`: per patch,
    latent tokens gather the pixels by attention (the paper's latent encoder), a
    learned trigonometric series transforms them (:class:`SpectralTransition`, the
    neural spectral block), and the pixels read them back by attention (the latent
    decoder). A pointwise two-layer GELU network projects to ``out_channels``.

    Channels per level follow the authors' code: ``width * 2**l`` for ``l < n_scales - 1``,
    and the bottom level keeps the channels of the one above (their bilinear U-Net).
    With ``n_scales = 5`` this is the paper's 5-scale model.

    Departures from the paper and the authors' code (thuml/Latent-Spectral-Models):

    * any grid: max-pooling floors odd sizes and the decoder interpolates to the
      skip's exact shape (the code upsamples by 2 and zero-pads); each block pads
      its map by reflection to whole patches and shrinks the patch on maps smaller
      than ``patch_size`` (the code needs every level divisible by the patch, which
      its experiments arrange with a fixed zero-padding of the domain, an option not
      offered here);
    * attention logits are scaled by ``1/sqrt(head channels)`` (standard scaled
      dot-product attention; the code leaves them unscaled);
    * the spectral transition omits the ``k = 0`` sine, which is identically zero
      (see :class:`SpectralTransition`);
    * one code for 1-, 2- and 3-D (the paper's 3-D model is a separate file there).

    ``patch_size`` counts grid points, so on a finer grid a patch covers less of the
    domain, as in the paper.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    dim : int, default 2
        Spatial dimensions (1, 2 or 3).
    width : int, default 32
        Channels of the finest level (the paper's ``d_model``; 64 for Darcy).
    n_scales : int, default 5
        U-Net levels; each axis needs at least ``2**(n_scales - 1)`` points.
    num_token : int, default 4
        Latent tokens per patch.
    num_basis : int, default 12
        Frequencies ``K`` of the trigonometric series.
    patch_size : int or list of int, default 4
        Largest patch per axis, in grid points (6 for Darcy in the paper).
    n_heads : int, default 8
        Attention heads; must divide ``width``.
    projection_channels : int, default 128
        Hidden channels of the output projection.

    References
    ----------
    H. Wu, T. Hu, H. Luo, J. Wang, M. Long, "Solving High-Dimensional PDEs with Latent
    Spectral Models", ICML 2023. Code: https://github.com/thuml/Latent-Spectral-Models

    Examples
    --------
    >>> import torch
    >>> from sciml.models import build_model
    >>> model = build_model("lsm", in_channels=1, out_channels=1, dim=1, width=8, n_scales=3)
    >>> tuple(model(torch.randn(2, 1, 50)).shape)
    (2, 1, 50)
    >>> model.check_input((3,))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: resolution 3 (axis 0) is too small for n_scales 3: use resolution >= 4 or set model.n_scales <= 2
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 2,
        width: int = 32,
        n_scales: int = 5,
        num_token: int = 4,
        num_basis: int = 12,
        patch_size: int | Sequence[int] = 4,
        n_heads: int = 8,
        projection_channels: int = 128,
    ):
        dim = spatial_dim(dim, "the LSM")
        if isinstance(patch_size, (list, tuple)):
            patches = [positive_int("patch_size", p) for p in patch_size]
            if len(patches) != dim:
                raise SciMLError(f"model.patch_size {list(patch_size)} does not match model.dim = {dim}: give one entry per axis")
        else:
            patches = [positive_int("patch_size", patch_size)] * dim
        width, n_heads = positive_int("width", width), positive_int("n_heads", n_heads)
        if width % n_heads:
            raise SciMLError(f"model.width = {width} is not divisible by model.n_heads = {n_heads}: choose a width that is a multiple of n_heads")
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=dim,
                width=width,
                n_scales=positive_int("n_scales", n_scales),
                num_token=positive_int("num_token", num_token),
                num_basis=positive_int("num_basis", num_basis),
                patch_size=patches,
                n_heads=n_heads,
                projection_channels=positive_int("projection_channels", projection_channels),
            )
        )
        conv = _layer("Conv", dim)
        channels = [width * 2 ** max(0, min(level, n_scales - 2)) for level in range(n_scales)]
        self.lift = conv(in_channels + dim, width, kernel_size=1)
        self.encoder = nn.ModuleList([_double_conv(dim, width, width, width)])
        self.encoder.extend(
            nn.Sequential(_layer("MaxPool", dim)(2), _double_conv(dim, c_prev, c, c))
            for c_prev, c in zip(channels, channels[1:])
        )
        self.spectral = nn.ModuleList(
            NeuralSpectralBlock(dim, c, num_basis, num_token, n_heads, patches) for c in channels
        )
        # decoder level l: upsampled map (channels[l]) + skip (channels[l]) -> channels[l - 1]
        self.decoder = nn.ModuleList(
            _double_conv(dim, 2 * channels[level], channels[max(level - 1, 0)], channels[level])
            for level in range(n_scales - 1)
        )
        self.out = conv(width, width, kernel_size=1)
        self.project = nn.Sequential(
            conv(width, projection_channels, kernel_size=1), nn.GELU(),
            conv(projection_channels, out_channels, kernel_size=1),
        )

    @property
    def n_scales(self) -> int:
        return self.config["n_scales"]

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also require ``2**(n_scales - 1)`` points per axis, so the coarsest level is not empty."""
        super().check_input(spatial_shape)
        need = 2 ** (self.n_scales - 1)
        for axis, n in enumerate(spatial_shape):
            if n < need:
                raise SciMLError(
                    f"resolution {n} (axis {axis}) is too small for n_scales {self.n_scales}: "
                    f"use resolution >= {need} or set model.n_scales <= {n.bit_length()}"
                )

    def _coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """Grid coordinates on ``[0, 1]``, ``(B, dim, *grid)``."""
        axes = [torch.linspace(0, 1, n, dtype=x.dtype, device=x.device) for n in x.shape[2:]]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))
        return grid.expand(x.shape[0], *grid.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)``."""
        self.check_batch(x)
        coarsest = [n >> (self.n_scales - 1) for n in x.shape[2:]]
        if self.training and x.shape[0] * math.prod(coarsest) == 1:
            raise SciMLError(
                f"a batch of 1 on grid {list(x.shape[2:])} leaves one value per channel at the coarsest level, "
                f"too few for batch norm in training: use batch size >= 2, a finer grid or fewer model.n_scales"
            )
        h = self.lift(torch.cat([x, self._coordinates(x)], dim=1))
        skips = []
        for down in self.encoder:
            h = down(h)
            skips.append(h)
        h = self.spectral[-1](h)
        for level in reversed(range(self.n_scales - 1)):
            skip = self.spectral[level](skips[level])
            up = F.interpolate(h, size=skip.shape[2:], mode=_INTERPOLATION[self.dim], align_corners=True)
            h = self.decoder[level](torch.cat([skip, up], dim=1))
        return self.project(self.out(h))
