"""A configured linear solver a generator holds, and the registry of methods behind it.

``METHODS`` maps a name to a function ``f(A, b, x0=None, *, rtol, atol, maxiter, M,
callback, **options) -> SolveResult``; another module adds a method with
``METHODS.register("name", f_result)``. A method whose function takes a ``recycle``
argument (``gcrodr``) recycles: the solver then holds one
:class:`~sciml.solvers.recycle_space.RecycleSpace` and passes it to every solve.

Examples
--------
>>> import numpy as np
>>> import scipy.sparse as sp
>>> from sciml.solvers import LinearSolver
>>> solver = LinearSolver("gmres", preconditioner="ilu", rtol=1e-10, restart=20)
>>> A = sp.diags_array([-1.0, 2.5, -1.0], offsets=[-1, 0, 1], shape=(100, 100))
>>> result = solver.solve(A, np.ones(100))
>>> result.converged
True
>>> LinearSolver.from_settings(solver.settings()).settings() == solver.settings()
True
"""

from __future__ import annotations

import dataclasses
import inspect
import time

from sciml.errors import SciMLError
from sciml.registry import Registry, parse_spec
from sciml.solvers.deflated_cg import recycled_cg_result
from sciml.solvers.direct import direct_result
from sciml.solvers.gcro_dr import gcrodr_result
from sciml.solvers.krylov import cg_result, gmres_result
from sciml.solvers.preconditioners import check_preconditioner, make_preconditioner
from sciml.solvers.recycle_space import RecycleSpace, operator_key
from sciml.solvers.result import SolveResult
from sciml.solvers.stopping import check_options, check_tolerances

METHODS: Registry = Registry("solver method")
METHODS.register("cg", cg_result)
METHODS.register("gmres", gmres_result)
METHODS.register("direct", direct_result)
METHODS.register("gcrodr", gcrodr_result)
METHODS.register("rcg", recycled_cg_result)

FACTORISING_METHODS = frozenset({"direct"})
"""Methods that factorise ``A`` themselves and so take no preconditioner."""

_COMMON_ARGUMENTS = {"A", "b", "x0", "rtol", "atol", "maxiter", "M", "callback"}
_RECYCLE_ARGUMENT = "recycle"
DEFAULT_RECYCLE_K = 20
"""Size of a recycling method's space when neither its options nor its signature give ``k``."""


def _default_k(arguments) -> int:
    """The method's own default ``k`` (e.g. 10 for rcg), else :data:`DEFAULT_RECYCLE_K`."""
    parameter = arguments.get("k")
    default = None if parameter is None else parameter.default
    return default if isinstance(default, int) and not isinstance(default, bool) else DEFAULT_RECYCLE_K
_SETTINGS_KEYS = ("method", "preconditioner", "rtol", "atol", "maxiter", "options")


class LinearSolver:
    """A method, a preconditioner spec and tolerances, applied to one system at a time.

    Parameters
    ----------
    method : str
        A name from ``METHODS.names()``: ``"cg"``, ``"gmres"``, ``"gcrodr"``, ``"direct"``.
    preconditioner : str, (str, dict), dict or None
        A spec for :func:`~sciml.solvers.make_preconditioner`; built for every new ``A``
        passed to :meth:`solve` and reused while the same ``A`` (same
        :func:`~sciml.solvers.operator_key`) comes again with another right-hand side.
        None means ``"none"``.
    rtol, atol : float
        Converged iff ``||b - A x||_2 <= max(rtol ||b||_2, atol)``.
    maxiter : int, optional
        Iteration budget of the method (default: its own, ``10 n`` for cg and gmres).
    **method_options
        Further keyword options of the method, e.g. ``restart=40`` for gmres, ``m=40,
        k=20`` for gcrodr (never ``recycle``: the solver holds the space).

    Attributes
    ----------
    recycle : RecycleSpace or None
        For a recycling method (one whose function takes ``recycle``, e.g. gcrodr) the
        space passed to every :meth:`solve`, of size ``k`` from the options (default
        20), so each system starts from the last one's directions; None otherwise.
        :meth:`reset` empties it; it is not part of :meth:`settings`.

    Raises
    ------
    UnknownNameError
        For a method or preconditioner name that is not registered.
    SciMLError
        For options the method or preconditioner does not take, or bad tolerances.

    Examples
    --------
    >>> LinearSolver("cg", preconditioner=("amg", {"max_coarse": 50})).settings()["preconditioner"]
    {'name': 'amg', 'max_coarse': 50}
    """

    def __init__(self, method: str = "cg", preconditioner=None, rtol: float = 1e-8,
                 atol: float = 0.0, maxiter: int | None = None, **method_options):
        function = METHODS.get(method)
        arguments = dict(inspect.signature(function).parameters)
        accepted = set(arguments) - _COMMON_ARGUMENTS - {_RECYCLE_ARGUMENT}
        check_options(f"method {method!r}", method_options, accepted)
        check_tolerances(rtol, atol, maxiter)
        name, options = parse_spec(preconditioner)
        name = "none" if name is None else str(name).lower()
        check_preconditioner(name, options)
        method = str(method).lower()
        if method in FACTORISING_METHODS and name != "none":
            raise SciMLError(f"method {method!r} takes no preconditioner, got {name!r}; "
                             "drop preconditioner= or use method='cg' or 'gmres'")
        self.method = method
        self.preconditioner = name if not options else {"name": name, **options}
        self.rtol = float(rtol)
        self.atol = float(atol)
        self.maxiter = None if maxiter is None else int(maxiter)
        self.method_options = dict(method_options)
        self._solve = function
        self.recycle = (RecycleSpace(method_options.get("k", _default_k(arguments)))
                        if _RECYCLE_ARGUMENT in arguments else None)
        self._preconditioner_for: tuple[str, object] | None = None

    def _preconditioner(self, A):
        """``M`` for ``A``: the cached one while ``A`` is unchanged, else built afresh."""
        if self.preconditioner == "none":
            return None
        key = operator_key(A)
        if self._preconditioner_for is None or self._preconditioner_for[0] != key:
            self._preconditioner_for = (key, make_preconditioner(self.preconditioner, A))
        return self._preconditioner_for[1]

    def reset(self) -> None:
        """Forget the cached preconditioner and empty the recycle space (if any).

        Examples
        --------
        >>> solver = LinearSolver("gcrodr", m=10, k=4)
        >>> solver.reset(); solver.recycle
        RecycleSpace(k=4, size=0, method=None)
        """
        self._preconditioner_for = None
        if self.recycle is not None:
            self.recycle.clear()

    def solve(self, A, b, x0=None) -> SolveResult:
        """Solve ``A x = b``; ``seconds`` of the result includes building the preconditioner.

        A recycling method gets :attr:`recycle` and updates it for the next solve.

        Examples
        --------
        >>> import numpy as np
        >>> LinearSolver("direct").solve(np.diag([2.0, 4.0]), np.ones(2)).x
        array([0.5 , 0.25])
        """
        started = time.perf_counter()
        M = self._preconditioner(A)
        recycling = {} if self.recycle is None else {_RECYCLE_ARGUMENT: self.recycle}
        result = self._solve(A, b, x0, rtol=self.rtol, atol=self.atol, maxiter=self.maxiter, M=M,
                             **self.method_options, **recycling)
        return dataclasses.replace(result, seconds=time.perf_counter() - started)

    def settings(self) -> dict:
        """JSON-serialisable settings; :meth:`from_settings` rebuilds the solver from them."""
        return {
            "method": self.method,
            "preconditioner": self.preconditioner,
            "rtol": self.rtol,
            "atol": self.atol,
            "maxiter": self.maxiter,
            "options": dict(self.method_options),
        }

    @classmethod
    def from_settings(cls, settings: dict) -> "LinearSolver":
        """The solver described by ``settings`` (as :meth:`settings` writes them).

        Examples
        --------
        >>> LinearSolver.from_settings({"method": "gmres", "options": {"restart": 20}}).method_options
        {'restart': 20}
        """
        if not isinstance(settings, dict):
            raise SciMLError(f"solver settings must be a mapping, got {type(settings).__name__}")
        check_options("solver settings", settings, _SETTINGS_KEYS)
        settings = dict(settings)
        options = settings.pop("options", None) or {}
        return cls(**settings, **options)

    def __repr__(self) -> str:
        options = "".join(f", {key}={value!r}" for key, value in self.method_options.items())
        return (f"LinearSolver({self.method!r}, preconditioner={self.preconditioner!r}, "
                f"rtol={self.rtol!r}, atol={self.atol!r}, maxiter={self.maxiter!r}{options})")
