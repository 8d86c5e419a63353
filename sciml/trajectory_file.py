"""The sciml trajectory file: time-dependent data, on grids or as particles, in netCDF4-valid HDF5.

Two layouts share one format name (``sciml_format = "sciml-trajectories"``) and say which
they are in the ``layout`` attribute:

``grid``
    Fields on a fixed grid over time (Navier-Stokes vorticity, shallow-water height and
    velocity). Dimensions ``sample``, ``time``, then the spatial ones (``x``, ``y``[,
    ``z``]), each with a coordinate variable; one variable per field with dims
    ``(sample, time, x, y[, z])``, chunked one trajectory per chunk.
``particles``
    Particle trajectories with a different number of particles per sample (material
    point simulations). Stored as a CF *contiguous ragged array*: dimensions ``sample``,
    ``time``, ``particle`` (all samples' particles, one after the other) and
    ``spatial``; ``position (time, particle, spatial)``, ``particle_type (particle)``,
    and ``particle_count (sample)`` whose ``sample_dimension`` attribute names the
    ragged dimension, so sample ``i`` is the slice ``offset[i]:offset[i] + count[i]``.

Both hold ``seed (sample)`` and the global attributes ``sciml_format``,
``format_version``, ``layout``, ``pde``, ``pde_parameters`` (JSON), ``generator_version``,
``root_seed``, ``fields`` (JSON list), ``metadata`` (JSON: what a model needs beside the
arrays, e.g. GNS-style bounds and velocity statistics, or the viscosity and forcing),
``sciml_version`` and ``created``.

Generation is resumable: :class:`StagedTrajectoryWriter` stages each batch of samples as
its own ``.npz`` file in ``FILE.parts/``, written to a temporary name and renamed, so a
process killed at any moment loses at most the batch in flight; ``FILE`` appears only
when every batch is staged and assembled.

Examples
--------
>>> import numpy as np
>>> from sciml.trajectory_file import write_grid_trajectories, read_trajectories
>>> path = write_grid_trajectories(
...     "w.nc", {"w": np.zeros((2, 3, 4, 4))},
...     coords={"time": [0.0, 1.0, 2.0], "x": np.arange(4) / 4, "y": np.arange(4) / 4},
...     attrs={"pde": "navier-stokes"})                              # doctest: +SKIP
>>> read_trajectories(path).fields["w"].shape                       # doctest: +SKIP
(2, 3, 4, 4)
"""

from __future__ import annotations

import json
import os
import shutil
import time as _time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sciml.atomic import atomic_write_bytes, temporary_beside
from sciml.dataset_file import SPATIAL_DIMS, _decode, _jsonable, _open_h5, open_staging
from sciml.errors import DataFileError

FORMAT_NAME = "sciml-trajectories"
FORMAT_VERSION = "1.0"
LAYOUTS = ("grid", "particles")
JSON_ATTRIBUTES = ("pde_parameters", "fields", "metadata")


@dataclass
class Trajectories:
    """What a trajectory file holds, in memory.

    Attributes
    ----------
    layout : str
        ``"grid"`` or ``"particles"``.
    fields : dict
        Grid layout: name -> array ``(sample, time, *space)``. Particle layout:
        ``"position"`` -> list of ``(time, n_i, d)`` arrays and ``"particle_type"`` ->
        list of ``(n_i,)`` arrays.
    coords : dict
        ``time`` and, for grids, the spatial coordinates.
    seeds : numpy.ndarray
        The seed of each sample.
    attrs : dict
        Global attributes, JSON ones decoded.
    """

    layout: str
    fields: dict
    coords: dict
    seeds: np.ndarray
    attrs: dict

    @property
    def metadata(self) -> dict:
        return self.attrs.get("metadata", {})

    @property
    def n_samples(self) -> int:
        return len(self.seeds)


def _base_attrs(layout: str, fields, attrs: dict) -> dict:
    from sciml import __version__

    out = {"sciml_format": FORMAT_NAME, "format_version": FORMAT_VERSION, "layout": layout,
           "pde_parameters": {}, "generator_version": "0", "root_seed": 0, "metadata": {},
           "sciml_version": __version__, "created": _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime())}
    out.update(attrs)
    out["fields"] = list(fields)
    if "pde" not in out:
        raise DataFileError("trajectory attributes lack 'pde': name the equation that made the data")
    return out


def _write_attrs(f, attrs: dict) -> None:
    for key, value in attrs.items():
        f.attrs[key] = json.dumps(value, default=_jsonable) if key in JSON_ATTRIBUTES else value


def write_grid_trajectories(path, fields: dict, coords: dict, attrs: dict, seeds=None, dtype=np.float32) -> str:
    """Write grid trajectories ``name -> (sample, time, *space)`` into a new file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (replaced if it exists).
    fields : dict
        Arrays of equal shape ``(sample, time, *space)``.
    coords : dict
        ``{"time": t, "x": ..., "y": ...}`` in that order.
    attrs : dict
        At least ``pde``; optionally ``pde_parameters``, ``metadata``, ``root_seed``,
        ``generator_version`` (see the module docstring).
    seeds : sequence of int, optional
        Per-sample seeds (default ``0..n-1``).
    """
    n = len(next(iter(fields.values()))) if fields else 0
    seeds = np.arange(n) if seeds is None else np.asarray(seeds, dtype=np.int64)
    return _write_grid(path, list(fields), n, [(seeds, fields)], coords, attrs, dtype)


def _write_grid(path, names: list, n: int, batches, coords: dict, attrs: dict, dtype) -> str:
    """Write ``n`` grid trajectories from ``batches`` of ``(seeds, {name: (b, time, *space)})``,
    read one batch at a time, into a new file, atomically."""
    import h5netcdf

    if not names:
        raise DataFileError("no fields to write: pass at least one (sample, time, *space) array")
    dims = tuple(coords)
    if not dims or dims[0] != "time" or dims[1:] != SPATIAL_DIMS[: len(dims) - 1]:
        raise DataFileError(f"coords must be ordered ('time', 'x'[, 'y'[, 'z']]), got {list(dims)}")
    shape = tuple(len(coords[d]) for d in dims)
    with temporary_beside(Path(path)) as tmp, h5netcdf.File(tmp, "w") as f:
        f.dimensions = {"sample": n, **dict(zip(dims, shape))}
        for d in dims:
            f.create_variable(d, (d,), np.float64)[:] = np.asarray(coords[d], dtype=np.float64)
        f.create_variable("sample", ("sample",), np.int64)[:] = np.arange(n)
        seed_var = f.create_variable("seed", ("sample",), np.int64)
        variables = {name: f.create_variable(name, ("sample",) + dims, dtype, chunks=(1,) + shape) for name in names}
        start = 0
        for seeds, fields in batches:
            stop = start + len(seeds)
            for name, var in variables.items():
                value = fields[name]
                if tuple(np.shape(value)) != (len(seeds),) + shape:
                    raise DataFileError(f"field {name!r} has shape {tuple(np.shape(value))}, expected "
                                        f"({len(seeds)}, {', '.join(map(str, shape))}) from the coordinates; "
                                        "pass arrays shaped (sample, time, *space)")
                var[start:stop] = np.asarray(value, dtype=dtype)
            seed_var[start:stop] = seeds
            start = stop
        _write_attrs(f, _base_attrs("grid", names, attrs))
    return os.fspath(path)


def write_particle_trajectories(path, positions: list, particle_types: list, time, attrs: dict, seeds=None,
                                dtype=np.float32) -> str:
    """Write particle trajectories with ragged particle counts into a new file, atomically.

    Parameters
    ----------
    positions : list of array
        One ``(time, n_i, d)`` array per sample; ``n_i`` may differ, ``time`` and ``d`` may not.
    particle_types : list of array
        One ``(n_i,)`` integer array per sample.
    time : array
        The frame times, ``(time,)``.
    attrs : dict
        At least ``pde``; ``metadata`` holds e.g. GNS-style bounds and statistics.

    Examples
    --------
    >>> import numpy as np
    >>> write_particle_trajectories("p.nc", [np.zeros((3, 5, 2)), np.zeros((3, 7, 2))],
    ...     [np.zeros(5, int), np.ones(7, int)], time=[0, 1, 2], attrs={"pde": "mpm"})  # doctest: +SKIP
    'p.nc'
    """
    if len(positions) == 0 or len(positions) != len(particle_types):
        raise DataFileError(f"got {len(positions)} position arrays and {len(particle_types)} type arrays: "
                            "pass one of each per sample, at least one sample")
    shapes = [np.shape(p) for p in positions]
    for i, (s, types) in enumerate(zip(shapes, particle_types)):
        if len(s) != 3 or np.shape(types) != (s[1],):
            raise DataFileError(f"sample {i}: positions {s} and types {np.shape(types)} are not (time, n_i, d) "
                                "and (n_i,); pass one trajectory per sample")
    seeds = np.arange(len(positions)) if seeds is None else np.asarray(seeds, dtype=np.int64)
    counts = [s[1] for s in shapes]
    return _write_particles(path, time, counts, shapes[0][2], seeds, zip(positions, particle_types), attrs, dtype)


def _write_particles(path, time, counts, d: int, seeds, samples, attrs: dict, dtype) -> str:
    """Write particle trajectories with ``counts[i]`` particles in sample ``i`` from ``samples``,
    an iterable of ``(position (time, n_i, d), particle_type (n_i,))`` read one at a time."""
    import h5netcdf

    time = np.asarray(time, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.int64)
    n = len(counts)
    with temporary_beside(Path(path)) as tmp, h5netcdf.File(tmp, "w") as f:
        f.dimensions = {"sample": n, "time": len(time), "particle": int(counts.sum()), "spatial": d}
        f.create_variable("time", ("time",), np.float64)[:] = time
        f.create_variable("sample", ("sample",), np.int64)[:] = np.arange(n)
        f.create_variable("seed", ("sample",), np.int64)[:] = seeds
        count = f.create_variable("particle_count", ("sample",), np.int64)
        count[:] = counts
        count.attrs["sample_dimension"] = "particle"
        chunk = (len(time), int(min(max(counts.max(), 1), 4096)), d)
        pos = f.create_variable("position", ("time", "particle", "spatial"), dtype, chunks=chunk)
        kind = f.create_variable("particle_type", ("particle",), np.int64)
        offset = 0
        for i, (p, types) in enumerate(samples):
            m = int(counts[i])
            if np.shape(p) != (len(time), m, d) or np.shape(types) != (m,):
                raise DataFileError(f"sample {i}: positions {np.shape(p)} and types {np.shape(types)} do not match "
                                    f"(time={len(time)}, n_i={m}, d={d}) and (n_i,); pass one trajectory per sample")
            pos[:, offset:offset + m, :] = np.asarray(p, dtype=dtype)
            kind[offset:offset + m] = np.asarray(types, dtype=np.int64)
            offset += m
        _write_attrs(f, _base_attrs("particles", ["position", "particle_type"], attrs))
    return os.fspath(path)


def _read_attrs(f, path: str) -> dict:
    """The checked, decoded global attributes of an open trajectory file."""
    attrs = {k: _decode(v) for k, v in f.attrs.items()}
    if attrs.get("sciml_format") != FORMAT_NAME:
        raise DataFileError(f"{path} is not a sciml trajectory file (sciml_format is "
                            f"{attrs.get('sciml_format')!r}); write it with sciml.trajectory_file")
    if str(attrs.get("format_version", "")).split(".")[0] != FORMAT_VERSION.split(".")[0]:
        raise DataFileError(f"{path} has format_version {attrs.get('format_version')!r}, this sciml reads "
                            f"{FORMAT_VERSION}: upgrade sciml or regenerate the file")
    for key in JSON_ATTRIBUTES:
        attrs[key] = json.loads(attrs[key]) if key in attrs else {}
    if attrs.get("layout") not in LAYOUTS:
        raise DataFileError(f"{path} has layout {attrs.get('layout')!r}; expected one of {list(LAYOUTS)}")
    return attrs


def _sample_reader(f, attrs: dict):
    """A function ``i -> {name: value}`` reading sample ``i`` of an open trajectory file."""
    if attrs["layout"] == "grid":
        return lambda i: {name: f[name][i] for name in attrs["fields"]}
    offsets = np.concatenate([[0], np.cumsum(f["particle_count"][()])])
    return lambda i: {"position": f["position"][:, offsets[i]:offsets[i + 1], :],
                      "particle_type": f["particle_type"][offsets[i]:offsets[i + 1]]}


def read_trajectories(path, samples=None) -> Trajectories:
    """Read a trajectory file (all samples, or the indices in ``samples``).

    Raises :class:`~sciml.errors.DataFileError` naming the problem for a missing,
    truncated or foreign file.
    """
    path = os.fspath(path)
    with _open_h5(path) as f:
        attrs = _read_attrs(f, path)
        n = len(f["sample"])
        index = np.arange(n) if samples is None else np.asarray(samples, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= n):
            raise DataFileError(f"{path} holds {n} samples; asked for {index.tolist()}")
        seeds = f["seed"][()][index]
        read = _sample_reader(f, attrs)
        per_sample = [read(i) for i in index]
        if attrs["layout"] == "grid":
            dims = ("time",) + SPATIAL_DIMS[: f[attrs["fields"][0]].ndim - 2]
            coords = {d: f[d][()] for d in dims}
            fields = {name: np.stack([s[name] for s in per_sample]) if index.size else np.empty((0,))
                      for name in attrs["fields"]}
        else:
            coords = {"time": f["time"][()]}
            fields = {name: [s[name] for s in per_sample] for name in ("position", "particle_type")}
    return Trajectories(attrs["layout"], fields, coords, seeds, attrs)


def iter_trajectories(path):
    """Yield ``(index, seed, {name: value})`` for every sample of a trajectory file, one sample
    in memory at a time, from one open file.

    Examples
    --------
    >>> for i, seed, fields in iter_trajectories("ns.nc"):   # doctest: +SKIP
    ...     print(i, fields["w"].shape)
    """
    path = os.fspath(path)
    with _open_h5(path) as f:
        attrs = _read_attrs(f, path)
        seeds = f["seed"][()]
        read = _sample_reader(f, attrs)
        for i in range(len(seeds)):
            yield i, int(seeds[i]), read(i)


class StagedTrajectoryWriter:
    """Write a trajectory dataset batch by batch, resumable after a crash.

    Parameters
    ----------
    path : str or os.PathLike
        The final file; batches are staged in ``path + ".parts/"``.
    metadata : dict
        ``layout``, ``n_samples``, ``batch_size`` and the attributes of the final file
        (``pde``, ``pde_parameters``, ``root_seed``, ...); grid layouts add ``coords``,
        particle layouts ``time``. A resumed run must bring the same metadata.
    resume, overwrite : bool
        Continue an interrupted run; replace a finished file.

    Examples
    --------
    >>> w = StagedTrajectoryWriter("ns.nc", meta, resume=True)         # doctest: +SKIP
    >>> for b in w.pending(): w.write_batch(b, simulate(w.batch_samples(b)))  # doctest: +SKIP
    >>> w.finalize()                                                    # doctest: +SKIP
    """

    MANIFEST = "manifest.json"

    def __init__(self, path, metadata: dict, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.metadata = json.loads(json.dumps(metadata, default=_jsonable))
        for key in ("layout", "n_samples", "batch_size", "pde"):
            if key not in self.metadata:
                raise DataFileError(f"trajectory metadata lacks {key!r}")
        self.staging = open_staging(self.path, self.metadata, resume, overwrite, self.MANIFEST)

    @property
    def n_batches(self) -> int:
        return -(-self.metadata["n_samples"] // self.metadata["batch_size"])

    def batch_samples(self, batch: int) -> list[int]:
        """The sample indices of batch ``batch``."""
        size = self.metadata["batch_size"]
        return list(range(batch * size, min((batch + 1) * size, self.metadata["n_samples"])))

    def _file(self, batch: int) -> Path:
        return self.staging / f"batch_{batch:07d}.npz"

    def pending(self) -> list[int]:
        """Batches not yet staged, in order."""
        return [b for b in range(self.n_batches) if not self._file(b).exists()]

    def write_batch(self, batch: int, arrays: dict, seeds) -> None:
        """Stage one batch atomically.

        Grid layout: ``arrays`` maps field names to ``(b, time, *space)``. Particle
        layout: ``arrays`` holds lists ``position`` (``(time, n_i, d)`` each) and
        ``particle_type``.
        """
        expected = len(self.batch_samples(batch))
        out = {"seed": np.asarray(seeds, dtype=np.int64)}
        if self.metadata["layout"] == "grid":
            out.update({f"field_{k}": np.asarray(v) for k, v in arrays.items()})
        else:
            for i, (p, t) in enumerate(zip(arrays["position"], arrays["particle_type"])):
                out[f"position_{i}"] = np.asarray(p)
                out[f"type_{i}"] = np.asarray(t)
        if len(out["seed"]) != expected:
            raise DataFileError(f"batch {batch} holds {len(out['seed'])} samples, expected {expected}")
        atomic_write_bytes(self._file(batch), lambda h: np.savez(h, **out))

    def read_staged(self) -> Trajectories:
        """Every staged batch, in sample order, as one in-memory :class:`Trajectories`."""
        if self.pending():
            raise DataFileError(f"{len(self.pending())} batches are not staged yet; rerun with --resume to finish them")
        batches = [np.load(self._file(b)) for b in range(self.n_batches)]
        seeds = np.concatenate([b["seed"] for b in batches])
        layout = self.metadata["layout"]
        if layout == "grid":
            names = [k[6:] for k in batches[0].files if k.startswith("field_")]
            fields = {name: np.concatenate([b[f"field_{name}"] for b in batches]) for name in names}
            coords = self.metadata["coords"]
        else:
            per_sample = [(b[f"position_{i}"], b[f"type_{i}"]) for b in batches for i in range(len(b["seed"]))]
            fields = {"position": [p for p, _ in per_sample], "particle_type": [t for _, t in per_sample]}
            coords = {"time": self.metadata["time"]}
        return Trajectories(layout, fields, coords, seeds, dict(self.metadata))

    def finalize(self, metadata: dict | None = None) -> str:
        """Assemble the staged batches into the final file, one batch in memory at a time, and
        remove the staging folder.

        ``metadata`` (e.g. dataset statistics computed at the end) is merged into the
        file's ``metadata`` attribute.
        """
        if self.pending():
            raise DataFileError(f"{len(self.pending())} batches are not staged yet; rerun with --resume to finish them")
        attrs = {k: v for k, v in self.metadata.items()
                 if k not in ("layout", "n_samples", "batch_size", "coords", "time")}
        attrs["metadata"] = {**attrs.get("metadata", {}), **(metadata or {})}
        files = [self._file(b) for b in range(self.n_batches)]
        seeds = np.concatenate([np.load(p)["seed"] for p in files])
        if self.metadata["layout"] == "grid":
            names = [k[6:] for k in np.load(files[0]).files if k.startswith("field_")]
            batches = ((b["seed"], {name: b[f"field_{name}"] for name in names}) for b in map(np.load, files))
            _write_grid(self.path, names, len(seeds), batches, self.metadata["coords"], attrs, np.float32)
        else:
            per_batch = [len(np.load(p)["seed"]) for p in files]
            counts = [len(np.load(p)[f"type_{i}"]) for p, m in zip(files, per_batch) for i in range(m)]
            d = np.load(files[0])["position_0"].shape[2]
            samples = ((b[f"position_{i}"], b[f"type_{i}"]) for b in map(np.load, files)
                       for i in range(len(b["seed"])))
            _write_particles(self.path, self.metadata["time"], counts, d, seeds, samples, attrs, np.float32)
        shutil.rmtree(self.staging)
        return os.fspath(self.path)
