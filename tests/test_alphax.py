"""AlphaX: UCB selection, Eq. 2-5 bookkeeping, faults, snapshots, transfer hints, warm start, its spaces and
Meta-DNN value models. Small models and short runs only (the searches themselves are in benchmarks/)."""

import importlib.util
import math
import pickle

import numpy as np
import pytest

from nasagent.core import NasagentError, Objective, Result, Trial
from nasagent.registry import make_space, make_strategy
from nasagent.spaces.box import BoxSpace
from nasagent.spaces.convnet import ConvNetSpace
from nasagent.spaces.nasnet import OPS, NASNetSpace
from nasagent.spaces.nb201 import NB201Space
from nasagent.strategies.alphax import AlphaX

S = NB201Space()
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="the Meta-DNN needs torch")
TINY = {"hidden_sizes": (16,), "epochs": 5, "lr": 1e-2, "batch_size": 32, "warm_start": True}


def _tell(strat, trial, nb201, score=None):
    m = nb201(trial.arch).metrics
    strat.tell(trial, Result(metrics=m, score=m["accuracy"] if score is None else score))


def _drive(strat, nb201, n):
    keys = []
    for _ in range(n):
        t = strat.ask()
        keys.append(S.key(t.arch))
        _tell(strat, t, nb201)
    return keys


# -- selection (Eq. 1) -------------------------------------------------------------------------------------
def test_untried_actions_come_first_then_ucb_formula():
    ax = AlphaX(S, seed=0, metadnn=False, c=0.5, normalise="minmax")
    seen = set()
    for _ in range(5):  # the root has 5 actions: each is tried once before any is repeated
        t = ax.ask()
        seen.add(t.info["path"][0][1])
        ax.tell(t, Result(score=50.0 + len(seen)))
    assert seen == set(range(5))
    # hand-set statistics: Eq. 1 on normalised means with N(s) = sum of N(s, a)
    ax.lo, ax.hi = 0.0, 100.0
    ax.N[0] = [10.0, 1.0, 10.0, 10.0, 10.0]
    ax.Q[0] = [900.0, 20.0, 500.0, 500.0, 500.0]
    total = sum(ax.N[0])
    ucb = [(q / 100.0) / n + 2 * 0.5 * math.sqrt(2 * math.log(total) / n) for q, n in zip(ax.Q[0], ax.N[0])]
    assert ax._select_action(0) == int(np.argmax(ucb)) == 1  # the rarely tried action wins on its bonus
    ax.c = 0.0
    assert ax._select_action(0) == 0  # pure exploitation: the best mean


def test_default_c_per_space_follows_the_paper():
    assert AlphaX(S, seed=0, metadnn=False, faithful=True).c == 0.5
    assert AlphaX(make_space("nb101-6"), seed=0, metadnn=False, faithful=True).c == 2.0
    assert AlphaX(ConvNetSpace(), seed=0, metadnn=False, faithful=True).c == 200.0
    assert AlphaX(S, seed=0, metadnn=False, c=3.0, faithful=True).c == 3.0


# -- backpropagation (Eq. 3-5) --------------------------------------------------------------------------------
def _root_stats(ax):
    return np.array(ax.N[0]), np.array(ax.Q[0])


def test_two_phase_backprop_out_of_order_equals_sequential_sums(nb201):
    ax = AlphaX(S, seed=3, metadnn=False)
    first = ax.ask()
    _tell(ax, first, nb201)
    trials = [ax.ask() for _ in range(4)]  # four in flight
    n, q = _root_stats(ax)
    assert n.sum() == 5  # preemptive visits (Eq. 4) spread later selections
    placeholder = trials[0].info["placeholder"]
    assert placeholder == pytest.approx(nb201(first.arch).metrics["accuracy"])  # the mean score so far
    for t in reversed(trials):  # results arrive out of order
        _tell(ax, t, nb201)
    n, q = _root_stats(ax)
    accs = [nb201(t.arch).metrics["accuracy"] for t in [first, *trials]]
    assert n.sum() == 5 and q.sum() == pytest.approx(sum(accs))  # Eq. 5 replaced every placeholder by q
    for t in [first, *trials]:  # and every edge on a trial's path carries its value
        node, a = t.info["path"][-1]
        assert ax.N[node][a] >= 1


def test_naive_parallel_mcts_only_backpropagates_on_tell(nb201):
    ax = AlphaX(S, seed=3, metadnn=False, two_phase=False)
    trials = [ax.ask() for _ in range(3)]
    assert sum(ax.N[0]) == 0
    for t in trials:
        _tell(ax, t, nb201)
    assert sum(ax.N[0]) == 3


@needs_torch
def test_node_value_mixes_one_rollout_and_k_predictions(nb201):
    ax = AlphaX(S, seed=1, k=10, min_fit=4, refit_every=2, model_options=TINY)
    _drive(ax, nb201, 6)
    assert ax.model is not None and ax.model.fitted_
    t = ax.ask()
    qhat = t.info["qhat"]
    assert qhat is not None and t.info["placeholder"] == qhat
    path = [tuple(p) for p in t.info["path"]]
    before = [ax.Q[n][a] for n, a in path]
    acc = nb201(t.arch).metrics["accuracy"]
    _tell(ax, t, nb201)
    after = [ax.Q[n][a] for n, a in path]
    # preemptive qhat already added; the correction makes the total q = (acc + qhat) / 2 (Eq. 2)
    for b, a in zip(before, after):
        assert a - b == pytest.approx((acc + qhat) / 2 - qhat)


@needs_torch
def test_qhat_uses_measured_values_for_known_architectures(nb201):
    ax = AlphaX(S, seed=2, min_fit=4, refit_every=1, model_options=TINY)
    _drive(ax, nb201, 5)
    known = [S.parse(k) for k in list(ax.known)[:3]]
    fresh = S.sample(np.random.default_rng(99))
    vals = ax._values(known + [fresh])
    assert vals[:3] == pytest.approx([ax.known[S.key(a)] for a in known])
    assert vals[3] == pytest.approx(ax.model.predict([fresh])[0])


# -- faults -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["worst", "skip"])
def test_failed_trials_do_not_poison_the_tree(nb201, mode):
    ax = AlphaX(S, seed=4, metadnn=False, failed=mode)
    _drive(ax, nb201, 3)
    t = ax.ask()
    n_before, q_before = _root_stats(ax)
    ax.tell(t, Result.failed("crashed"))
    n, q = _root_stats(ax)
    assert np.isfinite(q).all()
    if mode == "skip":
        assert n.sum() == 3 and q.sum() == pytest.approx(q_before.sum() - t.info["placeholder"])
    else:
        assert n.sum() == 4 and q.sum() == pytest.approx(q_before.sum() - t.info["placeholder"] + ax.lo)
    _drive(ax, nb201, 3)  # and the search goes on


def test_nan_objective_counts_as_a_failure_through_the_runner(nb201):
    from nasagent.core import Budget
    from nasagent.runtime.runner import Runner

    class Flaky:
        space = S

        def __init__(self):
            self.n = 0

        def __call__(self, arch, budget=None, hint=None):
            self.n += 1
            m = dict(nb201(arch).metrics)
            if self.n % 3 == 0:
                m["accuracy"] = float("nan")
            return Result(metrics=m)

    ax = AlphaX(S, seed=0, metadnn=False)
    res = Runner(S, Flaky(), ax, Objective("accuracy"), Budget(evaluations=20)).run()
    assert res.samples == 20 and all(np.isfinite(ax.Q[0]))


def test_space_without_sequential_interface_is_a_clear_error():
    with pytest.raises(NasagentError, match="sequential.*nb201"):
        make_strategy("alphax", BoxSpace([0, 0], [1, 1]))


@pytest.mark.parametrize("opts,match", [({"c": -1}, "c must be"), ({"k": 0}, "k"), ({"model": "nope"}, "unknown alphax model"),
                                        ({"rollout": "x"}, "rollout"), ({"failed": "ignore"}, "failed")])
def test_bad_options(opts, match):
    with pytest.raises(NasagentError, match=match):
        AlphaX(S, **opts)


# -- snapshots, transfer, warm start ------------------------------------------------------------------------------
@needs_torch
def test_state_dict_round_trip_keeps_tree_and_model(nb201):
    a = AlphaX(S, seed=11, min_fit=4, refit_every=3, model_options=TINY)
    _drive(a, nb201, 12)
    snap = pickle.loads(pickle.dumps(a.state_dict()))
    tail = _drive(a, nb201, 10)
    b = AlphaX(S, seed=999, min_fit=4, refit_every=3, model_options=TINY)
    b.load_state_dict(snap)
    assert b.model is not None and b.model.space is S and len(b.states) == len(snap["states"])
    assert _drive(b, nb201, 10) == tail


def test_transfer_hint_is_the_nearest_evaluated_architecture_up_the_tree(nb201):
    ax = AlphaX(S, seed=5, metadnn=False)
    hinted = 0
    for _ in range(30):
        t = ax.ask()
        if t.hint is not None:
            hinted += 1
            parent = S.parse(t.hint["parent"])
            assert S.key(parent) in ax.known
            # the nearest among the architectures rolled out from this node and its ancestors
            node, cands = t.info["node"], []
            while node is not None:
                cands += [S.parse(x) for x, _ in ax.evaluated.get(node, [])]
                node = None if ax.parent[node] is None else ax.parent[node][0]
            nearest = min(ax._distance(t.arch, c) for c in cands)
            assert t.hint["edit_distance"] == ax._distance(t.arch, parent) == nearest
            assert ax._distance(t.arch, parent) == 2 * sum(x != y for x, y in zip(parent, t.arch))  # one-hot L1
        _tell(ax, t, nb201)
    assert hinted >= 20
    assert AlphaX(S, seed=5, metadnn=False, transfer=False).ask().hint is None


@needs_torch
def test_warm_start_from_a_previous_run(tmp_path):
    from nasagent.api import search

    search("nb201", "alphax", budget=25, seed=0, out=tmp_path / "a", plot=False,
           strategy_options={"min_fit": 4, "refit_every": 4, "model_options": TINY}, snapshot_every=5)
    b = AlphaX(S, seed=1, warm_start=str(tmp_path / "a"), min_fit=4, model_options=TINY)
    assert len(b.states) > 10 and any(b.prior[0].values()) and b.model is not None and b.model_is_old
    t = b.ask()  # the inherited Meta-DNN ranks playouts but gives no q̂ in the old units
    assert t.info["qhat"] is None
    with pytest.raises(NasagentError, match="does not exist"):
        AlphaX(S, warm_start=str(tmp_path / "missing")).ask()
    with pytest.raises(NasagentError, match="space"):
        AlphaX(make_space("nbgraph"), warm_start=str(tmp_path / "a"))
    opts = {"warm_start": str(tmp_path / "a"), "min_fit": 4, "model_options": TINY}
    search("nb201", "alphax", budget=8, seed=1, out=tmp_path / "b", plot=False, strategy_options=opts, snapshot_every=4)
    import shutil

    shutil.rmtree(tmp_path / "a")  # the warm-started run's own snapshots hold what it took from the source
    from nasagent.api import resume

    assert resume(tmp_path / "b", budget=12, plot=False).samples == 12


def test_a_failure_before_any_success_leaves_no_value_in_the_tree():
    for failed in ("worst", "skip"):
        a = AlphaX(S, seed=0, metadnn=False, failed=failed)
        t = a.ask()
        a.tell(t, Result.failed("boom"))
        assert all(q == 0 for q in a.Q[0]) and all(n == 0 for n in a.N[0]), failed  # as if never asked
        t2 = a.ask()
        a.tell(t2, Result({"accuracy": 50.0}, score=-3.0))  # a minimised objective: scores are negative
        t3 = a.ask()
        a.tell(t3, Result.failed("boom"))
        assert min(q for q in a.Q[0] if q) <= -3.0 or failed == "skip"  # now "worst" has a worst score to give


def test_alphax_options_that_would_fail_later_are_refused_at_once():
    for opts, fragment in [({"threads": 0}, "threads"), ({"warm_weight": float("nan")}, "warm_weight"),
                           ({"warm_weight": -1.0}, "warm_weight"), ({"max_tries": 0}, "max_tries"),
                           ({"rollout": "acquisition", "metadnn": False}, "metadnn=True"),
                           ({"model_options": [1, 2]}, "model_options")]:
        with pytest.raises(NasagentError, match=fragment):
            AlphaX(S, **opts)
    for opts, fragment in [({"k": None}, "'k' must be an integer"), ({"k": 2.7}, "'k' must be an integer"),
                           ({"model_options": [1]}, "must be a mapping or null")]:
        with pytest.raises(NasagentError, match=fragment):
            make_strategy("alphax", S, **opts)
    with pytest.raises(NasagentError, match="'height' must be an integer"):
        make_strategy("lanas", S, height=2.5)
    with pytest.raises(NasagentError, match="'cp' must be"):
        make_strategy("lanas", S, cp=[1])


def test_process_pool_run_with_four_workers():
    from nasagent.api import search

    res = search("nb201", "alphax", budget=24, seed=0, workers=4, executor="process",
                 strategy_options={"metadnn": False})
    assert res.samples == 24


# -- spaces ----------------------------------------------------------------------------------------------------------
def test_nasnet_space_constraints_and_60_digit_encoding():
    sp = NASNetSpace()
    rng = np.random.default_rng(0)
    ax = AlphaX(sp, seed=0, metadnn=False)
    for _ in range(30):
        arch = ax._valid_playout(sp.root())
        assert sp.parse(sp.format(arch)) == arch
        digits = sp.encode_digits(arch)
        assert digits.shape == (60,) and digits.max() <= 12
        for cell in (arch.normal, arch.reduce):
            assert 1 <= len(cell) <= 5 and max(sp.depths(cell)) <= 2
            assert all(len(b.left) == 1 and len(b.right) == 1 for b in cell)  # App. 7: one layer per branch
    a = sp.make([(("sep_conv_3x3",), ("identity",), 0, 1)], [(("max_pool_3x3",), ("conv_5x5",), 1, 0)])
    d = sp.encode_digits(a)
    assert list(d[:6]) == [OPS.index("sep_conv_3x3") + 1, 0, 9, 0, 0, 1] and list(d[30:36]) == [4, 0, 8, 0, 1, 0]
    assert not d[6:30].any() and not d[36:].any()
    # no "add a layer" action for a branch that already has one, no sixth block, no terminate while incomplete
    state = sp.root()
    for act in [("block", "normal", 0, 1), ("layer", "normal", 0, "left", "conv_3x3")]:
        state = sp.step(state, act)
    acts = sp.actions(state)
    assert ("term",) not in acts and not any(a[:4] == ("layer", "normal", 0, "left") for a in acts)
    with pytest.raises(NasagentError, match="illegal"):
        sp.step(state, ("layer", "normal", 0, "left", "identity"))
    with pytest.raises(NasagentError, match="blocks"):
        sp.make([(("identity",), ("identity",), 0, 0)] * 6, [(("identity",), ("identity",), 0, 0)])
    assert sp.sample(rng) is not None and all(sp.key(n) != sp.key(a) for n in sp.neighbors(a))


def test_convnet_space_is_the_app8_domain():
    sp = ConvNetSpace()
    assert sp.size() == 585 and len({sp.key(a) for a in sp.enumerate()}) == 585
    root = sp.root()
    assert sp.actions(root) == [("add",), ("softmax",)]
    s = sp.step(root, ("add",))
    assert s == (((1, 32, 2),), False)
    acts = sp.actions(s)
    assert ("inc", 0, "stride") in acts and ("dec", 0, "stride") not in acts and ("softmax",) in acts
    s = sp.step(sp.step(s, ("inc", 0, "kernel")), ("softmax",))
    assert sp.is_terminal(s) and sp.format(sp.to_arch(s)) == "s1-f32-k4"
    deep = ((1, 32, 2),) * 3
    assert ("add",) not in sp.actions((deep, False))  # maximum depth 3
    assert all(len(n) <= 3 for n in sp.neighbors(deep))  # hill climbing's children: no terminal action
    with pytest.raises(NasagentError, match="malformed convnet"):
        sp.parse("s3-x")
    for name in ("nasnet", "convnet"):
        assert make_space(name).sequential


# -- Meta-DNN value models -------------------------------------------------------------------------------------------
def _toy_task(n, seed=0):
    rng = np.random.default_rng(seed)
    archs = [S.sample(rng) for _ in range(n)]
    y = np.array([70 + 5 * sum(op == "nor_conv_3x3" for op in a) - 4 * sum(op == "none" for op in a) for a in archs], dtype=float)
    return archs, y


@needs_torch
def test_seed_mlp_defaults_are_the_papers():
    from nasagent.evaluation.predictors.mlp import MLPPredictor

    m = MLPPredictor(S)
    assert tuple(m.hidden_sizes) == (512, 2048, 2048, 512) and m.lr == 2e-5 and m.batch_size == 128 and m.epochs == 20
    import torch

    net = MLPPredictor(S, hidden_sizes=(8,)).fit(*_toy_task(10)).net_
    assert isinstance(net[-1], torch.nn.Sigmoid)  # a sigmoid output unit
    fresh = MLPPredictor(S, hidden_sizes=(8,))._build(np.zeros((1, 30)))
    assert all(float(layer.bias.detach().abs().sum()) == 0 for layer in fresh if isinstance(layer, torch.nn.Linear))  # zero biases


@needs_torch
@pytest.mark.parametrize("name", ["mlp", "multistage", "lstm"])
def test_value_models_learn_a_simple_accuracy_function(name):
    from scipy.stats import kendalltau

    from nasagent.evaluation.predictors.mlp import make_value_model

    opts = {"mlp": dict(hidden_sizes=(32, 32), lr=1e-2, epochs=60, batch_size=32),
            "multistage": dict(hidden_sizes=(32,), lr=1e-2, epochs=60, batch_size=32, ranges=2),
            "lstm": dict(embedding=8, hidden=16, lr=2e-2, epochs=40, batch_size=32)}[name]
    archs, y = _toy_task(160)
    model = make_value_model(name, S, seed=0, threads=1, **opts).fit(archs[:120], y[:120])
    tau = kendalltau(model.predict(archs[120:]), y[120:]).statistic
    assert tau > (0.3 if name == "lstm" else 0.5), tau


@needs_torch
def test_warm_started_refit_keeps_weights_and_bad_input_is_clear():
    import torch

    from nasagent.evaluation.predictors.mlp import MLPPredictor, make_value_model

    archs, y = _toy_task(40)
    m = MLPPredictor(S, hidden_sizes=(8,), epochs=1, lr=1e-3, warm_start=True).fit(archs, y)
    w = m.net_[0].weight.detach().clone()
    m.fit(archs, y)
    delta = float((m.net_[0].weight.detach() - w).abs().max())
    assert 0 < delta < 0.05  # trained on, not re-initialised
    assert not torch.equal(m.net_[0].weight, w)
    with pytest.raises(NasagentError, match="no parameter"):
        make_value_model("mlp", S, widths=3)
    with pytest.raises(NasagentError, match="positive"):
        MLPPredictor(S, epochs=0).fit(archs, y)
    with pytest.raises(NasagentError, match="NaN"):
        MLPPredictor(S).fit(archs[:2], [1.0, float("nan")])


@needs_torch
def test_alphax_with_each_value_model_runs(nb201):
    for model, opts in (("multistage", dict(hidden_sizes=(8,), epochs=2, ranges=2)), ("lstm", dict(embedding=4, hidden=4, epochs=2))):
        ax = AlphaX(S, seed=0, model=model, min_fit=4, refit_every=4, model_options=opts)
        _drive(ax, nb201, 10)
        assert ax.model.fitted_ and ax.ask().info["qhat"] is not None


@needs_torch
def test_rank_targets_map_back_to_the_scores_units():
    from nasagent.evaluation.predictors.mlp import MLPPredictor

    archs, y = _toy_task(30)
    y[0] = 10.0  # one failure-like outlier
    m = MLPPredictor(S, hidden_sizes=(8,), epochs=1, targets="rank").fit(archs, y)
    u = m._to_unit(y)
    assert np.allclose(m._from_unit(u), y)  # the quantile map inverts on the training targets
    assert 0 < u.min() and u.max() < 1 and np.argsort(u, kind="stable").tolist() == np.argsort(y, kind="stable").tolist()
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(m._from_unit(grid)) >= 0) and m._from_unit(np.array([1.0]))[0] > y.max()  # monotone, beyond the best
    with pytest.raises(NasagentError, match="targets"):
        MLPPredictor(S, targets="log").fit(archs, y)


def test_rank_normalisation_is_the_share_of_scores_below():
    ax = AlphaX(S, seed=0, metadnn=False)
    assert ax.normalise == "rank" and AlphaX(S, metadnn=False, faithful=True).normalise == "minmax"
    ax.lo, ax.hi, ax.sorted_scores = 10.0, 94.0, [10.0, 90.0, 91.0, 92.0, 94.0]
    assert ax._norm(91.0) == pytest.approx(0.5) and ax._norm(91.5) == pytest.approx(0.6) and ax._norm(95.0) == 1.0
    ax.normalise = "minmax"
    assert ax._norm(91.0) == pytest.approx(81 / 84)


@needs_torch
def test_resumed_run_keeps_its_tree_and_model(tmp_path):
    from nasagent.api import resume, search
    from nasagent.runtime.journal import Journal

    opts = {"min_fit": 4, "refit_every": 4, "model_options": TINY}
    search("nb201", "alphax", budget=16, seed=2, out=tmp_path / "r", plot=False, strategy_options=opts, snapshot_every=4)
    journal = Journal(tmp_path / "r" / "journal.db", create=False)
    _, snap = journal.latest_snapshot()
    journal.close()
    assert snap["strategy"]["model"] is not None and len(snap["strategy"]["states"]) > 10
    res = resume(tmp_path / "r", budget=24, plot=False)
    assert res.samples == 24
