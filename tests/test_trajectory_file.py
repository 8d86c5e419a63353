"""The trajectory file: grid and ragged particle layouts, xarray view, staged resume."""

import numpy as np
import pytest

from sciml.errors import DataFileError
from sciml.trajectory_file import (StagedTrajectoryWriter, read_trajectories, write_grid_trajectories,
                                   write_particle_trajectories)


def grid_coords(t=3, n=4):
    return {"time": np.arange(t) * 0.5, "x": np.arange(n) / n, "y": np.arange(n) / n}


def test_grid_round_trip_and_xarray_dims(tmp_path, rng):
    w = rng.standard_normal((2, 3, 4, 4))
    path = write_grid_trajectories(tmp_path / "w.nc", {"w": w}, grid_coords(),
                                   {"pde": "navier-stokes", "metadata": {"nu": 1e-3}}, seeds=[7, 8], dtype=np.float64)
    data = read_trajectories(path)
    assert data.layout == "grid" and data.metadata == {"nu": 1e-3}
    np.testing.assert_array_equal(data.fields["w"], w)
    np.testing.assert_array_equal(data.seeds, [7, 8])
    import xarray as xr

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        assert ds["w"].dims == ("sample", "time", "x", "y")
        np.testing.assert_allclose(ds["time"].values, [0.0, 0.5, 1.0])
    assert read_trajectories(path, samples=[1]).fields["w"].shape == (1, 3, 4, 4)


def test_particles_ragged_round_trip(tmp_path, rng):
    positions = [rng.random((3, 5, 2)), rng.random((3, 9, 2))]
    types = [np.zeros(5, int), np.arange(9) % 3]
    path = write_particle_trajectories(tmp_path / "p.nc", positions, types, time=[0, 1, 2],
                                       attrs={"pde": "mpm", "metadata": {"bounds": [[0, 1], [0, 1]]}},
                                       dtype=np.float64)
    data = read_trajectories(path)
    assert data.layout == "particles" and data.metadata["bounds"] == [[0, 1], [0, 1]]
    for got, want in zip(data.fields["position"], positions):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(data.fields["particle_type"][1], types[1])
    second = read_trajectories(path, samples=[1])
    np.testing.assert_array_equal(second.fields["position"][0], positions[1])


def test_bad_shapes_are_refused(tmp_path):
    with pytest.raises(DataFileError, match="expected"):
        write_grid_trajectories(tmp_path / "w.nc", {"w": np.zeros((2, 3, 5, 4))}, grid_coords(), {"pde": "x"})
    with pytest.raises(DataFileError, match="sample 1"):
        write_particle_trajectories(tmp_path / "p.nc", [np.zeros((3, 5, 2)), np.zeros((2, 5, 2))],
                                    [np.zeros(5), np.zeros(5)], time=[0, 1, 2], attrs={"pde": "x"})


def test_staged_writer_resumes_after_interruption(tmp_path, rng):
    meta = {"layout": "grid", "n_samples": 5, "batch_size": 2, "pde": "navier-stokes",
            "coords": grid_coords(), "root_seed": 3}
    data = rng.standard_normal((5, 3, 4, 4)).astype(np.float32)
    out = tmp_path / "ns.nc"
    writer = StagedTrajectoryWriter(out, meta)
    writer.write_batch(0, {"w": data[:2]}, seeds=[0, 1])
    with pytest.raises(DataFileError, match="--resume"):
        StagedTrajectoryWriter(out, meta)
    with pytest.raises(DataFileError, match="root_seed"):
        StagedTrajectoryWriter(out, {**meta, "root_seed": 4}, resume=True)
    resumed = StagedTrajectoryWriter(out, meta, resume=True)
    assert resumed.pending() == [1, 2]
    with pytest.raises(DataFileError, match="not staged"):
        resumed.finalize()
    for b in resumed.pending():
        idx = resumed.batch_samples(b)
        resumed.write_batch(b, {"w": data[idx]}, seeds=idx)
    resumed.finalize({"frame_dt": 0.5})
    back = read_trajectories(out)
    np.testing.assert_array_equal(back.fields["w"], data)
    assert back.metadata == {"frame_dt": 0.5} and back.attrs["root_seed"] == 3
    assert not (tmp_path / "ns.nc.parts").exists()


def test_staged_particles(tmp_path, rng):
    meta = {"layout": "particles", "n_samples": 3, "batch_size": 2, "pde": "mpm", "time": [0.0, 1.0]}
    positions = [rng.random((2, n, 3)) for n in (4, 6, 5)]
    types = [np.full(len(p[0]), i) for i, p in enumerate(positions)]
    writer = StagedTrajectoryWriter(tmp_path / "p.nc", meta)
    for b in writer.pending():
        idx = writer.batch_samples(b)
        writer.write_batch(b, {"position": [positions[i] for i in idx], "particle_type": [types[i] for i in idx]},
                           seeds=idx)
    data = read_trajectories(writer.finalize())
    assert [p.shape[1] for p in data.fields["position"]] == [4, 6, 5]
    np.testing.assert_allclose(data.fields["position"][2], positions[2], rtol=1e-6)


def test_foreign_file_is_refused(tmp_path, darcy_file):
    with pytest.raises(DataFileError, match="not a sciml trajectory file"):
        read_trajectories(darcy_file)
