"""Linear solvers with scipy's calling convention and one stopping rule.

Every method stops on the **true** residual, ``||b - A x||_2 <= max(rtol ||b||_2,
atol)``, checked on the iterate it returns (:mod:`sciml.solvers.stopping`).

- ``cg``, ``gmres``, ``gcrodr``, ``direct``: scipy's signature, returning ``(x, info)``;
- ``cg_result``, ``gmres_result``, ``gcrodr_result``, ``direct_result``: the same,
  returning a :class:`SolveResult` (residual, iterations, matvecs, history, time, message);
- :class:`RecycleSpace`, :func:`operator_key`: the Krylov recycle space a caller carries
  from solve to solve (``gcrodr(..., recycle=space)``) and the operator fingerprint it
  is bound to;
- ``recycled_cg``/``recycled_cg_result``: deflated CG carrying a recycle space (SPD);
- ``sor``, ``ssor_cg`` (and ``_result``), :class:`SSORPreconditioner`: relaxation, and
  :class:`LearnedRelaxation`, which learns SOR's omega online across a sequence of solves;
- ``dcdm``/``dcdm_result`` (deep conjugate directions), :class:`DCDMPreconditioner` and the
  drop-in contract :class:`LearnedPreconditioner` (``.aspreconditioner()`` as ``M=`` of
  scipy's and pyamg's flexible Krylov methods);
- :class:`LinearSolver`: a method, a preconditioner spec and tolerances, as a
  generator holds it, with JSON settings (and, for a recycling method, its space);
- ``METHODS``, ``PRECONDITIONERS``: the registries; :func:`make_preconditioner`
  builds ``M ~ A^-1`` from a spec such as ``"amg"`` or ``("ilu", {"drop_tol": 1e-4})``;
- :func:`order_systems` (``ORDERINGS``): sort a batch of systems by the similarity of
  their parameter fields, greedy nearest neighbour or a Hilbert curve.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import LinearSolver, cg
>>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
>>> x, info = cg(A, np.ones(100), rtol=1e-10)
>>> info
0
>>> LinearSolver("cg", preconditioner="amg").solve(A, np.ones(100)).converged
True
"""

from sciml.solvers.deep_conjugate_direction import DCDMPreconditioner, dcdm, dcdm_result
from sciml.solvers.direct import direct, direct_result
from sciml.solvers.deflated_cg import recycled_cg, recycled_cg_result
from sciml.solvers.gcro_dr import gcrodr, gcrodr_result
from sciml.solvers.krylov import cg, cg_result, gmres, gmres_result
from sciml.solvers.learned_preconditioner import LearnedPreconditioner
from sciml.solvers.learned_relaxation import LearnedRelaxation
from sciml.solvers.linear_solver import METHODS, LinearSolver
from sciml.solvers.ordering import ORDERINGS, order_systems
from sciml.solvers.preconditioners import PRECONDITIONERS, make_preconditioner
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.result import SolveResult
from sciml.solvers.sor import SSORPreconditioner, sor, sor_result, ssor_cg, ssor_cg_result

__all__ = [
    "SolveResult",
    "cg",
    "gmres",
    "direct",
    "gcrodr",
    "cg_result",
    "gmres_result",
    "direct_result",
    "gcrodr_result",
    "recycled_cg",
    "recycled_cg_result",
    "sor",
    "sor_result",
    "ssor_cg",
    "ssor_cg_result",
    "SSORPreconditioner",
    "LearnedRelaxation",
    "dcdm",
    "dcdm_result",
    "DCDMPreconditioner",
    "LearnedPreconditioner",
    "RecycleSpace",
    "operator_key",
    "LinearSolver",
    "METHODS",
    "PRECONDITIONERS",
    "make_preconditioner",
    "ORDERINGS",
    "order_systems",
]
