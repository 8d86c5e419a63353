"""Ordering a batch of related systems so that consecutive ones are alike.

Sorted Krylov recycling (Wang et al., "Accelerating Data Generation for Neural Operators
via Krylov Subspace Recycling", ICLR 2024) solves a batch of systems ``A(P_i) x = b(P_i)``
in an order where consecutive parameter fields ``P_i`` are close, so the subspace
recycled from one solve helps the next. Two orderings, registered in :data:`ORDERINGS`:

``"greedy"``
    The paper's greedy nearest-neighbour chain on ``||P_i - P_j||_F``: start at the field
    farthest from the mean, repeatedly step to the nearest unvisited one. O(N^2 F) time,
    O(N F) memory (distances from the current field only, never an N x N matrix).
``"curve"``
    For large batches: low-pass features (the leading DCT modes of each field), PCA to a
    few components, then sort by position along a Hilbert curve through that space.
    O(N F log N) after the features. Departure from the paper, which bins large batches
    before sorting greedily; a Hilbert curve keeps neighbours in feature space mostly
    neighbours in the sequence at any N.
``"none"``
    The given order.

Examples
--------
>>> import numpy as np
>>> from sciml.solvers.ordering import lowpass_features, order_systems, path_length
>>> fields = np.random.default_rng(0).standard_normal((200, 16, 16)).cumsum(1).cumsum(2)
>>> features = lowpass_features(fields)
>>> greedy = order_systems(fields, "greedy")
>>> sorted(greedy.tolist()) == list(range(200))
True
>>> bool(path_length(features, greedy) < path_length(features, np.arange(200)))
True
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from sciml.errors import SciMLError
from sciml.registry import Registry

ORDERINGS: Registry = Registry("ordering")


def lowpass_features(fields: np.ndarray, modes: int = 8, chunk: int = 1024) -> np.ndarray:
    """The leading ``modes`` DCT-II coefficients per axis of each field, flattened.

    Parameters
    ----------
    fields : ndarray, shape (N, *grid)
    modes : int
        Coefficients kept per spatial axis (all of them if the axis is shorter).
    chunk : int
        Fields transformed at a time, bounding memory at large N.

    Returns
    -------
    ndarray, shape (N, modes ** d)
    """
    fields = np.asarray(fields, dtype=float)
    if fields.ndim < 2:
        raise SciMLError(f"fields must have shape (N, *grid), got {fields.shape}")
    axes = tuple(range(1, fields.ndim))
    keep = (slice(None),) + tuple(slice(0, modes) for _ in axes)
    parts = [scipy.fft.dctn(fields[i:i + chunk], axes=axes, norm="ortho")[keep].reshape(len(fields[i:i + chunk]), -1)
             for i in range(0, len(fields), chunk)]
    return np.concatenate(parts)


def path_length(features: np.ndarray, order: np.ndarray) -> float:
    """Sum of distances between consecutive systems in ``order``: what an ordering shortens."""
    walk = np.asarray(features, dtype=float)[np.asarray(order)]
    return float(np.linalg.norm(np.diff(walk, axis=0), axis=1).sum())


def hilbert_index(points: np.ndarray, bits: int) -> np.ndarray:
    """Position along the Hilbert curve of integer points in ``[0, 2**bits)^d``.

    Skilling's transpose algorithm ("Programming the Hilbert curve", AIP Conf. Proc. 707,
    2004), vectorised over points; ``d * bits`` must not exceed 64.

    >>> grid = np.array([(x, y) for x in range(4) for y in range(4)])
    >>> walk = grid[np.argsort(hilbert_index(grid, 2))]
    >>> int(np.abs(np.diff(walk, axis=0)).sum(axis=1).max())   # each step moves one cell
    1
    """
    X = np.array(points, dtype=np.uint64)
    n, d = X.shape
    if d * bits > 64:
        raise SciMLError(f"a Hilbert index of {d} dims x {bits} bits does not fit 64 bits; use fewer of either")
    top = np.uint64(1) << np.uint64(bits - 1)
    q = top
    while q > 1:  # undo excess work
        low = q - np.uint64(1)
        for i in range(d):
            flip = (X[:, i] & q) != 0
            X[flip, 0] ^= low
            swap = ~flip
            t = (X[swap, 0] ^ X[swap, i]) & low
            X[swap, 0] ^= t
            X[swap, i] ^= t
        q >>= np.uint64(1)
    for i in range(1, d):  # Gray encode
        X[:, i] ^= X[:, i - 1]
    t = np.zeros(n, dtype=np.uint64)
    q = top
    while q > 1:
        t[(X[:, d - 1] & q) != 0] ^= q - np.uint64(1)
        q >>= np.uint64(1)
    X ^= t[:, None]
    index = np.zeros(n, dtype=np.uint64)
    for b in range(bits - 1, -1, -1):  # interleave the transposed bits, most significant first
        for i in range(d):
            index = (index << np.uint64(1)) | ((X[:, i] >> np.uint64(b)) & np.uint64(1))
    return index


def _greedy(features: np.ndarray) -> np.ndarray:
    F = np.asarray(features, dtype=float)
    n = len(F)
    squared = np.einsum("ij,ij->i", F, F)
    current = int(np.argmax(np.linalg.norm(F - F.mean(0), axis=1)))
    visited = np.zeros(n, dtype=bool)
    order = np.empty(n, dtype=np.int64)
    for step in range(n):
        order[step] = current
        visited[current] = True
        if step == n - 1:
            break
        distance = squared - 2.0 * (F @ F[current])  # + |F_current|^2, the same for all
        distance[visited] = np.inf
        current = int(np.argmin(distance))
    return order


def _curve(features: np.ndarray, components: int = 3, bits: int = 16) -> np.ndarray:
    F = np.asarray(features, dtype=float)
    centred = F - F.mean(0)
    k = max(1, min(components, F.shape[1], len(F)))
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vectors[:, ::-1][:, :k]
    low, high = projected.min(0), projected.max(0)
    scale = np.where(high > low, (2**bits - 1) / np.where(high > low, high - low, 1.0), 0.0)
    cells = np.floor((projected - low) * scale).astype(np.uint64)
    return np.argsort(hilbert_index(cells, bits), kind="stable")


ORDERINGS.register("none", lambda features: np.arange(len(features)))
ORDERINGS.register("greedy", _greedy)
ORDERINGS.register("curve", _curve)


def order_systems(fields: np.ndarray, method: str = "curve", modes: int = 8) -> np.ndarray:
    """A permutation of the ``N`` systems whose parameter ``fields`` (``(N, *grid)``) are given.

    Parameters
    ----------
    fields : ndarray, shape (N, *grid)
        The parameter field of each system (e.g. Darcy's coefficient).
    method : {"curve", "greedy", "none"}
    modes : int
        DCT modes per axis in the features both orderings compare.

    Returns
    -------
    ndarray of int, shape (N,)
        Solve system ``order[0]`` first, then ``order[1]``, ...
    """
    ordering = ORDERINGS.get(method)
    fields = np.asarray(fields)
    if len(fields) == 0:
        return np.zeros(0, dtype=np.int64)
    if not np.all(np.isfinite(fields)):
        raise SciMLError("the parameter fields contain NaN or Inf; check the generator's inputs")
    return np.asarray(ordering(lowpass_features(fields, modes)), dtype=np.int64)
