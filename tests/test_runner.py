import math
import os

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.registry import make_strategy
from nasagent.runtime.executors import InlineExecutor, ProcessPoolExecutor
from nasagent.runtime.journal import Journal
from nasagent.runtime.runner import Runner
from nasagent.spaces.nb201 import NB201Space
from nasagent.strategies.base import Strategy

S = NB201Space()


class Repeater(Strategy):
    """Proposes from a fixed list, cycling: re-proposals exercise the journal cache."""

    def __init__(self, space, seed=0, archs=()):
        super().__init__(space, seed)
        self.archs = list(archs)
        self.i = 0
        self.told = []

    def _propose(self):
        a = self.archs[self.i % len(self.archs)]
        self.i += 1
        return a

    def _observe(self, trial, result):
        self.told.append((trial.number, result.status, result.score))


def table_eval(nb201):
    def ev(arch, budget=None, hint=None):
        return nb201(arch)

    return ev


def test_budget_counts_unique_architectures(nb201, rng):
    archs = [S.sample(rng) for _ in range(5)]
    strat = Repeater(S, archs=archs)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=5)).run()
    assert res.samples == 5
    assert len(strat.told) == 5
    # 12 evaluations of 5 keys with re-proposals: only the 5 unique ones count
    strat = Repeater(S, archs=archs)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=5)).run()
    strat2 = Repeater(S, archs=archs * 3)
    j = Journal(":memory:")
    r2 = Runner(S, nb201, strat2, Objective("accuracy"), Budget(evaluations=5), journal=j).run()
    assert r2.samples == 5 and r2.n_cached == 0
    strat3 = Repeater(S, archs=archs[:2])
    j3 = Journal(":memory:")
    r3 = Runner(S, nb201, strat3, Objective("accuracy"), Budget(evaluations=2), journal=j3, max_idle_asks=50).run()
    assert r3.samples == 2
    strat4 = Repeater(S, archs=archs[:2] + archs[:2] + [archs[2]])
    j4 = Journal(":memory:")
    r4 = Runner(S, nb201, strat4, Objective("accuracy"), Budget(evaluations=3), journal=j4).run()
    rows = j4.trials()
    assert [r.status for r in rows] == ["ok", "ok", "cached", "cached", "ok"]
    assert r4.samples == 3 and r4.n_cached == 2
    assert rows[2].source == rows[0].number and rows[2].score == rows[0].score
    # a flag counts re-proposals instead
    strat5 = Repeater(S, archs=archs[:2] + archs[:2] + [archs[2]])
    r5 = Runner(S, nb201, strat5, Objective("accuracy"), Budget(evaluations=3), count_repeats=True).run()
    assert r5.samples == 3 and len(strat5.told) == 3


def test_endless_repeats_stop_with_a_reason(nb201, rng):
    strat = Repeater(S, archs=[S.sample(rng)])
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=10), max_idle_asks=20).run()
    assert res.samples == 1 and "already evaluated" in res.stop_reason


def test_nan_and_exceptions_fail_the_trial_and_the_search_goes_on(rng):
    archs = [S.sample(rng) for _ in range(6)]
    bad = {S.key(archs[1]): "nan", S.key(archs[3]): "raise", S.key(archs[4]): "inf"}

    def ev(arch, budget=None, hint=None):
        what = bad.get(S.key(arch))
        if what == "raise":
            raise RuntimeError("boom")
        v = {"nan": math.nan, "inf": math.inf}.get(what, 1.0 + len(bad))
        return Result(metrics={"accuracy": v})

    strat = Repeater(S, archs=archs)
    j = Journal(":memory:")
    res = Runner(S, ev, strat, Objective("accuracy"), Budget(evaluations=3), journal=j).run()
    rows = j.trials()
    assert [r.status for r in rows] == ["ok", "failed", "ok", "failed", "failed", "ok"]
    assert "not a finite number" in rows[1].error and "RuntimeError: boom" in rows[3].error
    assert res.samples == 3 and res.n_failed == 3
    assert [s for _, s, _ in strat.told] == ["ok", "failed", "ok", "failed", "failed", "ok"]


def test_missing_metric_is_a_clear_failure(rng):
    strat = Repeater(S, archs=[S.sample(rng)])
    j = Journal(":memory:")
    Runner(S, lambda a, b=None, h=None: Result(metrics={"acc": 1.0}), strat, Objective("accuracy"), Budget(evaluations=1), journal=j, max_consecutive_failures=3).run()
    assert "returned no 'accuracy' metric (it returned: acc)" in j.trials()[0].error


def test_consecutive_failures_stop_the_run(rng):
    strat = make_strategy("random", S, seed=0)
    res = Runner(S, lambda a, b=None, h=None: Result(metrics={"accuracy": math.nan}), strat, Objective("accuracy"), Budget(evaluations=10), max_consecutive_failures=7).run()
    assert res.samples == 0 and res.n_failed == 7 and "last 7 trials failed" in res.stop_reason


def test_minimised_objective_and_optimum_tracking():
    from nasagent.benchmarks.functions import FunctionBenchmark

    bench = FunctionBenchmark("ackley", 3)
    strat = make_strategy("random", bench.space, seed=0)
    res = Runner(bench.space, bench, strat, bench.objective(), Budget(evaluations=50)).run()
    assert res.objective.mode == "min"
    values = [v for _, v, _ in res.trace]
    assert res.best_value == pytest.approx(min(values))
    bests = [b for _, _, b in res.trace]
    assert all(b1 >= b2 for b1, b2 in zip(bests, bests[1:]))  # best-so-far never worsens
    assert res.regret_at(50) == pytest.approx(min(values))


def test_parallel_inline_asks_before_tells(nb201):
    strat = make_strategy("evolution", S, seed=0)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=100), executor=InlineExecutor(workers=8)).run()
    assert res.samples == 100


def _slow_nb201():
    from nasagent.benchmarks.nb201 import nb201_benchmark

    return nb201_benchmark()


def _dying_factory():
    return _Dying()


class _Dying:
    """Kills its worker process on one architecture, to test the pool's recovery."""

    def __init__(self):
        from nasagent.benchmarks.nb201 import nb201_benchmark

        self.b = nb201_benchmark()

    def __call__(self, arch, budget=None, hint=None):
        if arch[0] == "none" and arch[1] == "none":
            os._exit(3)
        return self.b(arch)


def test_process_pool_matches_inline_results(nb201):
    j = Journal(":memory:")
    strat = make_strategy("random", S, seed=4)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=40), journal=j, executor=ProcessPoolExecutor(2, factory=_slow_nb201)).run()
    assert res.samples == 40
    for r in j.trials():
        assert r.metrics["accuracy"] == nb201.value(r.key, "accuracy")


def test_dead_worker_fails_its_trial_and_the_search_goes_on():
    j = Journal(":memory:")
    strat = make_strategy("random", S, seed=1)
    res = Runner(S, _slow_nb201(), strat, Objective("accuracy"), Budget(evaluations=60), journal=j, executor=ProcessPoolExecutor(2, factory=_dying_factory)).run()
    failed = [r for r in j.trials() if r.status == "failed"]
    assert res.samples == 60
    assert failed and all("died" in r.error or "broke" in r.error for r in failed)


def test_a_pool_found_broken_at_submit_is_replaced_and_its_old_trials_fail(nb201):
    """A worker can die after wait() collected the last results: submit then meets a broken pool (CI saw it)."""
    import concurrent.futures as cf

    from nasagent.core import Trial

    ex = ProcessPoolExecutor(1, factory=_slow_nb201)
    ex.start(nb201)
    try:
        arch = S.sample(np.random.default_rng(0))
        old = cf.Future()
        old.set_exception(cf.process.BrokenProcessPool("a worker died"))
        ex.futures[old] = (Trial(0, arch), ex.generation)  # a trial of the pool that broke

        class Broken:
            def submit(self, *a, **k):
                raise cf.process.BrokenProcessPool("a worker died")

            def shutdown(self, **k):
                pass

        real, ex.pool = ex.pool, Broken()
        real.shutdown(wait=True)
        ex.submit(Trial(1, arch))
        assert isinstance(ex.pool, cf.ProcessPoolExecutor) and ex.generation == 1
        results = {}
        while ex.futures:
            results.update({t.number: r for t, r in ex.wait()})
        assert results[0].status == "failed" and "died" in results[0].error
        assert results[1].status == "ok" and results[1].metrics["accuracy"] == nb201.value(S.key(arch), "accuracy")
        assert ex.generation == 1  # the old pool's failure did not throw away the fresh pool
    finally:
        ex.shutdown()


class _Exiting:
    """Calls sys.exit on one architecture: the pool must not carry that into the search process."""

    def __init__(self):
        from nasagent.benchmarks.nb201 import nb201_benchmark

        self.b = nb201_benchmark()

    def __call__(self, arch, budget=None, hint=None):
        if arch[0] == "none":
            raise SystemExit(3)
        return self.b(arch)


def _failing_factory():
    raise RuntimeError("no table here")


def test_sys_exit_in_a_worker_fails_the_trial_and_a_worker_that_cannot_build_stops_at_once():
    j = Journal(":memory:")
    res = Runner(S, _slow_nb201(), make_strategy("random", S, seed=2), Objective("accuracy"), Budget(evaluations=30),
                 journal=j, executor=ProcessPoolExecutor(2, factory=_Exiting)).run()
    failed = [r for r in j.trials() if r.status == "failed"]
    assert res.samples == 30 and failed and all("sys.exit(3)" in r.error for r in failed)
    with pytest.raises(NasagentError, match="could not build the evaluator.*no table here"):
        Runner(S, _slow_nb201(), make_strategy("random", S, seed=2), Objective("accuracy"), Budget(evaluations=5),
               executor=ProcessPoolExecutor(1, factory=_failing_factory)).run()


def test_a_strategy_that_repeats_a_running_proposal_is_not_asked_forever(nb201, rng):
    a, b = S.sample(rng), S.sample(rng)
    strat = Repeater(S, archs=[a])  # always the one architecture, which is in flight after the first ask
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=5), executor=InlineExecutor(workers=3),
                 max_idle_asks=30).run()
    assert res.samples == 1 and "already evaluated" in res.stop_reason
    # counting repeats, twins waiting on a running trial hold budget: never more samples than the budget
    for workers in (1, 2, 4):
        strat = Repeater(S, archs=[a, a, a, b])
        res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=2), executor=InlineExecutor(workers),
                     count_repeats=True).run()
        assert res.samples == 2 and [t[0] for t in res.trace] == [1, 2], workers


def test_budget_validation():
    with pytest.raises(NasagentError, match="must be > 0"):
        Budget(evaluations=0)
    with pytest.raises(NasagentError, match="at least one"):
        Budget()
    assert Budget(cost=3).exhausted(0, 3.0, 0)
    assert Budget(seconds=1).exhausted(0, 0, 1.5)


def test_cost_budget(nb201):
    strat = make_strategy("random", S, seed=0)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(cost=25)).run()
    assert res.cost == 25 and res.samples == 25  # table without times: 1 per sample


def test_journal_orders_events_and_group_commits_only_free_answers(tmp_path):
    path = tmp_path / "j.db"
    j = Journal(path)
    reader = Journal(path, create=False)  # a second connection sees only what is durable
    ok = Result({"accuracy": 0.5}, cost=1.0, score=0.5)
    j.record_ask(0, "k0", "a0", None, {}, started=True)
    j.record_answered(1, "k0", "a0", None, {}, "cached", Result({"accuracy": 0.5}, 0.0, score=0.5), False, None, source=0)
    assert [r.number for r in reader.trials()] == [0]  # the free answer waits for the next durable write
    j.record_tell(0, "ok", ok, True, 1)
    assert [(r.number, r.status) for r in reader.trials()] == [(0, "ok"), (1, "cached")]
    assert [(kind, n) for _, kind, n in reader.events_after(0)] == [("ask", 0), ("ask", 1), ("tell", 1), ("tell", 0)]
    assert reader.trial(0).attempts == 1 and reader.trial(1).source == 0
    j.record_snapshot({"strategy": {}})
    assert reader.latest_snapshot()[0] == 4  # the snapshot sits after the four events
    j.close()
    reader.close()
    again = Journal(path, create=False)
    again.record_ask(2, "k2", "a2", None, {})
    assert again.events_after(4) == [(5, "ask", 2)]  # numbering continues across sessions
