"""Where LA-MCTS spends its budget: one record per LA-MCTS iteration (tree rebuild + one local-solver run).

For each (task, seed): the evaluation at which each iteration started, the depth of the selected leaf, how many
samples lay in its region and the best value so far. It shows how many local-solver runs the learned partition
got to steer (docs/lamcts.md, "Why LA-MCTS(TuRBO) is no better than TuRBO-1 on Levy-20 and Rosenbrock-20").
Writes benchmarks/results/lamcts_trace.json and .png (best-so-far per seed, iteration starts marked).

    python benchmarks/lamcts_trace.py --tasks levy-20 rosenbrock-20 --seeds 5 --budget 500 --preset small-budget --workers 2
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.registry import make_benchmark
from nasagent.report.results import RESULTS_DIR, mean_se, write_results
from nasagent.strategies.lamcts import LAMCTSOptimizer


def trace(task: str, seed: int, budget: int, preset: str, solver: str) -> dict:
    import torch

    torch.set_num_threads(1)
    bench = make_benchmark(task)
    opt = LAMCTSOptimizer(bench.space.lower, bench.space.upper, seed=seed, minimize=True, preset=preset, solver=solver)
    values = []
    for _ in range(budget):
        x = opt.ask()
        v = bench.f(x)
        opt.tell(x, v)
        values.append(v)
    iters = [{k: h[k] for k in ("iteration", "samples", "depth", "in_region", "best")} for h in opt.history]
    return {"values": values, "iterations": iters}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", nargs="*", default=["levy-20", "rosenbrock-20"])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--preset", default="small-budget")
    ap.add_argument("--solver", default="turbo")
    ap.add_argument("--workers", type=int, default=1, help="runs in parallel processes")
    args = ap.parse_args()
    jobs = [(t, s, args.budget, args.preset, args.solver) for t in args.tasks for s in range(args.seeds)]
    with ProcessPoolExecutor(max(1, args.workers)) as pool:
        done = list(pool.map(trace, *zip(*jobs)))
    rows, traces = [], {}
    for task in args.tasks:
        runs = [r for j, r in zip(jobs, done) if j[0] == task]
        traces[task] = runs
        n_iter = [len(r["iterations"]) for r in runs]
        first = [(r["iterations"][1]["samples"] if len(r["iterations"]) > 1 else args.budget) - r["iterations"][0]["samples"] for r in runs]
        common = {"task": task, "method": f"lamcts-{args.solver}/{args.preset}", "n_seeds": args.seeds, "budget": args.budget}
        for metric, vals in (("iterations", n_iter), ("first_solver_run_evaluations", first), ("best", [min(r["values"]) for r in runs])):
            m, se = mean_se(vals)
            rows.append({"metric": metric, "value": m, "se": se, "per_seed": vals, **common})
        for s, r in enumerate(runs):
            print(f"{task} seed {s}: final {min(r['values']):.3f}; iterations " +
                  ", ".join(f"@{it['samples']} depth {it['depth']} in-region {it['in_region']} best {it['best']:.1f}" for it in r["iterations"]), flush=True)
    write_results("lamcts_trace", rows, extra={"iterations": {t: [r["iterations"] for r in runs] for t, runs in traces.items()}})
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, len(args.tasks), figsize=(5.5 * len(args.tasks), 3.8), dpi=100, squeeze=False)
    for ax, task in zip(axes.ravel(), args.tasks):
        for s, r in enumerate(traces[task]):
            line, = ax.plot(np.arange(1, args.budget + 1), np.minimum.accumulate(r["values"]), lw=1.2, label=f"seed {s}")
            for it in r["iterations"]:
                ax.axvline(it["samples"], color=line.get_color(), ls=":", lw=0.8)
        ax.set_yscale("log")
        ax.set_title(f"{task}: LA-MCTS iterations (dotted = tree rebuilt, new solver run)", fontsize=9)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best value so far")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS_DIR / "lamcts_trace.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
