"""The seeds' baselines behind ask/tell: hill climbing, Q-learning, REINFORCE, GP-BO, Optuna TPE / NSGA-II."""

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.registry import make_strategy
from nasagent.runtime.journal import Journal
from nasagent.runtime.runner import Runner
from nasagent.strategies.reinforce import CategoricalPolicy


def _tell_table(strat, nb201, trial):
    r = nb201(trial.arch)
    strat.tell(trial, Result(r.metrics, r.cost, score=r.metrics["accuracy"]))
    return r.metrics["accuracy"]


def test_hill_climbing_evaluates_every_child_then_moves_to_the_best(nb201):
    strat = make_strategy("hill-climbing", nb201.space, seed=4)
    start = strat.ask()
    _tell_table(strat, nb201, start)
    children = {nb201.space.key(a) for a in nb201.space.neighbors(start.arch)}
    told = {}
    for _ in range(len(children)):
        t = strat.ask()
        assert t.info["phase"] == "child"
        told[nb201.space.key(t.arch)] = (t.arch, _tell_table(strat, nb201, t))
    assert set(told) == children  # every one-edit child, each once
    best_key = max(told, key=lambda k: told[k][1])
    assert nb201.space.key(strat.current[0]) == best_key  # moved to the best child
    nxt = strat.ask()
    assert nb201.space.key(nxt.arch) in {nb201.space.key(a) for a in nb201.space.neighbors(told[best_key][0])}


def test_hill_climbing_restarts_on_a_revisit(nb201):
    strat = make_strategy("hill-climbing", nb201.space, seed=0)
    Runner(nb201.space, nb201, strat, Objective("accuracy"), Budget(evaluations=400), stop_at_optimum=False).run()
    assert strat.restarts >= 1  # steepest moves end in a 2-cycle at a local optimum, which triggers a restart
    assert len(strat.visited) >= 2


def test_q_learning_update_follows_the_seed_rule(nb201):
    strat = make_strategy("q-learning", nb201.space, seed=0, reward="raw", epsilon=0.0)
    t = strat.ask()
    path = list(strat.episodes[t.number])
    assert len(path) == 6  # one decision per NB201 edge
    strat.tell(t, Result({"accuracy": 0.9}, score=0.9))
    # replay runs last to first, so each earlier transition sees the raised Q of the next state:
    # Q_t = Q0 + alpha * (Q_{t+1} - Q0), i.e. 0.08 * 0.2**k above Q0 k steps before the end
    for k, (state, action) in enumerate(reversed(path)):
        assert strat.q[(repr(state), action)] == pytest.approx(0.5 + 0.08 * 0.2**k, rel=1e-12)
    s_last, a_last = path[-1]
    s_prev, a_prev = path[-2]
    # epsilon 0: the greedy walk now repeats the rewarded action wherever Q was raised
    t2 = strat.ask()
    assert strat.episodes[t2.number][-1][1] == a_last or strat.episodes[t2.number][-2][1] == a_prev


def test_q_learning_rejects_bad_options(nb201):
    with pytest.raises(NasagentError, match="0 < alpha <= 1"):
        make_strategy("q-learning", nb201.space, alpha=0)
    with pytest.raises(NasagentError, match="'minmax' or 'raw'"):
        make_strategy("q-learning", nb201.space, reward="log")


def test_reinforce_policy_moves_towards_rewarded_choices():
    policy = CategoricalPolicy(lr=0.1, baseline_momentum=0.9)
    rng = np.random.default_rng(0)
    choices = ["a", "b", "c"]
    for _ in range(300):
        i = policy.sample(0, choices, rng)
        policy.update([(0, choices, i)], 1.0 if choices[i] == "c" else 0.0)
    assert policy.probs(0, choices)[2] > 0.9


def test_reinforce_and_q_learning_learn_on_the_table(nb201):
    """Their last 200 of 400 samples are better than the table's typical cell (random search's expectation):
    REINFORCE by mean, epsilon-greedy Q-learning (which keeps exploring 20 % of decisions) by median."""
    acc_table = nb201.values("accuracy")
    got = {}
    for name in ("reinforce", "q-learning"):
        journal = Journal(":memory:")
        Runner(nb201.space, nb201, make_strategy(name, nb201.space, seed=1), Objective("accuracy"), Budget(evaluations=400),
               journal=journal, stop_at_optimum=False).run()
        got[name] = [r.metrics["accuracy"] for r in journal.trials() if r.counted]
        assert len(got[name]) == 400
        if name == "reinforce":  # unique=True: a peaked policy re-draws instead of spinning on free repeats
            assert len(journal.trials()) < 600
    assert np.mean(got["reinforce"][-200:]) > acc_table.mean() + 3
    assert np.mean(got["reinforce"][-200:]) > np.mean(got["reinforce"][:100])
    assert np.median(got["q-learning"][-200:]) > np.median(acc_table)


def test_bo_proposes_fresh_architectures_better_than_its_random_start(nb201):
    strat = make_strategy("bo", nb201.space, seed=0, n_init=10, n_candidates=100, refit_every=10, fit_iterations=20)
    journal = Journal(":memory:")
    Runner(nb201.space, nb201, strat, Objective("accuracy"), Budget(evaluations=26), journal=journal, stop_at_optimum=False).run()
    rows = [r for r in journal.trials() if r.counted]
    assert len({r.key for r in rows}) == 26
    init, ei = [r.metrics["accuracy"] for r in rows[:10]], [r.metrics["accuracy"] for r in rows[10:]]
    assert np.median(ei) > np.median(init)
    with pytest.raises(NasagentError, match="n_init >= 2"):
        make_strategy("bo", nb201.space, n_init=1)


@pytest.mark.parametrize("name", ["optuna-tpe", "optuna-nsga2"])
def test_optuna_adapters_walk_the_sequential_decisions(nb201, name):
    strat = make_strategy(name, nb201.space, seed=0)
    journal = Journal(":memory:")
    Runner(nb201.space, nb201, strat, Objective("accuracy"), Budget(evaluations=40), journal=journal).run()
    done = [t for t in strat.study.trials if t.values is not None]
    assert len(done) >= 40 and all(set(t.params) == {f"d{i}" for i in range(6)} for t in done)
    accs = {r.key: r.metrics["accuracy"] for r in journal.trials() if r.counted}
    assert max(t.values[0] for t in done) == pytest.approx(max(accs.values()))


@pytest.mark.parametrize("seed", [0, 3])
def test_optuna_tpe_shares_one_split_per_trial_and_proposes_what_optunas_tpe_does(nb201, seed):
    """Two trials asked before either is told (constant liar sees a running trial), then told in turn."""
    optuna = pytest.importorskip("optuna")
    ours, plain = make_strategy("optuna-tpe", nb201.space, seed=seed), make_strategy("optuna-tpe", nb201.space, seed=seed)
    assert type(ours._sampler).__name__ == "SharedSplitTPE"
    plain._sampler = optuna.samplers.TPESampler(seed=seed, multivariate=False)  # the adapter's default
    seqs = []
    for strat in (ours, plain):
        seq = []
        for _ in range(25):
            pair = [strat.ask(), strat.ask()]
            for t in pair:
                seq.append(nb201.space.key(t.arch))
                _tell_table(strat, nb201, t)
        seqs.append(seq)
    assert seqs[0] == seqs[1]
    assert len(set(seqs[0])) > 20  # past the 10 random start-up trials, so TPE itself proposed most of them
    import pickle

    state = pickle.loads(pickle.dumps(ours.state_dict()))  # snapshots pickle the sampler, without its split cache
    assert "_shared" not in vars(state["_sampler"]) and "_shared" in vars(ours._sampler)


def test_bo_log_ei_from_the_joint_posterior_matches_botorchs_batched_call(nb201):
    torch = pytest.importorskip("torch")
    from botorch.acquisition import LogExpectedImprovement

    strat = make_strategy("bo", nb201.space, seed=1, n_init=10, n_candidates=50, fit_iterations=20)
    Runner(nb201.space, nb201, strat, Objective("accuracy"), Budget(evaluations=14), stop_at_optimum=False).run()
    gp = strat._model()
    rng = np.random.default_rng(0)
    cand = np.stack([strat._encode(nb201.space.sample(rng)) for _ in range(60)])
    with torch.no_grad():
        ref = LogExpectedImprovement(gp, best_f=max(strat.y))(torch.tensor(cand).unsqueeze(1)).numpy()
    got = strat._acquisition(gp, cand)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    assert np.ptp(got) > 0.1  # the candidates differ, so a wrong mean or sigma would show


@pytest.mark.parametrize("name", ["optuna-tpe", "optuna-nsga2"])
@pytest.mark.parametrize("steps,pending", [(20, 0), (8, 0), (13, 2)])
def test_optuna_adapters_resume_from_a_pickled_snapshot_and_propose_the_same(nb201, name, steps, pending):
    """A snapshot at any step, also with trials still running (TPE's constant liar reads them; NSGA-II keeps its
    population in the study's attributes), continues exactly. Optuna 5's NSGA-II sampler holds a thread lock:
    the snapshot leaves it out and the load puts a new one."""
    import copy
    import pickle

    opts = {"population_size": 6} if name == "optuna-nsga2" else {}
    a, b = make_strategy(name, nb201.space, seed=2, **opts), make_strategy(name, nb201.space, seed=2, **opts)
    for _ in range(steps):
        _tell_table(a, nb201, a.ask())
    running = [a.ask() for _ in range(pending)]
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    seq = []
    for strat, waiting in ((a, running), (b, copy.deepcopy(running))):
        keys = []
        for _ in range(15):
            t = strat.ask()
            keys.append(nb201.space.key(t.arch))
            waiting.append(t)
            _tell_table(strat, nb201, waiting.pop(0))  # the oldest running trial finishes first
        seq.append(keys)
    assert seq[0] == seq[1]
    assert len(set(seq[0])) > 3  # not one architecture over and over (TPE repeats some)
