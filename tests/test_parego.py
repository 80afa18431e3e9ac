"""ParEGO: random Chebyshev scalarisations of the objective vector, a GP surrogate and expected improvement."""

import pickle

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Result, Trial
from nasagent.objectives import make_objective
from nasagent.registry import make_strategy
from nasagent.runtime.journal import Journal
from nasagent.runtime.pareto import hypervolume, hypervolume_trace, objective_bounds, table_front
from nasagent.runtime.runner import Runner
from nasagent.spaces.nb201 import NB201Space

S = NB201Space()
PAIR = ["accuracy:max", "analog_drift_30d:max"]


def _tell(strat, points, violations=None):
    for i, p in enumerate(points):
        arch = strat.ask().arch
        strat.tell(Trial(i, arch), Result(metrics={}, score=p[0], scores=tuple(p), violation=(violations or [0.0] * len(points))[i]))


def test_chebyshev_scalarisation_follows_the_weights_and_sinks_infeasible_designs():
    strat = make_strategy("parego", S, seed=0, rho=0.05)
    _tell(strat, [(1.0, 0.0), (0.0, 1.0), (0.6, 0.6), (2.0, 2.0)], violations=[0, 0, 0, 0.5])
    only_first = strat.chebyshev(np.array([1.0, 0.0]))
    assert only_first[0] > only_first[2] > only_first[1]  # all weight on objective 1: the augmentation ranks by it
    balanced = strat.chebyshev(np.array([0.5, 0.5]))
    assert balanced[2] > max(balanced[0], balanced[1])  # the knee wins the balanced Chebyshev
    assert balanced[3] < balanced[:3].min()  # infeasible, although it dominates everything
    assert np.isclose(only_first[0], 0.05 * 1.0 / 2.0)  # rho * f1, f1 normalised by the range seen: (1 - 0) / (2 - 0)


def test_parego_finds_a_better_front_than_random_and_resumes_identically(nb201):
    objective = make_objective(nb201, objectives=PAIR)
    _, true_pts = table_front(nb201, objective)
    true_hv = hypervolume(true_pts, *objective_bounds(objective))

    def hv(name, seed):
        journal = Journal(":memory:")
        Runner(S, nb201, make_strategy(name, S, seed=seed), objective, Budget(evaluations=60), journal=journal).run()
        trials = journal.trials()
        assert len({str(t.arch) for t in trials}) == 60
        return hypervolume_trace(trials, objective, [60])[60] / true_hv

    ours = np.mean([hv("parego", s) for s in range(2)])
    rand = np.mean([hv("random", s) for s in range(2)])
    assert ours > rand, (ours, rand)

    a = make_strategy("parego", S, seed=4, n_init=5)
    pts = np.random.default_rng(0).random((12, 2))
    _tell(a, pts[:8])
    b = make_strategy("parego", S, seed=99, n_init=5)
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    assert [S.key(a.ask().arch) for _ in range(3)] == [S.key(b.ask().arch) for _ in range(3)]


def test_parego_rejects_bad_options_and_mixed_objective_counts():
    with pytest.raises(NasagentError, match="n_init"):
        make_strategy("parego", S, n_init=1)
    with pytest.raises(NasagentError, match="uncertainty"):
        make_strategy("parego", S, predictor="gbdt")
    strat = make_strategy("parego", S, seed=0)
    _tell(strat, [(1.0, 2.0)])
    with pytest.raises(NasagentError, match="objective values"):
        _tell(strat, [(1.0, 2.0, 3.0)])
