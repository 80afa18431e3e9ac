"""AlphaX against random search, regularized evolution and local search on the embedded NB201 CIFAR-10 table,
plus its ablations (no Meta-DNN; the paper's seed-size Meta-DNN) and NAS-Bench-Graph datasets (issue 4).

Per method, over the same seeds 0..S-1: samples to the global optimum (mean, median; runs that miss it by the
cap are counted at the cap and reported as ``censored``) and regret at 100 / 200 samples. Also
``overhead_ms_per_sample`` (ask + tell, model fitting included) over the first ``--overhead-samples``
samples, for the default and the seed-size Meta-DNN, with random search's overhead measured in the same run.
``alphax-gp`` is the GP-guided improvement (``GP_EI`` in strategies/alphax.py), run on ``--gp-seeds`` seeds.
Writes benchmarks/results/alphax_nb201.json and .png; runs are cached under benchmarks/cache/alphax/.

    python benchmarks/alphax_nb201.py --seeds 20 --cap 1000 --baseline-seeds 100 --gp-seeds 100
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import cached, drive, regret_at, set_threads, summary  # noqa: E402

from nasagent.registry import make_benchmark, make_strategy  # noqa: E402
from nasagent.report.plots import plot_bars  # noqa: E402
from nasagent.report.results import RESULTS_DIR, beats, machine_info, write_results  # noqa: E402
from nasagent.strategies.alphax import GP_EI  # noqa: E402

BASELINES = ("random", "evolution", "local-search")
#: label -> AlphaX options
ALPHAX = {
    "alphax": {},
    "alphax-no-metadnn": {"metadnn": False},
    "alphax-faithful": {"faithful": True},
}
#: the improvement behind flags (docs/alphax.md): a gp-hamming value model refitted after every result, the
#: highest-expected-improvement rollout, and its acquisition as expansion order and selection prior
ALPHAX["alphax-gp"] = GP_EI


def run(bench_name: str, label: str, seed: int, cap: int, stop: bool = True) -> dict:
    def go():
        bench = make_benchmark(bench_name)
        objective = bench.objective()
        _, opt_keys = bench.optimum(objective)
        name, opts = (label, {}) if label in BASELINES else ("alphax", ALPHAX[label])
        strat = make_strategy(name, bench.space, seed=seed, **opts)
        return drive(strat, bench, objective, cap, opt_keys, seed=seed, stop=stop)

    tag = f"{bench_name.replace('/', '-')}_{label}_s{seed}_cap{cap}{'' if stop else '_nostop'}"
    return cached(tag, go)


def rows_for(task: str, bench_name: str, label: str, seeds: int, cap: int, optimum: float) -> tuple[list[dict], list[dict]]:
    runs = [run(bench_name, label, s, cap) for s in range(seeds)]
    sm = summary(runs, cap)
    common = {"task": task, "n_seeds": seeds, "budget": cap, "censored": sm["censored"]}
    rows = [
        {"method": label, "metric": "samples_to_optimum_mean", "value": sm["mean"], "se": sm["se"], **common},
        {"method": label, "metric": "samples_to_optimum_median", "value": sm["median"], **common},
    ]
    for n in (100, 200):
        if n <= cap:
            reg = [regret_at(r["trace"], optimum, n) for r in runs]
            import numpy as np

            rows.append({"method": label, "metric": f"regret_at_{n}", "value": float(np.mean(reg)),
                         "se": float(np.std(reg, ddof=1) / np.sqrt(len(reg))) if len(reg) > 1 else 0.0, **common})
    print(f"{task:16s} {label:18s} mean {sm['mean']:8.1f} (se {sm['se']:.1f}) median {sm['median']:7.1f} censored {sm['censored']}", flush=True)
    return rows, runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=20, help="seeds for the baselines and the default AlphaX")
    ap.add_argument("--cap", type=int, default=1000, help="sample cap for the AlphaX variants (censored beyond)")
    ap.add_argument("--baseline-seeds", type=int, default=None, help="seeds for random / evolution / local search (default --seeds)")
    ap.add_argument("--gp-seeds", type=int, default=100, help="seeds for the GP-guided AlphaX (alphax-gp)")
    ap.add_argument("--ablation-seeds", type=int, default=10)
    ap.add_argument("--faithful-seeds", type=int, default=2)
    ap.add_argument("--faithful-cap", type=int, default=100)
    ap.add_argument("--graph-seeds", type=int, default=10)
    ap.add_argument("--graph-datasets", nargs="*", default=["cora", "citeseer", "pubmed"])
    ap.add_argument("--overhead-samples", type=int, default=1000)
    args = ap.parse_args()
    set_threads()

    bench = make_benchmark("nb201")
    objective = bench.objective()
    optimum, _ = bench.optimum(objective)
    size = bench.space.size()
    rows, sto = [], {}
    base_seeds = args.baseline_seeds or args.seeds
    plan = [(m, base_seeds, size) for m in BASELINES] + [
        ("alphax", args.seeds, args.cap),
        ("alphax-gp", args.gp_seeds, args.cap),
        ("alphax-no-metadnn", args.ablation_seeds, args.cap),
        ("alphax-faithful", args.faithful_seeds, args.faithful_cap),
    ]
    for label, seeds, cap in plan:
        r, runs = rows_for("nb201/cifar10", "nb201", label, seeds, cap, optimum)
        rows += r
        sto[label] = summary(runs, cap)["values"]

    # claims by the 2-standard-error rule on the shared seeds
    checks = {}
    for mine in ("alphax", "alphax-gp"):
        for other in ("random", "evolution", "local-search"):
            n = min(len(sto[mine]), len(sto[other]))
            checks[f"{mine}_vs_{other}"] = beats(sto[mine][:n], sto[other][:n])
    n = min(len(sto["alphax"]), len(sto["alphax-no-metadnn"]))
    checks["alphax_vs_alphax-no-metadnn"] = beats(sto["alphax"][:n], sto["alphax-no-metadnn"][:n])
    best_mean = min(sum(sto[m]) / len(sto[m]) for m in ("alphax", "alphax-gp"))  # the best shipped configuration
    checks["goal_mean_samples_le_60"] = bool(best_mean <= 60)

    # overhead at the first N samples (no stop at the optimum), default vs seed-size Meta-DNN vs random
    # (the seed-size model is too slow for 1,000 samples here: its overhead is that of its capped runs above)
    for label, n in (("alphax", args.overhead_samples), ("alphax-gp", args.overhead_samples), ("random", args.overhead_samples),
                     ("alphax-faithful", args.faithful_cap)):
        r = run("nb201", label, 0, n, stop=label == "alphax-faithful")
        rows.append({"method": label, "metric": "overhead_ms_per_sample", "value": r["overhead_ms_per_sample"], "samples": r["samples"], "task": "nb201/cifar10", "n_seeds": 1})
        print(f"overhead {label:18s} {r['overhead_ms_per_sample']:9.2f} ms/sample over {r['samples']} samples", flush=True)

    # NAS-Bench-Graph: regret at 100 / 200
    for ds in args.graph_datasets:
        gb = make_benchmark(f"nbgraph/{ds}")
        gopt, _ = gb.optimum(gb.objective())
        for label in (*BASELINES, "alphax"):
            r, _ = rows_for(f"nbgraph/{ds}", f"nbgraph/{ds}", label, args.graph_seeds, 200, gopt)
            rows += [x for x in r if x["metric"].startswith("regret")]

    write_results("alphax_nb201", rows, extra={"checks": checks, "cap_note": "AlphaX variants stop at --cap samples; misses are counted at the cap (censored)"},
                  machine=machine_info(threads=1))
    bars = {r["method"]: (r["value"], r.get("se", 0.0)) for r in rows if r["metric"] == "samples_to_optimum_mean" and r["task"] == "nb201/cifar10"}
    plot_bars(bars, RESULTS_DIR / "alphax_nb201.png", title="NB201 CIFAR-10: samples to the global optimum (mean, se; AlphaX capped)", ylabel="samples", log_y=True)
    print(checks)


if __name__ == "__main__":
    main()
