"""Bandit learners that choose one of K arms (relaxation factors) from the cost of each solve only.

Following Khodak, Chow, Balcan & Talwalkar, "Learning to Relax: Setting Solver
Parameters Across a Sequence of Linear System Instances", ICLR 2024:

- :class:`TsallisINF`: the 1/2-Tsallis-entropy online mirror descent of Zimmert &
  Seldin (JMLR 2021) over a grid of omega values, with the paper's anytime learning
  rate ``eta_t = 2 / sqrt(t)`` and importance-weighted loss estimates; regret
  ``O(sqrt(K T))`` against the best fixed arm (paper, sec. 3);
- :class:`BinnedTsallisINF`: one Tsallis-INF per bin of a scalar context (the paper's
  "Tsallis-INF-CB" baseline, sec. 6);
- :class:`ChebCB`: per-arm regression of the cost on Chebyshev polynomials of the
  context, with inverse-gap-weighted sampling (SquareCB, Foster & Rakhlin, ICML 2020),
  the paper's contextual learner (sec. 5), which approaches the instance-optimal omega.

A cost is whatever the caller pays (the iteration count), normalised to a loss in
[0, 1] by a known cap ``cost_scale`` (the iteration budget); a solve stopped by the
budget is fed back at the cap. ``scale`` says in which unit the learner compares
losses: ``"cap"`` (the analysis: losses in [0, 1]) or ``"mean"`` (the paper's code:
in units of the mean loss observed so far, which makes the learner invariant to how
loose the cap is -- with a budget of 10,000 and costs of a few hundred, ``"cap"``
learns far too slowly to be useful within thousands of instances). Every learner draws from its own seeded
:class:`numpy.random.Generator` and has ``state_dict`` / ``load_state_dict`` (plain
JSON-serialisable values) so a sequence can be stopped and resumed exactly.

Protocol: ``arm = learner.select(context)``; pay the cost of arm ``arm``;
``learner.update(cost)``; repeat.

Examples
--------
>>> import numpy as np
>>> learner = TsallisINF(3, cost_scale=1.0, seed=0)
>>> means = np.array([0.6, 0.2, 0.5])
>>> noise = np.random.default_rng(1)
>>> for _ in range(2000):
...     arm = learner.select()
...     learner.update(float(np.clip(means[arm] + 0.1 * noise.standard_normal(), 0, 1)))
>>> int(np.argmax(learner.probabilities()))
1
"""

from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev

from sciml.errors import SciMLError

__all__ = ["TsallisINF", "BinnedTsallisINF", "ChebCB", "tsallis_probabilities", "LEARNERS"]


SCALES = ("cap", "mean")
"""How a learner measures loss differences: in units of the cap (the analysis), or of the
mean loss so far (the paper's code; scale-free, so a loose cap does not slow learning)."""


def tsallis_probabilities(losses: np.ndarray, eta: float, tol: float = 1e-12) -> np.ndarray:
    """The 1/2-Tsallis-INF distribution ``p_i = 4 / (eta (L_i - x))^2`` summing to one.

    ``x < min L`` is the normaliser; ``sum_i p_i(x) - 1`` is increasing and convex in
    ``x``, so Newton's method started at ``x0 = min L - 2 / eta`` (where the best arm
    alone has ``p = 1``, so the sum is >= 1) decreases monotonically to the root
    (Zimmert & Seldin 2021, Alg. 2); the final renormalisation only removes
    round-off.

    Parameters
    ----------
    losses : ndarray
        Cumulative loss estimates ``L_i``.
    eta : float
        Learning rate, > 0.

    Examples
    --------
    >>> p = tsallis_probabilities(np.array([0.0, 1.0, 5.0]), eta=1.0)
    >>> np.round(p, 4), round(float(p.sum()), 12)
    (array([0.6132, 0.3167, 0.0701]), 1.0)
    """
    gaps = np.asarray(losses, dtype=np.float64) - float(np.min(losses))
    x = -2.0 / eta
    for _ in range(100):
        weights = 4.0 / (eta * (gaps - x)) ** 2
        excess = weights.sum() - 1.0
        if excess <= tol:
            break
        x -= excess / (eta * np.sum(weights ** 1.5))
    return weights / weights.sum()


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not (math.isfinite(value) and value > 0):
        raise SciMLError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_arms(n_arms) -> int:
    if isinstance(n_arms, bool) or not isinstance(n_arms, (int, np.integer)) or n_arms < 1:
        raise SciMLError(f"n_arms must be an integer >= 1, got {n_arms!r}")
    return int(n_arms)


def _generator(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


class _Learner:
    """Shared bookkeeping: the seeded generator, the pending arm, cost normalisation."""

    contextual = False

    def __init__(self, n_arms: int, cost_scale: float, seed, scale: str = "cap"):
        self.n_arms = _check_arms(n_arms)
        self.cost_scale = _check_positive("cost_scale", cost_scale)
        if scale not in SCALES:
            raise SciMLError(f"scale must be one of {SCALES}, got {scale!r}")
        self.scale = scale
        self.rng = _generator(seed)
        self.t = 0
        self.total_loss = 0.0
        self._pending: tuple[int, float] | None = None  # (arm, its probability)
        self._p = np.full(self.n_arms, 1.0 / self.n_arms)
        self.lowest_loss: float | None = None

    def _draw(self, p: np.ndarray) -> int:
        if self._pending is not None:
            raise SciMLError("select() was called twice without update(cost); feed back the cost "
                             "of every selected arm")
        arm = int(self.rng.choice(self.n_arms, p=p))
        self._p = p
        self._pending = (arm, float(p[arm]))
        return arm

    def _loss(self, cost) -> tuple[int, float, float]:
        """Check ``cost``, clear the pending arm, return ``(arm, probability, loss in [0, 1])``."""
        if self._pending is None:
            raise SciMLError("update(cost) was called without a preceding select(); select an arm first")
        if isinstance(cost, bool) or not isinstance(cost, (int, float, np.integer, np.floating)) \
                or not (0.0 <= cost <= self.cost_scale):
            raise SciMLError(f"cost must be a number in [0, cost_scale = {self.cost_scale}], got "
                             f"{cost!r}; raise cost_scale to the iteration budget")
        arm, probability = self._pending
        self._pending = None
        self.t += 1
        loss = float(cost) / self.cost_scale
        self.total_loss += loss
        return arm, probability, loss

    def excess(self, loss: float) -> float:
        """``loss`` above the lowest loss seen before it (0 for the first), then record it.

        The Tsallis-INF learners estimate these excess losses: every arm pays at least
        the floor, so subtracting it leaves the comparison of arms unchanged in
        expectation and shrinks the variance of the importance-weighted estimates (the
        paper's code subtracts the least possible cost, one iteration, for the same reason;
        the lowest cost observed is a tighter floor and never makes an estimate negative).
        """
        floor = 0.0 if self.lowest_loss is None else self.lowest_loss
        self.lowest_loss = loss if self.lowest_loss is None else min(self.lowest_loss, loss)
        return max(loss - floor, 0.0)

    def unit(self) -> float:
        """The loss unit the learner compares arms in: 1 (``scale="cap"``), or the mean loss
        observed so far (``scale="mean"``; 1 before any positive loss)."""
        if self.scale == "cap" or self.total_loss <= 0.0:
            return 1.0
        return self.total_loss / self.t

    def cancel(self) -> None:
        """Forget the pending draw (the solve it was for failed before paying a cost)."""
        self._pending = None

    def probabilities(self) -> np.ndarray:
        """The distribution the last :meth:`select` drew from."""
        return self._p.copy()

    def _base_state(self) -> dict:
        return {"class": type(self).__name__, "n_arms": self.n_arms, "cost_scale": self.cost_scale,
                "t": self.t, "total_loss": self.total_loss, "scale": self.scale,
                "lowest_loss": self.lowest_loss,
                "rng": self.rng.bit_generator.state,
                "pending": None if self._pending is None else list(self._pending),
                "p": self._p.tolist()}

    def _load_base(self, state: dict) -> None:
        if state.get("class") != type(self).__name__ or state.get("n_arms") != self.n_arms:
            raise SciMLError(f"state is for {state.get('class')} with {state.get('n_arms')} arms, "
                             f"not {type(self).__name__} with {self.n_arms}; build the learner it was "
                             "saved from")
        self.cost_scale = float(state["cost_scale"])
        self.t = int(state["t"])
        self.total_loss = float(state["total_loss"])
        self.scale = str(state["scale"])
        self.lowest_loss = None if state["lowest_loss"] is None else float(state["lowest_loss"])
        self.rng.bit_generator.state = state["rng"]
        pending = state["pending"]
        self._pending = None if pending is None else (int(pending[0]), float(pending[1]))
        self._p = np.array(state["p"], dtype=np.float64)


class TsallisINF(_Learner):
    """Tsallis-INF (1/2-Tsallis entropy) over ``n_arms`` arms, as in Khodak et al. (ICLR 2024), sec. 3.

    Round ``t`` samples an arm from :func:`tsallis_probabilities` of the cumulative
    importance-weighted loss estimates with ``eta_t = 2 / sqrt(t)``, then adds
    ``(loss - floor) / p_arm`` to the played arm's estimate, ``floor`` the lowest loss
    seen before (:meth:`excess`). With ``scale="mean"`` the estimates are divided by
    the mean loss so far before the probabilities are computed, as in the paper's code;
    ``scale="cap"`` is the analysed algorithm. The floor is our departure: the paper's
    code subtracts the least possible cost (one iteration). On the paper's shifted
    sequences (T = 5000, ``scale="mean"``, 2 sequences x 3 learner seeds) it took the
    total cost from 1.16x to 1.15x the best fixed omega (high variance) and from 1.13x
    to 1.10x (low variance); one learner per bin from 0.99x to 0.96x and 1.09x to 1.04x.

    Parameters
    ----------
    n_arms : int
        Number of arms (grid points).
    cost_scale : float
        Cap on a cost; losses are ``cost / cost_scale``.
    scale : {"cap", "mean"}
        Unit of loss comparisons (module docstring).
    seed : int or numpy.random.Generator, optional
        Source of the arm draws.

    Examples
    --------
    >>> learner = TsallisINF(4, cost_scale=100.0, seed=0)
    >>> arm = learner.select()
    >>> learner.update(37)
    >>> learner.t, learner.state_dict()["losses"][arm] == 37 / 100 / 0.25
    (1, True)
    """

    def __init__(self, n_arms: int, *, cost_scale: float, scale: str = "cap", seed=None):
        super().__init__(n_arms, cost_scale, seed, scale)
        self.losses = np.zeros(self.n_arms)

    def select(self, context=None) -> int:
        """Draw the arm for the next instance (``context`` is ignored)."""
        eta = 2.0 / math.sqrt(self.t + 1)
        return self._draw(tsallis_probabilities(self.losses / self.unit(), eta))

    def update(self, cost) -> None:
        """Feed back the cost of the selected arm."""
        arm, probability, loss = self._loss(cost)
        self.losses[arm] += self.excess(loss) / probability

    def state_dict(self) -> dict:
        """Everything needed to continue exactly: estimates, round, generator state."""
        return {**self._base_state(), "losses": self.losses.tolist()}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`."""
        self._load_base(state)
        self.losses = np.array(state["losses"], dtype=np.float64)


def _check_range(context_range) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in context_range)
    except (TypeError, ValueError):
        raise SciMLError(f"context_range must be (low, high), got {context_range!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise SciMLError(f"context_range must be finite with low < high, got {context_range!r}")
    return low, high


def _check_context(context, low: float, high: float) -> float:
    if context is None:
        raise SciMLError("this learner is contextual: pass context= (a number) with every instance")
    value = float(context)
    span = high - low
    if not (low - 1e-9 * span <= value <= high + 1e-9 * span):
        raise SciMLError(f"context {value!r} is outside the learner's context_range [{low}, {high}]; "
                         "build the learner with a range that covers every context")
    return min(max(value, low), high)


class BinnedTsallisINF(_Learner):
    """One :class:`TsallisINF` per bin of a scalar context (Khodak et al., ICLR 2024, sec. 6).

    ``context_range`` is cut into ``n_bins`` equal bins; each bin keeps its own loss
    estimates and round count (so its own ``eta``), and all bins share one generator.

    Parameters
    ----------
    n_arms : int
        Number of arms.
    context_range : (float, float)
        Interval containing every context.
    n_bins : int
        Number of bins (the paper uses 5).
    cost_scale : float
        Cap on a cost.
    scale : {"cap", "mean"}
        Unit of loss comparisons (module docstring).
    seed : int or numpy.random.Generator, optional
        Source of the arm draws.

    Examples
    --------
    >>> learner = BinnedTsallisINF(3, (0.0, 1.0), n_bins=2, cost_scale=10.0, seed=0)
    >>> arm = learner.select(0.9)
    >>> learner.update(4.0)
    >>> learner.rounds.tolist()
    [0, 1]
    """

    contextual = True

    def __init__(self, n_arms: int, context_range, n_bins: int = 5, *, cost_scale: float,
                 scale: str = "cap", seed=None):
        super().__init__(n_arms, cost_scale, seed, scale)
        self.context_range = _check_range(context_range)
        if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
            raise SciMLError(f"n_bins must be an integer >= 1, got {n_bins!r}")
        self.n_bins = int(n_bins)
        self.losses = np.zeros((self.n_bins, self.n_arms))
        self.rounds = np.zeros(self.n_bins, dtype=np.int64)
        self._bin = 0

    def bin_of(self, context) -> int:
        """Index of the bin ``context`` falls in."""
        low, high = self.context_range
        value = _check_context(context, low, high)
        return min(int((value - low) / (high - low) * self.n_bins), self.n_bins - 1)

    def select(self, context=None) -> int:
        """Draw the arm for an instance with this context."""
        b = self.bin_of(context)
        eta = 2.0 / math.sqrt(self.rounds[b] + 1)
        arm = self._draw(tsallis_probabilities(self.losses[b] / self.unit(), eta))
        self._bin = b
        return arm

    def update(self, cost) -> None:
        """Feed back the cost of the selected arm."""
        arm, probability, loss = self._loss(cost)
        self.losses[self._bin, arm] += self.excess(loss) / probability
        self.rounds[self._bin] += 1

    def state_dict(self) -> dict:
        return {**self._base_state(), "losses": self.losses.tolist(), "rounds": self.rounds.tolist(),
                "bin": self._bin, "context_range": list(self.context_range)}

    def load_state_dict(self, state: dict) -> None:
        self._load_base(state)
        self.losses = np.array(state["losses"], dtype=np.float64)
        self.rounds = np.array(state["rounds"], dtype=np.int64)
        self._bin = int(state["bin"])


class ChebCB(_Learner):
    """Chebyshev-regression contextual bandit with inverse-gap weighting (Khodak et al., ICLR 2024, sec. 5).

    Each arm ``a`` models the loss as ``phi(z)^T theta_a`` with ``phi`` the Chebyshev
    polynomials ``T_0 .. T_{degree}`` of the context mapped to [-1, 1], fitted by
    ridge-regularised least squares on the rounds where ``a`` was played. Given a
    context, with predictions ``y_a`` and the best ``y*``, arm ``a != a*`` is drawn
    with probability ``1 / (K + gamma_t (y_a - y*))`` and ``a*`` with the rest
    (SquareCB, Foster & Rakhlin 2020), ``gamma_t = exploration * sqrt(K t)`` (divided
    by the mean loss so far when ``scale="mean"``).
    An arm never played predicts 0, the smallest loss, so every arm gets tried.

    Departs from the paper: its regression is least squares with box constraints on
    the Chebyshev coefficients (their decay bound for the SSOR cost) and its
    ``gamma_t`` is set from the observed regression error; here a ridge term
    ``ridge`` regularises instead and ``gamma_t`` follows the anytime SquareCB rate.

    Parameters
    ----------
    n_arms : int
        Number of arms.
    context_range : (float, float)
        Interval containing every context.
    degree : int
        Highest Chebyshev degree (the paper uses polynomials up to degree 5).
    cost_scale : float
        Cap on a cost.
    exploration : float
        Multiplier ``gamma_0`` of the inverse-gap rate. The default 10 was chosen on
        the paper's high-variance shifted sequence (T = 5000, ``scale="mean"``): total
        iterations over Young's instance-optimal omega were 1.6x at 0.3, 1.22x at 3,
        1.16x at 10 and the same at 30 and 100.
    ridge : float
        Ridge penalty of each arm's regression.
    scale : {"cap", "mean"}
        Unit of the gaps in ``gamma_t (y_a - y*)`` (module docstring): with ``"mean"``
        ``gamma_t`` is divided by the mean loss so far.
    seed : int or numpy.random.Generator, optional
        Source of the arm draws.

    Examples
    --------
    >>> import numpy as np
    >>> learner = ChebCB(2, (0.0, 1.0), degree=2, cost_scale=1.0, seed=0)
    >>> rng = np.random.default_rng(0)
    >>> for _ in range(3000):
    ...     z = rng.uniform()
    ...     arm = learner.select(z)
    ...     learner.update(z if arm == 0 else 1.0 - z)   # arm 0 is best for small z
    >>> [int(np.argmin(learner.predict(z))) for z in (0.1, 0.9)]
    [0, 1]
    """

    contextual = True

    def __init__(self, n_arms: int, context_range, degree: int = 5, *, cost_scale: float,
                 exploration: float = 10.0, ridge: float = 1e-3, scale: str = "cap", seed=None):
        super().__init__(n_arms, cost_scale, seed, scale)
        self.context_range = _check_range(context_range)
        if isinstance(degree, bool) or not isinstance(degree, (int, np.integer)) or degree < 0:
            raise SciMLError(f"degree must be an integer >= 0, got {degree!r}")
        self.degree = int(degree)
        self.exploration = _check_positive("exploration", exploration)
        self.ridge = _check_positive("ridge", ridge)
        m = self.degree + 1
        self.gram = np.zeros((self.n_arms, m, m))
        self.moments = np.zeros((self.n_arms, m))
        self.theta = np.zeros((self.n_arms, m))
        self._features = np.zeros(m)

    def features(self, context) -> np.ndarray:
        """``[T_0(s), ..., T_degree(s)]`` with ``s`` the context mapped onto [-1, 1]."""
        low, high = self.context_range
        s = 2.0 * (_check_context(context, low, high) - low) / (high - low) - 1.0
        return chebyshev.chebvander(s, self.degree)[0]

    def predict(self, context) -> np.ndarray:
        """Predicted loss of every arm at ``context``."""
        return self.theta @ self.features(context)

    def select(self, context=None) -> int:
        """Draw the arm for an instance with this context."""
        phi = self.features(context)
        predicted = self.theta @ phi
        best = int(np.argmin(predicted))
        gamma = self.exploration * math.sqrt(self.n_arms * (self.t + 1)) / self.unit()
        p = 1.0 / (self.n_arms + gamma * (predicted - predicted[best]))
        p[best] = 0.0
        p[best] = 1.0 - p.sum()
        self._features = phi
        return self._draw(p)

    def update(self, cost) -> None:
        """Feed back the cost of the selected arm and refit that arm's regression."""
        arm, _, loss = self._loss(cost)
        phi = self._features
        self.gram[arm] += np.outer(phi, phi)
        self.moments[arm] += loss * phi
        m = self.degree + 1
        self.theta[arm] = np.linalg.solve(self.gram[arm] + self.ridge * np.eye(m), self.moments[arm])

    def state_dict(self) -> dict:
        return {**self._base_state(), "gram": self.gram.tolist(), "moments": self.moments.tolist(),
                "theta": self.theta.tolist(), "features": self._features.tolist(),
                "context_range": list(self.context_range), "degree": self.degree}

    def load_state_dict(self, state: dict) -> None:
        self._load_base(state)
        self.gram = np.array(state["gram"], dtype=np.float64)
        self.moments = np.array(state["moments"], dtype=np.float64)
        self.theta = np.array(state["theta"], dtype=np.float64)
        self._features = np.array(state["features"], dtype=np.float64)


LEARNERS = {"tsallis_inf": TsallisINF, "binned_tsallis_inf": BinnedTsallisINF, "chebcb": ChebCB}
"""The learners by name, as :class:`~sciml.solvers.learned_relaxation.LearnedRelaxation` takes them."""
