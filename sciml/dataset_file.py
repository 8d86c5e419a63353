"""The sciml dataset file: netCDF4-valid HDF5, written sample by sample.

Layout of a finished file (``xarray.open_dataset(path, engine="h5netcdf")`` shows it
with named dims; plain ``h5py`` reads the same file):

* dimensions ``sample`` then the spatial ones (``x``, ``y``[, ``z``]), each with a
  coordinate variable (``sample`` holds the sample's index in generation order);
* one variable per field, dims ``(sample, x, y[, z])``, chunked one sample per chunk so
  a loader reads a slice without touching the rest (for Darcy: ``a``, ``f``, ``u``);
* per-sample variables: ``seed`` and the solver record ``solver_iterations``,
  ``solver_matvecs``, ``solver_relative_residual``, ``solver_seconds``,
  ``solver_converged``; files written by :func:`sciml.generate.generate_dataset` also
  hold ``solve_chain`` (the chain that solved the sample), ``solve_position`` (its place
  in the sorted solve order) and ``sample_seconds`` (wall time of drawing, assembling,
  solving and collecting the sample, so ``solver_seconds / sample_seconds`` is the share
  spent in the solver);
* global attributes: ``sciml_format``, ``format_version``, ``pde``,
  ``pde_parameters`` (JSON), ``generator_version``, ``root_seed``, ``solver`` (JSON of
  its settings), ``inputs``, ``outputs`` (JSON lists), ``sciml_version``, ``created``,
  ``failed_samples`` (JSON list of samples whose solve did not converge); generated files
  add ``ordering`` (JSON: method, fields compared, cost in seconds, path lengths),
  ``solver_choice`` (JSON: the rule that chose the solver) and ``generation`` (JSON:
  chains, workers, backend of the last run).

The samples are stored in sample-index order (sample ``i`` drawn from seed
``sample_seed(root_seed, i)``) whatever order they were solved in.

Crash safety: while generating, each sample is staged as its own file in the folder
``FILE.parts/``, written to a temporary name and renamed into place, so a process killed
at any moment (SIGKILL included) leaves only whole samples; resuming skips the staged
indices, so no sample is lost except the one in flight and none is duplicated. A sample
whose solve failed is staged as a failure record, never as data. When all samples are
staged, :meth:`StagedWriter.finalize` assembles them into ``FILE`` (again through a
temporary name), so ``FILE`` exists only when complete.

Shards: a parallel generation cuts the sorted solve order into chains; each chain (one
process, one recycle space) stages its samples into the same ``FILE.parts/`` folder, so a
chain's shard is the set of part files it wrote (``solve_chain`` records which). The
folder's ``manifest.json`` (the run's metadata) and ``order.json`` (the solve order) make
the parts one dataset; :func:`load_part` reads a part (``numpy.load`` also does: keys
``field_<name>``, ``seed``, ``record`` as UTF-8 JSON bytes). The finished dataset is the
single assembled ``FILE``, which every reader (the loader, ``xarray.open_dataset``,
``xarray.open_mfdataset([FILE])``, ``h5py``) reads. Parts are ``.npz`` rather than
one-sample netCDF files because creating a netCDF file costs 40-80 ms, as much as a
2-D solve.

Examples
--------
>>> import numpy as np
>>> from sciml.dataset_file import write_dataset, read_header
>>> path = write_dataset(
...     "tiny.nc", {"a": np.ones((2, 4, 4)), "u": np.zeros((2, 4, 4))},
...     coords={"x": np.arange(4) / 4, "y": np.arange(4) / 4},
...     attrs={"pde": "demo", "inputs": ["a"], "outputs": ["u"]})   # doctest: +SKIP
>>> read_header(path).n_samples                                      # doctest: +SKIP
2
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sciml.atomic import atomic_write_bytes, atomic_write_json, temporary_beside
from sciml.errors import DataFileError

FORMAT_NAME = "sciml-dataset"
FORMAT_VERSION = "1.0"
SPATIAL_DIMS = ("x", "y", "z")
RECORD_VARIABLES = {
    "solver_iterations": ("iterations", np.int64),
    "solver_matvecs": ("matvecs", np.int64),
    "solver_relative_residual": ("relative_residual", np.float64),
    "solver_seconds": ("seconds", np.float64),
    "solver_converged": ("converged", np.int8),
}
GENERATION_VARIABLES = {
    "solve_chain": ("chain", np.int64),
    "solve_position": ("position", np.int64),
    "sample_seconds": ("sample_seconds", np.float64),
}
"""Per-sample variables a generation adds to the solver record (written when every record has them)."""
JSON_ATTRIBUTES = ("pde_parameters", "solver", "inputs", "outputs", "failed_samples", "ordering",
                   "solver_choice", "generation")
REQUIRED_ATTRIBUTES = (
    "sciml_format", "format_version", "pde", "pde_parameters", "generator_version",
    "root_seed", "solver", "inputs", "outputs",
)


# ----------------------------------------------------------------------------- helpers
def sample_seed(root_seed: int, index: int) -> int:
    """The seed of sample ``index``: independent of how many samples are generated.

    >>> sample_seed(0, 3) == sample_seed(0, 3) != sample_seed(1, 3)
    True
    """
    state = np.random.SeedSequence([int(root_seed), int(index)]).generate_state(1, np.uint64)
    return int(state[0]) & (2**63 - 1)


def _jsonable(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def _decode(value):
    """An HDF5 attribute as a Python scalar or string (netCDF stores scalars as 1-element arrays)."""
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(()).item()
    if isinstance(value, np.generic):
        value = value.item()
    return value.decode() if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------- header
@dataclass
class DatasetHeader:
    """What a dataset file says about itself (read without loading its data)."""

    path: str
    attrs: dict[str, Any]
    dims: tuple[str, ...]
    spatial_shape: tuple[int, ...]
    coords: dict[str, np.ndarray]
    variables: list[str]
    n_samples: int
    sample_index: np.ndarray = field(repr=False)

    @property
    def pde(self) -> str:
        return self.attrs["pde"]

    @property
    def inputs(self) -> list[str]:
        return list(self.attrs["inputs"])

    @property
    def outputs(self) -> list[str]:
        return list(self.attrs["outputs"])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Grid spacing per spatial dim (uniform grids; from the coordinates)."""
        out = []
        for d in self.dims:
            c = self.coords[d]
            out.append(float(c[1] - c[0]) if len(c) > 1 else 1.0)
        return tuple(out)


def _open_h5(path: str):
    import h5py

    if not os.path.exists(path):
        raise DataFileError(f"{path}: no such file; generate one with `sciml generate`")
    if os.path.isdir(path):
        raise DataFileError(f"{path} is a folder, not a dataset file")
    if not h5py.is_hdf5(path):
        raise DataFileError(
            f"{path} is not an HDF5/netCDF4 file (foreign or truncated); regenerate it with `sciml generate`"
        )
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataFileError(
            f"{path} cannot be opened ({first}): it is truncated or corrupt; regenerate it"
        ) from None


def read_header(path: str | os.PathLike) -> DatasetHeader:
    """Read and check the attributes, dimensions and coordinates of a dataset file.

    Raises :class:`~sciml.errors.DataFileError` naming the first problem for a missing,
    truncated or foreign file.
    """
    path = os.fspath(path)
    with _open_h5(path) as f:
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
        if attrs.get("sciml_format") != FORMAT_NAME:
            raise DataFileError(
                f"{path} is not a sciml dataset (no sciml_format={FORMAT_NAME!r} attribute); "
                "write datasets with `sciml generate`"
            )
        major = str(attrs.get("format_version", "")).split(".")[0]
        if major != FORMAT_VERSION.split(".")[0]:
            raise DataFileError(
                f"{path} has format_version {attrs.get('format_version')!r}, this sciml reads "
                f"{FORMAT_VERSION}: upgrade sciml or regenerate the file"
            )
        for key in REQUIRED_ATTRIBUTES:
            if key not in attrs:
                raise DataFileError(f"{path} lacks the attribute {key!r}; the file is incomplete, regenerate it")
        for key in JSON_ATTRIBUTES:
            if key in attrs:
                try:
                    attrs[key] = json.loads(attrs[key])
                except (TypeError, json.JSONDecodeError):
                    raise DataFileError(f"{path}: attribute {key!r} is not valid JSON; regenerate the file") from None
        if "sample" not in f:
            raise DataFileError(f"{path} has no 'sample' coordinate; regenerate the file")
        fields = [n for n in list(attrs["inputs"]) + list(attrs["outputs"])]
        for name in fields:
            if name not in f:
                raise DataFileError(f"{path} lacks the variable {name!r} its attributes name; regenerate it")
        ndim = f[fields[0]].ndim - 1
        dims = SPATIAL_DIMS[:ndim]
        coords = {}
        for d in dims:
            if d not in f:
                raise DataFileError(f"{path} has no coordinate variable {d!r}; regenerate the file")
            coords[d] = f[d][()]
        sample_index = f["sample"][()]
        variables = [k for k in f.keys() if k not in ("sample",) + dims]
        spatial_shape = tuple(len(coords[d]) for d in dims)
    return DatasetHeader(path, attrs, dims, spatial_shape, coords, variables, len(sample_index), sample_index)


# ----------------------------------------------------------------------------- writing
def _assemble(path: Path, items, n_samples: int, coords: dict, attrs: dict, dtype) -> None:
    """Write ``n_samples`` samples (an iterator of (index, seed, fields, record)) into a
    netCDF4 file at ``path`` through a temporary name."""
    import h5netcdf

    dims = tuple(coords)
    spatial = tuple(len(coords[d]) for d in dims)
    with temporary_beside(path) as tmp, h5netcdf.File(tmp, "w") as f:
        f.dimensions = {"sample": n_samples, **dict(zip(dims, spatial))}
        for d in dims:
            var = f.create_variable(d, (d,), np.float64)
            var[:] = coords[d]
            var.attrs["long_name"] = f"{d} coordinate (cell centre)"
        index_var = f.create_variable("sample", ("sample",), np.int64)
        seed_var = f.create_variable("seed", ("sample",), np.int64)
        seed_var.attrs["long_name"] = "seed of this sample's random inputs"
        record_vars = {name: (key, f.create_variable(name, ("sample",), kind))
                       for name, (key, kind) in RECORD_VARIABLES.items()}
        field_vars = {}
        for pos, (index, seed, fields, record) in enumerate(items):
            if not field_vars:
                for name, value in fields.items():
                    field_vars[name] = f.create_variable(
                        name, ("sample",) + dims, dtype, chunks=(1,) + spatial
                    )
                if all(key in record for key, _ in GENERATION_VARIABLES.values()):
                    record_vars.update({name: (key, f.create_variable(name, ("sample",), kind))
                                        for name, (key, kind) in GENERATION_VARIABLES.items()})
            for name, var in field_vars.items():
                var[pos] = np.asarray(fields[name], dtype=dtype)
            index_var[pos] = index
            seed_var[pos] = seed
            for key, var in record_vars.values():
                if key not in record:
                    raise DataFileError(f"sample {index} lacks the record entry {key!r} the others have; "
                                        "resume the generation with the same sciml version or start over")
                var[pos] = record[key]
        for key, value in attrs.items():
            f.attrs[key] = (
                json.dumps(value, default=_jsonable) if key in JSON_ATTRIBUTES else value
            )


def _base_attrs(attrs: dict) -> dict:
    from sciml import __version__

    out = {
        "sciml_format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sciml_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pde_parameters": {},
        "generator_version": "0",
        "root_seed": 0,
        "solver": {},
        "failed_samples": [],
    }
    out.update(attrs)
    return out


def write_dataset(path, fields: dict, coords: dict, attrs: dict, records=None, seeds=None, dtype=np.float32) -> str:
    """Write a whole in-memory dataset in one go (tests, conversions, small tools).

    ``fields`` maps names to arrays of shape ``(n_samples, *spatial)``; ``attrs`` must
    give at least ``pde``, ``inputs`` and ``outputs``.
    """
    n = len(next(iter(fields.values())))
    records = records or [
        {"iterations": 0, "matvecs": 0, "relative_residual": 0.0, "seconds": 0.0, "converged": 1}
    ] * n
    seeds = list(range(n)) if seeds is None else seeds
    items = ((i, seeds[i], {k: v[i] for k, v in fields.items()}, records[i]) for i in range(n))
    _assemble(Path(path), items, n, coords, _base_attrs(attrs), dtype)
    return os.fspath(path)


def load_part(path: str | os.PathLike) -> tuple[int, int, dict[str, np.ndarray], dict]:
    """Read one staged part ``FILE.parts/sample_<index>.npz``: ``(index, seed, fields, record)``.

    ``record`` is the solver record (:meth:`sciml.solvers.SolveResult.record`) plus, for
    generated samples, ``chain``, ``position`` and ``sample_seconds``.

    Examples
    --------
    >>> index, seed, fields, record = load_part("darcy.nc.parts/sample_000000003.npz")  # doctest: +SKIP
    >>> index, sorted(fields), record["converged"]                                     # doctest: +SKIP
    (3, ['a', 'f', 'u'], True)
    """
    path = Path(path)
    try:
        index = int(path.name[len("sample_"):-len(".npz")])
        with np.load(path) as z:
            fields = {k[6:]: z[k] for k in z.files if k.startswith("field_")}
            record = json.loads(z["record"].tobytes().decode())
            return index, int(z["seed"]), fields, record
    except (OSError, ValueError, KeyError) as exc:
        raise DataFileError(f"staged part {path} cannot be read ({type(exc).__name__}); delete it and rerun "
                            "with --resume to solve that sample again") from None


def open_staging(path: Path, metadata: dict, resume: bool, overwrite: bool, manifest_name: str) -> Path:
    """The staging folder ``path + ".parts"`` of a resumable write, created or checked for a resume.

    A new run creates it with ``metadata`` as its manifest; a resumed run must bring the
    same metadata; an interrupted run is never overwritten without ``resume``.
    """
    staging = Path(os.fspath(path) + ".parts")
    if not path.parent.exists():
        raise DataFileError(f"folder {path.parent} does not exist; create it or choose another --out")
    if path.exists() and not overwrite and not resume:
        raise DataFileError(f"{path} exists; pass --overwrite to replace it or choose another --out")
    if path.exists() and resume and not staging.exists():
        raise DataFileError(f"{path} is already complete; nothing to resume (pass --overwrite to regenerate)")
    manifest = staging / manifest_name
    if staging.exists():
        if not resume:
            raise DataFileError(f"{staging} holds an interrupted generation; rerun with --resume to continue it "
                                "or delete that folder to start over")
        if not manifest.exists():
            raise DataFileError(f"{staging} has no {manifest_name}; delete that folder and start over")
        staged = json.loads(manifest.read_text())
        for key in sorted(set(staged) | set(metadata)):
            if staged.get(key) != metadata.get(key):
                raise DataFileError(f"cannot resume: {key} was {staged.get(key)!r} in the interrupted run, now "
                                    f"{metadata.get(key)!r}; use the same settings or delete {staging}")
    else:
        staging.mkdir()
        atomic_write_json(manifest, metadata)
    return staging


class StagedWriter:
    """Write a dataset sample by sample, resumable after a crash.

    Parameters
    ----------
    path : str or os.PathLike
        The final file. Samples are staged in ``path + ".parts/"`` until :meth:`finalize`.
    metadata : dict
        Global attributes (``pde``, ``pde_parameters``, ``generator_version``,
        ``root_seed``, ``solver``, ``inputs``, ``outputs``) plus ``n_samples``,
        ``coords`` and ``dtype``; a resumed run must bring the same metadata.
    resume : bool
        Continue a staged generation instead of refusing to touch it.
    overwrite : bool
        Replace an existing finished file.

    Several processes may stage into one folder at once (each sample is its own file,
    renamed into place); they open it with :meth:`attach`, which needs the folder to be
    visible to them (a cluster needs a shared filesystem).

    Examples
    --------
    >>> w = StagedWriter("out.nc", metadata, resume=True)      # doctest: +SKIP
    >>> for i in w.pending(): w.write(i, problem.generate_sample(seed, solver))  # doctest: +SKIP
    >>> w.finalize()                                            # doctest: +SKIP
    """

    MANIFEST = "manifest.json"

    def __init__(self, path, metadata: dict, resume: bool = False, overwrite: bool = False):
        self.path = Path(path)
        self.metadata = json.loads(json.dumps(metadata, default=_jsonable))
        self.staging = open_staging(self.path, self.metadata, resume, overwrite, self.MANIFEST)

    @classmethod
    def attach(cls, path) -> "StagedWriter":
        """The writer of a generation already staging into ``path + ".parts/"`` (used by workers).

        Raises :class:`~sciml.errors.DataFileError` when the folder is not visible here,
        which on a cluster means the workers do not share the client's filesystem.
        """
        writer = cls.__new__(cls)
        writer.path = Path(path)
        writer.staging = Path(os.fspath(path) + ".parts")
        manifest = writer.staging / cls.MANIFEST
        if not manifest.exists():
            raise DataFileError(
                f"{manifest} is not visible on this worker: generation workers stage into the output's "
                "folder, so a cluster needs a filesystem shared with the client (or --out on one)"
            )
        writer.metadata = json.loads(manifest.read_text())
        return writer

    # names of staged files
    def _data_file(self, index: int) -> Path:
        return self.staging / f"sample_{index:09d}.npz"

    def _failure_file(self, index: int) -> Path:
        return self.staging / f"failed_{index:09d}.json"

    def staged(self) -> tuple[set[int], set[int]]:
        """Indices staged as good samples and as failures."""
        good, failed = set(), set()
        for entry in os.listdir(self.staging):
            if entry.endswith(".npz") and entry.startswith("sample_"):
                good.add(int(entry[7:-4]))
            elif entry.endswith(".json") and entry.startswith("failed_"):
                failed.add(int(entry[7:-5]))
        return good, failed

    def is_staged(self, index: int) -> bool:
        """Whether sample ``index`` is staged (as data or as a failure)."""
        return self._data_file(index).exists() or self._failure_file(index).exists()

    def pending(self) -> list[int]:
        """Sample indices not yet staged, in order."""
        good, failed = self.staged()
        return [i for i in range(self.metadata["n_samples"]) if i not in good and i not in failed]

    def parts(self) -> list[str]:
        """Paths of the staged good samples, by sample index (read them with :func:`load_part`)."""
        return [os.fspath(self._data_file(i)) for i in sorted(self.staged()[0])]

    def write(self, index: int, sample, extra: dict | None = None) -> None:
        """Stage one sample atomically: data if its solve converged, else a failure record.

        ``extra`` entries (e.g. ``chain``, ``position``, ``sample_seconds``) are stored
        with the solver record.
        """
        record = {**sample.record.record(), **(extra or {})}
        if record["converged"]:
            arrays = {f"field_{k}": np.asarray(v) for k, v in sample.fields.items()}
            arrays["seed"] = np.int64(sample.seed)
            arrays["record"] = np.frombuffer(json.dumps(record, default=_jsonable).encode(), dtype=np.uint8)
            atomic_write_bytes(self._data_file(index), lambda h: np.savez(h, **arrays))
        else:
            failure = {"sample": index, "seed": sample.seed, "message": sample.record.message, **record}
            atomic_write_json(self._failure_file(index), json.loads(json.dumps(failure, default=_jsonable)))

    def failures(self) -> list[dict]:
        """Failure records staged so far, by sample index."""
        _, failed = self.staged()
        return [json.loads(self._failure_file(i).read_text()) for i in sorted(failed)]

    STOP = "stop.json"

    def request_stop(self, reason: str = "another chain failed") -> None:
        """Ask every chain staging here to stop before its next sample."""
        self.stage_json(self.STOP, {"reason": reason})

    def stop_requested(self) -> bool:
        """Whether :meth:`request_stop` was called for this generation."""
        return (self.staging / self.STOP).exists()

    def clear_stop(self) -> None:
        """Withdraw a stop request (a resumed run starts without one)."""
        (self.staging / self.STOP).unlink(missing_ok=True)

    def stage_json(self, name: str, obj) -> None:
        """Keep ``obj`` as ``name`` in the staging folder (atomic), e.g. the solve order."""
        atomic_write_json(self.staging / name, json.loads(json.dumps(obj, default=_jsonable)))

    def staged_json(self, name: str):
        """What :meth:`stage_json` kept as ``name``, or None."""
        path = self.staging / name
        return json.loads(path.read_text()) if path.exists() else None

    def finalize(self, attrs: dict | None = None) -> str:
        """Assemble the staged samples into the final file and remove the staging folder.

        ``attrs`` are further global attributes (e.g. ``ordering``, ``generation``).
        """
        if self.pending():
            raise DataFileError(
                f"{len(self.pending())} samples are not staged yet; rerun with --resume to finish them"
            )
        parts = self.parts()
        if not parts:
            raise DataFileError(
                f"no sample of {self.path} converged ({len(self.failures())} failed); try another "
                f"solver or preconditioner, or raise solver.maxiter; failures are kept in {self.staging}"
            )
        meta = dict(self.metadata)
        coords = {k: np.asarray(v) for k, v in meta.pop("coords").items()}
        dtype = np.dtype(meta.pop("dtype"))
        meta.pop("n_samples")
        meta.update(attrs or {})
        meta["failed_samples"] = self.failures()
        _assemble(self.path, (load_part(p) for p in parts), len(parts), coords, _base_attrs(meta), dtype)
        shutil.rmtree(self.staging)
        return os.fspath(self.path)
