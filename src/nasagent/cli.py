"""``nasagent`` command line: list, search, compare, report.

Every user error ends in one red line and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nasagent.core import NasagentError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="nasagent: neural architecture search and black-box optimisation.")
# soft_wrap: a long line (an architecture, a path) stays one line when piped into a log, for grep
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def _fail(msg: str, code: int = 2):
    # escaped: a message's own brackets are text, not markup (pip install 'nasagent[ray]' lost its [ray])
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _guard(fn, interrupted: str = "interrupted; everything finished so far is in the journal (continue with "
                                   "nasagent search --resume RUN_DIR)"):
    """Run a command body, turning NasagentError (and Ctrl-C) into one clear line."""
    try:
        return fn()
    except NasagentError as e:
        _fail(str(e))
    except OSError as e:  # a path the user gave that cannot be written or read
        _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except KeyboardInterrupt:
        _fail(interrupted() if callable(interrupted) else interrupted, 130)


def parse_options(items: list[str] | None) -> dict:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, true/false, lists), else strings."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NasagentError(f"option {item!r} must look like key=value")
        prefix, dot, name = key.rpartition(".")  # "label.key" (compare): a label keeps its dashes (local-search)
        key = prefix + dot + name.replace("-", "_")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


# ----------------------------------------------------------------------------------------------------------
@app.command("list")
def list_cmd(
    what: Annotated[str, typer.Argument(help="spaces | benchmarks | strategies | all")] = "all",
    benchmark: Annotated[str | None, typer.Option("--benchmark", "-b", help="show this benchmark's metrics")] = None,
    table: Annotated[Path | None, typer.Option(help="table file for nb201-csv / nb101-tfrecord")] = None,
):
    """What nasagent can search: spaces, benchmarks (and their metrics), strategies."""

    def body():
        from nasagent.registry import BENCHMARKS, SPACES, STRATEGIES, make_benchmark

        if benchmark:
            b = make_benchmark(benchmark, **({"table": str(table)} if table else {}))
            t = Table(title=f"metrics of {b.name} (space {b.space.name})")
            for c in ("metric", "direction", "description"):
                t.add_column(c)
            for m in b.metrics.values():
                label = m.name + (" (default)" if m.name == b.default_metric else "")
                t.add_row(label, m.mode, m.description + (f"; report {m.report}" if m.report else ""))
            console.print(t)
            if b.notes:
                console.print(b.notes)
            return
        if what not in ("all", "spaces", "benchmarks", "strategies"):
            raise NasagentError(f"cannot list {what!r}; choose spaces, benchmarks, strategies or all")
        if what in ("all", "spaces"):
            t = Table(title="spaces")
            t.add_column("name")
            t.add_column("description")
            for n, e in SPACES.items():
                t.add_row(n, e.description)
            t.add_row("box-<dim>", "unit box for black-box optimisation (functions bring their own box)")
            console.print(t)
        if what in ("all", "benchmarks"):
            t = Table(title="benchmarks (nasagent list -b NAME shows the metrics)")
            t.add_column("name")
            t.add_column("description")
            for f in BENCHMARKS:
                t.add_row(f.name, f.description)
            console.print(t)
        if what in ("all", "strategies"):
            t = Table(title="strategies (options: --opt key=value)")
            t.add_column("name")
            t.add_column("description")
            for n, e in STRATEGIES.items():
                t.add_row(n, e.description)
            console.print(t)

    _guard(body)


def _progress_display(total: int | None):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(
        TextColumn("[bold]search"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err_console,
        transient=False,
        disable=not err_console.is_terminal and False,
    )
    bar = _SearchBar(prog, prog.add_task("", total=total))
    last = [0.0]

    def update(p):
        now = time.monotonic()
        if now - last[0] < 0.1 and (total is None or p.samples < total) and p.last_status != "resumed":
            return
        last[0] = now
        bar.show(p.samples, p.best_value)

    return bar, update


class _LazyBar:
    """A rich Progress drawn at its first update, so that an error before any progress is one line with no
    empty bar above it, and stopped on leaving only if it was drawn."""

    def __init__(self, prog):
        self.prog = prog

    def update(self, task, **fields) -> None:
        if not self.prog.live.is_started:
            self.prog.start()
        self.prog.update(task, **fields)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.prog.live.is_started:
            self.prog.stop()
        return False


class _SearchBar(_LazyBar):
    """A search's bar: it ends on the run's final count and best value (the last throttled update may be
    older) once ``result`` is set."""

    def __init__(self, prog, task):
        super().__init__(prog)
        self.task, self.result = task, None

    def show(self, samples, best_value) -> None:
        best = "-" if best_value is None else f"{best_value:.4g}"
        self.update(self.task, completed=samples, description=f"best {best}")

    def __exit__(self, *exc):
        if self.result is not None and self.prog.live.is_started:
            self.show(self.result.samples, self.result.best_value)
        return super().__exit__(*exc)


def _exit_if_nothing_succeeded(result) -> None:
    """A search in which every trial failed exits 1, so that scripts notice (its journal is kept)."""
    if result.best is None:
        raise typer.Exit(1)


def _print_result(result, config_name: str) -> None:
    best = result.best
    if best is None:
        console.print(f"[yellow]no successful trial[/] ({escape(result.stop_reason)}; {result.n_failed} failed)")
        return
    if result.best_value is None:  # a constrained search in which no sample met the constraints
        console.print(f"[yellow]no sample met the constraints[/]; the least violating one (sample {best.sample}):")
    else:
        console.print(f"[bold green]best architecture[/] ({result.objective} = {result.best_value:.6g}, sample {best.sample}):")
    console.print(best.arch, highlight=False, soft_wrap=True, markup=False)
    extra = ", ".join(f"{k} = {v:.6g}" for k, v in result.report.items())
    if extra:
        console.print(f"reported: {extra}")
    line = f"{result.samples} samples, {result.n_cached} re-proposals answered from the journal, {result.n_failed} failed; {result.stop_reason}"
    console.print(line, markup=False)
    if result.optimum is not None:
        sto = result.samples_to_optimum
        console.print(
            f"global optimum {result.optimum:.6g}: "
            + (f"found at sample {sto}" if sto else "not found" + ("" if result.best_value is None else
                                                                   f" (regret {abs(result.optimum - result.best_value):.4g})"))
        )


@app.command()
def search(
    benchmark: Annotated[str, typer.Option("--benchmark", "-b", help="what evaluates candidates (nasagent list benchmarks)")] = "nb201",
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="search strategy (nasagent list strategies)")] = "evolution",
    budget: Annotated[int | None, typer.Option(help="unique architectures to evaluate (default 200)")] = None,
    budget_cost: Annotated[float | None, typer.Option(help="stop when summed evaluation cost reaches this")] = None,
    budget_seconds: Annotated[float | None, typer.Option(help="stop after this much wall time (s)")] = None,
    seed: Annotated[int, typer.Option(help="seed of everything random in the run")] = 0,
    space: Annotated[str | None, typer.Option(help="space (tables fix their own; checked for consistency)")] = None,
    data: Annotated[str | None, typer.Option(help="dataset (digits, digits16, FILE.npz, FOLDER): trains candidates (train:DATA) and feeds one-shot strategies")] = None,
    metric: Annotated[str | None, typer.Option(help="metric to optimise (default: the benchmark's)")] = None,
    mode: Annotated[str | None, typer.Option(help="max or min (default: the metric's own direction)")] = None,
    objective: Annotated[list[str] | None, typer.Option("--objective", help="NAME:max|min (repeatable; two or more: multi-objective search)")] = None,
    constraint: Annotated[list[str] | None, typer.Option("--constraint", help="e.g. 'params<=1.5' (repeatable)")] = None,
    scalarization: Annotated[str | None, typer.Option(help="weighted[:w1,w2] | chebyshev[:w1,w2] | tunas-abs:target=T0[,beta=-0.1]")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (journal, best.json, curve.png)")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="continue the run in this directory")] = None,
    workers: Annotated[int, typer.Option(help="trials in flight at once")] = 1,
    executor: Annotated[str, typer.Option(help="inline | process | ray")] = "inline",
    address: Annotated[str | None, typer.Option(help="ray: join this cluster (HOST:PORT from 'ray start --head'); default: a local one")] = None,
    cpus_per_trial: Annotated[float | None, typer.Option(help="ray: CPUs reserved per trial (default 1)")] = None,
    gpus_per_trial: Annotated[float | None, typer.Option(help="ray: GPUs reserved per trial (default 0)")] = None,
    trial_timeout: Annotated[float | None, typer.Option(help="ray: cancel a trial running longer than this (s)")] = None,
    max_retries: Annotated[int | None, typer.Option(help="ray: re-runs of a trial whose worker died (default 2)")] = None,
    opt: Annotated[list[str] | None, typer.Option("--opt", help="strategy option key=value (repeatable)")] = None,
    bopt: Annotated[list[str] | None, typer.Option("--bopt", help="benchmark option key=value, e.g. epochs=5 (repeatable)")] = None,
    max_memory: Annotated[float | None, typer.Option(help="train:DATA: MiB a training step may need (estimated, systems.memory); larger networks fail untrained")] = None,
    table: Annotated[Path | None, typer.Option(help="table file for nb201-csv / nb101-tfrecord")] = None,
    arch_column: Annotated[str | None, typer.Option(help="nb201-csv: column of architecture strings")] = None,
    cost_column: Annotated[str | None, typer.Option(help="nb201-csv: column of training costs")] = None,
    count_repeats: Annotated[bool, typer.Option(help="count re-proposed architectures toward the budget")] = False,
    stop_at_optimum: Annotated[bool, typer.Option(help="stop when a table's global optimum is found")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing run in --out")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
):
    """Search for the best architecture; prints it and writes best.json, the journal and curve.png."""

    def body():
        nonlocal benchmark  # --data may turn the default benchmark into train:DATA
        import nasagent.api as api

        ray_opts = {"address": address, "cpus_per_trial": cpus_per_trial, "gpus_per_trial": gpus_per_trial,
                    "trial_timeout": trial_timeout, "max_retries": max_retries}
        ray_opts = {k: v for k, v in ray_opts.items() if v is not None}
        if resume is not None:
            config, journal = api.load_config(resume)
            journal.close()
            given = {"--benchmark": (benchmark, "nb201", config.benchmark), "--strategy": (strategy, "evolution", config.strategy),
                     "--seed": (seed, 0, config.seed), "--workers": (workers, 1, config.workers),
                     "--executor": (executor, "inline", config.executor), "--space": (space, None, config.space),
                     "--metric": (metric, None, config.metric), "--mode": (mode, None, config.mode)}
            for flag, (value, default, kept) in given.items():
                if value != default and value != kept:
                    raise NasagentError(f"{flag} cannot change on --resume: the run in {resume} uses {kept!r}; "
                                        f"start a new run (--out) to search with {value!r}")
            fixed = {"--opt": opt, "--bopt": bopt, "--data": data, "--out": out, "--table": table, "--objective": objective,
                     "--constraint": constraint, "--scalarization": scalarization, "--max-memory": max_memory,
                     "--arch-column": arch_column, "--cost-column": cost_column, "--count-repeats": count_repeats,
                     "--stop-at-optimum": stop_at_optimum, "--overwrite": overwrite}
            extra = [flag for flag, value in fixed.items() if value]
            if extra:
                raise NasagentError(f"{extra[0]} cannot be given with --resume: a resumed run keeps the options it was "
                                    f"started with (only the budget may grow); start a new run (--out) to change them")
            _ray_only(ray_opts, config.executor)
            new_budget = None
            if any(v is not None for v in (budget, budget_cost, budget_seconds)):
                new_budget = {"evaluations": budget, "cost": budget_cost, "seconds": budget_seconds}
            prog, update = _progress_display(budget or config.budget.get("evaluations"))
            with prog if not quiet else _null():
                result = api.resume(resume, progress=None if quiet else update, budget=new_budget, executor_options=ray_opts)
                prog.result = result
            _print_result(result, config.strategy)
            console.print(f"run directory: {result.run_dir}")
            _exit_if_nothing_succeeded(result)
            return
        _ray_only(ray_opts, executor)
        bench_spec, sopts = _with_data(benchmark, strategy, data, parse_options(opt))
        bopts = {"table": str(table) if table else None, "arch_column": arch_column, "cost_column": cost_column}
        bopts.update(parse_options(bopt))
        if max_memory is not None:
            bopts["max_memory_mb"] = max_memory
        bud = {"evaluations": budget, "cost": budget_cost, "seconds": budget_seconds}
        if all(v is None for v in bud.values()):
            bud["evaluations"] = 200
        api.make_config(  # validate names, options and budget before drawing a progress bar
            bench_spec, strategy, {k: v for k, v in bud.items() if v is not None}, seed, space=space, metric=metric,
            mode=mode, workers=workers, executor=executor, strategy_options=sopts, benchmark_options=bopts,
            executor_options=ray_opts,
            objectives=objective, constraints=constraint, scalarization=scalarization,
        )
        run_dir = out or Path("runs") / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', bench_spec)}-{strategy}-s{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
        where[0] = run_dir
        prog, update = _progress_display(bud["evaluations"])
        with prog if not quiet else _null():
            result = api.search(
                bench_spec,
                strategy,
                budget={k: v for k, v in bud.items() if v is not None},
                seed=seed,
                space=space,
                metric=metric,
                mode=mode,
                out=run_dir,
                workers=workers,
                executor=executor,
                strategy_options=sopts,
                benchmark_options=bopts,
                executor_options=ray_opts,
                count_repeats=count_repeats,
                stop_at_optimum=stop_at_optimum,
                progress=None if quiet else update,
                overwrite=overwrite,
                objectives=objective,
                constraints=constraint,
                scalarization=scalarization,
            )
            prog.result = result
        _print_result(result, strategy)
        extra = ", front.csv, front.json, pareto.png" if result.front is not None else ""
        console.print(f"run directory: {run_dir} (best.json, journal.db, curve.png{extra})")
        _exit_if_nothing_succeeded(result)

    where: list = [resume]

    def interrupted() -> str:
        if where[0] is None:
            return "interrupted before the search started; nothing was written"
        return f"interrupted; everything finished so far is in the journal (continue with nasagent search --resume {where[0]})"

    _guard(body, interrupted)


def _with_data(benchmark: str, strategy: str, data: str | None, sopts: dict) -> tuple[str, dict]:
    """--data: candidates train from scratch on it (unless --benchmark names another evaluator than the default)
    and a strategy that trains its own weights (``data`` option, e.g. PARSEC) searches on it."""
    if data is None:
        return benchmark, sopts
    import inspect

    from nasagent.registry import strategy_class

    if benchmark == "nb201":
        benchmark = f"train:{data}"
    if "data" in inspect.signature(strategy_class(strategy).__init__).parameters:
        sopts = {"data": data, **sopts}
    return benchmark, sopts


def _ray_only(ray_opts: dict, executor: str) -> None:
    if ray_opts and executor != "ray":
        flags = ", ".join("--" + k.replace("_", "-") for k in ray_opts)
        verb = "applies" if len(ray_opts) == 1 else "apply"
        raise NasagentError(f"{flags} only {verb} to the Ray executor; add --executor ray (this run uses {executor!r})")


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@app.command()
def compare(
    benchmark: Annotated[str, typer.Option("--benchmark", "-b")] = "nb201",
    strategies: Annotated[str, typer.Option(help="comma-separated strategies; label=name to repeat one with other options")] = "random,evolution,local-search",
    seeds: Annotated[int, typer.Option(help="seeds 0..N-1 for every strategy")] = 10,
    budget: Annotated[int | None, typer.Option(help="samples per run (default: the space size for enumerable tables)")] = None,
    at: Annotated[str | None, typer.Option(help="report regret at these sample counts (default 100,200, those within --budget)")] = None,
    metric: Annotated[str | None, typer.Option()] = None,
    opt: Annotated[list[str] | None, typer.Option("--opt", help="LABEL.key=value strategy option (repeatable)")] = None,
    table: Annotated[Path | None, typer.Option(help="table file for nb201-csv / nb101-tfrecord")] = None,
    jobs: Annotated[int, typer.Option(help="processes running seeds in parallel")] = 1,
    band: Annotated[str, typer.Option(help="regret band: ci95 (mean, 95 % CI) or iqr (median, interquartile range)")] = "ci95",
    out: Annotated[Path, typer.Option(help="directory for compare.json, compare.csv and regret.png")] = Path("runs/compare"),
    overwrite: Annotated[bool, typer.Option(help="replace an existing comparison in --out")] = False,
):
    """Several strategies x seeds on one benchmark: samples to the global optimum and regret curves."""

    def body():
        import csv

        from nasagent.api import compare as run_compare
        from nasagent.report.plots import plot_regret_curves, regret_matrix
        from rich.progress import Progress

        if band not in ("ci95", "iqr"):
            raise NasagentError(f"--band must be ci95 or iqr, got {band!r}")
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        if at is None:  # the defaults that fit the budget (a budget below 100: regret at its end)
            at_list = tuple(a for a in (100, 200) if budget is None or a <= budget) or (budget,)
        else:
            try:
                at_list = tuple(int(a) for a in at.split(",") if a.strip())
            except ValueError:
                raise NasagentError(f"--at takes comma-separated sample counts (e.g. 100,200), got {at!r}") from None
        per: dict[str, dict] = {}
        for k, v in parse_options(opt).items():
            label, dot, key = k.partition(".")
            if not dot:
                raise NasagentError(f"compare options are LABEL.key=value, got {k!r}")
            per.setdefault(label, {})[key] = v
        if (out / "compare.json").exists() and not overwrite:
            raise NasagentError(f"{out} already holds a comparison; choose another --out, or --overwrite to replace it")
        with _LazyBar(Progress(console=err_console)) as bar:
            task = bar.prog.add_task("runs", total=len(names) * seeds)
            comp = run_compare(
                benchmark,
                names,
                seeds=seeds,
                budget=budget,
                at=at_list,
                metric=metric,
                strategy_options=per,
                benchmark_options={"table": str(table)} if table else None,
                jobs=jobs,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        rows = comp.summary()
        t = Table(title=f"{benchmark}: {len(names)} strategies x {seeds} seeds, budget {comp.budget} ({comp.objective})")
        cols = [c for c in rows[0] if not c.endswith("_se")]
        for c in cols:
            t.add_column(c.replace("_", " "), overflow="fold")  # spaces let a narrow terminal wrap a header, not cut it
        def cell(r, c):
            text = f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c])
            if c.startswith("samples_to_optimum") and r.get("censored"):
                text = "≥" + text  # runs that never found the optimum count as the budget: a lower bound
            return text

        for r in rows:
            t.add_row(*[cell(r, c) for c in cols])
        console.print(t)
        out.mkdir(parents=True, exist_ok=True)
        (out / "compare.json").write_text(json.dumps({"benchmark": benchmark, "objective": comp.objective, "budget": comp.budget, "optimum": comp.optimum, "rows": rows}, indent=2))
        with open(out / "compare.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        if comp.optimum is not None:
            n = comp.budget
            curves = {m: regret_matrix([r["trace"] for r in comp.runs if r["label"] == m], comp.optimum, n) for m in comp.methods()}
            label = "median regret, interquartile band" if band == "iqr" else "mean regret, 95 % band"
            plot_regret_curves(curves, out / "regret.png", title=f"{benchmark}: {label}", band=band)
        console.print(f"written: {out}/compare.json, compare.csv" + (", regret.png" if comp.optimum is not None else ""))

    _guard(body, "interrupted; compare keeps no journal, so its finished runs are lost (rerun with fewer --seeds or a "
                 "smaller --budget, or run nasagent search per strategy to keep each run)")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by nasagent search, or a minimize journal")],
    csv_out: Annotated[bool, typer.Option("--csv", help="also write trials.csv (every trial of the journal)")] = False,
):
    """Summarise a run from its journal and redraw its plot (also the journal of a minimize(..., journal=) call)."""

    def body():
        from nasagent.api import export_trials_csv, load_run, run_directory, write_outputs

        if run_dir.is_file() and _report_minimize(run_dir):
            return
        run = run_directory(run_dir)
        config, result = load_run(run_dir)
        if csv_out:
            n = export_trials_csv(run_dir, run / "trials.csv")
            console.print(f"written: {run}/trials.csv ({n} trials)")
        limits = ", ".join(f"{v:g} {k}" for k, v in config.budget.items() if v is not None)
        console.print(f"[bold]{config.strategy}[/] on [bold]{config.benchmark}[/] (seed {config.seed}), budget {limits}")
        _print_result(result, config.strategy)
        if result.elapsed:
            console.print(f"wall time {result.elapsed:.1f} s")
        if result.stop_reason.startswith("still running"):
            return  # its own process writes best.json and curve.png when it ends
        write_outputs(result, config, run)
        console.print(f"written: {run}/best.json, curve.png" + (", front.csv, front.json, pareto.png" if result.front is not None else ""))

    _guard(body)


def _report_minimize(path: Path) -> bool:
    """``report`` on a journal written by ``minimize(..., journal=)``: its best point and a best-so-far plot beside
    it (``<name>_curve.png``). False when the file is not such a journal."""
    import numpy as np

    from nasagent.core import Objective
    from nasagent.report.plots import plot_run
    from nasagent.strategies.lamcts import read_minimize_journal

    r = read_minimize_journal(path)
    if r is None:
        return False
    console.print(f"[bold]minimize[/] journal {escape(str(path))}: {r.nfev} evaluations, {r.nfail} failed "
                  f"(seed {r.settings.get('seed')}, {len(r.settings.get('bounds', []))} dimensions)")
    if r.fun is None:
        console.print("[yellow]no successful evaluation[/]")
    else:
        x = escape(np.array2string(r.x, precision=6, threshold=20))
        console.print(f"[bold green]best value[/] {r.fun:.6g} at x = {x}", highlight=False)
    best = np.minimum.accumulate(r.history_y) if len(r.history_y) else []
    trace = [(i + 1, float(v), float(b)) for i, (v, b) in enumerate(zip(r.history_y, best, strict=True))]
    out = path.with_name(path.stem + "_curve.png")
    plot_run(trace, Objective("value", "min"), out, title=f"minimize: {path.name}", xlabel="successful evaluations")
    console.print(f"written: {out}")
    return True


@app.command("export")
def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by nasagent search")],
    out: Annotated[Path | None, typer.Option(help="output folder (default RUN_DIR/export)")] = None,
    num_classes: Annotated[int | None, typer.Option(help="classes of the exported network (default: the run's data, else 10)")] = None,
    input_shape: Annotated[str | None, typer.Option(help="C,H,W of the input images (default: the run's data, else 3,32,32)")] = None,
):
    """Write the run's best architecture as a torch.export program (model.pt2) plus its architecture string."""

    def body():
        from nasagent.evaluation.export import export_run

        shape = None
        if input_shape:
            try:
                shape = tuple(int(v) for v in input_shape.split(","))
            except ValueError:
                raise NasagentError(f"--input-shape must look like 3,32,32, got {input_shape!r}") from None
        paths = export_run(run_dir, out=out, num_classes=num_classes, input_shape=shape)
        weights = "trained weights" if paths["trained"] else "untrained (freshly initialised) weights"
        console.print(f"exported the best architecture with {weights}: {paths['model']}, {paths['arch']}, {paths['info']}")

    _guard(body)


@app.command("select")
def select_cmd(
    run_dir: Annotated[Path, typer.Argument(help="a run directory written by nasagent search (oneshot:/fewshot: runs)")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="how many of the best-scored architectures to train")] = 10,
    benchmark: Annotated[str | None, typer.Option("--benchmark", "-b", help="training benchmark (default: train:DATA of the run)")] = None,
    bopt: Annotated[list[str] | None, typer.Option("--bopt", help="training option key=value, e.g. epochs=10 (repeatable)")] = None,
    seed: Annotated[int, typer.Option(help="training seed of the selection runs")] = 100,
    metric: Annotated[str, typer.Option(help="metric to select on (higher is better)")] = "val_accuracy",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
):
    """Train a weight-sharing run's top-K architectures from scratch and name the best by validation accuracy."""

    def body():
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        from nasagent.evaluation.selection import select_top_k

        if top_k < 1:
            raise NasagentError(f"--top-k must be >= 1, got {top_k}")
        prog = Progress("[bold]select", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err_console, disable=quiet)
        with _LazyBar(prog) as bar:
            task = prog.add_task("", total=top_k)
            out = select_top_k(run_dir, top_k, benchmark=benchmark, benchmark_options=parse_options(bopt), seed=seed,
                               metric=metric, progress=lambda done, total: bar.update(task, completed=done, total=total))
        table = Table(title=f"top-{len(out['candidates'])} of {run_dir}, trained from scratch ({out['benchmark']}, seed {out['seed']})")
        table.add_column("architecture", overflow="fold")
        for col in ("supernet score", out["metric"], "seconds"):
            table.add_column(col, justify="right")
        for r in out["candidates"]:
            value = "failed" if r[out["metric"]] is None else f"{r[out['metric']]:.2f}"
            table.add_row(r["arch"], f"{r['supernet_score']:.2f}", value, f"{r['cost'] or 0:.1f}")
        console.print(table)
        console.print(f"selected: {out['best']}  (written to {run_dir / 'selection.json'})")

    _guard(body)


def _mount_tunas() -> None:
    """``nasagent tunas search|sample-random|profile-latency|analyze`` (evaluation/tunas_cli.py)."""
    from nasagent.evaluation.tunas_cli import tunas_app

    app.add_typer(tunas_app, name="tunas")


_mount_tunas()


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
