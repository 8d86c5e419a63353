"""Every registered time-dependent generator works through the driver and the command line."""

import json

import numpy as np
import pytest
import torch

from sciml.cli import main
from sciml.datasets import TRAJECTORY_GENERATORS, get_trajectory_generator   # importing registers the generators
from sciml.datasets.navier_stokes import (
    NavierStokes,
    fno_forced_flow,
    generate_trajectories,
    residual_settings,
    vorticity_residual,
)
from sciml.errors import SciMLError
from sciml.simulate import simulate_dataset
from sciml.trajectory_file import read_trajectories

TINY = {  # settings (the pde.* of sciml generate) that make each generator fast
    "navier-stokes": {"resolution": 16, "store_resolution": 8, "final_time": 0.2, "frame_dt": 0.1, "dt": 0.025},
    "shallow-water": {"resolution": 16, "n_frames": 3, "frame_interval": 0.02},
    "diffusion-sorption": {"n_cells": 32, "n_frames": 3},
    "mpm": {"resolution": 16, "n_frames": 3, "materials": ["elastic"], "n_boxes": [1, 1], "max_speed": 0.0},
}
NAMES = sorted(set(TINY) | set(TRAJECTORY_GENERATORS.names()))


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small FFTs run fastest on one thread."""


def settings_of(name: str) -> dict:
    if name not in TINY:
        pytest.fail(f"generator {name!r} is registered but has no tiny settings in TINY: add them")
    return TINY[name]


def overrides_of(name: str) -> list[str]:
    """The tiny settings as ``pde.key=value`` words (values as JSON, as the command line reads them)."""
    return [f"pde.{key}={value if isinstance(value, str) else json.dumps(value)}"
            for key, value in settings_of(name).items()]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got: {err!r}"
    return lines[0]


def test_the_generators_are_registered():
    assert {"navier-stokes", "shallow-water", "diffusion-sorption", "mpm"} <= set(TRAJECTORY_GENERATORS.names())


@pytest.mark.parametrize("name", NAMES)
def test_driver_writes_a_file_that_checks_and_rebuilds_its_generator(name, tmp_path, capsys):
    cls = get_trajectory_generator(name)
    generator = cls(**settings_of(name))
    path = simulate_dataset(generator, 3, tmp_path / f"{name}.nc", seed=2, batch_size=2, device="cpu")
    code, out, _ = run(capsys, "check", path)
    assert code == 0 and out.startswith("OK ")
    data = read_trajectories(path)
    coords = generator.coords()
    assert data.attrs["pde"] == name and data.layout == generator.layout
    assert list(data.coords) == list(coords)
    for axis, values in coords.items():
        assert np.array_equal(data.coords[axis], values)
    if data.layout == "grid":
        shape = (3,) + tuple(len(v) for v in coords.values())
        assert all(np.shape(value) == shape for value in data.fields.values())
    else:
        assert set(data.fields) == {"position", "particle_type"} and len(data.fields["position"]) == 3
        for position, kind in zip(data.fields["position"], data.fields["particle_type"]):
            assert position.ndim == 3 and position.shape[0] == len(coords["time"]) and kind.shape == position.shape[1:2]
    assert cls(**data.attrs["pde_parameters"]).parameters() == generator.parameters()   # settings round trip
    assert data.metadata == {**generator.metadata(), **generator.dataset_metadata(lambda: data)}


@pytest.mark.parametrize("name", NAMES)
def test_cli_generates_a_readable_file(name, tmp_path, capsys):
    out = tmp_path / f"{name}.nc"
    code, stdout, err = run(capsys, "generate", name, "--n", 2, "--out", out, "--quiet", "--device", "cpu",
                            *overrides_of(name))
    assert code == 0, err
    assert f"wrote 2 trajectories of {name}" in stdout
    data = read_trajectories(out)
    assert data.n_samples == 2 and data.attrs["pde"] == name
    assert data.attrs["pde_parameters"] == get_trajectory_generator(name)(**settings_of(name)).parameters()


def test_cli_generates_the_decaying_preset(tmp_path, capsys):
    out = tmp_path / "decaying.nc"
    code, _, err = run(capsys, "generate", "navier-stokes", "--n", 1, "--out", out, "--quiet", "pde.preset=decaying",
                       "pde.resolution=16", "pde.store_resolution=8", "pde.warmup_time=0.0", "pde.final_time=0.1",
                       "pde.n_frames=3", "pde.dt=0.01")
    assert code == 0, err
    data = read_trajectories(out)
    assert data.fields["w"].shape == (1, 3, 8, 8) and data.metadata["forcing"] is None


@pytest.mark.parametrize("name", NAMES)
def test_cli_refuses_unknown_settings_and_a_linear_solver(name, tmp_path, capsys):
    argv = ["generate", name, "--n", 2, "--out", tmp_path / "x.nc", "--quiet", *overrides_of(name)]
    code, _, err = run(capsys, *argv, "pde.colour=red")
    assert code == 1 and "'colour'" in error_line(err)
    code, _, err = run(capsys, *argv, "--solver", "cg")
    assert code == 1 and "time-dependent" in error_line(err) and "--solver" in error_line(err)
    assert not (tmp_path / "x.nc").exists()


def test_a_diverging_batch_is_named_with_its_sample_and_step(tmp_path):
    generator = get_trajectory_generator("shallow-water")(resolution=8, n_frames=2, frame_interval=0.05,
                                                          mean_depth=1e200)   # g h^2 / 2 overflows
    with pytest.raises(SciMLError, match=r"^batch 0 \(samples 0-1\): shallow-water run diverged in sample 0 of this "
                                         r"batch \(seed \d+\) at step 1 .*--resume$"):
        simulate_dataset(generator, 2, tmp_path / "x.nc", batch_size=2, device="cpu")


def test_vorticity_residual_from_the_file_alone_equals_the_in_memory_one(tmp_path):
    settings = TINY["navier-stokes"]
    arrays, attrs = generate_trajectories(fno_forced_flow(**settings), n_samples=2, seed=3)
    data = read_trajectories(simulate_dataset(NavierStokes(**settings), 2, tmp_path / "ns.nc", seed=3))
    from_file = vorticity_residual(data.fields["w"], **residual_settings(data.metadata))
    stored = arrays["w"].astype(np.float32)    # what the file holds
    assert np.array_equal(data.fields["w"], stored)
    in_memory = vorticity_residual(stored, frame_dt=attrs["frame_dt"], nu=attrs["nu"], drag=attrs["drag"],
                                   forcing=arrays["f"])
    assert torch.equal(from_file, in_memory)
    exact = vorticity_residual(arrays["w"], frame_dt=attrs["frame_dt"], nu=attrs["nu"], forcing=arrays["f"])
    assert float((from_file - exact).abs().max()) < 1e-4 * float(exact.abs().max())   # float32 storage only
    unforced = vorticity_residual(data.fields["w"], frame_dt=attrs["frame_dt"], nu=attrs["nu"])
    assert not torch.allclose(unforced, from_file)    # the forcing in the metadata matters


def test_mpm_scene_depends_on_its_seed_alone_and_the_file_holds_gns_statistics(tmp_path):
    generator = get_trajectory_generator("mpm")(**{**TINY["mpm"], "n_boxes": [1, 2], "max_speed": 0.5})
    pair = generator.simulate([11, 12], device="cpu")
    alone = generator.simulate([12], device="cpu")
    np.testing.assert_allclose(pair["position"][1], alone["position"][0], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(pair["particle_type"][1], alone["particle_type"][0])
    assert pair["position"][0].shape != pair["position"][1].shape      # ragged: different scenes
    data = read_trajectories(simulate_dataset(generator, 3, tmp_path / "mpm.nc", seed=4, batch_size=2, device="cpu"))
    positions = [p.astype(np.float64) for p in data.fields["position"]]
    vel = np.concatenate([np.diff(p, axis=0).reshape(-1, 2) for p in positions])
    acc = np.concatenate([np.diff(p, n=2, axis=0).reshape(-1, 2) for p in positions])
    for key, value in (("vel_mean", vel.mean(0)), ("vel_std", vel.std(0)), ("acc_mean", acc.mean(0)),
                       ("acc_std", acc.std(0))):
        np.testing.assert_allclose(data.metadata[key], value, rtol=1e-9, atol=1e-15)
    assert data.metadata["particle_types"] == {"elastic": 8} and data.metadata["sequence_length"] == 3
    assert all(set(np.unique(t)) == {8} for t in data.fields["particle_type"])


@pytest.mark.parametrize("settings, message", [
    ({"colour": "red"}, r"unknown mpm setting\(s\) \['colour'\]; valid: n_frames, substeps, dim, resolution"),
    ({"batch_size": 2}, r"unknown mpm setting\(s\) \['batch_size'\]"),
    ({"n_frames": 2}, "n_frames must be an integer >= 3"),
    ({"substeps": 1}, r"use substeps >= \d+"),
])
def test_mpm_refuses_bad_settings(settings, message):
    with pytest.raises(SciMLError, match=message):
        get_trajectory_generator("mpm")(**{**TINY["mpm"], **settings})
