"""The interface of time-dependent data generators (Navier-Stokes, shallow water, MPM).

A :class:`TrajectoryGenerator` simulates a batch of samples at once (one torch batch,
on a GPU when there is one) and hands back arrays; :func:`sciml.simulate.simulate_dataset`
stages the batches into a resumable :mod:`sciml.trajectory_file`. Subclasses register by
name, like the steady problems, so ``sciml generate NAME`` finds them.

Examples
--------
>>> from sciml.datasets.trajectory_generator import TRAJECTORY_GENERATORS
>>> import sciml.datasets
>>> "navier-stokes" in TRAJECTORY_GENERATORS.names()
True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import numpy as np

from sciml.registry import Registry

TRAJECTORY_GENERATORS: Registry = Registry("time-dependent generator")


class TrajectoryGenerator(ABC):
    """A registered generator of trajectories, batched over samples.

    Subclass with ``class NS(TrajectoryGenerator, name="navier-stokes")``; the
    constructor's keyword arguments are the ``pde.*`` settings of ``sciml generate``.

    Attributes
    ----------
    layout : str
        ``"grid"`` (fields ``(sample, time, *space)``) or ``"particles"`` (ragged
        particle positions), the :mod:`sciml.trajectory_file` layouts.
    version : str
        Bumped whenever the same settings would produce different data.
    """

    name: ClassVar[str] = ""
    layout: ClassVar[str] = "grid"
    version: ClassVar[str] = "0"

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            TRAJECTORY_GENERATORS.register(name, cls)

    @abstractmethod
    def parameters(self) -> dict[str, Any]:
        """The JSON settings that, with the seeds, determine the data (stored in the file)."""

    @abstractmethod
    def coords(self) -> dict[str, np.ndarray]:
        """``time`` and, for grids, the spatial coordinates (``x``, ``y``[, ``z``])."""

    @abstractmethod
    def simulate(self, seeds: Sequence[int], device=None) -> dict:
        """The trajectories of the samples drawn from ``seeds``, as numpy arrays.

        Grid layout: field name -> ``(len(seeds), time, *space)``. Particle layout:
        ``position`` and ``particle_type`` lists. A diverging simulation raises
        :class:`~sciml.errors.SciMLError` naming the sample and step.
        """

    def metadata(self) -> dict[str, Any]:
        """What a model or a residual needs beside the arrays (time step, viscosity, ...)."""
        return {}

    def dataset_metadata(self, read_all) -> dict[str, Any]:
        """Statistics over the finished dataset (e.g. GNS velocity statistics);
        ``read_all()`` returns the :class:`sciml.trajectory_file.Trajectories`."""
        return {}


def get_trajectory_generator(name: str) -> type[TrajectoryGenerator]:
    """The generator class registered as ``name`` (an unknown name lists the valid ones)."""
    return TRAJECTORY_GENERATORS.get(name)
