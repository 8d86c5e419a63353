"""The particle models: GNS (full graph) and GIOROM (sparse graph + latent grid + query decoder)."""

import math

import pytest
import torch

from sciml.errors import SciMLError
import sciml.models.giorom as giorom_module
from sciml.models.giorom import GIOROM
from sciml.models.gns import GNS, compute_normalization, random_walk_noise
from sciml.models.interaction_network import aggregate
from sciml.models.neighbours import isolated, knn_neighbours, radius_graph, radius_neighbours

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BOUNDS = [[0.0, 1.0], [0.0, 1.0]]
STATS = {"vel_mean": 0.0, "vel_std": 0.01, "acc_mean": 0.0, "acc_std": 1e-3}


def histories(n, dim=2, steps=6, seed=0, centre=0.5, spread=0.2):
    """Random walks of ``n`` particles, ``(n, steps, dim)``, float64, well inside the unit box."""
    g = torch.Generator().manual_seed(seed)
    start = centre + spread * (2 * torch.rand(n, 1, dim, generator=g, dtype=torch.float64) - 1)
    return start + 0.003 * torch.randn(n, steps, dim, generator=g, dtype=torch.float64).cumsum(1)


def small_gns(**kw):
    torch.manual_seed(0)
    return GNS(**{"radius": 0.12, "hidden": 16, "n_message_passing": 2, "normalization": STATS, **kw}).double()


def small_giorom(**kw):
    torch.manual_seed(0)
    options = {"radius": 0.2, "hidden": 16, "n_message_passing": 1, "sample_ratio": 0.3, "latent_resolution": 5,
               "heads": 2, "kernel_hidden": 16, "normalization": STATS, **kw}
    return GIOROM(**options).double()


def rotation(n, steps, g, omega=0.05):
    """Rigid rotation of a disc of particles about a random centre, ``(n, steps, 2)``."""
    centre = 0.45 + 0.1 * torch.rand(2, generator=g, dtype=torch.float64)
    r = 0.25 * torch.rand(n, generator=g, dtype=torch.float64).sqrt()
    angle = 2 * math.pi * torch.rand(n, 1, generator=g, dtype=torch.float64) + omega * torch.arange(steps)
    return centre + r[:, None, None] * torch.stack([angle.cos(), angle.sin()], dim=-1)


# ----------------------------------------------------------------------------------- GNS


@pytest.mark.parametrize("dim", [2, 3])
def test_gns_shapes_and_rebuild_from_config(dim):
    model = small_gns(dim=dim)
    x = histories(40, dim)
    types = torch.zeros(40, dtype=torch.long)
    bounds = [[0.0, 1.0]] * dim
    assert model.step(x, types, bounds).shape == (40, dim)
    assert model.rollout(x, types, bounds, n_steps=3).shape == (40, 3, dim)
    twin = GNS(**model.config).double()
    twin.load_state_dict(model.state_dict())
    assert torch.equal(twin.step(x, types, bounds), model.step(x, types, bounds))


def test_gns_is_permutation_equivariant():
    model = small_gns()
    x = histories(50)
    types = torch.randint(0, 2, (50,), generator=torch.Generator().manual_seed(1))
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(2))
    out = model.accelerations(x, types, BOUNDS)
    assert torch.allclose(model.accelerations(x[perm], types[perm], BOUNDS), out[perm], atol=1e-12)


def test_gns_is_translation_invariant_away_from_walls():
    model = small_gns()
    x = histories(50, spread=0.15)  # all particles farther than the radius from the walls
    types = torch.zeros(50, dtype=torch.long)
    shift = torch.tensor([0.07, -0.05], dtype=torch.float64)
    out = model.accelerations(x, types, BOUNDS)
    assert torch.allclose(model.accelerations(x + shift, types, BOUNDS), out, atol=1e-12)
    near_wall = x + torch.tensor([0.3, 0.0], dtype=torch.float64)
    assert not torch.allclose(model.accelerations(near_wall, types, BOUNDS), out, atol=1e-6)


def test_scenes_in_a_batch_do_not_interact():
    a, b = histories(30, seed=1), histories(25, seed=2)
    types = torch.zeros(55, dtype=torch.long)
    batch = torch.tensor([0] * 30 + [1] * 25)
    bounds = torch.tensor(BOUNDS, dtype=torch.float64)
    for model in (small_gns(), small_giorom()):
        both = model(torch.cat([a, b]), types, bounds, batch)
        assert torch.allclose(both[:30], model(a, types[:30], bounds), atol=1e-12)
        assert torch.allclose(both[30:], model(b, types[30:], bounds), atol=1e-12)


def test_kinematic_particles_follow_their_prescribed_path():
    model = small_gns()
    x = histories(20)
    types = torch.tensor([3] * 4 + [0] * 16)
    path = x[:, -1:].repeat(1, 3, 1) + 0.001 * torch.arange(1, 4, dtype=torch.float64)[None, :, None]
    out = model.rollout(x, types, BOUNDS, n_steps=3, kinematic_positions=path)
    assert torch.equal(out[:4], path[:4])
    assert torch.equal(model.rollout(x, types, BOUNDS, n_steps=2)[:4], x[:4, -1:].repeat(1, 2, 1))


# ----------------------------------------------------------------------------------- noise, normalisation


def test_random_walk_noise_statistics():
    noise = random_walk_noise(torch.zeros(20000, 6, 2, dtype=torch.float64), 0.1, torch.Generator().manual_seed(0))
    velocity_noise = noise.diff(dim=1)
    assert torch.equal(noise[:, 0], torch.zeros(20000, 2, dtype=torch.float64))
    stds = velocity_noise.std(dim=(0, 2))
    assert torch.allclose(stds, 0.1 * torch.sqrt(torch.arange(1, 6) / 5.0).double(), rtol=0.03)


def test_noisy_targets_undo_the_noise_of_the_last_velocity():
    model = small_gns()
    x = histories(30, steps=7)
    types = torch.zeros(30, dtype=torch.long)
    noisy, target = model.noisy_targets(x, types, 0.01, torch.Generator().manual_seed(3))
    noise = random_walk_noise(x[:, :-1], 0.01, torch.Generator().manual_seed(3))
    assert torch.allclose(noisy, x[:, :-1] + noise)
    acceleration = target * 1e-3
    true_next_velocity = x[:, -1] - x[:, -2]
    assert torch.allclose(acceleration, true_next_velocity - (noisy[:, -1] - noisy[:, -2]), atol=1e-14)


def test_compute_normalization():
    t = torch.arange(5.0, dtype=torch.float64)[None, :, None, None]
    x = torch.cat([0.5 * t ** 2 + torch.zeros(2, 1, 3, 1), 0.1 * t + torch.zeros(2, 1, 3, 1)], dim=-1)
    stats = compute_normalization(x, noise_std=0.01)
    assert stats["acc_mean"] == pytest.approx([1.0, 0.0]) and stats["acc_std"] == pytest.approx([0.01, 0.01])
    assert stats["vel_mean"] == pytest.approx([2.0, 0.1])
    with pytest.raises(SciMLError, match="zero spread"):
        compute_normalization(x)


# ----------------------------------------------------------------------------------- GIOROM


@pytest.mark.parametrize("dim", [2, 3])
def test_giorom_shapes_and_query_decoder(dim):
    model = small_giorom(dim=dim, latent_resolution=4)
    x = histories(60, dim)
    types = torch.zeros(60, dtype=torch.long)
    bounds = [[0.0, 1.0]] * dim
    idx = model.sample(x[:, -1])
    assert len(idx) == 18 and len(torch.unique(idx)) == 18
    sparse = model.accelerations(x[idx], types[idx], bounds)
    assert sparse.shape == (18, dim)
    others = torch.ones(60, dtype=torch.bool)
    others[idx] = False
    at_others = model.query_dynamics(x[others, -1], x[idx], types[idx], bounds)
    assert at_others.shape == (42, dim)
    assert model.query_dynamics(x[idx, -1], x[idx], types[idx], bounds).shape == sparse.shape
    new = model.advance(x, types, bounds, idx)
    assert torch.allclose(new[idx], model.step(x[idx], types[idx], bounds))  # the sample moves by its graph
    assert torch.allclose(new[others], x[others, -1] + x[others, -1] - x[others, -2] + at_others)
    out = model.rollout(x, types, bounds, n_steps=2, sample_index=idx)
    assert out.shape == (60, 2, dim) and torch.equal(out[:, 0], new)
    twin = GIOROM(**model.config).double()
    twin.load_state_dict(model.state_dict())
    assert torch.equal(twin.advance(x, types, bounds, idx), new)


def test_query_decoder_evaluates_each_point_on_its_own():
    """The decoded field at a point does not depend on which other points are queried."""
    model = small_giorom()
    x = histories(60)
    types = torch.zeros(60, dtype=torch.long)
    idx = model.sample(x[:, -1])
    queries = 0.45 + 0.1 * torch.rand(25, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    full = model.query_dynamics(queries, x[idx], types[idx], BOUNDS)
    assert torch.allclose(model.query_dynamics(queries[7:9], x[idx], types[idx], BOUNDS), full[7:9], atol=1e-13)
    assert torch.allclose(model.query_dynamics(queries.flip(0), x[idx], types[idx], BOUNDS), full.flip(0),
                          atol=1e-13)


def test_chunked_query_decoder_equals_the_kernel_sum_over_all_pairs(monkeypatch):
    """The decoder's chunks (search and kernel a few queries at a time) give the plain sum over every pair within
    query_radius (nearest 3 for a point with none), scenes apart."""
    model = small_giorom(query_radius=0.08)
    x = torch.cat([histories(60, seed=1), histories(50, seed=2)])
    batch = torch.tensor([0] * 60 + [1] * 50)
    types = torch.zeros(110, dtype=torch.long)
    idx = model.sample(x[:, -1], batch)
    g = torch.Generator().manual_seed(6)
    queries = torch.rand(90, 2, generator=g, dtype=torch.float64)     # some far from every node
    query_batch = torch.randint(0, 2, (90,), generator=g)
    monkeypatch.setattr(giorom_module, "QUERY_CHUNK", 7)
    bounds = torch.tensor(BOUNDS, dtype=torch.float64)
    with torch.no_grad():
        acceleration, latents = model._sparse(x[idx], types[idx], bounds, batch[idx])
        decoded = model._decode(acceleration, latents, x[idx, -1], batch[idx], queries, query_batch)
        nodes, values = x[idx, -1], model.query_values(torch.cat([latents, acceleration], dim=1))
        q, s = radius_neighbours(queries, nodes, 0.08, query_batch=query_batch, point_batch=batch[idx])
        radius = torch.full((90,), 0.08, dtype=torch.float64)
        lonely = torch.bincount(q, minlength=90) == 0
        assert 5 < int(lonely.sum()) < 85
        near_q, near_s = knn_neighbours(queries[lonely], nodes, 3, query_batch=query_batch[lonely],
                                        point_batch=batch[idx])
        near_q = lonely.nonzero().flatten()[near_q]
        radius[lonely] = 0.0
        radius = radius.scatter_reduce(0, near_q, (nodes[near_s] - queries[near_q]).norm(dim=1), reduce="amax")
        q, s = torch.cat([q, near_q]), torch.cat([s, near_s])
        kappa = model.query_kernel.kernel((nodes[s] - queries[q]) / radius[q, None]) * values[s]
        mean = torch.zeros(90, kappa.shape[1], dtype=torch.float64).index_add_(0, q, kappa)
        expected = model.query_out(mean / torch.bincount(q, minlength=90)[:, None])
    assert torch.allclose(decoded, expected, rtol=0, atol=1e-12)


def test_aggregate_of_sorted_receivers_equals_index_add_and_has_its_gradient():
    g = torch.Generator().manual_seed(7)
    messages = torch.randn(30, 2, generator=g, dtype=torch.float64, requires_grad=True)
    receivers = torch.sort(torch.randint(0, 12, (30,), generator=g)).values
    for how in ("sum", "mean"):
        plain = torch.zeros(14, 2, dtype=torch.float64).index_add_(0, receivers, messages)
        if how == "mean":
            plain = plain / torch.bincount(receivers, minlength=14).clamp(min=1)[:, None]
        assert torch.allclose(aggregate(messages, receivers, 14, how), plain, rtol=0, atol=1e-14)
        shuffled = torch.randperm(30, generator=g)
        assert torch.allclose(aggregate(messages[shuffled], receivers[shuffled], 14, how), plain, atol=1e-14)
    assert torch.autograd.gradcheck(lambda m: aggregate(m, receivers, 14, "mean"), (messages,))


def test_points_far_from_every_sampled_particle_are_decoded_from_the_nearest_ones():
    """A droplet beyond query_radius of every node: the ball widens to its 3rd nearest node, and a rollout
    of the whole cloud finishes."""
    model = small_giorom()  # query_radius = radius = 0.2
    blob = histories(60)
    g = torch.Generator().manual_seed(4)
    droplet = 0.93 + 0.01 * torch.rand(4, 1, 2, generator=g, dtype=torch.float64) \
        - 0.002 * torch.arange(6, dtype=torch.float64)[None, :, None]
    cloud = torch.cat([blob, droplet])
    types = torch.zeros(64, dtype=torch.long)
    idx = model.sample(blob[:, -1])  # nodes in the blob only
    nodes = cloud[idx, -1]
    distance = (nodes[None] - cloud[60:, None, -1]).norm(dim=-1)
    assert bool((distance.min(1).values > 0.2).all())
    point = cloud[60:61, -1]
    third = float(distance[0].sort().values[2])
    twin = GIOROM(**{**model.config, "query_radius": third * (1 + 1e-10)}).double()  # exactly those 3 in the ball
    twin.load_state_dict(model.state_dict())
    decoded = model.query_dynamics(point, cloud[idx], types[idx], BOUNDS)
    assert torch.allclose(decoded, twin.query_dynamics(point, cloud[idx], types[idx], BOUNDS), rtol=1e-7, atol=0)
    out = model.rollout(cloud, types, BOUNDS, n_steps=4, sample_index=idx)
    assert out.shape == (64, 4, 2) and bool(torch.isfinite(out).all())
    one_line_error(lambda: model.query_dynamics(point, cloud[idx], types[idx], BOUNDS, query_batch=torch.tensor([1])),
                   "belong to scene 1, which has no sampled particle")


def test_random_sampling_and_scene_batches():
    model = small_giorom(sampling="random")
    x = torch.cat([histories(50, seed=1), histories(40, seed=2)])
    batch = torch.tensor([0] * 50 + [1] * 40)
    idx = model.sample(x[:, -1], batch, torch.Generator().manual_seed(0))
    assert torch.bincount(batch[idx]).tolist() == [15, 12]
    assert model.rollout(x, torch.zeros(90, dtype=torch.long), BOUNDS, 1, batch=batch, sample_index=idx).shape \
        == (90, 1, 2)


# ----------------------------------------------------------------------------------- bad input


def one_line_error(call, text):
    with pytest.raises(SciMLError) as info:
        call()
    message = str(info.value)
    assert text in message and "\n" not in message, message


def test_bad_particles_are_refused():
    gns, gio = small_gns(), small_giorom()
    x = histories(40)
    types = torch.zeros(40, dtype=torch.long)
    outside = x.clone()
    outside[3, -1, 0] = 1.2
    for model in (gns, gio):
        one_line_error(lambda: model.step(outside, types, BOUNDS), "1 particle positions lie outside the domain")
        one_line_error(lambda: model.rollout(outside, types, BOUNDS, 2), "outside the domain bounds")
        one_line_error(lambda: model.step(x[:, 1:], types, BOUNDS), "shape (particles, 6, 2)")
        one_line_error(lambda: model.step(x, types + 9, BOUNDS), "raise model.n_particle_types")
        one_line_error(lambda: model.step(x, types, [[0, 1]]), "bounds must be 2 [lower, upper] pairs")
        one_line_error(lambda: model.loss(x, types, BOUNDS), "shape (particles, 7, 2)")
    one_line_error(lambda: gns.rollout(x, types, BOUNDS, 2, kinematic_positions=torch.zeros(40, 3, 2)),
                   "kinematic_positions must be")


def test_bad_queries_are_refused():
    model = small_giorom()
    x = histories(60)
    types = torch.zeros(60, dtype=torch.long)
    idx = model.sample(x[:, -1])
    one_line_error(lambda: model.query_dynamics(x[:, -1, :1], x[idx], types[idx], BOUNDS),
                   "query points must be a float tensor of shape (points, 2)")
    one_line_error(lambda: model.query_dynamics(torch.full((2, 2), 1.5, dtype=torch.float64), x[idx], types[idx],
                                                BOUNDS), "2 query points lie outside the domain bounds")
    one_line_error(lambda: model.query_dynamics(x[:5, -1].float(), x[idx], types[idx], BOUNDS),
                   "query points must be torch.float64 like the particles")
    one_line_error(lambda: model.advance(x, types, BOUNDS, torch.tensor([0, 0, 1])), "sample_index must hold")


def test_sampling_that_leaves_an_empty_or_mostly_disconnected_graph_is_refused():
    x = histories(60)[:, -1]  # 18 farthest-point nodes at sample_ratio 0.3
    one_line_error(lambda: small_giorom(sample_ratio=0.01).sample(x), "an empty graph: raise model.sample_ratio")
    one_line_error(lambda: small_giorom(radius=0.05).sample(x),
                   "leaves scene 0 an empty graph (18 sampled particles, none within model.radius = 0.05")
    one_line_error(lambda: small_giorom(radius=0.07).sample(x),
                   "cuts off 13 of the 18 sampled particles of scene 0 (more than 25%)")
    batch = torch.tensor([0] * 60 + [1] * 60)  # a well-sampled scene does not hide a disconnected one
    one_line_error(lambda: small_giorom(radius=0.07).sample(torch.cat([x, x]), batch), "of scene 0")
    alone = torch.cat([x, torch.tensor([[0.95, 0.95]], dtype=torch.float64)])  # isolated in the full cloud too
    assert len(small_giorom(sample_ratio=0.5).sample(alone)) == 30


def test_a_few_isolated_nodes_are_accepted_and_step():
    """A splash droplet whose one sampled particle has no sampled neighbour: accepted, it just gets no messages."""
    model = small_giorom()
    blob = histories(60)
    droplet = 0.9 + 0.01 * torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)[:, None, :] \
        + torch.zeros(1, 6, 1, dtype=torch.float64)
    cloud = torch.cat([blob, droplet])
    idx = model.sample(cloud[:, -1])
    lonely = isolated(radius_graph(cloud[idx, -1], 0.2), len(idx))
    assert int(lonely.sum()) == 1 and int(idx[lonely]) >= 60  # the droplet's node, cut off from the rest
    types = torch.zeros(63, dtype=torch.long)
    assert bool(torch.isfinite(model.rollout(cloud, types, BOUNDS, n_steps=2, sample_index=idx)).all())


@pytest.mark.parametrize("options, text", [
    ({"heads": 3}, "does not divide model.hidden"),
    ({"latent_radius": 0.5}, "leaves points out of reach"),
    ({"latent_resolution": 1}, "latent_resolution must be an integer >= 2"),
    ({"sampling": "poisson"}, "choose one of ['farthest', 'random']"),
    ({"sample_ratio": 1.5}, "sample_ratio must be in (0, 1]"),
    ({"dim": 1}, "model.dim = 1 is not supported"),
    ({"radius": -1.0}, "model.radius must be a positive number"),
    ({"normalization": {"vel_mean": 0.0}}, "model.normalization must be a dict"),
])
def test_bad_options_are_refused(options, text):
    one_line_error(lambda: small_giorom(**options), text)


# ----------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ["gns", "giorom"])
def test_a_few_training_steps_learn_a_rigid_rotation(name):
    """Acceleration of a rigid rotation is a fixed linear map of the last velocity (and a smooth field)."""
    g = torch.Generator().manual_seed(0)
    stats = compute_normalization(torch.stack([rotation(64, 7, g).transpose(0, 1) for _ in range(8)]))
    torch.manual_seed(0)
    if name == "gns":
        model = GNS(radius=0.1, hidden=16, mlp_layers=1, n_message_passing=1, normalization=stats)
    else:
        model = GIOROM(radius=0.15, hidden=16, mlp_layers=1, n_message_passing=1, sample_ratio=0.5,
                       latent_resolution=4, heads=2, kernel_hidden=16, transformer_layers=1, normalization=stats)
    model = model.double()
    types = torch.zeros(64, dtype=torch.long)
    validation = [rotation(64, 7, g) for _ in range(3)]

    def validation_loss():
        with torch.no_grad():
            return sum(float(model.loss(v, types, BOUNDS)) for v in validation) / len(validation)

    before = validation_loss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(80):
        loss = model.loss(rotation(64, 7, g), types, BOUNDS, noise_std=1e-5, generator=g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert validation_loss() < 0.05 * before
