"""Multi-objective and constrained search: objectives, constraints, Pareto fronts, hypervolume, runner, CLI."""

import json

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.objectives import Constraint, MultiObjective, make_objective, parse_objective, parse_scalarization
from nasagent.registry import make_strategy
from nasagent.runtime.journal import Journal
from nasagent.runtime.pareto import crowding, hypervolume, nondominated, pareto_ranks, table_front
from nasagent.runtime.runner import Runner
from nasagent.strategies.base import Strategy
from nasagent.strategies.nsga2 import crowded_order

PAIR = ["accuracy:max", "analog_drift_30d:max"]


def _brute_nondominated(p):
    out = []
    for i in range(len(p)):
        dominated = any((p[j] >= p[i]).all() and (p[j] > p[i]).any() for j in range(len(p)))
        if not dominated:
            out.append(i)
    return out


class Recorder(Strategy):
    """Random proposals; keeps every result it is told."""

    def __init__(self, space, seed=0):
        super().__init__(space, seed)
        self.told = []

    def _propose(self):
        return self.space.sample(self.rng)

    def _observe(self, trial, result):
        self.told.append(result)


# -- parsing and validation ------------------------------------------------------------------------
def test_parse_objective_and_constraint():
    assert parse_objective("latency:min") == Objective("latency", "min")
    assert parse_objective("acc", lambda n: "max") == Objective("acc", "max")
    c = Constraint.parse(" params <= 1.5 ")
    assert (c.metric, c.op, c.bound) == ("params", "<=", 1.5)
    assert c.excess(1.4) == 0 and c.excess(2.0) == pytest.approx(0.5)
    assert Constraint.parse("acc>90").excess(90) > 0  # strict bound met with equality is a violation
    with pytest.raises(NasagentError, match="malformed constraint"):
        Constraint.parse("params=<1")
    with pytest.raises(NasagentError, match="'max' or 'min'"):
        parse_objective("accuracy:up")
    assert parse_scalarization("tunas-abs:target=84,beta=-0.2") == {"scalarization": "tunas-abs", "target": 84.0, "beta": -0.2}
    with pytest.raises(NasagentError, match="malformed scalarization"):
        parse_scalarization("weighted:a,b")


def test_bad_objectives_give_clear_errors(nb201):
    with pytest.raises(NasagentError, match="has no metric 'latency'; it has: accuracy, ptq_accuracy"):
        make_objective(nb201, objectives=["accuracy", "latency:min"])
    with pytest.raises(NasagentError, match="both maximised and minimised"):
        make_objective(nb201, objectives=["accuracy:max", "accuracy:min"])
    with pytest.raises(NasagentError, match="not both"):
        make_objective(nb201, metric="accuracy", objectives=PAIR)
    with pytest.raises(NasagentError, match=r"no architecture in 'nb201' satisfies accuracy>=99 \(accuracy spans 10\.\.94"):
        make_objective(nb201, constraints=["accuracy>=99"])
    with pytest.raises(NasagentError, match="tunas-abs needs a positive cost target"):
        make_objective(nb201, objectives=["accuracy:max", "analog_drift_30d:min"], scalarization="tunas-abs")
    with pytest.raises(NasagentError, match="2 weights given for 3 objectives"):
        make_objective(nb201, objectives=PAIR + ["ptq_accuracy"], scalarization="weighted:1,1")


def test_one_objective_without_constraints_is_the_core_objective(nb201):
    assert make_objective(nb201) == nb201.objective()
    assert make_objective(nb201, objectives=["analog_accuracy"]) == Objective("analog_accuracy", "max")
    assert type(make_objective(nb201, metric="accuracy", mode="min")) is Objective


# -- scalarisations and penalties -------------------------------------------------------------------
def test_scalarisations_follow_their_formulas(nb201):
    lo_a, hi_a = nb201.values("accuracy").min(), nb201.values("accuracy").max()
    lo_d, hi_d = nb201.values("analog_drift_30d").min(), nb201.values("analog_drift_30d").max()
    m = {"accuracy": 90.0, "analog_drift_30d": 80.0}
    ua, ud = (90 - lo_a) / (hi_a - lo_a), (80 - lo_d) / (hi_d - lo_d)
    w = make_objective(nb201, objectives=PAIR, scalarization="weighted:3,1")
    assert w.score(m) == pytest.approx(0.75 * ua + 0.25 * ud)
    c = make_objective(nb201, objectives=PAIR, scalarization="chebyshev")
    gaps = np.array([0.5 * (1 - ua), 0.5 * (1 - ud)])
    assert c.score(m) == pytest.approx(-gaps.max() - 0.05 * gaps.sum())
    t = MultiObjective((Objective("q"), Objective("lat", "min")), scalarization="tunas-abs", target=10.0)
    assert t.score({"q": 0.7, "lat": 10.0}) == pytest.approx(0.7)
    assert t.score({"q": 0.7, "lat": 15.0}) == pytest.approx(0.7 - 0.1 * 0.5)
    assert t.score({"q": 0.7, "lat": 5.0}) == pytest.approx(0.7 - 0.1 * 0.5)  # absolute: both sides cost
    assert w.scores(m) == (90.0, 80.0) and w.value(m) == w.score(m) and w.mode == "max"


def test_every_feasible_cell_outranks_every_infeasible_one(nb201):
    obj = make_objective(nb201, objectives=PAIR, constraints=["analog_accuracy>=85"], scalarization="chebyshev")
    scores, _ = obj.evaluate({m: nb201.values(m) for m in ("accuracy", "analog_drift_30d", "analog_accuracy")})
    feas = nb201.values("analog_accuracy") >= 85
    assert feas.any() and (~feas).any()
    assert scores[feas].min() > scores[~feas].max()
    # also where the score is wider than 1: Chebyshev with all the weight on one objective, and tunas-abs
    cols = {m: nb201.values(m) for m in ("accuracy", "ptq_accuracy", "analog_drift_30d")}
    for scal in ("chebyshev:1,0", "chebyshev:0.99,0.01", "tunas-abs:target=80"):
        objs = ["accuracy:max", "analog_drift_30d:min"] if scal.startswith("tunas") else PAIR
        o = make_objective(nb201, objectives=objs, constraints=["ptq_accuracy<=90"], scalarization=scal)
        s, _ = o.evaluate(cols)
        ok = cols["ptq_accuracy"] <= 90
        assert s[ok].min() > s[~ok & np.isfinite(s)].max(), scal
    # among infeasible cells, a smaller violation (same objectives) ranks higher
    a = obj.score({"accuracy": 90, "analog_drift_30d": 80, "analog_accuracy": 84})
    b = obj.score({"accuracy": 90, "analog_drift_30d": 80, "analog_accuracy": 60})
    assert a > b


def test_directions_and_bounds_are_given_once_and_a_constrained_trace_reports_metric_values(nb201):
    with pytest.raises(NasagentError, match="--mode min does not apply to --objective"):
        make_objective(nb201, mode="min", objectives=["accuracy"])
    with pytest.raises(NasagentError, match="'1.2.3' is not a number"):
        Constraint.parse("ptq_accuracy<=1.2.3")
    from nasagent.api import search

    r = search("nb201", "random", budget=12, seed=0, constraints=["ptq_accuracy<=70"])  # its first samples are infeasible
    assert r.trace[-1][2] == r.best_value  # the best sample's accuracy, not its penalised score
    assert all(b is None or 0 <= b <= 100 for _, _, b in r.trace)


def test_constrained_optimum_is_the_best_feasible_cell(nb201):
    obj = make_objective(nb201, constraints=["analog_drift_30d>=89.5"])
    acc, drift = nb201.values("accuracy"), nb201.values("analog_drift_30d")
    value, keys = obj.optimum_of(nb201)
    assert value == pytest.approx(acc[drift >= 89.5].max()) and value < acc.max()
    assert all(nb201.value(k, "analog_drift_30d") >= 89.5 for k in keys)


# -- pareto utilities --------------------------------------------------------------------------------
def test_nondominated_ranks_crowding_and_hypervolume_against_hand_results():
    p = np.random.default_rng(0).random((60, 2))
    assert list(nondominated(p)) == _brute_nondominated(p)
    r = pareto_ranks(p)
    assert (r[nondominated(p)] == 0).all() and (r > 0).sum() == 60 - len(nondominated(p))
    cd = crowding(np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]))
    assert np.isinf(cd[0]) and np.isinf(cd[2]) and np.isfinite(cd[1])
    # two points, maximise in [0, 1]^2: normalised to minimisation (0.2, 0.6), (0.6, 0.2), ref 1.1
    hv = hypervolume(np.array([[0.8, 0.4], [0.4, 0.8]]), [0, 0], [1, 1])
    assert hv == pytest.approx(0.9 * 0.5 + 0.5 * 0.9 - 0.5 * 0.5)
    assert hypervolume(np.zeros((0, 2)), [0, 0], [1, 1]) == 0.0


def test_table_front_is_the_brute_force_front(nb201):
    obj = make_objective(nb201, objectives=PAIR)
    keys, pts = table_front(nb201, obj)
    allp = np.stack([nb201.values("accuracy"), nb201.values("analog_drift_30d")], axis=1)
    top = np.flatnonzero(allp[:, 0] > 93)  # every front point has > 93 % accuracy; brute force on those
    brute = {nb201.keys[top[i]] for i in _brute_nondominated(allp[top])}
    assert set(keys) == brute and len(keys) >= 5


def test_crowded_order_puts_infeasible_last_and_front_first():
    pts = np.array([[1.0, 0.0], [0.0, 1.0], [0.4, 0.4], [0.6, 0.6], [2.0, 2.0]])
    viol = np.array([0, 0, 0, 0, 0.5])
    order = list(crowded_order(pts, viol))
    assert order[-1] == 4 and order[-2] == 2  # dominated by (0.6, 0.6), then the infeasible point
    assert set(order[:3]) == {0, 1, 3}


# -- the runner -----------------------------------------------------------------------------------
def test_runner_hands_scores_and_violation_to_strategies_and_keeps_the_front(nb201):
    obj = make_objective(nb201, objectives=PAIR, constraints=["analog_accuracy>=80"])
    strat = Recorder(nb201.space, seed=3)
    journal = Journal(":memory:")
    res = Runner(nb201.space, nb201, strat, obj, Budget(evaluations=150), journal=journal).run()
    assert all(r.scores is not None and len(r.scores) == 2 for r in strat.told)
    assert any(r.violation > 0 for r in strat.told) and any(r.violation == 0 for r in strat.told)
    for r in strat.told:
        assert r.violation == pytest.approx(obj.violation(r.metrics))
        assert (r.violation == 0) == (r.metrics["analog_accuracy"] >= 80)
    rows = [r for r in journal.trials() if r.counted]
    feas = [r for r in rows if r.metrics["analog_accuracy"] >= 80]
    pts = np.array([[r.metrics["accuracy"], r.metrics["analog_drift_30d"]] for r in feas])
    assert {feas[i].key for i in _brute_nondominated(pts)} == {f["key"] for f in res.front}
    assert res.report["front_size"] == len(res.front) and all(f["feasible"] for f in res.front)
    _, true_pts = table_front(nb201, obj)
    bounds = ([nb201.values(m).min() for m in ("accuracy", "analog_drift_30d")], [nb201.values(m).max() for m in ("accuracy", "analog_drift_30d")])
    assert 0 < res.report["hypervolume"] <= hypervolume(true_pts, *bounds) + 1e-12


def test_single_objective_runs_get_no_scores(nb201):
    strat = Recorder(nb201.space, seed=1)
    res = Runner(nb201.space, nb201, strat, Objective("accuracy"), Budget(evaluations=20)).run()
    assert res.front is None and all(r.scores is None and r.violation == 0 for r in strat.told)


class StaticCostTable:
    """A non-table evaluator that knows a cost before evaluating (like parameters of a network)."""

    def __init__(self, nb201, floor):
        self.nb201, self.floor, self.calls = nb201, floor, 0
        self.metrics = nb201.metrics

    def static_metrics(self, arch):
        return {"cost": float(sum(op != "none" for op in arch)) + self.floor}

    def __call__(self, arch, budget=None, hint=None):
        self.calls += 1
        r = self.nb201(arch)
        return Result(metrics={**r.metrics, **self.static_metrics(arch)}, cost=1.0)


def test_constraints_on_known_costs_reject_before_evaluation(nb201):
    ev = StaticCostTable(nb201, floor=0.0)
    obj = MultiObjective((Objective("accuracy"),), (Constraint("cost", "<=", 4),))
    journal = Journal(":memory:")
    res = Runner(nb201.space, ev, make_strategy("random", nb201.space, seed=0), obj, Budget(evaluations=30), journal=journal).run()
    rows = journal.trials()
    counted = [r for r in rows if r.counted]
    assert res.samples == 30 and all(r.metrics["cost"] <= 4 for r in counted)
    rejected = [r for r in rows if r.status == "failed"]
    assert rejected and all("rejected before evaluation" in r.error for r in rejected)
    assert ev.calls == 30  # rejected proposals were never evaluated


def test_a_constraint_nothing_satisfies_stops_with_a_clear_reason(nb201):
    ev = StaticCostTable(nb201, floor=100.0)
    obj = MultiObjective((Objective("accuracy"),), (Constraint("cost", "<=", 2),))
    res = Runner(
        nb201.space, ev, make_strategy("random", nb201.space, seed=0), obj, Budget(evaluations=30), max_consecutive_failures=50
    ).run()
    assert res.samples == 0 and ev.calls == 0
    assert "the last 50 trials failed" in res.stop_reason and "violates the constraint cost<=2" in res.stop_reason


# -- strategies ----------------------------------------------------------------------------------
def _hv_fraction(name, nb201, seed, n=200, **opts):
    obj = make_objective(nb201, objectives=PAIR)
    journal = Journal(":memory:")
    Runner(nb201.space, nb201, make_strategy(name, nb201.space, seed=seed, **opts), obj, Budget(evaluations=n), journal=journal).run()
    from nasagent.runtime.pareto import hypervolume_trace, objective_bounds

    _, true_pts = table_front(nb201, obj)
    return hypervolume_trace(journal.trials(), obj, [n])[n] / hypervolume(true_pts, *objective_bounds(obj))


def test_nsga2_evolution_beats_random_on_hypervolume(nb201):
    seeds = range(4)
    ours = [_hv_fraction("evolution-nsga2", nb201, s) for s in seeds]
    rand = [_hv_fraction("random", nb201, s) for s in seeds]
    assert np.mean(ours) > np.mean(rand) and min(ours) > 0.99


def test_nsga2_evolution_keeps_spending_budget_after_its_neighbourhood_is_exhausted(nb201):
    """Seed 0 exhausts the one-edit neighbourhood of its converged population near 470 samples; random
    immigrants keep the run going instead of re-proposing evaluated cells until the runner gives up."""
    strat = make_strategy("evolution-nsga2", nb201.space, seed=0)
    journal = Journal(":memory:")
    res = Runner(nb201.space, nb201, strat, make_objective(nb201, objectives=PAIR), Budget(evaluations=500), journal=journal).run()
    assert res.samples == 500 and res.stop_reason == "budget exhausted"
    assert strat.immigrants > 0 and len(journal.trials()) < 550


def test_optuna_nsga2_is_told_every_objective(nb201):
    obj = make_objective(nb201, objectives=PAIR)
    strat = make_strategy("optuna-nsga2", nb201.space, seed=0, n_objectives=2, population_size=10)
    Runner(nb201.space, nb201, strat, obj, Budget(evaluations=30)).run()
    done = [t for t in strat.study.trials if t.values is not None]
    assert len(done) >= 30 and all(len(t.values) == 2 for t in done)
    with pytest.raises(NasagentError, match="built for 3 objective"):
        Runner(nb201.space, nb201, make_strategy("optuna-nsga2", nb201.space, n_objectives=3), obj, Budget(evaluations=3)).run()
    with pytest.raises(NasagentError, match="built for 2 objective"):
        Runner(nb201.space, nb201, make_strategy("optuna-tpe", nb201.space, n_objectives=2), Objective("accuracy"), Budget(evaluations=3)).run()


# -- API and CLI ----------------------------------------------------------------------------------
def test_api_search_and_report_export_the_front(tmp_path, nb201):
    import nasagent.api as api

    out = tmp_path / "run"
    res = api.search("nb201", "evolution-nsga2", budget=60, out=out, objectives=PAIR, constraints=["analog_accuracy>=70"])
    doc = json.loads((out / "front.json").read_text())
    assert doc["size"] == len(res.front) > 0 and (out / "front.csv").exists() and (out / "pareto.png").exists()
    assert {"accuracy", "analog_drift_30d", "analog_accuracy", "feasible"} <= set(doc["front"][0])
    config, again = api.load_run(out)
    assert config.objectives == PAIR and config.constraints == ["analog_accuracy>=70"]
    assert [f["key"] for f in again.front] == [f["key"] for f in res.front]
    res2 = api.resume(out, budget=90)  # resumes with the same objectives, strategy told scores again
    assert res2.samples == 90 and res2.report["front_size"] >= 1


def test_cli_objectives_constraints_and_errors(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    cli = CliRunner()
    out = tmp_path / "g"
    r = cli.invoke(app, ["search", "-b", "nbgraph/cora", "-s", "random", "--budget", "40", "--objective", "valid_perf:max",
                         "--objective", "latency:min", "--constraint", "params<=1.0", "--out", str(out), "-q"])
    assert r.exit_code == 0, r.output  # params are in millions (0.44..3.46 on Cora); about a quarter satisfy <= 1.0
    front = json.loads((out / "front.json").read_text())["front"]
    assert front and all(f["params"] <= 1.0 for f in front)
    r = cli.invoke(app, ["report", str(out)])
    assert r.exit_code == 0 and "front.csv" in r.output
    r = cli.invoke(app, ["search", "-b", "nb201", "--objective", "accuracy", "--objective", "latency:min", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "has no metric 'latency'" in r.output
    r = cli.invoke(app, ["search", "-b", "nb201", "--constraint", "params<=1", "--out", str(tmp_path / "y")])
    assert r.exit_code == 2 and "has no metric 'params'" in r.output
