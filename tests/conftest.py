"""Shared fixtures: tiny, seeded Darcy datasets written through the real generator."""

import numpy as np
import pytest

from sciml.datasets import get_problem
from sciml.generate import generate_dataset
from sciml.solvers import LinearSolver


@pytest.fixture(scope="session")
def darcy_file(tmp_path_factory):
    """12 Darcy samples on a 16x16 grid."""
    path = tmp_path_factory.mktemp("data") / "darcy16.nc"
    generate_dataset(get_problem("darcy")(resolution=16), LinearSolver("cg", preconditioner="amg"),
                     n_samples=12, out=path, seed=1, progress=False)
    return path


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest, and reproducibly, on one thread; restores the count after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def rng():
    return np.random.default_rng(0)
