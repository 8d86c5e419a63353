"""DeepONet: branch and trunk networks combined by an inner product, and its POD variant.

Examples
--------
>>> import torch
>>> from sciml.models.deeponet import DeepONet
>>> model = DeepONet(in_channels=1, out_channels=2, dim=1, n_sensors=100, width=16, n_basis=8)
>>> tuple(model(torch.zeros(3, 1, 100)).shape)
(3, 2, 100)
>>> tuple(model.forward_points(torch.zeros(3, 1, 100), torch.rand(3, 7, 1)).shape)
(3, 2, 7)
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from sciml.errors import SciMLError
from sciml.models.base import GridModel, choice, positive_int, spatial_dim

_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}
_BRANCHES = ("mlp", "cnn")
_POOLED = 4
"""Cells per axis the CNN branch pools its feature maps to before its linear layers."""



def _glorot(module: nn.Module) -> nn.Module:
    """Glorot-normal weights and zero biases for every linear layer (DeepXDE's default)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return module


def _mlp(n_in: int, width: int, depth: int, n_out: int, activation: str, last_activation: bool) -> nn.Sequential:
    """``depth`` hidden layers of ``width`` units, then a linear layer to ``n_out``."""
    sizes = [n_in] + [width] * depth
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), _ACTIVATIONS[activation]()]
    layers.append(nn.Linear(sizes[-1], n_out))
    if last_activation:
        layers.append(_ACTIVATIONS[activation]())
    return _glorot(nn.Sequential(*layers))


def _cnn(dim: int, in_channels: int, width: int, depth: int, n_out: int, activation: str) -> nn.Sequential:
    """Convolution, ``depth`` stride-2 convolutions, average pooling to a fixed size, two linear layers."""
    conv = getattr(nn, f"Conv{dim}d")
    pool = getattr(nn, f"AdaptiveAvgPool{dim}d")
    layers: list[nn.Module] = [conv(in_channels, width, 3, padding=1), _ACTIVATIONS[activation]()]
    for _ in range(depth):
        layers += [conv(width, width, 3, stride=2, padding=1), _ACTIVATIONS[activation]()]
    layers += [pool(_POOLED), nn.Flatten(),
               nn.Linear(width * _POOLED ** dim, width), _ACTIVATIONS[activation](), nn.Linear(width, n_out)]
    return _glorot(nn.Sequential(*layers))


def cell_centres(spatial_shape: Sequence[int], dtype=None, device=None) -> torch.Tensor:
    """Cell-centre coordinates ``(i + 0.5) / n`` of a grid on ``[0, 1]^dim``, shape ``(n_points, dim)``.

    Points are in row-major (C) order of the grid, the order of ``x.reshape(..., -1)``.

    Examples
    --------
    >>> from sciml.models.deeponet import cell_centres
    >>> cell_centres((2, 2)).tolist()
    [[0.25, 0.25], [0.25, 0.75], [0.75, 0.25], [0.75, 0.75]]
    """
    axes = [(torch.arange(n, dtype=dtype, device=device) + 0.5) / n for n in spatial_shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(axes))


class DeepONet(GridModel, name="deeponet"):
    """Deep operator network (Lu et al. 2021), with an optional POD trunk (Lu et al. 2022).

    DeepONet approximates an operator ``G`` by

        G(u)(y) = sum_{k=1..p} b_k(u(x_1), ..., u(x_m)) t_k(y) + b_0,

    where the *branch* net ``b`` reads the input function at ``m`` sensors and the
    *trunk* net ``t`` reads a query point ``y`` in ``[0, 1]^dim`` (Lu et al. 2021).
    Multiple output channels use DeepXDE's "split branch" strategy: the branch has
    ``p * out_channels`` outputs, ``p`` coefficients per channel, and the trunk's ``p``
    basis functions are shared by all channels; ``b_0`` is one scalar per channel.

    The branch is either an MLP on the flattened sensor values (the paper's unstacked
    DeepONet: one branch net with ``p`` outputs; the sensors are the grid points, so the
    grid is fixed) or a CNN for grid inputs: a convolution, ``depth`` stride-2
    convolutions, adaptive average pooling to 4 cells per axis and two linear layers,
    which takes any grid of at least ``2**depth`` cells per axis. The
    trunk is an MLP with an activation after its last layer too, as in the paper and
    DeepXDE. Linear layers start Glorot-normal with zero biases (DeepXDE's
    "Glorot normal"); convolutions keep PyTorch's default initialisation.

    :meth:`forward` is the Cartesian-product form (DeepXDE's ``DeepONetCartesianProd``):
    every sample is evaluated at the cell centres ``(i + 0.5) / n`` of its own grid,
    computed as one einsum of branch ``(B, p, C)`` and trunk ``(n_points, p)`` outputs.
    :meth:`forward_points` evaluates each sample at its own query points.

    With ``pod=True`` (POD-DeepONet, Lu et al. 2022) the trunk is replaced by
    fixed modes of the training outputs, computed by :meth:`fit_pod`:

        G(u)(y) = phi_0(y) + sum_{k=1..p} b_k(u) phi_k(y),

    with ``phi_0`` the mean output and ``phi_k`` its ``p`` leading POD modes, per output
    channel. The modes live on the grid they were fitted on, so such a model neither
    changes resolution nor evaluates at other points.

    Departures: the bias ``b_0`` is a trainable scalar per output channel (the paper has
    one output); no feature expansion of the trunk input (one of the practical extensions
    of Lu et al. 2022, e.g. Fourier features for periodic problems); the POD modes are per channel and
    scaled to unit root-mean-square over the grid (orthonormal for the mean over points)
    so that the branch's coefficients have the scale of the data.

    Parameters
    ----------
    in_channels, out_channels : int
        Input and output fields.
    dim : {1, 2, 3}, default 1
        Spatial dimensions.
    branch : {"mlp", "cnn"}, default "mlp"
        Branch network.
    n_sensors : int, optional
        Number of grid points the MLP branch reads (in row-major grid order, so it
        cannot tell a 16x16 from an 8x32 grid); required for ``branch="mlp"``, must be
        ``None`` for ``branch="cnn"``.
    width : int, default 40
        Hidden units (channels in the CNN) of branch and trunk.
    depth : int, default 2
        Hidden layers of the MLP branch and of the trunk; stride-2 convolutions of the
        CNN branch. DeepXDE's antiderivative example uses 1.
    n_basis : int, default 40
        ``p``: basis functions (or POD modes) per output channel.
    activation : {"relu", "tanh", "gelu"}, default "relu"
    pod : bool, default False
        Use POD modes of the training outputs instead of a trunk net; call
        :meth:`fit_pod` before training.

    Attributes
    ----------
    supports_resolution_change : bool
        True only for the CNN branch without POD.

    References
    ----------
    L. Lu, P. Jin, G. Pang, Z. Zhang, G. E. Karniadakis, "Learning nonlinear operators
    via DeepONet based on the universal approximation theorem of operators", Nature
    Machine Intelligence 3, 218-229 (2021).
    L. Lu, X. Meng, S. Cai, Z. Mao, S. Goswami, Z. Zhang, G. E. Karniadakis, "A
    comprehensive and fair comparison of two neural operators (with practical
    extensions) based on FAIR data", Comput. Methods Appl. Mech. Eng. 393, 114778 (2022).

    Examples
    --------
    >>> import torch
    >>> from sciml.models.deeponet import DeepONet
    >>> model = DeepONet(in_channels=2, out_channels=3, dim=2, branch="cnn", width=8, n_basis=4)
    >>> tuple(model(torch.zeros(1, 2, 16, 12)).shape), model.supports_resolution_change
    ((1, 3, 16, 12), True)
    """

    supports_resolution_change = False  # the default MLP branch reads a fixed sensor grid

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dim: int = 1,
        branch: str = "mlp",
        n_sensors: int | None = None,
        width: int = 40,
        depth: int = 2,
        n_basis: int = 40,
        activation: str = "relu",
        pod: bool = False,
    ):
        spatial_dim(dim, "DeepONet")
        choice("branch", branch, _BRANCHES)
        choice("activation", activation, _ACTIVATIONS)
        if not isinstance(pod, bool):
            raise SciMLError(f"model.pod must be true or false, got {pod!r}")
        if branch == "mlp" and n_sensors is None:
            raise SciMLError("model.branch = 'mlp' reads a fixed set of sensors: set model.n_sensors to the number "
                             "of grid points (e.g. 100) or use branch = 'cnn'")
        if branch == "cnn" and n_sensors is not None:
            raise SciMLError(f"model.n_sensors = {n_sensors!r} is only for branch = 'mlp': remove it for branch = 'cnn'")
        super().__init__(
            dict(
                in_channels=in_channels,
                out_channels=out_channels,
                dim=dim,
                branch=branch,
                n_sensors=None if n_sensors is None else positive_int("n_sensors", n_sensors),
                width=positive_int("width", width),
                depth=positive_int("depth", depth),
                n_basis=positive_int("n_basis", n_basis),
                activation=activation,
                pod=pod,
            )
        )
        self.supports_resolution_change = branch == "cnn" and not pod
        n_out = n_basis * out_channels
        if branch == "mlp":
            self.branch = _mlp(in_channels * n_sensors, width, depth, n_out, activation, last_activation=False)
        else:
            self.branch = _cnn(dim, in_channels, width, depth, n_out, activation)
        if pod:
            self.trunk = None
            self.bias = None
            # filled by fit_pod; their shapes follow the grid, see _load_from_state_dict
            self.register_buffer("pod_mean", torch.empty(0))  # (out_channels, n_points)
            self.register_buffer("pod_modes", torch.empty(0))  # (n_points, n_basis, out_channels)
            self.register_buffer("pod_grid", torch.empty(0, dtype=torch.long))  # (dim,)
        else:
            self.trunk = _mlp(dim, width, depth, n_basis, activation, last_activation=True)
            self.bias = nn.Parameter(torch.zeros(out_channels))

    @property
    def n_basis(self) -> int:
        """``p``, the number of basis functions per output channel."""
        return self.config["n_basis"]

    def _check_grid(self, spatial_shape: Sequence[int]) -> None:
        """The checks of :meth:`check_input` that do not involve the POD modes."""
        super().check_input(spatial_shape)
        shape = [int(n) for n in spatial_shape]
        if self.config["branch"] == "mlp":
            n_points, expected = math.prod(shape), self.config["n_sensors"]
            if n_points != expected:
                raise SciMLError(
                    f"model.n_sensors={expected} but the data has {n_points} points (grid {shape}): the MLP branch "
                    f"reads a fixed sensor grid; set model.n_sensors = {n_points} or use branch = 'cnn'"
                )
            return
        smallest = 2 ** self.config["depth"]
        for axis, n in enumerate(shape):
            if n < smallest:
                raise SciMLError(
                    f"resolution {n} (axis {axis}) is too small for the CNN branch's {self.config['depth']} stride-2 "
                    f"convolutions: use resolution >= {smallest} or lower model.depth"
                )

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Also check the grid against the branch and, with ``pod=True``, the fitted modes.

        The MLP branch needs exactly ``n_sensors`` grid points; the CNN branch needs
        ``2**depth`` cells per axis; a POD model needs :meth:`fit_pod` to have been
        called on this very grid.
        """
        self._check_grid(spatial_shape)
        if not self.config["pod"]:
            return
        if self.pod_grid.numel() == 0:
            raise SciMLError("model.pod = true but no POD modes are stored: call model.fit_pod(training outputs) "
                             "before training or evaluating")
        fitted, shape = self.pod_grid.tolist(), [int(n) for n in spatial_shape]
        if shape != fitted:
            raise SciMLError(
                f"the POD modes were fitted on grid {fitted} but the data's grid is {shape}: a POD-DeepONet cannot "
                f"change resolution; resample the data to {fitted} or use pod = false"
            )

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The branch net's coefficients ``b_k(u)``, shape ``(B, n_basis, out_channels)``.

        The branch's ``n_basis * out_channels`` outputs are read in that (row-major) order.
        """
        self.check_batch(x)
        features = x.flatten(1) if self.config["branch"] == "mlp" else x
        return self.branch(features).view(x.shape[0], self.n_basis, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map ``(B, in_channels, *grid)`` to ``(B, out_channels, *grid)`` at the grid's cell centres."""
        coeffs = self.coefficients(x)
        grid = x.shape[2:]
        if self.config["pod"]:
            out = torch.einsum("bkc,nkc->bcn", coeffs, self.pod_modes) + self.pod_mean
        else:
            basis = self.trunk(cell_centres(grid, dtype=x.dtype, device=x.device))
            out = torch.einsum("bkc,nk->bcn", coeffs, basis) + self.bias[:, None]
        return out.reshape(x.shape[0], self.out_channels, *grid)

    def forward_points(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluate every sample at its own query points.

        Parameters
        ----------
        x : Tensor, shape (B, in_channels, *grid)
            Input functions on the grid.
        y : Tensor, shape (B, n_points, dim)
            Query coordinates in ``[0, 1]^dim`` (the grid's cell centres are
            ``(i + 0.5) / n``), one set per sample.

        Returns
        -------
        Tensor, shape (B, out_channels, n_points)
        """
        if self.config["pod"]:
            raise SciMLError("a POD-DeepONet only evaluates on the grid its modes were fitted on: "
                             "use model(x), or pod = false for point queries")
        if y.ndim != 3 or y.shape[0] != x.shape[0] or y.shape[2] != self.dim:
            raise SciMLError(f"query points must have shape (batch={x.shape[0]}, n_points, dim={self.dim}), "
                             f"got {tuple(y.shape)}")
        coeffs = self.coefficients(x)
        return torch.einsum("bkc,bnk->bcn", coeffs, self.trunk(y)) + self.bias[:, None]

    @property
    def fits_training_outputs(self) -> bool:
        """A POD-DeepONet takes its modes from the training outputs."""
        return bool(self.config["pod"])

    def fit_training_outputs(self, outputs: torch.Tensor) -> None:
        """Fit the POD modes (``n_basis`` of them) when ``pod=True``; the training loop calls this."""
        if self.fits_training_outputs:
            self.fit_pod(outputs, self.config["n_basis"])

    @torch.no_grad()
    def fit_pod(self, outputs: torch.Tensor, n_modes: int | None = None) -> torch.Tensor:
        """Store the mean and leading POD modes of training outputs (``pod=True`` only).

        Per output channel, the centred outputs ``(N, n_points)`` are decomposed by SVD
        in float64; the mean and the ``n_modes`` leading right singular vectors, scaled
        by ``sqrt(n_points)``, become the buffers ``pod_mean`` ``(C, n_points)`` and
        ``pod_modes`` ``(n_points, n_modes, C)``, and the grid is stored in ``pod_grid``.
        Give the outputs the way the model will be trained on them (after any
        normalisation).

        Parameters
        ----------
        outputs : Tensor, shape (N, out_channels, *grid)
        n_modes : int, optional
            Must equal ``model.n_basis`` (the default), the branch's coefficients per channel.

        Returns
        -------
        Tensor, shape (out_channels,)
            Fraction of each channel's variance the modes capture.

        Examples
        --------
        >>> import torch
        >>> from sciml.models.deeponet import DeepONet
        >>> model = DeepONet(in_channels=1, out_channels=1, dim=1, n_sensors=32, n_basis=3, pod=True)
        >>> x = torch.linspace(0, 1, 32)
        >>> data = torch.stack([a * torch.sin(torch.pi * x) for a in torch.randn(10)])[:, None]
        >>> float(model.fit_pod(data)[0]) > 0.999
        True
        """
        if not self.config["pod"]:
            raise SciMLError("fit_pod needs a model built with pod = true")
        n_modes = self.n_basis if n_modes is None else n_modes
        if n_modes != self.n_basis:
            raise SciMLError(f"fit_pod(n_modes={n_modes}) but model.n_basis = {self.n_basis}: the branch outputs "
                             f"n_basis coefficients per channel; build the model with n_basis = {n_modes}")
        if outputs.ndim != self.dim + 2 or outputs.shape[1] != self.out_channels:
            raise SciMLError(f"fit_pod expects outputs of shape (N, {self.out_channels}, <{self.dim} grid sizes>), "
                             f"got {tuple(outputs.shape)}")
        grid = [int(n) for n in outputs.shape[2:]]
        self._check_grid(grid)
        n_samples, n_points = outputs.shape[0], math.prod(grid)
        if min(n_samples, n_points) < n_modes:
            raise SciMLError(f"fit_pod needs at least n_basis = {n_modes} samples and grid points, got "
                             f"{n_samples} samples on {n_points} points: give more samples or lower model.n_basis")
        data = outputs.detach().to(torch.float64).reshape(n_samples, self.out_channels, n_points)
        mean = data.mean(dim=0)
        _, singular, vh = torch.linalg.svd((data - mean).transpose(0, 1), full_matrices=False)
        modes = vh[:, :n_modes, :] * math.sqrt(n_points)
        energy = singular.square()
        total = energy.sum(dim=-1)
        # a constant channel has no variance to capture: report 1 instead of 0 / 0
        captured = torch.where(total > 0, energy[:, :n_modes].sum(dim=-1) / total.clamp_min(1e-300), 1.0)
        ref = next(self.branch.parameters())
        self.pod_mean = mean.to(dtype=ref.dtype, device=ref.device)
        self.pod_modes = modes.permute(2, 1, 0).contiguous().to(dtype=ref.dtype, device=ref.device)
        self.pod_grid = torch.tensor(grid, dtype=torch.long, device=ref.device)
        return captured

    def pod_coefficients(self, outputs: torch.Tensor) -> torch.Tensor:
        """Projections of outputs on the stored POD modes, shape ``(N, n_basis, out_channels)``.

        These are the coefficients the branch should predict: ``pod_mean`` plus the modes
        weighted by them is the best approximation of ``outputs`` in the modes' span.
        """
        self.check_input(outputs.shape[2:])
        flat = outputs.reshape(outputs.shape[0], self.out_channels, -1) - self.pod_mean
        return torch.einsum("bcn,nkc->bkc", flat, self.pod_modes) / flat.shape[-1]

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        # the POD buffers take the shape of the grid they were fitted on: resize before copying
        for name in ("pod_mean", "pod_modes", "pod_grid"):
            saved = state_dict.get(prefix + name)
            if name in self._buffers and isinstance(saved, torch.Tensor):
                current = self._buffers[name]
                self._buffers[name] = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
