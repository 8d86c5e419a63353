"""Orderings of a batch of systems (sorted Krylov recycling's first step)."""

import numpy as np
import pytest

from sciml.errors import SciMLError, UnknownNameError
from sciml.solvers.ordering import hilbert_index, lowpass_features, order_systems, path_length


@pytest.mark.parametrize("dim, bits", [(2, 4), (3, 2), (4, 2)])
def test_hilbert_curve_visits_every_cell_once_moving_one_cell_a_step(dim, bits):
    axes = np.meshgrid(*[np.arange(2**bits)] * dim, indexing="ij")
    cells = np.stack([a.ravel() for a in axes], axis=1)
    index = hilbert_index(cells, bits)
    assert sorted(index.tolist()) == list(range(len(cells)))
    walk = cells[np.argsort(index)]
    assert np.abs(np.diff(walk, axis=0)).sum(axis=1).tolist() == [1] * (len(cells) - 1)


def one_parameter_family(n=300, seed=0):
    """Fields that depend smoothly on one hidden parameter t, in shuffled order."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.5, 3.0, n)
    x = np.linspace(0, 1, 24)
    fields = np.sin(np.pi * t[:, None, None] * x[None, :, None]) * np.cos(np.pi * t[:, None, None] * x[None, None, :])
    return fields, t


@pytest.mark.parametrize("method", ["greedy", "curve"])
def test_orderings_recover_the_hidden_parameter(method):
    fields, t = one_parameter_family()
    order = order_systems(fields, method)
    assert sorted(order.tolist()) == list(range(len(t)))
    steps = np.abs(np.diff(t[order]))
    assert np.median(steps) < 0.02  # a random order's median step is about 0.7
    features = lowpass_features(fields)
    assert path_length(features, order) < 0.2 * path_length(features, np.arange(len(t)))


def test_bad_input():
    with pytest.raises(UnknownNameError, match="unknown ordering 'sorted'"):
        order_systems(np.zeros((3, 4, 4)), "sorted")
    bad = np.zeros((3, 4, 4))
    bad[1, 2, 2] = np.nan
    with pytest.raises(SciMLError, match="NaN"):
        order_systems(bad, "curve")
    assert order_systems(np.zeros((0, 4, 4)), "greedy").shape == (0,)
