"""The validator: the executable authority on what a sciml dataset file must hold.

:func:`check_file` reads a file the way :mod:`sciml.dataset_file` writes it and raises
:class:`~sciml.errors.DataFileError` naming the first problem it finds; ``sciml check
FILE`` runs it from the command line.

Examples
--------
>>> from sciml.validate import check_file
>>> summary = check_file("darcy.nc")                 # doctest: +SKIP
>>> summary["n_samples"], summary["variables"]       # doctest: +SKIP
(100, ['a', 'f', 'u'])
"""

from __future__ import annotations

import os

import numpy as np

from sciml.dataset_file import RECORD_VARIABLES, read_header, _open_h5
from sciml.errors import DataFileError


def _dimension_names(dataset) -> list[str]:
    """Names of the dimension scales attached to each axis of an h5py dataset."""
    names = []
    for axis in dataset.dims:
        if len(axis) == 0:
            names.append(None)
        else:
            names.append(os.path.basename(axis[0].name))
    return names


def check_file(path: str | os.PathLike, check_data: bool = True) -> dict:
    """Validate a dataset file; return a summary or raise on the first problem.

    Parameters
    ----------
    path : str or os.PathLike
        The file to check.
    check_data : bool
        Also scan every sample of every field for NaN or Inf (one sample in memory at a
        time).

    Returns
    -------
    dict
        ``path``, ``pde``, ``n_samples``, ``dims``, ``spatial_shape``, ``variables``,
        ``inputs``, ``outputs`` and ``failed_samples`` (count).
    """
    path = os.fspath(path)
    header = read_header(path)
    n = header.n_samples
    fields = header.inputs + header.outputs
    with _open_h5(path) as f:
        index = header.sample_index
        if n == 0:
            raise DataFileError(f"{path} holds no samples; regenerate it")
        if np.any(np.diff(index) <= 0):
            raise DataFileError(f"{path}: the 'sample' coordinate is not strictly increasing (duplicated samples)")
        for d, coord in header.coords.items():
            if coord.ndim != 1 or not np.all(np.isfinite(coord)) or np.any(np.diff(coord) <= 0):
                raise DataFileError(f"{path}: coordinate {d!r} is not finite and increasing")
        expected_dims = ["sample", *header.dims]
        for name in fields:
            var = f[name]
            if var.shape != (n, *header.spatial_shape):
                raise DataFileError(
                    f"{path}: variable {name!r} has shape {var.shape}, expected {(n, *header.spatial_shape)}"
                )
            if _dimension_names(var) != expected_dims:
                raise DataFileError(
                    f"{path}: variable {name!r} has dimensions {_dimension_names(var)}, expected {expected_dims}"
                )
        for name in ("seed", *RECORD_VARIABLES):
            if name not in f:
                raise DataFileError(f"{path} lacks the per-sample variable {name!r}; regenerate the file")
            if f[name].shape != (n,):
                raise DataFileError(f"{path}: {name!r} has shape {f[name].shape}, expected ({n},)")
        seeds = f["seed"][()]
        if len(np.unique(seeds)) != n:
            raise DataFileError(f"{path}: two samples share a seed (a duplicated sample); regenerate the file")
        converged = f["solver_converged"][()]
        if not np.all(converged == 1):
            bad = int(index[np.flatnonzero(converged != 1)[0]])
            raise DataFileError(f"{path}: sample {bad} is stored but its solve did not converge")
        residual = f["solver_relative_residual"][()]
        if not np.all(np.isfinite(residual)):
            bad = int(index[np.flatnonzero(~np.isfinite(residual))[0]])
            raise DataFileError(f"{path}: sample {bad} has a non-finite solver residual")
        if check_data:
            for name in fields:
                var = f[name]
                for pos in range(n):
                    if not np.all(np.isfinite(var[pos])):
                        raise DataFileError(f"{path}: variable {name!r} of sample {int(index[pos])} has NaN or Inf")
    return {
        "path": path,
        "pde": header.pde,
        "n_samples": n,
        "dims": list(header.dims),
        "spatial_shape": list(header.spatial_shape),
        "variables": fields,
        "inputs": header.inputs,
        "outputs": header.outputs,
        "failed_samples": len(header.attrs.get("failed_samples", [])),
    }


def check_trajectory_file(path: str | os.PathLike) -> dict:
    """Validate a :mod:`sciml.trajectory_file`; return a summary or raise on the first problem.

    Checks the attributes, that the time coordinate increases, that seeds are unique,
    and that no value is NaN or Inf (one sample in memory at a time).
    """
    from sciml.trajectory_file import iter_trajectories, read_trajectories

    path = os.fspath(path)
    first = read_trajectories(path, samples=[])
    if np.any(np.diff(first.coords["time"]) <= 0):
        raise DataFileError(f"{path}: the time coordinate is not increasing")
    seeds = []
    for i, seed, fields in iter_trajectories(path):
        seeds.append(seed)
        for name, value in fields.items():
            if not np.all(np.isfinite(np.asarray(value))):
                raise DataFileError(f"{path}: {name!r} of sample {i} has NaN or Inf")
    n = len(seeds)
    if n == 0:
        raise DataFileError(f"{path} holds no samples; regenerate it")
    if len(set(seeds)) != n:
        raise DataFileError(f"{path}: two samples share a seed (a duplicated sample); regenerate the file")
    return {"path": path, "pde": first.attrs["pde"], "layout": first.layout, "n_samples": n,
            "frames": len(first.coords["time"]), "variables": list(first.attrs["fields"])}
