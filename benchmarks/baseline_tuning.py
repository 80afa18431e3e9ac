"""Pick the defaults of regularized evolution and local search by measurement on the embedded NB201 table.

Grid: evolution population x tournament size, local search n_init; metric: mean samples to the global
optimum (unique samples, capped at the space size) over the same seeds for every configuration.
Writes benchmarks/results/baseline_tuning.json and .png.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.api import compare
from nasagent.report.plots import plot_bars
from nasagent.report.results import RESULTS_DIR, write_results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()

    configs: dict[str, tuple[str, dict]] = {}
    for pop in (10, 20, 50, 100):
        for sample in (3, 5, 10, 25):
            if sample < pop:
                configs[f"evolution-p{pop}-s{sample}"] = ("evolution", {"population_size": pop, "sample_size": sample})
    for n_init in (1, 3, 10, 30):
        configs[f"local-search-init{n_init}"] = ("local-search", {"n_init": n_init})

    comp = compare(
        "nb201",
        [f"{label}={name}" for label, (name, _) in configs.items()],
        seeds=args.seeds,
        strategy_options={label: opts for label, (_, opts) in configs.items()},
        at=(100, 200),
        jobs=args.jobs,
    )
    rows = []
    bars = {}
    for r in comp.summary():
        name, opts = configs[r["method"]]
        for metric in ("samples_to_optimum_mean", "samples_to_optimum_median", "regret_at_100", "regret_at_200"):
            rows.append({"method": r["method"], "metric": metric, "value": r[metric], "n_seeds": r["n_seeds"],
                         "task": "nb201/cifar10", "censored": r["censored"], "options": opts,
                         **({"se": r["samples_to_optimum_se"]} if metric == "samples_to_optimum_mean" else {})})
        bars[r["method"]] = (r["samples_to_optimum_mean"], r["samples_to_optimum_se"])
    write_results("baseline_tuning", rows)
    plot_bars(bars, RESULTS_DIR / "baseline_tuning.png", title=f"NB201: mean samples to optimum ({args.seeds} seeds)", ylabel="samples", log_y=True)
    for name, (m, se) in sorted(bars.items(), key=lambda kv: kv[1][0]):
        print(f"{name:28s} {m:8.1f} ± {se:.1f}")


if __name__ == "__main__":
    main()
