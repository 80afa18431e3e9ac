"""Random search, regularized evolution and local search on the embedded NB201 table (issue: core).

Metrics per method over the same seeds: samples to the global optimum (mean, median; unique samples,
capped at the 15,625 cells so nothing is censored) and regret at 100 / 200 samples. Random search is
checked against its closed form (N + 1) / (k + 1) for N cells and k optimal cells.
Writes benchmarks/results/nb201_baselines.json and .png.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from nasagent.api import compare
from nasagent.registry import make_benchmark
from nasagent.report.plots import plot_regret_curves, regret_matrix
from nasagent.report.results import RESULTS_DIR, write_results

METHODS = ("random", "evolution", "local-search")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    bench = make_benchmark("nb201")
    objective = bench.objective()
    _, opt_keys = bench.optimum(objective)
    n_cells = bench.space.size()
    closed_form = (n_cells + 1) / (len(opt_keys) + 1)

    comp = compare("nb201", METHODS, seeds=args.seeds, at=(100, 200), jobs=args.jobs)
    rows = []
    summary = {r["method"]: r for r in comp.summary()}
    for m, r in summary.items():
        common = {"n_seeds": r["n_seeds"], "task": "nb201/cifar10", "censored": r["censored"], "budget": comp.budget}
        rows.append({"method": m, "metric": "samples_to_optimum_mean", "value": r["samples_to_optimum_mean"], "se": r["samples_to_optimum_se"], **common})
        rows.append({"method": m, "metric": "samples_to_optimum_median", "value": r["samples_to_optimum_median"], **common})
        for n in (100, 200):
            rows.append({"method": m, "metric": f"regret_at_{n}", "value": r[f"regret_at_{n}"], "se": r[f"regret_at_{n}_se"], **common})
    rnd = summary["random"]["samples_to_optimum_mean"]
    checks = {
        "random_closed_form": closed_form,
        "random_vs_closed_form_ratio": rnd / closed_form,
        "random_within_10pct": abs(rnd / closed_form - 1) <= 0.10,
        "evolution_speedup_vs_random": rnd / summary["evolution"]["samples_to_optimum_mean"],
        "local_search_speedup_vs_random": rnd / summary["local-search"]["samples_to_optimum_mean"],
    }
    rows.append({"method": "random-closed-form", "metric": "samples_to_optimum_mean", "value": closed_form, "task": "nb201/cifar10"})
    write_results("nb201_baselines", rows, extra={"checks": checks, "n_cells": n_cells, "n_optimal_cells": len(opt_keys)})

    curves = {m: regret_matrix([r["trace"] for r in comp.runs if r["label"] == m], comp.optimum, n_cells) for m in METHODS}
    plot_regret_curves(curves, RESULTS_DIR / "nb201_baselines.png", title=f"NB201 CIFAR-10: mean regret over {args.seeds} seeds (95 % band)", ylabel="regret (accuracy points)")
    for m, r in summary.items():
        print(f"{m:14s} samples-to-optimum mean {r['samples_to_optimum_mean']:8.1f} (se {r['samples_to_optimum_se']:.1f}) median {r['samples_to_optimum_median']:7.1f}  regret@100 {r['regret_at_100']:.3f}  regret@200 {r['regret_at_200']:.3f}")
    print(checks)


if __name__ == "__main__":
    main()
