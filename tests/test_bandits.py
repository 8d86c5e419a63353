"""Bandit learners (sciml.solvers.bandits) and the tuner in front of a sequence (learned_relaxation)."""

import json

import numpy as np
import pytest
import scipy.sparse as sp

from sciml.datasets.relaxation_sequences import ShiftedLaplacianSequence
from sciml.errors import SciMLError
from sciml.solvers.bandits import BinnedTsallisINF, ChebCB, TsallisINF, tsallis_probabilities
from sciml.solvers.learned_relaxation import LearnedRelaxation
from sciml.solvers.sor import sor_result


def test_tsallis_probabilities_solve_the_normaliser():
    rng = np.random.default_rng(0)
    for eta in (0.01, 1.0, 50.0):
        losses = rng.exponential(10.0, size=20)
        p = tsallis_probabilities(losses, eta)
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and np.all(p > 0)
        x = losses.min() - 2.0 / (eta * np.sqrt(p[np.argmin(losses)]))
        np.testing.assert_allclose(p, 4.0 / (eta * (losses - x)) ** 2, rtol=1e-8)
        assert np.all(np.diff(p[np.argsort(losses)]) <= 1e-15)  # smaller loss, larger probability
    np.testing.assert_allclose(tsallis_probabilities(np.full(5, 3.0), 0.7), 0.2, rtol=1e-12)


def test_tsallis_inf_concentrates_on_the_best_arm_of_a_stochastic_bandit():
    means = np.array([0.5, 0.45, 0.3, 0.55, 0.6])
    noise = np.random.default_rng(7)
    learner = TsallisINF(5, cost_scale=1.0, seed=1)
    T = 4000
    pulls = np.zeros(5, dtype=int)
    regret = 0.0
    for _ in range(T):
        arm = learner.select()
        pulls[arm] += 1
        regret += means[arm] - means.min()
        learner.update(float(noise.binomial(1, means[arm])))
    assert np.argmax(learner.probabilities()) == 2 and learner.probabilities()[2] > 0.8
    # pseudo-regret: sublinear (far below the uniform policy's T * mean gap = 680)
    assert regret < 0.2 * T * np.mean(means - means.min())
    assert pulls[2] > 0.7 * T


def test_binned_learner_learns_each_bin_separately():
    learner = BinnedTsallisINF(3, (0.0, 1.0), n_bins=2, cost_scale=1.0, seed=0)
    noise = np.random.default_rng(1)
    best = {0: 0, 1: 2}
    for _ in range(3000):
        context = noise.uniform()
        b = learner.bin_of(context)
        arm = learner.select(context)
        learner.update(0.2 if arm == best[b] else 0.7)
    for context, b in ((0.2, 0), (0.8, 1)):
        learner.select(context)
        assert np.argmax(learner.probabilities()) == best[b]
        learner.update(0.2)


def test_chebcb_tracks_the_context_dependent_best_arm():
    # arm k costs (z - k/4)^2 + 0.1: the best arm moves with the context
    centres = np.linspace(0.0, 1.0, 5)
    learner = ChebCB(5, (0.0, 1.0), degree=4, cost_scale=2.0, exploration=20.0, seed=0)
    rng = np.random.default_rng(2)
    late_regret = []
    for t in range(3000):
        z = rng.uniform()
        costs = (z - centres) ** 2 + 0.1
        arm = learner.select(z)
        learner.update(float(costs[arm]))
        if t >= 2000:
            late_regret.append(costs[arm] - costs.min())
    for z in (0.05, 0.5, 0.95):
        assert np.argmin(learner.predict(z)) == np.argmin((z - centres) ** 2)
    assert np.mean(late_regret) < 0.01  # uniform play would lose about 0.2 per round


def _sor_costs(z: float, omegas: np.ndarray) -> np.ndarray:
    """SOR iterations to reach 1e-8 on a model problem whose Jacobi radius rises with z
    (Young's formula for the SOR radius; the best omega moves from about 1.2 to 1.8)."""
    mu = 0.6 + 0.38 * z
    root = np.sqrt(np.maximum((omegas * mu) ** 2 - 4.0 * (omegas - 1.0), 0.0))
    rho = np.where(root > 0.0, ((omegas * mu + root) / 2.0) ** 2, omegas - 1.0)
    return np.ceil(np.log(1e-8) / np.log(np.maximum(rho, omegas - 1.0)))


def test_chebcb_rate_model_learns_sor_costs_faster_than_the_cost_model():
    omegas = np.linspace(1.0, 1.95, 20)
    rng = np.random.default_rng(4)
    contexts = rng.uniform(size=1000)
    totals = {}
    for model in ("cost", "rate"):
        learner = ChebCB(20, (0.0, 1.0), degree=5, cost_scale=1e4, scale="mean", model=model,
                         exploration=30.0, seed=0)
        totals[model] = 0.0
        for z in contexts:
            cost = _sor_costs(z, omegas)[learner.select(z)]
            totals[model] += cost
            learner.update(float(cost))
        if model == "rate":
            for z in (0.1, 0.5, 0.9):  # the greedy omega is close to the best on the grid
                costs = _sor_costs(z, omegas)
                assert costs[np.argmin(learner.predict(z))] <= 1.1 * costs.min()
    optimal = sum(_sor_costs(z, omegas).min() for z in contexts)
    # both pay for trying 20 arms at first (1.25x and 1.3x over 1,000 rounds)
    assert totals["rate"] < 1.28 * optimal and totals["rate"] < totals["cost"]


@pytest.mark.parametrize("make", [
    lambda: TsallisINF(4, cost_scale=10.0, seed=3),
    lambda: BinnedTsallisINF(4, (0.0, 1.0), n_bins=3, cost_scale=10.0, seed=3),
    lambda: ChebCB(4, (0.0, 1.0), degree=3, cost_scale=10.0, seed=3),
    lambda: ChebCB(4, (0.0, 1.0), degree=3, cost_scale=10.0, model="rate", arm_degree=2, seed=3),
])
def test_state_dict_restores_mid_sequence_exactly(make):
    rng = np.random.default_rng(5)
    contexts = rng.uniform(size=200)
    table = rng.integers(0, 11, size=(200, 4))

    def play(learner, rounds):
        return [(arm := learner.select(contexts[t]), learner.update(int(table[t, arm])))[0]
                for t in rounds]

    uninterrupted = make()
    arms = play(uninterrupted, range(200))
    first = make()
    arms_first = play(first, range(120))
    saved = json.loads(json.dumps(first.state_dict()))  # through JSON, as the tuner saves it
    second = make()
    second.load_state_dict(saved)
    assert arms_first + play(second, range(120, 200)) == arms
    assert json.dumps(second.state_dict()) == json.dumps(uninterrupted.state_dict())


def test_learners_refuse_misuse_in_one_line():
    learner = TsallisINF(3, cost_scale=10.0, seed=0)
    cases = [
        (lambda: learner.update(1.0), "without a preceding select"),
        (lambda: TsallisINF(0, cost_scale=1.0), "n_arms"),
        (lambda: TsallisINF(3, cost_scale=0.0), "cost_scale"),
        (lambda: ChebCB(3, (1.0, 0.0), cost_scale=1.0), "low < high"),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0).select(None), "context="),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0).select(1.5), "outside"),
        (lambda: BinnedTsallisINF(3, (0.0, 1.0), 0, cost_scale=1.0), "n_bins"),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0).load_state_dict(learner.state_dict()),
         "state is for TsallisINF"),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0, model="rates"), "model must be one of"),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0, arm_degree=-1), "arm_degree"),
        (lambda: ChebCB(3, (0.0, 1.0), cost_scale=1.0, model="rate").load_state_dict(
            ChebCB(3, (0.0, 1.0), cost_scale=1.0).state_dict()), "model='cost'"),
    ]
    for call, match in cases:
        with pytest.raises(SciMLError, match=match) as error:
            call()
        assert "\n" not in str(error.value)
    learner.select()
    with pytest.raises(SciMLError, match="twice"):
        learner.select()
    for cost in (11.0, -1.0, float("nan")):
        with pytest.raises(SciMLError, match=r"cost must be a number in \[0"):
            learner.update(cost)


def shifted(length, seed=0):
    return ShiftedLaplacianSequence((10, 10), "high", length=length, seed=seed)


def test_tuner_save_and_restore_mid_sequence_equals_an_uninterrupted_run(tmp_path):
    spec = ("chebcb", {"context_range": (-0.15, 0.45), "degree": 3})
    systems = list(shifted(40))
    uninterrupted = LearnedRelaxation("sor", learner=spec, maxiter=3000, seed=4)
    full = [uninterrupted.solve(A, b, context=c).iterations for A, b, c in systems]
    path = tmp_path / "tuner.json"
    first = LearnedRelaxation("sor", learner=spec, maxiter=3000, seed=4, checkpoint=path,
                              checkpoint_every=5)
    for A, b, c in systems[:23]:
        first.solve(A, b, context=c)
    # the checkpoint holds solve 20; a restarted simulation resumes from there
    resumed = LearnedRelaxation.load(path)
    assert len(resumed.history) == 20
    for A, b, c in systems[20:]:
        resumed.solve(A, b, context=c)
    assert [h["iterations"] for h in resumed.history] == full
    strip = lambda history: [{k: v for k, v in h.items() if "seconds" not in k} for h in history]
    assert strip(resumed.history) == strip(uninterrupted.history)
    assert resumed.learner.state_dict() == uninterrupted.learner.state_dict()


def test_tuner_feeds_back_capped_solves_and_reports_them():
    A, b, c = next(iter(shifted(1)))
    tuner = LearnedRelaxation("sor", omegas=[1.0, 1.2], maxiter=10, seed=0)
    result = tuner.solve(A, b)
    assert not result.converged and "capped cost 10" in result.message and "\n" not in result.message
    assert tuner.history[0]["capped"] and tuner.history[0]["cost"] == 10
    assert tuner.learner.t == 1 and tuner.learner.losses.max() > 0


def test_tuner_learns_on_the_shifted_sequence():
    # two arms, omega = 1 (Gauss-Seidel) and 1.8: the learner must move to 1.8 and beat omega = 1
    systems = list(ShiftedLaplacianSequence((10, 10), "low", length=150, seed=1))
    tuner = LearnedRelaxation("sor", omegas=[1.0, 1.8], learner=("tsallis_inf", {"scale": "mean"}),
                              maxiter=3000, seed=0)
    learned = sum(tuner.solve(A, b).iterations for A, b, c in systems)
    gauss_seidel = sum(sor_result(A, b, rtol=1e-8, maxiter=3000, omega=1.0).iterations
                       for A, b, c in systems)
    late = [h["omega"] for h in tuner.history[100:]]
    assert late.count(1.8) > 0.9 * len(late) and learned < 0.75 * gauss_seidel


@pytest.mark.parametrize("kwargs, match", [
    ({"omegas": [1.0, 2.0]}, r"open interval \(0, 2\)"),
    ({"omegas": [0.0, 1.0]}, r"open interval \(0, 2\)"),
    ({"omegas": []}, "non-empty"),
    ({"omegas": [1.0, 1.0]}, "repeated"),
    ({"method": "jacobi"}, "unknown relaxation method"),
    ({"learner": "ucb"}, "unknown learner"),
    ({"learner": ("chebcb", {"context_rnage": (0, 1)})}, "rejected its options"),
    ({"maxiter": None}, "maxiter"),
])
def test_tuner_refuses_bad_settings_in_one_line(kwargs, match):
    with pytest.raises(SciMLError, match=match) as error:
        LearnedRelaxation(**kwargs)
    assert "\n" not in str(error.value)


def test_tuner_refuses_a_file_it_did_not_write(tmp_path):
    path = tmp_path / "other.json"
    path.write_text('{"rows": []}')
    with pytest.raises(SciMLError, match="not a saved LearnedRelaxation"):
        LearnedRelaxation.load(path)
    tuner = LearnedRelaxation("ssor_cg", maxiter=100)
    with pytest.raises(SciMLError, match="symmetric"):
        tuner.solve(sp.csr_array(np.array([[2.0, 1.0], [0.0, 2.0]])), np.ones(2))
    assert tuner.learner._pending is None and tuner.history == []


def test_relaxation_bench_refuses_an_unknown_shift_distribution():
    from sciml.bench_relaxation import learner_specs, run

    with pytest.raises(SciMLError, match="unknown shift distribution 'medium'"):
        run(quick=True, shifts=("medium",))
    assert learner_specs((0.0, 1.0))["chebcb"][1]["model"] == "rate"
