"""Feeding samples to models: a lazy, worker-safe torch Dataset over a sciml file.

Both datasets here follow one protocol that training and evaluation rely on:
``ds[i] -> (x, y)`` with ``x`` of shape ``(len(input_names), *spatial_shape)`` and
``y`` of shape ``(len(output_names), *spatial_shape)`` (float32), and the attributes
``input_names``, ``output_names``, ``dims``, ``spatial_shape`` and ``spacing``.

Examples
--------
>>> import numpy as np
>>> from sciml.loader import ArrayDataset
>>> ds = ArrayDataset({"a": np.ones((4, 8, 8)), "u": np.zeros((4, 8, 8))}, ["a"], ["u"])
>>> x, y = ds[0]
>>> tuple(x.shape), tuple(y.shape), ds.spacing
((1, 8, 8), (1, 8, 8), (0.125, 0.125))
"""

from __future__ import annotations

import copy
import os
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from sciml.errors import DataFileError

SPATIAL_DIMS = ("x", "y", "z")


def _check_names(available: Sequence[str], wanted: Sequence[str], what: str, source: str):
    missing = [n for n in wanted if n not in available]
    if missing:
        raise DataFileError(
            f"{source} has no {what} variable(s) {missing}; it holds {sorted(available)}: "
            f"choose {what}s among those (data.{what}s=...)"
        )


class ArrayDataset(Dataset):
    """In-memory samples with the same protocol as :class:`GridDataset`.

    Parameters
    ----------
    fields : dict of str to ndarray
        Each of shape ``(n_samples, *spatial_shape)``.
    input_names, output_names : sequence of str
        Which fields are stacked as input and output channels.
    spacing : tuple of float, optional
        Grid spacing per dimension; by default the unit cube's ``1 / n``.
    """

    def __init__(self, fields, input_names, output_names, spacing=None):
        _check_names(list(fields), list(input_names) + list(output_names), "field", "the arrays")
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self._x = torch.as_tensor(np.stack([fields[n] for n in self.input_names], 1), dtype=torch.float32)
        self._y = torch.as_tensor(np.stack([fields[n] for n in self.output_names], 1), dtype=torch.float32)
        self.spatial_shape = tuple(self._x.shape[2:])
        self.dims = SPATIAL_DIMS[: len(self.spatial_shape)]
        self.spacing = tuple(spacing) if spacing is not None else tuple(1.0 / n for n in self.spatial_shape)

    def __len__(self):
        return self._x.shape[0]

    def __getitem__(self, i):
        return self._x[i], self._y[i]


class GridDataset(Dataset):
    """Lazy reader of a sciml dataset file for training.

    The HDF5 file is opened on first access inside each process (so it is safe with
    ``DataLoader(num_workers > 0)`` and under ``torchrun``), and each item reads only its
    own slice.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :mod:`sciml.dataset_file`.
    input_names, output_names : sequence of str, optional
        Variables stacked as channels; default the file's ``inputs`` and ``outputs``.
    indices : sequence of int, optional
        Positions (along ``sample``) this dataset exposes, e.g. a train split.

    Examples
    --------
    >>> ds = GridDataset("darcy.nc")                     # doctest: +SKIP
    >>> x, y = ds[0]; ds.input_names, ds.output_names     # doctest: +SKIP
    (['a', 'f'], ['u'])
    """

    def __init__(self, path, input_names=None, output_names=None, indices=None):
        from sciml.dataset_file import read_header

        self.path = os.fspath(path)
        header = read_header(self.path)
        self.header = header
        self.input_names = list(input_names) if input_names is not None else list(header.inputs)
        self.output_names = list(output_names) if output_names is not None else list(header.outputs)
        _check_names(header.variables, self.input_names, "input", self.path)
        _check_names(header.variables, self.output_names, "output", self.path)
        self.dims = header.dims
        self.spatial_shape = header.spatial_shape
        self.spacing = header.spacing
        self.indices = np.arange(header.n_samples) if indices is None else np.asarray(indices, dtype=int)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= header.n_samples):
            raise DataFileError(f"{self.path} has {header.n_samples} samples; indices out of range")
        self._file = None
        self._pid = None

    def _handle(self):
        import h5py

        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        f = self._handle()
        j = int(self.indices[i])
        x = np.stack([f[n][j] for n in self.input_names])
        y = np.stack([f[n][j] for n in self.output_names])
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.float32))

    def __getstate__(self):  # the open handle never travels to a worker
        state = self.__dict__.copy()
        state["_file"] = None
        state["_pid"] = None
        return state

    def subset(self, indices) -> "GridDataset":
        """A dataset over ``self.indices[indices]`` (for train/validation splits), sharing
        this one's header rather than reading the file again."""
        part = copy.copy(self)
        part.__dict__.update(self.__getstate__())  # no shared open handle
        part.indices = self.indices[np.asarray(indices, dtype=int)]
        return part


def train_val_split(path, val_fraction: float, seed: int = 0, input_names=None, output_names=None):
    """Split a dataset file into a training and a validation :class:`GridDataset`.

    The split is a seeded permutation of the samples, so it is the same on every rank
    and every resume.

    >>> train_set, val_set = train_val_split("darcy.nc", 0.1)    # doctest: +SKIP
    """
    from sciml.errors import SciMLError

    full = GridDataset(path, input_names, output_names)
    n = len(full)
    if not 0.0 < float(val_fraction) < 1.0:
        raise SciMLError(f"data.val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    n_val = max(1, int(round(n * float(val_fraction))))
    if n - n_val < 1:
        raise SciMLError(f"{path} has {n} samples: too few to keep a validation split; generate more (--n)")
    order = np.random.default_rng(seed).permutation(n)
    return full.subset(np.sort(order[n_val:])), full.subset(np.sort(order[:n_val]))
