"""The 2-D Navier-Stokes generator: exact solutions, order of accuracy, invariants, residual, refusals."""

import math
import re

import numpy as np
import pytest
import torch

import sciml.datasets.navier_stokes as ns
from sciml.dataset_file import sample_seed
from sciml.datasets.navier_stokes import (
    NavierStokes,
    NavierStokesConstraint,
    fno_forced_flow,
    fno_forcing,
    generate_trajectories,
    integrate_vorticity,
    max_velocity,
    mcwilliams_decaying,
    mcwilliams_vorticity,
    residual_settings,
    stable_time_step,
    vorticity_residual,
)
from sciml.datasets.periodic_spectral import (
    gradient,
    laplacian,
    negative_sobolev_norm,
    periodic_gaussian_random_field,
    resample,
    stream_function,
    velocity,
)
from sciml.errors import SciMLError, SimulationDiverged
from sciml.simulate import simulate_dataset
from sciml.trajectory_file import read_trajectories


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Small FFTs run fastest on one thread."""


def nodes(n):
    return torch.arange(n, dtype=torch.float64) / n


def smooth_vorticity(batch, n, amplitude, seed=0, modes=6):
    """A random periodic vorticity with only modes |k| < modes / 2, interpolated to n x n."""
    g = torch.Generator().manual_seed(seed)
    return resample(amplitude * torch.randn(batch, modes, modes, dtype=torch.float64, generator=g), (n, n))


def space_time_norm(r):
    """(sum over frames of the squared H^-1 norms)^(1/2), one value per sample."""
    return negative_sobolev_norm(r).pow(2).sum(dim=-1).sqrt()


def one_line(error):
    message = str(error.value)
    assert "\n" not in message and message
    return message


# ----------------------------------------------------------------------------- correctness of the solver


@pytest.mark.parametrize("k, drag", [(1, 0.0), (2, 0.3)])
def test_taylor_green_vortex_decays_at_the_exact_rate(k, drag):
    n, nu, dt, steps = 16, 0.01, 0.01, 40
    x = nodes(n)
    shape = torch.sin(2 * math.pi * k * x)[:, None] * torch.sin(2 * math.pi * k * x)[None, :]
    w0 = torch.stack([shape, -2.0 * shape])
    out = integrate_vorticity(w0, dt=dt, n_steps=steps, nu=nu, drag=drag, record_every=10)
    rate = nu * 8 * math.pi**2 * k**2 + drag  # Lap of the mode is -|2 pi (k, k)|^2
    # u . grad w vanishes identically (w is proportional to psi): the shape is kept to rounding ...
    amplitude = out["w"][:, :, 1, 1] / w0[:, None, 1, 1]
    assert torch.allclose(out["w"], amplitude[..., None, None] * w0[:, None], rtol=0, atol=1e-13)
    # ... and the amplitude is the scheme's exact amplification of the linear mode, per step,
    linear = -rate
    factor = math.prod((1 + a * dt * linear) / (1 - b * dt * linear) for a, b, _, _ in ns._SMR91_STAGES)
    steps_done = torch.arange(5, dtype=torch.float64) * 10
    assert torch.allclose(amplitude, (factor**steps_done).expand(2, 5), rtol=1e-12, atol=0)
    # which is exp(-rate t) up to the O(dt^2) time-stepping error
    exact = torch.exp(-rate * out["t"])
    assert torch.allclose(amplitude, exact.expand(2, 5), rtol=(rate * dt) ** 2, atol=0)


def test_second_order_convergence_in_time():
    n, nu, final = 32, 0.02, 0.25
    w0 = smooth_vorticity(2, n, 2.5)
    forcing = fno_forcing(n)

    def solve(steps):
        return integrate_vorticity(w0, dt=final / steps, n_steps=steps, nu=nu, forcing=forcing,
                                   record_every=steps)["w"][:, -1]

    reference = solve(512)
    errors = [float((solve(steps) - reference).abs().max()) for steps in (16, 32, 64)]
    orders = [math.log2(errors[i] / errors[i + 1]) for i in range(2)]
    assert all(1.8 <= p <= 2.2 for p in orders), orders


def test_unforced_flow_loses_energy_and_enstrophy_and_keeps_its_mean():
    n = 32
    w0 = smooth_vorticity(2, n, 3.0, modes=8) + torch.tensor([0.7, -0.2], dtype=torch.float64)[:, None, None]
    out = integrate_vorticity(w0, dt=2e-3, n_steps=200, nu=2e-3, record_every=10)
    w = out["w"]
    u, v = velocity(w)
    energy = 0.5 * (u**2 + v**2).mean(dim=(-2, -1))
    enstrophy = 0.5 * (w - w.mean(dim=(-2, -1), keepdim=True)).pow(2).mean(dim=(-2, -1))
    assert bool((energy.diff(dim=1) < 0).all()) and bool((enstrophy.diff(dim=1) < 0).all())
    # d/dt E = -2 nu Z exactly; the trapezoidal estimate over a frame agrees to O(frame_dt^2)
    frame_dt = 0.02
    predicted = -2 * 2e-3 * frame_dt * (enstrophy[:, 1:] + enstrophy[:, :-1]) / 2
    assert torch.allclose(energy.diff(dim=1), predicted, rtol=1e-2)
    assert torch.allclose(w.mean(dim=(-2, -1)), w0.mean(dim=(-2, -1))[:, None], rtol=0, atol=1e-13)


def test_frames_are_fourier_restrictions_and_psi_is_the_stream_function():
    n = 32
    w0 = smooth_vorticity(1, n, 2.0, modes=8)
    full = integrate_vorticity(w0, dt=5e-3, n_steps=20, nu=5e-3, record_every=10)
    coarse = integrate_vorticity(w0, dt=5e-3, n_steps=20, nu=5e-3, record_every=10, out_resolution=12)
    assert coarse["w"].shape == (1, 3, 12, 12)
    assert torch.allclose(coarse["w"], resample(full["w"], (12, 12)), atol=1e-13)
    assert torch.allclose(full["psi"], stream_function(full["w"]), atol=1e-13)


def test_solver_keeps_the_input_dtype():
    w0 = smooth_vorticity(1, 16, 1.0).to(torch.float32)
    out = integrate_vorticity(w0, dt=1e-2, n_steps=2, nu=1e-2)
    assert out["w"].dtype == torch.float32 and out["psi"].dtype == torch.float32
    assert out["t"].dtype == torch.float64


# ----------------------------------------------------------------------------- the residual


def test_residual_is_small_for_a_solver_trajectory_and_large_for_a_perturbed_one():
    n, nu, dt = 32, 1e-2, 2.5e-3
    w0, forcing = smooth_vorticity(2, n, 3.0), fno_forcing(n)
    ratios = {}
    for every in (4, 16):
        w = integrate_vorticity(w0, dt=dt, n_steps=160, nu=nu, forcing=forcing, record_every=every)["w"]
        frame_dt = dt * every
        r = vorticity_residual(w, frame_dt=frame_dt, nu=nu, forcing=forcing)
        w_t = torch.gradient(w, spacing=frame_dt, dim=1, edge_order=2)[0]
        ratios[every] = float((space_time_norm(r) / space_time_norm(w_t)).max())
    assert ratios[4] < 2e-3
    assert ratios[16] / ratios[4] > 8  # second order in the frame spacing: 16x in theory

    perturbed = w.clone()
    x = nodes(n)
    perturbed[:, 5] += 0.05 * w.abs().max() * torch.cos(2 * math.pi * 3 * x)[:, None]
    r = vorticity_residual(perturbed, frame_dt=dt * 16, nu=nu, forcing=forcing)
    w_t = torch.gradient(perturbed, spacing=dt * 16, dim=1, edge_order=2)[0]
    assert float((space_time_norm(r) / space_time_norm(w_t)).min()) > 0.1


def test_residual_is_differentiable():
    w = smooth_vorticity(1, 6, 1.0, modes=4)[:, None].repeat(1, 3, 1, 1)
    w = (w * torch.tensor([1.0, 0.9, 0.8], dtype=torch.float64)[None, :, None, None]).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda field: vorticity_residual(field, frame_dt=0.1, nu=0.01), (w,), fast_mode=True)


def test_negative_sobolev_norm_of_one_fourier_mode():
    n = 16
    x = nodes(n)
    for k, alpha, s in (((2, 3), 0.1, 1.0), ((0, 5), 1.0, 0.5), ((4, 0), 2.0, 2.0), ((1, 1), 1.0, 0.0)):
        r = torch.sin(2 * math.pi * (k[0] * x[:, None] + k[1] * x[None, :]))  # ||r||_L2^2 = 1/2
        expected = (alpha + 4 * math.pi**2 * (k[0] ** 2 + k[1] ** 2)) ** (-s / 2) / math.sqrt(2)
        assert math.isclose(float(negative_sobolev_norm(r, alpha=alpha, s=s)), expected, rel_tol=1e-12)
    # the mean mode has weight alpha^-s; batched over leading axes; any number of spatial axes
    batch = torch.ones(2, 3, 8, 8, 8, dtype=torch.float64) * 3.0
    expected = torch.full((2, 3), 1.5, dtype=torch.float64)
    assert torch.allclose(negative_sobolev_norm(batch, alpha=4.0, s=1.0, dim=3), expected)
    with pytest.raises(SciMLError):
        negative_sobolev_norm(batch, alpha=0.0)


def test_resample_restricts_and_interpolates_exactly():
    x = nodes(30)
    u = torch.cos(2 * math.pi * 3 * x)[:, None] + torch.sin(2 * math.pi * 11 * x)[None, :] + 0.5
    restricted = resample(u, (16, 9))  # mode 11 is above both coarse grids' Nyquist: dropped
    xs, ys = nodes(16), nodes(9)
    assert torch.allclose(restricted, torch.cos(2 * math.pi * 3 * xs)[:, None] + 0.5 + 0 * ys, atol=1e-13)
    coarse = torch.randn(3, 8, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(resample(resample(coarse, (20, 15)), (8, 7)), coarse, atol=1e-13)


# ----------------------------------------------------------------------------- refusals


def test_cfl_refusal_names_the_step_to_use():
    w0 = smooth_vorticity(3, 16, 1.0)
    w0[1] *= 50
    with pytest.raises(SciMLError, match="sample 1") as error:
        integrate_vorticity(w0, dt=0.05, n_steps=2, nu=1e-3)
    message = one_line(error)
    suggested = float(message.rsplit("dt <= ", 1)[1])
    assert suggested <= stable_time_step(w0)
    integrate_vorticity(w0, dt=suggested, n_steps=2, nu=1e-3)  # accepted

    config = mcwilliams_decaying(resolution=16, store_resolution=8, warmup_time=0.0, final_time=0.5, n_frames=3,
                                 dt=0.25)
    with pytest.raises(SciMLError, match="unstable for mcwilliams-decaying") as error:
        generate_trajectories(config, n_samples=2, seed=0)
    one_line(error)


def test_blowup_is_reported_with_sample_and_step_and_nothing_returned():
    w0 = smooth_vorticity(3, 16, 0.01)
    w0[1] *= 1e4
    with pytest.raises(SimulationDiverged) as error:
        integrate_vorticity(w0, dt=0.05, n_steps=100, nu=1e-4, record_every=50, cfl_limit=1e9)
    message = one_line(error)
    assert error.value.sample == 1 and 1 <= error.value.step < 100
    assert f"sample 1 at step {error.value.step}" in message
    assert isinstance(error.value, SciMLError)


def test_generator_reports_a_diverging_sample(monkeypatch):
    monkeypatch.setattr(ns, "CFL_LIMIT", 1e9)
    config = mcwilliams_decaying(resolution=16, store_resolution=8, warmup_time=0.0, final_time=40.0, n_frames=3,
                                 dt=1.0)
    with pytest.raises(SimulationDiverged) as error:
        generate_trajectories(config, n_samples=4, seed=0, batch_size=2)
    message = one_line(error)
    assert f"sample {error.value.sample} (seed {sample_seed(0, error.value.sample)})" in message
    assert f"step {error.value.step} " in message and "nothing was stored" in message


def test_non_periodic_and_non_square_input_is_refused():
    x = nodes(32)
    ramp = (x[:, None] + 0.3 * torch.sin(2 * math.pi * x)[None, :])[None]
    with pytest.raises(SciMLError, match="not periodic: sample 0 jumps") as error:
        integrate_vorticity(ramp, dt=1e-3, n_steps=1, nu=1e-3)
    one_line(error)
    with pytest.raises(SciMLError, match="forcing is not periodic") as error:
        integrate_vorticity(smooth_vorticity(1, 32, 1.0), dt=1e-3, n_steps=1, nu=1e-3, forcing=ramp[0].T)
    one_line(error)
    with pytest.raises(SciMLError, match="n x n grid") as error:
        integrate_vorticity(torch.zeros(1, 16, 8, dtype=torch.float64), dt=1e-3, n_steps=1, nu=1e-3)
    one_line(error)
    # periodic fields pass, including rough ones with their largest jump across the boundary
    rough = torch.as_tensor(periodic_gaussian_random_field((32, 32), alpha=1.1, tau=3.0, rng=0))
    steepest = int(rough.diff(dim=0).abs().amax(dim=1).argmax())  # rows steepest, steepest + 1 ...
    ns.check_periodic(torch.roll(rough, shifts=31 - steepest, dims=0))  # ... become rows 31 and 0


# ----------------------------------------------------------------------------- the constraint


def test_constraint_residual_of_a_solver_trajectory_is_small():
    n, nu, dt = 32, 1e-2, 2.5e-3
    w0, forcing = smooth_vorticity(2, n, 3.0), fno_forcing(n)
    w = integrate_vorticity(w0, dt=dt, n_steps=40, nu=nu, forcing=forcing, record_every=4)["w"]
    constraint = NavierStokesConstraint(n_frames=w.shape[1], resolution=n, frame_dt=4 * dt, nu=nu, forcing=forcing)
    residual = constraint.residual_on_grid(w, {"initial": w[:, 0]})
    w_t = torch.gradient(w, spacing=4 * dt, dim=1, edge_order=2)[0]
    assert float(residual.abs().max() / w_t.abs().max()) < 5e-3
    spectral = vorticity_residual(w, frame_dt=4 * dt, nu=nu, forcing=forcing)  # differs only by aliasing
    assert torch.allclose(residual, spectral, atol=1e-6 * float(w_t.abs().max()))

    derivatives = constraint.derivatives(w)
    assert set(derivatives) == set(constraint.derivative_names)
    u, v = velocity(w)
    assert torch.allclose(derivatives["psi_y"], u, atol=1e-12) and torch.allclose(-derivatives["psi_x"], v, atol=1e-12)
    assert torch.allclose(derivatives["lap_w"], laplacian(w), atol=1e-9)
    other = torch.randn(w.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    combined, of_other = constraint.derivatives(2 * w + other), constraint.derivatives(other)  # linear in w
    for name in constraint.derivative_names:
        assert torch.allclose(combined[name], 2 * derivatives[name] + of_other[name], atol=1e-9)

    index = constraint.condition_index()
    values = {k: v.flatten(1)[:, (index[:, 0] * n + index[:, 1]) * n + index[:, 2]] for k, v in derivatives.items()}
    assert float(constraint.condition_residual(values, {"initial": w[:, 0]}, index).abs().max()) == 0.0
    shifted = constraint.condition_residual(values, {"initial": w[:, 0] + 1}, index)
    assert torch.allclose(shifted, -torch.ones_like(shifted))


# ----------------------------------------------------------------------------- initial data and generation


def test_periodic_grf_has_the_fno_covariance():
    n, alpha, tau = 16, 2.5, 7.0
    samples = np.stack([periodic_gaussian_random_field((n, n), alpha, tau, rng=i) for i in range(400)])
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    eigenvalues = (4 * math.pi**2 * k2 + tau**2) ** (-alpha)
    eigenvalues[0, 0] = 0.0
    variance = 2 * tau ** (2 * alpha - 2) * eigenvalues.sum()  # 2 sigma^2 sum_k lambda_k, sigma = tau^(alpha - 1)
    assert samples.var() == pytest.approx(variance, rel=0.1)
    assert np.allclose(periodic_gaussian_random_field((n, n), alpha, tau, rng=3), samples[3])
    scaled = periodic_gaussian_random_field((n, n), alpha, tau, rng=3, std=0.5)   # same draws, pointwise std 0.5
    assert np.allclose(scaled, samples[3] * 0.5 / math.sqrt(variance), rtol=1e-12, atol=0)
    with pytest.raises(SciMLError, match="sigma or as std"):
        periodic_gaussian_random_field((n, n), alpha, tau, rng=3, sigma=1.0, std=0.5)


def test_mcwilliams_initial_energy_and_spectrum_peak():
    w = torch.as_tensor(mcwilliams_vorticity(64, rng=0, peak_wavenumber=6.0, energy=0.5))
    u, v = velocity(w)
    assert float((u**2 + v**2).mean() / 2) == pytest.approx(0.5, rel=1e-12)
    c = torch.fft.fft2(w, norm="forward").abs() ** 2
    k = torch.fft.fftfreq(64, 1 / 64)
    shell = (k[:, None] ** 2 + k[None, :] ** 2).sqrt().round().long()
    spectrum = torch.zeros(int(shell.max()) + 1, dtype=torch.float64).index_add_(0, shell.flatten(), c.flatten())
    energy_spectrum = spectrum[1:] / (2 * math.pi * torch.arange(1, len(spectrum))) ** 2
    assert 3 <= int(energy_spectrum.argmax()) + 1 <= 8


def test_generate_trajectories_shapes_attrs_and_reproducibility():
    config = fno_forced_flow(final_time=0.2, frame_dt=0.1, resolution=16, store_resolution=8, dt=0.025)
    arrays, attrs = generate_trajectories(config, n_samples=3, seed=5, batch_size=2)
    assert arrays["w"].shape == arrays["psi"].shape == (3, 3, 8, 8) and arrays["f"].shape == (8, 8)
    assert attrs["frame_dt"] == 0.1 and attrs["nu"] == 1e-3 and attrs["t0"] == 0.0 and attrs["seed"] == 5
    assert np.allclose(arrays["f"], fno_forcing(8).numpy(), atol=1e-15)
    assert np.allclose(arrays["psi"], stream_function(torch.as_tensor(arrays["w"])).numpy(), atol=1e-12)
    again, _ = generate_trajectories(config, n_samples=2, seed=5, batch_size=1)
    assert np.array_equal(again["w"], arrays["w"][:2])
    assert attrs["seeds"] == [sample_seed(5, i) for i in range(3)]
    w0 = config.initial_vorticity(np.random.default_rng(sample_seed(5, 2)))
    assert np.allclose(arrays["w"][2, 0], resample(torch.as_tensor(w0), (8, 8)).numpy(), atol=1e-12)
    other, _ = generate_trajectories(config, n_samples=1, seed=6)
    assert not np.allclose(other["w"][0], arrays["w"][0])


def test_generation_after_warmup_continues_the_solver_run():
    config = mcwilliams_decaying(resolution=16, store_resolution=8, warmup_time=0.05, final_time=0.15, n_frames=3,
                                 dt=0.01)
    arrays, attrs = generate_trajectories(config, n_samples=2, seed=1, dtype=torch.float32)
    assert attrs["t0"] == 0.05 and attrs["frame_dt"] == 0.05 and arrays["w"].dtype == np.float32
    assert not arrays["f"].any()
    rngs = [np.random.default_rng(sample_seed(1, i)) for i in range(2)]
    w0 = torch.as_tensor(np.stack([config.initial_vorticity(rng) for rng in rngs]))
    direct = integrate_vorticity(w0, dt=0.01, n_steps=15, nu=config.nu, record_every=5, out_resolution=8)
    assert np.allclose(arrays["w"], direct["w"][:, 1:].numpy(), atol=1e-4 * float(direct["w"].abs().max()))


def test_presets_and_bad_configs():
    assert fno_forced_flow().steps() == (0, 1000) and fno_forced_flow().n_frames == 51
    assert mcwilliams_decaying().steps() == (4500, 55)
    with pytest.raises(SciMLError, match="whole number of time steps"):
        fno_forced_flow(frame_dt=0.25, dt=0.1)
    with pytest.raises(SciMLError, match="initial"):
        ns.NavierStokesConfig(name="x", nu=1e-3, dt=1e-3, frame_dt=1e-2, n_frames=3, initial="gaussian")
    with pytest.raises(SciMLError, match="n_steps"):
        integrate_vorticity(smooth_vorticity(1, 16, 1.0), dt=1e-3, n_steps=5, nu=1e-3, record_every=2)
    assert max_velocity(torch.zeros(2, 8, 8, dtype=torch.float64)).tolist() == [0.0, 0.0]
    assert gradient(torch.zeros(8, 8, dtype=torch.float64))[0].shape == (8, 8)


# ----------------------------------------------------------------------------- the registered generator


def test_generator_writes_what_generate_trajectories_returns(tmp_path):
    settings = dict(final_time=0.2, frame_dt=0.1, resolution=16, store_resolution=8, dt=0.025)
    arrays, attrs = generate_trajectories(fno_forced_flow(**settings), n_samples=3, seed=4, batch_size=2)
    generator = NavierStokes(**settings)
    data = read_trajectories(simulate_dataset(generator, 3, tmp_path / "ns.nc", seed=4, batch_size=2))
    for name in ("w", "psi"):
        assert np.array_equal(data.fields[name], arrays[name].astype(np.float32))
    assert data.seeds.tolist() == attrs["seeds"]
    assert np.allclose(data.coords["time"], [0.0, 0.1, 0.2], rtol=0, atol=1e-15)
    assert np.array_equal(data.coords["x"], np.arange(8) / 8) and np.array_equal(data.coords["y"], data.coords["x"])
    assert data.attrs["pde_parameters"] == {"preset": "forced", "dtype": "float64", "nu": 1e-3, "warmup_time": 0.0,
                                            **settings}
    assert NavierStokes(**data.attrs["pde_parameters"]).config == generator.config
    settings_from_file = residual_settings(data.metadata)
    assert np.array_equal(settings_from_file["forcing"].numpy(), arrays["f"])
    assert (settings_from_file["frame_dt"], settings_from_file["nu"], settings_from_file["drag"]) == \
        (attrs["frame_dt"], attrs["nu"], attrs["drag"])


def test_generator_settings_are_checked():
    with pytest.raises(SciMLError, match=r"unknown navier-stokes setting\(s\) \['n_frames'\] for preset 'forced'; "
                                         r"valid: preset, dtype, nu, final_time, frame_dt") as error:
        NavierStokes(n_frames=3)
    one_line(error)
    with pytest.raises(SciMLError, match="unknown navier-stokes preset 'kolmogorov'") as error:
        NavierStokes(preset="kolmogorov")
    one_line(error)
    with pytest.raises(SciMLError, match="final_time must be a number, got 'long'") as error:
        NavierStokes(final_time="long")
    one_line(error)
    decaying = NavierStokes(preset="decaying", dtype="float32", n_frames=3, warmup_time=0.0, final_time=0.1,
                            resolution=16, store_resolution=8, dt=0.01)
    assert decaying.metadata()["forcing"] is None and decaying.metadata()["forcing_formula"] == "none"
    out = decaying.simulate([3])
    assert out["w"].dtype == np.float32 and out["w"].shape == (1, 3, 8, 8)


def test_generator_refuses_an_unstable_step_and_names_a_diverging_sample(monkeypatch):
    settings = dict(preset="decaying", resolution=16, store_resolution=8, warmup_time=0.0, n_frames=3)
    with pytest.raises(SciMLError, match="unstable for mcwilliams-decaying") as error:
        NavierStokes(final_time=0.5, dt=0.25, **settings).simulate([7, 8])
    b, seed = (int(i) for i in re.search(r"\(sample (\d) of this batch \(seed (\d)\),", one_line(error)).groups())
    assert seed == [7, 8][b]
    monkeypatch.setattr(ns, "CFL_LIMIT", 1e9)
    with pytest.raises(SimulationDiverged) as error:
        NavierStokes(final_time=40.0, dt=1.0, **settings).simulate([7, 8])
    message = one_line(error)
    b = error.value.sample
    assert f"sample {b} of this batch (seed {[7, 8][b]}) diverged at step {error.value.step} " in message
