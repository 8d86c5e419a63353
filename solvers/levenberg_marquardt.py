"""Batched Levenberg-Marquardt for many independent small least-squares problems, with an implicit backward.

:func:`batched_levenberg_marquardt` minimises, for every problem ``e`` of a batch at once,

.. math:: F_e(w_e) = \\tfrac12 \\lVert r_e(w_e) \\rVert_2^2 + \\tfrac12 \\lambda_{ridge} \\lVert w_e \\rVert_2^2,

where ``residual_fn`` maps the stacked unknowns ``w (E, N)`` to the stacked residuals
``(E, M)`` and problem ``e``'s residuals depend on ``w[e]`` only. Each iteration makes one
batched Jacobian evaluation (by default ``N`` forward-mode products, vectorised with
:func:`torch.func.vmap`: because the problems are independent, the tangent ``e_j`` set in
every problem at once yields column ``j`` of every problem's Jacobian; a caller that
knows the Jacobian's structure passes its own ``jacobian``) and one batched linear
solve for the steps of all problems; damping, acceptance and stopping are decided
per problem with masks, never with a Python loop over problems.

:func:`implicit_least_squares` runs the same solver without building a graph and attaches
the gradient of the solution by the implicit function theorem (:class:`ImplicitLeastSquares`),
so memory does not depend on the number of iterations. This is the optimisation layer of
Chalapathi, Du and Krishnapriyan (2024), who use optimistix' Levenberg-Marquardt with
implicit differentiation in JAX.

Examples
--------
>>> import torch
>>> from sciml.solvers.levenberg_marquardt import batched_levenberg_marquardt
>>> a = torch.tensor([[1.0], [2.0]], dtype=torch.float64)         # two Rosenbrock problems
>>> def rosenbrock(w, a):
...     return torch.stack([10 * (w[:, 1] - w[:, 0] ** 2), a[:, 0] - w[:, 0]], dim=-1)
>>> w, report = batched_levenberg_marquardt(rosenbrock, torch.zeros(2, 2, dtype=torch.float64), (a,))
>>> w.round(decimals=6).tolist(), report.converged.tolist()
([[1.0, 1.0], [2.0, 4.0]], [True, True])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

from sciml.errors import ConvergenceError, SciMLError

STATUS = ("running", "stationary", "max_iterations", "non_finite", "singular")
"""Why each problem stopped (:attr:`LMReport.status` indexes this tuple). ``stationary`` is
convergence; the others are failures."""

_RUNNING, _STATIONARY, _MAX_ITERATIONS, _NON_FINITE, _SINGULAR = range(len(STATUS))
_FAILURE_WORDS = {_MAX_ITERATIONS: "hit max_iterations", _NON_FINITE: "non-finite residual or Jacobian",
                  _SINGULAR: "singular step system"}

ResidualFn = Callable[..., torch.Tensor]


@dataclass
class LMReport:
    """What :func:`batched_levenberg_marquardt` did for each problem of the batch.

    Attributes
    ----------
    iterations : Tensor ``(E,)`` of int64
        Steps computed (linear solves) before the problem stopped.
    residual : Tensor ``(E,)``
        ``||r(w)||_2`` at the returned ``w`` (without the ridge term); ``nan`` or ``inf``
        where the residual was not finite, which is reported, not hidden.
    status : Tensor ``(E,)`` of int64
        Index into :data:`STATUS`: why the problem stopped.
    message : str
        One line summarising the batch.
    """

    iterations: torch.Tensor
    residual: torch.Tensor
    status: torch.Tensor
    message: str

    @property
    def converged(self) -> torch.Tensor:
        """Boolean ``(E,)``: the problem met the stationarity test."""
        return is_converged(self.status)

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())

    def raise_if_failed(self) -> "LMReport":
        """Return ``self`` if every problem converged, else raise :class:`~sciml.errors.ConvergenceError`."""
        if not self.all_converged:
            raise ConvergenceError(self.message)
        return self


def is_converged(status: torch.Tensor) -> torch.Tensor:
    """Where a :data:`STATUS` index means convergence (``stationary``)."""
    return status == _STATIONARY


def summarize(status: torch.Tensor, iterations: torch.Tensor, residual: torch.Tensor,
              what: str = "problems", label: Callable[[int], str] | None = None) -> str:
    """One line about a batch of least-squares solves (also used for an expert layer's record).

    ``label(i)`` names the ``i``-th (flattened) solve in the list of failures
    (default ``"problem i"``).

    Examples
    --------
    >>> import torch
    >>> summarize(torch.tensor([1, 3]), torch.tensor([4, 0]), torch.tensor([1e-9, float("nan")]))
    'Levenberg-Marquardt: 1/2 problems converged in <= 4 iterations (largest residual 1.0e-09); 1 failed: problem 1 (non-finite residual or Jacobian)'
    """
    status, iterations, residual = status.flatten().cpu(), iterations.flatten().cpu(), residual.flatten().cpu()
    ok = is_converged(status)
    label = label or (lambda i: f"{what[:-1]} {i}")
    n, n_ok = status.numel(), int(ok.sum())
    line = f"Levenberg-Marquardt: {n_ok}/{n} {what} converged"
    if n_ok:
        line += (f" in <= {int(iterations[ok].max())} iterations "
                 f"(largest residual {float(residual[ok].max()):.1e})")
    failed = torch.nonzero(~ok).flatten().tolist()
    if failed:
        shown = ", ".join(f"{label(i)} ({_FAILURE_WORDS.get(int(status[i]), STATUS[int(status[i])])})"
                          for i in failed[:3])
        line += f"; {len(failed)} failed: {shown}" + (", ..." if len(failed) > 3 else "")
    return line


def batched_jacobian(residual_fn: ResidualFn, w: torch.Tensor, params: Sequence = ()) -> torch.Tensor:
    """Jacobians ``(E, M, N)`` of the independent problems ``residual_fn(w, *params)`` at ``w (E, N)``.

    Forward mode: ``N`` Jacobian-vector products, vectorised with :func:`torch.func.vmap`;
    the tangent with a one in slot ``j`` of every problem gives column ``j`` of all
    Jacobians, because problem ``e``'s residuals depend on ``w[e]`` only. ``residual_fn``
    must be written with ``torch.func``-compatible operations (no in-place updates of
    inputs, no ``.item()``).

    Examples
    --------
    >>> import torch
    >>> A = torch.arange(12.0).reshape(2, 3, 2)
    >>> J = batched_jacobian(lambda w, A: torch.einsum("emn,en->em", A, w), torch.zeros(2, 2), (A,))
    >>> torch.equal(J, A)
    True
    """
    n = w.shape[-1]
    tangents = torch.eye(n, dtype=w.dtype, device=w.device).unsqueeze(1).expand(n, *w.shape)

    def column(tangent):
        return torch.func.jvp(lambda x: residual_fn(x, *params), (w,), (tangent,))[1]

    return torch.func.vmap(column)(tangents).movedim(0, -1)


def _objective(residual: torch.Tensor, w: torch.Tensor, ridge: float) -> torch.Tensor:
    return 0.5 * (residual.square().sum(-1) + ridge * w.square().sum(-1))


def batched_levenberg_marquardt(residual_fn: ResidualFn, w0: torch.Tensor, params: Sequence = (), *,
                                max_iterations: int = 100, tol: float | None = None, damping: float = 1e-3,
                                ridge: float = 0.0, jacobian: ResidualFn | None = None
                                ) -> tuple[torch.Tensor, LMReport]:
    """Minimise ``1/2 ||r_e(w_e)||^2 + ridge/2 ||w_e||^2`` for a batch of independent problems.

    Levenberg-Marquardt with Nielsen's damping update, as in Madsen, Nielsen and
    Tingleff (2004), Algorithm 3.16: the step solves
    ``(J^T J + ridge I + mu I) h = -(J^T r + ridge w)`` (one batched
    :func:`torch.linalg.solve_ex` for all problems); it is accepted where the gain ratio
    (actual over predicted decrease of ``F``) is positive, and then ``mu`` shrinks by
    ``max(1/3, 1 - (2 rho - 1)^3)``, else ``mu`` grows by ``nu`` and ``nu`` doubles.
    A trial point with a non-finite residual is a rejected step. Two departures keep
    the solver accurate near a minimum with non-zero residual, where ``F`` no longer
    resolves the decrease: the actual decrease is computed as
    ``(r - r_new) . (r + r_new) / 2`` (plus the ridge part) instead of a difference of
    two values of ``F``, and a step whose predicted decrease is below ``10 eps F`` is
    accepted as if the gain ratio were 1 (the values of ``F`` cannot judge it, the
    quadratic model can), so the iteration converges to full precision like Gauss-Newton.

    A problem stops, converged (``stationary``), where its undamped Gauss-Newton step is
    small: ``||(J^T J + ridge I)^{-1} g||_2 <= tol (||w||_2 + tol)``, i.e. ``w`` lies within
    ``tol`` (relative) of the minimiser of the local quadratic model. This departs from
    MINPACK, whose tests (gradient relative to its first value, damped step, decrease)
    are met early where ``J^T J`` is ill-conditioned: a damping ``mu`` far above the small
    eigenvalues of ``J^T J`` makes the damped step and the decrease tiny, and a far start
    makes the first gradient large, so those tests stop with ``w`` far from the minimiser
    along weakly determined directions (the case of a hard-constraint layer's experts,
    where such an answer also breaks the implicit-function gradient, which assumes the
    minimiser). Scaling the residuals does not change the test. A ``tol`` below about
    ``cond(J^T J + ridge I) eps`` cannot be met in floating point: the solve then ends
    with ``max_iterations``.

    A problem fails on ``max_iterations`` steps, a non-finite residual at ``w0`` or
    Jacobian at an iterate (``non_finite``), or a singular damped step system
    (``singular``). A failed problem keeps its last accepted (finite) iterate; nothing is
    zeroed or replaced.

    Parameters
    ----------
    residual_fn : callable
        ``residual_fn(w, *params) -> (E, M)`` for ``w (E, N)``; row ``e`` may depend on
        ``w[e]`` only (and on ``params``), and must be ``torch.func``-compatible.
    w0 : Tensor ``(E, N)``
        Finite starting points; their dtype and device are used throughout.
    params : sequence of Tensor
        Extra arguments of ``residual_fn`` (treated as constants here; see
        :func:`implicit_least_squares` for gradients with respect to them).
    max_iterations : int
        Most steps per problem.
    tol : float, optional
        Relative tolerance of the stationarity test (on ``w``); default ``sqrt(eps)`` of the
        dtype (MINPACK's default ``xtol``), about ``1.5e-8`` in float64 and ``3.5e-4`` in float32.
    damping : float
        Initial damping relative to the largest diagonal entry of ``J^T J + ridge I``
        (Madsen et al.'s ``tau``). ``0`` starts with a Gauss-Newton step, which solves an
        affine problem in one step; damping then starts at ``1e-3`` of that entry after
        the first rejected step.
    ridge : float
        Weight of ``||w||^2`` (Tikhonov regularisation; makes ``J^T J + ridge I`` definite).
    jacobian : callable, optional
        ``jacobian(w, *params) -> (E, M, N)``, the Jacobians of ``residual_fn``; default
        :func:`batched_jacobian` (``N`` forward-mode products). Give it where the
        structure of the residuals allows a cheaper exact Jacobian.

    Returns
    -------
    w : Tensor ``(E, N)``
        The solutions (detached).
    report : LMReport

    References
    ----------
    K. Madsen, H. B. Nielsen, O. Tingleff, "Methods for Non-Linear Least Squares Problems",
    2nd ed., DTU, 2004. J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and
    theory", Numerical Analysis, LNM 630, 1978 (MINPACK, whose stopping tests this departs from).

    Examples
    --------
    >>> import torch
    >>> A = torch.tensor([[[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]], dtype=torch.float64)
    >>> b = torch.tensor([[1.0, 2.0, 2.0]], dtype=torch.float64)
    >>> w, report = batched_levenberg_marquardt(lambda w: torch.einsum("emn,en->em", A, w) - b,
    ...                                         torch.zeros(1, 2, dtype=torch.float64), damping=0.0)
    >>> w.round(decimals=12).tolist(), report.iterations.tolist(), STATUS[int(report.status[0])]
    ([[1.0, 1.0]], [1], 'stationary')
    """
    if w0.ndim != 2 or not w0.is_floating_point():
        raise SciMLError(f"w0 must be a floating-point (problems, unknowns) tensor, got {tuple(w0.shape)} {w0.dtype}")
    if not bool(torch.isfinite(w0).all()):
        raise SciMLError("w0 has non-finite entries: start from finite weights")
    if isinstance(max_iterations, bool) or not isinstance(max_iterations, int) or max_iterations < 1:
        raise SciMLError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    if not (damping >= 0 and ridge >= 0):
        raise SciMLError(f"damping ({damping}) and ridge ({ridge}) must be >= 0")
    eps = float(torch.finfo(w0.dtype).eps)
    tol = eps ** 0.5 if tol is None else float(tol)
    if not tol > 0:
        raise SciMLError(f"tol must be positive, got {tol}")

    if jacobian is None:
        def jacobian_fn(x, *p):
            return batched_jacobian(residual_fn, x, p)
    else:
        jacobian_fn = jacobian

    with torch.no_grad():
        params = tuple(p.detach() if isinstance(p, torch.Tensor) else p for p in params)
        w = w0.detach().clone()
        n_problems, n = w.shape
        eye = torch.eye(n, dtype=w.dtype, device=w.device)
        residual = residual_fn(w, *params)
        if residual.ndim != 2 or residual.shape[0] != n_problems:
            raise SciMLError(f"residual_fn returned shape {tuple(residual.shape)} for w of shape {tuple(w.shape)}: "
                             f"return ({n_problems}, residuals)")
        value = _objective(residual, w, ridge)
        status = torch.full((n_problems,), _RUNNING, dtype=torch.long, device=w.device)
        status[~torch.isfinite(value)] = _NON_FINITE
        iterations = torch.zeros(n_problems, dtype=torch.long, device=w.device)
        mu = nu = None

        for it in range(max_iterations):
            active = status == _RUNNING
            if not bool(active.any()):
                break
            jac = jacobian_fn(w, *params)
            if it == 0 and tuple(jac.shape) != (n_problems, residual.shape[1], n):
                raise SciMLError(f"jacobian returned shape {tuple(jac.shape)}: expected (problems, residuals, "
                                 f"unknowns) = {(n_problems, residual.shape[1], n)}")
            normal = jac.transpose(-1, -2) @ jac + ridge * eye
            gradient = (jac.transpose(-1, -2) @ residual.unsqueeze(-1)).squeeze(-1) + ridge * w
            diagonal_max = normal.diagonal(dim1=-2, dim2=-1).amax(-1)
            bad = active & ~(torch.isfinite(jac).flatten(1).all(-1) & torch.isfinite(gradient).all(-1))
            status[bad] = _NON_FINITE
            active &= ~bad

            if it == 0:
                mu = damping * diagonal_max
                nu = torch.full_like(mu, 2.0)
            # the undamped (Gauss-Newton) step: how far w is from the minimiser of the quadratic model
            newton, newton_info = torch.linalg.solve_ex(normal, -gradient)
            stationary = (active & (newton_info == 0) & torch.isfinite(newton).all(-1)
                          & (newton.norm(dim=-1) <= tol * (w.norm(dim=-1) + tol)))
            status[stationary] = _STATIONARY
            active &= ~stationary

            safe_mu = torch.where(active, mu, torch.ones_like(mu))  # stopped problems: results discarded
            step, info = torch.linalg.solve_ex(normal + safe_mu[:, None, None] * eye, -gradient)
            singular = active & ((info != 0) | ~torch.isfinite(step).all(-1))
            status[singular] = _SINGULAR
            active &= ~singular
            iterations += active.long()
            if not bool(active.any()):
                break

            trial = w + torch.where(active[:, None], step, torch.zeros_like(step))
            trial_residual = residual_fn(trial, *params)
            trial_value = _objective(trial_residual, trial, ridge)
            predicted = 0.5 * (step * (mu[:, None] * step - gradient)).sum(-1)
            # F(w) - F(w + h) as a sum of products of differences: no cancellation between two
            # large values of F, so steps keep being judged correctly near a non-zero minimum
            actual = 0.5 * (((residual - trial_residual) * (residual + trial_residual)).sum(-1)
                            + ridge * ((w - trial) * (w + trial)).sum(-1))
            rho = actual / predicted
            unresolved = predicted <= 10 * eps * value  # below the rounding error of F: trust the model
            rho = torch.where(unresolved, torch.ones_like(rho), rho)
            accept = active & torch.isfinite(trial_value) & (rho > 0)
            reject = active & ~accept

            w = torch.where(accept[:, None], trial, w)
            residual = torch.where(accept[:, None], trial_residual, residual)
            value = torch.where(accept, trial_value, value)
            shrink = torch.clamp(1 - (2 * rho - 1) ** 3, min=1 / 3)
            restart = torch.where(mu > 0, mu, 1e-3 * diagonal_max)
            mu = torch.where(accept, mu * shrink, torch.where(reject, restart * nu, mu))
            nu = torch.where(accept, torch.full_like(nu, 2.0), torch.where(reject, 2 * nu, nu))

        status[status == _RUNNING] = _MAX_ITERATIONS
        norm = residual.norm(dim=-1)
        report = LMReport(iterations=iterations, residual=norm, status=status,
                          message=summarize(status, iterations, norm))
    return w, report


class ImplicitLeastSquares(torch.autograd.Function):
    """Gradient of the minimiser ``w*(theta)`` of ``F(w, theta)`` by the implicit function theorem.

    At a minimiser the gradient ``g(w, theta) = J^T r + ridge w`` vanishes, so
    ``dw*/dtheta = -H^{-1} dg/dtheta`` with ``H = dg/dw``, and for an upstream gradient
    ``v_bar = dL/dw*`` the backward pass returns ``dL/dtheta = -(dg/dtheta)^T H^{-1} v_bar``
    (``H`` is symmetric). It solves one batched ``(E, N, N)`` system and takes one
    vector-Jacobian product of ``g`` with respect to ``theta``; the forward pass saves
    only ``w*`` and ``theta``, so memory does not depend on how many iterations found ``w*``.

    ``hessian="exact"`` (default) uses ``H = J^T J + ridge I + sum_m r_m d^2 r_m/dw^2``
    (forward-over-reverse ``torch.func``), the true derivative of ``g``, so the gradient is
    exact for any residual and passes a finite-difference check. ``"gauss-newton"``
    drops the second-order term: cheaper and always positive definite for
    ``ridge > 0``, but exact only for affine residuals or zero residual at the solution.

    Called as ``ImplicitLeastSquares.apply(residual_fn, jacobian, ridge, hessian, w_star, *params)``
    (``jacobian`` as for :func:`batched_levenberg_marquardt`, or ``None``; the Gauss-Newton
    Hessian uses it, the exact one differentiates ``residual_fn``);
    use :func:`implicit_least_squares`. Not twice differentiable. The gradient is that of
    the minimiser only where the solver converged: check the report.
    """

    @staticmethod
    def forward(ctx, residual_fn, jacobian, ridge, hessian, w_star, *params):
        ctx.residual_fn, ctx.jacobian, ctx.ridge, ctx.hessian = residual_fn, jacobian, ridge, hessian
        ctx.save_for_backward(w_star, *params)
        return w_star.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_w):
        w, *params = ctx.saved_tensors
        fn, ridge = ctx.residual_fn, ctx.ridge
        wanted = [i for i, need in enumerate(ctx.needs_input_grad[5:]) if need]

        def objective(x, *p):
            return _objective(fn(x, *p), x, ridge).sum()

        gradient = torch.func.grad(objective)
        if ctx.hessian == "exact":
            n = w.shape[-1]
            tangents = torch.eye(n, dtype=w.dtype, device=w.device).unsqueeze(1).expand(n, *w.shape)
            hess = torch.func.vmap(lambda t: torch.func.jvp(lambda x: gradient(x, *params), (w,), (t,))[1])(tangents)
            hess = hess.movedim(0, -1)
        else:
            jac = batched_jacobian(fn, w, params) if ctx.jacobian is None else ctx.jacobian(w, *params)
            hess = jac.transpose(-1, -2) @ jac + ridge * torch.eye(w.shape[-1], dtype=w.dtype, device=w.device)
        adjoint, info = torch.linalg.solve_ex(hess, grad_w)
        if bool((info != 0).any()) or not bool(torch.isfinite(adjoint).all()):
            bad = torch.nonzero((info != 0) | ~torch.isfinite(adjoint).all(-1)).flatten().tolist()
            raise ConvergenceError(f"implicit backward: the Hessian of problems {bad[:5]} is singular or not finite: "
                                   "increase the ridge or check that the forward solve converged")

        def gradient_of_params(*chosen):
            full = list(params)
            for i, p in zip(wanted, chosen):
                full[i] = p
            return gradient(w, *full)

        _, vjp = torch.func.vjp(gradient_of_params, *[params[i] for i in wanted])
        grads = vjp(-adjoint)
        out = [None] * len(params)
        for i, g in zip(wanted, grads):
            out[i] = g
        return (None, None, None, None, None, *out)


def implicit_least_squares(residual_fn: ResidualFn, w0: torch.Tensor, params: Sequence[torch.Tensor] = (), *,
                           hessian: str = "exact", ridge: float = 0.0, jacobian: ResidualFn | None = None,
                           **options) -> tuple[torch.Tensor, LMReport]:
    """:func:`batched_levenberg_marquardt`, differentiable with respect to ``params`` by :class:`ImplicitLeastSquares`.

    The iterations run without a graph; the returned ``w`` carries the implicit-function
    backward when a parameter requires a gradient. No gradient flows to ``w0``.

    Parameters
    ----------
    residual_fn, w0, params, ridge, jacobian, **options
        As for :func:`batched_levenberg_marquardt`.
    hessian : {"exact", "gauss-newton"}
        The Hessian the backward pass solves with (see :class:`ImplicitLeastSquares`).

    Examples
    --------
    >>> import torch
    >>> theta = torch.tensor([[3.0]], dtype=torch.float64, requires_grad=True)
    >>> w, report = implicit_least_squares(lambda w, t: w ** 3 - t, torch.ones(1, 1, dtype=torch.float64), (theta,))
    >>> w.backward()                                          # w = theta^(1/3)
    >>> round(float(theta.grad), 6) == round(3.0 ** (-2 / 3) / 3, 6)
    True
    """
    if hessian not in ("exact", "gauss-newton"):
        raise SciMLError(f"hessian = {hessian!r} is not supported; choose 'exact' or 'gauss-newton'")
    params = tuple(params)
    w, report = batched_levenberg_marquardt(residual_fn, w0, params, ridge=ridge, jacobian=jacobian, **options)
    if torch.is_grad_enabled() and any(isinstance(p, torch.Tensor) and p.requires_grad for p in params):
        w = ImplicitLeastSquares.apply(residual_fn, jacobian, ridge, hessian, w, *params)
    return w, report
