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
  the paper's contextual learner (sec. 5), which approaches the instance-optimal omega;
  ``model="rate"`` (our departure) regresses the rate ``1 / (cost + 1)`` on a surface
  shared by the ordered arms instead, which learns faster.

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

__all__ = ["TsallisINF", "BinnedTsallisINF", "ChebCB", "MODELS", "tsallis_probabilities", "LEARNERS"]


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

    def _check_state(self, state: dict) -> None:
        if state.get("class") != type(self).__name__ or state.get("n_arms") != self.n_arms:
            raise SciMLError(f"state is for {state.get('class')} with {state.get('n_arms')} arms, "
                             f"not {type(self).__name__} with {self.n_arms}; build the learner it was "
                             "saved from")

    def _load_base(self, state: dict) -> None:
        self._check_state(state)
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
    No variant of Tsallis-INF tried reached 1.05x there (replays of the same costs):
    ``eta_t = c / sqrt(t)`` with c from 1 to 16 (best 1.14x and 1.09x at c = 3 to 4),
    ``eta_t = 2 / t^0.4`` (1.14x, 1.09x), the paper's code exactly (1.17x, 1.14x),
    losses normalised to [0, 1] by the running cost range as in the analysis (1.76x at
    c = 2, 1.16x at c = 50), the reduced-variance estimator (locks onto a bad arm: up to
    3.5x). The importance-weighted estimates of the high-variance arms below the best
    omega (cost standard deviation about their mean) keep it exploring them. The regret
    is sublinear, as analysed: on longer sequences drawn from the same instances (rows
    resampled, 2 sequences x 2 learner seeds) the ratio falls to 1.054x / 1.037x at
    T = 20,000 and 1.027x / 1.018x at T = 50,000 (high / low variance).

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


MODELS = ("cost", "rate")
"""What :class:`ChebCB` regresses on the context: the loss, per arm (the paper), or the rate
``1 / (cost + 1)`` on a surface shared by the ordered arms, with per-arm corrections."""


def _check_degree(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise SciMLError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


class ChebCB(_Learner):
    """Chebyshev-regression contextual bandit with inverse-gap weighting (Khodak et al., ICLR 2024, sec. 5).

    The learner predicts every arm's loss at the context from Chebyshev polynomials
    ``phi(z) = (T_0 .. T_degree)`` of the context mapped to [-1, 1]. Given
    predictions ``y_a`` and the best ``y*``, arm ``a != a*`` is drawn with probability
    ``1 / (K + gamma_t (y_a - y*))`` and ``a*`` with the rest (SquareCB, Foster &
    Rakhlin 2020), ``gamma_t = exploration * sqrt(K t)`` (divided by the mean loss so
    far when ``scale="mean"``). Two regression models:

    - ``model="cost"`` (the paper's): arm ``a`` models the loss as ``phi(z)^T theta_a``,
      fitted by ridge-regularised least squares on the rounds where ``a`` was played;
      an arm never played predicts 0, the smallest loss, so every arm gets tried.
    - ``model="rate"`` (our departure): the regressed quantity is the rate
      ``r = 1 / (cost + 1)``. SOR needs about ``log(1/tol) / -log(rho)`` iterations, so
      ``r`` follows ``-log(rho)``, smooth in the context, where the cost has a pole
      and a kink; the predicted cost is ``1 / r - 1``. The arms are taken as an
      ordered grid (omega increasing): a surface ``sum_jk c_jk T_j(s_a) T_k(z)``, with
      ``s_a`` the arm's position mapped to [-1, 1] and ``j <= arm_degree``, is fitted
      to every round, and each arm's own Chebyshev fit is shrunk towards it with
      weight ``arm_ridge`` (a prior worth about that many observations). Both fit the
      rate minus its running mean, so an arm seen rarely predicts near the surface,
      not near rate 0 (an infinite cost that would stop it being explored). Before
      any feedback every arm predicts 0.

    On the paper's shifted-Laplacian sequences (the per-instance SOR costs of 2
    sequences, each also in 4 row permutations, replayed with 2 learner seeds; T =
    5,000, ``scale="mean"``, ``exploration=30``), total iterations over Young's
    instance-optimal omega were, mean and worst of 20 runs, 1.09x and 1.10x (high
    variance) and 1.09x and 1.12x (low) with ``model="rate"``, against 1.17x and 1.11x
    (means) with ``model="cost"``, which pays 1.4x over the first 1,000 instances while
    its 20 separate fits fill in. Restricting omega to the 20-point grid alone costs
    1.04x. The surface alone (no per-arm corrections) did as well on average but
    occasionally locked onto a wrong arm (up to 1.5x at ``arm_degree`` 4 and 5);
    ``arm_degree`` 6 had a 1.21x run on the low-variance sequence, 7 none above 1.12x.

    Departs from the paper in the ``"rate"`` model (above) and in both models: its
    regression is least squares with box constraints on the Chebyshev coefficients
    (their decay bound for the SSOR cost) and its ``gamma_t`` is set from the observed
    regression error; here a ridge term regularises instead and ``gamma_t`` follows
    the anytime SquareCB rate.

    Parameters
    ----------
    n_arms : int
        Number of arms (for ``model="rate"`` an ordered grid).
    context_range : (float, float)
        Interval containing every context.
    degree : int
        Highest Chebyshev degree in the context (the paper uses degree 5).
    cost_scale : float
        Cap on a cost.
    exploration : float
        Multiplier ``gamma_0`` of the inverse-gap rate. With ``model="cost"`` on the
        high-variance sequence (as above) total iterations over the instance-optimal
        ones were 1.6x at 0.3, 1.22x at 3, 1.16x at 10 and the same at 30 and 100;
        with ``model="rate"``, 1.11x at 10 and 1.09x at 30 (low variance: 1.11x, 1.09x).
    ridge : float
        Ridge penalty of the regressions.
    scale : {"cap", "mean"}
        Unit of the gaps in ``gamma_t (y_a - y*)`` (module docstring): with ``"mean"``
        ``gamma_t`` is divided by the mean loss so far.
    model : {"cost", "rate"}
        The regression model (above).
    arm_degree : int
        ``model="rate"``: the surface's highest Chebyshev degree in the arm position
        (capped at ``n_arms - 1``; 7 gives 8 x 6 = 48 shared coefficients for the
        paper's 20 arms and degree 5, against 120 for 20 separate fits).
    arm_ridge : float
        ``model="rate"``: weight of the surface as each arm's prior.
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
    >>> rate = ChebCB(3, (0.0, 1.0), degree=1, cost_scale=100.0, model="rate", seed=0)
    >>> for _ in range(300):
    ...     z = rng.uniform()
    ...     arm = rate.select(z)
    ...     rate.update(10.0 + 20.0 * abs(arm - 2 * z))   # the best arm moves with z
    >>> [int(np.argmin(rate.predict(z))) for z in (0.05, 0.95)]
    [0, 2]
    """

    contextual = True

    def __init__(self, n_arms: int, context_range, degree: int = 5, *, cost_scale: float,
                 exploration: float = 10.0, ridge: float = 1e-3, scale: str = "cap",
                 model: str = "cost", arm_degree: int = 7, arm_ridge: float = 10.0, seed=None):
        super().__init__(n_arms, cost_scale, seed, scale)
        self.context_range = _check_range(context_range)
        self.degree = _check_degree("degree", degree)
        self.exploration = _check_positive("exploration", exploration)
        self.ridge = _check_positive("ridge", ridge)
        if model not in MODELS:
            raise SciMLError(f"model must be one of {MODELS}, got {model!r}")
        self.model = model
        self.arm_degree = min(_check_degree("arm_degree", arm_degree), self.n_arms - 1)
        self.arm_ridge = _check_positive("arm_ridge", arm_ridge)
        m = self.degree + 1
        self.gram = np.zeros((self.n_arms, m, m))
        self.moments = np.zeros((self.n_arms, m))
        self.theta = np.zeros((self.n_arms, m))
        self._features = np.zeros(m)
        positions = np.linspace(-1.0, 1.0, self.n_arms) if self.n_arms > 1 else np.zeros(1)
        self._arm_basis = chebyshev.chebvander(positions, self.arm_degree)
        size = (self.arm_degree + 1) * m
        self.shared_gram = np.zeros((size, size))
        self.shared_moments = np.zeros(size)
        self.rate_sum = 0.0

    def features(self, context) -> np.ndarray:
        """``[T_0(s), ..., T_degree(s)]`` with ``s`` the context mapped onto [-1, 1]."""
        low, high = self.context_range
        s = 2.0 * (_check_context(context, low, high) - low) / (high - low) - 1.0
        return chebyshev.chebvander(s, self.degree)[0]

    def _predict(self, phi: np.ndarray) -> np.ndarray:
        if self.model == "cost":
            return self.theta @ phi
        if self.t == 0:
            return np.zeros(self.n_arms)
        rate = self.rate_sum / self.t + self.theta @ phi
        floor = 1.0 / self.cost_scale  # the rate is 1 / (loss + floor)
        loss = 1.0 / np.maximum(rate, 1e-300) - floor
        return np.where(rate > 0.0, np.clip(loss, 0.0, 1.0), 1.0)

    def predict(self, context) -> np.ndarray:
        """Predicted loss of every arm at ``context``."""
        return self._predict(self.features(context))

    def select(self, context=None) -> int:
        """Draw the arm for an instance with this context."""
        phi = self.features(context)
        predicted = self._predict(phi)
        best = int(np.argmin(predicted))
        gamma = self.exploration * math.sqrt(self.n_arms * (self.t + 1)) / self.unit()
        p = 1.0 / (self.n_arms + gamma * (predicted - predicted[best]))
        p[best] = 0.0
        p[best] = 1.0 - p.sum()
        self._features = phi
        return self._draw(p)

    def update(self, cost) -> None:
        """Feed back the cost of the selected arm and refit the regression."""
        arm, _, loss = self._loss(cost)
        phi = self._features
        m = self.degree + 1
        target = loss if self.model == "cost" else 1.0 / (loss + 1.0 / self.cost_scale)
        self.gram[arm] += np.outer(phi, phi)
        self.moments[arm] += target * phi
        if self.model == "cost":
            self.theta[arm] = np.linalg.solve(self.gram[arm] + self.ridge * np.eye(m), self.moments[arm])
            return
        self.rate_sum += target
        x = np.kron(self._arm_basis[arm], phi)
        self.shared_gram += np.outer(x, x)
        self.shared_moments += target * x
        self._refit()

    def _refit(self) -> None:
        """Fit the surface, then every played arm's correction, to the rates minus their mean."""
        m = self.degree + 1
        mean = self.rate_sum / self.t
        # Column 0 of a Gram matrix sums the features (T_0 = 1): subtracting mean * it
        # centres the right-hand side on the mean rate.
        size = self.shared_gram.shape[0]
        coefficients = np.linalg.solve(self.shared_gram + self.ridge * np.eye(size),
                                       self.shared_moments - mean * self.shared_gram[:, 0])
        shared = self._arm_basis @ coefficients.reshape(self.arm_degree + 1, m)
        residual = self.moments - mean * self.gram[:, :, 0] - np.einsum("aij,aj->ai", self.gram, shared)
        # an arm never played has zero Gram and residual, so its correction is zero
        self.theta = shared + np.linalg.solve(self.gram + self.arm_ridge * np.eye(m),
                                              residual[:, :, None])[:, :, 0]

    def state_dict(self) -> dict:
        return {**self._base_state(), "gram": self.gram.tolist(), "moments": self.moments.tolist(),
                "theta": self.theta.tolist(), "features": self._features.tolist(),
                "context_range": list(self.context_range), "degree": self.degree,
                "model": self.model, "arm_degree": self.arm_degree,
                "shared_gram": self.shared_gram.tolist(),
                "shared_moments": self.shared_moments.tolist(), "rate_sum": self.rate_sum}

    def load_state_dict(self, state: dict) -> None:
        self._check_state(state)
        if state.get("model", "cost") != self.model or state.get("degree") != self.degree \
                or state.get("arm_degree", self.arm_degree) != self.arm_degree:
            raise SciMLError(f"state is for ChebCB(model={state.get('model', 'cost')!r}, degree="
                             f"{state.get('degree')}, arm_degree={state.get('arm_degree')}), not "
                             f"model={self.model!r}, degree={self.degree}, arm_degree={self.arm_degree}; "
                             "build the learner it was saved from")
        self._load_base(state)
        self.gram = np.array(state["gram"], dtype=np.float64)
        self.moments = np.array(state["moments"], dtype=np.float64)
        self.theta = np.array(state["theta"], dtype=np.float64)
        self._features = np.array(state["features"], dtype=np.float64)
        if self.model == "rate":
            self.shared_gram = np.array(state["shared_gram"], dtype=np.float64)
            self.shared_moments = np.array(state["shared_moments"], dtype=np.float64)
            self.rate_sum = float(state["rate_sum"])


LEARNERS = {"tsallis_inf": TsallisINF, "binned_tsallis_inf": BinnedTsallisINF, "chebcb": ChebCB}
"""The learners by name, as :class:`~sciml.solvers.learned_relaxation.LearnedRelaxation` takes them."""
