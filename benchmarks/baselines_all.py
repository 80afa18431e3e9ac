"""Every strategy in the package on the embedded NB201 table: the table a user reads to choose (issue 7).

For each registered strategy that runs on the NB201 space (a short probe run decides; the others are listed
with the reason in ``not_applicable``): samples to the global optimum (unique samples; runs stop at the
optimum; censored at the method's budget, censored runs count as the budget) and regret at 100 / 200
samples, mean and standard error over seeds 0..S-1, all in one invocation.

Scale-down (CPU budget of a shared 2-core machine; the issue asks for 100 seeds): fast strategies run
``--seeds`` seeds with a budget of ``--budget`` samples; strategies whose per-sample cost is high (a model
fitted per proposal: GP-BO, TPE, AlphaX, LaNAS, the neural predictor, ...) run ``--slow-seeds`` seeds with a
budget of 200, so their samples-to-optimum is censored at 200. Runs are cached per (method, seed, budget)
under benchmarks/cache/baselines_all/, so a run resumes; ``--stop-by HH:MM`` (UTC) starts no run after that
time, ``--interleave`` runs the slowest methods round-robin by seed (so a cut-short run leaves them similar
seed counts) and ``--from-cache`` only writes the JSON/PNG from what is cached. Each row covers the cached
seeds 0..n-1 of its method and states n_seeds, budget and censored count; ``plan`` in the JSON gives the
seeds run of those planned.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.api import compare
from nasagent.registry import STRATEGIES, make_benchmark
from nasagent.report.plots import plot_regret_curves, regret_matrix
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, mean_se, write_results

CACHE = str(CACHE_DIR / "baselines_all")
AT = (100, 200)
FAST = ("random", "evolution", "local-search", "evolution-nsga2", "hill-climbing", "q-learning", "reinforce")
SLOW_BUDGET = 200


def _run(method: str, seed: int, budget: int) -> dict:
    path = os.path.join(CACHE, f"{method}__s{seed}__n{budget}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    t0 = time.perf_counter()
    r = compare("nb201", [method], seeds=[seed], budget=budget, at=tuple(a for a in AT if a <= budget) or (budget,)).runs[0]
    r = {k: r[k] for k in ("samples_to_optimum", "samples", "trace", "stop_reason")}
    r["seconds"] = time.perf_counter() - t0
    os.makedirs(CACHE, exist_ok=True)
    with open(path, "w") as f:
        json.dump(r, f, default=float)
    return r


def probe(method: str) -> str | None:
    """Why a strategy cannot run on NB201 (None when a 5-sample run works)."""
    try:
        compare("nb201", [method], seeds=[0], budget=5, at=(5,), stop_at_optimum=False)
    except Exception as e:  # noqa: BLE001 - any failure means "not applicable", reported with its message
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


def _cached_seeds(method: str, budget: int, wanted: int) -> list[dict]:
    """The cached runs of seeds 0, 1, ... (stopping at the first gap), so every row covers seeds 0..n-1."""
    runs = []
    for s in range(wanted):
        path = os.path.join(CACHE, f"{method}__s{s}__n{budget}.json")
        if not os.path.exists(path):
            break
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def _past(stop_by: str | None) -> bool:
    """True once the UTC clock reads ``stop_by`` (HH:MM): no new runs start after it."""
    return stop_by is not None and time.strftime("%H:%M", time.gmtime()) >= stop_by


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100, help="seeds of the fast strategies")
    ap.add_argument("--slow-seeds", type=int, default=100, help="seeds of the slow strategies")
    ap.add_argument("--budget", type=int, default=15_625, help="sample budget of the fast strategies")
    ap.add_argument("--methods", nargs="+", default=list(STRATEGIES), help="run one after another, in this order")
    ap.add_argument("--interleave", nargs="*", default=[],
                    help="run after --methods, round-robin by seed (seed 0 of each, then seed 1, ...), so slow "
                         "methods cut short by --stop-by end with similar seed counts")
    ap.add_argument("--from-cache", action="store_true", help="run nothing: write the JSON/PNG from the cached runs")
    ap.add_argument("--stop-by", default=None, help="UTC HH:MM after which no new run starts")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)

    bench = make_benchmark("nb201")
    optimum = bench.optimum(bench.objective())[0]
    methods, skipped = [], {}
    for method in [*args.methods, *args.interleave]:
        why = probe(method)
        if why is not None:
            skipped[method] = why
            print(f"{method:18s} not applicable: {why}", flush=True)
        else:
            methods.append(method)
    plan = {m: (args.seeds, args.budget) if m in FAST else (args.slow_seeds, min(SLOW_BUDGET, args.budget)) for m in methods}
    if not args.from_cache:
        for method in (m for m in args.methods if m in plan):
            seeds, budget = plan[method]
            for s in range(seeds):
                if _past(args.stop_by):
                    break
                _run(method, s, budget)
            _write(methods, plan, skipped, optimum, args)  # after every method, so a cut-short run still reports
        rounds = max((plan[m][0] for m in args.interleave if m in plan), default=0)
        for s in range(rounds):
            for method in (m for m in args.interleave if m in plan and s < plan[m][0]):
                if not _past(args.stop_by):
                    _run(method, s, plan[method][1])
            if s % 5 == 4:
                _write(methods, plan, skipped, optimum, args)
    _write(methods, plan, skipped, optimum, args, verbose=True)


def _write(methods, plan, skipped, optimum, args, verbose: bool = False) -> None:
    rows, curves, got, not_run = [], {}, {}, []
    for method in methods:
        planned, budget = plan[method]
        runs = _cached_seeds(method, budget, planned)
        if not runs:
            not_run.append(method)
            continue
        seeds = len(runs)
        got[method] = {"seeds": seeds, "planned_seeds": planned, "budget": budget}
        sto = np.array([r["samples_to_optimum"] or budget for r in runs], dtype=float)
        censored = int(sum(r["samples_to_optimum"] is None for r in runs))
        common = {"task": "nb201/cifar10", "n_seeds": seeds, "budget": budget, "censored": censored}
        m, se = mean_se(sto)
        rows.append({"method": method, "metric": "samples_to_optimum_mean", "value": m, "se": se,
                     "median": float(np.median(sto)), **common})
        ats = [n for n in AT if n <= budget]  # (a smoke run with a small --budget has no regret at 200)
        reg = regret_matrix([r["trace"] for r in runs], optimum, max(ats, default=budget))
        curves[method] = reg
        for n in ats:
            m_n, se_n = mean_se(reg[:, n - 1])
            rows.append({"method": method, "metric": f"regret_at_{n}", "value": m_n, "se": se_n, "samples": n,
                         **common})
        secs = [r["seconds"] / max(r["samples"], 1) for r in runs]
        rows.append({"method": method, "metric": "seconds_per_sample", "value": float(np.mean(secs)), **common})
        if verbose:
            print(f"{method:18s} seeds {seeds:3d}/{planned:3d} budget {budget:5d}  "
                  f"samples-to-optimum {m:8.1f} (se {se:6.1f}, median {np.median(sto):6.1f}, censored {censored:3d})  "
                  + "".join(f"regret@{n} {reg[:, n - 1].mean():.3f}  " for n in ats)
                  + f"{np.mean(secs) * 1e3:.1f} ms/sample", flush=True)
    short = {m: f"{g['seeds']} of {g['planned_seeds']}" for m, g in got.items() if g["seeds"] < g["planned_seeds"]}
    write_results("baselines_all", rows, extra={
        "not_applicable": skipped, "plan": got, "not_run": not_run, "optimum": optimum,
        "scale_down": f"fast strategies {args.seeds} seeds / budget {args.budget}; slow ones {args.slow_seeds} seeds "
                      f"/ budget {SLOW_BUDGET} (issue: 100 seeds); cut short by CPU time (seeds run of planned): "
                      f"{short or 'none'}",
    })
    plot_regret_curves(curves, RESULTS_DIR / "baselines_all.png",
                       title="NB201 CIFAR-10: mean regret of every applicable strategy (95 % band)",
                       ylabel="regret (accuracy points)")


if __name__ == "__main__":
    main()
