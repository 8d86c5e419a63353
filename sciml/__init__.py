"""sciml: scientific machine learning on PDEs.

Subpackages
-----------
sciml.datasets
    PDE problems that sample parameters and assemble sparse systems.
sciml.solvers
    Linear solvers with scipy's calling convention and one stopping rule.
sciml.models
    Neural operators, registered by name.

Glue modules in this package: the dataset file format (:mod:`sciml.dataset_file`,
:mod:`sciml.validate`, :mod:`sciml.loader`), generation (:mod:`sciml.generate`),
training (:mod:`sciml.training`), evaluation (:mod:`sciml.evaluation`), metrics,
configuration and the ``sciml`` command line (:mod:`sciml.cli`).
"""

__version__ = "0.1.0"
