"""Neighbour search and sampling (models/neighbours.py) against brute force."""

import numpy as np
import pytest
import torch

from sciml.errors import SciMLError
from sciml.models.neighbours import (RadiusIndex, farthest_point_sample, isolated, knn_neighbours, radius_graph,
                                     radius_neighbours, random_sample, sample_counts)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def brute_pairs(queries, points, radius, query_batch=None, point_batch=None):
    """Sorted list of (i, j) with |q_i - p_j| <= r in the same scene, from the full distance matrix."""
    d2 = ((queries[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    ok = d2 <= radius * radius
    if query_batch is not None:
        ok &= query_batch[:, None] == point_batch[None, :]
    return sorted(map(tuple, ok.nonzero().tolist()))


def pairs(q, p):
    return list(zip(q.tolist(), p.tolist()))


@pytest.mark.parametrize("method", ["cell", "kdtree"])
@pytest.mark.parametrize("dim", [2, 3])
def test_radius_neighbours_equal_brute_force(method, dim):
    g = torch.Generator().manual_seed(dim)
    queries = torch.rand(150, dim, generator=g, dtype=torch.float64) * 2 - 0.5
    points = torch.rand(300, dim, generator=g, dtype=torch.float64)
    for radius in (0.05, 0.13, 0.4, 3.0):
        q, p = radius_neighbours(queries, points, radius, method=method)
        assert pairs(q, p) == brute_pairs(queries, points, radius)
    query_batch = torch.randint(0, 3, (150,), generator=g)
    point_batch = torch.randint(0, 3, (300,), generator=g)
    q, p = radius_neighbours(queries, points, 0.3, query_batch=query_batch, point_batch=point_batch, method=method)
    assert pairs(q, p) == brute_pairs(queries, points, 0.3, query_batch, point_batch)


@pytest.mark.parametrize("method", ["cell", "kdtree"])
@pytest.mark.parametrize("dim", [2, 3])
def test_radius_graph_equal_brute_force(method, dim):
    g = torch.Generator().manual_seed(10 + dim)
    x = torch.rand(250, dim, generator=g, dtype=torch.float64)
    batch = torch.randint(0, 2, (250,), generator=g)
    for radius in (0.07, 0.2):
        for scenes in (None, batch):
            edges = radius_graph(x, radius, batch=scenes, method=method)
            expected = [(i, j) for i, j in brute_pairs(x, x, radius, scenes, scenes) if i != j]
            assert pairs(edges[1], edges[0]) == expected  # receivers, senders
            looped = radius_graph(x, radius, batch=scenes, loop=True, method=method)
            assert looped.shape[1] == edges.shape[1] + len(x)
    both = radius_graph(x, 0.1, method=method)
    assert sorted(pairs(both[0], both[1])) == sorted(pairs(both[1], both[0]))  # symmetric


@pytest.mark.parametrize("method", ["cell", "kdtree"])
def test_max_neighbours_keeps_the_nearest(method):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(200, 2, generator=g, dtype=torch.float64)
    edges = radius_graph(x, 0.25, max_neighbours=4, method=method)
    d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
    d2.fill_diagonal_(float("inf"))
    for i in range(len(x)):
        senders = edges[0, edges[1] == i]
        within = (d2[i] <= 0.25 ** 2).nonzero().flatten()
        nearest = within[torch.argsort(d2[i, within])][:4]
        assert sorted(senders.tolist()) == sorted(nearest.tolist())


def test_cell_list_scales_without_a_dense_matrix():
    """200 000 points: a distance matrix would need 160 GB; the cell list needs a few MB."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200_000, 2, generator=g)
    edges = radius_graph(x, 0.002, method="cell")
    expected = len(x) ** 2 * np.pi * 0.002 ** 2  # ordered pairs, up to boundary losses
    assert 0.9 * expected < edges.shape[1] < 1.05 * expected
    sub = torch.arange(0, 200_000, 4999)
    degree = torch.bincount(edges[1], minlength=len(x))[sub]
    brute = ((x[sub, None] - x[None]) ** 2).sum(-1).le(0.002 ** 2).sum(1) - 1
    assert torch.equal(degree, brute)


@pytest.mark.parametrize("method", ["brute", "kdtree"])
@pytest.mark.parametrize("dim", [2, 3])
def test_knn_neighbours_equal_brute_force(method, dim):
    g = torch.Generator().manual_seed(20 + dim)
    queries = torch.rand(120, dim, generator=g, dtype=torch.float64) * 3 - 1  # many far from every point
    points = torch.rand(80, dim, generator=g, dtype=torch.float64)
    query_batch = torch.randint(0, 4, (120,), generator=g)
    point_batch = torch.cat([torch.randint(0, 2, (78,), generator=g), torch.tensor([2, 2])])  # scene 2: 2 points
    d2 = ((queries[:, None] - points[None]) ** 2).sum(-1)
    d2[query_batch[:, None] != point_batch[None, :]] = float("inf")
    for k in (1, 3):
        q, p = knn_neighbours(queries, points, k, query_batch=query_batch, point_batch=point_batch, method=method)
        for i in range(len(queries)):
            own = int((point_batch == query_batch[i]).sum())
            expected = torch.argsort(d2[i])[:min(k, own)].tolist()  # scene 3 has no points: nothing
            assert p[q == i].tolist() == expected
    q, p = knn_neighbours(queries, points, 500, method=method)  # more than there are: all, nearest first
    assert torch.equal(torch.bincount(q), torch.full((120,), 80))
    assert torch.equal(p.view(120, 80), torch.argsort(((queries[:, None] - points[None]) ** 2).sum(-1), dim=1))


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_radius_index_gives_the_pairs_of_brute_force_grouped_by_query(dim):
    g = torch.Generator().manual_seed(30 + dim)
    queries = torch.rand(200, dim, generator=g, dtype=torch.float64) * 3 - 1  # many beyond every point
    points = torch.rand(150, dim, generator=g, dtype=torch.float64)
    query_batch = torch.randint(0, 4, (200,), generator=g)  # scene 3 has no points
    point_batch = torch.randint(0, 3, (150,), generator=g)
    for radius in (0.03, 0.15, 5.0):
        for cells in (None, 1, 3):
            index = RadiusIndex(points, radius, point_batch, cells_per_radius=cells)
            q, p, offset = index.pairs(queries, query_batch)
            assert sorted(pairs(q, p)) == brute_pairs(queries, points, radius, query_batch, point_batch)
            assert torch.equal(q, torch.sort(q).values) and torch.equal(offset, points[p] - queries[q])
            chunks = [(first + a, b) for first, a, b, _ in index.chunks(queries, query_batch, size=37)]
            assert torch.equal(torch.cat([a for a, _ in chunks]), q)
            assert torch.equal(torch.cat([b for _, b in chunks]), p)


def test_radius_index_loses_no_pair_at_the_radius_in_float32_and_coarsens_a_huge_grid():
    """Lattice points at exactly one spacing: the pairs are those whose float32 distance passes, every one."""
    axis = torch.arange(12, dtype=torch.float32) * 0.1
    points = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    queries = points[::5] + torch.tensor([0.0, 1e-8])
    radius = float(torch.tensor(0.1, dtype=torch.float32))
    d2 = ((points[None, :, 0] - queries[:, None, 0]).square() + (points[None, :, 1] - queries[:, None, 1]).square())
    expected = sorted(map(tuple, (d2 <= radius * radius).nonzero().tolist()))
    assert int(((d2 - radius * radius).abs() <= 1e-7).sum()) > 2 * len(queries)  # many pairs at the radius
    q, p, _ = RadiusIndex(points, radius).pairs(queries)
    assert sorted(pairs(q, p)) == expected

    class Coarse(RadiusIndex):
        MAX_CELLS = 400

    coarse = Coarse(points, radius)
    assert (len(coarse.start) - 1) <= Coarse.MAX_CELLS
    assert sorted(pairs(*coarse.pairs(queries)[:2])) == expected


def test_radius_index_scales_without_a_dense_matrix():
    """1e5 queries against 1e3 points, in chunks: each chunk's candidates only."""
    g = torch.Generator().manual_seed(5)
    points, queries = torch.rand(1000, 2, generator=g), torch.rand(100_000, 2, generator=g)
    index = RadiusIndex(points, 0.03)
    counts = torch.cat([torch.bincount(q, minlength=min(16384, len(queries) - first))
                        for first, q, _, _ in index.chunks(queries, size=16384)])
    sub = torch.arange(0, 100_000, 997)
    brute = ((queries[sub, None] - points[None]) ** 2).sum(-1).le(0.03 ** 2).sum(1)
    assert torch.equal(counts[sub], brute)


def brute_fps(x, n):
    chosen = [0]
    dist = ((x - x[0]) ** 2).sum(1)
    for _ in range(n - 1):
        chosen.append(int(torch.argmax(dist)))
        dist = torch.minimum(dist, ((x - x[chosen[-1]]) ** 2).sum(1))
    return chosen


def test_farthest_point_sample_is_the_greedy_sequence_and_covers():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(400, 2, generator=g, dtype=torch.float64)
    idx = farthest_point_sample(x, 40)
    assert idx.tolist() == brute_fps(x, 40)

    def cover(index):
        return ((x[:, None] - x[index][None]) ** 2).sum(-1).min(1).values.max().sqrt()

    random_cover = [cover(random_sample(x, 40, generator=torch.Generator().manual_seed(s))) for s in range(5)]
    assert cover(idx) < 0.7 * min(random_cover)


def test_sampling_per_scene():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(300, 3, generator=g, dtype=torch.float64)
    batch = torch.randint(0, 3, (300,), generator=g)
    counts = sample_counts(0.1, batch)
    assert counts.tolist() == [round(0.1 * int(n)) for n in torch.bincount(batch)]
    for idx in (farthest_point_sample(x, counts, batch=batch, random_start=True, generator=g),
                random_sample(x, counts, batch=batch, generator=g)):
        assert len(torch.unique(idx)) == len(idx) == int(counts.sum())
        assert torch.bincount(batch[idx], minlength=3).tolist() == counts.tolist()
        assert torch.equal(batch[idx], torch.sort(batch[idx]).values)  # grouped by scene
    scene1 = batch == 1
    within = farthest_point_sample(x, counts, batch=batch)[counts[0]:counts[0] + counts[1]]
    assert within.tolist() == scene1.nonzero().flatten()[brute_fps(x[scene1], int(counts[1]))].tolist()


def test_duplicates_are_sampled_once_each():
    x = torch.zeros(5, 2, dtype=torch.float64)
    assert sorted(farthest_point_sample(x, 5).tolist()) == [0, 1, 2, 3, 4]


def test_isolated():
    assert isolated(radius_graph(torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0]]), 0.2), 3).tolist() == \
        [False, False, True]


@pytest.mark.parametrize("call, message", [
    (lambda: radius_graph(torch.rand(5, 2), 0.0), "radius must be a positive"),
    (lambda: radius_graph(torch.rand(5), 0.1), "shape (n, dim)"),
    (lambda: radius_graph(torch.tensor([[0.0, float("nan")]]), 0.1), "NaN"),
    (lambda: radius_graph(torch.rand(5, 2), 0.1, method="octree"), "choose one of"),
    (lambda: radius_graph(torch.rand(5, 2), 0.1, max_neighbours=0), "max_neighbours"),
    (lambda: radius_graph(torch.rand(5, 2), 0.1, batch=torch.zeros(4, dtype=torch.long)), "shape (5,)"),
    (lambda: radius_neighbours(torch.rand(5, 3), torch.rand(5, 2), 0.1), "shape (n, 2)"),
    (lambda: sample_counts(0.0, n_points=10), "ratio must be in (0, 1]"),
    (lambda: farthest_point_sample(torch.rand(5, 2), 6), "cannot sample [6]"),
    (lambda: knn_neighbours(torch.rand(5, 2), torch.rand(5, 2), 0), "k must be a positive integer"),
    (lambda: knn_neighbours(torch.rand(5, 2), torch.rand(5, 2), 2, method="ball"), "choose one of"),
    (lambda: radius_graph(torch.tensor([[0.0], [1e30]]), 1e-12, method="cell"), "too small"),
    (lambda: RadiusIndex(torch.rand(5, 2), 0.1, cells_per_radius=0), "cells_per_radius must be a positive"),
    (lambda: RadiusIndex(torch.rand(5, 2), 0.1).pairs(torch.rand(3, 2, dtype=torch.float64)), "must be torch.float32"),
    (lambda: RadiusIndex(torch.rand(5, 2), 0.1).pairs(torch.rand(3, 3)), "shape (n, 2)"),
])
def test_bad_input(call, message):
    with pytest.raises(SciMLError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
