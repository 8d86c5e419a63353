"""The pressure Poisson equation of a smoke simulation, on a grid with solid obstacles.

A fluid solver's projection step solves ``-lap p = f`` (``f = -div u* / dt``) in the
fluid, with ``dp/dn = 0`` on the faces of solid obstacles and of the domain walls. With
Neumann conditions everywhere the system is singular (constants are in its kernel), so
one side of the box is *open*: an outflow face where ``p = 0``, as the open top of a
smoke simulation. This is the system family on which Kaneda et al. ("A Deep Conjugate
Direction Method for Iteratively Solving Linear Systems", ICML 2023) train and test DCDM.

Discretisation (cell-centred finite volumes, the two-point flux of
:mod:`sciml.datasets.finite_volume` with a mask-weighted face conductance): between two
neighbouring cells the face conductance is ``1/h^2`` when both are fluid and 0 otherwise,
so a fluid-solid face and a domain wall carry no flux (homogeneous Neumann); a fluid cell
on the open face gets ``2/h^2`` on its diagonal (the Dirichlet value ``p = 0`` half a cell
away). Fluid regions that do not reach the open face through fluid faces (pockets sealed
by obstacles) would be pure-Neumann, singular blocks; :func:`open_fluid` turns them into
solid. A solid cell keeps a decoupled row ``(2 d / h^2) p_i = 0`` so every vector is a
whole grid field (as in grid-based smoke solvers); its pressure is zero. The matrix is
then symmetric positive definite: an irreducibly diagonally dominant M-matrix on every
fluid region plus a positive diagonal on the solid cells.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets.obstacle_poisson import ObstaclePoisson
>>> problem = ObstaclePoisson(resolution=16, dim=2)
>>> inputs = problem.sample_inputs(np.random.default_rng(0))
>>> A, b = problem.assemble(inputs)
>>> A.shape, bool(abs(A - A.T).max() == 0), bool(np.all(b[inputs["mask"].ravel() == 0] == 0))
((256, 256), True, True)
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import scipy.ndimage
import scipy.sparse as sp

from sciml.errors import SciMLError

from .problem import PDEProblem
from .random_fields import check_grf_parameters, gaussian_random_field

__all__ = ["ObstaclePoisson", "pressure_matrix", "open_fluid", "obstacle_layout", "moving_obstacle_layouts",
           "parse_open_face"]

_AXES = "xyz"


def parse_open_face(open_face: str, dim: int) -> tuple[int, int]:
    """``"+x"``, ``"-y"``, ... as ``(axis, side)`` with side ``+1`` (upper end) or ``-1``.

    Examples
    --------
    >>> parse_open_face("+y", 2)
    (1, 1)
    """
    if (not isinstance(open_face, str) or len(open_face) != 2 or open_face[0] not in "+-"
            or open_face[1] not in _AXES[:dim]):
        faces = ", ".join(s + a for a in _AXES[:dim] for s in "+-")
        raise SciMLError(f"open_face must name one side of the {dim}-D box, one of {faces}; got {open_face!r}")
    return _AXES.index(open_face[1]), 1 if open_face[0] == "+" else -1


def _face_slice(ndim: int, axis: int, side: int) -> tuple[slice, ...]:
    """The layer of cells on the ``side`` end of ``axis``."""
    layer = slice(-1, None) if side > 0 else slice(0, 1)
    return tuple(layer if i == axis else slice(None) for i in range(ndim))


def _pair_slices(ndim: int, axis: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """Slices of the lower and upper cell of every interior face normal to ``axis``."""
    lower = tuple(slice(None, -1) if i == axis else slice(None) for i in range(ndim))
    upper = tuple(slice(1, None) if i == axis else slice(None) for i in range(ndim))
    return lower, upper


def _check_mask(fluid, what: str = "fluid mask") -> np.ndarray:
    fluid = np.asarray(fluid)
    if fluid.ndim not in (2, 3) or min(fluid.shape) < 1:
        raise SciMLError(f"{what} must be a 2-D or 3-D grid, got shape {fluid.shape}")
    if fluid.dtype != bool:
        if not np.isin(fluid, (0, 1)).all():
            raise SciMLError(f"{what} must hold only 0 (solid) and 1 (fluid); convert it with mask > 0.5")
        fluid = fluid.astype(bool)
    return fluid


def open_fluid(fluid: np.ndarray, open_face: str = "+x") -> np.ndarray:
    """The fluid cells connected to the open face through fluid faces; sealed pockets become solid.

    Examples
    --------
    >>> import numpy as np
    >>> fluid = np.ones((5, 5), bool); fluid[1:4, 1:4] = False; fluid[2, 2] = True   # sealed cell
    >>> bool(open_fluid(fluid)[2, 2]), int(open_fluid(fluid).sum())
    (False, 16)
    """
    fluid = _check_mask(fluid)
    axis, side = parse_open_face(open_face, fluid.ndim)
    labels, _ = scipy.ndimage.label(fluid)  # face connectivity
    open_labels = np.unique(labels[_face_slice(fluid.ndim, axis, side)])
    return np.isin(labels, open_labels[open_labels > 0])


def pressure_matrix(fluid: np.ndarray, h: float, open_face: str = "+x") -> sp.csr_matrix:
    """The finite-volume matrix of ``-lap p`` with Neumann walls and an open (``p = 0``) face.

    See the module docstring. Unknowns are all grid cells in C order; the rows of solid
    cells are decoupled, ``(2 d / h^2) p_i``.

    Parameters
    ----------
    fluid : ndarray of bool (or 0/1)
        Fluid mask on a 2-D or 3-D grid; every fluid region must touch the open face
        (pass it through :func:`open_fluid` first).
    h : float
        Cell width.
    open_face : str
        The outflow side, ``"+x"`` (upper end of axis 0, the default), ``"-y"``, ...

    Returns
    -------
    scipy.sparse.csr_matrix
        Symmetric positive definite, ``fluid.size`` square.

    Examples
    --------
    >>> import numpy as np
    >>> pressure_matrix(np.ones((3, 1), bool), h=1.0).toarray()
    array([[ 1., -1.,  0.],
           [-1.,  2., -1.],
           [ 0., -1.,  3.]])
    """
    fluid = _check_mask(fluid)
    if not isinstance(h, (int, float, np.integer, np.floating)) or not math.isfinite(h) or h <= 0:
        raise SciMLError(f"grid spacing h must be a finite number > 0, got {h!r}")
    sealed = fluid & ~open_fluid(fluid, open_face)
    if sealed.any():
        raise SciMLError(f"{int(sealed.sum())} fluid cell(s) do not reach the open face {open_face}, so the system "
                         "is singular; pass the mask through open_fluid(mask, open_face) first")
    ndim, inv_h2 = fluid.ndim, 1.0 / float(h) ** 2
    number = np.arange(fluid.size).reshape(fluid.shape)
    diagonal = np.zeros(fluid.shape)
    rows, cols, values = [], [], []
    for axis in range(ndim):
        lower, upper = _pair_slices(ndim, axis)
        conductance = (fluid[lower] & fluid[upper]) * inv_h2
        diagonal[lower] += conductance
        diagonal[upper] += conductance
        coupled = conductance > 0
        rows += [number[lower][coupled], number[upper][coupled]]
        cols += [number[upper][coupled], number[lower][coupled]]
        values += [-conductance[coupled], -conductance[coupled]]
    axis, side = parse_open_face(open_face, ndim)
    face = _face_slice(ndim, axis, side)
    diagonal[face] += 2.0 * inv_h2 * fluid[face]
    diagonal[~fluid] = 2.0 * ndim * inv_h2
    rows.append(number.ravel())
    cols.append(number.ravel())
    values.append(diagonal.ravel())
    matrix = sp.coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(fluid.size, fluid.size))
    return sp.csr_matrix(matrix)


def _centres(shape: Sequence[int]) -> list[np.ndarray]:
    """Cell-centre coordinates on the unit cube, broadcastable over the grid."""
    return np.meshgrid(*((np.arange(n) + 0.5) / n for n in shape), indexing="ij", sparse=True)


def _box(shape, centre, half_widths) -> np.ndarray:
    inside = np.ones(shape, bool)
    for x, c, w in zip(_centres(shape), centre, half_widths):
        inside &= abs(x - c) <= w
    return inside


def _ball(shape, centre, radius) -> np.ndarray:
    return sum((x - c) ** 2 for x, c in zip(_centres(shape), centre)) <= radius**2


def _check_layout_args(shape, n_boxes, n_spheres, size) -> tuple[int, ...]:
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3) or min(shape) < 3:
        raise SciMLError(f"obstacle layouts need a 2-D or 3-D grid with >= 3 cells per axis, got {shape}")
    for name, value in (("n_boxes", n_boxes), ("n_spheres", n_spheres)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise SciMLError(f"{name} must be an integer >= 0, got {value!r}")
    low, high = size
    if not 0 < low <= high < 0.5:
        raise SciMLError(f"obstacle size range must satisfy 0 < low <= high < 0.5 (fraction of the box), got {size}")
    return shape


def obstacle_layout(shape: Sequence[int], rng: np.random.Generator | int, *, n_boxes: int = 2,
                    n_spheres: int = 2, size: tuple[float, float] = (0.06, 0.18),
                    open_face: str = "+x") -> np.ndarray:
    """A random fluid mask: axis-aligned boxes and spheres (discs in 2-D) as solids.

    Box half-widths and sphere radii are drawn uniformly from ``size`` (fractions of the
    unit box); centres uniformly in the box. Pockets sealed from the open face become
    solid (:func:`open_fluid`).

    Returns
    -------
    ndarray of bool
        True in fluid cells.

    Examples
    --------
    >>> fluid = obstacle_layout((32, 32), rng=0, n_boxes=1, n_spheres=1)
    >>> fluid.dtype, fluid.shape, bool(0.5 < fluid.mean() < 1.0)
    (dtype('bool'), (32, 32), True)
    """
    shape = _check_layout_args(shape, n_boxes, n_spheres, size)
    rng = np.random.default_rng(rng)
    solid = np.zeros(shape, bool)
    for _ in range(n_boxes):
        solid |= _box(shape, rng.uniform(0, 1, len(shape)), rng.uniform(*size, len(shape)))
    for _ in range(n_spheres):
        solid |= _ball(shape, rng.uniform(0, 1, len(shape)), rng.uniform(*size))
    return open_fluid(~solid, open_face)


def moving_obstacle_layouts(shape: Sequence[int], n_frames: int, rng: np.random.Generator | int, *,
                            radius: float = 0.12, n_boxes: int = 1, size: tuple[float, float] = (0.06, 0.18),
                            open_face: str = "+x") -> list[np.ndarray]:
    """Fluid masks of a sphere moving on a straight line through static boxes, one per frame.

    The sphere travels at constant speed from a random point near one wall to a random
    point near the opposite wall (along the axis normal to the open face), as the moving
    object of the paper's smoke scenes; the boxes stay put.

    Examples
    --------
    >>> frames = moving_obstacle_layouts((24, 24), n_frames=3, rng=0)
    >>> len(frames), bool((frames[0] != frames[2]).any())
    (3, True)
    """
    shape = _check_layout_args(shape, n_boxes, 0, size)
    if isinstance(n_frames, bool) or not isinstance(n_frames, (int, np.integer)) or n_frames < 1:
        raise SciMLError(f"n_frames must be an integer >= 1, got {n_frames!r}")
    if not 0 < radius < 0.5:
        raise SciMLError(f"radius must be in (0, 0.5) (fraction of the box), got {radius!r}")
    rng = np.random.default_rng(rng)
    static = np.zeros(shape, bool)
    for _ in range(n_boxes):
        static |= _box(shape, rng.uniform(0, 1, len(shape)), rng.uniform(*size, len(shape)))
    axis, _ = parse_open_face(open_face, len(shape))
    start, end = rng.uniform(0.2, 0.8, len(shape)), rng.uniform(0.2, 0.8, len(shape))
    start[axis], end[axis] = radius + 0.05, 1 - radius - 0.05
    frames = []
    for t in np.linspace(0.0, 1.0, n_frames):
        frames.append(open_fluid(~(static | _ball(shape, (1 - t) * start + t * end, radius)), open_face))
    return frames


class ObstaclePoisson(PDEProblem, name="obstacle-poisson"):
    """Pressure Poisson ``-lap p = f`` around random solid obstacles, Neumann walls, one open face.

    The system family of the smoke scenes of Kaneda et al. (ICML 2023), where DCDM is
    trained and tested; the discretisation and the treatment of solids are in the module
    docstring. Inputs are the fluid ``mask`` (1 fluid, 0 solid) and the source ``f``
    (the velocity divergence of a smoke step; here a Gaussian random field, alpha and
    tau as in :func:`~sciml.datasets.gaussian_random_field`, zero in the solid); the
    output is the pressure ``p`` (zero in the solid). Departures from the paper: its
    scenes come from a running smoke simulation, here layouts are random boxes and
    spheres (:func:`obstacle_layout`) or a moving sphere (:meth:`sample_sequence`), and
    the right-hand side is a random field rather than a simulated divergence.

    Parameters
    ----------
    resolution : int
        Cells per axis (>= 3).
    dim : int
        2 or 3.
    n_boxes, n_spheres : int
        Obstacles per layout.
    obstacle_size : (float, float)
        Range of box half-widths and sphere radii, as fractions of the box.
    open_face : str
        The outflow side where ``p = 0`` (``"+x"``: the upper end of axis 0).
    alpha, tau : float
        Smoothness and inverse length scale of the source field.

    Examples
    --------
    >>> from sciml.solvers import LinearSolver
    >>> problem = ObstaclePoisson(resolution=16)
    >>> sample = problem.generate_sample(seed=0, solver=LinearSolver("cg", preconditioner="amg"))
    >>> sorted(sample.fields), sample.record.converged
    (['f', 'mask', 'p'], True)
    """

    version = "1"
    parameter_names = ('n_boxes', 'n_spheres', 'obstacle_size', 'open_face', 'alpha', 'tau')
    input_names = ("mask", "f")
    output_names = ("p",)
    default_solver = {"method": "cg", "preconditioner": "amg"}  # SPD

    def __init__(self, resolution: int, dim: int = 2, n_boxes: int = 2, n_spheres: int = 2,
                 obstacle_size: Sequence[float] = (0.06, 0.18), open_face: str = "+x",
                 alpha: float = 2.0, tau: float = 3.0):
        super().__init__(resolution, dim)
        if self.dim == 1:
            raise SciMLError("obstacle-poisson needs dim 2 or 3: an obstacle would cut a 1-D domain in two")
        size = tuple(float(s) for s in obstacle_size)
        if len(size) != 2:
            raise SciMLError(f"obstacle_size must be a (low, high) pair, got {obstacle_size!r}")
        _check_layout_args(self.grid_shape, n_boxes, n_spheres, size)
        parse_open_face(open_face, self.dim)
        check_grf_parameters(self.dim, alpha, tau)
        self.n_boxes, self.n_spheres, self.obstacle_size = int(n_boxes), int(n_spheres), size
        self.open_face, self.alpha, self.tau = open_face, float(alpha), float(tau)

    @property
    def h(self) -> float:
        return 1.0 / self.resolution


    def _inputs(self, fluid: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        f = gaussian_random_field(self.grid_shape, self.alpha, self.tau, rng)
        return {"mask": fluid.astype(np.float64), "f": np.where(fluid, f, 0.0)}

    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """A random obstacle layout and a random source in its fluid."""
        fluid = obstacle_layout(self.grid_shape, rng, n_boxes=self.n_boxes, n_spheres=self.n_spheres,
                                size=self.obstacle_size, open_face=self.open_face)
        return self._inputs(fluid, rng)

    def sample_sequence(self, seed: int, n_frames: int, radius: float = 0.12) -> list[dict[str, np.ndarray]]:
        """Inputs of ``n_frames`` frames with a sphere moving through ``n_boxes`` static boxes.

        Examples
        --------
        >>> frames = ObstaclePoisson(resolution=16).sample_sequence(seed=0, n_frames=2)
        >>> [sorted(frame) for frame in frames]
        [['f', 'mask'], ['f', 'mask']]
        """
        rng = np.random.default_rng(seed)
        masks = moving_obstacle_layouts(self.grid_shape, n_frames, rng, radius=radius, n_boxes=self.n_boxes,
                                        size=self.obstacle_size, open_face=self.open_face)
        return [self._inputs(fluid, rng) for fluid in masks]

    def _field(self, inputs: dict[str, np.ndarray], name: str) -> np.ndarray:
        if name not in inputs:
            raise SciMLError(f"obstacle-poisson inputs lack field {name!r}; pass a dict with keys {list(self.input_names)}")
        field = np.asarray(inputs[name], dtype=np.float64)
        if field.shape != self.grid_shape:
            raise SciMLError(f"obstacle-poisson input {name!r} has shape {field.shape}, expected {self.grid_shape}")
        if not np.isfinite(field).all():
            raise SciMLError(f"obstacle-poisson input {name!r} contains NaN or Inf; fix the field")
        return field

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The system ``A p = b``: ``b = f`` in the fluid and 0 in the solid (C order)."""
        fluid = _check_mask(self._field(inputs, "mask"), "obstacle-poisson input 'mask'")
        f = self._field(inputs, "f")
        return pressure_matrix(fluid, self.h, self.open_face), np.where(fluid, f, 0.0).ravel()

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The pressure ``p`` on the grid."""
        x = np.asarray(x)
        if x.size != math.prod(self.grid_shape):
            raise SciMLError(f"obstacle-poisson solution has {x.size} values, expected {math.prod(self.grid_shape)}")
        return {"p": x.reshape(self.grid_shape)}
