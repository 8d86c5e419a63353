"""The interface every PDE problem implements.

A problem samples its parameter fields from a seed, assembles a sparse linear system
(scipy CSR) and hands it to a solver it is given, so any solver from
:mod:`sciml.solvers` drops in without editing the problem.

Examples
--------
>>> import numpy as np
>>> from sciml.datasets import get_problem
>>> from sciml.solvers import LinearSolver
>>> problem = get_problem("darcy")(resolution=16)
>>> sample = problem.generate_sample(seed=0, solver=LinearSolver("cg", preconditioner="amg"))
>>> sorted(sample.fields), sample.record.converged
(['a', 'f', 'u'], True)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError
from sciml.registry import Registry

PROBLEMS: Registry[type["PDEProblem"]] = Registry("PDE")
SPATIAL_DIMS = ("x", "y", "z")


def check_number(what: str, name: str, value, positive: bool = False) -> float:
    """``value`` as a finite float (and > 0 where ``positive``), or a one-line :class:`SciMLError`.

    Examples
    --------
    >>> check_number("helmholtz", "omega", 20)
    20.0
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SciMLError(f"{what} setting {name} must be a number, got {value!r}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise SciMLError(f"{what} setting {name} must be finite{' and > 0' if positive else ''}, got {value!r}")
    return float(value)


def get_problem(name: str) -> type["PDEProblem"]:
    """The problem class registered as ``name`` (an error lists the valid names)."""
    return PROBLEMS.get(name)


@dataclass
class Sample:
    """One generated sample: every named field on the grid and the solver's record."""

    seed: int
    fields: dict[str, np.ndarray]
    record: Any  # sciml.solvers.SolveResult


class PDEProblem(ABC):
    """Base class of PDE problems; subclasses register with ``name=``.

    Subclasses set ``version`` (bumped whenever the generated data would change),
    ``input_names``, ``output_names`` and, where a better one exists,
    ``default_solver``, and implement :meth:`sample_inputs`,
    :meth:`assemble` and :meth:`fields_from_solution`. They also declare what a solver
    may exploit: ``symmetric_positive_definite``, ``fixed_operator`` and
    ``ordering_fields``. A problem whose field names depend on its settings (the
    dimension, a boundary condition) sets ``input_names``, ``output_names`` and
    ``ordering_fields`` on the instance as well; the class values are those of its
    default settings.

    Parameters
    ----------
    resolution : int
        Grid points per spatial dimension.
    dim : int
        Number of spatial dimensions.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0"
    input_names: ClassVar[tuple[str, ...]] = ()
    output_names: ClassVar[tuple[str, ...]] = ()
    parameter_names: ClassVar[tuple[str, ...]] = ()
    """Attributes that, with the grid, describe an instance (:meth:`parameters`)."""
    default_solver: ClassVar[dict[str, Any]] = {"method": "direct", "preconditioner": "none"}
    """Solver settings ``sciml generate`` uses unless told otherwise: a sparse direct solve,
    safe for any nonsingular system; SPD problems override it with CG + AMG. Where the best
    choice depends on the settings (e.g. the dimension), :meth:`recommended_solver` of an
    instance says so."""
    symmetric_positive_definite: ClassVar[bool] = False
    """Whether every assembled ``A`` is symmetric positive definite (CG and recycled CG
    apply), rather than merely nonsingular (GMRES, GCRO-DR)."""
    fixed_operator: ClassVar[bool] = False
    """Whether ``A`` is the same for every sample, only ``b`` changing, so a solver may
    factorise or set up once and reuse it."""
    ordering_fields: ClassVar[tuple[str, ...]] = ()
    """Input fields whose similarity orders a batch for sorted recycling (the fields ``A``
    depends on); a subclass that does not set it gets all its ``input_names``."""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if "ordering_fields" not in cls.__dict__:
            cls.ordering_fields = tuple(cls.input_names)
        unknown = sorted(set(cls.ordering_fields) - set(cls.input_names))
        if unknown:
            raise SciMLError(f"{cls.__name__}.ordering_fields names {unknown[0]!r}, which is not an input; "
                             f"choose from {list(cls.input_names)}")
        if name is not None:
            cls.name = name
            PROBLEMS.register(name, cls)

    def __init__(self, resolution: int, dim: int = 2):
        if int(resolution) != resolution or resolution < 3:
            raise SciMLError(f"resolution must be an integer >= 3, got {resolution!r}")
        if dim not in (1, 2, 3):
            raise SciMLError(f"dim must be 1, 2 or 3, got {dim!r}")
        self.resolution = int(resolution)
        self.dim = int(dim)

    # -- the grid ---------------------------------------------------------------
    @property
    def dims(self) -> tuple[str, ...]:
        """Names of the spatial dimensions, in array order."""
        return SPATIAL_DIMS[: self.dim]

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return (self.resolution,) * self.dim

    def coordinates(self) -> dict[str, np.ndarray]:
        """Coordinate values along each spatial dimension (cell centres of the unit cube)."""
        h = 1.0 / self.resolution
        centres = (np.arange(self.resolution) + 0.5) * h
        return {d: centres.copy() for d in self.dims}

    def parameters(self) -> dict[str, Any]:
        """JSON-serialisable description of the problem, stored in every file.

        The grid plus every attribute named in ``parameter_names`` (tuples as lists).
        """
        extra = {name: getattr(self, name) for name in self.parameter_names}
        return {"resolution": self.resolution, "dim": self.dim,
                **{k: list(v) if isinstance(v, tuple) else v for k, v in extra.items()}}

    def recommended_solver(self) -> dict[str, Any]:
        """Solver settings suited to this instance; the class's ``default_solver`` unless a
        subclass knows better for its settings (e.g. an iterative method in 3-D)."""
        return dict(self.default_solver)

    # -- what subclasses implement ----------------------------------------------
    @abstractmethod
    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the input fields (grid-shaped arrays named by ``input_names``)."""

    @abstractmethod
    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The sparse system ``A x = b`` for the given input fields."""

    @abstractmethod
    def fields_from_solution(
        self, x: np.ndarray, inputs: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """Output fields (named by ``output_names``) from the solution vector."""

    def checked_field(self, inputs: dict[str, np.ndarray], name: str, positive: bool = False) -> np.ndarray:
        """Input field ``name`` as float64 on the grid, or a one-line :class:`SciMLError`.

        Checks that ``inputs`` has the field, that it has the grid shape and that it is
        finite (and > 0 where ``positive``) in every cell.

        Examples
        --------
        >>> import numpy as np
        >>> from sciml.datasets import get_problem
        >>> get_problem("poisson")(resolution=4).checked_field({"f": np.ones((4, 4))}, "f").dtype
        dtype('float64')
        """
        if name not in inputs:
            raise SciMLError(f"{self.name} inputs lack field {name!r}; pass a dict with keys {list(self.input_names)}")
        field = np.asarray(inputs[name], dtype=np.float64)
        if field.shape != self.grid_shape:
            raise SciMLError(
                f"{self.name} input {name!r} has shape {field.shape}, expected the grid shape {self.grid_shape}"
            )
        bad = ~(np.isfinite(field) & (field > 0)) if positive else ~np.isfinite(field)
        if bad.any():
            need = "finite and > 0" if positive else "finite"
            raise SciMLError(
                f"{self.name} input {name!r} must be {need} everywhere; {int(bad.sum())} cell(s) are not "
                f"(first: {field.ravel()[np.flatnonzero(bad)[0]]!r}); fix the field"
            )
        return field

    def check_solution_size(self, x: np.ndarray) -> np.ndarray:
        """``x`` as an array of one value per cell, or a one-line :class:`SciMLError`."""
        x = np.asarray(x)
        if x.size != math.prod(self.grid_shape):
            raise SciMLError(
                f"{self.name} solution has {x.size} values, expected {math.prod(self.grid_shape)} "
                f"for grid {self.grid_shape}"
            )
        return x

    # -- shared driver ----------------------------------------------------------
    def generate_sample(self, seed: int, solver) -> Sample:
        """Draw inputs from ``seed``, assemble, solve with ``solver`` and collect the fields.

        ``solver`` is any object with ``solve(A, b, x0=None) -> SolveResult``, such as
        :class:`sciml.solvers.LinearSolver`. A solve that did not converge is returned
        with ``record.converged == False``; the caller decides what to do with it.
        """
        rng = np.random.default_rng(seed)
        inputs = self.sample_inputs(rng)
        A, b = self.assemble(inputs)
        record = solver.solve(A, b)
        fields = dict(inputs)
        fields.update(self.fields_from_solution(record.x, inputs))
        return Sample(seed=int(seed), fields=fields, record=record)
