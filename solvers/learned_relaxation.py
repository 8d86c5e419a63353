"""The object a user puts in front of a sequence of solves: it learns the SOR factor online.

:class:`LearnedRelaxation` holds a grid of relaxation factors, a bandit learner from
:mod:`sciml.solvers.bandits` and a solver (``"sor"`` or ``"ssor_cg"`` from
:mod:`sciml.solvers.sor`). Each :meth:`~LearnedRelaxation.solve` asks the learner for
omega, solves, and feeds back the iteration count -- the only feedback, as in Khodak,
Chow, Balcan & Talwalkar, "Learning to Relax: Setting Solver Parameters Across a
Sequence of Linear System Instances", ICLR 2024. A solve that does not converge within
``maxiter`` is fed back at the cap ``maxiter`` and reported (``converged=False``, a
message, and ``capped`` in the history), never dropped. The whole state (learner,
generator, history) is saved atomically to JSON and restored exactly, so a
simulation that restarts continues as if it had never stopped.

Examples
--------
>>> from sciml.datasets.relaxation_sequences import ShiftedLaplacianSequence
>>> tuner = LearnedRelaxation("sor", maxiter=3000, seed=0)
>>> for A, b, shift in ShiftedLaplacianSequence((10, 10), "low", length=20, seed=0):
...     result = tuner.solve(A, b)
>>> len(tuner.history), result.converged, tuner.omegas.size
(20, True, 20)
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from sciml.atomic import atomic_write_json
from sciml.errors import SciMLError
from sciml.registry import parse_spec
from sciml.solvers.bandits import LEARNERS
from sciml.solvers.result import SolveResult
from sciml.solvers.sor import sor_result, ssor_cg_result
from sciml.solvers.stopping import check_tolerances

__all__ = ["LearnedRelaxation", "RELAXATION_METHODS", "PAPER_OMEGAS", "DEFAULT_LEARNER",
           "check_omega_grid"]

RELAXATION_METHODS = {"sor": sor_result, "ssor_cg": ssor_cg_result}
"""Solvers whose relaxation factor :class:`LearnedRelaxation` learns."""

DEFAULT_LEARNER = ("tsallis_inf", {"scale": "mean"})
"""Tsallis-INF comparing losses in units of their running mean, as the paper's code does."""

PAPER_OMEGAS = tuple(float(w) for w in np.linspace(1.0, 1.95, 20))
"""The paper's grid: 20 values of omega from 1 to 1.95."""


def check_omega_grid(omegas) -> np.ndarray:
    """``omegas`` as a 1-D float array of distinct values in (0, 2).

    Examples
    --------
    >>> check_omega_grid([1.0, 1.5]).tolist()
    [1.0, 1.5]
    """
    grid = np.asarray(omegas, dtype=np.float64) if not isinstance(omegas, str) else np.array([])
    if grid.ndim != 1 or grid.size == 0:
        raise SciMLError(f"omegas must be a non-empty list of numbers, got {omegas!r}")
    bad = grid[~((grid > 0.0) & (grid < 2.0))]
    if bad.size:
        raise SciMLError(f"every omega must lie in the open interval (0, 2) where SOR converges, "
                         f"got {bad[0]!r}; use e.g. numpy.linspace(1, 1.95, 20)")
    if np.unique(grid).size != grid.size:
        raise SciMLError("omegas has repeated values; give each relaxation factor once")
    return grid


class LearnedRelaxation:
    """Solve a sequence of systems with SOR or SSOR-PCG, choosing omega by a bandit learner.

    Parameters
    ----------
    method : {"sor", "ssor_cg"}
        The solver: :func:`~sciml.solvers.sor.sor_result` or
        :func:`~sciml.solvers.sor.ssor_cg_result`.
    omegas : sequence of float
        The arms, each in (0, 2); default :data:`PAPER_OMEGAS`.
    learner : str, (str, dict) or dict
        A name from :data:`sciml.solvers.bandits.LEARNERS` with its options, e.g.
        ``("chebcb", {"context_range": (-0.15, 0.45), "scale": "mean"})``; contextual
        learners need ``context_range`` and a ``context=`` with every solve. Default
        :data:`DEFAULT_LEARNER`. Pass ``"scale": "mean"``: with ``"cap"`` (the learners'
        own default, the analysed algorithm) and a budget of 10,000 the learners need
        far more than 5,000 instances to learn anything (measured: 2.3x the best fixed
        omega's iterations after 5,000 shifted-Laplacian instances).
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``; default rtol is
        the paper's 1e-8.
    maxiter : int
        Iteration budget of every solve, and the known cap that normalises the cost
        fed to the learner; default 10,000 as in the paper's code.
    seed : int
        Seed of the learner's generator.
    checkpoint : str or os.PathLike, optional
        File to save the whole state to (atomically) every ``checkpoint_every`` solves.
    checkpoint_every : int
        Solves between automatic saves.

    Attributes
    ----------
    history : list of dict
        Per solve: ``omega``, ``arm``, ``context``, ``iterations``, ``cost`` (fed to the
        learner), ``converged``, ``capped``, ``seconds`` (whole call) and
        ``learner_seconds`` (select + update).

    Examples
    --------
    >>> import numpy as np
    >>> import scipy.sparse as sp
    >>> tuner = LearnedRelaxation("ssor_cg", omegas=[1.0, 1.5], maxiter=500, seed=1)
    >>> A = sp.diags_array([-1.0, 2.1, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
    >>> result = tuner.solve(A, np.ones(100))
    >>> result.method, result.converged, tuner.history[0]["omega"] in (1.0, 1.5)
    ('ssor_cg', True, True)
    """

    def __init__(self, method: str = "sor", omegas=PAPER_OMEGAS, learner=DEFAULT_LEARNER, *,
                 rtol: float = 1e-8, atol: float = 0.0, maxiter: int = 10000, seed: int = 0,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1):
        if method not in RELAXATION_METHODS:
            raise SciMLError(f"unknown relaxation method {method!r}; use one of "
                             f"{sorted(RELAXATION_METHODS)}")
        check_tolerances(rtol, atol, maxiter)
        if maxiter is None:
            raise SciMLError("maxiter must be given: it is the cap that normalises the learner's costs")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise SciMLError(f"seed must be an integer, got {seed!r}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, (int, np.integer)) \
                or checkpoint_every < 1:
            raise SciMLError(f"checkpoint_every must be an integer >= 1, got {checkpoint_every!r}")
        self.method = method
        self.omegas = check_omega_grid(omegas)
        self.rtol, self.atol, self.maxiter, self.seed = float(rtol), float(atol), int(maxiter), int(seed)
        name, options = parse_spec(learner)
        if name not in LEARNERS:
            raise SciMLError(f"unknown learner {name!r}; use one of {sorted(LEARNERS)}")
        self.learner_spec = {"name": name, **options}
        try:
            self.learner = LEARNERS[name](self.omegas.size, cost_scale=float(self.maxiter),
                                          seed=np.random.default_rng(self.seed), **options)
        except TypeError as error:
            raise SciMLError(f"learner {name!r} rejected its options {options}: {error}") from None
        self.checkpoint = None if checkpoint is None else os.fspath(checkpoint)
        self.checkpoint_every = int(checkpoint_every)
        self.history: list[dict] = []

    @property
    def contextual(self) -> bool:
        """Whether the learner uses the ``context`` of each solve."""
        return self.learner.contextual

    def solve(self, A, b, x0=None, context=None) -> SolveResult:
        """Choose omega for this system, solve it, and feed the iteration count back.

        Parameters
        ----------
        A, b, x0 :
            As for :func:`~sciml.solvers.sor.sor_result`; ``x0`` warm-starts the solve.
        context : float, optional
            The instance's scalar context (a diagonal shift, a diffusivity); required
            by contextual learners, ignored by Tsallis-INF.

        Returns
        -------
        SolveResult
            The solver's result; ``seconds`` covers the whole call, learner included.
            When the solve did not converge, ``message`` also says that the cap
            ``maxiter`` was fed back to the learner.
        """
        started = time.perf_counter()
        arm = self.learner.select(context)
        learner_seconds = time.perf_counter() - started
        omega = float(self.omegas[arm])
        try:
            result = RELAXATION_METHODS[self.method](A, b, x0, rtol=self.rtol, atol=self.atol,
                                                     maxiter=self.maxiter, omega=omega)
        except BaseException:
            self.learner.cancel()  # the draw is void: no cost was paid for it
            raise
        cost = result.iterations if result.converged else self.maxiter
        tick = time.perf_counter()
        self.learner.update(cost)
        learner_seconds += time.perf_counter() - tick
        if not result.converged:
            result.message += f"; fed back to the learner as the capped cost {self.maxiter}"
        result.seconds = time.perf_counter() - started
        self.history.append({
            "omega": omega, "arm": int(arm), "context": None if context is None else float(context),
            "iterations": int(result.iterations), "cost": int(cost),
            "converged": bool(result.converged), "capped": not result.converged,
            "seconds": float(result.seconds), "learner_seconds": float(learner_seconds)})
        if self.checkpoint is not None and len(self.history) % self.checkpoint_every == 0:
            self.save(self.checkpoint)
        return result

    def settings(self) -> dict:
        """The constructor arguments, as JSON values."""
        return {"method": self.method, "omegas": self.omegas.tolist(), "learner": self.learner_spec,
                "rtol": self.rtol, "atol": self.atol, "maxiter": self.maxiter, "seed": self.seed,
                "checkpoint_every": self.checkpoint_every}

    def state_dict(self) -> dict:
        """Settings, learner state and history: everything :meth:`load` needs."""
        return {"format": "sciml.learned_relaxation/1", "settings": self.settings(),
                "learner": self.learner.state_dict(), "history": self.history}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` as JSON atomically (a reader never sees a torn file)."""
        atomic_write_json(path, self.state_dict())

    @classmethod
    def load(cls, path: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> "LearnedRelaxation":
        """Rebuild a tuner saved by :meth:`save`; it continues exactly where the saved one was.

        ``checkpoint`` sets where the restored tuner saves itself (default: none).
        """
        try:
            with open(path) as handle:
                state = json.load(handle)
        except (OSError, json.JSONDecodeError) as error:
            raise SciMLError(f"cannot read a saved LearnedRelaxation from {os.fspath(path)!r}: "
                             f"{error}") from None
        if not isinstance(state, dict) or state.get("format") != "sciml.learned_relaxation/1":
            raise SciMLError(f"{os.fspath(path)!r} is not a saved LearnedRelaxation; pass the file "
                             "written by LearnedRelaxation.save")
        settings = dict(state["settings"])
        learner = settings.pop("learner")
        tuner = cls(learner=learner, checkpoint=checkpoint, **settings)
        tuner.learner.load_state_dict(state["learner"])
        tuner.history = list(state["history"])
        return tuner

