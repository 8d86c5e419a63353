"""The small convolutional network of the deep conjugate direction method (DCDM).

Examples
--------
>>> import torch
>>> from sciml.models.dcdm_net import DCDMNet
>>> net = DCDMNet(dim=2)
>>> tuple(net(torch.zeros(3, 2, 17, 16)).shape)
(3, 1, 17, 16)
"""

from __future__ import annotations


import torch
import torch.nn.functional as F

from sciml.errors import SciMLError
from sciml.models.base import GridModel, positive_int, spatial_dim

__all__ = ["DCDMNet"]


def _conv(dim: int, in_channels: int, out_channels: int) -> torch.nn.Module:
    """A 3x3 (2-D) or 3x3x3 (3-D) convolution that keeps the grid size (zero padding)."""
    return (torch.nn.Conv2d, torch.nn.Conv3d)[dim - 2](in_channels, out_channels, kernel_size=3, padding=1)


class _ResidualBlock(torch.nn.Module):
    """``relu(x + conv(relu(conv(x))))``."""

    def __init__(self, dim: int, width: int):
        super().__init__()
        self.first = _conv(dim, width, width)
        self.second = _conv(dim, width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.second(F.relu(self.first(x))))


class DCDMNet(GridModel, name="dcdm-net"):
    """Maps a normalised residual on the grid to a search direction (Kaneda et al. 2023).

    The architecture follows the paper's description: a 3x3(x3) convolution lifts the
    input to ``width`` (16) channels; ``fine_blocks`` ReLU residual blocks work on the
    grid; 2x average pooling goes to one coarse level with ``coarse_blocks`` residual
    blocks; nearest-neighbour upsampling returns to the grid, where the fine features
    are added back (the skip); ``fine_blocks`` more residual blocks and a 3x3(x3)
    convolution give the one output channel. There are about 0.11 M parameters in 3-D
    with the defaults (0.04 M in 2-D).

    One class serves 2-D and 3-D (the convolution is chosen by ``dim``), and no grid
    size is built in: a net trained on 64^2 runs on 128^2. An odd grid is padded by one
    zero cell at the upper end of each odd axis before pooling and cropped after.
    ``levels > 1`` nests further pooling levels (each with its own blocks and skip)
    inside the first, U-Net style.

    ``levels=0`` (a departure, off by default) makes the depth follow the grid: the net
    pools until the smallest axis is at most ``coarsest`` cells, and every level uses
    the *same* fine blocks (shared weights), like the smoother of a multigrid V-cycle.
    Why: the smoothest modes of ``A`` need a direction close to ``A^-1 r``, which is
    global; the paper's one level reaches about 25 cells, so a net trained at 64^2
    takes more iterations the larger the grid. With shared levels the receptive field
    always spans the grid, and a net trained at 64^2 applies the same level map on
    every level of a 512^2 grid. Measured (energy loss, 1,500 steps at 64^2): 68, 123,
    591 and 1,248 DCDM iterations at 64^2, 128^2, 256^2 and 512^2; more Ritz
    right-hand sides on a mix of grid sizes did not change that (see
    :mod:`sciml.dcdm_training`, "Several operators"), but fine-tuning on the residuals
    of its own DCDM runs at 64^2 to 256^2 did ("Training on its own residuals"): 20,
    21, 23 and 25, so the shared level map does compose to a depth it was not trained at.

    Input channels: ``in_channels=1`` is the residual alone, as in the paper;
    ``in_channels=2`` (the default here, a departure) adds the fluid mask as a second
    channel and multiplies the output by it, so the net sees where the obstacles are
    and never puts a direction into a solid cell. The mask channel must hold 0 and 1.

    Parameters
    ----------
    in_channels : {1, 2}
        Residual, or residual and fluid mask.
    out_channels : int
        Must be 1 (the search direction).
    dim : {2, 3}
        Spatial dimensions.
    width : int
        Channels of the hidden layers (the paper: 16).
    fine_blocks, coarse_blocks : int
        Residual blocks on each side of every fine level and on the coarsest level.
    levels : int
        Coarsening levels (the paper: 1). More levels widen the receptive field, which
        the smoothest modes of a large grid need; a departure offered as an option.
        0: as many levels as the grid allows, with shared weights (see above).
    coarsest : int
        With ``levels=0``: pool while the smallest axis exceeds this many cells.

    References
    ----------
    A. Kaneda, O. Akar, J. Chen, V. A. T. Kala, D. Hyde, J. Teran, "A Deep Conjugate
    Direction Method for Iteratively Solving Linear Systems", ICML 2023.

    Examples
    --------
    >>> import torch
    >>> net = DCDMNet(dim=3)
    >>> 0.1e6 < net.n_parameters < 0.15e6
    True
    >>> r = torch.randn(1, 1, 8, 8, 8); mask = torch.ones_like(r)
    >>> tuple(net(torch.cat([r, mask], dim=1)).shape)
    (1, 1, 8, 8, 8)
    """

    def __init__(self, in_channels: int = 2, out_channels: int = 1, dim: int = 2, width: int = 16,
                 fine_blocks: int = 2, coarse_blocks: int = 4, levels: int = 1, coarsest: int = 8):
        if in_channels not in (1, 2):
            raise SciMLError(f"model.in_channels must be 1 (residual) or 2 (residual and fluid mask), got {in_channels!r}")
        if out_channels != 1:
            raise SciMLError(f"model.out_channels must be 1 (the search direction), got {out_channels!r}")
        dim = spatial_dim(dim, "dcdm-net", allowed=(2, 3))
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
            raise SciMLError(f"model.levels must be an integer >= 0 (0: follow the grid), got {levels!r}")
        super().__init__(dict(in_channels=in_channels, out_channels=out_channels, dim=dim,
                              width=positive_int("width", width), fine_blocks=positive_int("fine_blocks", fine_blocks),
                              coarse_blocks=positive_int("coarse_blocks", coarse_blocks),
                              levels=levels, coarsest=positive_int("coarsest", coarsest)))
        blocks = lambda count: torch.nn.Sequential(*(_ResidualBlock(dim, width) for _ in range(count)))
        self.lift = _conv(dim, in_channels, width)
        self.down = torch.nn.ModuleList(blocks(fine_blocks) for _ in range(max(levels, 1)))
        self.coarse = blocks(coarse_blocks)
        self.up = torch.nn.ModuleList(blocks(fine_blocks) for _ in range(max(levels, 1)))
        self.project = _conv(dim, width, 1)

    def _level(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Blocks on this level, the coarser levels on the pooled features, the skip, blocks again."""
        grid = x.shape[2:]
        levels = self.config["levels"]
        if (level == levels) if levels else min(grid) <= self.config["coarsest"]:
            return self.coarse(x)
        shared = 0 if levels == 0 else level
        odd = [n % 2 for n in grid]
        if any(odd):  # F.pad lists the last axis first
            x = F.pad(x, [p for n in reversed(odd) for p in (0, n)])
        fine = self.down[shared](x)
        pool = (F.avg_pool2d, F.avg_pool3d)[self.dim - 2]
        coarse = self._level(pool(fine, kernel_size=2), level + 1)
        y = self.up[shared](F.interpolate(coarse, scale_factor=2, mode="nearest") + fine)
        return y[(slice(None), slice(None), *(slice(0, n) for n in grid))]

    def check_input(self, spatial_shape) -> None:
        """Also require two points per axis on the coarsest level (``2^(levels + 1)`` on the grid)."""
        super().check_input(spatial_shape)
        need = 2 ** (self.config["levels"] + 1) if self.config["levels"] else 2
        if min(int(n) for n in spatial_shape) < need:
            raise SciMLError(f"grid {list(spatial_shape)} is too small for model.levels="
                             f"{self.config['levels']}: use resolution >= {need} or fewer levels")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to the direction ``(B, 1, *grid)``."""
        self.check_batch(x)
        y = self.project(self._level(F.relu(self.lift(x)), 0))
        return y * x[:, 1:2] if self.in_channels == 2 else y
