"""A plain U-Net of SineNet's residual blocks: the same-size, single-U baseline.

Examples
--------
>>> import torch
>>> from sciml.models.unet import UNet
>>> model = UNet(in_channels=4, out_channels=1, width=4, levels=2)
>>> tuple(model(torch.zeros(3, 4, 16, 12)).shape)
(3, 1, 16, 12)
"""

from __future__ import annotations

import torch

from sciml.models.base import choice, positive_int, spatial_dim
from sciml.models.sinenet import ACTIVATIONS, PADDINGS, UShapedModel, UWave, check_multiplier, level_channels


class UNet(UShapedModel, name="unet"):
    """U-Net (Ronneberger et al. 2015) for 1-, 2- or 3-D grids, built from :mod:`sciml.models.sinenet`'s blocks.

    ``output = project(U(lift(input)))``: a 3-wide convolution to ``width`` channels, one
    :class:`~sciml.models.sinenet.UWave` (``levels`` average-pool halvings with
    ``int(width * multiplier**l)`` channels on level ``l``, residual stages of two
    (convolution, GroupNorm, GELU) pairs, cubic upsampling, skips from the encoder), and a
    3-wide convolution to ``out_channels``. It is SineNet with one wave, no wave residual and
    no pooled input fed to the encoder: with :func:`~sciml.models.sinenet.match_parameters`
    it gives a U-Net of SineNet-K's size that differs from it only in running the whole time
    step through a single U (so its skips are a full step out of phase with its decoder).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields (``history * fields`` and ``horizon * fields`` for
        time stepping; see :mod:`sciml.rollout`).
    dim : int, default 2
        Spatial dimensions (1, 2 or 3).
    width : int, default 64
        Channels on the finest level.
    levels : int, default 4
        Halvings: grids must be multiples of ``2**levels`` (>= 2 points on the coarsest).
    multiplier : float, default 2.0
        Channel growth per level (2: the classic doubling).
    blocks : int, default 1
        Residual blocks per stage (more gives a deeper U-Net, as the SineNet paper's
        "deeper U-Net" comparison with 8).
    padding : {"zeros", "circular"}, default "zeros"
        "circular" for periodic domains (convolutions and upsampling).
    activation : {"gelu", "relu", "silu"}, default "gelu"

    Notes
    -----
    Not PDEArena's "modern U-Net" (Gupta & Brandstetter 2023), which has two blocks per
    level, a middle block and per-level channel multipliers (1, 2, 2, 4): this baseline keeps
    every design choice of SineNet except the waves, so a comparison at equal parameter
    count isolates them.

    References
    ----------
    O. Ronneberger, P. Fischer, T. Brox, "U-Net: Convolutional Networks for Biomedical Image
    Segmentation", MICCAI 2015. X. Zhang et al., "SineNet: Learning Temporal Dynamics in
    Time-Dependent Partial Differential Equations", ICLR 2024. J. K. Gupta, J. Brandstetter,
    "Towards Multi-spatiotemporal-scale Generalized PDE Modeling" (PDEArena), TMLR 2023.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.unet import UNet
    >>> model = UNet(in_channels=2, out_channels=2, dim=3, width=4, levels=1, padding="circular")
    >>> tuple(model(torch.zeros(1, 2, 4, 6, 8)).shape)
    (1, 2, 4, 6, 8)
    >>> model.check_input((4, 6, 2))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: grid [4, 6, 2] is too small for model.levels = 1: use multiples of 2 that are >= 4 on every axis, or lower model.levels
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 2,
        width: int = 64,
        levels: int = 4,
        multiplier: float = 2.0,
        blocks: int = 1,
        padding: str = "zeros",
        activation: str = "gelu",
    ):
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=spatial_dim(dim, "the U-Net"),
                width=positive_int("width", width),
                levels=positive_int("levels", levels),
                multiplier=check_multiplier(multiplier),
                blocks=positive_int("blocks", blocks),
                padding=choice("padding", padding, PADDINGS),
                activation=choice("activation", activation, ACTIVATIONS),
            )
        )
        cfg = self.config
        self._build_ends()
        self.wave = UWave(cfg["dim"], level_channels(cfg["width"], cfg["multiplier"], cfg["levels"]),
                          cfg["blocks"], cfg["padding"], cfg["activation"], disentangle=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)``."""
        self.check_batch(x)
        return self.project(self.wave(self.lift(x)))
