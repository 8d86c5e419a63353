"""Neighbour search and point sampling for particle models, without an ``N x N`` matrix.

Two radius searches give the same pairs (``|x_i - y_j| <= r``):

``"cell"``
    A torch cell list, :class:`RadiusIndex` (uniform grid hashing, as in SPH codes and
    Green, "Particle simulation using CUDA", NVIDIA 2010): every point gets an integer
    cell, points are sorted by a mixed-radix cell key (with the scene index as the
    leading digit, so pairs never cross scenes), and a query reads the contiguous runs of
    points in the cells its ball covers; only those candidates have their distances
    computed. Runs on any device, dimension-generic.
``"kdtree"``
    :class:`scipy.spatial.cKDTree` on the CPU (``sparse_distance_matrix``); scenes are
    kept apart by one extra coordinate, ``3 r`` times the scene index.

``method="auto"`` uses the k-d tree for CPU tensors and the cell list elsewhere.

Many queries against few points, e.g. a neural field decoded at ``10^5`` particles from
``10^3`` graph nodes: a :class:`RadiusIndex` kept by the caller bins the points once and
answers the queries chunk by chunk, so each chunk's candidates stay in cache and no
search tree is built over the queries (2 to 4 times faster than the k-d tree there).
Cells have side ``r / 2`` in 2-D (``r`` in 3-D); for a query, every row of cells along
the last axis within ``r`` is scanned over the cells that the ball's chord through that
row covers (a sweep of the ball by strips, the chords read from a table), so the
candidates are about 1.7 times the pairs in 2-D instead of the 2.9 times of the ``3^d``
stencil.

The ``k`` nearest points (:func:`knn_neighbours`), for a query point that may have no
point within any fixed radius: ``"kdtree"`` (:meth:`scipy.spatial.cKDTree.query` on the
CPU; scenes kept apart by one extra coordinate, a gap wider than twice the points' whole
extent times the scene index, so a point of another scene is never nearer than one of
the query's own) or ``"brute"`` (torch, any device: the distances of a chunk of queries
to all points, chunks small enough that a chunk's matrix stays near ``2^22`` entries,
and ``topk``); ``"auto"`` picks the k-d tree on the CPU.

Sampling: :func:`farthest_point_sample` (iterative, running minimum distances, ``O(N n)``
time, all scenes at once) and :func:`random_sample`; :func:`sample_counts`
turns a sampling ratio into per-scene counts.

Examples
--------
>>> import torch
>>> from sciml.models.neighbours import radius_graph
>>> x = torch.tensor([[0.0, 0.0], [0.5, 0.0], [2.0, 0.0]])
>>> radius_graph(x, 0.6).tolist()
[[1, 0], [0, 1]]
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from sciml.errors import SciMLError

METHODS = ("auto", "cell", "kdtree")


def _scene_index(batch, n: int, device, name: str) -> torch.Tensor:
    """``batch`` as a long tensor of shape ``(n,)`` (all zeros when None)."""
    if batch is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    batch = torch.as_tensor(batch, device=device)
    if batch.shape != (n,) or batch.dtype.is_floating_point or batch.dtype == torch.bool:
        raise SciMLError(f"{name} must be an integer tensor of shape ({n},) giving each point's scene, "
                         f"got {batch.dtype} of shape {tuple(batch.shape)}")
    if n and int(batch.min()) < 0:
        raise SciMLError(f"{name} has negative scene indices: number scenes 0, 1, 2, ...")
    return batch.long()


def _check_points(x: torch.Tensor, name: str, dim: int | None = None) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise SciMLError(f"{name} must be a tensor of shape {want}, got {shape}")
    if not x.dtype.is_floating_point:
        raise SciMLError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise SciMLError(f"{name} contains NaN or infinite coordinates: drop or fix those points")


def _check_radius(radius) -> float:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not np.isfinite(radius) or radius <= 0:
        raise SciMLError(f"radius must be a positive number, got {radius!r}")
    return float(radius)


def _cell_search(queries, points, radius, query_batch, point_batch):
    """Pairs ``(i, j)`` within ``radius`` from a :class:`RadiusIndex` of the points (any device).

    Returns the query and point indices and the squared distances.
    """
    q, p, offset = RadiusIndex(points, radius, point_batch).pairs(queries, query_batch)
    return q, p, offset.square().sum(1)


def _kdtree_search(queries, points, radius, query_batch, point_batch):
    """Pairs within ``radius`` from :class:`scipy.spatial.cKDTree` (CPU), as :func:`_cell_search`."""
    from scipy.spatial import cKDTree

    def with_scene(x, scene):
        x = x.detach().cpu().double().numpy()
        return np.concatenate([x, 3.0 * radius * scene.cpu().double().numpy()[:, None]], axis=1)

    q_tree = cKDTree(with_scene(queries, query_batch))
    p_tree = cKDTree(with_scene(points, point_batch))
    pairs = q_tree.sparse_distance_matrix(p_tree, radius, output_type="ndarray")
    q = torch.from_numpy(pairs["i"].astype(np.int64)).to(points.device)
    p = torch.from_numpy(pairs["j"].astype(np.int64)).to(points.device)
    dist2 = (queries[q] - points[p]).square().sum(1)
    near = dist2 <= radius * radius  # the tree's own test, repeated in the points' precision
    return q[near], p[near], dist2[near]


def _check_max_neighbours(max_neighbours):
    if max_neighbours is not None and (isinstance(max_neighbours, bool) or not isinstance(max_neighbours, int)
                                       or max_neighbours < 1):
        raise SciMLError(f"max_neighbours must be a positive integer or None, got {max_neighbours!r}")


def _pairs(queries, points, radius, query_batch, point_batch, max_neighbours, method, same_points=False,
           loop=True):
    """Validated search shared by :func:`radius_neighbours` and :func:`radius_graph`."""
    _check_points(points, "points")
    _check_points(queries, "queries", points.shape[1])
    radius = _check_radius(radius)
    if method not in METHODS:
        raise SciMLError(f"neighbour search method {method!r} is not known; choose one of {list(METHODS)}")
    _check_max_neighbours(max_neighbours)
    device = points.device
    query_batch = _scene_index(query_batch, len(queries), device, "batch" if same_points else "query_batch")
    point_batch = query_batch if same_points else _scene_index(point_batch, len(points), device, "point_batch")
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if len(queries) == 0 or len(points) == 0:
        return empty, empty
    if method == "auto":
        method = "kdtree" if device.type == "cpu" else "cell"
    search = _kdtree_search if method == "kdtree" else _cell_search
    q, p, dist2 = search(queries, points, radius, query_batch, point_batch)
    if not loop:
        other = q != p
        q, p, dist2 = q[other], p[other], dist2[other]
    if max_neighbours is not None and len(q):
        by_distance = torch.sort(dist2, stable=True).indices
        q, p = q[by_distance], p[by_distance]
        by_query = torch.sort(q, stable=True).indices
        q, p = q[by_query], p[by_query]
        count = torch.bincount(q, minlength=len(queries))
        first = torch.cumsum(count, 0) - count
        nearest = torch.arange(len(q), device=device) - first[q] < max_neighbours
        q, p = q[nearest], p[nearest]
    order = torch.sort(q * len(points) + p).indices
    return q[order], p[order]


def radius_neighbours(queries: torch.Tensor, points: torch.Tensor, radius: float, *, query_batch=None,
                      point_batch=None, max_neighbours: int | None = None,
                      method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """All pairs ``(i, j)`` with ``|queries[i] - points[j]| <= radius`` in the same scene.

    The bipartite search behind kernel integrals from one point set onto another.

    Parameters
    ----------
    queries : torch.Tensor
        ``(M, d)`` query points.
    points : torch.Tensor
        ``(N, d)`` points searched, on the same device and with the same ``d``.
    radius : float
        Search radius (pairs at distance exactly ``radius`` are included).
    query_batch, point_batch : torch.Tensor, optional
        ``(M,)`` and ``(N,)`` scene index of each point; pairs never join two scenes.
    max_neighbours : int, optional
        Keep only the ``max_neighbours`` nearest points of each query.
    method : {"auto", "cell", "kdtree"}
        The search (see the module notes); ``"auto"``: k-d tree on CPU, cell list elsewhere.

    Returns
    -------
    query_index, point_index : torch.Tensor
        ``(E,)`` long tensors, sorted by query then point index.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[0.0], [1.0]])
    >>> p = torch.tensor([[0.1], [0.9], [1.05], [5.0]])
    >>> qi, pj = radius_neighbours(q, p, 0.2, method="cell")
    >>> qi.tolist(), pj.tolist()
    ([0, 1, 1], [0, 1, 2])
    >>> radius_neighbours(q, p, 0.2, max_neighbours=1)[1].tolist()
    [0, 2]
    """
    return _pairs(queries, points, radius, query_batch, point_batch, max_neighbours, method)


def radius_graph(points: torch.Tensor, radius: float, *, batch=None, max_neighbours: int | None = None,
                 loop: bool = False, method: str = "auto") -> torch.Tensor:
    """Edges between all points of one scene closer than ``radius``.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, d)`` positions.
    radius : float
        Connectivity radius (inclusive).
    batch : torch.Tensor, optional
        ``(N,)`` scene index of each point; edges never join two scenes.
    max_neighbours : int, optional
        Keep only the ``max_neighbours`` nearest senders of each receiver.
    loop : bool
        Whether each point is its own neighbour.
    method : {"auto", "cell", "kdtree"}
        See :func:`radius_neighbours`.

    Returns
    -------
    torch.Tensor
        ``(2, E)`` long tensor: row 0 the senders ``j``, row 1 the receivers ``i``
        (messages flow ``j -> i``); without ``max_neighbours`` both directions of every
        pair are present. Sorted by receiver, then sender.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 0.0]])
    >>> radius_graph(x, 0.6, batch=torch.tensor([0, 0, 1])).tolist()
    [[1, 0], [0, 1]]
    >>> radius_graph(x[:2], 0.6, loop=True, method="cell").tolist()
    [[0, 1, 0, 1], [0, 0, 1, 1]]
    """
    _check_points(points, "points")
    receivers, senders = _pairs(points, points, radius, batch, None, max_neighbours, method,
                                same_points=True, loop=loop)
    return torch.stack([senders, receivers])


KNN_METHODS = ("auto", "brute", "kdtree")
_KNN_CHUNK_ENTRIES = 2 ** 22
"""Distances per query chunk of the brute-force k-nearest search (32 MiB in float64)."""


def _kdtree_knn(queries, points, k, query_batch, point_batch):
    """``(M, k)`` indices of the ``k`` nearest points (own scene first, see the module notes)."""
    from scipy.spatial import cKDTree

    q = queries.detach().cpu().double().numpy()
    p = points.detach().cpu().double().numpy()
    both = np.concatenate([q, p])
    gap = 2.0 * float(np.linalg.norm(both.max(0) - both.min(0))) + 1.0

    def with_scene(x, scene):
        return np.concatenate([x, gap * scene.cpu().double().numpy()[:, None]], axis=1)

    _, nearest = cKDTree(with_scene(p, point_batch)).query(with_scene(q, query_batch), k=k)
    return torch.from_numpy(np.asarray(nearest, dtype=np.int64).reshape(len(q), k)).to(points.device)


def _brute_knn(queries, points, k, query_batch, point_batch):
    """``(M, k)`` indices of the ``k`` nearest points, other scenes at infinite distance (chunked)."""
    chunk = max(1, _KNN_CHUNK_ENTRIES // len(points))
    parts = []
    for start in range(0, len(queries), chunk):
        q, scene = queries[start:start + chunk], query_batch[start:start + chunk]
        dist2 = (q[:, None, :] - points[None, :, :]).square().sum(-1)
        dist2 = dist2.masked_fill(scene[:, None] != point_batch[None, :], float("inf"))
        parts.append(torch.topk(dist2, k, dim=1, largest=False).indices)
    return torch.cat(parts)


def knn_neighbours(queries: torch.Tensor, points: torch.Tensor, k: int, *, query_batch=None, point_batch=None,
                   method: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` nearest ``points`` of every query point, in its own scene.

    A query whose scene holds fewer than ``k`` points gets all of them (none when its
    scene has no points); ties are broken arbitrarily.

    Parameters
    ----------
    queries : torch.Tensor
        ``(M, d)`` query points.
    points : torch.Tensor
        ``(N, d)`` points searched, on the same device and with the same ``d``.
    k : int
        Neighbours per query point.
    query_batch, point_batch : torch.Tensor, optional
        ``(M,)`` and ``(N,)`` scene index of each point; pairs never join two scenes.
    method : {"auto", "brute", "kdtree"}
        The search (see the module notes); ``"auto"``: k-d tree on CPU, brute force elsewhere.

    Returns
    -------
    query_index, point_index : torch.Tensor
        ``(E,)`` long tensors, sorted by query, nearest point first.

    Examples
    --------
    >>> import torch
    >>> q = torch.tensor([[0.0], [1.0]])
    >>> p = torch.tensor([[0.1], [0.9], [1.05], [5.0]])
    >>> qi, pj = knn_neighbours(q, p, 2, method="brute")
    >>> qi.tolist(), pj.tolist()
    ([0, 0, 1, 1], [0, 1, 2, 1])
    >>> knn_neighbours(q, p, 1, query_batch=torch.tensor([0, 1]), point_batch=torch.tensor([0, 0, 0, 1]))[1].tolist()
    [0, 3]
    """
    _check_points(points, "points")
    _check_points(queries, "queries", points.shape[1])
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SciMLError(f"k must be a positive integer, got {k!r}")
    if method not in KNN_METHODS:
        raise SciMLError(f"k-nearest search method {method!r} is not known; choose one of {list(KNN_METHODS)}")
    device = points.device
    query_batch = _scene_index(query_batch, len(queries), device, "query_batch")
    point_batch = _scene_index(point_batch, len(points), device, "point_batch")
    empty = torch.zeros(0, dtype=torch.long, device=device)
    if len(queries) == 0 or len(points) == 0:
        return empty, empty
    if method == "auto":
        method = "kdtree" if device.type == "cpu" else "brute"
    k = min(k, len(points))
    search = _kdtree_knn if method == "kdtree" else _brute_knn
    nearest = search(queries, points, k, query_batch, point_batch)
    q = torch.arange(len(queries), device=device).repeat_interleave(k)
    p = nearest.reshape(-1)
    same = point_batch[p] == query_batch[q]  # a scene with fewer than k points yields other scenes' points
    return q[same], p[same]


class RadiusIndex:
    """Points binned once into a grid of cells, for radius queries from many query points.

    A cell list (see the module notes) built on the points and asked for the pairs of any
    number of queries, chunk by chunk (:meth:`chunks`): every pair with
    ``|points[j] - queries[i]| <= radius`` in the same scene, the distance computed in the
    points' precision (the test that :func:`radius_neighbours` applies last), grouped by
    query, with their offsets.
    Candidates are found in double precision with a reach of ``radius * (1 + 16 eps)`` and
    :data:`SLACK` of a cell to spare, so no pair is lost to round-off; the distance test
    then decides. The grid spans the points' bounding box plus empty cells around it (so
    a query anywhere needs no bounds checks) and coarsens past :data:`MAX_CELLS` cells
    (more candidates, the same pairs).

    Parameters
    ----------
    points : torch.Tensor
        ``(N, d)`` points.
    radius : float
        Search radius (inclusive).
    batch : torch.Tensor, optional
        ``(N,)`` scene index of each point; pairs never join two scenes.
    cells_per_radius : int, optional
        Cells per radius along each axis (default 2 in 2-D, 1 in 3-D, where ``(2k + 1)^2``
        rows per query would outweigh the fewer candidates).

    Examples
    --------
    >>> import torch
    >>> index = RadiusIndex(torch.tensor([[0.1], [0.9], [1.05], [5.0]]), 0.2)
    >>> q, p, offset = index.pairs(torch.tensor([[0.0], [1.0]]))
    >>> q.tolist(), p.tolist(), [round(v, 2) for v in offset.flatten().tolist()]
    ([0, 1, 1], [0, 1, 2], [0.1, -0.1, 0.05])
    """

    MAX_CELLS = 2 ** 22
    """Largest number of cells (times scenes) of the grid: a 32 MiB table of cell starts."""

    SLACK = 1e-6
    """Cells added on each side of a candidate interval against round-off of the double-precision binning."""

    BINS = 32
    """Bins per cell (and row axis) of a query's position, for the table of half chords."""

    def __init__(self, points: torch.Tensor, radius: float, batch=None, cells_per_radius: int | None = None):
        _check_points(points, "points")
        self.radius = _check_radius(radius)
        self.dim, self.dtype, device = points.shape[1], points.dtype, points.device
        if cells_per_radius is None:
            cells_per_radius = 2 if self.dim <= 2 else 1
        if isinstance(cells_per_radius, bool) or not isinstance(cells_per_radius, int) or cells_per_radius < 1:
            raise SciMLError(f"cells_per_radius must be a positive integer, got {cells_per_radius!r}")
        scene = _scene_index(batch, len(points), device, "batch")
        self.n_scenes = int(scene.max()) + 1 if len(points) else 0
        reach = self.radius * (1.0 + 16.0 * torch.finfo(points.dtype).eps)
        x = points.detach().double()
        self.lo = x.min(0).values if len(points) else x.new_zeros(self.dim)
        extent = (x.max(0).values - self.lo) if len(points) else x.new_zeros(self.dim)
        side = reach * (1.0 + 1e-5) / cells_per_radius
        if float((extent / side).max()) >= 2.0 ** 50:
            raise SciMLError(f"radius {self.radius:g} is too small for the extent of the points "
                             f"({float(extent.max()):g}): use a larger radius or method='kdtree'")
        while True:
            shape = torch.floor(extent / side).long() + 1
            rows = math.ceil(reach / side + 2 * self.SLACK)    # rows of cells on each side of a query's
            # Padding: 2 rows + 1 around the grid on the row axes, 1 cell at the ends of the last axis.
            self.pad = torch.tensor([2 * rows + 1] * (self.dim - 1) + [1], device=device)
            padded = shape + 2 * self.pad
            total = (self.n_scenes + 1) * int(torch.prod(padded))
            if total <= self.MAX_CELLS or bool((shape == 1).all()):
                break
            side *= 1.01 * (total / self.MAX_CELLS) ** (1.0 / self.dim)
        if total > self.MAX_CELLS:
            raise SciMLError(f"{self.n_scenes} scenes are too many for one RadiusIndex: index fewer scenes at once")
        self.side, self.shape, self.reach_cells = side, shape, reach / side
        strides = [1] * self.dim
        for k in range(self.dim - 2, -1, -1):
            strides[k] = strides[k + 1] * int(padded[k + 1])
        self.strides = torch.tensor(strides, device=device)
        self.cells = int(torch.prod(padded))
        cell = torch.minimum(torch.floor((x - self.lo) / side).long(), shape - 1) + self.pad
        key = scene * self.cells + (cell * self.strides).sum(1)
        self.order = torch.sort(key, stable=True).indices
        count = torch.bincount(key, minlength=(self.n_scenes + 1) * self.cells)
        self.start = torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
        self.axes = points[self.order].T.contiguous()  # (d, N), sorted by cell
        # The rows of cells (along the last axis) around a query's: offsets o over the other axes, the key shift
        # of each, and the half chord of the ball through each row for a query in each of BINS^(d - 1) bins of
        # its position within its cell: the largest over the bin (from the smallest gap between the query and
        # the row, |o| - 1 + (1 - f or f) above or below, f the bin's edge nearest the row), so never too short.
        around = list(itertools.product(range(-rows, rows + 1), repeat=self.dim - 1))
        offsets = torch.tensor(around, dtype=torch.long, device=device).reshape(len(around), self.dim - 1)
        self.row_shift = (offsets * self.strides[:-1]).sum(1)
        positions = list(itertools.product(range(self.BINS), repeat=self.dim - 1))
        bins = torch.tensor(positions, dtype=torch.float64, device=device).reshape(len(positions), 1, self.dim - 1)
        o = offsets.double()
        gap = torch.where(o > 0, o - (bins + 1) / self.BINS, o.abs() - 1.0 + bins / self.BINS)
        gap = torch.clamp(gap - self.SLACK, min=0.0)
        self.half_chord = torch.sqrt(torch.clamp(self.reach_cells ** 2 - gap.square().sum(-1), min=0.0))
        self.bin_weights = torch.tensor([self.BINS ** (self.dim - 2 - k) for k in range(self.dim - 1)],
                                        dtype=torch.long, device=device)
        self.row_limit = torch.stack([torch.full_like(shape[:-1], -rows - 1), shape[:-1] + rows])

    def pairs(self, queries: torch.Tensor, query_batch=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pairs within ``radius`` of ``queries (M, d)`` (same dtype and device as the points).

        Returns ``query_index (E,)`` (ascending), ``point_index (E,)`` (within a query in
        cell order) and the offsets ``points[point_index] - queries[query_index]`` ``(E, d)``.
        """
        return next(self.chunks(queries, query_batch, max(len(queries), 1)))[1:]

    def chunks(self, queries: torch.Tensor, query_batch=None, size: int = 8192):
        """:meth:`pairs` of ``size`` queries at a time: yields ``(first, query_index, point_index, offset)``,
        ``query_index`` counted from the chunk's first query ``first``.

        Examples
        --------
        >>> import torch
        >>> index = RadiusIndex(torch.tensor([[0.1], [0.9], [1.05], [5.0]]), 0.2)
        >>> [(first, q.tolist()) for first, q, _, _ in index.chunks(torch.tensor([[0.0], [1.0], [4.9]]), size=2)]
        [(0, [0, 1, 1]), (2, [0])]
        """
        _check_points(queries, "queries", self.dim)
        if queries.dtype != self.dtype or queries.device != self.axes.device:
            raise SciMLError(f"queries must be {self.dtype} on {self.axes.device} like the indexed points, "
                             f"got {queries.dtype} on {queries.device}")
        scene = torch.clamp(_scene_index(query_batch, len(queries), queries.device, "query_batch"), max=self.n_scenes)
        for first in range(0, max(len(queries), 1), size):
            yield (first, *self._pairs(queries[first:first + size], scene[first:first + size]))

    def _pairs(self, queries, scene):
        device, m, d = queries.device, len(queries), self.dim
        if m == 0 or self.axes.shape[1] == 0:
            empty = torch.zeros(0, dtype=torch.long, device=device)
            return empty, empty, queries.new_zeros(0, d)
        u = (queries.detach().double() - self.lo) / self.side   # position in cells
        cell = torch.floor(u)
        row = torch.clamp(cell[:, :-1].long(), self.row_limit[0], self.row_limit[1]) + self.pad[:-1]
        row_key = (scene * self.cells + (row * self.strides[:-1]).sum(1))[:, None] + self.row_shift   # (M, rows)
        bin_ = torch.clamp(((u[:, :-1] - cell[:, :-1]) * self.BINS).long(), max=self.BINS - 1)
        half = self.half_chord.index_select(0, (bin_ * self.bin_weights).sum(1))    # (M, rows), in cells
        last_axis = u[:, -1:]
        n_last = int(self.shape[-1])
        low = (last_axis - self.SLACK - half).floor_().clamp_(-1, n_last).long() + 1
        high = (half + self.SLACK).add_(last_axis).floor_().clamp_(-1, n_last).long() + 2
        begin = self.start.index_select(0, (row_key + low).view(-1))
        count = self.start.index_select(0, (row_key + high).view(-1)) - begin
        total = int(count.sum())
        # Each run [begin, begin + count) of sorted points, one after the other (a cumulative sum of jumps at the
        # runs' starts; faster than repeat_interleave), and the query of each candidate likewise.
        first = torch.cumsum(count, 0) - count
        jump = torch.diff(begin - first, prepend=begin.new_zeros(1))
        candidate = torch.arange(total, device=device) + torch.cumsum(
            torch.zeros(total + 1, dtype=torch.long, device=device).index_add_(0, first, jump)[:total], 0)
        per_query = count.view(m, -1).sum(1)
        query = torch.cumsum(torch.zeros(total + 1, dtype=torch.long, device=device).index_add_(
            0, torch.cumsum(per_query, 0) - per_query, torch.ones_like(per_query))[:total], 0) - 1
        columns = queries.T.contiguous()
        offset = [self.axes[k].index_select(0, candidate) - columns[k].index_select(0, query) for k in range(d)]
        dist2 = offset[0].square()
        for k in range(1, d):
            dist2 += offset[k].square()
        near = (dist2 <= self.radius * self.radius).nonzero().flatten()
        offset = torch.stack([o.index_select(0, near) for o in offset]).T   # (E, d), stored axis by axis
        return query.index_select(0, near), self.order.index_select(0, candidate.index_select(0, near)), offset


def sample_counts(ratio: float, batch=None, n_points: int | None = None) -> torch.Tensor:
    """Number of points to keep in each scene: ``round(ratio * n_scene)``, at least 1.

    Parameters
    ----------
    ratio : float
        Fraction of points to keep, in ``(0, 1]``.
    batch : torch.Tensor, optional
        ``(N,)`` scene index of each point.
    n_points : int, optional
        Number of points of the single scene when ``batch`` is None.

    Examples
    --------
    >>> import torch
    >>> sample_counts(0.1, torch.tensor([0] * 30 + [1] * 4)).tolist()
    [3, 1]
    """
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise SciMLError(f"sampling ratio must be in (0, 1], got {ratio!r}")
    if batch is None:
        sizes = torch.tensor([int(n_points)])
    else:
        sizes = torch.bincount(torch.as_tensor(batch).long())
    return torch.clamp(torch.round(ratio * sizes.double()).long(), min=1).to(sizes.device)


def _counts_tensor(n_samples, n_scenes: int, sizes: torch.Tensor) -> torch.Tensor:
    counts = torch.as_tensor(n_samples, device=sizes.device).long().reshape(-1)
    if counts.numel() == 1:
        counts = counts.expand(n_scenes)
    if counts.numel() != n_scenes or bool((counts < 1).any()) or bool((counts > sizes).any()):
        raise SciMLError(f"cannot sample {counts.tolist()} points from scenes of {sizes.tolist()} points: "
                         "ask for between 1 and the scene's size in each scene")
    return counts


def farthest_point_sample(points: torch.Tensor, n_samples, *, batch=None, random_start: bool = False,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n_samples`` points per scene chosen by farthest-point sampling.

    Starting from one point per scene (the scene's first, or a random one), repeatedly add
    the point whose distance to the chosen set is largest, keeping each point's running
    minimum distance to the chosen set (Eldar et al., "The farthest point strategy for
    progressive image sampling", IEEE TIP 1997). ``O(N n)`` time; all scenes advance
    together in a padded ``(scenes, largest scene)`` layout, which is the memory used.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, d)`` positions.
    n_samples : int or sequence of int
        Points to keep, one number for every scene or one per scene.
    batch : torch.Tensor, optional
        ``(N,)`` scene index of each point.
    random_start : bool
        Start each scene from a random point instead of its lowest-indexed one.
    generator : torch.Generator, optional
        Source of the random start.

    Returns
    -------
    torch.Tensor
        Long indices into ``points``, grouped by scene, in order of selection.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[0.0], [0.1], [1.0], [0.55], [0.9]])
    >>> farthest_point_sample(x, 3).tolist()
    [0, 2, 3]
    """
    _check_points(points, "points")
    device, n = points.device, len(points)
    scene = _scene_index(batch, n, device, "batch")
    sizes = torch.bincount(scene)
    n_scenes = len(sizes)
    counts = _counts_tensor(n_samples, n_scenes, sizes)
    # Scenes side by side in a padded (scenes, largest scene) layout; padding is never chosen.
    order = torch.sort(scene, stable=True).indices
    slot = torch.arange(n, device=device) - (torch.cumsum(sizes, 0) - sizes)[scene[order]]
    width = int(sizes.max())
    padded = points.new_zeros(n_scenes, width, points.shape[1])
    padded[scene[order], slot] = points[order]
    original = torch.full((n_scenes, width), -1, dtype=torch.long, device=device)
    original[scene[order], slot] = order
    min_dist = torch.full((n_scenes, width), float("-inf"), dtype=points.dtype, device=device)
    min_dist[scene[order], slot] = float("inf")
    if random_start:
        u = torch.rand(n_scenes, generator=generator, dtype=torch.float64, device=device)
        current = torch.minimum(torch.floor(u * sizes).long(), sizes - 1)
    else:
        current = torch.zeros(n_scenes, dtype=torch.long, device=device)
    rows = torch.arange(n_scenes, device=device)
    chosen = torch.empty(n_scenes, int(counts.max()), dtype=torch.long, device=device)
    for step in range(chosen.shape[1]):
        chosen[:, step] = current
        dist = (padded - padded[rows, current][:, None]).square().sum(-1)
        min_dist = torch.minimum(min_dist, dist)
        min_dist[rows, current] = -1.0  # below any distance: a chosen point is not chosen again
        current = torch.argmax(min_dist, dim=1)
    keep = torch.arange(chosen.shape[1], device=device)[None, :] < counts[:, None]
    return original[rows[:, None].expand_as(chosen)[keep], chosen[keep]]


def random_sample(points: torch.Tensor, n_samples, *, batch=None,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices of ``n_samples`` points per scene drawn uniformly without replacement.

    Parameters
    ----------
    points : torch.Tensor
        ``(N, d)`` positions (only their number and device are used).
    n_samples : int or sequence of int
        Points to keep, one number for every scene or one per scene.
    batch : torch.Tensor, optional
        ``(N,)`` scene index of each point.
    generator : torch.Generator, optional
        Source of randomness.

    Returns
    -------
    torch.Tensor
        Long indices into ``points``, grouped by scene, ascending within a scene.

    Examples
    --------
    >>> import torch
    >>> x = torch.zeros(10, 2)
    >>> idx = random_sample(x, 2, batch=torch.tensor([0] * 5 + [1] * 5), generator=torch.Generator().manual_seed(0))
    >>> len(idx), int((idx < 5).sum())
    (4, 2)
    """
    _check_points(points, "points")
    device, n = points.device, len(points)
    scene = _scene_index(batch, n, device, "batch")
    sizes = torch.bincount(scene)
    counts = _counts_tensor(n_samples, len(sizes), sizes)
    key = scene.double() + torch.rand(n, generator=generator, dtype=torch.float64, device=device)
    order = torch.sort(key).indices
    rank = torch.arange(n, device=device) - (torch.cumsum(sizes, 0) - sizes)[scene[order]]
    chosen = order[rank < counts[scene[order]]]
    return torch.sort(scene[chosen] * n + chosen).values % n


def isolated(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """``(n_nodes,)`` boolean mask of the nodes that receive no edge.

    Examples
    --------
    >>> import torch
    >>> isolated(torch.tensor([[1, 0], [0, 1]]), 3).tolist()
    [False, False, True]
    """
    return torch.bincount(edge_index[1], minlength=n_nodes) == 0
