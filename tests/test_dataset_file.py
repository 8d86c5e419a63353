"""The dataset file format: writer, reader, validator and loader agree."""

import json

import h5py
import numpy as np
import pytest
import xarray as xr

from sciml.dataset_file import read_header, sample_seed, write_dataset
from sciml.errors import DataFileError
from sciml.loader import GridDataset, train_val_split
from sciml.validate import check_file


def test_xarray_sees_named_dims_and_coordinates(darcy_file):
    ds = xr.open_dataset(darcy_file, engine="h5netcdf")
    assert ds["u"].dims == ("sample", "x", "y")
    assert ds["a"].dims == ("sample", "x", "y")
    assert ds.sizes["sample"] == 12 and ds.sizes["x"] == 16
    np.testing.assert_allclose(ds["x"].values, (np.arange(16) + 0.5) / 16)
    assert ds.attrs["pde"] == "darcy"
    assert json.loads(ds.attrs["solver"])["method"] == "cg"
    assert set(json.loads(ds.attrs["pde_parameters"])) >= {"resolution", "coefficient"}
    assert ds["solver_converged"].values.all()
    assert (ds["solver_relative_residual"].values <= 1e-8).all()
    ds.close()


def test_plain_h5py_reads_the_same_file(darcy_file):
    with h5py.File(darcy_file, "r") as f:
        u = f["u"][3]
        seeds = f["seed"][()]
        assert f.attrs["sciml_format"] in ("sciml-dataset", b"sciml-dataset")
    assert u.shape == (16, 16) and np.isfinite(u).all()
    assert [sample_seed(1, i) for i in range(12)] == seeds.tolist()


def test_header_and_validator(darcy_file):
    header = read_header(darcy_file)
    assert header.inputs == ["a", "f"] and header.outputs == ["u"]
    assert header.spacing == pytest.approx((1 / 16, 1 / 16))
    summary = check_file(darcy_file)
    assert summary["n_samples"] == 12 and summary["failed_samples"] == 0


def test_loader_reads_slices_lazily_and_splits(darcy_file):
    ds = GridDataset(darcy_file)
    x, y = ds[5]
    assert x.shape == (2, 16, 16) and y.shape == (1, 16, 16) and x.dtype.is_floating_point
    with h5py.File(darcy_file, "r") as f:
        np.testing.assert_allclose(y[0].numpy(), f["u"][5])
    train, val = train_val_split(darcy_file, 0.25, seed=0)
    assert len(train) == 9 and len(val) == 3
    assert not set(train.indices) & set(val.indices)


def test_loader_works_in_dataloader_workers(darcy_file):
    import torch

    loader = torch.utils.data.DataLoader(GridDataset(darcy_file), batch_size=4, num_workers=2)
    batches = list(loader)
    assert sum(b[0].shape[0] for b in batches) == 12


def test_loader_rejects_unknown_variable(darcy_file):
    with pytest.raises(DataFileError, match="no input variable"):
        GridDataset(darcy_file, input_names=["nu"])


def test_validator_names_missing_truncated_and_foreign_files(tmp_path, darcy_file):
    with pytest.raises(DataFileError, match="no such file"):
        check_file(tmp_path / "absent.nc")
    text = tmp_path / "notes.nc"
    text.write_text("hello")
    with pytest.raises(DataFileError, match="not an HDF5"):
        check_file(text)
    truncated = tmp_path / "truncated.nc"
    truncated.write_bytes(darcy_file.read_bytes()[: 6000])
    with pytest.raises(DataFileError, match="truncated|corrupt"):
        check_file(truncated)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["u"] = np.zeros(3)
    with pytest.raises(DataFileError, match="not a sciml dataset"):
        check_file(foreign)


def test_validator_finds_nan_and_duplicates(tmp_path):
    fields = {"a": np.ones((3, 4, 4)), "u": np.zeros((3, 4, 4))}
    coords = {"x": np.arange(4) / 4, "y": np.arange(4) / 4}
    attrs = {"pde": "demo", "inputs": ["a"], "outputs": ["u"]}
    good = write_dataset(tmp_path / "good.nc", fields, coords, attrs)
    assert check_file(good)["n_samples"] == 3
    fields["u"][1, 2, 2] = np.nan
    bad = write_dataset(tmp_path / "nan.nc", fields, coords, attrs)
    with pytest.raises(DataFileError, match="'u' of sample 1 has NaN"):
        check_file(bad)
    fields["u"][1, 2, 2] = 0.0
    dup = write_dataset(tmp_path / "dup.nc", fields, coords, attrs, seeds=[4, 4, 5])
    with pytest.raises(DataFileError, match="share a seed"):
        check_file(dup)


def test_finished_files_get_ordinary_permissions(darcy_file):
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(darcy_file).st_mode & 0o777 == 0o666 & ~umask
