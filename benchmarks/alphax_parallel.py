"""AlphaX with 1, 4 and 8 trials in flight: two-phase backpropagation (§3.5) against naive parallel MCTS.

Workers are simulated deterministically (benchmarks/alphax_common.drive): ``W`` trials are asked before any
is told, and a seeded-random one of them finishes at each step, so results come back out of order as they
do from a worker pool. ``two-phase`` back-propagates the Meta-DNN's estimate (or the mean score before the
model is trained) at once and corrects it when the result arrives; ``naive`` back-propagates only on tell,
so concurrent selections pile onto the same path. Metric: samples to the NB201 CIFAR-10 global optimum.
Writes benchmarks/results/alphax_parallel.json and .png.

    python benchmarks/alphax_parallel.py --seeds 10 --cap 1000
    python benchmarks/alphax_parallel.py --config gp --seeds 100 --cap 1000    # the GP-guided configuration (GP_EI)

Results of ``--config gp`` go to alphax_parallel_gp.json / .png.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import cached, drive, set_threads, summary  # noqa: E402

from nasagent.registry import make_benchmark, make_strategy  # noqa: E402
from nasagent.report.plots import plot_bars  # noqa: E402
from nasagent.report.results import RESULTS_DIR, beats, machine_info, write_results  # noqa: E402
from nasagent.strategies.alphax import GP_EI  # noqa: E402

#: --config -> AlphaX options (the default configuration, or the GP-guided improvement behind flags)
CONFIGS = {"default": {}, "gp": GP_EI}


def config_label(config: str) -> str:
    """The method label of a configuration, as alphax_nb201.py names it (its one-worker runs share the cache)."""
    return "alphax" if config == "default" else f"alphax-{config}"


def run(mode: str, workers: int, seed: int, cap: int, config: str = "default") -> dict:
    def go():
        bench = make_benchmark("nb201")
        objective = bench.objective()
        _, opt_keys = bench.optimum(objective)
        strat = make_strategy("alphax", bench.space, seed=seed, **{**CONFIGS[config], "two_phase": mode == "two-phase"})
        return drive(strat, bench, objective, cap, opt_keys, workers=workers, seed=seed)

    label = config_label(config)
    if workers == 1:  # one worker: the same runs as alphax_nb201.py's, shared through its cache
        tag = f"nb201_{label}_s{seed}_cap{cap}"
    else:
        tag = f"parallel_{mode}_w{workers}_s{seed}_cap{cap}" if config == "default" else f"parallel-{config}_{mode}_w{workers}_s{seed}_cap{cap}"
    return cached(tag, go)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--cap", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 4, 8])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="default")
    args = ap.parse_args()
    name = "alphax_parallel" if args.config == "default" else f"alphax_parallel_{args.config}"
    prefix = config_label(args.config)
    set_threads()

    rows, values, bars = [], {}, {}
    for mode in ("two-phase", "naive"):
        for w in args.workers:
            if w == 1 and mode == "naive":
                continue  # with one trial in flight the two are the same algorithm
            runs = [run(mode, w, s, args.cap, args.config) for s in range(args.seeds)]
            sm = summary(runs, args.cap)
            label = prefix if w == 1 else f"{prefix}-{mode}"
            common = {"task": "nb201/cifar10", "workers": w, "n_seeds": args.seeds, "budget": args.cap, "censored": sm["censored"]}
            rows.append({"method": label, "metric": "samples_to_optimum_mean", "value": sm["mean"], "se": sm["se"], **common})
            rows.append({"method": label, "metric": "samples_to_optimum_median", "value": sm["median"], **common})
            values[(mode, w)] = sm["values"]
            bars[f"{label} x{w}"] = (sm["mean"], sm["se"])
            print(f"{label:18s} workers {w}: mean {sm['mean']:7.1f} (se {sm['se']:.1f}) median {sm['median']:6.1f} censored {sm['censored']}", flush=True)
    one = values[("two-phase", 1)]
    checks = {}
    for (mode, w), v in values.items():
        if w > 1:
            checks[f"{mode}_w{w}_over_w1_ratio"] = (sum(v) / len(v)) / (sum(one) / len(one))
            checks[f"{mode}_w{w}_vs_w1"] = beats(v, one)
    for w in args.workers:
        if w > 1:
            checks[f"two-phase_vs_naive_w{w}"] = beats(values[("two-phase", w)], values[("naive", w)])
    write_results(name, rows, extra={"checks": checks, "config": CONFIGS[args.config]}, machine=machine_info(threads=1))
    plot_bars(bars, RESULTS_DIR / f"{name}.png", title=f"AlphaX ({args.config}) on NB201: samples to optimum vs trials in flight (capped)",
              ylabel="samples")
    print(checks)


if __name__ == "__main__":
    main()
