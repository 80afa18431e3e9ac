"""LaNAS with a GP expected-improvement solver inside the chosen leaf (``leaf_solver="gp-ei"``): proposals stay in
the leaf's region and are its best members by EI, runs are reproducible and resumable, the rejection path
works on spaces that are not enumerated, and the solver finds better architectures than pi_rand."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from nasagent.core import NasagentError, Result
from nasagent.evaluation.predictors.factory import make_predictor
from nasagent.registry import make_space
from nasagent.strategies.lanas import LaNAS


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _value(bench):
    return lambda a: bench(a).metrics[bench.default_metric]


def _drive(strategy, score, n):
    trials = []
    for _ in range(n):
        t = strategy.ask()
        trials.append(t)
        strategy.tell(t, Result(metrics={"v": score(t.arch)}, score=score(t.arch)))
    return trials


def _path_to(node: int) -> list[tuple[int, int]]:
    path = []
    while node:
        parent = (node - 1) // 2
        path.insert(0, (parent, 0 if node == 2 * parent + 1 else 1))
        node = parent
    return path


def test_gp_ei_proposes_the_best_unvisited_member_of_the_chosen_leaf(nb201):
    space, value = nb201.space, _value(nb201)
    strat = LaNAS(space, seed=2, height=3, n_init=10, n_select=4, cp=1.0, leaf_solver="gp-ei")
    _drive(strat, value, 14)
    archs, E, _ = strat._pool_data()
    checked = 0
    for _ in range(6):
        before = set(strat.asked)
        t = strat.ask()
        assert t.info["phase"] == "search"
        path = _path_to(t.info["leaf"])[: t.info["depth"]]
        key = space.key(t.arch)
        assert key not in before and strat.in_region(np.asarray(space.encode(t.arch), dtype=float), path)[0]
        # an independent EI argmax over the region's unvisited members (pool order) must pick the same cell
        free = np.array([space.key(a) not in before for a in archs])
        idx = np.flatnonzero(free & strat.in_region(E, path))
        gp = make_predictor("gp-hamming", space).fit(strat.archs, strat.scores)
        best = archs[idx[int(np.argmax(gp.expected_improvement([archs[i] for i in idx])))]]
        assert space.key(best) == key
        checked += t.info["depth"] > 0
        strat.tell(t, Result(metrics={"v": value(t.arch)}, score=value(t.arch)))
    assert checked  # at least one proposal came from a proper sub-region, not the whole space


def test_gp_ei_is_deterministic_and_resumes_identically(nb201):
    space, value = nb201.space, _value(nb201)
    opts = {"height": 3, "n_init": 6, "n_select": 3, "leaf_solver": "gp-ei"}
    a, b = LaNAS(space, seed=5, **opts), LaNAS(space, seed=5, **opts)
    ka = [space.key(t.arch) for t in _drive(a, value, 16)]
    assert ka == [space.key(t.arch) for t in _drive(b, value, 16)]
    c = LaNAS(space, seed=77, **opts)
    c.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    assert [space.key(t.arch) for t in _drive(a, value, 5)] == [space.key(t.arch) for t in _drive(c, value, 5)]


def test_gp_ei_rejection_sampler_on_a_space_that_is_not_enumerated():
    space = make_space("darts")
    rng = np.random.default_rng(0)
    w = rng.normal(size=np.asarray(space.encode(space.sample(rng))).size)
    score = lambda a: float(np.asarray(space.encode(a)) @ w)  # noqa: E731
    strat = LaNAS(space, seed=0, height=3, n_init=6, n_select=3, leaf_candidates=40, max_tries=3000,
                  leaf_solver="gp-ei")
    assert strat.sampler == "rejection"
    trials = _drive(strat, score, 14)
    assert len({space.key(t.arch) for t in trials}) == 14
    for t in trials:
        space.validate(t.arch)
    # the search phase improves on the random initial samples of this linear objective
    vals = [score(t.arch) for t in trials]
    assert np.mean(vals[6:]) > np.mean(vals[:6])


def test_gp_ei_proposes_better_architectures_than_pi_rand(nb201):
    value = _value(nb201)
    mean_search = {}
    for solver in ("gp-ei", "random"):
        vals = []
        for seed in range(2):
            strat = LaNAS(nb201.space, seed=seed, height=3, n_init=10, n_select=10, leaf_solver=solver)
            vals += [value(t.arch) for t in _drive(strat, value, 40)[10:]]
        mean_search[solver] = np.mean(vals)
    assert mean_search["gp-ei"] > mean_search["random"]


def test_gp_ei_bad_input(nb201):
    with pytest.raises(NasagentError, match="leaf_solver"):
        LaNAS(nb201.space, leaf_solver="cma")
    with pytest.raises(NasagentError, match="leaf_candidates"):
        LaNAS(nb201.space, leaf_solver="gp-ei", leaf_candidates=0)
