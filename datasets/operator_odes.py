"""The 1-D ODE operators of DeepONet: the antiderivative and ds/dx = -s^2 + u.

Both learn the map from a forcing u(x) on [0, 1] to the solution s(x) of an initial
value problem with s(0) = 0, following Lu et al., "Learning nonlinear operators via
DeepONet based on the universal approximation theorem of operators", Nature Machine
Intelligence 3 (2021), sections "A simple 1D dynamic system" (ds/dx = g(s, u, x) with
g = u, the antiderivative, and g = -s^2 + u) and "Data generation". The forcing is a
zero-mean Gaussian process with the RBF kernel, length scale l = 0.2
(:func:`~sciml.datasets.rbf_random_field`), sampled at ``resolution`` equispaced points
x_i = i / (n - 1) that include both ends (DeepONet's 100 sensors); u and s share that grid.

Discretisation: the trapezoidal rule between neighbouring points,

    s_0 = 0,   s_i - s_{i-1} = (h / 2) (g(s_i, u_i) + g(s_{i-1}, u_{i-1})),   h = 1 / (n - 1),

which is second order, exact for the discrete antiderivative (the cumulative trapezoid)
and implicit (nonlinear in s) for g = -s^2 + u, where it is solved by Newton's method.
Departure from the reference: DeepONet integrates with an adaptive ODE solver
(``scipy.integrate.odeint``) on an interpolated forcing, so its targets carry that
solver's tolerance instead of this fixed second-order discretisation error, and it stores
s at randomly drawn points y per forcing, where here s is stored on the whole grid. A
forcing whose ODE solution blows up before x = 1 (ds/dx = -s^2 + u with u strongly
negative; about 1 in 1000 draws at l = 0.2, sigma = 1) has no solution: Newton reports the
sample as failed and the generator leaves it out.

Examples
--------
>>> from sciml.datasets import NonlinearODE
>>> from sciml.solvers import LinearSolver
>>> sample = NonlinearODE(resolution=100).generate_sample(seed=0, solver=LinearSolver("direct"))
>>> sample.fields["s"].shape, sample.record.converged
((100,), True)
"""

from __future__ import annotations

import math
import time

import numpy as np
import scipy.sparse as sp

from sciml.errors import SciMLError
from sciml.solvers.result import SolveResult

from .problem import PDEProblem, Sample
from .random_fields import rbf_random_field

__all__ = ["Antiderivative", "NonlinearODE"]

DEFAULT_NEWTON_RTOL = 1e-10
"""Newton's relative tolerance when the solver carries no ``rtol``."""


def _positive_number(problem: str, name: str, value) -> float:
    """``value`` as a finite float > 0, or a one-line :class:`SciMLError` naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SciMLError(f"{problem} setting {name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise SciMLError(f"{problem} setting {name} must be finite and > 0, got {value!r}")
    return float(value)


class _OperatorODE(PDEProblem):
    """Shared grid, forcing and trapezoidal operators of the DeepONet ODE problems.

    Not registered; :class:`Antiderivative` and :class:`NonlinearODE` are.

    Parameters
    ----------
    resolution : int
        Grid points on [0, 1], both ends included (>= 3).
    dim : int
        Must be 1.
    length_scale : float
        Length scale l of the RBF forcing (DeepONet: 0.2).
    sigma : float
        Pointwise standard deviation of the forcing (DeepONet: 1).
    """

    input_names = ("u",)
    output_names = ("s",)
    parameter_names = ("length_scale", "sigma")

    def __init__(self, resolution: int, dim: int = 1, length_scale: float = 0.2, sigma: float = 1.0):
        if dim != 1:
            raise SciMLError(f"{self.name} is a 1-D problem (an ODE on [0, 1]), got dim={dim!r}; set dim=1")
        super().__init__(resolution, dim)
        self.length_scale = _positive_number(self.name, "length_scale", length_scale)
        self.sigma = _positive_number(self.name, "sigma", sigma)
        self.h = 1.0 / (self.resolution - 1)
        n = self.resolution
        # D s = (s_i - s_{i-1})_i with row 0 the initial condition s_0; M v = (v_i + v_{i-1}) / 2, row 0 zero.
        self._difference = sp.diags_array([np.ones(n), -np.ones(n - 1)], offsets=[0, -1],
                                          shape=(n, n), format="csr")
        self._average = sp.diags_array([np.r_[0.0, np.full(n - 1, 0.5)], np.full(n - 1, 0.5)], offsets=[0, -1],
                                       shape=(n, n), format="csr")

    def coordinates(self) -> dict[str, np.ndarray]:
        """The grid x_i = i / (n - 1), i = 0..n-1: both ends included, as DeepONet's sensors."""
        return {"x": np.linspace(0.0, 1.0, self.resolution)}

    def sample_inputs(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Draw the forcing ``u`` from the RBF Gaussian process on the grid."""
        return {"u": rbf_random_field(self.coordinates()["x"], self.length_scale, rng, sigma=self.sigma)}

    def _forcing(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """The input ``u`` as a finite float64 grid vector, or a one-line error."""
        return self.checked_field(inputs, "u")

    def fields_from_solution(self, x: np.ndarray, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The solution ``s`` on the grid."""
        x = np.asarray(x)
        if x.size != self.resolution:
            raise SciMLError(f"{self.name} solution has {x.size} values, expected {self.resolution}")
        return {"s": x.reshape(self.grid_shape)}


class Antiderivative(_OperatorODE, name="antiderivative"):
    """The antiderivative operator u -> s, ds/dx = u(x) on [0, 1], s(0) = 0.

    DeepONet's linear benchmark (Lu et al. 2021, g(s, u, x) = u(x)); the forcing is an
    RBF Gaussian process with length scale 0.2. The trapezoidal rule gives the lower
    bidiagonal system s_0 = 0, s_i - s_{i-1} = h (u_i + u_{i-1}) / 2, whose solution is the
    cumulative trapezoid of u (:func:`scipy.integrate.cumulative_trapezoid`), second-order
    accurate. See the module docstring for the departure from the reference.

    Parameters
    ----------
    resolution : int
        Grid points on [0, 1], both ends included (>= 3).
    dim : int
        Must be 1.
    length_scale : float
        Length scale of the RBF forcing (DeepONet: 0.2).
    sigma : float
        Standard deviation of the forcing (DeepONet: 1).

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import Antiderivative
    >>> from sciml.solvers import LinearSolver
    >>> problem = Antiderivative(resolution=101)
    >>> x = problem.coordinates()["x"]
    >>> A, b = problem.assemble({"u": np.cos(x)})
    >>> s = LinearSolver("direct", rtol=1e-12).solve(A, b).x
    >>> bool(np.max(np.abs(s - np.sin(x))) < 1e-5)
    True
    """

    version = "1"

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The trapezoidal system ``D s = h M u``: lower bidiagonal, row 0 the condition s_0 = 0."""
        u = self._forcing(inputs)
        return self._difference.copy(), self.h * (self._average @ u)


class NonlinearODE(_OperatorODE, name="nonlinear-ode"):
    """The operator u -> s of ds/dx = -s(x)^2 + u(x) on [0, 1], s(0) = 0.

    DeepONet's nonlinear 1-D benchmark (Lu et al. 2021, g(s, u, x) = -s^2 + u); the forcing
    is an RBF Gaussian process with length scale 0.2. The trapezoidal rule gives the
    nonlinear system F(s) = D s - h M (u - s^2) = 0 (D the differences with row 0 the
    condition s_0 = 0, M the averages of neighbours), solved by Newton's method on the whole
    grid from s = 0: each step solves the lower bidiagonal J(s) d = -F(s),
    J(s) = D + 2 h M diag(s), with the solver the caller passes, until
    ||F(s)|| <= max(rtol ||F(0)||, atol) with the solver's rtol and atol (1e-10 and 0 when
    it has none), at most ``max_newton_steps`` steps. No damping or line search: for forcing
    that makes s blow up in finite x (ds/dx = -s^2 + u with u strongly negative) the discrete
    system may have no solution, and the failure is reported in the sample's record.

    Parameters
    ----------
    resolution : int
        Grid points on [0, 1], both ends included (>= 3).
    dim : int
        Must be 1.
    length_scale : float
        Length scale of the RBF forcing (DeepONet: 0.2).
    sigma : float
        Standard deviation of the forcing (DeepONet: 1).
    max_newton_steps : int
        Most Newton steps before the solve is reported as not converged.

    Examples
    --------
    >>> import numpy as np
    >>> from sciml.datasets import NonlinearODE
    >>> from sciml.solvers import LinearSolver
    >>> problem = NonlinearODE(resolution=101)
    >>> x = problem.coordinates()["x"]
    >>> result = problem.solve({"u": np.cos(x) + np.sin(x) ** 2}, LinearSolver("direct"))
    >>> result.converged, bool(np.max(np.abs(result.x - np.sin(x))) < 1e-4)
    (True, True)
    """

    version = "1"
    parameter_names = ("length_scale", "sigma", "max_newton_steps")

    def __init__(self, resolution: int, dim: int = 1, length_scale: float = 0.2, sigma: float = 1.0,
                 max_newton_steps: int = 30):
        super().__init__(resolution, dim, length_scale, sigma)
        steps = max_newton_steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise SciMLError(f"{self.name} setting max_newton_steps must be an integer >= 1, got {steps!r}")
        self.max_newton_steps = int(max_newton_steps)

    def residual(self, s: np.ndarray, u: np.ndarray) -> np.ndarray:
        """F(s) = D s - h M (u - s^2), the trapezoidal equations (row 0: s_0)."""
        return self._difference @ s - self.h * (self._average @ (u - s * s))

    def jacobian(self, s: np.ndarray) -> sp.csr_matrix:
        """J(s) = D + 2 h M diag(s), lower bidiagonal with diagonal 1 + h s_i (row 0: 1)."""
        return (self._difference + 2.0 * self.h * (self._average @ sp.diags_array(s))).tocsr()

    def assemble(self, inputs: dict[str, np.ndarray]) -> tuple[sp.csr_matrix, np.ndarray]:
        """The Newton system J(0) d = -F(0) at the initial guess s = 0.

        J(0) = D and -F(0) = h M u, the antiderivative's system: its solution is the first
        Newton iterate, not the solution of the nonlinear ODE. :meth:`generate_sample` and
        :meth:`solve` run the whole Newton iteration.
        """
        u = self._forcing(inputs)
        return self.jacobian(np.zeros(self.resolution)), -self.residual(np.zeros(self.resolution), u)

    def solve(self, inputs: dict[str, np.ndarray], solver) -> SolveResult:
        """Solve the trapezoidal system by Newton's method, each step a linear solve by ``solver``.

        Parameters
        ----------
        inputs : dict
            ``{"u": grid array}``, finite.
        solver : object with ``solve(A, b) -> SolveResult``
            Usually :class:`~sciml.solvers.LinearSolver`; its ``rtol`` and ``atol`` (if any)
            are also Newton's tolerances.

        Returns
        -------
        SolveResult
            ``x`` the last finite iterate; ``iterations`` and ``matvecs`` summed over the
            linear solves; ``residual_norm`` ||F(s)|| and ``relative_residual``
            ||F(s)|| / ||F(0)|| (the nonlinear residual); ``residual_history`` ||F|| after
            every Newton step; ``seconds`` the wall time of the whole iteration;
            ``converged`` only if Newton met its tolerance with every linear solve converged,
            else ``message`` says why.

        Examples
        --------
        >>> import numpy as np
        >>> from sciml.solvers import LinearSolver
        >>> problem = NonlinearODE(resolution=50)
        >>> result = problem.solve({"u": np.ones(50)}, LinearSolver("direct"))
        >>> result.converged, result.method, len(result.residual_history) <= 6
        (True, 'newton-direct', True)
        """
        started = time.perf_counter()
        u = self._forcing(inputs)
        rtol = float(getattr(solver, "rtol", DEFAULT_NEWTON_RTOL))
        atol = float(getattr(solver, "atol", 0.0))
        s = np.zeros(self.resolution)
        F = self.residual(s, u)
        initial = float(np.linalg.norm(F))
        target = max(rtol * initial, atol)
        history = [initial]
        iterations = matvecs = steps = 0
        message = ""
        while history[-1] > target:
            if steps == self.max_newton_steps:
                message = (f"newton did not converge after {steps} steps, residual {history[-1]:.3g} "
                           f"(relative {history[-1] / initial:.3g}, rtol {rtol:g}); raise max_newton_steps, "
                           "or check u: ds/dx = -s^2 + u blows up in finite x where u is strongly negative")
                break
            steps += 1
            jacobian = self.jacobian(s)
            if np.any(jacobian.diagonal() == 0):
                message = (f"newton step {steps}: the Jacobian is singular (1 + h s_i = 0), residual "
                           f"{history[-1]:.3g}; check u: ds/dx = -s^2 + u blows up where u is strongly negative")
                break
            linear = solver.solve(jacobian, -F)
            iterations += linear.iterations
            matvecs += linear.matvecs
            if not linear.converged:
                message = (f"newton step {steps}: the linear solve did not converge ({linear.message}); if the "
                           "linear solver suits J, check u: ds/dx = -s^2 + u blows up where u is strongly negative")
                break
            trial = s + linear.x
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected just below
                trial_residual = self.residual(trial, u)
            if not (np.all(np.isfinite(trial)) and np.all(np.isfinite(trial_residual))):
                message = (f"newton diverged at step {steps} (the iterate overflowed), residual before "
                           f"{history[-1]:.3g}; check u: ds/dx = -s^2 + u blows up where u is strongly negative")
                break
            s, F = trial, trial_residual
            history.append(float(np.linalg.norm(F)))
        method = getattr(solver, "method", None)
        return SolveResult(
            x=s,
            converged=not message,
            iterations=iterations,
            matvecs=matvecs,
            residual_norm=history[-1],
            relative_residual=history[-1] / initial if initial > 0 else 0.0,
            residual_history=history,
            seconds=time.perf_counter() - started,
            method=f"newton-{method}" if method else "newton",
            message=message,
        )

    def generate_sample(self, seed: int, solver) -> Sample:
        """Draw ``u`` from ``seed`` and solve by Newton (:meth:`solve`); the record totals the steps."""
        inputs = self.sample_inputs(np.random.default_rng(seed))
        record = self.solve(inputs, solver)
        return Sample(seed=int(seed), fields={**inputs, **self.fields_from_solution(record.x, inputs)}, record=record)
