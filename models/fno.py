"""The Fourier neural operator, as implemented by neuraloperator.

Examples
--------
>>> import torch
>>> from sciml.models import FNO
>>> model = FNO(in_channels=2, out_channels=1, n_modes=4, width=8, n_layers=2)
>>> tuple(model(torch.zeros(3, 2, 16, 16)).shape)
(3, 1, 16, 16)
"""

from __future__ import annotations

from typing import Sequence

import torch

from sciml.errors import SciMLError
from sciml.models.base import GridModel, choice, positive_int, spatial_dim

_SKIPS = ("linear", "identity", "soft-gating", None)
_NORMS = (None, "group_norm", "instance_norm")
_FACTORIZATIONS = (None, "dense", "tucker", "cp", "tt")




class FNO(GridModel, name="fno"):
    """Fourier neural operator (Li et al. 2021) for 1-, 2- or 3-D grids.

    A thin wrapper around ``neuralop.models.FNO`` from neuraloperator (Kovachki et al.
    2023): lifting, ``n_layers`` Fourier layers that keep the lowest ``n_modes``
    frequencies per axis, and projection. It adds the :class:`GridModel` contract
    (registry name, JSON config, input checks); the numerics are neuraloperator's.
    Departures from the paper are neuraloperator's defaults: a channel MLP after each
    spectral convolution and the grid coordinates appended as input channels
    (``positional_embedding="grid"``).

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    n_modes : int or list of int, default 12
        Fourier modes kept per axis (neuraloperator's convention: the total number of
        frequencies, negative and positive, so a grid of ``n`` points resolves up to
        ``n``). An int is used on each of ``dim`` axes; a list fixes ``dim``.
    width : int, default 32
        Hidden channels (``hidden_channels`` in neuraloperator).
    n_layers : int, default 4
        Fourier layers.
    dim : int, optional
        Spatial dimensions; default ``len(n_modes)`` for a list, else 2.
    positional_embedding : {"grid", None}
        Append the grid coordinates on [0, 1] as input channels.
    domain_padding : float or list of float, optional
        Fraction of each axis to zero-pad before the Fourier layers (helps on
        non-periodic problems, as in Li et al. 2021 for Darcy flow).
    lifting_channel_ratio, projection_channel_ratio : float
        Hidden size of the lifting/projection MLPs relative to ``width``.
    norm : {None, "group_norm", "instance_norm"}
    fno_skip, channel_mlp_skip : {"linear", "identity", "soft-gating", None}
    factorization : {None, "dense", "tucker", "cp", "tt"}
        Low-rank spectral weights (the Tensorized FNO, Kossaifi et al. 2023).
    rank : float
        Relative rank of the factorisation.

    References
    ----------
    Z. Li, N. Kovachki, K. Azizzadenesheli, B. Liu, K. Bhattacharya, A. Stuart,
    A. Anandkumar, "Fourier Neural Operator for Parametric Partial Differential
    Equations", ICLR 2021. neuraloperator: https://github.com/neuraloperator/neuraloperator

    Examples
    --------
    >>> from sciml.models import FNO
    >>> FNO(in_channels=1, out_channels=1, n_modes=[8, 8, 4], width=8).dim
    3
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_modes: int | Sequence[int] = 12,
        width: int = 32,
        n_layers: int = 4,
        dim: int | None = None,
        positional_embedding: str | None = "grid",
        domain_padding: float | Sequence[float] | None = None,
        lifting_channel_ratio: float = 2,
        projection_channel_ratio: float = 2,
        norm: str | None = None,
        fno_skip: str | None = "linear",
        channel_mlp_skip: str | None = "soft-gating",
        factorization: str | None = None,
        rank: float = 1.0,
    ):
        if isinstance(n_modes, (list, tuple)):
            modes = [positive_int("n_modes", m) for m in n_modes]
            if not modes or (dim is not None and dim != len(modes)):
                raise SciMLError(f"model.n_modes {list(n_modes)} does not match model.dim = {dim}: give one entry per axis")
            dim = len(modes)
        else:
            dim = 2 if dim is None else positive_int("dim", dim)
            modes = [positive_int("n_modes", n_modes)] * dim
        dim = spatial_dim(dim, "the FNO")
        if isinstance(domain_padding, (list, tuple)):
            domain_padding = [float(p) for p in domain_padding]
        elif domain_padding is not None:
            domain_padding = float(domain_padding)
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                n_modes=modes,
                width=positive_int("width", width),
                n_layers=positive_int("n_layers", n_layers),
                dim=dim,
                positional_embedding=choice("positional_embedding", positional_embedding, ("grid", None)),
                domain_padding=domain_padding,
                lifting_channel_ratio=float(lifting_channel_ratio),
                projection_channel_ratio=float(projection_channel_ratio),
                norm=choice("norm", norm, _NORMS),
                fno_skip=choice("fno_skip", fno_skip, _SKIPS),
                channel_mlp_skip=choice("channel_mlp_skip", channel_mlp_skip, _SKIPS),
                factorization=choice("factorization", factorization, _FACTORIZATIONS),
                rank=float(rank),
            )
        )
        from neuralop.models import FNO as NeuralopFNO

        cfg = self.config
        self.net = NeuralopFNO(
            n_modes=tuple(cfg["n_modes"]),
            in_channels=cfg["in_channels"],
            out_channels=cfg["out_channels"],
            hidden_channels=cfg["width"],
            n_layers=cfg["n_layers"],
            lifting_channel_ratio=cfg["lifting_channel_ratio"],
            projection_channel_ratio=cfg["projection_channel_ratio"],
            positional_embedding=cfg["positional_embedding"],
            domain_padding=cfg["domain_padding"],
            norm=cfg["norm"],
            fno_skip=cfg["fno_skip"],
            channel_mlp_skip=cfg["channel_mlp_skip"],
            factorization=cfg["factorization"],
            rank=cfg["rank"],
        )

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also require every axis to resolve the kept modes (``n >= n_modes``).

        neuraloperator would silently drop the modes a coarser grid cannot hold,
        discarding trained weights; here that is an error instead.
        """
        super().check_input(spatial_shape)
        for axis, (n, m) in enumerate(zip(spatial_shape, self.config["n_modes"])):
            if n < m:
                raise SciMLError(
                    f"resolution {n} (axis {axis}) is too small for n_modes {m}: "
                    f"use resolution >= {m} or set model.n_modes <= {n}"
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)``."""
        self.check_batch(x)
        return self.net(x)
