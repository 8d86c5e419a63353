"""PDE problems that generate training data: the problem interface, Darcy flow, the
DeepONet paper's 1-D operators (antiderivative, nonlinear ODE), and the random fields and
finite-volume matrices they are built from.

Importing this package registers every problem in :data:`PROBLEMS`.

Examples
--------
>>> from sciml.datasets import PROBLEMS, get_problem
>>> PROBLEMS.names()
['antiderivative', 'darcy', 'nonlinear-ode']
>>> get_problem("darcy")(resolution=8).grid_shape
(8, 8)
"""

from .problem import PROBLEMS, PDEProblem, Sample, get_problem
from .random_fields import gaussian_random_field, rbf_random_field
from .finite_volume import diffusion_matrix
from .darcy import Darcy
from .operator_odes import Antiderivative, NonlinearODE

__all__ = [
    "PDEProblem",
    "Sample",
    "PROBLEMS",
    "get_problem",
    "Darcy",
    "Antiderivative",
    "NonlinearODE",
    "gaussian_random_field",
    "rbf_random_field",
    "diffusion_matrix",
]
