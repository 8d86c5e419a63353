"""Per-channel standardisation of input and output fields.

The statistics are one mean and one standard deviation per channel (over samples and
grid points), so a normaliser fitted at one resolution applies at any other. They are
fitted in one streaming pass, in float64, on the training split only.

Examples
--------
>>> import numpy as np
>>> from sciml.loader import ArrayDataset
>>> from sciml.normalization import fit_normalizers
>>> rng = np.random.default_rng(0)
>>> ds = ArrayDataset({"a": 3 + 2 * rng.standard_normal((64, 8, 8)), "f": np.ones((64, 8, 8)),
...                   "u": rng.standard_normal((64, 8, 8))}, ["a", "f"], ["u"])
>>> norms = fit_normalizers(ds)
>>> [round(v, 1) for v in norms.input.mean.tolist()], [round(v, 1) for v in norms.input.std.tolist()]
([3.0, 1.0], [2.0, 1.0])
"""

from __future__ import annotations

from typing import Iterable, NamedTuple

import torch
from torch.utils.data import DataLoader

from sciml.errors import SciMLError

_RELATIVE_TINY = 1e-6  # std below this fraction of |mean| is float32 round-off: a constant channel
_ABSOLUTE_TINY = 1e-30


class ChannelNormalizer:
    """``encode(x) = (x - mean) / std`` per channel; ``decode`` inverts it.

    A constant channel (such as a right-hand side ``f = 1``) has ``std`` replaced by 1,
    so encoding never divides by zero.

    Parameters
    ----------
    mean, std : sequence of float or Tensor of shape (C,)

    Examples
    --------
    >>> import torch
    >>> from sciml.normalization import ChannelNormalizer
    >>> norm = ChannelNormalizer.fit([torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])])
    >>> norm.mean.tolist(), norm.std.tolist()
    ([4.0], [2.23606797749979])
    >>> x = torch.rand(4, 1, 8, 8)
    >>> bool(torch.allclose(norm.decode(norm.encode(x)), x, atol=1e-6))
    True
    """

    def __init__(self, mean, std):
        self.mean = torch.as_tensor(mean, dtype=torch.float64).reshape(-1).clone()
        self.std = torch.as_tensor(std, dtype=torch.float64).reshape(-1).clone()
        if self.mean.shape != self.std.shape:
            raise SciMLError(f"normaliser has {self.mean.numel()} means but {self.std.numel()} standard deviations")
        if not bool(torch.all(self.std > 0)) or not bool(torch.all(torch.isfinite(self.mean))):
            raise SciMLError("normaliser statistics must be finite with positive standard deviations")
        self._cache: dict = {}

    @property
    def n_channels(self) -> int:
        return self.mean.numel()

    @classmethod
    def fit(cls, batches: Iterable[torch.Tensor]) -> "ChannelNormalizer":
        """Fit on batches ``(B, C, *spatial)`` in one streaming pass (see :class:`RunningStats`)."""
        stats = RunningStats()
        for batch in batches:
            stats.update(batch)
        return stats.normalizer()

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim < 2 or x.shape[1] != self.n_channels:
            raise SciMLError(
                f"normaliser was fitted on {self.n_channels} channels but got shape {tuple(x.shape)}: "
                "use data with the variables the model was trained on"
            )
        key = (x.device, x.dtype)
        if key not in self._cache:  # one host-to-device copy per device and dtype
            self._cache[key] = (self.mean.to(x), self.std.to(x))
        shape = (1, self.n_channels) + (1,) * (x.ndim - 2)
        mean, std = self._cache[key]
        return mean.reshape(shape), std.reshape(shape)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise a batch ``(B, C, *spatial)``."""
        mean, std = self._stats(x)
        return (x - mean) / std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map standardised values back to physical units."""
        mean, std = self._stats(z)
        return z * std + mean

    def state_dict(self) -> dict:
        """``{"mean": Tensor, "std": Tensor}`` (float64), safe for ``torch.load(weights_only=True)``."""
        return {"mean": self.mean.clone(), "std": self.std.clone()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "ChannelNormalizer":
        """Rebuild from :meth:`state_dict` output (tensors or lists)."""
        return cls(state["mean"], state["std"])


class RunningStats:
    """Per-channel count, mean and sum of squared deviations, accumulated batch by batch.

    Each batch's statistics (float64) are merged into the running ones with the pairwise
    update of Chan, Golub & LeVeque (1979), the batched form of Welford's algorithm, which
    avoids the cancellation of the sum/sum-of-squares formula.

    Examples
    --------
    >>> import torch
    >>> from sciml.normalization import RunningStats
    >>> stats = RunningStats()
    >>> for batch in torch.arange(12.0).reshape(3, 1, 2, 2):
    ...     stats.update(batch)
    >>> stats.normalizer().mean.tolist()
    [4.5, 6.5]
    """

    def __init__(self):
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def update(self, batch: torch.Tensor) -> None:
        """Add a batch ``(B, C, *spatial)``."""
        b = batch.detach().to(torch.float64).transpose(0, 1).reshape(batch.shape[1], -1)
        n_b = b.shape[1]
        if n_b == 0:
            return
        mean_b = b.mean(dim=1)
        m2_b = (b - mean_b[:, None]).square().sum(dim=1)
        if self.mean is None:
            self.count, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        if mean_b.shape != self.mean.shape:
            raise SciMLError(f"batches have {self.mean.numel()} and {mean_b.numel()} channels: fit on one kind of field")
        delta = mean_b - self.mean
        total = self.count + n_b
        self.mean = self.mean + delta * (n_b / total)
        self.m2 = self.m2 + m2_b + delta.square() * (self.count * n_b / total)
        self.count = total

    def normalizer(self) -> "ChannelNormalizer":
        """The fitted :class:`ChannelNormalizer` (population std; 1 for a constant channel)."""
        if self.mean is None:
            raise SciMLError("cannot fit a normaliser on no data: the training set is empty")
        if not bool(torch.all(torch.isfinite(self.m2))):
            raise SciMLError("the training data holds NaN or infinite values: check the dataset (sciml validate)")
        std = torch.sqrt(self.m2 / self.count)
        constant = (std <= _RELATIVE_TINY * self.mean.abs()) | (std < _ABSOLUTE_TINY)
        return ChannelNormalizer(self.mean, torch.where(constant, torch.ones_like(std), std))


class Normalizers(NamedTuple):
    """The input and output normalisers of a model.

    Examples
    --------
    >>> from sciml.normalization import ChannelNormalizer, Normalizers
    >>> norms = Normalizers(ChannelNormalizer([0.0], [2.0]), ChannelNormalizer([1.0], [1.0]))
    >>> Normalizers.from_state_dict(norms.state_dict()).input.std.tolist()
    [2.0]
    """

    input: ChannelNormalizer
    output: ChannelNormalizer

    def state_dict(self) -> dict:
        return {"input": self.input.state_dict(), "output": self.output.state_dict()}

    @classmethod
    def from_state_dict(cls, state: dict) -> "Normalizers":
        return cls(ChannelNormalizer.from_state_dict(state["input"]), ChannelNormalizer.from_state_dict(state["output"]))


def fit_normalizers(train_set, batch_size: int = 64) -> Normalizers:
    """Fit input and output normalisers on a dataset (``ds[i] -> (x, y)``) in one pass.

    Pass the training split only, so no validation or test statistics leak into the model.
    """
    if len(train_set) == 0:
        raise SciMLError("cannot fit normalisers: the training set is empty")
    x_stats, y_stats = RunningStats(), RunningStats()
    for x, y in DataLoader(train_set, batch_size=batch_size, shuffle=False):
        x_stats.update(x)
        y_stats.update(y)
    return Normalizers(x_stats.normalizer(), y_stats.normalizer())
