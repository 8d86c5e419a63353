"""The periodic shallow-water generator: conservation, well-balancing, order, symmetry, refusals."""

import math
import re

import numpy as np
import pytest
import torch

import sciml.datasets.shallow_water as sw
from sciml.dataset_file import sample_seed
from sciml.datasets.shallow_water import (
    CFL_LIMIT,
    ShallowWater,
    ShallowWaterConfig,
    check_initial_state,
    generate_trajectories,
    initial_state,
    shallow_water_rhs,
    signal_rate,
    simulate_shallow_water,
)
from sciml.errors import SciMLError, SimulationDiverged
from sciml.simulate import simulate_dataset
from sciml.trajectory_file import read_trajectories

SCHEMES = [("mc", "hll"), ("minmod", "rusanov")]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def one_line(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


def centres(n: int) -> torch.Tensor:
    return (torch.arange(n, dtype=torch.float64) + 0.5) / n


def random_states(n: int, batch: int = 2, velocity_amplitude: float = 0.3) -> torch.Tensor:
    """Random periodic 2-D states (bumps in h, GRF velocity), float64."""
    config = ShallowWaterConfig(resolution=n, velocity="grf", velocity_amplitude=velocity_amplitude)
    return torch.from_numpy(np.stack([initial_state(config, np.random.default_rng(i)) for i in range(batch)]))


def rotate(state: torch.Tensor) -> torch.Tensor:
    """State rotated by +90 degrees about the box centre: h'(p) = h(R^-1 p), (hu, hv)' = R (hu, hv)(R^-1 p)."""
    turn = lambda a: torch.rot90(a, 1, dims=(-2, -1))  # noqa: E731
    return torch.stack([turn(state[:, 0]), -turn(state[:, 2]), turn(state[:, 1])], dim=1)


@pytest.mark.parametrize("limiter, flux", SCHEMES)
def test_mass_and_momentum_are_conserved_to_rounding(limiter, flux):
    state = random_states(16)
    frames, steps = simulate_shallow_water(state, np.linspace(0.0, 0.5, 6), spacing=1 / 16, limiter=limiter,
                                           flux=flux)
    assert int(steps.min()) > 50
    totals = frames.sum(dim=(-2, -1))                       # (batch, frame, channel)
    scale = state.abs().sum(dim=(-2, -1))                   # (batch, channel)
    drift = (totals - totals[:, :1]).abs().amax(dim=1)
    assert bool((drift <= 1e-13 * scale).all()), drift / scale
    assert (frames[:, -1] - state).abs().max() > 1e-2       # the flow did move


@pytest.mark.parametrize("shape", [(24,), (6, 7, 8)])
def test_the_same_code_runs_in_one_and_three_dimensions(shape):
    config = ShallowWaterConfig(resolution=shape, velocity="grf", velocity_amplitude=0.3)
    state = torch.from_numpy(initial_state(config, np.random.default_rng(0))[None])
    frames, steps = simulate_shallow_water(state, [0.1, 0.2], spacing=config.spacing)
    assert frames.shape == (1, 2, 1 + len(shape), *shape) and int(steps) > 5
    totals, start = frames[0, -1].flatten(1).sum(dim=1), state[0].flatten(1).sum(dim=1)
    assert bool(((totals - start).abs() <= 1e-13 * state[0].flatten(1).abs().sum(dim=1)).all())


def test_mass_is_conserved_with_coriolis_and_momentum_is_not():
    state = random_states(16)
    frames, _ = simulate_shallow_water(state, [0.3], spacing=1 / 16, coriolis=5.0)
    totals, start = frames[:, -1].sum(dim=(-2, -1)), state.sum(dim=(-2, -1))
    assert bool(((totals[:, 0] - start[:, 0]).abs() <= 1e-13 * start[:, 0]).all())
    assert (totals[:, 1:] - start[:, 1:]).abs().max() > 1e-3


@pytest.mark.parametrize("limiter, flux", SCHEMES)
def test_lake_at_rest_stays_at_rest_exactly(limiter, flux):
    lake = torch.zeros(2, 3, 12, 10, dtype=torch.float64)
    lake[0, 0], lake[1, 0] = 1.0, 3.7
    frames, steps = simulate_shallow_water(lake, [0.1, 0.2], spacing=(1 / 12, 0.1), gravity=9.81, coriolis=2.0,
                                           limiter=limiter, flux=flux)
    assert int(steps.min()) > 10
    assert torch.equal(frames, lake[:, None].expand_as(frames))


@pytest.mark.parametrize("limiter, flux", SCHEMES)
def test_second_order_convergence_on_a_smooth_wave(limiter, flux):
    """Self-convergence on a smooth 1-D-in-x wave before it steepens into a shock (t = 0.2 << 0.6).

    The error of the n-cell solution is its L1 distance to the 2n-cell solution averaged
    onto the n cells (exact conservative restriction); successive ratios give the order.
    """
    def solve(n):
        x = centres(n)[:, None].expand(n, 2)
        h = 1 + 0.2 * torch.sin(2 * math.pi * x)
        state = torch.stack([h, 0.1 * torch.cos(2 * math.pi * x), 0 * h])[None]
        frames, _ = simulate_shallow_water(state, [0.2], spacing=(1 / n, 0.5), limiter=limiter, flux=flux)
        assert torch.equal(frames[..., 0], frames[..., 1])   # stays 1-D
        return frames[0, -1, ..., 0]

    solutions = {n: solve(n) for n in (16, 32, 64, 128)}
    errors = [(solutions[n] - solutions[2 * n].reshape(3, n, 2).mean(-1)).abs().mean().item() for n in (16, 32, 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert min(orders) >= 1.7, (errors, orders)


def test_rotationally_symmetric_bump_stays_symmetric():
    x = centres(16)
    radius2 = (x[:, None] - 0.5) ** 2 + (x[None, :] - 0.5) ** 2
    h = 1 + 0.3 * torch.exp(-radius2 / (2 * 0.1**2))
    state = torch.stack([h, 0 * h, 0 * h])[None]
    assert torch.equal(rotate(state), state)
    frames, _ = simulate_shallow_water(state, [0.1, 0.3], spacing=1 / 16, coriolis=4.0)
    assert (frames[0, -1, 1:]).abs().max() > 1e-2              # it moves ...
    for frame in frames[0]:
        assert (rotate(frame[None])[0] - frame).abs().max() <= 1e-13   # ... and keeps the symmetry


@pytest.mark.parametrize("flux", ["hll", "rusanov"])
def test_rotating_the_initial_state_rotates_the_solution(flux):
    state = random_states(12)
    frames, _ = simulate_shallow_water(state, [0.2], spacing=1 / 12, coriolis=3.0, flux=flux)
    rotated, _ = simulate_shallow_water(rotate(state), [0.2], spacing=1 / 12, coriolis=3.0, flux=flux)
    assert (rotate(frames[:, -1]) - rotated[:, -1]).abs().max() <= 1e-13


def test_adaptive_steps_land_exactly_on_frame_times():
    state = random_states(12, batch=1)
    both, steps_both = simulate_shallow_water(state, [0.05, 0.1], spacing=1 / 12)
    first, steps_first = simulate_shallow_water(state, [0.05], spacing=1 / 12)
    assert torch.equal(both[:, 0], first[:, 0])
    assert int(steps_first) < int(steps_both)
    rate = float(signal_rate(state, 1 / 12, gravity=1.0))
    assert int(steps_first) >= math.ceil(0.05 * rate / 0.4)   # no step above the CFL number 0.4


def test_fixed_dt_takes_exactly_the_steps_asked_for_and_agrees_with_adaptive():
    state = random_states(12, batch=1)
    fixed, steps = simulate_shallow_water(state, [0.0, 0.05, 0.1], spacing=1 / 12, dt=0.0025)
    assert int(steps) == 40
    assert torch.equal(fixed[:, 0], state)
    adaptive, _ = simulate_shallow_water(state, [0.0, 0.05, 0.1], spacing=1 / 12)
    assert (fixed - adaptive).abs().max() < 1e-2


def test_a_trajectory_does_not_depend_on_its_batch():
    states = random_states(12, batch=3)
    together, _ = simulate_shallow_water(states, [0.1], spacing=1 / 12)
    alone, _ = simulate_shallow_water(states[1:2], [0.1], spacing=1 / 12)
    assert torch.equal(together[1:2], alone)


# ----------------------------------------------------------------------------- refusals and reports

def test_unstable_dt_is_refused_before_any_step(monkeypatch):
    state = random_states(12)
    rate = signal_rate(state, 1 / 12, gravity=1.0)
    largest = CFL_LIMIT / float(rate.max())

    def no_work(*args, **kwargs):
        raise AssertionError("a time step was taken")

    monkeypatch.setattr(sw, "shallow_water_rhs", no_work)
    with pytest.raises(SciMLError) as error:
        simulate_shallow_water(state, [0.1], spacing=1 / 12, dt=0.1 / math.floor(0.1 / largest), sample_ids=[4, 5])
    message = one_line(error)
    assert f"sample {4 + int(rate.argmax())}" in message and f"largest stable dt is {largest:.4g}" in message
    monkeypatch.undo()
    simulate_shallow_water(state, [0.1], spacing=1 / 12, dt=0.1 / math.ceil(0.1 / largest))


def test_generation_refuses_an_unstable_dt_before_the_first_batch(monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("a batch was integrated")

    monkeypatch.setattr(sw, "simulate_shallow_water", no_work)
    config = {"resolution": 12, "n_frames": 2, "frame_interval": 0.05, "dt": 0.05, "batch_size": 1}
    with pytest.raises(SciMLError, match=r"CFL number .* > 0.5 for sample \d; the largest stable dt") as error:
        generate_trajectories(config, n_samples=3, seed=0, device="cpu")
    one_line(error)


def test_overflow_to_nan_is_reported_with_sample_and_step():
    state = torch.zeros(2, 3, 8, 8, dtype=torch.float32)
    state[0, 0], state[1, 0] = 1.0, 1e30                     # g h^2 / 2 overflows float32 in sample 1
    with pytest.raises(SimulationDiverged) as error:
        simulate_shallow_water(state, [0.1], spacing=1 / 8, sample_ids=[7, 8])
    assert re.search(r"diverged in sample 8 at step 1 \(t = .*\): NaN or infinite values", one_line(error))
    assert (error.value.sample, error.value.step) == (1, 1) and error.value.time > 0


def converging_flow(n: int = 32, speed: float = 1.0) -> torch.Tensor:
    x = centres(n)
    u = torch.where(x < 0.5, speed, -speed)
    h = torch.ones(n, dtype=torch.float64)
    return torch.stack([h, h * u])[None]


def test_blow_up_is_reported_with_sample_and_step():
    state = torch.cat([converging_flow(speed=0.0), converging_flow()])  # sample 1 piles up: its rate grows
    with pytest.raises(SimulationDiverged) as error:
        simulate_shallow_water(state, [0.2], spacing=1 / 32, blowup_factor=1.2)
    message = one_line(error)
    assert error.value.sample == 1 and f"at step {error.value.step} " in message
    assert re.search(r"diverged in sample 1 at step \d+ \(t = .*\): blow-up", message)
    assert "(nothing was stored)" in message


def test_fixed_dt_that_becomes_unstable_is_reported():
    state = converging_flow()
    dt = 0.2 / math.ceil(0.2 / (0.49 / float(signal_rate(state, 1 / 32, gravity=1.0))))
    with pytest.raises(SimulationDiverged, match=r"diverged in sample 0 at step \d+ .*now has CFL number") as error:
        simulate_shallow_water(state, [0.2], spacing=1 / 32, dt=dt)
    one_line(error)


def test_generation_stops_on_divergence_and_returns_nothing(monkeypatch):
    config = {"resolution": 12, "n_frames": 2, "frame_interval": 0.05, "mean_depth": 1e200}   # g h^2 / 2 overflows
    with pytest.raises(SimulationDiverged, match=r"diverged in sample 0 at step 1 .*NaN or infinite") as error:
        generate_trajectories(config, n_samples=2, seed=0, device="cpu")
    one_line(error)
    drawn = sw._initial_states

    def second_overflows(config, seeds):
        states = drawn(config, seeds)
        states[1, 0] = 1e200
        return states

    monkeypatch.setattr(sw, "_initial_states", second_overflows)
    config = {"resolution": 12, "n_frames": 2, "frame_interval": 0.05, "batch_size": 1}
    with pytest.raises(SimulationDiverged, match=r"diverged in sample 1 at step 1 .*NaN or infinite") as error:
        generate_trajectories(config, n_samples=3, seed=0, device="cpu")   # in the second batch
    assert error.value.sample == 1      # the index in the data set


def test_non_periodic_fields_are_refused_and_periodic_ones_accepted():
    x = centres(32)
    ramp = torch.stack([1 + x[:, None].expand(32, 32), 0 * x[:, None].expand(32, 32), 0 * x.expand(32, 32)])[None]
    with pytest.raises(SciMLError, match="not periodic: sample 0, variable h, axis x") as error:
        simulate_shallow_water(ramp, [0.1], spacing=1 / 32)
    one_line(error)
    momentum = torch.ones(1, 3, 32, 32, dtype=torch.float64)
    momentum[0, 2] = 0.1 * x                                  # h v ramps along y
    with pytest.raises(SciMLError, match="variable hv, axis y") as error:
        check_initial_state(momentum)
    one_line(error)
    dam = torch.stack([torch.where(x < 0.5, 2.0, 1.0), 0 * x])[None]   # interior jumps are periodic-compatible
    check_initial_state(dam)
    check_initial_state(random_states(16))


@pytest.mark.parametrize("bad, pattern", [
    (torch.ones(1, 2, 8, 8, dtype=torch.float64), r"shape \(batch, 1 \+ d, \*grid\)"),
    (torch.ones(8, 8, dtype=torch.float64), r"shape \(batch, 1 \+ d, \*grid\)"),
    (torch.ones(1, 5, 4, 4, 4, 4, dtype=torch.float64), r"shape \(batch, 1 \+ d, \*grid\)"),
    (torch.full((1, 3, 8, 8), math.nan, dtype=torch.float64), "NaN or infinite"),
])
def test_malformed_states_are_refused(bad, pattern):
    with pytest.raises(SciMLError, match=pattern) as error:
        simulate_shallow_water(bad, [0.1], spacing=1 / 8)
    one_line(error)


@pytest.mark.parametrize("depth", [-0.5, 0.0])
def test_non_positive_depth_is_refused(depth):
    state = torch.ones(3, 3, 8, 8, dtype=torch.float64)
    state[2, 0, 3, 4] = depth
    with pytest.raises(SciMLError, match=r"depth h must be > 0 .* sample 2 has min h") as error:
        simulate_shallow_water(state, [0.1], spacing=1 / 8)
    one_line(error)


@pytest.mark.parametrize("settings, pattern", [
    ({"cfl": 0.6}, "exceeds the stable limit 0.5"),
    ({"dt": 0.003}, "not a multiple of dt"),
    ({"frame_times": [0.2, 0.1]}, "increasing sequence"),
    ({"limiter": "superbee"}, "choose one of"),
    ({"coriolis": 1.0, "spacing": 1 / 8, "initial": torch.ones(1, 2, 8, dtype=torch.float64)}, "needs a 2-D"),
])
def test_bad_solver_settings_are_refused(settings, pattern):
    arguments = {"initial": torch.ones(1, 3, 8, 8, dtype=torch.float64), "frame_times": [0.1], "spacing": 1 / 8,
                 **settings}
    with pytest.raises(SciMLError, match=pattern) as error:
        simulate_shallow_water(**arguments)
    one_line(error)


@pytest.mark.parametrize("settings, pattern", [
    ({"mesh": 3}, "unknown shallow-water settings"),
    ({"cfl": 0.7}, "exceeds the stable limit"),
    ({"dt": 0.003}, "not a multiple of dt"),
    ({"velocity": "geostrophic"}, "needs a 2-D grid and coriolis"),
    ({"bump_amplitude": 0.4}, r"bump_amplitude must be in \[0, 1 / max_bumps\)"),
    ({"resolution": (8, 8, 8, 8)}, "resolution must be"),
    ({"height": "grf", "resolution": (8, 8, 8), "grf_alpha": 1.2}, "must exceed d/2"),
    ({"bump_width": (0.2, 0.1)}, "bump_width must be"),
    ({"blowup_factor": 0.5}, "blowup_factor must be > 1"),
])
def test_bad_benchmark_settings_are_refused(settings, pattern):
    with pytest.raises(SciMLError, match=pattern) as error:
        generate_trajectories(settings, n_samples=1, seed=0, device="cpu")
    one_line(error)


# ----------------------------------------------------------------------------- the benchmark preset

def test_generate_trajectories_shapes_attrs_and_reproducibility():
    config = {"resolution": 12, "n_frames": 3, "frame_interval": 0.02, "batch_size": 2}
    arrays, attrs = generate_trajectories(config, n_samples=3, seed=5, device="cpu")
    assert sorted(arrays) == ["h", "u", "v"]
    assert all(a.shape == (3, 3, 12, 12) and a.dtype == np.float32 for a in arrays.values())
    assert attrs["times"] == [0.0, 0.02, 0.04] and attrs["root_seed"] == 5 and len(attrs["n_steps"]) == 3
    assert attrs["spacing"] == [1 / 12, 1 / 12] and len(attrs["x"]) == 12
    assert ShallowWaterConfig(**attrs["config"]) == ShallowWaterConfig(**config)
    mass = arrays["h"].astype(np.float64).sum(axis=(-2, -1))
    assert np.allclose(mass, mass[:, :1], rtol=1e-6)
    assert np.all(arrays["u"][:, 0] == 0) and np.abs(arrays["u"][:, -1]).max() > 1e-3   # starts at rest, moves
    alone, _ = generate_trajectories({**config, "batch_size": 1, "dtype": "float64"}, n_samples=1, seed=5,
                                     device="cpu")
    assert np.array_equal(alone["h"][0].astype(np.float32), arrays["h"][0])


@pytest.mark.parametrize("height, velocity, extra", [
    ("grf", "grf", {"resolution": 16}),
    ("bumps", "geostrophic", {"resolution": 32, "coriolis": 20.0, "bump_amplitude": 0.1, "bump_width": (0.1, 0.15)}),
])
def test_other_initial_state_families(height, velocity, extra):
    config = ShallowWaterConfig(height=height, velocity=velocity, n_frames=3, **extra)
    state = initial_state(config, np.random.default_rng(3))
    check_initial_state(state[None])
    if height == "grf":
        assert abs(state[0].mean() - config.mean_depth) < 1e-14
    if velocity == "geostrophic":   # near balance: the momentum tendency is a fraction of that of the fluid at rest
        tendency = shallow_water_rhs(torch.from_numpy(state[None]), config.spacing, config.gravity, config.coriolis)
        at_rest = state.copy()
        at_rest[1:] = 0
        unbalanced = shallow_water_rhs(torch.from_numpy(at_rest[None]), config.spacing, config.gravity,
                                       config.coriolis)
        assert tendency[0, 1:].abs().max() < 0.2 * unbalanced[0, 1:].abs().max()
    arrays, _ = generate_trajectories(config, n_samples=1, seed=0, device="cpu")
    assert np.isfinite(arrays["h"]).all() and arrays["h"].min() > 0


def test_random_field_has_unit_pointwise_variance_on_any_box():
    config = ShallowWaterConfig(resolution=(16, 8), length=3.0, height="grf", velocity="grf")
    fields = np.stack([sw._periodic_random_field(config, np.random.default_rng(i)) for i in range(300)])
    assert fields.shape == (300, 16, 8) and np.abs(fields.mean(axis=(1, 2))).max() < 1e-13
    assert fields.var() == pytest.approx(1.0, rel=0.05)


# ----------------------------------------------------------------------------- the registered generator

def test_generator_writes_what_generate_trajectories_returns(tmp_path):
    settings = {"resolution": 12, "n_frames": 3, "frame_interval": 0.02, "height": "grf", "velocity": "grf"}
    arrays, attrs = generate_trajectories({**settings, "batch_size": 2}, n_samples=3, seed=5, device="cpu")
    generator = ShallowWater(**settings)
    data = read_trajectories(simulate_dataset(generator, 3, tmp_path / "sw.nc", seed=5, batch_size=2, device="cpu"))
    for name in ("h", "u", "v"):
        assert np.array_equal(data.fields[name], arrays[name])     # both float32 casts of the same float64 values
    assert data.seeds.tolist() == [sample_seed(5, i) for i in range(3)]
    assert np.array_equal(data.coords["time"], attrs["times"]) and np.array_equal(data.coords["x"], attrs["x"])
    settings_in_file = {k: v for k, v in attrs["config"].items() if k not in ("batch_size", "dtype")}
    assert data.attrs["pde_parameters"] == settings_in_file
    assert ShallowWater(**data.attrs["pde_parameters"]).config == generator.config
    assert data.metadata["gravity"] == 1.0 and data.metadata["spacing"] == [1 / 12, 1 / 12]


def test_generator_refuses_unknown_settings_and_names_a_diverging_sample():
    for bad in ({"mesh": 3}, {"batch_size": 4}):
        with pytest.raises(SciMLError, match=rf"unknown shallow-water setting\(s\) \['{next(iter(bad))}'\]; valid: "
                                             r"resolution, length") as error:
            ShallowWater(**bad)
        one_line(error)
    generator = ShallowWater(resolution=8, n_frames=2, frame_interval=0.05, mean_depth=1e200)
    with pytest.raises(SimulationDiverged, match=r"diverged in sample 0 of this batch \(seed 11\) at step 1 ") as error:
        generator.simulate([11, 12], device="cpu")
    assert error.value.sample == 0
    with pytest.raises(SciMLError, match=r"CFL number .* > 0.5 for sample \d of this batch \(seed 1[12]\)"):
        ShallowWater(resolution=8, n_frames=2, frame_interval=0.05, dt=0.05).simulate([11, 12], device="cpu")
