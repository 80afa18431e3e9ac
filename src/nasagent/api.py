"""The Python API that mirrors the CLI: ``search``, ``resume``, ``compare``, ``load_run``.

A run is described by a ``RunConfig`` (names and options only), stored in the journal so that
``resume(run_dir)`` can rebuild the same space, benchmark and strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasagent.core import Budget, NasagentError, Objective
from nasagent.registry import benchmark_factory, benchmark_family, make_benchmark, make_space, make_strategy, strategy_class
from nasagent.runtime.journal import Journal, claim_run, release_run, run_holder
from nasagent.runtime.runner import Progress, Runner, RunResult

JOURNAL_NAME = "journal.db"
log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    benchmark: str = "nb201"
    strategy: str = "evolution"
    budget: dict = field(default_factory=lambda: {"evaluations": 200})
    seed: int = 0
    space: str | None = None
    metric: str | None = None
    mode: str | None = None
    strategy_options: dict = field(default_factory=dict)
    benchmark_options: dict = field(default_factory=dict)
    workers: int = 1
    executor: str = "inline"
    executor_options: dict = field(default_factory=dict)
    count_repeats: bool = False
    stop_at_optimum: bool = False
    snapshot_every: int = 50  # strategy snapshots every this many tells (and every 30 s)
    # multi-objective / constrained search (nasagent.objectives); empty: the single --metric objective
    objectives: list = field(default_factory=list)  # "NAME:max|min"
    constraints: list = field(default_factory=list)  # "params<=1.5"
    scalarization: str | None = None  # weighted[:w,..] | chebyshev[:w,..] | tunas-abs:target=T0[,beta=B]
    # the user's data files (a --table, a train:FILE.npz) -> sha1 of their content when the run started: a resume
    # on a changed file would mix two datasets in one journal
    data_fingerprints: dict = field(default_factory=dict)

    def make_budget(self) -> Budget:
        return Budget(**{k: v for k, v in self.budget.items() if v is not None})


def _data_files(config: RunConfig) -> list[str]:
    """The user's data files a run reads: a table, a dataset file (folders are not fingerprinted)."""
    out = []
    table = config.benchmark_options.get("table")
    if table:
        out.append(str(table))
    kind, sep, data = config.benchmark.partition(":")
    if sep and kind in ("train", "oneshot", "fewshot") and data:
        out.append(data)
    return [f for f in out if Path(f).is_file()]


def _fingerprint(path: str) -> str:
    import hashlib

    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_data_unchanged(config: RunConfig, run_dir: Path) -> None:
    for path, digest in config.data_fingerprints.items():
        if not Path(path).is_file():
            raise NasagentError(f"the run in {run_dir} read {path}, which is gone; put it back to resume the run")
        if _fingerprint(path) != digest:
            raise NasagentError(f"{path} changed since the run in {run_dir} started; resuming would mix two datasets in "
                                "one journal: restore the file, or start a new run (--out) on the new one")


def _absolute_path(value):
    """An existing file or folder named by a relative path, made absolute; anything else unchanged."""
    if isinstance(value, (str, os.PathLike)) and str(value) and Path(value).exists():
        return str(Path(value).resolve())
    return value


def _absolute_dataset(data):
    """A dataset given by a relative path, made absolute; embedded names (digits, digits16) stay names."""
    from nasagent.evaluation.datasets import EMBEDDED

    return data if data in EMBEDDED else _absolute_path(data)


def _absolute_data(spec: str) -> str:
    """``train:FILE.npz`` (and ``oneshot:``/``fewshot:``) with the dataset's path made absolute."""
    kind, sep, data = spec.partition(":")
    if sep and kind in ("train", "oneshot", "fewshot") and data:
        return f"{kind}:{_absolute_dataset(data)}"
    return spec


def _budget_dict(budget) -> dict:
    if budget is None:
        return {"evaluations": 200}
    if isinstance(budget, (int, np.integer)):
        if budget <= 0:
            raise NasagentError(f"budget must be > 0, got {budget}")
        return {"evaluations": int(budget)}
    if isinstance(budget, Budget):
        return dataclasses.asdict(budget)
    if isinstance(budget, dict):
        Budget(**budget)  # validates
        return dict(budget)
    raise NasagentError(f"budget must be an int (evaluations), a dict or a Budget, got {budget!r}")


def build(config: RunConfig):
    """(space, benchmark, strategy, objective) for a config; every name is checked with a clear error."""
    bench_opts = dict(config.benchmark_options)
    bench = make_benchmark(config.benchmark, **bench_opts)
    space = bench.space
    if config.space is not None and config.space != space.name:
        # a table fixes its space; a space given by name must be the same one
        wanted = make_space(config.space)
        if wanted.name != space.name:
            raise NasagentError(
                f"benchmark {config.benchmark!r} is defined on space {space.name!r}, not {config.space!r}; "
                f"omit --space or use --space {space.name}"
            )
    if config.objectives or config.constraints or config.scalarization:
        from nasagent.objectives import make_objective

        objective = make_objective(bench, config.metric, config.mode, config.objectives, config.constraints, config.scalarization)
    else:
        objective = bench.objective(config.metric, config.mode)
    options = config.strategy_options
    if getattr(objective, "multi", False):
        from nasagent.objectives import strategy_options_for

        options = strategy_options_for(config.strategy, objective, options)
    strategy = make_strategy(config.strategy, space, seed=config.seed, **options)
    return space, bench, strategy, objective


def _executor(config: RunConfig):
    from nasagent.runtime.executors import InlineExecutor, ProcessPoolExecutor

    if config.executor == "inline":
        return InlineExecutor(config.workers)
    if config.executor == "process":
        factory = benchmark_factory(config.benchmark, **config.benchmark_options)
        return ProcessPoolExecutor(config.workers, factory=factory, **config.executor_options)
    if config.executor == "ray":
        try:
            from nasagent.runtime.ray_executor import RayExecutor
        except ImportError as e:
            raise NasagentError(f"the Ray executor is not available ({e}); install it with pip install 'nasagent[ray]'") from None
        factory = benchmark_factory(config.benchmark, **config.benchmark_options)
        try:
            return RayExecutor(config.workers, factory=factory, **config.executor_options)
        except TypeError as e:
            raise NasagentError(f"bad Ray executor option: {e}") from None
    raise NasagentError(f"unknown executor {config.executor!r}; executors: inline, process, ray")


def _run(config: RunConfig, journal: Journal, run_dir: Path | None, progress, plot: bool) -> RunResult:
    if progress is False:  # "no progress reports", as None
        progress = None
    if progress is not None and not callable(progress):
        raise NasagentError(f"progress must be a function of a Progress (or None), got {progress!r}")
    space, bench, strategy, objective = build(config)
    runner = Runner(
        space,
        bench,
        strategy,
        objective,
        config.make_budget(),
        journal=journal,
        executor=_executor(config),
        count_repeats=config.count_repeats,
        stop_at_optimum=config.stop_at_optimum,
        snapshot_every=config.snapshot_every,
        on_progress=progress,
        max_consecutive_failures=1000 if config.constraints else 100,  # rejections by a constraint are cheap
    )
    journal.set_meta("stop_reason", None)  # until this sitting ends normally
    if type(objective) is Objective:  # lets `report` work without the benchmark (a table since deleted or moved)
        opt = runner.optimum
        try:
            journal.set_meta("objective", {"metric": objective.metric, "mode": objective.mode,
                                           "optimum": None if opt is None else [float(opt[0]), sorted(str(k) for k in opt[1])]})
        except (TypeError, ValueError) as e:  # a user benchmark's odd optimum: only the fallback report is lost
            log.warning("could not store the objective for later reports (%s)", e)
    result = runner.run()
    journal.set_meta("stop_reason", result.stop_reason)  # what `nasagent report` says later
    result.run_dir = str(run_dir) if run_dir else None
    if run_dir is not None:
        write_outputs(result, config, run_dir, plot=plot)
    bench.close()
    return result


def make_config(
    benchmark: str = "nb201",
    strategy: str = "evolution",
    budget=None,
    seed: int = 0,
    *,
    space: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    workers: int = 1,
    executor: str = "inline",
    strategy_options: dict | None = None,
    benchmark_options: dict | None = None,
    executor_options: dict | None = None,
    count_repeats: bool = False,
    stop_at_optimum: bool = False,
    snapshot_every: int = 50,
    objectives=None,
    constraints=None,
    scalarization: str | None = None,
) -> RunConfig:
    """A validated RunConfig: every name, option and budget is checked here, with one clear error.

    Paths to files the user named (a table, a dataset) are stored absolute, so that ``report``, ``export`` and
    ``--resume`` work from any directory.
    """
    if "seed" in (strategy_options or {}):
        raise NasagentError("the seed is not a strategy option: set it with --seed (seed= in Python), "
                            f"not --opt seed={strategy_options['seed']}")
    benchmark = _absolute_data(benchmark)
    benchmark_options = {k: _absolute_path(v) if k == "table" else v for k, v in (benchmark_options or {}).items()}
    strategy_options = {k: _absolute_dataset(v) if k == "data" else v for k, v in (strategy_options or {}).items()}
    config = RunConfig(
        benchmark=benchmark,
        strategy=strategy,
        budget=_budget_dict(budget),
        seed=int(seed),
        space=space,
        metric=metric,
        mode=mode,
        strategy_options=dict(strategy_options or {}),
        benchmark_options={k: v for k, v in (benchmark_options or {}).items() if v is not None},
        workers=int(workers),
        executor=executor,
        executor_options=dict(executor_options or {}),
        count_repeats=count_repeats,
        stop_at_optimum=stop_at_optimum,
        snapshot_every=int(snapshot_every),
        objectives=[str(o) for o in objectives or []],
        constraints=[str(c) for c in constraints or []],
        scalarization=scalarization,
    )
    family = benchmark_family(config.benchmark)
    if family is not None and family.takes_space and config.space is not None:
        config.benchmark_options.setdefault("space", config.space)  # e.g. train:digits is built on --space
    if config.workers < 1:
        raise NasagentError(f"workers must be >= 1, got {workers}")
    if config.executor not in ("inline", "process", "ray"):
        raise NasagentError(f"unknown executor {config.executor!r}; executors: inline, process, ray")
    build(config)
    _executor(config)  # checks executor options; starts nothing
    return config


def search(
    benchmark: str = "nb201",
    strategy: str = "evolution",
    budget=None,
    seed: int = 0,
    *,
    space: str | None = None,
    metric: str | None = None,
    mode: str | None = None,
    out: str | Path | None = None,
    workers: int = 1,
    executor: str = "inline",
    strategy_options: dict | None = None,
    benchmark_options: dict | None = None,
    executor_options: dict | None = None,
    count_repeats: bool = False,
    stop_at_optimum: bool = False,
    snapshot_every: int = 50,
    progress=None,
    plot: bool = True,
    overwrite: bool = False,
    objectives=None,
    constraints=None,
    scalarization: str | None = None,
) -> RunResult:
    """Run one search. With ``out`` the run is journaled there (resumable) and ``best.json`` plus
    ``curve.png`` are written; without it the journal lives in memory."""
    config = make_config(
        benchmark, strategy, budget, seed, space=space, metric=metric, mode=mode, workers=workers, executor=executor,
        strategy_options=strategy_options, benchmark_options=benchmark_options, executor_options=executor_options,
        count_repeats=count_repeats, stop_at_optimum=stop_at_optimum, snapshot_every=snapshot_every,
        objectives=objectives, constraints=constraints, scalarization=scalarization,
    )
    if out is None:
        return _run(config, Journal(":memory:"), None, progress, plot=False)
    run_dir = Path(out)
    jpath = run_dir / JOURNAL_NAME
    if jpath.exists():
        if not overwrite:
            raise NasagentError(f"{run_dir} already holds a run; resume it (nasagent search --resume {run_dir}, or "
                                f"nasagent.resume), write to another folder, or replace it (--overwrite, overwrite=True)")
        held = claim_run(jpath)  # never delete a run another process is writing
        if held is not None:
            release_run(held)
        for suffix in ("", "-wal", "-shm"):
            Path(str(jpath) + suffix).unlink(missing_ok=True)
        # everything nasagent wrote for the old run: its supernets and search checkpoints would be picked up as if
        # they were this run's, and its reports would describe another run (the user's own files stay)
        import shutil

        for folder in ("checkpoints", "search", "export"):
            shutil.rmtree(run_dir / folder, ignore_errors=True)
        for name in ("selection.json", "best.json", "config.json", "curve.png", "trials.csv", "front.csv", "front.json",
                     "pareto.png"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    family = benchmark_family(config.benchmark)
    if family is not None and family.run_dir_option:  # e.g. training checkpoints live in the run directory
        config.benchmark_options.setdefault(family.run_dir_option, str((run_dir / "checkpoints").resolve()))
    strategy_dir_option = getattr(strategy_class(config.strategy), "run_dir_option", None)
    if strategy_dir_option:  # e.g. a one-shot strategy's search checkpoints (PARSEC)
        config.strategy_options.setdefault(strategy_dir_option, str((run_dir / "search").resolve()))
    journal = Journal(jpath)
    journal.lock()
    config.data_fingerprints = {f: _fingerprint(f) for f in _data_files(config)}
    journal.set_meta("config", dataclasses.asdict(config))
    (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    try:
        return _run(config, journal, run_dir, progress, plot)
    except NasagentError:
        if not journal.trials():  # refused before its first trial: leave no run behind to be "resumed"
            journal.close()
            for name in (JOURNAL_NAME, JOURNAL_NAME + "-wal", JOURNAL_NAME + "-shm", JOURNAL_NAME + ".lock", "config.json"):
                (run_dir / name).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if nothing else is in it
        raise
    finally:
        journal.close()


def run_directory(path: str | Path) -> Path:
    """The run directory a user named: the directory itself, or the one holding the journal file given."""
    path = Path(path)
    return path.parent if path.is_file() else path


def load_config(run_dir: str | Path) -> tuple[RunConfig, Journal]:
    run_dir = Path(run_dir)
    jpath = run_dir / JOURNAL_NAME if run_dir.is_dir() else run_dir
    journal = Journal(jpath, create=False)
    raw = journal.get_meta("config")
    if not isinstance(raw, dict):
        written_by_minimize = journal.get_meta("minimize") is not None
        journal.close()
        if written_by_minimize:
            raise NasagentError(f"{jpath} is the journal of a minimize(..., journal=) call, not of a search; call minimize "
                                "with the same journal to continue it")
        raise NasagentError(f"{jpath} has no run configuration; it was not written by 'nasagent search'")
    try:
        config = RunConfig(**raw)
    except TypeError as e:
        journal.close()
        raise NasagentError(f"{jpath} has a run configuration this nasagent cannot read ({e})") from None
    if config.objectives and config.mode and config.metric is None:
        config.mode = None  # runs written before --mode was refused with --objective: it was ignored then too
    here = jpath.parent / "checkpoints"  # a moved (or relatively named) run keeps its trained weights
    if "checkpoint_dir" in config.benchmark_options and here.is_dir():
        config.benchmark_options["checkpoint_dir"] = str(here.resolve())
    return config, journal


def resume(run_dir: str | Path, progress=None, budget=None, plot: bool = True, executor_options: dict | None = None) -> RunResult:
    """Continue a run (killed or finished) from its journal; ``budget`` may raise the original budget and
    ``executor_options`` replace some of the executor's (e.g. the Ray ``address`` of a new cluster)."""
    config, journal = load_config(run_dir)
    run_dir = run_directory(run_dir)  # outputs go next to the journal, even when the file itself was named
    try:
        journal.lock()  # before anything is written: a run in use by another process is left as it is
        _check_data_unchanged(config, run_dir)
        if budget is not None:
            config.budget = _grown_budget(config.budget, budget, run_dir)
        if executor_options:
            config.executor_options = {**config.executor_options, **executor_options}
        if budget is not None or executor_options:
            journal.set_meta("config", dataclasses.asdict(config))
            if (run_dir / "config.json").exists():  # the readable copy follows the journal's
                (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
        return _run(config, journal, run_dir, progress, plot)
    finally:
        journal.close()


def _grown_budget(old: dict, new, run_dir: Path) -> dict:
    """The budget a resume runs to: the limits given replace the stored ones, the others are kept, and no
    limit may shrink (a smaller budget than the run was started with would be ignored silently)."""
    given = {k: v for k, v in _budget_dict(new).items() if v is not None}
    for key, value in given.items():
        before = old.get(key)
        if before is not None and value < before:
            raise NasagentError(f"a resumed run's budget may only grow: {run_dir} has {key}={before:g}, got {value:g}; "
                                f"give {key} >= {before:g} or leave it out")
    return {**old, **given}


def load_run(run_dir: str | Path) -> tuple[RunConfig, RunResult]:
    """Rebuild a run's result from its journal without running anything (``nasagent report``)."""
    config, journal = load_config(run_dir)
    run_dir = run_directory(run_dir)
    try:
        try:
            space, bench, strategy, objective = build(config)
            runner = Runner(space, bench, strategy, objective, config.make_budget(), journal=journal)
        except NasagentError as e:
            runner = _journal_only_runner(config, journal, e)
        rows = journal.trials()
        for r in rows:
            if r.status in ("ok", "failed"):
                runner.cost += float(r.cost or 0.0)
            runner.n_failed += r.status == "failed"
            runner.n_cached += r.status == "cached"
        for r in sorted((r for r in rows if r.counted), key=lambda r: r.sample):
            runner.samples = r.sample
            runner._record_sample(r.key, r.result(), r.sample, r.number)
        runner._elapsed_before = journal.previous_elapsed()
        runner._t0 = time.monotonic()
        result = runner.result()
        result.elapsed = runner._elapsed_before
        running = sum(r.status == "running" for r in rows)
        holder = run_holder(journal.path)
        if holder is not None:
            result.stop_reason = f"still running (in use by {holder})"
        elif running:
            result.stop_reason = f"{running} trial(s) were running when the run stopped (resume it)"
        else:
            stored = journal.get_meta("stop_reason")
            if stored is None:  # killed or interrupted (or written before runs kept their reason)
                done = runner.budget.exhausted(runner.samples, runner.cost, result.elapsed)
                stored = "budget exhausted" if done else "stopped before its end (resume it to continue)"
            result.stop_reason = stored
        result.run_dir = str(run_dir)
        return config, result
    finally:
        journal.close()


def _journal_only_runner(config: RunConfig, journal: Journal, why: NasagentError) -> Runner:
    """A runner that reads the journal without the benchmark, for a report on a run whose table or data is gone:
    the objective and optimum stored when the run started are all it needs."""
    stored = journal.get_meta("objective")
    if not isinstance(stored, dict):  # a multi-objective run, or one written before the objective was stored
        raise why
    log.warning("%s; reporting from the journal alone", why)
    optimum = stored.get("optimum")
    optimum = None if optimum is None else (float(optimum[0]), frozenset(optimum[1]))
    objective = Objective(stored["metric"], stored["mode"])
    return Runner(None, None, None, objective, config.make_budget(), journal=journal, optimum=optimum)


def export_trials_csv(run_dir: str | Path, path: str | Path) -> int:
    """Every trial of a run's journal as CSV: one row per trial, one column per metric."""
    import csv

    _, journal = load_config(run_dir)
    try:
        rows = journal.trials()
    finally:
        journal.close()
    metric_names = list(dict.fromkeys(k for r in rows for k in r.metrics))
    fields = ["number", "status", "sample", "arch", "key", "score", "cost", "source", "error", *metric_names]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow([r.number, r.status, r.sample, r.arch, r.key, r.score, r.cost, r.source, r.error, *(r.metrics.get(m) for m in metric_names)])
    return len(rows)


def write_outputs(result: RunResult, config: RunConfig, run_dir: Path, plot: bool = True) -> None:
    from nasagent.report.plots import plot_run

    best = result.best
    doc = {
        "benchmark": config.benchmark,
        "strategy": config.strategy,
        "seed": config.seed,
        "objective": str(result.objective),
        "best": None
        if best is None
        else {"arch": best.arch, "key": best.key, "value": result.best_value, "metrics": best.metrics, "sample": best.sample, "trial": best.number},
        "report": result.report,
        "samples": result.samples,
        "cost": result.cost,
        "elapsed_seconds": round(result.elapsed, 3),
        "failed": result.n_failed,
        "answered_from_journal": result.n_cached,
        "optimum": result.optimum,
        "samples_to_optimum": result.samples_to_optimum,
        "stop_reason": result.stop_reason,
    }
    (run_dir / "best.json").write_text(json.dumps(doc, indent=2, default=float))
    if plot:
        title = f"{config.strategy} on {config.benchmark} (seed {config.seed})"
        plot_run(result.trace, result.objective, run_dir / "curve.png", title=title, optimum=result.optimum)
    if result.front is not None:  # multi-objective: front.csv, front.json, pareto.png
        _write_front(result, config, run_dir, plot)


def _write_front(result: RunResult, config: RunConfig, run_dir: Path, plot: bool) -> None:
    from nasagent.runtime.pareto import write_front

    write_front(result.front, run_dir, result.report.get("hypervolume"))
    if plot:
        from nasagent.report.pareto import plot_front

        journal = Journal(run_dir / JOURNAL_NAME, create=False)
        try:
            rows = journal.trials("counted=1")
        finally:
            journal.close()
        title = f"{config.strategy} on {config.benchmark} (seed {config.seed}): {len(result.front)} on the front"
        plot_front(rows, result.objective, result.front, run_dir / "pareto.png", title=title)


# ---------------------------------------------------------------------------------------------------------
# compare: several strategies x seeds
# ---------------------------------------------------------------------------------------------------------
def _compare_one(args) -> dict:
    benchmark, strategy, seed, budget, options, bench_opts, metric, stop_at_optimum = args
    res = search(
        benchmark,
        strategy,
        budget=budget,
        seed=seed,
        metric=metric,
        strategy_options=options,
        benchmark_options=bench_opts,
        stop_at_optimum=stop_at_optimum,
        plot=False,
    )
    return {
        "strategy": strategy,
        "seed": seed,
        "samples_to_optimum": res.samples_to_optimum,
        "samples": res.samples,
        "trace": res.trace,
        "optimum": res.optimum,
        "best_value": res.best_value,
        "stop_reason": res.stop_reason,
    }


@dataclass
class Comparison:
    benchmark: str
    objective: str
    optimum: float | None
    budget: int
    runs: list[dict]
    at: tuple[int, ...]

    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["label"] for r in self.runs))

    def summary(self) -> list[dict]:
        """Per method: samples to optimum (mean, median, se, censored) and mean regret at each budget in ``at``.

        A run that never found the optimum counts as the budget: with ``censored`` > 0 the mean and median are
        lower bounds (``nasagent compare`` prints them with a ≥)."""
        from nasagent.report.plots import regret_matrix

        out = []
        for m in self.methods():
            rs = [r for r in self.runs if r["label"] == m]
            row: dict = {"method": m, "n_seeds": len(rs)}
            if self.optimum is not None:
                sto = np.array([r["samples_to_optimum"] or self.budget for r in rs], dtype=float)
                row["censored"] = int(sum(r["samples_to_optimum"] is None for r in rs))
                row["samples_to_optimum_mean"] = float(sto.mean())
                row["samples_to_optimum_median"] = float(np.median(sto))
                row["samples_to_optimum_se"] = float(sto.std(ddof=1) / np.sqrt(len(sto))) if len(sto) > 1 else 0.0
                reg = regret_matrix([r["trace"] for r in rs], self.optimum, max(self.at))
                for n in self.at:
                    col = reg[:, n - 1]
                    row[f"regret_at_{n}"] = float(np.nanmean(col))
                    row[f"regret_at_{n}_se"] = float(np.nanstd(col, ddof=1) / np.sqrt(np.isfinite(col).sum())) if len(col) > 1 else 0.0
            else:
                best = np.array([r["best_value"] for r in rs], dtype=float)
                row["best_value_mean"] = float(np.nanmean(best))
                row["best_value_se"] = float(np.nanstd(best, ddof=1) / np.sqrt(len(best))) if len(best) > 1 else 0.0
            out.append(row)
        return out


def compare(
    benchmark: str = "nb201",
    strategies=("random", "evolution", "local-search"),
    seeds: int | list[int] = 10,
    budget: int | None = None,
    at: tuple[int, ...] = (100, 200),
    metric: str | None = None,
    strategy_options: dict[str, dict] | None = None,
    benchmark_options: dict | None = None,
    jobs: int = 1,
    stop_at_optimum: bool = True,
    progress=None,
) -> Comparison:
    """Run every strategy on every seed with the same budget and summarise.

    ``strategies`` are registry names, optionally labelled ``label=name`` so one strategy can appear with
    several option sets (``strategy_options`` is keyed by label). ``budget`` defaults to the size of an
    enumerable space (so samples-to-optimum is never censored) and otherwise to ``max(at)``. Runs stop
    once they find the global optimum, and their regret stays 0 from there.
    """
    if isinstance(seeds, int) and seeds < 1:
        raise NasagentError(f"compare needs at least one seed, got seeds={seeds}")
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seeds or any(int(s) < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise NasagentError(f"compare seeds must be distinct non-negative integers, got {seeds}")
    at = tuple(int(a) for a in at)
    if not at or min(at) < 1:
        raise NasagentError(f"regret is reported at sample counts >= 1; got {list(at)}")
    if budget is not None and int(budget) < 1:
        raise NasagentError(f"the budget must be at least 1 sample per run, got {budget}")
    labelled = []
    for s in strategies:
        label, _, name = s.partition("=") if "=" in s else (s, "", s)
        labelled.append((label.strip(), name.strip()))
    given = [label for label, _ in labelled]
    if not labelled:
        raise NasagentError("compare needs at least one strategy")
    repeated = sorted({lab for lab in given if given.count(lab) > 1})
    if repeated:
        raise NasagentError(f"strategy label {repeated[0]!r} appears twice; label repeats as label=name "
                            f"(e.g. {repeated[0]}-b={repeated[0]}) to compare one strategy with other options")
    stray = sorted(set(strategy_options or {}) - set(given))
    if stray:
        raise NasagentError(f"options are given for {stray[0]!r}, which is not among the strategies "
                            f"({', '.join(given)}); options are keyed by label")
    if any("seed" in o for o in (strategy_options or {}).values()):
        raise NasagentError("the seed is not a strategy option: compare runs every strategy on the same --seeds")
    for _, name in labelled:
        strategy_class(name)  # an unknown name fails now, not after the other strategies' runs
    bench = make_benchmark(benchmark, **(benchmark_options or {}))
    objective = bench.objective(metric)
    opt = bench.optimum(objective)
    for label, name in labelled:  # a bad option or a strategy the space cannot take fails now, not halfway
        make_strategy(name, bench.space, seed=seeds[0], **(strategy_options or {}).get(label, {}))
    if budget is None:
        size = bench.space.size()
        budget = int(size) if size is not None and size <= 100_000 else max(at)
    if max(at) > budget:
        raise NasagentError(f"regret is asked at {max(at)} samples but the budget is {budget}")
    tasks = [
        (benchmark, name, seed, budget, (strategy_options or {}).get(label, {}), benchmark_options or {}, metric, stop_at_optimum)
        for label, name in labelled
        for seed in seeds
    ]
    labels = [label for label, _ in labelled for _ in seeds]
    runs = []
    if progress:
        progress(0, len(tasks))  # everything is checked: the runs start now
    if jobs > 1:
        import concurrent.futures as cf
        import multiprocessing as mp

        with cf.ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")) as pool:
            for label, r in zip(labels, pool.map(_compare_one, tasks, chunksize=max(1, len(tasks) // (4 * jobs))), strict=True):
                r["label"] = label
                runs.append(r)
                if progress:
                    progress(len(runs), len(tasks))
    else:
        for label, t in zip(labels, tasks, strict=True):
            r = _compare_one(t)
            r["label"] = label
            runs.append(r)
            if progress:
                progress(len(runs), len(tasks))
    return Comparison(benchmark, str(objective), None if opt is None else opt[0], budget, runs, tuple(at))


__all__ = ["search", "resume", "compare", "load_run", "RunConfig", "RunResult", "Progress", "Comparison", "Objective"]
