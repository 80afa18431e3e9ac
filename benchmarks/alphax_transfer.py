"""AlphaX warm start across tasks: NAS-Bench-Graph ``cora`` -> ``citeseer`` (issue 4, transfer).

A source run searches cora for ``--source-budget`` samples and is journaled. Each target run searches
citeseer either cold or with ``warm_start=<source run>`` (the source tree's edge means become priors and its
Meta-DNN is refitted on the new task's data). Metric: samples to citeseer's global optimum (capped; misses
counted at the cap) and regret at 50 / 100. Same seeds for both. Writes benchmarks/results/alphax_transfer.json
and .png (``alphax_transfer_<source>-<target>`` for another pair).

    python benchmarks/alphax_transfer.py --seeds 20 --cap 1000 --source-budget 200
    python benchmarks/alphax_transfer.py --source physics --target computers --seeds 20 --cap 1000 --source-budget 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import CACHE, cached, drive, regret_at, set_threads, summary  # noqa: E402

import numpy as np  # noqa: E402

from nasagent.api import search  # noqa: E402
from nasagent.registry import make_benchmark, make_strategy  # noqa: E402
from nasagent.report.plots import plot_bars  # noqa: E402
from nasagent.report.results import RESULTS_DIR, beats, machine_info, write_results  # noqa: E402


def source_run(task: str, budget: int) -> Path:
    run_dir = CACHE / f"transfer_source_{task}_{budget}"
    if not (run_dir / "best.json").exists():
        search(f"nbgraph/{task}", "alphax", budget=budget, seed=1000, out=run_dir, overwrite=True, plot=False)
    return run_dir


def task_agreement(source: str, target_bench, objective) -> dict:
    """How much the source task can tell about the target's best cells: where the source's top 100 rank on the target.

    A warm start can only help when the source's good region is also good on the target; with a median rank near
    half the space the source's top cells are no better than random ones there.
    """
    src = make_benchmark(f"nbgraph/{source}")
    archs = list(target_bench.space.enumerate())
    ys = np.array([objective.score(src(a).metrics) for a in archs])
    yt = np.array([objective.score(target_bench(a).metrics) for a in archs])
    rank_t = np.argsort(np.argsort(-yt))
    top = np.argsort(-ys)[:100]
    return {"space_size": len(archs), "source_top100_median_rank_on_target": int(np.median(rank_t[top])),
            "source_best_rank_on_target": int(rank_t[top[0]]),
            "target_best_rank_on_source": int(np.argsort(np.argsort(-ys))[int(np.argmax(yt))])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="cora")
    ap.add_argument("--target", default="citeseer")
    ap.add_argument("--source-budget", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--cap", type=int, default=500)
    args = ap.parse_args()
    set_threads()

    src = source_run(args.source, args.source_budget)
    bench = make_benchmark(f"nbgraph/{args.target}")
    objective = bench.objective()
    optimum, opt_keys = bench.optimum(objective)

    def run(mode: str, seed: int) -> dict:
        def go():
            opts = {"warm_start": str(src)} if mode == "warm" else {}
            strat = make_strategy("alphax", bench.space, seed=seed, **opts)
            return drive(strat, bench, objective, args.cap, opt_keys, seed=seed)

        return cached(f"transfer_{args.source}-{args.target}_{mode}{args.source_budget if mode == 'warm' else ''}_s{seed}_cap{args.cap}", go)

    rows, values, bars, regrets = [], {}, {}, {}
    task = f"nbgraph/{args.source}->{args.target}"
    for mode in ("cold", "warm"):
        runs = [run(mode, s) for s in range(args.seeds)]
        sm = summary(runs, args.cap)
        label = "alphax" if mode == "cold" else "alphax-warm-start"
        common = {"task": task, "n_seeds": args.seeds, "budget": args.cap, "censored": sm["censored"]}
        rows.append({"method": label, "metric": "samples_to_optimum_mean", "value": sm["mean"], "se": sm["se"], **common})
        rows.append({"method": label, "metric": "samples_to_optimum_median", "value": sm["median"], **common})
        for n in (50, 100):
            reg = [regret_at(r["trace"], optimum, n) for r in runs]
            regrets[(mode, n)] = reg
            rows.append({"method": label, "metric": f"regret_at_{n}", "value": float(np.mean(reg)), "se": float(np.std(reg, ddof=1) / np.sqrt(len(reg))), **common})
        values[mode] = sm["values"]
        bars[label] = (sm["mean"], sm["se"])
        print(f"{label:18s} mean {sm['mean']:7.1f} (se {sm['se']:.1f}) median {sm['median']:6.1f} censored {sm['censored']}", flush=True)
    checks = {"warm_vs_cold": beats(values["warm"], values["cold"]),
              **{f"warm_vs_cold_regret_at_{n}": beats(regrets[("warm", n)], regrets[("cold", n)]) for n in (50, 100)},
              **task_agreement(args.source, bench, objective),
              "cold_over_warm_ratio": (sum(values["cold"]) / len(values["cold"])) / (sum(values["warm"]) / len(values["warm"]))}
    name = "alphax_transfer" if (args.source, args.target) == ("cora", "citeseer") else f"alphax_transfer_{args.source}-{args.target}"
    write_results(name, rows, extra={"checks": checks, "source_budget": args.source_budget}, machine=machine_info(threads=1))
    plot_bars(bars, RESULTS_DIR / f"{name}.png", title=f"AlphaX {task}: samples to optimum, cold vs warm start", ylabel="samples")
    print(checks)


if __name__ == "__main__":
    main()
