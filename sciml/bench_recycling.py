"""Benchmark of sorted Krylov recycling (SKR) against the strongest fair baselines.

The question (Wang et al., "Accelerating Data Generation for Neural Operators via Krylov
Subspace Recycling", ICLR 2024): how much does solving a batch of related systems in a
sorted order with one carried recycle space save over solving them one by one, and
over the strong solvers a user would otherwise pick?

Systems
    Per configuration (family, size): ``systems`` samples, sample ``i`` drawn from the
    seed ``sample_seed(ROOT_SEED, i)`` exactly as ``sciml generate`` draws it, assembled
    once and kept in memory. **Assembly is excluded from every method's time.** A family
    whose ``fixed_operator`` is True (Poisson) shares one matrix object across its
    systems, so every method sees the same operator and may keep what it built for it.
    Families (:data:`FAMILIES`, the generator's defaults unless stated): Darcy with
    ``coefficient="lognormal"`` (SPD, the matrix changes), Poisson (SPD, fixed matrix,
    varying right-hand side), Helmholtz (complex symmetric, absorbing boundary,
    omega = 20: truly indefinite) and advection-diffusion (nonsymmetric, upwind,
    eps = 1e-3: convection-dominated).

Plan
    Full: every family in 2-D at 100^2 (``2d-small``) and 245^2 (``2d-large``), in
    3-D at 32^3 and 64^3; 100 systems; rtol 1e-5 and 1e-8; a budget of 300 s per method
    and configuration. Quick: 32^2 (``2d-tiny``) and 16^3 (``3d-tiny``, the coarsest
    Helmholtz grid the family accepts), 8 systems, rtol 1e-6, 2 s per method.

Interleaving
    The direct solve runs first through every system (its solutions are the
    references); the other methods then take turns, one system each, so that load
    from other processes on a shared machine hits them alike and their ratios hold
    (``--sequential`` runs each method through all systems before the next).

One stopping rule
    A solve counts as converged iff the **true** relative residual of the returned
    ``x``, ``||b - A x||_2 / ||b||_2``, is at most ``rtol``; the bench recomputes it for
    every returned ``x`` of every method (outside the timed region). sciml's own
    solvers stop on that rule already. scipy's ``gcrotmk`` and ``lgmres`` get ``rtol``
    (and ``atol = 0``) and stop on their own tests (gcrotmk: its updated residual,
    recomputed as ``b - A x`` before it returns; lgmres: ``b - A x`` of each outer
    iteration); when the true residual still misses, the bench calls them again from
    the returned ``x`` with the same carried state, at most ``CONTINUATIONS`` times.
    Those extra calls and the residual checks between them are timed and counted as
    part of the method. Every method has an iteration cap of ``10 n`` Krylov steps
    (scipy's caps are set to ``ceil(10 n / m)`` outer cycles); a solve that misses is
    recorded as not converged, never dropped.

Methods (:data:`METHODS`); ``M`` is always a fixed linear operator
    ``direct``
        scipy ``splu`` (SuperLU, COLAMD) and up to three steps of iterative refinement
        on the true residual (as :func:`sciml.solvers.direct_result`). Factorised per
        system, once for a fixed operator (later systems cost triangular solves). The
        triangular solves are counted as "M applications".
    ``gmres``, ``gmres+ilu``
        The paper's baseline: :func:`sciml.solvers.gmres_result`, right-preconditioned
        GMRES(40), each system from zero, with no preconditioner and with ILUTP
        (``spilu``, drop 1e-4, fill 10; SuperLU's symmetric mode for the SPD families,
        COLAMD with partial pivoting otherwise).
    ``cg``, ``cg+amg`` (SPD families)
        :func:`sciml.solvers.cg_result` without preconditioner and with one V-cycle of
        pyamg's smoothed-aggregation AMG (default settings, symmetric smoothing).
    ``gmres+amg`` (non-SPD families)
        GMRES(40) with the family's AMG. Advection-diffusion: pyamg's AIR
        (``air_solver``, approximate ideal restriction, Manteuffel, Ruge & Southworth,
        SIAM J. Sci. Comput. 2018; Manteuffel et al. 2019), the AMG built for
        advection-dominated upwind discretisations. Helmholtz: the complex shifted
        Laplacian (Erlangga, Vuik & Oosterlee, Appl. Numer. Math. 50, 2004; shift
        (1, 0.5) of Erlangga, Oosterlee & Vuik, SIAM J. Sci. Comput. 27, 2006): one
        V-cycle of pyamg aggregation AMG on ``S = A + 0.5i diag(k^2)``, ``k = omega / c``
        per cell, i.e. ``-Lap - (1 - 0.5i) k^2`` with the same absorbing-boundary
        terms as ``A`` (they use the unshifted k), built from the sample's wave speed
        because the Helmholtz family takes only a real omega. ``S`` is complex
        symmetric, so the hierarchy uses ``symmetry="symmetric"`` (Galerkin with
        ``R = P^T``); the tentative prolongator is not smoothed (``smooth=None``):
        damped-Jacobi prolongator smoothing assumes a definite operator and failed to
        converge on a 24^3 trial.
    ``gcrotmk``
        scipy's flexible GCROT(m=40, k=20), one ``CU`` list carried through the systems
        in natural order. When the operator changes, the ``C`` parts are dropped so that
        scipy recomputes ``C = A U`` for the new matrix (its ``discard_C`` route);
        for a fixed operator they are kept.
    ``lgmres``
        scipy's LGMRES(inner_m=37, outer_k=3): 40 basis vectors per cycle, as GMRES(40),
        and outer_k = 3 as Baker, Jessup & Manteuffel (SIAM J. Matrix Anal. Appl. 26,
        2005) recommend; one ``outer_v`` list carried through the systems in natural
        order. When the operator changes, the stored ``M A v`` are dropped
        (recomputed by scipy); for a fixed operator they are kept.
    ``skr-sorted``, ``skr-unsorted``
        One :class:`~sciml.solvers.RecycleSpace` carried through the systems in the
        order of :func:`sciml.generate.order_samples` (``ordering``, default
        ``"greedy"``, the paper's; on the problem's ``ordering_fields``) or in natural
        order. SPD families: recycled (deflated) PCG, :func:`sciml.solvers.recycled_cg_result`
        with k = 4 (:data:`RCG_K`); the others: GCRO-DR(m=60, k=10), :func:`sciml.solvers.gcrodr_result`
        (the paper runs m = 40, k = 20; :data:`GCRODR_M`, :data:`GCRODR_K` say why).
        The ordering's cost (drawing the fields again, features, sort) is added to
        ``skr-sorted``'s time.

Preconditioner of gcrotmk, lgmres and SKR (:data:`FAMILIES`, fixed by rule, not by results)
    The preconditioner designed for the operator class: SPD diffusion (Darcy,
    Poisson) -> smoothed-aggregation AMG; indefinite Helmholtz -> the complex shifted
    Laplacian AMG; convection-dominated upwind advection-diffusion -> AIR. ``run(...,
    preconditioners={family: name})`` (``--preconditioner FAMILY=NAME``) overrides it for
    these three methods, recorded in the plan.

Recorded per (family, size, rtol, method)
    Systems finished and converged (every average covers the ``systems`` finished);
    matrix-vector products and preconditioner applications per system (counted by
    wrapping ``A`` and ``M`` in counting LinearOperators; a block of ``j`` columns
    counts ``j``); wall seconds per system **including setup** (preconditioner or
    hierarchy build and factorisation: per system when ``A`` changes, once for a fixed
    operator); ``op_share``, the fraction of that time spent inside the products with
    ``A`` and ``M`` (timed inside the wrappers; ``m_share`` the part inside ``M``),
    ``setup_share`` the fraction spent building ``M`` (AMG hierarchy, ILU or LU
    factorisation) and ``other_share`` the rest (orthogonalisation, small dense work,
    Python; for ``skr-sorted`` also the ordering); the worst true relative residual; ``max_dx``, the largest
    ``||x - x_ref|| / ||x_ref||`` over the systems, with ``x_ref`` the direct solution
    (or, for a system the direct solve did not finish, the first converged solution in
    run order), flagged (``agree`` = no) above ``AGREEMENT_FACTOR * rtol``; and
    ``skr_speedup`` = this method's seconds per system / skr-sorted's (above 1: SKR is
    faster). A method stops when its budget (the seconds it has spent itself) is spent
    (checked before each system and inside every product): the row says how many
    systems it finished; nothing is
    extrapolated. A single factorisation or AMG setup cannot be interrupted and may
    overrun the budget.

Examples
--------
>>> from sciml.bench_recycling import format_table, run
>>> rows = run(quick=True, families=["darcy"], sizes=["2d-tiny"], systems=3,
...            methods=["direct", "skr-sorted"])                          # doctest: +SKIP
>>> print(format_table(rows))                                             # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pyamg
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from scipy.sparse.linalg import LinearOperator

from sciml import tables
from sciml.atomic import atomic_write_json
from sciml.dataset_file import sample_seed
from sciml.errors import SciMLError, UnknownNameError
from sciml.solvers import (
    RecycleSpace,
    cg_result,
    gcrodr_result,
    gmres_result,
    make_preconditioner,
    recycled_cg_result,
)
from sciml.solvers.direct import REFINEMENT_STEPS
from sciml.solvers.stopping import Step, prepare_system, solve_by_corrections

ROOT_SEED = 0
RESTART = 40
"""GMRES(m) and gcrotmk's m."""
RECYCLE_K = 20
"""gcrotmk's k (the paper's reference run)."""
GCRODR_M = 60
"""GCRO-DR's m: 60 (the paper runs 40; GCRO-DR(40, k) took 1.5x the time of (60, k) on
2-D Helmholtz with the shifted-Laplacian AMG, and GCRO-DR(50, 10) 1.2x)."""
GCRODR_K = 10
"""GCRO-DR's k with the families' AMG preconditioners (the paper runs 20). Rebinding to a
new matrix costs k products of ``A``, and with these strong preconditioners 10 directions
deflate about as well as 20: interleaved on 20 sorted systems (5 at 32^3), GCRO-DR(60, 10)
took 0.77x (Helmholtz 100^2), 0.82x (Helmholtz 32^3), 0.69x (advection-diffusion 100^2)
and 0.89x (advection-diffusion 32^3) of GCRO-DR(60, 20)'s solve time. With ILU (weak on
Helmholtz) 20 stays better, hence ``--solver skr``'s k = 20 there
(:data:`sciml.solver_choice.SKR_GENERAL`)."""
RCG_K = 4
"""Recycled CG's deflation vectors (``--solver skr``'s, :data:`sciml.solver_choice.SKR_SPD`,
says why 4)."""
LGMRES_INNER, LGMRES_OUTER = 37, 3
CONTINUATIONS = 3
"""Extra calls of scipy's gcrotmk / lgmres from the returned x when the true residual misses."""
ITERATION_FACTOR = 10
"""Every method may take ``10 n`` Krylov steps per system."""
AGREEMENT_FACTOR = 1000.0
"""Solutions agree when ``||x - x_ref|| / ||x_ref|| <= AGREEMENT_FACTOR * rtol``."""

SIZES = {"2d-small": (2, 100), "2d-large": (2, 245), "3d-32": (3, 32), "3d-64": (3, 64),
         "2d-tiny": (2, 32), "3d-tiny": (3, 16)}
"""Size name -> (dim, cells per axis)."""
FULL_PLAN = {"sizes": ("2d-small", "2d-large", "3d-32", "3d-64"), "systems": 100, "rtols": (1e-5, 1e-8),
             "budget_seconds": 300.0}
QUICK_PLAN = {"sizes": ("2d-tiny", "3d-tiny"), "systems": 8, "rtols": (1e-6,), "budget_seconds": 2.0}


@dataclass(frozen=True)
class Family:
    """A PDE family of the bench: generator settings and its AMG, the rule-based best preconditioner."""

    settings: dict = field(default_factory=dict)
    amg: str = "sa-amg"
    """Preconditioner of ``cg+amg``/``gmres+amg`` and, unless overridden, of gcrotmk, lgmres and SKR."""


FAMILIES = {
    "darcy": Family({"coefficient": "lognormal"}, "sa-amg"),
    "poisson": Family({}, "sa-amg"),
    "helmholtz": Family({}, "csl-amg"),
    "advection-diffusion": Family({}, "air-amg"),
}

BENCH_PRECONDITIONERS = ("none", "ilu", "sa-amg", "air-amg", "csl-amg")
"""Names a ``preconditioners`` override may give (``csl-amg``: Helmholtz only)."""

METHODS = ("direct", "cg+amg", "gmres+amg", "gmres", "gmres+ilu", "cg", "gcrotmk", "lgmres",
           "skr-sorted", "skr-unsorted")
"""Every method, in run order: the direct solve first (it provides the reference solutions)."""
SPD_ONLY = frozenset({"cg", "cg+amg"})
NON_SPD_ONLY = frozenset({"gmres+amg"})

COLUMNS = ("family", "size", "rtol", "method", "solver", "preconditioner", "systems", "converged",
           "matvecs_per_system", "m_apps_per_system", "s_per_system", "op_share", "m_share", "setup_share",
           "other_share", "max_residual",
           "max_dx", "agree", "skr_speedup", "note")


# ----------------------------------------------------------------------------- systems
@dataclass
class System:
    """One assembled system; ``k2`` is Helmholtz's squared wavenumber per cell (else None)."""

    A: sp.csr_matrix
    b: np.ndarray
    k2: np.ndarray | None = None


def build_problem(family: str, size: str):
    """The family's generator at the named size."""
    from sciml.datasets import get_problem

    dim, resolution = SIZES[size]
    return get_problem(family)(resolution=resolution, dim=dim, **FAMILIES[family].settings)


def assemble_systems(problem, n: int, root_seed: int = ROOT_SEED) -> list[System]:
    """Draw and assemble samples ``0 .. n - 1`` as ``sciml generate`` does.

    A ``fixed_operator`` problem's systems share the first matrix object (checked equal).
    """
    systems: list[System] = []
    for i in range(n):
        inputs = problem.sample_inputs(np.random.default_rng(sample_seed(root_seed, i)))
        A, b = problem.assemble(inputs)
        A = sp.csr_matrix(A)
        if problem.fixed_operator and systems:
            if (A != systems[0].A).nnz:
                raise SciMLError(f"{problem.name} claims a fixed operator but sample {i} has another matrix; "
                                 "fix its assemble() or its fixed_operator flag")
            A = systems[0].A
        k2 = (problem.omega / inputs["c"]).ravel() ** 2 if problem.name == "helmholtz" else None
        systems.append(System(A, np.asarray(b), k2))
    return systems


# ----------------------------------------------------------------------------- counting
class _OutOfBudget(Exception):
    """Raised inside a product when the method's time budget is spent."""


@dataclass
class Tally:
    """Products with ``A`` and ``M`` of one method run, the seconds inside them and in building
    ``M``, its deadline."""

    deadline: float = math.inf
    matvecs: int = 0
    m_apps: int = 0
    op_seconds: float = 0.0
    """Inside products with ``A`` and ``M``."""
    m_seconds: float = 0.0
    """Inside products with ``M`` (part of ``op_seconds``)."""
    setup_seconds: float = 0.0
    """Building ``M`` (hierarchy or factorisation)."""

    def snapshot(self) -> tuple[int, int, float, float, float]:
        return self.matvecs, self.m_apps, self.op_seconds, self.m_seconds, self.setup_seconds


class Counted(LinearOperator):
    """``inner`` as a LinearOperator that counts and times its applications (one per column).

    Examples
    --------
    >>> import numpy as np
    >>> tally = Tally()
    >>> A = Counted(np.eye(3), tally, is_matrix=True)
    >>> _ = A @ np.ones(3); _ = A @ np.ones((3, 2))
    >>> tally.matvecs
    3
    """

    def __init__(self, inner, tally: Tally, is_matrix: bool):
        dtype = inner.dtype if inner.dtype is not None else np.dtype(np.float64)
        super().__init__(dtype=dtype, shape=inner.shape)
        self.inner, self.tally, self.is_matrix = inner, tally, is_matrix

    def _apply(self, X, columns: int):
        started = time.perf_counter()
        if started > self.tally.deadline:
            raise _OutOfBudget
        Y = self.inner @ X
        elapsed = time.perf_counter() - started
        self.tally.op_seconds += elapsed
        if self.is_matrix:
            self.tally.matvecs += columns
        else:
            self.tally.m_apps += columns
            self.tally.m_seconds += elapsed
        return Y

    def _matvec(self, v):
        return self._apply(v, 1)

    def _matmat(self, X):
        return self._apply(X, X.shape[1])

    def _rmatvec(self, v):
        raise SciMLError("the bench's counted operators have no adjoint; no method here needs one")


# ----------------------------------------------------------------------------- preconditioners
def _shifted_laplacian(system: System) -> LinearOperator:
    """One V-cycle of aggregation AMG on ``A + 0.5i diag(k^2)`` (module docstring)."""
    shifted = sp.csr_matrix(system.A + sp.diags_array(0.5j * system.k2))
    return pyamg.smoothed_aggregation_solver(shifted, symmetry="symmetric", smooth=None).aspreconditioner()


def build_preconditioner(name: str, system: System, spd: bool) -> LinearOperator | None:
    """``M ~ A^-1`` named ``none``, ``ilu``, ``sa-amg``, ``air-amg``, ``csl-amg`` or ``lu``."""
    if name == "none":
        return None
    if name == "ilu":
        return make_preconditioner(("ilu", {"symmetric": spd}), system.A)
    if name == "sa-amg":
        return make_preconditioner("amg", system.A)
    if name == "air-amg":
        return pyamg.air_solver(system.A).aspreconditioner()
    if name == "csl-amg":
        if system.k2 is None:
            raise SciMLError("the shifted-Laplacian preconditioner needs a Helmholtz system (its wavenumber)")
        return _shifted_laplacian(system)
    if name == "lu":
        matrix = system.A.tocsc()
        try:
            factors = sla.splu(matrix)
        except RuntimeError as error:
            raise SciMLError(f"direct: splu failed ({error}); the matrix is singular") from None
        return LinearOperator(matrix.shape, matvec=factors.solve, matmat=factors.solve, dtype=matrix.dtype)
    raise UnknownNameError(f"unknown bench preconditioner {name!r}")


class _Operators:
    """Counted ``A`` and ``M`` for the current system, rebuilt only when the matrix object changes."""

    def __init__(self, tally: Tally, preconditioner: str, spd: bool):
        self.tally, self.preconditioner, self.spd = tally, preconditioner, spd
        self.source = None
        self.A = self.M = None

    def get(self, system: System) -> bool:
        """Bind to ``system``; return True when the operator changed (``A`` and ``M`` rebuilt)."""
        if system.A is self.source:
            return False
        self.source = system.A
        self.A = Counted(system.A, self.tally, is_matrix=True)
        started = time.perf_counter()
        M = build_preconditioner(self.preconditioner, system, self.spd)
        self.tally.setup_seconds += time.perf_counter() - started
        self.M = None if M is None else Counted(M, self.tally, is_matrix=False)
        return True


# ----------------------------------------------------------------------------- methods
@dataclass
class MethodRun:
    """A method ready to solve one configuration's systems in turn (it may carry state)."""

    solver: str
    preconditioner: str
    solve: Callable[[System], np.ndarray]
    tally: Tally


def _true_residual_norm(A, b, x) -> float:
    return float(np.linalg.norm(b - A @ x))


def make_method(method: str, family: str, spd: bool, rtol: float, strong: str | None = None) -> MethodRun:
    """The solver of ``method`` for a configuration of ``family`` at ``rtol`` (module docstring).

    ``strong`` is the preconditioner of gcrotmk, lgmres and SKR (default: the family's AMG).
    """
    tally = Tally()
    amg = FAMILIES[family].amg
    strong = amg if strong is None else strong
    cap = lambda n: ITERATION_FACTOR * n  # noqa: E731  (Krylov steps per system)

    if method == "direct":
        ops = _Operators(tally, "lu", spd)

        def solve(system):
            ops.get(system)
            prepared = prepare_system(ops.A, system.b, None, rtol=rtol, atol=0.0)

            def kernel(r, max_iterations, report):
                return Step(ops.M.matvec(r), 1)

            return solve_by_corrections("direct", prepared, kernel, budget=1 + REFINEMENT_STEPS,
                                        started=time.perf_counter(), on_budget="", on_stagnation="").x

        return MethodRun("splu + refinement", "lu", solve, tally)

    if method in ("gmres", "gmres+ilu", "gmres+amg", "cg", "cg+amg"):
        name = {"gmres": "none", "gmres+ilu": "ilu", "cg": "none"}.get(method, amg)
        ops = _Operators(tally, name, spd)
        if method.startswith("cg"):
            def solve(system):
                ops.get(system)
                return cg_result(ops.A, system.b, rtol=rtol, M=ops.M, maxiter=cap(system.b.size)).x
            return MethodRun("cg", name, solve, tally)

        def solve(system):
            ops.get(system)
            return gmres_result(ops.A, system.b, rtol=rtol, restart=RESTART, M=ops.M,
                                maxiter=cap(system.b.size)).x
        return MethodRun(f"gmres({RESTART})", name, solve, tally)

    if method in ("gcrotmk", "lgmres"):
        ops = _Operators(tally, strong, spd)
        carried: list = []

        def solve(system):
            if ops.get(system):  # new operator: drop the products with it, scipy recomputes them
                if method == "gcrotmk":
                    carried[:] = [(None, u) for _, u in carried]  # (C, U): C = A U
                else:
                    carried[:] = [(v, None) for v, _ in carried]  # (v, M A v)
            n = system.b.size
            target = rtol * float(np.linalg.norm(system.b))
            x = None
            for _ in range(1 + CONTINUATIONS):
                if method == "gcrotmk":
                    x, _ = sla.gcrotmk(ops.A, system.b, x0=x, rtol=rtol, atol=0.0, M=ops.M, m=RESTART,
                                       k=RECYCLE_K, CU=carried, maxiter=math.ceil(cap(n) / RESTART))
                else:
                    x, _ = sla.lgmres(ops.A, system.b, x0=x, rtol=rtol, atol=0.0, M=ops.M,
                                      inner_m=LGMRES_INNER, outer_k=LGMRES_OUTER, outer_v=carried,
                                      maxiter=math.ceil(cap(n) / LGMRES_INNER))
                if _true_residual_norm(ops.A, system.b, x) <= target:
                    break
            return x

        label = (f"scipy gcrotmk({RESTART},{RECYCLE_K}) carrying CU" if method == "gcrotmk"
                 else f"scipy lgmres({LGMRES_INNER},{LGMRES_OUTER}) carrying outer_v")
        return MethodRun(label, strong, solve, tally)

    if method in ("skr-sorted", "skr-unsorted"):
        ops = _Operators(tally, strong, spd)
        space = RecycleSpace(RCG_K if spd else GCRODR_K)

        def solve(system):
            ops.get(system)
            if spd:
                return recycled_cg_result(ops.A, system.b, rtol=rtol, k=RCG_K, M=ops.M, recycle=space,
                                          maxiter=cap(system.b.size)).x
            return gcrodr_result(ops.A, system.b, rtol=rtol, m=GCRODR_M, k=GCRODR_K, M=ops.M,
                                 recycle=space, maxiter=cap(system.b.size)).x

        label = f"rcg(k={RCG_K})" if spd else f"gcrodr({GCRODR_M},{GCRODR_K})"
        return MethodRun(label, strong, solve, tally)

    raise UnknownNameError(f"unknown method {method!r}; choose from: {', '.join(METHODS)}")


def applies(method: str, spd: bool) -> bool:
    """Whether ``method`` runs on a family (CG needs SPD; ``gmres+amg`` is the non-SPD AMG row)."""
    return not ((method in SPD_ONLY and not spd) or (method in NON_SPD_ONLY and spd))


# ----------------------------------------------------------------------------- one configuration
class MethodProgress:
    """One method's pass over a configuration's systems, one system per :meth:`step`.

    The budget counts the seconds this method spent (``budget`` in all), so several
    methods can take turns system by system (``run(..., interleave=True)``) and each
    still gets its own budget. ``reference`` maps a system to its reference solution
    and who produced it; a converged solution of a system without one becomes its
    reference.
    """

    def __init__(self, run: MethodRun, systems: list[System], order: list[int], rtol: float, budget: float,
                 reference: dict[int, tuple[np.ndarray, str]], extra_seconds: float = 0.0):
        self.run, self.systems, self.order, self.rtol, self.budget = run, systems, order, rtol, budget
        self.reference = reference
        self.seconds = extra_seconds
        self.position = self.done = self.converged = 0
        self.counts = np.zeros(5)  # matvecs, M applications, seconds in A and M, in M, in setup
        self.worst_residual = self.worst_dx = 0.0
        self.compared: dict[str, int] = {}
        self.note = ""
        self.finished = not order

    def step(self) -> None:
        """Solve the next system (or note why the method stops); sets :attr:`finished` at the end."""
        run, tally = self.run, self.run.tally
        left = self.budget - self.seconds
        if left <= 0:
            self._stop(f"budget {self.budget:g} s spent: {self.done} of {len(self.order)} systems")
            return
        index = self.order[self.position]
        system = self.systems[index]
        before = np.array(tally.snapshot(), dtype=float)
        started = time.perf_counter()
        tally.deadline = started + left
        try:
            x = run.solve(system)
        except _OutOfBudget:
            self._stop(f"budget {self.budget:g} s spent: {self.done} of {len(self.order)} systems "
                       f"(system {self.position + 1} stopped after {time.perf_counter() - started:.3g} s)")
            return
        except (SciMLError, RuntimeError, np.linalg.LinAlgError) as error:
            self._stop(f"failed on system {self.position + 1}: {str(error).splitlines()[0]}")
            return
        self.seconds += time.perf_counter() - started
        self.counts += np.array(tally.snapshot(), dtype=float) - before
        self.done += 1
        self.position += 1
        self.finished = self.position == len(self.order)
        b_norm = float(np.linalg.norm(system.b))
        relative = _true_residual_norm(system.A, system.b, x) / b_norm if b_norm > 0 else 0.0
        self.worst_residual = max(self.worst_residual, relative) if np.isfinite(relative) else math.inf
        if relative <= self.rtol:
            self.converged += 1
            if index in self.reference:
                x_ref, source = self.reference[index]
                self.worst_dx = max(self.worst_dx,
                                    float(np.linalg.norm(x - x_ref) / max(np.linalg.norm(x_ref), 1e-300)))
                self.compared[source] = self.compared.get(source, 0) + 1
            else:
                self.reference[index] = (x, run.solver)

    def _stop(self, note: str) -> None:
        self.note = note
        self.finished = True

    def figures(self) -> dict:
        """The row's figures so far (module docstring, "Recorded")."""
        done, seconds = self.done, self.seconds
        matvecs, m_apps, op_seconds, m_seconds, setup_seconds = self.counts
        per = (lambda value: value / done) if done else (lambda value: None)
        share = (lambda value: float(value / seconds)) if done else (lambda value: None)
        note = self.note
        if done and self.converged < done and not note:
            note = f"{done - self.converged} of {done} systems did not converge"
        compared = sum(self.compared.values())
        return {
            "systems": done, "planned": len(self.order), "converged": self.converged,
            "matvecs_per_system": per(float(matvecs)), "m_apps_per_system": per(float(m_apps)),
            "s_per_system": per(seconds), "seconds": seconds, "op_share": share(op_seconds),
            "m_share": share(m_seconds), "setup_share": share(setup_seconds),
            "other_share": share(seconds - op_seconds - setup_seconds),
            "max_residual": self.worst_residual if done else None,
            "max_dx": self.worst_dx if compared else None,
            "agree": (self.worst_dx <= AGREEMENT_FACTOR * self.rtol) if compared else None,
            "compared_with": dict(self.compared), "note": note,
        }


def run_interleaved(progresses: list[MethodProgress]) -> None:
    """Let the methods take turns, one system each, until every one has finished.

    Load from other processes then falls on all of them alike, so their ratios hold on
    a shared machine.
    """
    while not all(progress.finished for progress in progresses):
        for progress in progresses:
            if not progress.finished:
                progress.step()


# ----------------------------------------------------------------------------- the suite
def _check_names(kind: str, given, valid) -> tuple:
    given = tuple(given)
    for name in given:
        if name not in valid:
            raise UnknownNameError(f"unknown {kind} {name!r}; choose from: {', '.join(valid)}")
    if not given:
        raise SciMLError(f"no {kind} given; choose from: {', '.join(valid)}")
    return given


def _check_preconditioners(given: dict) -> dict:
    """Family -> preconditioner of gcrotmk, lgmres and SKR: the rule (:data:`FAMILIES`) with ``given`` overrides."""
    if not isinstance(given, dict):
        raise SciMLError(f"preconditioners must map a family to a name, got {given!r}")
    if given:
        _check_names("family", given, tuple(FAMILIES))
    for family, name in given.items():
        _check_names("preconditioner", (name,), BENCH_PRECONDITIONERS)
        if name == "csl-amg" and family != "helmholtz":
            raise SciMLError(f"csl-amg (the shifted Laplacian) is for helmholtz only, not {family!r}; "
                             "choose another preconditioner")
    return {family: given.get(family, spec.amg) for family, spec in FAMILIES.items()}


def plan(quick: bool = False, families=None, sizes=None, systems=None, rtols=None, methods=None,
         budget_seconds=None, ordering: str = "greedy", preconditioners: dict | None = None,
         interleave: bool = True) -> dict:
    """The checked plan: the quick or full defaults with the given overrides."""
    from sciml.solvers import ORDERINGS

    base = QUICK_PLAN if quick else FULL_PLAN
    chosen = {
        "families": _check_names("family", families if families is not None else FAMILIES, tuple(FAMILIES)),
        "sizes": _check_names("size", sizes if sizes is not None else base["sizes"], tuple(SIZES)),
        "methods": _check_names("method", methods if methods is not None else METHODS, METHODS),
        "systems": base["systems"] if systems is None else systems,
        "rtols": tuple(base["rtols"] if rtols is None else rtols),
        "budget_seconds": base["budget_seconds"] if budget_seconds is None else budget_seconds,
        "ordering": ordering,
        "preconditioners": _check_preconditioners(preconditioners or {}),
        "quick": bool(quick),
        "interleave": bool(interleave),
        "root_seed": ROOT_SEED,
    }
    if isinstance(chosen["systems"], bool) or not isinstance(chosen["systems"], (int, np.integer)) \
            or chosen["systems"] < 1:
        raise SciMLError(f"systems must be an integer >= 1, got {chosen['systems']!r}")
    if not chosen["rtols"] or not all(isinstance(r, (int, float)) and 0 < r < 1 for r in chosen["rtols"]):
        raise SciMLError(f"rtols must be numbers in (0, 1), got {list(chosen['rtols'])!r}")
    if not isinstance(chosen["budget_seconds"], (int, float)) or not chosen["budget_seconds"] > 0:
        raise SciMLError(f"budget_seconds must be a number > 0, got {chosen['budget_seconds']!r}")
    ORDERINGS.get(ordering)
    if ordering == "none":
        raise SciMLError("ordering 'none' would make skr-sorted the same as skr-unsorted; use greedy or curve")
    chosen["methods"] = tuple(m for m in METHODS if m in chosen["methods"])  # run order: direct first
    return chosen


def machine() -> dict:
    """Platform, CPU count, library versions and BLAS thread settings of this run."""
    return {
        "platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
        "numpy": np.__version__, "scipy": scipy.__version__, "pyamg": pyamg.__version__,
        "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def _write(out_dir, chosen: dict, rows: list[dict]) -> None:
    if out_dir is None:
        return
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_json(os.path.join(out_dir, "bench_recycling.json"),
                      {"benchmark": "recycling", "machine": machine(), "plan": chosen,
                       "families": {name: {"settings": f.settings, "amg": f.amg}
                                    for name, f in FAMILIES.items()},
                       "rows": rows})


def run(quick: bool = False, out_dir: str | None = None, families=None, sizes=None, systems=None,
        rtols=None, methods=None, budget_seconds=None, ordering: str = "greedy",
        preconditioners: dict | None = None, interleave: bool = True,
        log: Callable[[str], None] | None = None) -> list[dict]:
    """Run the plan (module docstring); return one row per (family, size, rtol, method).

    Parameters
    ----------
    quick : bool
        The quick defaults (32^2 and 16^3, 8 systems, rtol 1e-6, 2 s per method) instead
        of the full plan; the other arguments override either.
    out_dir : str, optional
        Folder for ``bench_recycling.json`` (rows, machine, plan), rewritten after every
        configuration so a stopped run keeps what it measured.
    families, sizes, methods : list of str, optional
        Names from :data:`FAMILIES`, :data:`SIZES`, :data:`METHODS`; a method that does
        not apply to a family (CG on a non-SPD one) is skipped for it.
    systems : int, optional
        Systems per configuration.
    rtols : list of float, optional
        Tolerances of the true relative residual.
    budget_seconds : float, optional
        Seconds per method and configuration (setup included).
    ordering : {"greedy", "curve"}
        The ordering of ``skr-sorted``.
    preconditioners : dict, optional
        Family -> preconditioner of gcrotmk, lgmres and SKR (one of
        :data:`BENCH_PRECONDITIONERS`), overriding the rule; recorded in the plan.
    interleave : bool
        Let the methods after the direct solve take turns system by system (default),
        so that load from other processes hits them alike; False runs each method
        through all systems before the next.
    log : callable, optional
        Called with one line per finished method (``main`` prints them to stderr).

    Returns
    -------
    list of dict
        Keys of ``COLUMNS`` plus ``dim``, ``unknowns``, ``planned``, ``seconds``,
        ``compared_with`` and, for skr-sorted, ``ordering_seconds``.
    """
    from sciml.generate import order_samples

    chosen = plan(quick, families, sizes, systems, rtols, methods, budget_seconds, ordering, preconditioners,
                  interleave)
    rows: list[dict] = []
    for family in chosen["families"]:
        for size in chosen["sizes"]:
            problem = build_problem(family, size)
            spd = bool(problem.symmetric_positive_definite)
            batch = assemble_systems(problem, chosen["systems"])
            natural = list(range(len(batch)))
            ordered = None
            if "skr-sorted" in chosen["methods"]:
                ordered = order_samples(problem, len(batch), ROOT_SEED, ordering)
            for rtol in chosen["rtols"]:
                reference: dict[int, tuple[np.ndarray, str]] = {}
                progresses = []
                for method in chosen["methods"]:
                    if not applies(method, spd):
                        continue
                    solver = make_method(method, family, spd, rtol, chosen["preconditioners"][family])
                    sorted_run = method == "skr-sorted"
                    progress = MethodProgress(solver, batch, ordered["order"] if sorted_run else natural, rtol,
                                              chosen["budget_seconds"], reference,
                                              extra_seconds=ordered["seconds"] if sorted_run else 0.0)
                    progresses.append((method, solver, progress))
                    if method == "direct" or not chosen["interleave"]:  # the direct solve sets the references
                        run_interleaved([progress])
                run_interleaved([progress for method, _, progress in progresses if method != "direct"])
                block = []
                for method, solver, progress in progresses:
                    figures = progress.figures()
                    row = {"family": family, "size": size, "dim": problem.dim,
                           "unknowns": int(batch[0].b.size), "rtol": rtol, "method": method,
                           "solver": solver.solver, "preconditioner": solver.preconditioner, **figures}
                    if method == "skr-sorted":
                        row["ordering_seconds"] = ordered["seconds"]
                    block.append(row)
                    if log is not None:
                        log(f"{family} {size} rtol={rtol:g} {method}: {figures['systems']} systems, "
                            f"{figures['converged']} converged, {figures['seconds']:.3g} s {figures['note']}")
                skr = next((r for r in block if r["method"] == "skr-sorted"), None)
                for row in block:
                    reference_time = None if skr is None else skr["s_per_system"]
                    row["skr_speedup"] = (row["s_per_system"] / reference_time
                                          if reference_time and row["s_per_system"] is not None else None)
                rows.extend(block)
            _write(out_dir, chosen, rows)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (see :func:`sciml.tables.format_table`); "-" where a figure is missing."""
    return tables.format_table([{k: ("-" if row.get(k) is None else row[k]) for k in COLUMNS} for row in rows],
                               list(COLUMNS))


def main(argv: list[str] | None = None) -> None:
    """``python -m sciml.bench_recycling [--quick] [--families ...] [--sizes ...] [--systems N]
    [--rtols ...] [--methods ...] [--budget-seconds S] [--ordering greedy|curve]
    [--preconditioner FAMILY=NAME ...] [--sequential] [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32^2 and 16^3, 8 systems, rtol 1e-6, 2 s per method")
    parser.add_argument("--families", nargs="+", default=None, help=f"of: {', '.join(FAMILIES)}")
    parser.add_argument("--sizes", nargs="+", default=None, help=f"of: {', '.join(SIZES)}")
    parser.add_argument("--systems", type=int, default=None, help="systems per configuration")
    parser.add_argument("--rtols", nargs="+", type=float, default=None, help="true relative residual tolerances")
    parser.add_argument("--methods", nargs="+", default=None, help=f"of: {', '.join(METHODS)}")
    parser.add_argument("--budget-seconds", type=float, default=None, help="seconds per method and configuration")
    parser.add_argument("--ordering", default="greedy", help="ordering of skr-sorted: greedy or curve")
    parser.add_argument("--preconditioner", nargs="+", default=(), metavar="FAMILY=NAME",
                        help=f"override the rule for gcrotmk, lgmres and SKR; NAME of: {', '.join(BENCH_PRECONDITIONERS)}")
    parser.add_argument("--sequential", action="store_true",
                        help="run each method through all systems in turn instead of interleaving them")
    parser.add_argument("--out", default=None, help="folder for bench_recycling.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        overrides = dict(item.split("=", 1) for item in args.preconditioner if "=" in item)
        if len(overrides) != len(args.preconditioner):
            raise SciMLError(f"--preconditioner takes FAMILY=NAME pairs, got {list(args.preconditioner)}")
        rows = run(quick=args.quick, out_dir=args.out, families=args.families, sizes=args.sizes,
                   systems=args.systems, rtols=args.rtols, methods=args.methods,
                   budget_seconds=args.budget_seconds, ordering=args.ordering, preconditioners=overrides,
                   interleave=not args.sequential,
                   log=lambda line: print(line, file=sys.stderr, flush=True))
    except SciMLError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    print(format_table(rows))
    print(f"\n{time.perf_counter() - started:.1f} s in all (assembly and ordering included)")


if __name__ == "__main__":
    main()
