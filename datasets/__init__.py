"""PDE problems that generate training data: the problem interface, Darcy flow, and the
Gaussian random fields and finite-volume matrices it is built from.

Importing this package registers every problem in :data:`PROBLEMS`.

Examples
--------
>>> from sciml.datasets import PROBLEMS, get_problem
>>> PROBLEMS.names()
['darcy']
>>> get_problem("darcy")(resolution=8).grid_shape
(8, 8)
"""

from .problem import PROBLEMS, PDEProblem, Sample, get_problem
from .random_fields import gaussian_random_field
from .finite_volume import diffusion_matrix
from .darcy import Darcy

__all__ = [
    "PDEProblem",
    "Sample",
    "PROBLEMS",
    "get_problem",
    "Darcy",
    "gaussian_random_field",
    "diffusion_matrix",
]
