"""MLS-MPM simulator, materials and random particle scenes: conservation, free fall,
qualitative material behaviour, bad input and instability reports."""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from sciml.datasets.mpm import MPMInstabilityError, MPMSimulator
from sciml.datasets.mpm_materials import DruckerPragerSand, VonMisesPlastic, get_material
from sciml.datasets.particle_scenes import PARTICLE_TYPES, SceneConfig, simulate_scenes
from sciml.errors import SciMLError, UnknownNameError
from sciml.models.gns import check_particles

F64 = torch.float64
ALL = ["fluid", "elastic", "sand", "plastic"]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def close(actual, expected, rtol, atol):
    np.testing.assert_allclose(actual.numpy(), expected.numpy(), rtol=rtol, atol=atol)


def block(lo, hi, spacing):
    """Lattice points filling the box [lo, hi] (per-axis sequences), cell-centred."""
    axes = [a + (np.arange(int((b - a) / spacing + 1e-9)) + 0.5) * spacing for a, b in zip(lo, hi)]
    return torch.tensor(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(lo)), dtype=F64)


def random_particles(sim, n_per_scene, seed, materials=None, speed=0.5):
    """Ragged random particles of several scenes, in the middle of the domain, with random v and C."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = sim.bounds[0]
    scene = torch.cat([torch.full((n,), s) for s, n in enumerate(n_per_scene)])
    n = len(scene)
    x = lo + 0.1 + (hi - lo - 0.2) * torch.rand(n, sim.dim, generator=g, dtype=F64)
    v = speed * (2 * torch.rand(n, sim.dim, generator=g, dtype=F64) - 1)
    material = torch.randint(len(sim.materials), (n,), generator=g) if materials is None else materials
    p = sim.make_particles(x, material, volume=(sim.dx / 2) ** sim.dim * (1 + torch.rand(n, generator=g, dtype=F64)),
                           v=v, scene=scene)
    C = 5.0 * torch.randn(n, sim.dim, sim.dim, generator=g, dtype=F64)
    return p, C


def grid_positions(sim):
    return torch.stack(torch.meshgrid(*[torch.arange(m, dtype=F64) for m in sim.grid_shape], indexing="ij"),
                       -1) * sim.dx


def wedge(x, v, m):
    """Angular momentum as the antisymmetric tensor sum m (x v^T - v x^T), any dimension."""
    outer = torch.einsum("...a,...b->...ab", m[..., None] * x, v)
    return (outer - outer.transpose(-1, -2)).reshape(-1, x.shape[-1], x.shape[-1]).sum(0)


# -- conservation -------------------------------------------------------------------
@pytest.mark.parametrize("dim", [2, 3])
def test_particle_to_grid_conserves_mass_and_momentum(dim):
    sim = MPMSimulator(dim, 12, ALL, 1e-5, gravity=0.0, boundary="none", dtype=F64)
    p, C = random_particles(sim, [40, 7, 25], seed=1)
    p = replace(p, C=C)
    _, _, tau = sim.stress(p)
    mass, momentum = sim.particle_to_grid(p, tau)
    assert mass.shape == (3, *sim.grid_shape) and momentum.shape == (3, *sim.grid_shape, dim)
    particle_mass = torch.zeros(3, dtype=F64).index_add_(0, p.scene, p.mass)
    close(mass.flatten(1).sum(1), particle_mass, rtol=1e-13, atol=0)
    close(momentum.flatten(1, -2).sum(1), p.momentum(), rtol=1e-12, atol=1e-15)


def test_steps_conserve_momentum_in_free_space():
    """No gravity, no walls: every step keeps each scene's momentum, stresses and all."""
    sim = MPMSimulator(2, 24, ALL, 1e-4, gravity=0.0, boundary="none", dtype=F64)
    p, _ = random_particles(sim, [60, 30], seed=2)
    before = p.momentum()
    p = sim.run(p, 20)
    assert not torch.equal(p.F, torch.eye(2).expand_as(p.F).to(F64))  # stresses did act
    close(p.momentum(), before, rtol=1e-11, atol=1e-14)


def test_apic_transfers_conserve_angular_momentum():
    sim = MPMSimulator(2, 16, ["elastic"], 1e-4, gravity=0.0, boundary="none", dtype=F64)
    p, C = random_particles(sim, [50], seed=3)
    p = replace(p, C=C)
    D = sim.dx ** 2 / 4  # the quadratic B-spline's inertia-like tensor is D I
    affine = p.mass[:, None, None] * D * (C.transpose(1, 2) - C)
    particle_L = wedge(p.x, p.v, p.mass) + affine.sum(0)
    mass, momentum = sim.particle_to_grid(p)
    grid_v = momentum / torch.where(mass > 0, mass, torch.ones_like(mass))[..., None]
    grid_L = wedge(grid_positions(sim), grid_v, mass[0])
    close(grid_L, particle_L, rtol=1e-11, atol=1e-15)
    v, C_new = sim.grid_to_particle(p, grid_v)
    after = wedge(p.x, v, p.mass) + (p.mass[:, None, None] * D * (C_new.transpose(1, 2) - C_new)).sum(0)
    close(after, grid_L, rtol=1e-11, atol=1e-15)


@pytest.mark.parametrize("dim,resolution,n_steps", [(2, 32, 60), (3, 12, 15)])
def test_elastic_block_free_fall(dim, resolution, n_steps):
    dt = 2e-4
    sim = MPMSimulator(dim, resolution, ["elastic"], dt, dtype=F64)
    x = block([0.4] * dim, [0.55] * (dim - 1) + [0.75], sim.dx / 2)
    p = sim.make_particles(x, torch.zeros(len(x), dtype=torch.long), volume=(sim.dx / 2) ** dim)
    end = sim.run(p, n_steps)
    fall = (end.x - p.x)[:, -1]
    t = n_steps * dt
    # symplectic Euler exactly: -g dt^2 n (n + 1) / 2 = -g t^2 / 2 - g t dt / 2
    close(fall, torch.full_like(fall, -9.81 * dt ** 2 * n_steps * (n_steps + 1) / 2),
                               rtol=1e-10, atol=1e-13)
    assert abs(float(fall.mean()) + 9.81 * t ** 2 / 2) <= 9.81 * t * dt / 2 * (1 + 1e-9)
    close(end.x[:, :-1], p.x[:, :-1], rtol=0, atol=1e-13)  # no sideways motion
    close(end.F, p.F, rtol=0, atol=1e-12)  # no deformation before contact


# -- materials -------------------------------------------------------------------------
def drop(material, lo, hi, v=(0.0, 0.0), **settings):
    """A 2-D block of ``material`` in [lo, hi] on a 16^2 grid with dt = 1e-3 (a soft material: cfl <= 0.2)."""
    sim = MPMSimulator(2, 16, [(material, settings)], 1e-3, dtype=F64)
    x = block(lo, hi, sim.dx / 2)
    p = sim.make_particles(x, torch.zeros(len(x), dtype=torch.long), volume=(sim.dx / 2) ** 2,
                           v=torch.tensor([v], dtype=F64).expand_as(x))
    return sim, p


def extent(p):
    return (p.x.max(0).values - p.x.min(0).values).numpy()


def test_fluid_column_collapses_further_than_sand():
    wall = 3 / 16
    fluid_sim, fluid = drop("fluid", [wall, wall], [wall + 0.22, wall + 0.35], bulk_modulus=1e5)
    sand_sim, sand = drop("sand", [wall, wall], [wall + 0.22, wall + 0.35], E=1e5)
    (w0, h0) = extent(fluid)
    fluid, sand = fluid_sim.run(fluid, 250), sand_sim.run(sand, 250)
    (wf, hf), (ws, hs) = extent(fluid), extent(sand)
    assert hf < 0.95 * h0 and wf > 2.5 * w0  # the water column collapses and runs out ...
    assert hs < 0.95 * h0 and ws > 1.5 * w0  # ... so does the sand ...
    assert ws < 0.85 * wf  # ... but not as far: friction holds it back
    assert float(sand.plastic.max()) > 0 and float(fluid.plastic.abs().max()) == 0.0


def test_elastic_block_bounces_and_keeps_its_shape():
    wall = 3 / 16
    sim, p = drop("elastic", [0.35, wall + 0.05], [0.6, wall + 0.25], E=1e5)
    shape = extent(p)
    centre_velocity = []
    for _ in range(40):
        p = sim.run(p, 5)
        centre_velocity.append(float((p.mass * p.v[:, 1]).sum() / p.mass.sum()))
    lowest = int(np.argmin(centre_velocity))
    assert centre_velocity[lowest] < -0.5 and max(centre_velocity[lowest:]) > 0.3  # it hit the floor and bounced
    np.testing.assert_allclose(extent(p), shape, rtol=0.1)


def test_plastic_block_deforms_permanently_where_elastic_recovers():
    wall = 3 / 16
    widths = {}
    for material, settings in (("plastic", {"yield_stress": 2e3}), ("elastic", {})):
        sim, p = drop(material, [0.4, wall + 0.05], [0.6, wall + 0.25], v=(0.0, -3.0), E=1e5, **settings)
        widths[material] = extent(sim.run(p, 160))[0] / extent(p)[0]
    assert widths["plastic"] > 1.5 and abs(widths["elastic"] - 1) < 0.1


def test_wall_friction_per_material_slows_a_sliding_block():
    """Coulomb's law in impulse form: while a block slides, the floor takes mu times the normal impulse
    (m g t plus the gain in upward momentum) off its tangential momentum; mu = 0 slides freely."""
    sim = MPMSimulator(2, 16, [("elastic", {"E": 1e5}), ("elastic", {"E": 1e5})], 1e-3, friction=[0.4, 0.0],
                       dtype=F64)
    wall = 3 / 16
    x = block([0.3, wall], [0.5, wall + 0.1], sim.dx / 2)
    n = len(x)
    p = sim.make_particles(torch.cat([x, x]), [0] * n + [1] * n, volume=(sim.dx / 2) ** 2,
                           v=torch.tensor([[1.0, 0.0]], dtype=F64).expand(2 * n, 2), scene=[0] * n + [1] * n)
    p = sim.run(p, 100)
    (vx, vy), (free, _) = (p.momentum() / p.mass[:n].sum()).tolist()
    assert free == pytest.approx(1.0, abs=1e-12)
    assert 0.3 < 1.0 - vx == pytest.approx(0.4 * (vy + 9.81 * 0.1), abs=1e-10)


def test_sand_return_mapping_lands_on_the_cone():
    sand = DruckerPragerSand(E=1e4, nu=0.3, h1=0.0, h3=0.0, h0=30.0)
    g = torch.Generator().manual_seed(4)
    F = torch.linalg.matrix_exp(0.1 * torch.randn(200, 3, 3, generator=g, dtype=F64))
    q = torch.zeros(200, dtype=F64)
    F_new, q_new, tau = sand.stress_update(F, q)
    dev = tau - tau.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] / 3 * torch.eye(3, dtype=F64)
    alpha = float(sand.friction_coefficient(q)[0])
    yield_value = torch.linalg.matrix_norm(dev) + alpha * tau.diagonal(dim1=1, dim2=2).sum(-1)
    assert float(yield_value.max()) < 1e-9  # inside or on the cone everywhere
    projected = q_new > 0
    assert 0 < int(projected.sum()) < 200
    assert float(yield_value[projected].abs().max()) < 1e-9 * float(tau.abs().max())
    # a projected particle's stress is unchanged by projecting again
    close(sand.stress_update(F_new, q)[2], tau, rtol=1e-9, atol=1e-9)


def test_von_mises_return_mapping_caps_the_deviatoric_stress():
    material = VonMisesPlastic(E=1e4, nu=0.3, yield_stress=50.0)
    g = torch.Generator().manual_seed(5)
    F = torch.linalg.matrix_exp(0.05 * torch.randn(100, 2, 2, generator=g, dtype=F64))
    F_new, q, tau = material.stress_update(F, torch.zeros(100, dtype=F64))
    dev = tau - tau.diagonal(dim1=1, dim2=2).sum(-1)[:, None, None] / 2 * torch.eye(2, dtype=F64)
    von_mises = math.sqrt(1.5) * torch.linalg.matrix_norm(dev)
    assert float(von_mises.max()) <= 50.0 * (1 + 1e-9)
    yielded = q > 0
    assert 0 < int(yielded.sum()) < 100
    close(von_mises[yielded], torch.full_like(von_mises[yielded], 50.0), rtol=1e-9, atol=0)
    close(torch.linalg.det(F_new), torch.linalg.det(F), rtol=1e-12, atol=0)  # volume is kept


@pytest.mark.parametrize("dim,resolution", [(2, 16), (3, 10)])
def test_every_material_runs_in_a_mixed_batch(dim, resolution):
    sim = MPMSimulator(dim, resolution, ALL, 2e-4)
    p, _ = random_particles(sim, [30, 30, 30, 30], seed=6, materials=torch.arange(120) // 30, speed=0.2)
    p = sim.run(p, 20)
    assert p.x.dtype == torch.float32
    for field in (p.x, p.v, p.C, p.F, p.plastic):
        assert bool(torch.isfinite(field).all())
    assert get_material(get_material("sand").config()).config() == get_material("sand").config()


def test_sticky_floor_holds_what_touches_it():
    wall = 3 / 16
    x = block([0.3, wall], [0.5, wall + 0.1], 1 / 32)
    speeds = {}
    for boundary in ("sticky", "slip"):
        sim = MPMSimulator(2, 16, [("elastic", {"E": 1e5})], 1e-3, boundary=boundary, dtype=F64)
        p = sim.make_particles(x, [0] * len(x), volume=(1 / 32) ** 2, v=torch.tensor([[1.0, 0.0]]).expand_as(x))
        speeds[boundary] = float(sim.run(p, 50).momentum()[0, 0] / p.mass.sum())
    assert speeds["slip"] == pytest.approx(1.0, abs=1e-12) and speeds["sticky"] < 0.7


# -- bad input and instability ---------------------------------------------------------------
def test_particles_outside_the_bounds_are_refused():
    sim = MPMSimulator(2, 16, ["fluid"], 1e-4)
    with pytest.raises(SciMLError, match=r"1 MPM particle\(s\) lie outside the domain bounds .*scene 1"):
        sim.make_particles(torch.tensor([[0.5, 0.5], [0.5, 0.05]]), [0, 0], volume=1e-3, scene=[0, 1])


def test_unstable_time_step_and_bad_settings_are_refused():
    with pytest.raises(SciMLError, match=r"dt \* c / dx = .* > max_cfl = 0.3 for material 'elastic'.*use dt <="):
        MPMSimulator(2, 64, ["fluid", "elastic"], 1e-3)
    sim = MPMSimulator(2, 16, ["fluid"], 2e-4)
    with pytest.raises(SciMLError, match="initial speeds"):
        sim.make_particles(torch.full((1, 2), 0.5), [0], volume=1e-3, v=[[300.0, 0.0]])
    with pytest.raises(UnknownNameError, match="unknown MPM material 'jelly'; choose one of: elastic, fluid"):
        MPMSimulator(2, 16, ["jelly"], 1e-4)
    with pytest.raises(SciMLError, match="nu must be in"):
        get_material(("elastic", {"nu": 0.5}))
    with pytest.raises(SciMLError, match="valid settings are"):
        get_material(("sand", {"friction": 30}))
    with pytest.raises(SciMLError, match="material indices"):
        sim.make_particles(torch.full((1, 2), 0.5), [1], volume=1e-3)
    with pytest.raises(SciMLError, match="boundary"):
        MPMSimulator(2, 16, ["fluid"], 1e-4, boundary="periodic")


def test_instability_reports_step_scene_and_material():
    """A stiff solid with a time step far above its limit blows up; a soft fluid beside it does not."""
    sim = MPMSimulator(2, 16, ["fluid", ("elastic", {"E": 1e9})], 1e-4, max_cfl=100.0)
    a, b = block([0.3, 0.3], [0.5, 0.5], sim.dx / 2), block([0.5, 0.5], [0.7, 0.7], sim.dx / 2)
    shake = 0.1 * torch.randn(len(b), 2, dtype=F64, generator=torch.Generator().manual_seed(8))
    p = sim.make_particles(torch.cat([a, b]), [0] * len(a) + [1] * len(b), volume=(sim.dx / 2) ** 2,
                           v=torch.cat([torch.zeros_like(a), shake]), scene=[0] * len(a) + [1] * len(b),
                           scene_offset=10)
    with pytest.raises(MPMInstabilityError, match=r"unstable at step \d+: .*material 'elastic', scene 11") as err:
        sim.run(p, 200)
    assert err.value.material == "elastic" and err.value.scene == 11 and 0 < err.value.step < 200


def test_nan_stress_and_escaping_particles_are_reported():
    sim = MPMSimulator(2, 16, ["fluid", "elastic"], 1e-4, boundary="none", gravity=0.0)
    x = torch.tensor([[0.5, 0.5], [0.3, 0.3], [0.8, 0.5]])
    p = sim.make_particles(x, [0, 1, 0], volume=1e-3, v=[[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]], scene=[0, 1, 2])
    inverted = replace(p, F=torch.diag_embed(torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, 1.0]])))
    with pytest.raises(MPMInstabilityError, match="step 7: non-finite deformation gradient or stress .*'elastic', "
                                                  "scene 1"):
        sim.step(inverted, step=7)
    with pytest.raises(MPMInstabilityError, match="particle left the grid .*particle 2, material 'fluid', scene 2"):
        sim.run(p, 400)


# -- random scenes ----------------------------------------------------------------------------
def test_simulate_scenes_shapes_metadata_and_statistics():
    config = SceneConfig(resolution=16, n_boxes=(1, 2), max_speed=0.5, batch_size=2, mixed=True,
                         materials=("fluid", "elastic", {"name": "sand", "E": 1e5}))
    data = simulate_scenes(config, n_scenes=3, n_frames=4, substeps=None, seed=7)
    md = data.metadata
    assert len(data.positions) == len(data.particle_type) == 3
    counts = [len(t) for t in data.particle_type]
    assert len(set(counts)) > 1  # ragged
    for pos, types, material in zip(data.positions, data.particle_type, data.material):
        assert pos.shape == (4, len(types), 2) and pos.dtype == np.float32
        assert set(types.tolist()) <= {PARTICLE_TYPES[m] for m in ("fluid", "elastic", "sand")}
        np.testing.assert_array_equal(types, np.array([PARTICLE_TYPES[md["materials"][m]["name"]] for m in material]))
        lo, hi = md["walls"][0]  # boxes start between the walls
        assert (pos[0] >= lo).all() and (pos[0] <= hi).all()
    for key in ("bounds", "sequence_length", "default_connectivity_radius", "dim", "dt",
                "vel_mean", "vel_std", "acc_mean", "acc_std"):
        assert key in md
    assert md["sequence_length"] == 4 and md["dim"] == 2 and md["dt"] == 2.5e-3
    vel = np.concatenate([np.diff(p.astype(np.float64), axis=0).reshape(-1, 2) for p in data.positions])
    acc = np.concatenate([np.diff(p.astype(np.float64), n=2, axis=0).reshape(-1, 2) for p in data.positions])
    np.testing.assert_allclose(md["vel_mean"], vel.mean(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(md["vel_std"], vel.std(0), rtol=1e-10)
    np.testing.assert_allclose(md["acc_mean"], acc.mean(0), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(md["acc_std"], acc.std(0), rtol=1e-10)
    # a scene depends on (seed, index) only, not on the batching
    one = simulate_scenes({**config.to_dict(), "batch_size": 1}, n_scenes=3, n_frames=4, substeps=md["substeps"],
                          seed=7)
    for a, b in zip(one.positions, data.positions):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_scenes_stay_within_the_metadata_bounds_though_they_sink_past_the_walls():
    """Fast water thrown at the floor sinks into the wall padding; every frame stays in metadata bounds,
    which the particle models accept as they are."""
    config = SceneConfig(resolution=16, materials=("fluid",), n_boxes=(1, 1), box_size=(0.3, 0.4), max_speed=2.0,
                         gravity=20.0, batch_size=2)
    data = simulate_scenes(config, n_scenes=2, n_frames=20, substeps=None, seed=4)
    md = data.metadata
    dx = md["dx"]
    assert md["bounds"] == [[dx, 1.0 - dx]] * 2 and md["walls"] == [[3 * dx, 1.0 - 3 * dx]] * 2
    every = np.concatenate([p.reshape(-1, 2) for p in data.positions])
    assert every.min() >= dx and every.max() <= 1.0 - dx
    assert every.min() < md["walls"][0][0]  # past the floor: the walls would not do as bounds
    for pos, types in zip(data.positions, data.particle_type):
        check_particles(torch.as_tensor(pos).transpose(0, 1), torch.as_tensor(types), md["bounds"], dim=2,
                        length=len(pos), n_types=9)


def test_simulate_scenes_refuses_bad_settings():
    with pytest.raises(SciMLError, match=r"substeps=1 gives an unstable MPM step .* use substeps >= \d+"):
        simulate_scenes(SceneConfig(resolution=16), n_scenes=1, n_frames=3, substeps=1, seed=0)
    with pytest.raises(SciMLError, match="unknown scene setting 'boxes'"):
        simulate_scenes({"boxes": 3}, n_scenes=1, n_frames=3, substeps=None, seed=0)
    with pytest.raises(SciMLError, match="n_frames must be an integer >= 3"):
        simulate_scenes(None, n_scenes=1, n_frames=2, substeps=None, seed=0)
    with pytest.raises(SciMLError, match="box_size"):
        SceneConfig(resolution=16, box_size=(0.1, 0.9))
