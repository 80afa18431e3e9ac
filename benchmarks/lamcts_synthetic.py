"""LA-MCTS against black-box baselines on the shifted synthetic functions (issue 5, thesis Figs. 5.6-5.8).

Methods (same seeds, one run, one cache): LA-MCTS with TuRBO-1 / GP-EI BO / CMA-ES / COBYLA inside the selected region,
TuRBO-1 alone, CMA-ES, Optuna TPE, nevergrad NGOpt, random, and the brief's other baselines: differential
evolution (nevergrad ``DE``), dual annealing (scipy; the thesis finds it best on Rosenbrock) and plain GP-EI
Bayesian optimisation over the whole box (``bo``, botorch), and LaNAS (``lanas``: its fixed linear-partition tree on the
box, uniform draws inside the chosen leaf). Every method gets the same number of evaluations.
Metrics per (task, method): best value found (mean +- se over seeds; minimised, optimum 0) and
``overhead_ms_per_sample``: CPU milliseconds the optimiser itself spends per sample (ask + tell, without the
function evaluation), measured with one thread. Claims use the 2-standard-error rule (``beats``).

The defaults are the issue's 20-D scale (500 evaluations, 5 seeds). The 100-D part (1,000 evaluations, 3 seeds,
batch 10 allowed) goes to its own file::

    python benchmarks/lamcts_synthetic.py --tasks ackley-100,rosenbrock-100 --seeds 3 --budget 1000 --batch 10 \
        --name lamcts_synthetic_100d --methods lamcts-turbo,lamcts-turbo-reuse,lamcts-bo,lamcts-cmaes,lamcts-cobyla,turbo,\
cmaes,optuna-tpe,ngopt,random,de,dual-annealing,lanas

``--budget``, ``--seeds``, ``--tasks``, ``--methods`` and ``--batch`` set the scale; ``--workers 2`` runs two at a time and the results file records
what was run. Each (method, task, seed) is cached under benchmarks/cache/lamcts/. Writes
benchmarks/results/<name>.json, <name>.png (best-so-far curves: median with the interquartile band) and
<name>_cdf.png (the empirical CDF over seeds of the final best value).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.benchmarks.functions import FUNCTIONS
from nasagent.core import Result
from nasagent.registry import make_benchmark, make_strategy
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, mean_se, write_results
from nasagent.strategies.lamcts import PRESETS

METHODS: dict[str, tuple[str, dict]] = {
    "lamcts-turbo": ("lamcts", {"solver": "turbo", "preset": "synthetic"}),
    # not the thesis: a 20-point initial design, and TuRBO starts from the region's samples plus 5 new in-region
    # points instead of 30 (for budgets of a few hundred, where 40 + 30 initial points are most of the budget)
    "lamcts-turbo-reuse": ("lamcts", {"solver": "turbo", "cp": 1.0, "leaf_size": 20, "n_init": 20,
                                      "reuse_region_data": True, "local_n_init": 5}),
    "lamcts-bo": ("lamcts", {"solver": "bo", "preset": "synthetic"}),
    "lamcts-cmaes": ("lamcts", {"solver": "cmaes", "preset": "synthetic"}),
    # not the thesis: COBYLA (scipy) as the local solver, started at the region's best point
    "lamcts-cobyla": ("lamcts", {"solver": "cobyla", "preset": "synthetic"}),
    # not the thesis: the box's centre as the first initial point and COBYLA's first step a sixth of the box
    # (nevergrad's default step, the one NGOpt's COBYLA takes); "-spread" keeps the region-spread step
    "lamcts-cobyla-centre": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "init": "centre+lhs",
                                        "cobyla_rhobeg": 1 / 6}),
    "lamcts-cobyla-centre-spread": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "init": "centre+lhs"}),
    # not the thesis: as above, with COBYLA unconstrained and its points clipped into the box (nevergrad's way)
    # instead of the box's faces as COBYLA constraints
    "lamcts-cobyla-clip": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "cobyla_bounds": "clip"}),
    "lamcts-cobyla-centre-clip": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "init": "centre+lhs",
                                             "cobyla_rhobeg": 1 / 6, "cobyla_bounds": "clip"}),
    # not the thesis: K-means on [x, f] with f weighted as much as all d coordinates (kmeans_scale="balanced"), so
    # at 100-D the "good" cluster holds the good points instead of the points on one side of the box
    "lamcts-cobyla-centre-clip-balanced": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "init": "centre+lhs",
                                                      "cobyla_rhobeg": 1 / 6, "cobyla_bounds": "clip",
                                                      "kmeans_scale": "balanced"}),
    "lamcts-cobyla-balanced": ("lamcts", {"solver": "cobyla", "preset": "synthetic", "kmeans_scale": "balanced"}),
    "lamcts-turbo-reuse-balanced": ("lamcts", {"solver": "turbo", "cp": 1.0, "leaf_size": 20, "n_init": 20,
                                               "reuse_region_data": True, "local_n_init": 5,
                                               "kmeans_scale": "balanced"}),
    "lamcts-cmaes-balanced": ("lamcts", {"solver": "cmaes", "preset": "synthetic", "kmeans_scale": "balanced"}),
    "turbo": ("turbo", {}),
    # not the reference: the trust region halves after 3 failed batches instead of ceil(d / batch) (10 at 100-D)
    "turbo-failtol3": ("turbo", {"failtol": 3}),
    "lamcts-turbo-reuse-failtol3": ("lamcts", {"solver": "turbo", "cp": 1.0, "leaf_size": 20, "n_init": 20,
                                               "reuse_region_data": True, "local_n_init": 5, "turbo_failtol": 3}),
    "lamcts-turbo-reuse-failtol3-centre": ("lamcts", {"solver": "turbo", "cp": 1.0, "leaf_size": 20, "n_init": 20,
                                                      "reuse_region_data": True, "local_n_init": 5, "turbo_failtol": 3,
                                                      "init": "centre+lhs"}),
    "cmaes": ("cmaes", {}),
    "optuna-tpe": ("optuna-tpe", {}),
    "ngopt": ("ngopt", {}),
    "random": ("random", {}),
    "de": ("nevergrad", {"optimizer": "DE"}),
    # nevergrad's COBYLA alone (from the box's centre, points clipped into the box): how much of an LA-MCTS(COBYLA)
    # result is the tree's and how much the local solver's
    "ng-cobyla": ("nevergrad", {"optimizer": "Cobyla"}),
    "dual-annealing": ("dual-annealing", {}),
    "bo": ("bo", {}),  # plain GP-EI Bayesian optimisation over the whole box (botorch), the brief's BO baseline
    # LaNAS (thesis Ch. 4) on the box: its fixed tree of linear regressors and pi_rand rejection sampling inside the
    # chosen leaf, defaults as on NAS spaces; the brief's baseline list (section 5, item 16) includes it
    "lanas": ("lanas", {}),
}
EXTERNAL = ("ngopt", "nevergrad")  # optimisers driven through nevergrad's own ask/tell
MUJOCO_TASKS = ("swimmer", "hopper")


class Nevergrad:
    """A nevergrad optimiser (NGOpt by default) through its own ask/tell, with the interface of a strategy here."""

    def __init__(self, space, seed: int, budget: int, optimizer: str = "NGOpt"):
        import nevergrad as ng

        param = ng.p.Array(shape=(space.dim,), lower=space.lower, upper=space.upper)
        param.random_state = np.random.RandomState(seed)
        self.opt = ng.optimizers.registry[optimizer](parametrization=param, budget=budget, num_workers=1)

    def ask(self):
        cand = self.opt.ask()
        return cand, tuple(float(v) for v in cand.value)

    def tell(self, cand, score):
        self.opt.tell(cand, -score)  # nevergrad minimises; scores are maximised


class _BudgetSpent(Exception):
    pass


def dual_annealing_values(bench, metric: str, sign: float, seed: int, budget: int) -> tuple[list[float], float]:
    """scipy's dual annealing (with its default L-BFGS-B local search) for exactly ``budget`` evaluations: its
    ``maxfun`` is a soft limit, so the objective stops the run itself. Returns the values and the evaluation CPU."""
    from scipy.optimize import dual_annealing

    values, eval_cpu = [], 0.0

    def f(x):
        nonlocal eval_cpu
        if len(values) >= budget:
            raise _BudgetSpent
        te = time.process_time()
        v = float(bench(tuple(float(c) for c in x)).metrics[metric])
        eval_cpu += time.process_time() - te
        values.append(v)
        return -sign * v  # scipy minimises the negated score

    bounds = list(zip(bench.space.lower, bench.space.upper, strict=True))
    while len(values) < budget:  # a run that converges early restarts with the next seed, as a user would
        try:
            dual_annealing(f, bounds, maxfun=budget, seed=seed + 1000 * len(values))
        except _BudgetSpent:
            break
    return values, eval_cpu


def batched(method: str, batch: int) -> bool:
    """Whether ``--batch`` applies: TuRBO, and LA-MCTS whose solver proposes batches (not CMA-ES or COBYLA);
    others stay sequential."""
    name, opts = METHODS[method]
    return batch > 1 and (name == "turbo" or (name == "lamcts" and opts.get("solver", "turbo") not in ("cmaes", "cobyla")))


def cache_path(task: str, method: str, seed: int, budget: int, bench_options: dict | None = None, batch: int = 1,
               cache_dir=None):
    """Where ``run_one`` caches a (task, method, seed) run: batch size and benchmark options are part of the name."""
    tag = f"_b{batch}" if batched(method, batch) else ""
    tag += "".join(f"_{k}-{v}" for k, v in sorted((bench_options or {}).items()))  # e.g. _obs_norm-running
    return (cache_dir or CACHE_DIR / "lamcts") / f"{task}_{method}_{seed}_{budget}{tag}.json"


def run_one(task: str, method: str, seed: int, budget: int, bench_options: dict | None = None, sign: float = -1.0,
            batch: int = 1, cache_dir=None) -> dict:
    """One (task, method, seed) run, cached: the value of every evaluation and the optimiser's CPU time.

    ``sign`` turns the task's metric into the maximised score (-1 for minimised functions, +1 for rewards).
    ``batch`` > 1: LA-MCTS and TuRBO fit their GP once per ``batch`` points (the issue allows batch 10 at 100-D);
    points are still told one by one, in order, so every method sees the same sequence of evaluations.
    ``cache_dir``: where the run is cached (default benchmarks/cache/lamcts/).
    """
    name, opts = METHODS[method]
    is_batched = batched(method, batch)
    path = cache_path(task, method, seed, budget, bench_options, batch, cache_dir)
    if path.exists():
        return json.loads(path.read_text())
    import torch

    torch.set_num_threads(1)
    bench = make_benchmark(task, **(bench_options or {}))
    metric = bench.default_metric
    if is_batched:
        opts = {**opts, "batch_size": batch}
    if name == "lamcts" and task in MUJOCO_TASKS:  # the thesis' MuJoCo setting: C_p 10, leaf size 100, 30 initial
        opts = {**{k: v for k, v in opts.items() if k not in PRESETS["mujoco"]}, "preset": "mujoco"}
    t0 = time.process_time()
    if name == "dual-annealing":
        values, eval_cpu = dual_annealing_values(bench, metric, sign, seed, budget)
    else:
        strat = Nevergrad(bench.space, seed, budget, **opts) if name in EXTERNAL else make_strategy(name, bench.space, seed=seed, **opts)
        values, eval_cpu = [], 0.0
    for _ in range(budget - len(values)):
        if name in EXTERNAL:
            handle, x = strat.ask()
        else:
            handle = strat.ask()
            x = handle.arch
        te = time.process_time()
        v = float(bench(x).metrics[metric])
        eval_cpu += time.process_time() - te
        values.append(v)
        if name in EXTERNAL:
            strat.tell(handle, sign * v)
        else:
            strat.tell(handle, Result(metrics={metric: v}, score=sign * v))
    total = time.process_time() - t0
    bench.close()
    r = {"values": values, "cpu_s": total, "eval_cpu_s": eval_cpu, "overhead_ms_per_sample": 1000 * (total - eval_cpu) / budget}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(r))
    return r


def summarise(name: str, tasks: list[str], methods: list[str], seeds: int, budget: int, sign: float, metric: str,
              bench_options: dict | None = None, extra: dict | None = None, batch: int = 1) -> None:
    """Run (or load) everything, then write the results rows, the 2-se claims and the best-so-far plot."""
    best = {}
    rows, claims, curves = [], {}, {}
    for task in tasks:
        for m in methods:
            runs = [run_one(task, m, s, budget, bench_options, sign, batch) for s in range(seeds)]
            traj = np.array([np.maximum.accumulate(sign * np.array(r["values"])) * sign for r in runs])
            curves[(task, m)] = traj
            best[(task, m)] = traj[:, -1]
            v, se = mean_se(traj[:, -1])
            common = {"task": task, "n_seeds": seeds, "budget": budget}
            rows.append({"method": m, "metric": metric, "value": v, "se": se, "median": float(np.median(traj[:, -1])),
                         "per_seed": traj[:, -1].tolist(), **common})
            oh, oh_se = mean_se([r["overhead_ms_per_sample"] for r in runs])
            rows.append({"method": m, "metric": "overhead_ms_per_sample", "value": oh, "se": oh_se, **common})
            print(f"{task:12s} {m:14s} {metric} {v:10.3f} +- {se:7.3f}   overhead {oh:8.1f} ms/sample", flush=True)
        lamcts = [m for m in methods if m.startswith("lamcts")]
        others = [m for m in methods if not m.startswith("lamcts")]
        if lamcts and others:
            top = (min if sign < 0 else max)(lamcts, key=lambda m: best[(task, m)].mean())
            claims[task] = {"best_lamcts": top, **{f"vs_{o}": beats(best[(task, top)], best[(task, o)], lower_is_better=sign < 0) for o in others}}
            claims[task]["lamcts_best_on_task"] = all(v in ("win",) for k, v in claims[task].items() if k.startswith("vs_"))
            claims[task]["lamcts_best_or_tied"] = all(v in ("win", "tie") for k, v in claims[task].items() if k.startswith("vs_"))
            claims[task]["each_variant"] = {  # every LA-MCTS variant against every peer, same rule
                v: {f"vs_{o}": beats(best[(task, v)], best[(task, o)], lower_is_better=sign < 0) for o in others} for v in lamcts}
            # the variants that lose to no peer (the best mean above may lose where a noisier variant only ties)
            claims[task]["variants_best_or_tied"] = [v for v, vs in claims[task]["each_variant"].items()
                                                     if all(r in ("win", "tie") for r in vs.values())]
    ratios = {}
    for task in tasks:
        if "lamcts-turbo" in methods and "turbo" in methods:
            a = np.mean([run_one(task, "lamcts-turbo", s, budget, bench_options, sign, batch)["overhead_ms_per_sample"] for s in range(seeds)])
            b = np.mean([run_one(task, "turbo", s, budget, bench_options, sign, batch)["overhead_ms_per_sample"] for s in range(seeds)])
            ratios[task] = {"lamcts_turbo_over_turbo_overhead": a / b, "lamcts_turbo_ms_per_sample": a}
    boxes = {}
    for task in tasks:
        if task.split("-")[0] in FUNCTIONS:
            spec = FUNCTIONS[task.split("-")[0]]
            boxes[task] = [spec.lower, spec.upper]
    write_results(name, rows, extra={"boxes": boxes, "claims": claims, "overhead_ratios": ratios, "methods": {m: METHODS[m] for m in methods},
                                     "scale": {"tasks": tasks, "budget": budget, "seeds": seeds, "batch": batch, "batched_methods": [m for m in methods if batched(m, batch)]}, **(extra or {})})
    plot_curves(curves, tasks, methods, RESULTS_DIR / f"{name}.png", metric, log_y=sign < 0)
    plot_cdf(best, tasks, methods, RESULTS_DIR / f"{name}_cdf.png", metric, minimised=sign < 0)
    print(json.dumps({"claims": claims, "overhead_ratios": ratios}, indent=1))


def plot_curves(curves, tasks, methods, path, ylabel: str, log_y: bool, band: str = "iqr") -> None:
    """Best-so-far curves per task: the median with the interquartile band (``band="iqr"``, the default) or the
    mean with a standard-error band (``"se"``). LA-MCTS variants solid, peers dashed."""
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, axes = _grid(plt, len(tasks))
    palette = plt.get_cmap("tab20").colors  # more methods than the default 10-colour cycle
    for ax, task in zip(axes.ravel(), tasks):
        for i, m in enumerate(methods):
            c = curves[(task, m)]
            x = np.arange(1, c.shape[1] + 1)
            if band == "iqr":
                lo, mid, hi = np.percentile(c, [25, 50, 75], axis=0)
            else:
                mid = c.mean(axis=0)
                se = c.std(axis=0, ddof=1) / np.sqrt(len(c)) if len(c) > 1 else np.zeros_like(mid)
                lo, hi = mid - se, mid + se
            colour = _colour(palette, i)
            ax.plot(x, mid, lw=1.5, label=m, color=colour, ls="-" if m.startswith("lamcts") else "--")
            ax.fill_between(x, lo, hi, alpha=0.2, color=colour)
        if log_y:
            ax.set_yscale("log")
        ax.set_title(f"{task} ({'median, interquartile band' if band == 'iqr' else 'mean +- se'})", fontsize=10)
        ax.set_xlabel("evaluations")
        ax.set_ylabel(f"best {ylabel} so far")
        ax.grid(alpha=0.3)
    _finish(plt, fig, axes, len(tasks), path)


def plot_cdf(best, tasks, methods, path, ylabel: str, minimised: bool) -> None:
    """Empirical CDF over seeds of the final best value, per task: the share of seeds at or below (minimised) or
    at or above (maximised, drawn as 1 - CDF) each value, so a curve further left (or right) is better."""
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, axes = _grid(plt, len(tasks))
    palette = plt.get_cmap("tab20").colors
    for ax, task in zip(axes.ravel(), tasks):
        for i, m in enumerate(methods):
            v = np.sort(best[(task, m)])
            k = np.arange(1, len(v) + 1)
            share = np.r_[0.0, k / len(v)] if minimised else np.r_[1.0, (len(v) - k) / len(v)]  # rewards: >= value
            ax.step(np.r_[v[0], v], share, where="post", label=m, color=_colour(palette, i),
                    ls="-" if m.startswith("lamcts") else "--", lw=1.5)
        if minimised:  # regrets span orders of magnitude (f* = 0)
            ax.set_xscale("log")
        ax.set_title(task, fontsize=10)
        ax.set_xlabel(f"final best {ylabel}")
        ax.set_ylabel("share of seeds " + ("<= value" if minimised else ">= value"))
        ax.grid(alpha=0.3)
    _finish(plt, fig, axes, len(tasks), path)


def _grid(plt, n: int):
    cols = min(n, 3)
    nrows = (n + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), dpi=100, squeeze=False)
    return fig, axes


def _colour(palette, i: int):
    return palette[(2 * i) % 20 + (2 * i) // 20 % 2]  # the dark shades first, then the light ones


def _finish(plt, fig, axes, n: int, path) -> None:
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="ackley-20,levy-20,rosenbrock-20,rastrigin-20")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--batch", type=int, default=1, help="batch size of LA-MCTS and TuRBO (one GP fit per batch)")
    ap.add_argument("--name", default="lamcts_synthetic", help="results file name (e.g. lamcts_synthetic_100d)")
    ap.add_argument("--workers", type=int, default=1, help="fill the cache with this many runs in parallel processes "
                    "(CPU time per run is still measured per process)")
    args = ap.parse_args()
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    if args.workers > 1:
        prefill(tasks, methods, args.seeds, args.budget, args.batch, args.workers)
    summarise(args.name, tasks, methods, args.seeds, args.budget, -1.0, "value", batch=args.batch)


def prefill(tasks, methods, seeds, budget, batch, workers) -> None:
    """Run every missing (task, method, seed) in ``workers`` processes, slowest methods first, into the cache."""
    from concurrent.futures import ProcessPoolExecutor

    jobs = [(t, m, s) for m in methods for t in tasks for s in range(seeds)]
    jobs.sort(key=lambda j: (not j[1].startswith("lamcts"), j[1] == "random"))
    with ProcessPoolExecutor(workers) as pool:
        futures = [pool.submit(run_one, t, m, s, budget, None, -1.0, batch) for t, m, s in jobs]
        for i, fut in enumerate(futures, 1):
            fut.result()
            print(f"[{i}/{len(jobs)}] {jobs[i - 1]}", flush=True)


if __name__ == "__main__":
    main()
