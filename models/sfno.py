"""SFNO: the spatio-temporal Fourier neural operator of the Spectral-Refiner paper.

Not the spherical FNO. A vorticity trajectory of ``in_channels`` frames is mapped to one of
``out_channels`` frames by Fourier layers acting on space *and* time; the output is added
to the last input frame. Time frames are the channel axis of the :class:`GridModel`
contract, so data ``(B, T_in, X, Y)`` becomes ``(B, T_out, X, Y)``.

Examples
--------
>>> import torch
>>> from sciml.models.sfno import SFNO
>>> model = SFNO(in_channels=4, out_channels=6, modes_space=4, modes_time=2, width=8, n_layers=1)
>>> tuple(model(torch.zeros(2, 4, 16, 16)).shape)
(2, 6, 16, 16)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from sciml.errors import SciMLError
from sciml.models.base import GridModel, positive_int, spatial_dim


def _kept_indices(modes: Sequence[int], sizes: Sequence[int], device) -> tuple:
    """Broadcast index tensors selecting the kept frequencies of an ``rfftn`` spectrum.

    On every axis but the last (the half spectrum) the kept frequencies are ``0..m-1`` and
    ``-m..-1``, stored in that order; on the last they are ``0..m-1``. ``sizes`` are the
    spectrum's lengths (``n`` on full axes, ``n // 2 + 1`` on the last).
    """
    d = len(modes)
    index = []
    for axis, (m, n) in enumerate(zip(modes, sizes)):
        if axis < d - 1:
            pos = torch.cat([torch.arange(m, device=device), torch.arange(n - m, n, device=device)])
        else:
            pos = torch.arange(m, device=device)
        shape = [1] * d
        shape[axis] = -1
        index.append(pos.view(shape))
    return tuple(index)


def _half_spectrum(sizes: Sequence[int]) -> list[int]:
    """Shape of the ``rfftn`` spectrum of a grid ``sizes`` (the last axis halved)."""
    return [*sizes[:-1], sizes[-1] // 2 + 1]


def _mix_channels(v: torch.Tensor, weight: torch.Tensor, batched: bool) -> torch.Tensor:
    """``einsum("bi...,io...->bo...")`` (or ``"bi...,bio...->bo..."`` when ``batched``) as one
    mode-major ``bmm``: a complex einsum over many modes is several times slower on CPU."""
    b, i, *modes = v.shape
    o = weight.shape[-len(modes) - 1]
    k = math.prod(modes)
    v_k = v.reshape(b, i, k).permute(2, 0, 1)                          # (K, B, I)
    if batched:
        w_k = weight.reshape(b, i, o, k).permute(3, 0, 1, 2).reshape(k * b, i, o)
        out = torch.bmm(v_k.reshape(k * b, 1, i), w_k).reshape(k, b, o)
    else:
        out = torch.bmm(v_k, weight.reshape(i, o, k).permute(2, 0, 1))  # (K, B, O)
    return out.permute(1, 2, 0).reshape(b, o, *modes)


class SpectralConv(nn.Module):
    """Fourier layer on the last ``len(modes)`` axes: FFT, per-mode channel mixing, inverse FFT.

    ``(B, C_in, *n) -> (B, C_out, *n_out)``: the kept frequencies of ``rfftn(v)`` (the
    lowest ``modes[i]`` of each sign on every axis but the last, the lowest ``modes[-1]``
    on the last) are multiplied by learned complex ``C_in x C_out`` matrices, a learned
    spectral bias is added when ``bias`` is set, and the result is transformed back on a
    grid of ``out_sizes`` points per axis (default: the input's). Transforms use
    ``norm="forward"``, so the kept coefficients are Fourier-series coefficients: the same
    weights act on any resolution, and a different ``out_sizes`` resamples the band-limited
    output (how the SFNO changes the number of time frames). Follows Li et al. (2021)
    with the spectral bias of Cao et al. (2025); dimension-generic.

    Parameters
    ----------
    in_channels, out_channels : int
    modes : sequence of int
        Kept frequencies per transformed axis (per sign except on the last axis).
    bias : bool, default False
        Add a learned complex coefficient to every kept output mode.
    batch_size : int, optional
        Give every sample of a batch of this size its own weights and bias (the
        Spectral-Refiner's per-trajectory copies); the batch must then have this size.

    Attributes
    ----------
    weight : Parameter
        Real view of the complex weights, ``([batch_size,] C_in, C_out, *kept, 2)`` with
        ``kept = (2 m_1, ..., 2 m_{d-1}, m_d)``.
    bias : Parameter or None
        ``([batch_size,] C_out, *kept, 2)``.

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sfno import SpectralConv
    >>> conv = SpectralConv(2, 3, modes=[4, 4, 2], bias=True)
    >>> tuple(conv(torch.randn(5, 2, 16, 12, 6), out_sizes=(16, 12, 10)).shape)
    (5, 3, 16, 12, 10)
    >>> big = conv.rebuilt([8, 6, 4], batch_size=5)  # more modes, one copy per sample
    >>> tuple(big.weight.shape)
    (5, 2, 3, 16, 12, 4, 2)
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int], bias: bool = False,
                 batch_size: int | None = None):
        super().__init__()
        self.in_channels = positive_int("in_channels", in_channels)
        self.out_channels = positive_int("out_channels", out_channels)
        self.modes = tuple(positive_int("modes", int(m)) for m in modes)
        self.batch_size = None if batch_size is None else positive_int("batch_size", batch_size)
        lead = () if batch_size is None else (batch_size,)
        kept = self.kept_shape(self.modes)
        scale = 1.0 / (in_channels * out_channels)
        self.weight = nn.Parameter(scale * torch.rand(*lead, in_channels, out_channels, *kept, 2))
        if bias:
            self.bias = nn.Parameter(torch.zeros(*lead, out_channels, *kept, 2))
        else:
            self.register_parameter("bias", None)

    @staticmethod
    def kept_shape(modes: Sequence[int]) -> tuple[int, ...]:
        """Shape of the kept block of the spectrum: ``(2 m_1, ..., 2 m_{d-1}, m_d)``."""
        return (*(2 * m for m in modes[:-1]), modes[-1])

    @staticmethod
    def full_modes(in_sizes: Sequence[int], out_sizes: Sequence[int]) -> tuple[int, ...]:
        """The most modes a layer between grids ``in_sizes`` and ``out_sizes`` can keep.

        ``min(n_in, n_out) // 2`` per sign on full axes (every frequency of an even grid),
        ``min(n_in, n_out) // 2 + 1`` on the last axis.

        Examples
        --------
        >>> from sciml.models.sfno import SpectralConv
        >>> SpectralConv.full_modes((64, 64, 20), (64, 64, 8))
        (32, 32, 5)
        """
        n = [min(int(a), int(b)) for a, b in zip(in_sizes, out_sizes)]
        return (*(k // 2 for k in n[:-1]), n[-1] // 2 + 1)

    def _check_sizes(self, sizes: Sequence[int]) -> None:
        limit = self.full_modes(sizes, sizes)
        if len(sizes) != len(self.modes) or any(m > lim for m, lim in zip(self.modes, limit)):
            raise SciMLError(
                f"grid {list(sizes)} is too small for a spectral layer with modes {list(self.modes)}: "
                f"use at least {[2 * m for m in self.modes[:-1]] + [max(1, 2 * self.modes[-1] - 2)]} points per axis"
            )

    def transform(self, v: torch.Tensor) -> torch.Tensor:
        """``rfftn`` of ``v`` over the layer's axes (Fourier-series coefficients)."""
        return torch.fft.rfftn(v, dim=tuple(range(-len(self.modes), 0)), norm="forward")

    def from_spectrum(self, v_hat: torch.Tensor, in_sizes: Sequence[int], out_sizes: Sequence[int]) -> torch.Tensor:
        """The layer on a precomputed spectrum ``v_hat = transform(v)`` of a grid ``in_sizes``."""
        in_sizes, out_sizes = [int(n) for n in in_sizes], [int(n) for n in out_sizes]
        self._check_sizes(in_sizes)
        self._check_sizes(out_sizes)
        batch = v_hat.shape[0]
        if self.batch_size is not None and batch != self.batch_size:
            raise SciMLError(f"this spectral layer holds weights for {self.batch_size} samples but got a batch "
                             f"of {batch}: rebuild it with batch_size={batch}")
        ch = (slice(None), slice(None))
        selected = v_hat[ch + _kept_indices(self.modes, _half_spectrum(in_sizes), v_hat.device)]
        weight = torch.view_as_complex(self.weight)
        mixed = _mix_channels(selected, weight, batched=self.batch_size is not None)
        if self.bias is not None:
            mixed = mixed + torch.view_as_complex(self.bias)
        out_hat = v_hat.new_zeros(batch, self.out_channels, *_half_spectrum(out_sizes))
        out_hat[ch + _kept_indices(self.modes, _half_spectrum(out_sizes), v_hat.device)] = mixed
        return torch.fft.irfftn(out_hat, s=out_sizes, dim=tuple(range(-len(self.modes), 0)), norm="forward")

    def forward(self, v: torch.Tensor, out_sizes: Sequence[int] | None = None) -> torch.Tensor:
        """Map ``(B, C_in, *n)`` to ``(B, C_out, *out_sizes)`` (default ``out_sizes = n``)."""
        sizes = v.shape[-len(self.modes):]
        return self.from_spectrum(self.transform(v), sizes, sizes if out_sizes is None else out_sizes)

    def rebuilt(self, modes: Sequence[int], batch_size: int | None = None) -> "SpectralConv":
        """A copy keeping more modes: the trained coefficients copied in, the new ones zero.

        The copy computes exactly the same function until its new modes are trained (the
        Spectral-Refiner's rebuilt last layer, Cao et al. 2025, whose new modes start near
        zero; here exactly zero). With ``batch_size`` every sample gets its own copy.
        Same device and dtype as this layer.
        """
        modes = tuple(int(m) for m in modes)
        if len(modes) != len(self.modes) or any(m < old for m, old in zip(modes, self.modes)):
            raise SciMLError(f"cannot rebuild a spectral layer with modes {list(self.modes)} as {list(modes)}: "
                             f"give {len(self.modes)} entries, each at least the trained one")
        if self.batch_size is not None:
            raise SciMLError("rebuild the model's own (shared) spectral layer, not a per-sample copy")
        new = SpectralConv(self.in_channels, self.out_channels, modes, bias=self.bias is not None,
                           batch_size=batch_size).to(device=self.weight.device, dtype=self.weight.dtype)
        positions = []
        for axis, (m, big) in enumerate(zip(self.modes, modes)):
            if axis < len(modes) - 1:
                positions.append(torch.cat([torch.arange(m), torch.arange(2 * big - m, 2 * big)]))
            else:
                positions.append(torch.arange(m))
        grids = torch.meshgrid(*[p.to(self.weight.device) for p in positions], indexing="ij")
        lead = () if batch_size is None else (slice(None),)
        with torch.no_grad():
            for old, param, n_channel_axes in ((self.weight, new.weight, 2), (self.bias, new.bias, 1)):
                if old is None:
                    continue
                param.zero_()
                target = torch.view_as_complex(param)
                target[lead + (slice(None),) * n_channel_axes + grids] = torch.view_as_complex(old)
        return new


class _Pointwise(nn.Linear):
    """A linear map of the channel axis (axis 1) at every grid point (a 1x1 convolution)."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return super().forward(v.movedim(1, -1)).movedim(-1, 1)


class _FourierLayer(nn.Module):
    """``v -> GELU(MLP(K v) + W v)``: spectral convolution, channel MLP, pointwise skip."""

    def __init__(self, width: int, modes: Sequence[int], expansion: int):
        super().__init__()
        self.spectral = SpectralConv(width, width, modes)
        self.mlp = nn.Sequential(_Pointwise(width, expansion * width), nn.GELU(), _Pointwise(expansion * width, width))
        self.skip = _Pointwise(width, width)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.mlp(self.spectral(v)) + self.skip(v))


class SFNO(GridModel, name="sfno"):
    """Spatio-temporal Fourier neural operator (Cao et al. 2025, "Spectral-Refiner").

    Input ``(B, in_channels, *space)`` is a trajectory of ``in_channels`` frames, output
    ``(B, out_channels, *space)`` the next ``out_channels`` frames. Internally the field
    lives on ``(B, width, *space, T)`` and every Fourier layer transforms space and time:

    1. Lifting: the frames, as one channel on a space-time grid, are concatenated with a
       positional encoding (the grid coordinates ``i / n`` on each spatial axis, the frame
       times ``t_k = (k + 1) / T_in``, and ``sin, cos(pi j t)`` for ``j = 1..time_frequencies``),
       layer-normalised, mapped pointwise to ``width`` channels, and passed through a
       spectral convolution that resamples ``T_in`` frames to ``latent_steps`` (the inverse
       FFT on a longer or shorter time grid).
    2. ``n_layers`` Fourier layers ``v -> GELU(MLP(K v) + W v)`` on ``latent_steps`` frames.
    3. Output: a pointwise map to one channel, zero-padding in time to twice the length
       (time is not periodic), the final spectral convolution (with spectral bias) that
       resamples to ``2 * out_channels`` frames, of which the last ``out_channels`` are
       kept and added to the last input frame.

    Time modes are capped per layer by the frequencies that layer sees
    (``min(modes_time, T // 2 + 1)`` for its input and output lengths ``T``), fixed by the
    configuration, never by the data. Spatial resolution is free (``n >= 2 * modes_space``).

    Departures from the paper's code (torch-cfd): the positional encoding is concatenated
    to the input frame rather than added to it, has no exponential time envelope, and is
    periodic-grid based (``i / n``); ``n_layers`` counts the Fourier layers after the
    lifting; the output layer does not prepend the last two input frames to the latent
    sequence (the residual connection still adds the last one); spectral weights are one
    block per layer instead of four corner blocks.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output frames.
    dim : int, default 2
        Spatial dimensions (1, 2 or 3).
    modes_space : int, default 12
        Kept frequencies of each sign per spatial axis.
    modes_time : int, default 5
        Kept non-negative time frequencies (capped per layer, see above).
    width : int, default 20
        Hidden channels.
    n_layers : int, default 4
        Fourier layers between lifting and output.
    latent_steps : int, optional
        Time frames in the hidden layers; default ``in_channels`` (the paper uses 10
        latent steps for 10 input frames).
    time_frequencies : int, default 4
        Sinusoidal time frequencies in the positional encoding (0 for none).
    channel_expansion : int, default 4
        Hidden size of each Fourier layer's channel MLP relative to ``width``.

    Attributes
    ----------
    final_spectral : SpectralConv
        The last spectral layer (1 -> 1 channel, with bias), the one the Spectral-Refiner
        rebuilds; see :meth:`final_layer_input` and :meth:`final_layer_output`.

    References
    ----------
    S. Cao, F. Brarda, R. Li, Y. Xi, "Spectral-Refiner: Accurate Fine-Tuning of
    Spatiotemporal Fourier Neural Operator for Turbulent Flows", ICLR 2025.
    Code: https://github.com/scaomath/torch-cfd (``sfno``).

    Examples
    --------
    >>> import torch
    >>> from sciml.models.sfno import SFNO
    >>> model = SFNO(in_channels=3, out_channels=5, modes_space=4, modes_time=2, width=8, n_layers=1)
    >>> tuple(model(torch.randn(1, 3, 32, 24)).shape)  # any grid with n >= 2 * modes_space
    (1, 5, 32, 24)
    >>> model(torch.randn(1, 2, 16, 16))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: the trajectory has 2 frames, fewer than the 3-frame input window of model 'sfno': pass the last 3 frames, shape (batch, 3, <2 grid sizes>), or build the model with in_channels = 2
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 2,
        modes_space: int = 12,
        modes_time: int = 5,
        width: int = 20,
        n_layers: int = 4,
        latent_steps: int | None = None,
        time_frequencies: int = 4,
        channel_expansion: int = 4,
    ):
        if isinstance(time_frequencies, bool) or not isinstance(time_frequencies, int) or time_frequencies < 0:
            raise SciMLError(f"model.time_frequencies must be a non-negative integer, got {time_frequencies!r}")
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=spatial_dim(dim, "the SFNO"),
                modes_space=positive_int("modes_space", modes_space),
                modes_time=positive_int("modes_time", modes_time),
                width=positive_int("width", width),
                n_layers=positive_int("n_layers", n_layers),
                latent_steps=positive_int("latent_steps", in_channels if latent_steps is None else latent_steps),
                time_frequencies=time_frequencies,
                channel_expansion=positive_int("channel_expansion", channel_expansion),
            )
        )
        cfg = self.config
        t_in, t_lat, t_out = cfg["in_channels"], cfg["latent_steps"], cfg["out_channels"]
        space = [cfg["modes_space"]] * cfg["dim"]

        def modes(*lengths: int) -> list[int]:
            return space + [min(cfg["modes_time"], *(n // 2 + 1 for n in lengths))]

        n_encoding = 1 + cfg["dim"] + 1 + 2 * time_frequencies
        self.lift_norm = nn.GroupNorm(1, n_encoding)
        self.lift = _Pointwise(n_encoding, cfg["width"])
        self.lift_spectral = SpectralConv(cfg["width"], cfg["width"], modes(t_in, t_lat))
        self.layers = nn.ModuleList(
            _FourierLayer(cfg["width"], modes(t_lat), cfg["channel_expansion"]) for _ in range(cfg["n_layers"])
        )
        self.reduce = _Pointwise(cfg["width"], 1)
        self.final_spectral = SpectralConv(1, 1, modes(2 * t_lat, 2 * t_out), bias=True)

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also require ``n >= 2 * modes_space`` on every spatial axis."""
        super().check_input(spatial_shape)
        m = self.config["modes_space"]
        for axis, n in enumerate(spatial_shape):
            if n < 2 * m:
                raise SciMLError(f"resolution {n} (axis {axis}) is too small for modes_space {m}: "
                                 f"use resolution >= {2 * m} or set model.modes_space <= {n // 2}")

    def check_batch(self, x: torch.Tensor) -> None:
        """Also name a trajectory shorter than the input window (``T < in_channels``)."""
        t_in = self.in_channels
        if x.ndim == self.dim + 2 and x.shape[1] < t_in:
            raise SciMLError(
                f"the trajectory has {x.shape[1]} frames, fewer than the {t_in}-frame input window of model 'sfno': "
                f"pass the last {t_in} frames, shape (batch, {t_in}, <{self.dim} grid sizes>), "
                f"or build the model with in_channels = {x.shape[1]}"
            )
        super().check_batch(x)

    def _encoding(self, space: Sequence[int], dtype, device) -> torch.Tensor:
        """Positional encoding ``(1 + dim + 2 J, *space, T_in)``: coordinates, time, sin/cos(pi j t)."""
        t_in = self.in_channels
        axes = [torch.arange(n, dtype=dtype, device=device) / n for n in space]
        axes.append(torch.arange(1, t_in + 1, dtype=dtype, device=device) / t_in)
        grids = list(torch.meshgrid(*axes, indexing="ij"))
        t = grids[-1]
        for j in range(1, self.config["time_frequencies"] + 1):
            grids += [torch.sin(math.pi * j * t), torch.cos(math.pi * j * t)]
        return torch.stack(grids)

    def final_spectral_layer(self) -> SpectralConv:
        """The last spectral layer (what :func:`sciml.models.spectral_refiner.refine` rebuilds)."""
        return self.final_spectral

    def final_layer_input(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Everything before the final spectral layer.

        Returns the tensor the layer receives, ``(B, 1, *space, 2 * latent_steps)``, and
        the grid it must produce, ``(*space, 2 * out_channels)``.
        """
        self.check_batch(x)
        space = tuple(x.shape[2:])
        v = x.unsqueeze(1).movedim(2, -1)  # (B, 1, *space, T_in)
        encoding = self._encoding(space, x.dtype, x.device).expand(x.shape[0], -1, *v.shape[2:])
        v = self.lift(self.lift_norm(torch.cat([v, encoding], dim=1)))
        v = self.lift_spectral(v, (*space, self.config["latent_steps"]))
        for layer in self.layers:
            v = layer(v)
        v = self.reduce(v)
        v = F.pad(v, (v.shape[-1], 0))  # zero frames before the latent sequence
        return v, (*space, 2 * self.out_channels)

    def final_layer_output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Everything after the final spectral layer: keep the last ``out_channels`` frames
        of its output ``y`` and add the last input frame of ``x``."""
        return x[:, -1:] + y[:, 0, ..., -self.out_channels:].movedim(-1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *space)`` frames to ``(B, out_channels, *space)`` frames."""
        v, out_sizes = self.final_layer_input(x)
        return self.final_layer_output(x, self.final_spectral(v, out_sizes))
