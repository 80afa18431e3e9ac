import pickle

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.registry import STRATEGIES, make_strategy
from nasagent.runtime.runner import Runner
from nasagent.spaces.box import BoxSpace
from nasagent.spaces.nb201 import NB201Space

S = NB201Space()
CORE = ["random", "evolution", "local-search"]


def _samples_to_optimum(name, nb201, seed, cap=3000, **opts):
    strat = make_strategy(name, S, seed=seed, **opts)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=cap), stop_at_optimum=True).run()
    return res.samples_to_optimum or cap


def test_random_search_visits_every_cell_once(nb201):
    strat = make_strategy("random", S, seed=3)
    keys = []
    for _ in range(S.size()):
        keys.append(S.key(strat.ask().arch))
    assert len(set(keys)) == S.size()
    from nasagent.core import SpaceExhausted

    with pytest.raises(SpaceExhausted):
        strat.ask()


def test_random_search_ends_cleanly_when_the_space_is_exhausted(nb201):
    strat = make_strategy("random", S, seed=0)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=20000)).run()
    assert res.samples == 15625 and "exhausted" in res.stop_reason and res.samples_to_optimum is not None


@pytest.mark.parametrize("name", ["evolution", "local-search"])
def test_guided_strategies_beat_random_on_nb201(name, nb201):
    # random needs (N+1)/2 = 7,813 samples on average to hit the single optimum
    sto = [_samples_to_optimum(name, nb201, seed) for seed in range(8)]
    assert np.mean(sto) < 1000, sto


@pytest.mark.parametrize("name", CORE)
def test_state_dict_round_trip_continues_identically(name, nb201):
    def drive(strat, n, start=0):
        out = []
        for i in range(n):
            t = strat.ask()
            out.append(S.key(t.arch))
            strat.tell(t, Result(metrics=nb201(t.arch).metrics, score=nb201(t.arch).metrics["accuracy"]))
        return out

    a = make_strategy(name, S, seed=11)
    drive(a, 40)
    snap = pickle.loads(pickle.dumps(a.state_dict()))
    tail_a = drive(a, 40)
    b = make_strategy(name, S, seed=999)  # a different seed: the snapshot must override everything
    b.load_state_dict(snap)
    assert drive(b, 40) == tail_a


def test_local_search_needs_neighbours():
    with pytest.raises(NasagentError, match="needs one-edit neighbours"):
        make_strategy("local-search", BoxSpace([0, 0], [1, 1]))


def test_evolution_options_validated():
    with pytest.raises(NasagentError, match="sample_size <= population_size"):
        make_strategy("evolution", S, population_size=5, sample_size=10)
    with pytest.raises(NasagentError, match="has no option 'popsize'"):
        make_strategy("evolution", S, popsize=5)


def test_every_registered_strategy_runs_a_short_search(nb201):
    for name in STRATEGIES:
        try:
            strat = make_strategy(name, S, seed=0)
        except NasagentError:
            continue  # a strategy for another kind of space
        res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=15)).run()
        assert res.samples == 15, name


@pytest.mark.parametrize("name", ["q-learning", "reinforce", "alphax"])
def test_sequential_strategies_on_a_box_name_the_spaces_that_work(name):
    with pytest.raises(NasagentError, match="spaces that have one: nb201"):
        make_strategy(name, BoxSpace([0.0] * 3, [1.0] * 3), seed=0)
