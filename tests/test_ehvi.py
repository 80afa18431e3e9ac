"""mobo-ehvi: expected hypervolume improvement over per-objective overlap-kernel GPs, scored on the whole space."""

import pickle

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Result, Trial
from nasagent.evaluation.predictors.factory import make_predictor
from nasagent.objectives import make_objective
from nasagent.registry import make_strategy
from nasagent.runtime.journal import Journal
from nasagent.runtime.pareto import hypervolume, hypervolume_trace, nondominated, objective_bounds, table_front
from nasagent.runtime.runner import Runner
from nasagent.spaces.nb201 import NB201Space
from nasagent.strategies.ehvi import _OverlapGP, expected_hvi_2d

S = NB201Space()
PAIR = ["accuracy:max", "analog_drift_30d:max"]


def _hv_min(points):
    """Hypervolume of minimisation points in [0, 1]^2 with reference 1.1 (pymoo, through the maximise convention)."""
    return hypervolume(-np.asarray(points).reshape(-1, 2), lower=[-1.0, -1.0], upper=[0.0, 0.0])


def _tell(strat, points):
    for i, p in enumerate(points):
        arch = strat.ask().arch
        strat.tell(Trial(i, arch), Result(metrics={}, score=p[0], scores=tuple(p)))


def test_noiseless_ehvi_is_the_exact_hypervolume_gain_and_zero_when_dominated():
    rng = np.random.default_rng(0)
    for _ in range(5):
        cloud = rng.random((12, 2))
        front = cloud[nondominated(-cloud)]
        cands = rng.uniform(-0.1, 1.2, (40, 2))
        ehvi = expected_hvi_2d(front, cands[:, :1], cands[:, 1:])
        exact = np.array([_hv_min(np.vstack([front, c])) - _hv_min(front) for c in cands])
        np.testing.assert_allclose(ehvi, exact, atol=1e-12)
    front = np.array([[0.2, 0.6], [0.5, 0.3]])
    assert expected_hvi_2d(front, np.array([[0.6]]), np.array([[0.7]]))[0] == 0.0  # dominated by (0.5, 0.3)
    assert expected_hvi_2d(front, np.array([[1.2]]), np.array([[0.0]]))[0] == 0.0  # beyond the reference point
    assert np.isclose(expected_hvi_2d(np.zeros((0, 2)), np.array([[0.1]]), np.array([[0.1]]))[0], 1.0)  # empty front


def test_uncertainty_gives_a_dominated_mean_a_positive_ehvi_and_many_nodes_converge():
    front = np.array([[0.2, 0.6], [0.5, 0.3]])
    z = np.random.default_rng(1).standard_normal(20_000)
    sure = expected_hvi_2d(front, np.full((1, 1), 0.6), np.full((1, 1), 0.7))[0]
    unsure = expected_hvi_2d(front, 0.6 + 0.3 * z[None, :], 0.7 + 0.3 * z[None, ::-1])[0]
    assert sure == 0.0 < unsure
    # Monte Carlo over the joint (independent) draws agrees with the factorised expectation
    x, y = 0.6 + 0.3 * z, 0.7 + 0.3 * np.random.default_rng(2).standard_normal(20_000)
    base = _hv_min(front)
    mc = np.mean([_hv_min(np.vstack([front, [a, b]])) - base for a, b in zip(x[:2000], y[:2000], strict=True)])
    assert abs(unsure - mc) < 0.15 * unsure


def test_incremental_gp_matches_gp_hamming(nb201):
    rng = np.random.default_rng(3)
    pool = list(S.enumerate())
    codes = np.stack([np.asarray(S.encode(a), float) for a in pool])
    train = [pool[i] for i in rng.choice(len(pool), 40, replace=False)]
    y = np.array([nb201(a).metrics["accuracy"] for a in train])
    gp = _OverlapGP(2.0, 0.05, codes)
    for a in train:
        gp.add(S.key(a), np.asarray(S.encode(a), float))
    ref = make_predictor("gp-hamming", S, length_scale=2.0, noise=0.05).fit(train, y)
    test = [pool[i] for i in rng.choice(len(pool), 200, replace=False)]
    idx = {S.key(a): i for i, a in enumerate(pool)}
    ref_mean, ref_std = ref._latent(test)
    _, mean, std = gp.latent(y)  # on the cached pool
    np.testing.assert_allclose(mean[[idx[S.key(a)] for a in test]], ref_mean, atol=1e-8)
    np.testing.assert_allclose(std[[idx[S.key(a)] for a in test]], ref_std, atol=1e-8)
    _, mean2, std2 = gp.latent(y, np.stack([np.asarray(S.encode(a), float) for a in test]))  # off the pool
    np.testing.assert_allclose(mean2, ref_mean, atol=1e-8)
    np.testing.assert_allclose(std2, ref_std, atol=1e-8)


def test_ehvi_search_never_revisits_beats_random_is_seeded_and_resumes(nb201):
    objective = make_objective(nb201, objectives=PAIR)
    _, true_pts = table_front(nb201, objective)
    true_hv = hypervolume(true_pts, *objective_bounds(objective))

    def run(name, seed, **opts):
        journal = Journal(":memory:")
        strat = make_strategy(name, S, seed=seed, **opts)
        Runner(S, nb201, strat, objective, Budget(evaluations=40), journal=journal).run()
        trials = journal.trials()
        assert len({t.key for t in trials}) == 40  # never proposes an architecture twice
        return [t.key for t in trials], hypervolume_trace(trials, objective, [40])[40] / true_hv

    keys0, ours = run("mobo-ehvi", 0)
    assert run("mobo-ehvi", 0)[0] == keys0  # seeded: the same run twice
    rand = np.mean([run("random", s)[1] for s in range(3)])
    assert ours > rand, (ours, rand)
    local_keys, local = run("mobo-ehvi", 0, pool_size=0)  # the candidate-pool path for spaces too large to enumerate
    assert local_keys[:10] == keys0[:10]  # same random start

    a = make_strategy("mobo-ehvi", S, seed=4, n_init=5)
    pts = np.random.default_rng(0).random((12, 2))
    _tell(a, pts[:8])
    b = make_strategy("mobo-ehvi", S, seed=99, n_init=5)
    _tell(b, pts[8:])  # a stale model of its own, which the loaded state must replace
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    assert [S.key(a.ask().arch) for _ in range(3)] == [S.key(b.ask().arch) for _ in range(3)]


def test_one_objective_is_expected_improvement_and_finds_better_cells_than_random(nb201):
    objective = nb201.objective("accuracy")

    def best(name, seed):
        return Runner(S, nb201, make_strategy(name, S, seed=seed), objective, Budget(evaluations=30)).run().best_value

    assert np.mean([best("mobo-ehvi", s) for s in range(4)]) > np.mean([best("random", s) for s in range(4)])


def test_ehvi_rejects_bad_options_and_more_than_two_objectives():
    with pytest.raises(NasagentError, match="n_quantiles"):
        make_strategy("mobo-ehvi", S, n_quantiles=0)
    with pytest.raises(NasagentError, match="n_init"):
        make_strategy("mobo-ehvi", S, n_init=1)
    strat = make_strategy("mobo-ehvi", S, seed=0, n_init=2)
    _tell(strat, [(1.0, 2.0, 3.0), (2.0, 1.0, 0.5)])
    with pytest.raises(NasagentError, match="one or two objectives"):
        strat.ask()
