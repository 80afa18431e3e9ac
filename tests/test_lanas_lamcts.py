"""LaNAS and LA-MCTS: tree invariants, region samplers, local solvers, budget accounting, the drop-in APIs
(``minimize`` and the Optuna sampler), the control tasks and bad input. Budgets are tiny: these check
behaviour, the benchmarks in ``benchmarks/lanas_*.py`` / ``lamcts_*.py`` measure performance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nasagent.api import search
from nasagent.core import NasagentError, Result
from nasagent.registry import make_benchmark, make_space, make_strategy
from nasagent.strategies.lamcts import LAMCTSOptimizer, minimize
from nasagent.strategies.lamcts_tree import PartitionTree, Region, sample_region, svm_predict
from nasagent.strategies.lanas import LaNAS
from nasagent.strategies.partition import pick, resolve_cp, ucb_score


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _drive(strategy, score, n):
    """Ask/tell ``n`` times with ``score(arch) -> float``; returns the proposed architectures."""
    archs = []
    for _ in range(n):
        t = strategy.ask()
        archs.append(t.arch)
        strategy.tell(t, Result(metrics={"v": score(t.arch)}, score=score(t.arch)))
    return archs


# -- shared UCB ------------------------------------------------------------------------------------------------------
def test_ucb_formulas_and_tie_breaks():
    assert ucb_score(0.5, 0, 10, 1.0) == math.inf
    assert ucb_score(0.5, 4, 10, 0.0) == 0.5  # C_p = 0: the mean, i.e. greedy
    assert ucb_score(0.5, 4, 16, 1.0, "log") == pytest.approx(0.5 + 2 * math.sqrt(2 * math.log(16) / 4))
    assert ucb_score(0.5, 4, 16, 1.0, "sqrt") == pytest.approx(0.5 + 2 * math.sqrt(2 * 4 / 4))
    rng = np.random.default_rng(0)
    assert {pick([1.0, 1.0], rng) for _ in range(50)} == {0, 1}
    assert pick([0.0, 2.0], rng) == 1
    # the auto rule scales with the spread when the best value is ~0 (never collapses to greedy)
    assert resolve_cp("auto", [-3.0, -1e-9]) == pytest.approx(0.3)
    with pytest.raises(NasagentError, match="cp"):
        resolve_cp(-1, [])


# -- LaNAS ---------------------------------------------------------------------------------------------------------
def test_lanas_leaves_partition_samples_and_regions_match_routing(nb201):
    strat = LaNAS(nb201.space, seed=1, height=4, n_init=40, n_select=5, cp=1.0)
    value = lambda a: nb201(a).metrics[nb201.default_metric]  # noqa: E731
    _drive(strat, value, 60)
    strat.learn()
    E = np.stack(strat.encodings)
    leaves = [r for r in strat.tree_dump() if r["leaf"]]
    assert sum(r["n"] for r in leaves) == len(E)  # the leaves partition the data
    for r in leaves:  # a leaf's path constraints select exactly the samples routed to it
        node, path = r["id"], []
        while node:
            parent = (node - 1) // 2
            path.insert(0, (parent, 0 if node == 2 * parent + 1 else 1))
            node = parent
        assert int(strat.in_region(E, path).sum()) == r["n"]
        assert int((strat.leaf_of(E) == r["id"]).sum()) == r["n"]  # batched routing agrees
    assert strat.leaf_of(E).tolist() == [strat._route_one(x)[-1] for x in E]
    # the good (left) side of the root holds the better samples on average
    rows = {r["id"]: r for r in strat.tree_dump()}
    assert rows[1]["mean"] > rows[2]["mean"]


def test_lanas_greedy_descends_to_better_child(nb201):
    strat = LaNAS(nb201.space, seed=0, height=4, n_init=30, cp=0.0)
    _drive(strat, lambda a: nb201(a).metrics[nb201.default_metric], 40)
    strat.learn()
    leaf, path = strat.select()
    for node, side in path:
        kids = (2 * node + 1, 2 * node + 2)
        means = [strat._mean(k) if strat.visits[k] else math.inf for k in kids]
        assert means[side] == max(means)


def test_lanas_failed_samples_count_as_visits_but_not_in_means(nb201):
    """A failed evaluation still took a sample (a visit, so UCB moves on) but has no value to average."""
    strat = LaNAS(nb201.space, seed=2, height=3, n_init=20, n_select=5, cp=1.0)
    value = lambda a: nb201(a).metrics[nb201.default_metric]  # noqa: E731
    failed, keys = set(), []
    for i in range(50):
        t = strat.ask()
        keys.append(nb201.space.key(t.arch))
        if i % 5 == 4 and i < 40:
            failed.add(nb201.space.key(t.arch))
            strat.tell(t, Result.failed("diverged"))
        else:
            strat.tell(t, Result(metrics={"v": value(t.arch)}, score=value(t.arch)))
    strat.learn()
    root = strat.tree_dump()[0]
    assert strat.visits[0] == 50 and strat.n_ok[0] == 42 and root["n"] == 50
    ok = [s for s in strat.scores if s is not None]
    assert len(ok) == 42 and root["mean"] == pytest.approx(np.mean(ok))  # the mean skips the failed ones
    assert len(set(keys)) == 50 and len(failed) == 8  # a failed cell is never proposed again


def test_lanas_valid_unique_and_better_than_random(nb201):
    regrets = {"lanas": [], "random": []}
    for seed in range(3):
        for name, opts in (("lanas", {"n_init": 10, "n_select": 5, "cp": 1.0}), ("random", {})):
            run = search("nb201", name, budget=150, seed=seed, strategy_options=opts, plot=False)
            regrets[name].append(run.optimum - run.best_value)
    assert np.mean(regrets["lanas"]) < np.mean(regrets["random"])
    strat = make_strategy("lanas", nb201.space, seed=0, sampler="rejection", n_init=5)
    archs = _drive(strat, lambda a: nb201(a).metrics[nb201.default_metric], 30)
    assert len({nb201.space.key(a) for a in archs}) == 30
    for a in archs:
        nb201.space.validate(a)


@pytest.mark.parametrize("space_name", ["darts", "nb101", "nbgraph"])
def test_lanas_works_on_other_nas_spaces(space_name):
    space = make_space(space_name)
    strat = LaNAS(space, seed=0, height=3, n_init=6, n_select=3, max_tries=2000)
    rng = np.random.default_rng(0)
    w = rng.normal(size=np.asarray(space.encode(space.sample(rng))).size)
    archs = _drive(strat, lambda a: float(np.asarray(space.encode(a)) @ w), 14)
    assert strat.learned and strat.split[0]
    for a in archs:
        space.validate(a)


def test_lanas_score_fn_hook_ranks_candidates(nb201):
    calls = []

    def score_fn(archs):
        calls.append(len(archs))
        return [nb201(a).metrics[nb201.default_metric] for a in archs]

    strat = LaNAS(nb201.space, seed=0, height=3, n_init=5, n_candidates=8, score_fn=score_fn)
    archs = _drive(strat, lambda a: nb201(a).metrics[nb201.default_metric], 12)
    assert calls and max(calls) == 8
    # the hook chooses the best of its candidates: search-phase picks beat the random initial ones on average
    vals = [nb201(a).metrics[nb201.default_metric] for a in archs]
    assert np.mean(vals[5:]) > np.mean(vals[:5])


def test_lanas_bad_input(nb201):
    with pytest.raises(NasagentError, match="height"):
        LaNAS(nb201.space, height=0)
    with pytest.raises(NasagentError, match="preset"):
        LaNAS(nb201.space, preset="nope")
    with pytest.raises(NasagentError, match="score_fn"):
        LaNAS(nb201.space, score_fn=3)
    with pytest.raises(NasagentError, match="continuous boxes"):
        make_strategy("lamcts", nb201.space)


# -- LA-MCTS partition tree ------------------------------------------------------------------------------------------
def _toy(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, size=(n, 2))
    f = -np.sum((X - 0.7) ** 2, axis=1)
    return X, f


def _path_to(tree, node):
    path = []
    while node.parent is not None:
        parent = tree.nodes[node.parent]
        path.insert(0, (parent.svm, parent.kids.index(node.id)))
        node = parent
    return Region(tree.lower, tree.upper, path)


def test_partition_tree_invariants():
    X, f = _toy()
    lo, hi = np.full(2, -2.0), np.full(2, 2.0)
    tree = PartitionTree(X, f, lo, hi, leaf_size=15, assign="svm", seed=0)
    assert tree.n_splits >= 2
    leaves = [n for n in tree.nodes if n.leaf]
    assert sum(n.n for n in leaves) == len(f)
    for n in tree.nodes:
        if not n.leaf:
            good, bad = (tree.nodes[k] for k in n.kids)
            assert good.mean > bad.mean
    for leaf in leaves:  # with SVM assignment the region test reproduces the routing exactly
        assert int(_path_to(tree, leaf).contains(X).sum()) == leaf.n
    # greedy selection (C_p = 0) goes to the better child at every level
    node, region = tree.select(0.0, np.random.default_rng(0))
    cur = tree.nodes[0]
    for _, side in region.path:
        kids = [tree.nodes[k] for k in cur.kids]
        assert kids[side].mean == max(k.mean for k in kids)
        cur = kids[side]
    # a constant objective is not splittable: the guard stops the loop
    assert PartitionTree(X, np.ones(len(X)), lo, hi, leaf_size=5).n_splits == 0


def test_balanced_kmeans_splits_by_value_in_many_dimensions():
    """At 100-D the value is one column of 101: raw or standardized K-means splits by position, so its "good"
    child holds about half of the best points; balanced scaling gives the value the position's weight."""
    rng = np.random.default_rng(0)
    d, n = 100, 40
    X = rng.uniform(-5, 10, size=(n, d))
    f = -np.sqrt(((X - 2.0) ** 2).mean(axis=1))  # maximised: minus the RMS distance to (2, ..., 2)
    lo, hi = np.full(d, -5.0), np.full(d, 10.0)
    top10 = set(np.argsort(-f)[:10].tolist())

    def split(scale):
        tree = PartitionTree(X, f, lo, hi, leaf_size=20, kmeans_scale=scale, seed=0)
        assert tree.n_splits >= 1
        good, bad = (tree.nodes[k].idx for k in tree.nodes[0].kids)
        return len(top10 & set(good.tolist())), (f[good].mean() - f[bad].mean()) / f.std()

    best_in_good, gap = split("balanced")
    assert best_in_good == 10 and gap > 1.5
    for scale in ("raw", "standardize"):
        best_in_good, gap = split(scale)
        assert best_in_good <= 8 and gap < 1.0
    with pytest.raises(NasagentError, match="kmeans_scale must be one of"):
        PartitionTree(X, f, lo, hi, kmeans_scale="value")


@pytest.mark.parametrize("method", ["rejection", "cube", "hit-and-run"])
def test_region_samplers_stay_inside(method):
    X, f = _toy()
    tree = PartitionTree(X, f, np.full(2, -2.0), np.full(2, 2.0), leaf_size=20, seed=0)
    _, region = tree.select(0.0, np.random.default_rng(0))
    inside = X[region.contains(X)]
    pts, how = sample_region(region, 40, np.random.default_rng(1), method=method, centres=inside)
    assert how == "region" and len(pts) > 0
    assert region.contains(pts).all()
    assert ((pts >= -2) & (pts <= 2)).all()


@pytest.mark.parametrize("kernel", ["linear", "poly", "rbf", "sigmoid"])
@pytest.mark.parametrize("gamma", ["auto", "scale"])
def test_svm_predict_matches_libsvm(kernel, gamma):
    from sklearn.svm import SVC

    rng = np.random.default_rng(0)
    X = rng.uniform(-5, 5, size=(150, 6))
    y = (X[:, 0] + 0.3 * X[:, 1] ** 2 + rng.normal(size=150) > 2).astype(int)
    svm = SVC(kernel=kernel, gamma=gamma).fit(X, y)
    P = rng.uniform(-6, 6, size=(5000, 6))
    ours = svm_predict(svm, P, chunk=777)  # a chunk size that does not divide the rows
    assert ours.dtype == svm.classes_.dtype
    np.testing.assert_array_equal(ours, svm.predict(P))
    assert 0.02 < ours.mean() < 0.98  # both labels occur, so the check is not trivial


def test_cube_sampler_is_the_per_centre_heuristic():
    """The batched cube sampler returns exactly what growing each centre's cube on its own returns."""
    from scipy.stats import qmc

    X, f = _toy()
    lo, hi = np.full(2, -2.0), np.full(2, 2.0)
    tree = PartitionTree(X, f, lo, hi, leaf_size=20, seed=0)
    _, region = tree.select(0.0, np.random.default_rng(0))
    assert region.depth >= 1
    centres = X[region.contains(X)]
    got, _ = sample_region(region, 30, np.random.default_rng(5), method="cube", centres=centres)

    rng = np.random.default_rng(5)  # the heuristic spelled out one centre at a time, same random stream
    sob = qmc.Sobol(2, scramble=True, seed=rng).random_base2(8)
    pool = []
    for i in rng.permutation(len(centres))[: min(len(centres), 60)]:
        side, keep = 1e-4, None
        while side <= 1.0:
            a, b = np.maximum(centres[i] - side * 2, lo), np.minimum(centres[i] + side * 2, hi)
            pts = a + sob * (b - a)
            inside = region.contains(pts)
            if inside.mean() < 0.9:
                break
            keep, side = pts[inside], side * 2
        if keep is not None:
            pool.append(keep)
    pool = np.vstack(pool)
    np.testing.assert_allclose(got, pool[rng.choice(len(pool), size=30, replace=False)])


def test_empty_region_falls_back_to_parent():
    class Never:
        def predict(self, X):
            return np.ones(len(X), dtype=int)

    region = Region(np.zeros(2), np.ones(2), [(Never(), 0)])
    pts, how = sample_region(region, 5, np.random.default_rng(0), method="rejection", max_draws=500)
    assert len(pts) == 5 and how == "ancestor at depth 0"


# -- LA-MCTS optimiser and the drop-in minimize ---------------------------------------------------------------------------
def _sphere(x):
    return float(np.sum((np.asarray(x) - 0.5) ** 2))


def test_minimize_counts_every_evaluation_and_improves():
    calls = []

    def fun(x):
        calls.append(1)
        return None if len(calls) % 7 == 0 else _sphere(x)  # every 7th evaluation fails

    r = minimize(fun, [(-2, 2)] * 3, budget=42, seed=0, solver="random", n_init=10, leaf_size=8)
    assert len(calls) == r.nfev == 42 and r.nfail == 6
    assert r.fun == pytest.approx(_sphere(r.x))
    assert r.fun < np.min(r.history_y[:10])  # better than its initial design
    assert r.optimizer.history and r.optimizer.history[-1]["splits"] >= 1
    calls.clear()
    again = minimize(fun, [(-2, 2)] * 3, budget=42, seed=0, solver="random", n_init=10, leaf_size=8)
    assert np.allclose(again.x, r.x)  # seeded


def test_minimize_journal_resumes_a_killed_run_without_calling_fun_again(tmp_path):
    """With ``journal=``, a minimize killed mid-run (here by KeyboardInterrupt at call 25) and called again replays
    the journalled values, failures included, calls ``fun`` only for the rest, and ends exactly where a run that
    was never interrupted ends; a call with other settings is refused with the setting named."""
    opts = {"seed": 3, "solver": "random", "n_init": 10, "leaf_size": 8, "batch_size": 2, "workers": 2}
    calls = []

    def fun(x):
        calls.append(1)
        if len(calls) == 25 and stop[0]:
            raise KeyboardInterrupt
        return None if abs(x[0]) < 0.3 else _sphere(x)  # a failure depends on the point: it must replay as one

    stop = [False]
    straight = minimize(fun, [(-2, 2)] * 3, budget=40, **opts)
    assert straight.nfail > 0
    path = tmp_path / "opt.db"
    calls.clear()
    stop[0] = True
    with pytest.raises(KeyboardInterrupt):
        minimize(fun, [(-2, 2)] * 3, budget=40, journal=path, **opts)
    stop[0] = False
    calls.clear()
    seen = []
    resumed = minimize(fun, [(-2, 2)] * 3, budget=40, journal=path, callback=lambda x, y: seen.append(y), **opts)
    # 24 evaluations before the interrupted one, and perhaps its batch sibling, which finished in the other thread
    assert resumed.replayed in (24, 25) and len(calls) == len(seen) == 40 - resumed.replayed
    assert np.array_equal(resumed.history_x, straight.history_x) and resumed.nfail == straight.nfail
    calls.clear()
    more = minimize(fun, [(-2, 2)] * 3, budget=50, journal=path, **opts)  # a larger budget goes on from 40
    assert more.replayed == 40 and len(calls) == 10
    with pytest.raises(NasagentError, match="seed"):
        minimize(fun, [(-2, 2)] * 3, budget=50, journal=path, **{**opts, "seed": 4})
    from nasagent.api import load_run

    with pytest.raises(NasagentError, match="minimize"):  # 'nasagent report' on it: what it is, not a bare error
        load_run(path)
    from nasagent.runtime.journal import Journal

    search_run = Journal(tmp_path / "search.db")
    search_run.set_meta("config", {"benchmark": "nb201"})
    search_run.close()
    with pytest.raises(NasagentError, match="nasagent search"):  # a search's journal is never mixed into
        minimize(fun, [(-2, 2)] * 3, budget=5, journal=tmp_path / "search.db", **opts)
    with pytest.raises(NasagentError, match="not plain data"):
        minimize(fun, [(-2, 2)] * 3, budget=5, journal=tmp_path / "other.db", **{**opts, "cmaes_sigma": object()})
    minimize(fun, [(-2, 2)] * 3, budget=10, journal=tmp_path / "np.db", **{**opts, "cp": np.float32(2.0)})
    again = minimize(fun, [(-2, 2)] * 3, budget=10, journal=tmp_path / "np.db", **{**opts, "cp": 2.0})
    assert again.replayed == 10  # a numpy number is stored as the plain one


def test_minimize_journal_on_a_read_only_path_is_refused_before_fun_runs(tmp_path, monkeypatch):
    """A journal that cannot be written (the tests run as root, so the OS is told so) is refused with one message
    that names the file and what to do, before ``fun`` is called and without touching the file."""
    import os

    from nasagent.runtime import journal as journal_module

    path = tmp_path / "opt.db"
    minimize(_sphere, [(-2, 2)] * 2, budget=12, seed=0, solver="random", n_init=4, journal=str(path))
    before = path.read_bytes()
    real = os.access
    monkeypatch.setattr(journal_module.os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    calls = []
    with pytest.raises(NasagentError, match=r"opt\.db cannot be written .*copy it somewhere writable"):
        minimize(lambda x: calls.append(1) or _sphere(x), [(-2, 2)] * 2, budget=20, seed=0, solver="random", n_init=4,
                 journal=str(path))
    assert calls == [] and path.read_bytes() == before


def test_minimize_journal_that_no_longer_replays_is_kept_as_observations(tmp_path, caplog):
    """When the optimiser stops asking for the journalled points (another version, or floating point that differs
    between machines), the rest of the journal is told as observations, with a warning: every journalled value
    stays in the run and counts against the budget, and no row is overwritten."""
    import json
    import sqlite3

    opts = {"seed": 0, "solver": "random", "n_init": 8, "leaf_size": 6}
    path = tmp_path / "opt.db"
    first = minimize(_sphere, [(-2, 2)] * 2, budget=30, journal=path, **opts)
    db = sqlite3.connect(path)
    db.execute("UPDATE trials SET arch=? WHERE number=20", (json.dumps([0.25, 0.25]),))  # as if asked elsewhere
    db.commit()
    db.close()
    calls = []
    with caplog.at_level("WARNING", logger="nasagent"):
        r = minimize(lambda x: calls.append(1) or _sphere(x), [(-2, 2)] * 2, budget=40, journal=path, **opts)
    assert "other points than the journal holds" in caplog.text
    assert r.replayed == 30 and len(calls) == 10 and r.nfev == 40
    assert np.array_equal(r.history_y[:30], first.history_y)  # the first 20 replayed, the next 10 as observations
    assert np.array_equal(r.history_x[20], [0.25, 0.25]) and len(r.optimizer.f) == 40  # all told to LA-MCTS
    again = minimize(_sphere, [(-2, 2)] * 2, budget=40, journal=path, **opts)  # all 40 rows kept, none overwritten
    assert again.replayed == 40 and sorted(again.history_y) == sorted(r.history_y)


def _edit_journal(path, sql: str, params: tuple = ()) -> None:
    import sqlite3

    db = sqlite3.connect(path)
    db.execute(sql, params)
    db.commit()
    db.close()


def _journal_rows(path) -> dict:
    import json

    from nasagent.runtime.journal import Journal

    j = Journal(path, create=False)
    rows = {r.number: (np.array(json.loads(r.arch)), r.status, r.metrics.get("value")) for r in j.trials()}
    j.close()
    return rows


def test_minimize_journal_divergence_inside_a_batch_budget_and_stale_rows(tmp_path):
    """Review cases: (a) a divergence in the middle of a batch replays the batch's earlier points instead of
    evaluating them again; (b) after a divergence the budget still holds; (c) a row left running by a kill, whose
    point the optimiser no longer asks for, never receives another point's value; (d) another batch_size is
    refused; (e) an empty path is refused."""
    import json

    opts = {"seed": 1, "solver": "random", "n_init": 6, "leaf_size": 5, "batch_size": 2, "workers": 2}
    bounds = [(-2, 2)] * 2
    path = tmp_path / "a.db"
    minimize(_sphere, bounds, budget=20, journal=path, **opts)
    _edit_journal(path, "UPDATE trials SET arch=? WHERE number=13", (json.dumps([0.1, 0.2]),))  # 12 still matches
    calls = []
    r = minimize(lambda x: calls.append(x.copy()) or _sphere(x), bounds, budget=30, journal=path, **opts)
    journalled = [point for point, _, _ in _journal_rows(path).values()]
    assert len(calls) == 10 and r.nfev == 30
    assert not any(np.array_equal(c, j) for c in calls for j in journalled[:20])  # (a) no journalled point again
    assert len({tuple(x) for x in r.history_x}) == 30 and len(r.optimizer.f) == 30
    small = minimize(_sphere, bounds, budget=15, journal=path, **opts)  # (b) diverges at 13, stops at 15
    assert small.nfev == 15 and small.replayed == 15
    path = tmp_path / "b.db"
    minimize(_sphere, bounds, budget=20, journal=path, **opts)
    _edit_journal(path, "UPDATE trials SET status='running', metrics=NULL, score=NULL, tell_seq=NULL, arch=? "
                  "WHERE number=19", (json.dumps([1.5, -1.5]),))  # (c) killed while evaluating another point
    minimize(_sphere, bounds, budget=25, journal=path, **opts)
    for number, (point, status, value) in _journal_rows(path).items():
        assert status == "running" or value == pytest.approx(_sphere(point)), number
    with pytest.raises(NasagentError, match="batch_size"):  # (d)
        minimize(_sphere, bounds, budget=25, journal=path, **{**opts, "batch_size": 1})
    for empty in ("", ":memory:"):  # (e)
        with pytest.raises(NasagentError, match="file path"):
            minimize(_sphere, bounds, budget=5, journal=empty)
    from nasagent.runtime.journal import claim_run

    held = claim_run(path)  # another writer: the message names minimize's way out, not the CLI's --out
    try:
        with pytest.raises(NasagentError, match="another journal path"):
            minimize(_sphere, bounds, budget=25, journal=path, **opts)
    finally:
        held.close()
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NasagentError, match="cannot create the folder"):
        minimize(_sphere, bounds, budget=5, journal=blocker / "sub" / "j.db")


def test_turbo_keeps_to_the_region_the_thesis_way():
    """The thesis' three changes to TuRBO-1 inside LA-MCTS: (a) its initial design is drawn inside the region,
    (b) the trust region is centred on the best point *inside* the region, (c) candidates are the trust region
    intersected with the region."""
    from nasagent.strategies.local_solvers import TurboSolver

    X, f = _toy()
    lo, hi = np.full(2, -2.0), np.full(2, 2.0)
    tree = PartitionTree(X, f, lo, hi, leaf_size=20, seed=0)
    _, region = tree.select(0.0, np.random.default_rng(0))
    assert region.depth >= 1
    solver = TurboSolver(lo, hi, np.random.default_rng(1), region=region, n_init=6, init="region", n_cand=200)
    first = np.array([solver.ask() for _ in range(6)])
    assert region.contains(first).all()  # (a)
    outside = X[~region.contains(X)]
    for x in first:
        solver.tell(x, -float(np.sum((x - 0.7) ** 2)))
    solver.tell(outside[0], 1e6)  # the best point seen, but outside the region
    assert region.contains(solver.from_unit(solver.centre()[None])).all()  # (b)
    assert not np.allclose(solver.from_unit(solver.centre()[None])[0], outside[0])
    batch = np.array([solver.ask() for _ in range(5)])
    assert region.contains(batch).all() and solver.fallbacks == 0  # (c)


@pytest.mark.parametrize("solver", ["turbo", "cmaes", "bo", "cobyla"])
def test_local_solvers_inside_lamcts(solver):
    opts = {"turbo": {"local_n_init": 4}, "cmaes": {}, "bo": {}, "cobyla": {}}[solver]
    budget = {"turbo": 28, "cmaes": 40, "bo": 20, "cobyla": 40}[solver]
    r = minimize(_sphere, [(-2, 2)] * 3, budget=budget, seed=0, solver=solver, n_init=12, leaf_size=6, **opts)
    assert r.nfev == budget
    assert r.fun < np.min(r.history_y[:12])


def _scipy_cobyla_run(target, constrained: bool, maxiter: int):
    """scipy's own COBYLA on a 3-D sphere around ``target`` in [-2, 2]^3, from a fixed start with step 0.2, in unit
    coordinates (with the cube's faces as constraints or none, points clipped into the cube): the reference the
    solver is checked against. Returns (lo, hi, start, f, the points it evaluated, scipy's result)."""
    from scipy.optimize import minimize as scipy_minimize

    lo, hi = np.full(3, -2.0), np.full(3, 2.0)
    start = np.array([1.5, 1.5, -1.5])
    seen = []

    def f(x):
        return float(np.sum((x - target) ** 2))

    def in_unit(u):
        x = lo + np.clip(u, 0, 1) * (hi - lo)
        seen.append(x)
        return f(x)

    ref = scipy_minimize(in_unit, (start - lo) / (hi - lo), method="COBYLA", bounds=[(0, 1)] * 3 if constrained else None,
                         options={"rhobeg": 0.2, "tol": 1e-6, "maxiter": maxiter})
    return lo, hi, start, f, seen, ref


def test_cobyla_solver_is_scipys_cobyla_through_ask_tell():
    """Driven by ask/tell, the solver proposes exactly the points scipy's COBYLA evaluates when it calls the
    function itself, stops when COBYLA converges, and a failed evaluation is told as the worst value so far."""
    from nasagent.strategies.local_solvers import CobylaSolver

    lo, hi, start, f, seen, ref = _scipy_cobyla_run(np.array([0.3, -0.4, 0.9]), constrained=True, maxiter=10_000)
    solver = CobylaSolver(lo, hi, np.random.default_rng(0), start=start, rhobeg=0.2, rhoend=1e-6)
    asked = []
    while not solver.done:
        x = solver.ask()
        asked.append(x)
        solver.tell(x, -f(x))
    assert len(asked) == ref.nfev and np.allclose(asked, seen)
    assert f(asked[int(np.argmin([f(x) for x in asked]))]) < 1e-8
    # told the start's value, the solver answers COBYLA's first point itself: one evaluation fewer, same run
    known = CobylaSolver(lo, hi, np.random.default_rng(0), start=start, start_value=-f(start), rhobeg=0.2, rhoend=1e-6)
    asked_known = []
    while not known.done:
        x = known.ask()
        asked_known.append(x)
        known.tell(x, -f(x))
    assert np.allclose(seen[0], start) and np.allclose(asked_known, seen[1:])
    # a failed evaluation mid-run: COBYLA is told the worst value seen, and the run goes on
    solver = CobylaSolver(lo, hi, np.random.default_rng(0), start=start, rhobeg=0.2)
    for i in range(6):
        x = solver.ask()
        solver.tell(x, None if i == 4 else -f(x))
    assert solver.values[4] == max(solver.values[:4]) and not solver.done
    with pytest.raises(NasagentError, match="rhoend < rhobeg"):
        CobylaSolver(lo, hi, np.random.default_rng(0), rhobeg=0.1, rhoend=0.2)


def test_cobyla_solver_clip_mode_is_unconstrained_cobyla_on_clipped_points():
    """``bounds="clip"``: the solver proposes what scipy's COBYLA without bounds evaluates when every point is clipped
    into the box, which is not what the constrained run proposes; points stay in the box; a snapshot replays it."""
    import pickle

    from nasagent.strategies.local_solvers import CobylaSolver

    # two coordinates of the optimum lie outside the box
    lo, hi, start, f, seen, _ = _scipy_cobyla_run(np.array([0.3, 2.5, -2.6]), constrained=False, maxiter=60)

    def drive(solver, n):
        asked = []
        for _ in range(n):
            x = solver.ask()
            asked.append(x)
            solver.tell(x, -f(x))
        return np.array(asked)

    n = len(seen)
    clip = drive(CobylaSolver(lo, hi, np.random.default_rng(0), start=start, rhobeg=0.2, bounds="clip"), n)
    boxed = drive(CobylaSolver(lo, hi, np.random.default_rng(0), start=start, rhobeg=0.2), n)
    assert n > 20 and np.allclose(clip, seen)
    assert not np.allclose(clip, boxed)
    assert (clip >= lo).all() and (clip <= hi).all()
    a = CobylaSolver(lo, hi, np.random.default_rng(0), start=start, rhobeg=0.2, bounds="clip")
    drive(a, 20)
    b = pickle.loads(pickle.dumps(a))
    assert np.allclose(drive(a, 10), drive(b, 10))
    with pytest.raises(NasagentError, match="COBYLA bounds"):
        CobylaSolver(lo, hi, np.random.default_rng(0), bounds="reflect")


def test_cobyla_solver_snapshot_replays_and_extra_asks_wait():
    """A pickled solver (its COBYLA thread is not pickled) replays the told values and proposes the same points
    as the original, also with a point outstanding; asks while COBYLA waits are region draws that leave it alone."""
    import pickle

    from nasagent.strategies.local_solvers import CobylaSolver

    lo, hi = np.zeros(4), np.ones(4)

    def f(x):
        return -float(np.sum((x - 0.3) ** 2))

    a = CobylaSolver(lo, hi, np.random.default_rng(0), start=np.full(4, 0.8), rhobeg=0.1)
    for _ in range(7):
        x = a.ask()
        a.tell(x, f(x))
    pending = a.ask()
    extra = a.ask()  # COBYLA still waits on ``pending``: an extra point, told, then ignored by COBYLA
    a.tell(extra, 5.0)
    b = pickle.loads(pickle.dumps(a))
    for s in (a, b):
        s.tell(pending, f(pending))
    xa, xb = [], []
    for s, out in ((a, xa), (b, xb)):
        for _ in range(10):
            x = s.ask()
            out.append(x)
            s.tell(x, f(x))
    assert np.allclose(xa, xb) and len(a.values) == len(b.values) == 18


def test_lamcts_cobyla_restarts_never_repeat_a_run():
    """COBYLA is deterministic: LA-MCTS must not restart it where a run already started (it would replay it)."""
    def bumpy(x):
        return float(np.sin(3 * np.asarray(x)).sum() + ((np.asarray(x) - 0.2) ** 2).sum())

    r = minimize(bumpy, [(-2, 2)] * 3, budget=300, seed=0, solver="cobyla", n_init=10)
    assert len(r.optimizer.history) >= 3  # several COBYLA runs
    assert len(np.unique(r.history_x, axis=0)) == len(r.history_x)  # no evaluation repeated


def test_lamcts_cobyla_on_a_box_far_from_the_origin():
    """Each value must reach COBYLA although unit-cube coordinates of a box far from 0 round off."""
    off = 1e6
    r = minimize(lambda x: float(np.sum((np.asarray(x) - off - 0.3) ** 2)), [(off, off + 1)] * 2, budget=120, seed=0,
                 solver="cobyla", n_init=10)
    assert r.fun < 1e-8 and len(r.optimizer.history) >= 2  # COBYLA converged (it was told its values) and restarted


def test_optuna_sampler_with_parallel_jobs():
    optuna = pytest.importorskip("optuna")
    from nasagent.integrations.optuna import LAMCTSSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        return (trial.suggest_float("x", -5, 5) - 1) ** 2 + (trial.suggest_float("y", -5, 5) + 2) ** 2

    for solver in ("cobyla", "random"):
        study = optuna.create_study(sampler=LAMCTSSampler(seed=0, solver=solver, n_init=8))
        study.optimize(objective, n_trials=60, n_jobs=4)
        assert len(study.trials) == 60 and all(t.state.name == "COMPLETE" for t in study.trials)


def test_batch_asks_before_tells():
    opt = LAMCTSOptimizer([-1, -1], [1, 1], seed=0, solver="turbo", n_init=6, local_n_init=3, batch_size=4, leaf_size=4)
    for _ in range(5):
        batch = [opt.ask() for _ in range(4)]  # four workers, then their results
        for x in batch:
            assert x.shape == (2,) and (np.abs(x) <= 1).all()
            opt.tell(x, -_sphere(x))
    assert len(opt.f) == 20 and not opt.pending


def test_lamcts_bad_input():
    with pytest.raises(NasagentError, match="low >= high"):
        LAMCTSOptimizer([0, 1], [1, 1])
    opt = LAMCTSOptimizer([0, 0], [1, 1], minimize=True)
    x = opt.ask()
    with pytest.raises(NasagentError, match="non-finite"):
        opt.tell(x, float("nan"))
    with pytest.raises(NasagentError, match="dimensions"):
        opt.tell([0.5, 0.5, 0.5], 1.0)
    with pytest.raises(NasagentError, match="solver"):
        LAMCTSOptimizer([0], [1], solver="adam")
    with pytest.raises(NasagentError, match="fun returned"):
        minimize(lambda x: float("inf"), [(0, 1)], budget=3)
    with pytest.raises(NasagentError, match="bounds"):
        minimize(_sphere, [0, 1], budget=3)
    with pytest.raises(NasagentError, match="no option 'leafsize'"):
        make_strategy("lamcts", make_space("box-2"), leafsize=3)


def test_lamcts_strategy_through_the_runner():
    run = search("ackley-4", "lamcts", budget=40, seed=0, plot=False,
                 strategy_options={"solver": "random", "n_init": 10, "leaf_size": 8})
    assert run.samples == 40 and run.best_value < 12
    run2 = search("ackley-4", "cmaes", budget=20, seed=0, plot=False)
    assert run2.samples == 20


# -- Optuna sampler ---------------------------------------------------------------------------------------------------
def test_optuna_sampler_floats_joint_others_independent():
    optuna = pytest.importorskip("optuna")
    from nasagent.integrations.optuna import LAMCTSSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_float("x", -3, 3)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return -((x - 1) ** 2) - (math.log10(lr) + 2) ** 2 - (kind == "b")

    sampler = LAMCTSSampler(seed=0, solver="random", n_init=8, leaf_size=6)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"x": 0.0, "lr": 0.5, "kind": "a"})
    study.optimize(objective, n_trials=30)
    assert sampler._names == ("lr", "x")  # the categorical stays with the independent sampler
    assert len(sampler._opt.f) == 30  # every completed trial reached LA-MCTS, the enqueued one included
    lrs = [t.params["lr"] for t in study.trials]
    assert min(lrs) >= 1e-4 and max(lrs) <= 1.0
    assert study.best_value > -1.5
    with pytest.raises(NasagentError, match="sets 'minimize'"):
        LAMCTSSampler(minimize=True)


# -- control tasks ----------------------------------------------------------------------------------------------------
def test_rover_reward_is_deterministic_and_prefers_a_direct_path():
    rover = make_benchmark("rover-60")
    rng = np.random.default_rng(0)
    x = rover.space.sample(rng)
    assert rover(x).metrics["reward"] == rover(x).metrics["reward"]
    t = np.linspace(0.05, 0.95, 30)
    straight = (np.repeat(t, 2) + 0.1) / 1.2  # control points on the diagonal, in the [0, 1] parameterisation
    randoms = [rover(rover.space.sample(rng)).metrics["reward"] for _ in range(10)]
    assert rover(tuple(straight)).metrics["reward"] > max(randoms)
    assert rover(tuple(straight)).metrics["reward"] <= 5.0
    assert math.isfinite(rover((0.5,) * 60).metrics["reward"])  # coincident control points
    with pytest.raises(NasagentError, match="rover dimension"):
        make_benchmark("rover-7")
    with pytest.raises(NasagentError, match="takes 60"):
        rover((0.5,) * 3)


@pytest.mark.parametrize("task,dim", [("lunar", 12), ("swimmer", 16), ("hopper", 33)])
def test_gym_tasks_build_and_evaluate(task, dim):
    pytest.importorskip("gymnasium")
    try:
        bench = make_benchmark(task, episodes=1, max_steps=30)
        x = bench.space.sample(np.random.default_rng(0))
        r1 = bench(x).metrics["reward"]
    except NasagentError as e:  # gymnasium without box2d / mujoco
        pytest.skip(str(e))
    assert bench.dim == dim
    r2 = bench(x).metrics["reward"]
    assert math.isfinite(r1) and r1 == r2  # fixed episode seeds
    with pytest.raises(NasagentError, match="episodes"):
        make_benchmark(task, episodes=0)


def test_running_stats_match_numpy_on_batches():
    from nasagent.benchmarks.control import RunningStats

    data = np.random.default_rng(1).normal(3.0, 2.0, (57, 4))
    stats = RunningStats(4)
    for chunk in np.array_split(data, [1, 9, 30]):  # uneven batches, one of a single row
        stats.push(chunk)
    assert stats.n == 57
    assert np.allclose(stats.mean, data.mean(axis=0)) and np.allclose(stats.std, data.std(axis=0, ddof=1))
    assert np.array_equal(RunningStats(4).std, np.ones(4))  # no data yet: identity scaling


def test_linear_policy_observation_normalisation():
    pytest.importorskip("gymnasium")
    try:
        plain = make_benchmark("swimmer", episodes=1, max_steps=40)
        x = plain.space.sample(np.random.default_rng(0))
        r_plain = plain(x).metrics["reward"]
    except NasagentError as e:  # gymnasium without mujoco
        pytest.skip(str(e))
    # fixed statistics of mean 0 and std 1 are the identity; other statistics change the policy
    ident = make_benchmark("swimmer", episodes=1, max_steps=40, obs_norm="fixed", obs_mean=[0.0] * 8, obs_std=[1.0] * 8)
    assert ident(x).metrics["reward"] == r_plain
    scaled = make_benchmark("swimmer", episodes=1, max_steps=40, obs_norm="fixed", obs_mean=[0.0] * 8, obs_std=[0.1] * 8)
    assert scaled(x).metrics["reward"] != r_plain
    # estimated fixed statistics: computed once, the same on every call and for every instance
    est = make_benchmark("swimmer", episodes=1, max_steps=40, obs_norm="fixed")
    r1, r2 = est(x).metrics["reward"], est(x).metrics["reward"]
    assert r1 == r2 == make_benchmark("swimmer", episodes=1, max_steps=40, obs_norm="fixed")(x).metrics["reward"]
    assert not np.allclose(est.mu, 0.0) and (est.sigma > 0).all()
    # running statistics: the first evaluation flies unnormalised, then the states it saw are the statistics
    run = make_benchmark("swimmer", episodes=1, max_steps=40, obs_norm="running")
    assert run(x).metrics["reward"] == r_plain
    assert run.stats.n == 40
    assert run(x).metrics["reward"] != r_plain and run.stats.n == 80
    for bad, match in [({"obs_norm": "batch"}, "obs_norm must be"), ({"obs_mean": [0.0] * 8}, "both obs_mean"),
                       ({"obs_norm": "fixed", "obs_mean": [0.0] * 3, "obs_std": [1.0] * 3}, "8 finite"),
                       ({"obs_norm": "fixed", "obs_mean": [0.0] * 8, "obs_std": [0.0] * 8}, "positive")]:
        with pytest.raises(NasagentError, match=match):
            make_benchmark("swimmer", **bad)
    with pytest.raises(NasagentError, match="no observation normalisation"):
        make_benchmark("lunar", obs_norm="running")
    assert make_benchmark("rover-60", obs_norm="none").name == "rover-60"  # the default is accepted everywhere


# -- snapshots ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,space_name,opts", [
    ("lanas", "nb201", {"height": 3, "n_init": 5, "n_select": 3}),
    # the predictor is fitted at learning phases only (asks 6, 10, 14): the snapshot must carry the fitted one
    ("lanas", "nb201", {"height": 3, "n_init": 5, "n_select": 4, "predictor": "gp-hamming", "n_candidates": 20}),
    ("lamcts", "box-3", {"solver": "turbo", "n_init": 8, "local_n_init": 4, "leaf_size": 6}),
    ("lamcts", "box-3", {"solver": "cobyla", "n_init": 8, "leaf_size": 6}),
    # cmaes' own pickling drops its generator and rounds its covariance: the solver keeps both
    ("lamcts", "box-3", {"solver": "cmaes", "n_init": 8, "leaf_size": 6}),
    ("cmaes", "box-3", {}),
])
def test_snapshot_resumes_identically(name, space_name, opts):
    import pickle

    space = make_space(space_name)
    def weighted(a):  # varies across cells (a one-hot encoding's plain sum would not)
        e = np.asarray(space.encode(a), dtype=float)
        return float(e @ np.sin(np.arange(e.size)))

    score = weighted if name == "lanas" else (lambda a: -_sphere(a))
    a = make_strategy(name, space, seed=3, **opts)
    _drive(a, score, 14)
    b = make_strategy(name, space, seed=99, **opts)
    b.load_state_dict(pickle.loads(pickle.dumps(a.state_dict())))
    xa, xb = _drive(a, score, 4), _drive(b, score, 4)
    assert [space.key(x) for x in xa] == [space.key(x) for x in xb]


def test_lanas_on_a_space_smaller_than_its_initial_samples_ends_cleanly():
    from nasagent.core import SpaceExhausted
    from nasagent.spaces.subset import SubsetSpace

    nb = make_space("nb201")
    rng = np.random.default_rng(0)
    tiny = SubsetSpace(nb, [nb.key(nb.sample(rng)) for _ in range(5)])
    for opts in ({}, {"sampler": "rejection", "max_tries": 200}):
        s = make_strategy("lanas", tiny, seed=0, **opts)  # n_init 20 > 5 cells
        seen = set()
        with pytest.raises(SpaceExhausted):
            for i in range(10):
                t = s.ask()
                seen.add(tiny.key(t.arch))
                s.tell(t, Result({"v": 1.0}, score=float(i)))
        assert len(seen) == 5, opts
    for bad, fragment in [({"ridge": -1.0}, "ridge"), ({"ridge": float("nan")}, "ridge"),
                          ({"min_node_samples": 0}, "min_node_samples"), ({"max_tries": 0}, "max_tries")]:
        with pytest.raises(NasagentError, match=fragment):
            make_strategy("lanas", nb, **bad)


# -- found by a drop-in user's review: batches, tolerances, conditional Optuna spaces, presets --------------------
def test_turbo_judges_a_batch_against_the_best_before_it():
    from nasagent.strategies.local_solvers import TurboSolver

    s = TurboSolver([0, 0], [1, 1], np.random.default_rng(0), n_init=2, batch_size=2)
    for _ in range(2):
        s.tell(s.ask(), 0.0)
    for k in range(3):  # three batches in a row that each beat everything before them
        s.tell(np.array([0.1 * k, 0.1]), 10.0 * (k + 1))
        s.tell(np.array([0.1 * k, 0.2]), -5.0)  # the batch's last member is its worst
    assert s.length == 2 * TurboSolver.length_init  # succtol = 3 successes double the trust region


def test_turbo_failtol_sets_how_many_failed_batches_halve_the_trust_region():
    from nasagent.strategies.local_solvers import TurboSolver

    def run(**kw):
        s = TurboSolver(np.zeros(20), np.ones(20), np.random.default_rng(0), n_init=2, batch_size=2, **kw)
        for _ in range(2):
            s.tell(s.ask(), 1.0)
        for k in range(3):  # three batches, none better than the initial points
            s.tell(np.full(20, 0.1 * k), 0.0)
            s.tell(np.full(20, 0.2), 0.0)
        return s

    assert run().failtol == 10 and run().length == TurboSolver.length_init  # the reference: ceil(20 / 2) batches
    assert run(failtol=3).length == TurboSolver.length_init / 2
    assert make_strategy("turbo", make_space("box-20"), failtol=3).solvers[0].failtol == 3
    opt = LAMCTSOptimizer(np.zeros(20), np.ones(20), n_init=4, turbo_failtol=2)
    for _ in range(4):
        x = opt.ask()
        opt.tell(x, float(x.sum()))
    opt.ask()
    assert opt.solver.failtol == 2
    with pytest.raises(NasagentError, match="failtol"):
        make_strategy("turbo", make_space("box-20"), failtol=0)
    with pytest.raises(NasagentError, match="turbo_failtol"):
        LAMCTSOptimizer(np.zeros(2), np.ones(2), turbo_failtol=1.5)
    assert make_strategy("turbo", make_space("box-20"), failtol=3.0).solvers[0].failtol == 3  # 3.0 from a config file


def test_cmaes_solver_learns_only_from_its_own_draws_whatever_the_order():
    from nasagent.strategies.local_solvers import CMAESSolver

    def f(x):
        return -float(((x - 0.3) ** 2).sum())

    s = CMAESSolver(np.zeros(3), np.ones(3), np.random.default_rng(0), mean=np.full(3, 0.5), sigma=0.2, patience=100)
    told = []
    real_tell = s.cma.tell
    s.cma.tell = lambda sols: (told.append([u for u, _ in sols]), real_tell(sols))
    drawn = []
    real_ask = s.cma.ask
    s.cma.ask = lambda: drawn.append(real_ask()) or drawn[-1]
    for _ in range(4):
        xs = [s.ask() for _ in range(10)]  # more than one population (7): the rest are extra points
        for x in reversed(xs):
            s.tell(x, f(x))
    assert len(told) == 4
    for gen in told:  # every solution CMA-ES is told is one it drew
        assert all(any(np.array_equal(u, d) for d in drawn) for u in gen)
    assert s.best > -np.inf and s.best == pytest.approx(max(f(s.from_unit(u)) for gen in told for u in gen))


def test_lamcts_tell_accepts_a_point_back_within_rounding():
    def f(x):
        return float(np.sum((x - 0.2) ** 2))

    exact = LAMCTSOptimizer([-1] * 3, [1] * 3, seed=0, minimize=True, n_init=10, solver="random")
    cast = LAMCTSOptimizer([-1] * 3, [1] * 3, seed=0, minimize=True, n_init=10, solver="random")
    for _ in range(40):
        x = exact.ask()
        exact.tell(x, f(x))
        y = cast.ask()
        cast.tell(y.astype(np.float32), f(y))  # the caller's own dtype
    assert not cast.pending and cast.best[1] == pytest.approx(exact.best[1], rel=1e-5)


def test_optuna_sampler_on_a_conditional_space_and_an_enqueued_point():
    optuna = pytest.importorskip("optuna")
    from nasagent.integrations.optuna import LAMCTSSampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def conditional(t):
        x = t.suggest_float("x", -1, 3)
        return x + t.suggest_float("y", 0, 1) if x > 0 else -x

    study = optuna.create_study(sampler=LAMCTSSampler(seed=0, n_init=5))
    study.optimize(conditional, n_trials=30)  # raised KeyError: 'y' once a trial skipped y
    assert len(study.trials) == 30

    def bowl(t):
        return (t.suggest_float("x", 0, 1) - 0.9) ** 2 + (t.suggest_float("y", 0, 1) - 0.5) ** 2

    sampler = LAMCTSSampler(seed=0, n_init=3, local_n_init=2, solver="turbo")
    study = optuna.create_study(sampler=sampler)
    study.optimize(bowl, n_trials=8)
    study.enqueue_trial({"x": 0.9})  # LA-MCTS's y with the user's x
    study.optimize(bowl, n_trials=1)
    turbo, last = sampler._opt.solver, study.trials[-1]
    assert np.allclose(turbo.from_unit(turbo.U[-1]), [last.params["x"], last.params["y"]])  # the evaluated point
    assert turbo.y[-1] == pytest.approx(-last.value)


def test_lamcts_explicit_options_win_over_the_preset():
    opt = LAMCTSOptimizer([0], [1], preset="mujoco", cp=0.5)
    assert (opt.cp, opt.leaf_size, opt.n_init) == (0.5, 100, 30)
    assert LAMCTSOptimizer([0], [1]).n_init == 40 and LAMCTSOptimizer([0], [1], preset="small-budget").local_n_init == 5
    with pytest.raises(NasagentError, match="leaf_size"):
        make_strategy("lamcts", make_space("box-2"), leaf_size="abc")


def test_lanas_explicit_options_win_over_the_preset(nb201):
    strat = LaNAS(nb201.space, preset="thesis", height=4, n_init=30)
    assert (strat.height, strat.n_init, strat.n_select, strat.cp) == (4, 30, 50, "auto")  # the rest from the preset
    plain = LaNAS(nb201.space)
    assert (plain.height, plain.n_init, plain.n_select, plain.cp) == (6, 20, 10, "auto")
    assert LaNAS(nb201.space, preset="oneshot").cp == 10.0


def test_lamcts_centre_initial_design_and_cobyla_step():
    lower, upper = np.array([-5.0, 0.0, 10.0]), np.array([10.0, 1.0, 30.0])
    opt = LAMCTSOptimizer(lower, upper, seed=0, init="centre+lhs", n_init=6, solver="cobyla", cobyla_rhobeg=0.1)
    first = [opt.ask() for _ in range(6)]
    assert np.allclose(first[0], (lower + upper) / 2)  # the centre first, then 5 Latin-hypercube points
    assert len({tuple(x) for x in first}) == 6
    plain = LAMCTSOptimizer(lower, upper, seed=0, n_init=6)
    assert not any(np.allclose(plain.ask(), (lower + upper) / 2) for _ in range(6))  # the thesis' design has no centre
    for x in first:
        opt.tell(x, float(np.sum(((x - lower) / (upper - lower) - 0.3) ** 2)))
    opt.ask()
    assert opt.solver.rhobeg == 0.1 and opt.solver.bounds == "constraints"
    clipped = LAMCTSOptimizer(lower, upper, seed=0, init="centre+lhs", n_init=6, solver="cobyla", cobyla_bounds="clip")
    for x in [clipped.ask() for _ in range(6)]:
        clipped.tell(x, float(np.sum(((x - lower) / (upper - lower) - 0.3) ** 2)))
    clipped.ask()
    assert clipped.solver.bounds == "clip"
    with pytest.raises(NasagentError, match="COBYLA bounds"):
        LAMCTSOptimizer(lower, upper, cobyla_bounds="none")
    with pytest.raises(NasagentError, match="init"):
        LAMCTSOptimizer(lower, upper, init="centre")
    for bad in (2.0, 1e-6, True, "0.1"):  # COBYLA's last step is 1e-6: a first step must be larger
        with pytest.raises(NasagentError, match="cobyla_rhobeg"):
            LAMCTSOptimizer(lower, upper, cobyla_rhobeg=bad)


def test_lamcts_tree_dump_means_are_the_callers_values():
    opt = LAMCTSOptimizer([0, 0], [1, 1], seed=0, minimize=True, n_init=30, leaf_size=5)
    for _ in range(30):
        x = opt.ask()
        opt.tell(x, 5.0 + float(x.sum()))
    rows = opt.tree_dump()
    assert rows[0]["mean"] == pytest.approx(np.mean(5.0 + opt.X.sum(axis=1)))
    opt.ask()  # an iteration: UCB scores on the path it chose
    scored = [r for r in opt.tree_dump() if r["ucb"] is not None and r["id"] != 0]
    assert scored and all(r["ucb"] <= r["mean"] for r in scored)  # minimising: the optimistic bound is below the mean


def test_bo_parallel_asks_differ_and_leave_torch_alone():
    import torch

    from nasagent.spaces.box import BoxSpace

    strat = make_strategy("bo", BoxSpace([-5, 1e-4, -1], [10, 0.1, 3]), seed=0, n_init=4)
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    for round_ in range(3):
        trials = [strat.ask() for _ in range(4)]
        if round_:  # EI rounds: the pending points push the next ask away, not just to a float-different copy
            U = np.stack([strat.space.encode(t.arch) for t in trials])
            gaps = [np.abs(U[i] - U[j]).max() for i in range(4) for j in range(i)]
            assert min(gaps) > 1e-3, gaps
        for t in trials:
            v = -float(np.sum(np.square(np.asarray(t.arch) - [1, 0.05, 1])))
            strat.tell(t, Result({"f": v}, score=v))
    assert torch.rand(1) == expected  # the strategy's seeding did not move the caller's generator


def test_lamcts_tell_pairs_values_with_their_own_points_on_a_far_offset_box():
    opt = LAMCTSOptimizer([1e6, 1e6], [1e6 + 1, 1e6 + 1], seed=0, n_init=4, solver="turbo", batch_size=3, local_n_init=3)
    told = {}
    for _ in range(4):
        xs = [opt.ask() for _ in range(3)]
        for x in reversed(xs):  # out of order, handed back exactly
            v = float(np.sum(x - 1e6))
            told[tuple(x)] = v
            opt.tell(x, v)
    assert not opt.pending
    assert all(told[tuple(x)] == v for x, v in zip(opt.X, opt.f))  # LA-MCTS's own data
    for solver in [opt.solver, *opt.solvers.values()]:
        if solver is not None and hasattr(solver, "U"):
            pts = solver.from_unit(solver.U)
            assert all(abs(np.sum(p - 1e6) - v) < 1e-6 for p, v in zip(pts, solver.y))  # TuRBO's data: each its own value


def test_a_control_task_without_its_simulator_is_refused_when_built(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("mujoco", "Box2D") else real(name, *a))
    for task, missing in (("swimmer", "mujoco"), ("lunar", "Box2D")):
        with pytest.raises(NasagentError, match=rf"needs {missing}.*nasagent\[control\]"):
            make_benchmark(task)
    assert make_benchmark("rover-60").dim == 60  # no simulator needed


def test_minimize_takes_scipy_bounds_and_names_an_unknown_option():
    from scipy.optimize import Bounds

    def bowl(x):
        return float(np.sum((x - 0.25) ** 2))

    r = minimize(bowl, Bounds([-1, -1], [1, 1]), budget=30, seed=0, solver="random", n_init=10)
    assert r.nfev == 30 and np.all(np.abs(np.asarray(r.history_x)) <= 1)
    assert minimize(bowl, Bounds(-1, 1), budget=5, seed=0, solver="random", n_init=4).x.shape == (1,)  # scalar bounds
    with pytest.raises(NasagentError, match="no option 'maxiter'.*budget="):
        minimize(bowl, [(-1, 1)], maxiter=10)
