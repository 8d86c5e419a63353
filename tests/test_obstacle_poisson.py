"""The obstacle pressure Poisson problem: an independent check of its discretisation."""

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from sciml.datasets.obstacle_poisson import (
    ObstaclePoisson,
    moving_obstacle_layouts,
    obstacle_layout,
    open_fluid,
    pressure_matrix,
)
from sciml.datasets.problem import PROBLEMS
from sciml.errors import SciMLError
from sciml.solvers import LinearSolver


def _centres(n, dim):
    return np.meshgrid(*[(np.arange(n) + 0.5) / n] * dim, indexing="ij")


@pytest.mark.parametrize("dim, sizes", [(2, (8, 16, 32)), (3, (6, 12))])
def test_manufactured_solution_converges_at_second_order(dim, sizes):
    # p = cos(pi x / 2) prod cos(pi y): p = 0 at x = 1 (open face "+x"), dp/dn = 0 on the other walls
    errors = []
    for n in sizes:
        x = _centres(n, dim)
        exact = np.cos(np.pi * x[0] / 2) * np.prod([np.cos(np.pi * y) for y in x[1:]], axis=0)
        f = np.pi**2 * (0.25 + (dim - 1)) * exact
        A = pressure_matrix(np.ones((n,) * dim, bool), h=1.0 / n, open_face="+x")
        p = sla.spsolve(A.tocsc(), f.ravel())
        errors.append(np.abs(p - exact.ravel()).max())
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 1e-2 and np.all(orders > 1.8), (errors, orders)


@pytest.mark.parametrize("shape", [(12, 12), (6, 7, 6)])
def test_matrix_with_obstacles_is_symmetric_positive_definite(shape):
    fluid = obstacle_layout(shape, rng=3, n_boxes=2, n_spheres=2, size=(0.15, 0.3))
    assert 0 < fluid.sum() < fluid.size
    A = pressure_matrix(fluid, h=1.0 / shape[0]).toarray()
    assert np.array_equal(A, A.T)
    assert np.linalg.eigvalsh(A).min() > 0


def test_no_flux_through_walls_and_obstacles():
    # sum over the fluid of (A p) h^d is the net flux out of the fluid: with Neumann walls and
    # obstacle faces it comes only from the open face, 2/h^2 per open cell, for every p.
    n = 10
    fluid = obstacle_layout((n, n), rng=1, n_boxes=2, n_spheres=1, size=(0.15, 0.25))
    A = pressure_matrix(fluid, h=1.0 / n, open_face="+y")
    column_sums = (np.where(fluid.ravel(), 1.0, 0.0) @ A).reshape(n, n)
    open_cells = np.zeros((n, n), bool)
    open_cells[:, -1] = fluid[:, -1]
    assert np.allclose(column_sums[open_cells], 2.0 * n**2)
    assert np.allclose(column_sums[fluid & ~open_cells], 0.0)
    # constants are in the kernel of the Neumann part: only rows at the open face see them
    rows = (A @ fluid.ravel().astype(float)).reshape(n, n)
    assert np.allclose(rows[fluid & ~open_cells], 0.0)


def test_pinned_system_has_a_unique_constant_free_solution():
    n = 12
    fluid = obstacle_layout((n, n), rng=2)
    A = pressure_matrix(fluid, h=1.0 / n)
    f = np.where(fluid, 1.0, 0.0).ravel()
    p = sla.spsolve(A.tocsc(), f)
    assert np.allclose(A @ p, f)
    # adding a constant on the fluid changes A p: the open face pins the pressure level
    assert not np.allclose(A @ (p + fluid.ravel()), f)
    assert np.all(p[~fluid.ravel()] == 0)


def test_sealed_pockets_become_solid_and_are_refused_in_the_matrix():
    fluid = np.ones((7, 7), bool)
    fluid[1:6, 1:6] = False
    fluid[2:5, 2:5] = True  # a fluid pocket sealed by a solid ring
    with pytest.raises(SciMLError, match="open_fluid"):
        pressure_matrix(fluid, h=1 / 7)
    opened = open_fluid(fluid)
    assert not opened[2:5, 2:5].any() and opened[0].all()
    assert np.linalg.eigvalsh(pressure_matrix(opened, h=1 / 7).toarray()).min() > 0


def test_layouts_are_seeded_and_the_object_moves():
    a = obstacle_layout((16, 16, 16), rng=5)
    assert np.array_equal(a, obstacle_layout((16, 16, 16), rng=5)) and not a.all()
    frames = moving_obstacle_layouts((20, 20), n_frames=4, rng=0, n_boxes=0)
    centres = [np.argwhere(~frame).mean(axis=0)[0] for frame in frames]  # along x, the open-face normal
    assert np.all(np.diff(centres) > 0)


def test_registered_problem_generates_a_sample():
    problem = PROBLEMS.get("obstacle-poisson")(resolution=16)
    sample = problem.generate_sample(seed=0, solver=LinearSolver("cg", preconditioner="amg", rtol=1e-10))
    assert sample.record.converged
    solid = sample.fields["mask"] == 0
    assert solid.any() and np.all(sample.fields["p"][solid] == 0)
    assert problem.parameters()["open_face"] == "+x"
    frames = problem.sample_sequence(seed=1, n_frames=3)
    assert len(frames) == 3 and not np.array_equal(frames[0]["mask"], frames[2]["mask"])


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 1}, "dim 2 or 3"),
    ({"open_face": "+z"}, "open_face"),
    ({"obstacle_size": (0.3, 0.6)}, "size range"),
])
def test_bad_settings_are_refused(kwargs, match):
    with pytest.raises(SciMLError, match=match):
        ObstaclePoisson(resolution=8, **kwargs)


def test_bad_mask_is_refused():
    problem = ObstaclePoisson(resolution=8)
    inputs = problem.sample_inputs(np.random.default_rng(0))
    inputs["mask"] = inputs["mask"] * 0.5
    with pytest.raises(SciMLError, match="0 \\(solid\\) and 1"):
        problem.assemble(inputs)
