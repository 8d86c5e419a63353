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

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from sciml.registry import Registry

PROBLEMS: Registry[type["PDEProblem"]] = Registry("PDE")
SPATIAL_DIMS = ("x", "y", "z")


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
    :meth:`assemble` and :meth:`fields_from_solution`.

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
    default_solver: ClassVar[dict[str, Any]] = {"method": "direct", "preconditioner": "none"}
    """Solver settings ``sciml generate`` uses unless told otherwise: a sparse direct solve,
    safe for any nonsingular system; SPD problems override it with CG + AMG."""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            PROBLEMS.register(name, cls)

    def __init__(self, resolution: int, dim: int = 2):
        from sciml.errors import SciMLError

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
        """JSON-serialisable description of the problem, stored in every file."""
        return {"resolution": self.resolution, "dim": self.dim}

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
