"""The search loop: ask -> evaluate (through an executor) -> tell -> journal -> progress.

Budgets count *unique valid* architectures: a proposal whose key was already evaluated is answered from
the journal without spending budget (``count_repeats=True`` counts it instead), and one whose key is being
evaluated right now waits for that evaluation. Failed trials (an evaluator error, a NaN objective, a cell
missing from a table) are journaled but do not count as samples; they do count toward cost and time.

Resume: the runner restores the latest strategy snapshot, replays the journaled ask/tell events after it,
and re-issues trials that were running when the process died. With one trial in flight a seeded resumed
run ends exactly like an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nasagent.core import Budget, NasagentError, Objective, Result, SpaceExhausted, Trial
from nasagent.runtime.executors import Executor, InlineExecutor
from nasagent.runtime.journal import Journal, TrialRow

log = logging.getLogger("nasagent")


@dataclass
class Progress:
    """What a progress display needs after each finished trial (and once when a resumed run starts,
    with ``last_status`` "resumed", so a bar starts at the journal's count)."""

    samples: int
    cost: float
    elapsed: float
    best_value: float | None
    best_arch: str | None
    budget: Budget
    last_status: str


@dataclass
class RunResult:
    best: TrialRow | None
    objective: Objective
    samples: int
    cost: float
    elapsed: float
    stop_reason: str
    #: one entry per counted sample, in completion order: (sample, value, best value so far)
    trace: list[tuple[int, float | None, float | None]] = field(default_factory=list)
    optimum: float | None = None
    samples_to_optimum: int | None = None
    n_failed: int = 0
    n_cached: int = 0
    run_dir: str | None = None
    report: dict = field(default_factory=dict)  # e.g. the test metric of the best validation architecture
    front: list[dict] | None = None  # multi-objective runs: the Pareto front of the samples (runtime/pareto.py)

    @property
    def best_value(self) -> float | None:
        """The best sample's objective value; None when no sample met the constraints."""
        if self.best is None:
            return None
        feasible = getattr(self.objective, "feasible", None)
        if feasible is not None and not feasible(self.best.metrics):
            return None
        return self.objective.value(self.best.metrics)

    def regret_at(self, n: int) -> float | None:
        """Optimum minus best value among the first ``n`` samples (absolute, >= 0); None if unknown."""
        if self.optimum is None:
            return None
        best = None
        for s, _, b in self.trace:
            if s > n:
                break
            best = b
        if best is None:
            return None
        return abs(self.optimum - best)


class Runner:
    def __init__(
        self,
        space,
        evaluator,
        strategy,
        objective: Objective,
        budget: Budget,
        journal: Journal | None = None,
        executor: Executor | None = None,
        count_repeats: bool = False,
        stop_at_optimum: bool = False,
        snapshot_every: int = 50,
        snapshot_seconds: float = 30.0,
        max_idle_asks: int = 10_000,
        max_consecutive_failures: int = 100,
        on_progress: Callable[[Progress], None] | None = None,
        optimum: tuple[float, frozenset[str]] | None = None,
    ):
        self.space = space
        self.evaluator = evaluator
        self.strategy = strategy
        self.objective = objective
        self.budget = budget
        self.journal = journal or Journal(":memory:")
        self.executor = executor or InlineExecutor()
        self.count_repeats = count_repeats
        self.stop_at_optimum = stop_at_optimum
        self.snapshot_every = snapshot_every
        self.snapshot_seconds = snapshot_seconds
        self.max_idle_asks = max_idle_asks
        self.max_consecutive_failures = max_consecutive_failures
        self.on_progress = on_progress
        if optimum is None and hasattr(objective, "optimum_of"):  # constrained / multi-objective (nasagent.objectives)
            optimum = objective.optimum_of(evaluator)
        elif optimum is None and hasattr(evaluator, "optimum"):
            optimum = evaluator.optimum(objective)
        self.optimum = optimum

        self.cache: dict[str, tuple[int, Result]] = {}  # key -> (trial number, result) of finished evaluations
        self.in_flight: dict[int, Trial] = {}  # number -> trial being evaluated
        self.flight_keys: dict[str, int] = {}  # key -> number of the trial evaluating it
        self.followers: dict[int, list[Trial]] = {}  # number -> later proposals of the same key
        self.samples = 0
        self.cost = 0.0
        self.n_failed = 0
        self.n_cached = 0
        self.best: tuple[float, int] | None = None  # (score, number)
        self._best_value: float | None = None  # the objective value of that sample (what a trace reports)
        self.trace: list[tuple[int, float | None, float | None]] = []
        self.samples_to_optimum: int | None = None
        self._tells_since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._idle = 0
        self._twins_in_row = 0  # proposals in a row that matched a running trial
        self._consecutive_failures = 0
        self._stop_reason: str | None = None
        self._exhausted = False
        self._t0 = time.monotonic()
        self._elapsed_before = 0.0
        self._best_arch: tuple[int | None, str | None] = (None, None)  # (number, arch string) shown in progress

    # -- public --------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        self.journal.lock()
        self.journal.start_session()
        self._elapsed_before = self.journal.previous_elapsed()
        self._t0 = time.monotonic()
        self.executor.on_retry = lambda trial: self.journal.record_start(trial.number)  # counts attempts
        self.executor.start(self.evaluator)
        finished = False
        try:
            pending = self._restore()
            if self.samples and self.on_progress is not None:
                self._progress("resumed")  # a resumed run's bar starts where the journal left off
            for trial in pending:
                self._dispatch(trial, journal_ask=False)
            self._loop()
            finished = True
        finally:
            self.executor.shutdown()
            try:
                if finished:
                    self._snapshot()
                else:
                    # interrupted (Ctrl-C, an error): the strategy may be halfway through an ask or a tell, so no
                    # snapshot of it; a resume replays the journal from the last whole one. Only the time is kept.
                    self.journal.update_session(self._session_elapsed())
            except Exception as e:  # noqa: BLE001 - never hide the error that is already propagating
                if finished:
                    raise
                log.warning("could not record the end of this sitting (%s); the journaled trials are kept", e)
        return self.result()

    def result(self) -> RunResult:
        best_row = self.journal.trial(self.best[1]) if self.best else None
        report = {}
        if best_row is not None and hasattr(self.evaluator, "metrics"):
            meta = self.evaluator.metrics.get(self.objective.metric)
            if meta is not None and meta.report and meta.report in best_row.metrics:
                report[meta.report] = best_row.metrics[meta.report]
        return RunResult(
            best=best_row,
            objective=self.objective,
            samples=self.samples,
            cost=self.cost,
            elapsed=self.elapsed,
            stop_reason=self._stop_reason or "budget exhausted",
            trace=list(self.trace),
            optimum=None if self.optimum is None else self.optimum[0],
            samples_to_optimum=self.samples_to_optimum,
            n_failed=self.n_failed,
            n_cached=self.n_cached,
            report=report,
            front=self._front(report),
        )

    def _front(self, report: dict) -> list[dict] | None:
        if not getattr(self.objective, "multi", False):
            return None
        from nasagent.runtime.pareto import run_front

        front, hv = run_front(self.journal.trials("counted=1"), self.objective)
        report["front_size"] = len(front)
        if hv is not None:
            report["hypervolume"] = hv
        return front

    @property
    def elapsed(self) -> float:
        return self._elapsed_before + self._session_elapsed()

    def _session_elapsed(self) -> float:
        return time.monotonic() - self._t0

    # -- main loop -----------------------------------------------------------------------------------
    def _budget_done(self) -> bool:
        return self.budget.exhausted(self.samples, self.cost, self.elapsed)

    def _may_submit(self) -> bool:
        if self._stop_reason or self._exhausted:
            return False
        promised = len(self.in_flight)
        if self.count_repeats:  # each waiting twin will be counted too
            promised += sum(len(f) for f in self.followers.values())
        if self.budget.evaluations is not None and self.samples + promised >= self.budget.evaluations:
            return False
        return not self._budget_done()

    def _loop(self) -> None:
        while True:
            self._twins_in_row = 0
            # a strategy that keeps proposing what is running would be asked forever: after as many twins in a
            # row as there are slots, wait for a result instead
            while (len(self.in_flight) < self.executor.capacity and self._twins_in_row < self.executor.capacity
                   and self._may_submit()):
                try:
                    trial = self.strategy.ask()
                except SpaceExhausted as e:
                    self._exhausted = True
                    self._stop_reason = f"search space exhausted: {e}"
                    break
                self._dispatch(trial, journal_ask=True)
            if not self.in_flight:
                if self._stop_reason is None and not self._budget_done() and not self._exhausted:
                    continue  # only cached answers so far; ask again
                break
            for trial, result in self.executor.wait():
                self._finish(trial, result)
            if self._budget_done() and self._stop_reason is None:
                self._stop_reason = "budget exhausted"

    def _dispatch(self, trial: Trial, journal_ask: bool) -> None:
        """Answer a proposal from the cache, attach it to an identical running trial, or submit it.

        ``journal_ask`` is False for trials re-issued on resume: their rows are already in the journal. A new
        proposal's row is written once its fate is known, in a single statement (see Journal).
        """
        key = self.space.key(trial.arch)
        ask = (key, self.space.format(trial.arch), trial.hint, trial.info) if journal_ask else None
        hit = self.cache.get(key)
        if hit is not None:
            source, result = hit
            counted = self.count_repeats and result.ok
            self._tell(trial, _free_copy(result), "cached", counted, source, key, ask)
            self._idle += 1
            if self._idle >= self.max_idle_asks:
                self._stop_reason = (
                    f"the strategy proposed {self._idle} architectures in a row that were already evaluated; "
                    "stopping (the space may be nearly exhausted for this strategy)"
                )
            return
        leader = self.flight_keys.get(key)
        if leader is not None:
            if ask is not None:
                self.journal.record_ask(trial.number, *ask)
            self.followers.setdefault(leader, []).append(trial)
            self._twins_in_row += 1
            return
        rejected = self._reject(trial)
        if rejected is not None:  # a constraint on a metric known before evaluation
            self.cache[key] = (trial.number, rejected)
            self._tell(trial, rejected, "failed", False, None, key, ask)
            return
        self._idle = 0
        self._twins_in_row = 0
        self.in_flight[trial.number] = trial
        self.flight_keys[key] = trial.number
        if ask is not None:
            self.journal.record_ask(trial.number, *ask, started=True)
        else:
            self.journal.record_start(trial.number)
        self.executor.submit(trial)

    def _finish(self, trial: Trial, result: Result) -> None:
        key = self.space.key(trial.arch)
        self.in_flight.pop(trial.number, None)
        self.flight_keys.pop(key, None)
        result = self._score(result)
        self.cost += float(result.cost or 0.0)
        self.cache[key] = (trial.number, result)
        self._tell(trial, result, "ok" if result.ok else "failed", result.ok, None, key)
        for f in self.followers.pop(trial.number, []):
            counted = self.count_repeats and result.ok
            self._tell(f, _free_copy(result), "cached", counted, trial.number, key)

    def _score(self, result: Result) -> Result:
        if result.status != "ok":
            return result
        score = self.objective.score(result.metrics)
        if score is None:
            raw = result.metrics.get(self.objective.metric)
            why = (
                f"objective {self.objective.metric!r} is {raw!r} (not a finite number)"
                if self.objective.metric in result.metrics
                else f"the evaluator returned no {self.objective.metric!r} metric (it returned: {', '.join(result.metrics) or 'nothing'})"
            )
            return dataclasses.replace(result, status="failed", error=why, score=None)
        return dataclasses.replace(result, score=score)

    def _reject(self, trial: Trial) -> Result | None:
        check, static = getattr(self.objective, "reject", None), getattr(self.evaluator, "static_metrics", None)
        if check is None or static is None:
            return None
        why = check(static(trial.arch))
        return None if why is None else Result.failed(why)

    def _complete(self, result: Result) -> Result:
        """Per-objective values and constraint violation for multi-objective / constrained objectives."""
        scores = getattr(self.objective, "scores", None)
        if scores is None or not result.ok:
            return result
        return dataclasses.replace(result, scores=scores(result.metrics), violation=self.objective.violation(result.metrics) or 0.0)

    def _tell(
        self, trial: Trial, result: Result, status: str, counted: bool, source: int | None, key: str, ask: tuple | None = None
    ) -> None:
        """Count, journal and pass on one answer; ``ask`` is the proposal's row when it was never written."""
        result = self._complete(result)
        sample = None
        if counted:
            self.samples += 1
            sample = self.samples
        if status == "failed":
            self.n_failed += 1
            self._consecutive_failures += 1
            if self._consecutive_failures >= self.max_consecutive_failures and self._stop_reason is None:
                self._stop_reason = f"the last {self._consecutive_failures} trials failed; last error: {result.error}"
        elif status == "cached":
            self.n_cached += 1
        else:
            self._consecutive_failures = 0
        if ask is None:
            self.journal.record_tell(trial.number, status, result, counted, sample, source)
        else:
            self.journal.record_answered(trial.number, *ask, status, result, counted, sample, source)
        if counted:
            self._record_sample(key, result, sample, trial.number)
        self.strategy.tell(trial, result)
        self._tells_since_snapshot += 1
        if self._tells_since_snapshot >= self.snapshot_every or time.monotonic() - self._last_snapshot >= self.snapshot_seconds:
            self._snapshot()
        if self.on_progress is not None and status != "cached":
            self._progress(status)

    def _record_sample(self, key: str, result: Result, sample: int, number: int | None = None) -> None:
        value = self.objective.value(result.metrics)
        if self.best is None or result.score > self.best[0]:
            self.best = (result.score, number)
            feasible = getattr(self.objective, "feasible", None)
            # no best-so-far until a sample meets the constraints (feasible ones always outscore the others)
            self._best_value = self._reported(result.score, value) if feasible is None or feasible(result.metrics) else None
        self.trace.append((sample, value, self._best_value))
        if self.optimum is not None and self.samples_to_optimum is None:
            opt_value, opt_keys = self.optimum
            hit = key in opt_keys if opt_keys else (value is not None and math.isclose(value, opt_value, abs_tol=1e-12))
            if hit:
                self.samples_to_optimum = sample
                if self.stop_at_optimum:
                    self._stop_reason = f"global optimum found at sample {sample}"

    def _reported(self, score: float, value: float | None) -> float:
        """The best-so-far figure of a trace: the best sample's objective value, as ``RunResult.best_value`` (a
        constrained score carries a penalty that is no metric value); the score itself where there is no single
        value (a scalarised multi-objective)."""
        if value is not None and not getattr(self.objective, "multi", False):
            return value
        return -score if self.objective.mode == "min" else score

    def _progress(self, status: str) -> None:
        best_arch = None
        best_value = None
        if self.best is not None:
            best_value = self._best_value
            if self._best_arch[0] != self.best[1]:  # read the journal only when the best changes
                row = self.journal.trial(self.best[1])
                self._best_arch = (self.best[1], row.arch if row else None)
            best_arch = self._best_arch[1]
        self.on_progress(Progress(self.samples, self.cost, self.elapsed, best_value, best_arch, self.budget, status))

    def _snapshot(self) -> None:
        self.journal.update_session(self._session_elapsed(), durable=False)  # committed with the snapshot
        self.journal.record_snapshot({"strategy": self.strategy.state_dict()})
        self._tells_since_snapshot = 0
        self._last_snapshot = time.monotonic()

    # -- resume --------------------------------------------------------------------------------------
    def _restore(self) -> list[Trial]:
        """Rebuild runner and strategy state from the journal; return the trials to re-issue."""
        rows = self.journal.trials()
        if not rows:
            return []
        by_number = {r.number: r for r in rows}
        for r in rows:  # runner state from finished rows
            if r.status in ("ok", "failed"):
                res = r.result()
                self.cache[r.key] = (r.number, res)
                self.cost += float(r.cost or 0.0)
            if r.status == "failed":
                self.n_failed += 1
            if r.status == "cached":
                self.n_cached += 1
        for r in sorted((r for r in rows if r.counted), key=lambda r: r.sample):
            self.samples = max(self.samples, r.sample)
            self._record_sample(r.key, r.result(), r.sample, r.number)

        snap = self.journal.latest_snapshot()
        start_seq = 0
        if snap is not None:
            start_seq, state = snap
            self.strategy.load_state_dict(state["strategy"])
        trials: dict[int, Trial] = {}
        warned = False
        for _, kind, number in self.journal.events_after(start_seq):
            row = by_number[number]
            if kind == "ask":
                t = self.strategy.ask()
                if t.number != number or self.space.key(t.arch) != row.key:
                    if not warned:
                        log.warning(
                            "strategy %s did not re-propose journaled trial %d on replay; continuing with the journaled trials",
                            type(self.strategy).__name__,
                            number,
                        )
                        warned = True
                    t = self._row_trial(row)
                trials[number] = t
            elif kind == "tell" and row.status != "running":
                t = trials.pop(number, None) or self._row_trial(row)
                self.strategy.tell(t, self._complete(row.result()))
        # never hand out a number the journal already holds, even if replay diverged
        self.strategy._next_number = max(self.strategy._next_number, max(by_number) + 1)
        pending = [r for r in rows if r.status == "running"]
        return [trials.get(r.number) or self._row_trial(r) for r in pending]

    def _row_trial(self, row: TrialRow) -> Trial:
        return Trial(row.number, self.space.parse(row.arch), row.hint, row.info)


def _free_copy(result: Result) -> Result:
    """The answer to a re-proposal: the same result, at no cost."""
    return Result(dict(result.metrics), 0.0, result.status, result.error, result.score, result.scores)
