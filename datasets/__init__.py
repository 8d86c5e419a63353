"""PDE problems that generate training data: the problem interface, Darcy flow, Helmholtz,
Poisson, advection-diffusion, pressure Poisson around obstacles, the DeepONet paper's 1-D
operators (antiderivative, nonlinear ODE), the sequences of systems for learned relaxation,
and the random fields and finite-volume matrices they are built from.

Importing this package registers every problem in :data:`PROBLEMS`.

Examples
--------
>>> from sciml.datasets import PROBLEMS, get_problem
>>> PROBLEMS.names()
['advection-diffusion', 'antiderivative', 'darcy', 'helmholtz', 'nonlinear-ode', 'obstacle-poisson',
 'poisson']
>>> get_problem("darcy")(resolution=8).grid_shape
(8, 8)
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
    "gaussian_random_field",
    "rbf_random_field",
    "diffusion_matrix",
    "convection_matrix",
]
