"""Which linear solver and ordering a generation uses: ``--solver auto``, ``skr`` or a method.

``auto`` (the default of ``sciml generate``) reads :data:`RULES` top to bottom and takes the
first row that fits the problem's dimension, size and symmetry:

====================================================  ==========================  ========
problem                                               solver                      ordering
====================================================  ==========================  ========
1-D, or 2-D with at most 250,000 unknowns             sparse direct (LU)          none
symmetric positive definite, at most 50,000 unknowns  CG, no preconditioner       none
symmetric positive definite, larger                   CG + smoothed-aggregation   none
                                                      AMG
otherwise: nonsymmetric or indefinite (2-D large,     GMRES(40), no               none
3-D)                                                  preconditioner
====================================================  ==========================  ========

The rows follow ``sciml bench recycling`` (2 cores, scipy 1.17, true relative residual
1e-8, 10-20 systems, setup included): at 100^2 a sparse direct solve was the fastest
method for all four families (Darcy 0.029 s a system, Poisson 0.002 s with one
factorisation, Helmholtz 0.040 s, advection-diffusion 0.025 s); at 32^3 the setup of a
preconditioner (AMG, ILU) or a factorisation costs more than it saves, and plain CG
(Darcy, 0.050 s against 0.12 s for CG + AMG) and plain GMRES(40) (Helmholtz 1.2 s,
advection-diffusion 0.33 s; sorted recycling took 3.3 s and 0.57 s) were the fastest.
At 64^3 (4 systems each) plain GMRES(40) was still the fastest on advection-diffusion
(12 s a system; sorted recycling 19 s, AIR 269 s, almost all setup); on Helmholtz GMRES(40)
with the bench's complex shifted-Laplacian AMG took 52 s against 66 s for the plain GMRES(40)
this rule picks (1.26x; that preconditioner needs the wavenumber, which the generic solver
interface does not see) and 94 s for sorted recycling. AMG pays off as CG's iteration count
grows with the grid, hence the size threshold for SPD problems.

``skr`` is sorted Krylov recycling (Wang et al., "Accelerating Data Generation for Neural
Operators via Krylov Subspace Recycling", ICLR 2024): the batch is ordered so that
consecutive parameter fields are alike and one solver object carries its recycle space
from solve to solve. The paper uses GCRO-DR(m, k) (Parks et al. 2006) for every problem;
here symmetric positive definite problems take recycled CG instead (``rcg``, k = 4 with
AMG), since plain CG already beats GMRES there. With AMG, CG needs about 8 iterations on
log-normal Darcy at 100^2 and 32^3 whatever the deflation (k = 4 to 24 all gave 8.1 a
system, k = 2 9.0 at 100^2), so a large space costs more than it saves: k = 4 took
0.90x (100^2) and 0.89x (32^3) of k = 10's time on Darcy, and 0.80x on Poisson (7.0
iterations instead of 6.8). The others take GCRO-DR(60, 20) with ILU: the paper's
k = 20, and m = 60 so that each cycle adds 40 new Krylov vectors. Measured again with
GCRO-DR's space in the solution variable (sorted Helmholtz at 100^2, rtol 1e-8,
interleaved): with the shifted-Laplacian AMG, the paper's m = 40 took 1.5x the time of
m = 60, and k = 10 took 0.77x (the bench's SKR runs GCRO-DR(60, 10) with the families'
AMG); with ILU, k = 10 took 1.56x (365 instead of 180 applications of ``M`` a system): a
weak preconditioner leaves more small eigenvalues to deflate, so k stays 20 here.

A problem says what it is through class attributes, read with defaults so problems that
predate them still work: ``symmetric_positive_definite`` (default False: the safe
nonsymmetric choice) and ``ordering_fields`` (default: all inputs).

Examples
--------
>>> from sciml.datasets import get_problem
>>> from sciml.solver_choice import choose_solver
>>> choice = choose_solver(get_problem("darcy")(resolution=64))
>>> choice["solver"], choice["ordering"]
({'method': 'direct', 'preconditioner': 'none'}, 'none')
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from sciml.errors import SciMLError

RECYCLING_METHODS = frozenset({"gcrodr", "rcg"})
"""Methods that carry a recycle space from one solve to the next, so ordering the batch helps them."""

DIRECT = {"method": "direct", "preconditioner": "none"}
CG = {"method": "cg", "preconditioner": "none"}
CG_AMG = {"method": "cg", "preconditioner": "amg"}
GMRES = {"method": "gmres", "preconditioner": "none", "restart": 40}
SKR_SPD = {"method": "rcg", "preconditioner": "amg", "k": 4}
SKR_GENERAL = {"method": "gcrodr", "preconditioner": "ilu", "m": 60, "k": 20}
DEFAULT_SKR_ORDERING = "curve"
"""The ordering sorted recycling uses unless told otherwise: O(N log N), fine at any batch size."""

SMALL_2D_UNKNOWNS = 250_000
SMALL_SPD_UNKNOWNS = 50_000


def is_spd(problem) -> bool:
    """Whether the problem declares its systems symmetric positive definite (default False)."""
    return bool(getattr(problem, "symmetric_positive_definite", False))


def unknowns(problem) -> int:
    """Number of grid unknowns of the problem's systems."""
    return math.prod(problem.grid_shape)


def skr_settings(problem) -> dict:
    """Sorted-recycling solver settings for ``problem``: recycled CG + AMG if SPD, else GCRO-DR + ILU.

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> skr_settings(get_problem("darcy")(resolution=8))["method"] in ("rcg", "gcrodr")
    True
    """
    return dict(SKR_SPD if is_spd(problem) else SKR_GENERAL)


@dataclass(frozen=True)
class Rule:
    """One row of :data:`RULES`: when it applies, and what it picks."""

    when: str
    applies: Callable[[object], bool]
    pick: Callable[[object], dict]
    ordering: str


RULES: tuple[Rule, ...] = (
    Rule(f"1-D, or 2-D with at most {SMALL_2D_UNKNOWNS:,} unknowns",
         lambda p: p.dim == 1 or (p.dim == 2 and unknowns(p) <= SMALL_2D_UNKNOWNS),
         lambda p: dict(DIRECT), "none"),
    Rule(f"symmetric positive definite, at most {SMALL_SPD_UNKNOWNS:,} unknowns",
         lambda p: is_spd(p) and unknowns(p) <= SMALL_SPD_UNKNOWNS, lambda p: dict(CG), "none"),
    Rule("symmetric positive definite, larger", is_spd, lambda p: dict(CG_AMG), "none"),
    Rule("nonsymmetric or indefinite, large", lambda p: True, lambda p: dict(GMRES), "none"),
)
"""The ``auto`` rules, first match wins (see the module docstring's table)."""


def choose_solver(problem) -> dict:
    """The solver ``--solver auto`` picks for ``problem``, by the first matching row of :data:`RULES`.

    Parameters
    ----------
    problem : sciml.datasets.PDEProblem

    Returns
    -------
    dict
        ``solver``: keyword settings of :class:`~sciml.solvers.LinearSolver` (``method``,
        ``preconditioner`` and method options; no tolerances); ``ordering``: the batch
        ordering; ``rule``: the row that matched, in words (recorded in the file).

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> choose_solver(get_problem("antiderivative")(resolution=50))["rule"]
    'auto: 1-D, or 2-D with at most 250,000 unknowns'
    """
    for rule in RULES:
        if rule.applies(problem):
            return {"solver": rule.pick(problem), "ordering": rule.ordering, "rule": f"auto: {rule.when}"}
    raise SciMLError(f"no solver rule fits problem {problem.name!r}; name one with --solver")


def resolve_solver(problem, method: str | None = "auto", preconditioner=None, ordering: str | None = None) -> dict:
    """Settings for ``--solver METHOD [--preconditioner P] [--ordering O]`` on ``problem``.

    Parameters
    ----------
    problem : sciml.datasets.PDEProblem
    method : str, optional
        ``"auto"`` (default, :func:`choose_solver`), ``"skr"`` (:func:`skr_settings`), or a
        method name of :data:`sciml.solvers.METHODS`. A named method takes the
        preconditioner of the problem's ``recommended_solver()`` (or ``default_solver``)
        when that is the same method, else none.
    preconditioner : str, dict or None
        Overrides the chosen preconditioner when given.
    ordering : {"none", "greedy", "curve"}, optional
        Overrides the chosen ordering; by default recycling methods sort with
        ``"curve"`` and the others keep the index order (ordering cannot help them).

    Returns
    -------
    dict
        ``solver`` (keyword settings, no tolerances), ``ordering`` and ``rule``, as
        :func:`choose_solver`.

    Examples
    --------
    >>> from sciml.datasets import get_problem
    >>> darcy = get_problem("darcy")(resolution=16)
    >>> resolve_solver(darcy, "cg")["solver"]
    {'method': 'cg', 'preconditioner': 'amg'}
    >>> resolve_solver(darcy, "gmres", ordering="greedy")["ordering"]
    'greedy'
    """
    from sciml.solvers.ordering import ORDERINGS

    name = "auto" if method is None else str(method).lower()
    if name == "auto":
        choice = choose_solver(problem)
    elif name == "skr":
        choice = {"solver": skr_settings(problem), "ordering": DEFAULT_SKR_ORDERING,
                  "rule": "skr: " + ("recycled CG (SPD)" if is_spd(problem) else "GCRO-DR (not SPD)")}
    else:
        recommended = getattr(problem, "recommended_solver", None)
        suggested = dict(recommended() if recommended is not None else getattr(problem, "default_solver", DIRECT))
        solver = suggested if suggested.get("method") == name else {"method": name, "preconditioner": "none"}
        choice = {"solver": solver, "ordering": DEFAULT_SKR_ORDERING if name in RECYCLING_METHODS else "none",
                  "rule": f"named: {name}"}
    if preconditioner is not None:
        choice["solver"]["preconditioner"] = preconditioner
    if ordering is not None:
        ORDERINGS.get(ordering)
        choice["ordering"] = str(ordering)
    return choice
