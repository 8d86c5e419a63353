"""PDE problems that generate training data: the problem interface, Darcy flow, Helmholtz,
Poisson, advection-diffusion, pressure Poisson around obstacles, the DeepONet paper's 1-D
operators (antiderivative, nonlinear ODE), the sequences of systems for learned relaxation,
and the random fields and finite-volume matrices they are built from; and the
time-dependent generators (2-D Navier-Stokes, shallow water, 1-D diffusion-sorption, and
MPM particle scenes).

Importing this package registers every steady problem in :data:`PROBLEMS` and every
time-dependent generator (a :class:`TrajectoryGenerator`, simulated in batches by
:func:`sciml.simulate.simulate_dataset`) in :data:`TRAJECTORY_GENERATORS`.

Examples
--------
>>> from sciml.datasets import PROBLEMS, TRAJECTORY_GENERATORS, get_problem, get_trajectory_generator
>>> PROBLEMS.names()
['advection-diffusion', 'antiderivative', 'darcy', 'helmholtz', 'nonlinear-ode', 'obstacle-poisson',
 'poisson']
>>> get_problem("darcy")(resolution=8).grid_shape
(8, 8)
>>> [name for name in ("diffusion-sorption", "mpm", "navier-stokes", "shallow-water") if name in TRAJECTORY_GENERATORS]
['diffusion-sorption', 'mpm', 'navier-stokes', 'shallow-water']
>>> get_trajectory_generator("mpm").layout
'particles'
>>> get_trajectory_generator("shallow-water")(resolution=8).coords()["x"].shape
(8,)
"""

from .problem import PROBLEMS, PDEProblem, Sample, get_problem
from .random_fields import gaussian_random_field, rbf_random_field
from .finite_volume import convection_matrix, diffusion_matrix
from .darcy import Darcy
from .helmholtz import Helmholtz
from .poisson import Poisson
from .advection_diffusion import AdvectionDiffusion
from .obstacle_poisson import ObstaclePoisson
from .operator_odes import Antiderivative, NonlinearODE
from .relaxation_sequences import HeatEquationSequence, ShiftedLaplacianSequence
from .trajectory_generator import TRAJECTORY_GENERATORS, TrajectoryGenerator, get_trajectory_generator
from .navier_stokes import NavierStokes
from .shallow_water import ShallowWater
from .diffusion_sorption import DiffusionSorption
from .particle_scenes import ParticleScenes

__all__ = [
    "PDEProblem",
    "Sample",
    "PROBLEMS",
    "get_problem",
    "Darcy",
    "Helmholtz",
    "Poisson",
    "AdvectionDiffusion",
    "ObstaclePoisson",
    "Antiderivative",
    "NonlinearODE",
    "ShiftedLaplacianSequence",
    "HeatEquationSequence",
    "TrajectoryGenerator",
    "TRAJECTORY_GENERATORS",
    "get_trajectory_generator",
    "NavierStokes",
    "ShallowWater",
    "DiffusionSorption",
    "ParticleScenes",
    "gaussian_random_field",
    "rbf_random_field",
    "diffusion_matrix",
    "convection_matrix",
]
