"""A search end to end with the few-shot evaluator, its best architecture retrained from scratch.

For each seed: regularized evolution searches NB201 through the benchmark ``fewshot:digits16`` (the same
few-shot supernets as ``supernet_ranking.py``'s thesis protocol, loaded from its cache when present) for
``--budget`` samples. The best architecture by supernet validation score is then retrained from scratch
with the ground truth's recipe for 3 training seeds, and compared with the median random architecture of
the ground truth (``nb201_ground_truth.py``: uniform random cells trained the same way). The claim needs the
difference to exceed 2 standard errors (best: over its training seeds; median: bootstrap over the sample).
Writes ``benchmarks/results/fewshot_search.json`` and ``.png``.

    python benchmarks/fewshot_search.py --seeds 3 --budget 300
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_ground_truth import TASK, load_table, sample_archs  # noqa: E402
from supernet_ranking import supernet_tag  # noqa: E402

from nasagent.report.results import CACHE_DIR, RESULTS_DIR, machine_info, mean_se, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=40, help="supernet epochs (children get a quarter each)")
    ap.add_argument("--strategy", default="evolution")
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=48, help="supernet batch, as in supernet_ranking.py "
                    "(other than 48: writes fewshot_search_bs<B>.json)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import nasagent
    from nasagent.evaluation.train import TrainingBenchmark

    table = load_table(TASK)
    archs = [a for a in sample_archs(100) if a in table]
    if len(archs) < 10:
        raise SystemExit("the ground truth is missing: run benchmarks/nb201_ground_truth.py first")
    seeds_gt = sorted(set.intersection(*(set(table[a]) for a in archs)))
    random_acc = np.array([np.mean([table[a][s]["test_accuracy"] for s in seeds_gt]) for a in archs])
    boot = np.random.default_rng(0).choice(random_acc, size=(2000, len(random_acc)))
    median, median_se = float(np.median(random_acc)), float(np.median(boot, axis=1).std())

    cache = CACHE_DIR / "fewshot_search" / f"{supernet_tag(args.epochs, args.batch_size)}-b{args.budget}-{args.strategy}"
    cache.mkdir(parents=True, exist_ok=True)
    supernets = CACHE_DIR / "supernet_ranking" / supernet_tag(args.epochs, args.batch_size)
    runs = []
    for seed in range(args.seeds):
        path = cache / f"s{seed}.json"
        if path.exists():
            runs.append(json.loads(path.read_text()))
            continue
        t0 = time.time()
        opts = {"epochs": args.epochs, "child_epochs": max(1, round(args.epochs / 4)), "splits": 1, "seed": seed, "batch_size": args.batch_size,
                "C": TASK["C"], "N": TASK["N"], "device": "cpu", "checkpoint_dir": str(supernets / f"ck-thesis-s{seed}")}
        res = nasagent.search(f"fewshot:{TASK['data']}", args.strategy, budget=args.budget, seed=seed, space="nb201",
                              benchmark_options=opts, plot=False)
        search_seconds = time.time() - t0
        best = res.best.arch
        accs = []
        for s in range(args.retrain_seeds):
            bench = TrainingBenchmark(TASK["data"], space="nb201", seed=s, data_seed=TASK["data_seed"], epochs=TASK["epochs"],
                                      lr=TASK["lr"], batch_size=TASK["batch_size"], C=TASK["C"], N=TASK["N"], measure=False)
            accs.append(bench(best).metrics["test_accuracy"])
        rec = {"seed": seed, "best_arch": best, "supernet_score": res.best_value, "retrained_test_accuracy": accs,
               "search_wall_seconds": search_seconds, "search_cost": res.cost, "samples": res.samples,
               "retrain_wall_seconds": time.time() - t0 - search_seconds}
        path.write_text(json.dumps(rec))
        runs.append(rec)
        print(f"seed {seed}: best {best} supernet {res.best_value:.1f} retrained {np.mean(accs):.2f} "
              f"(search {search_seconds:.0f} s)", flush=True)

    rows = []
    verdicts = []
    for rec in runs:
        m, se = mean_se(rec["retrained_test_accuracy"])
        diff = m - median
        se_diff = math.sqrt(se**2 + median_se**2)
        verdict = "win" if diff > 2 * se_diff else ("loss" if diff < -2 * se_diff else "tie")
        verdicts.append(verdict)
        rows.append({"method": f"{args.strategy}-fewshot", "metric": "retrained_test_accuracy", "value": m, "se": se,
                     "n_seeds": len(rec["retrained_test_accuracy"]), "task": "nb201/digits16", "samples": rec["samples"],
                     "seed": rec["seed"], "verdict_vs_median_random": verdict, "difference": diff, "difference_se": se_diff})
        rows.append({"method": f"{args.strategy}-fewshot", "metric": "search_wall_seconds", "value": rec["search_wall_seconds"],
                     "seed": rec["seed"], "samples": rec["samples"]})
    pooled = [a for rec in runs for a in rec["retrained_test_accuracy"]]
    rows.append({"method": "random", "metric": "median_test_accuracy", "value": median, "se": median_se, "samples": len(random_acc),
                 "task": "nb201/digits16"})
    rows.append({"method": "random", "metric": "best_of_sample_test_accuracy", "value": float(random_acc.max()), "samples": len(random_acc)})
    rows.append({"method": f"{args.strategy}-fewshot", "metric": "retrained_test_accuracy_all_seeds", "value": float(np.mean(pooled)),
                 "se": mean_se(pooled)[1], "n_seeds": len(runs)})
    name = "fewshot_search" if args.batch_size == 48 else f"fewshot_search_bs{args.batch_size}"
    write_results(name, rows, machine=machine_info(threads=1),
                  extra={"task": TASK, "budget": args.budget, "supernet_epochs": args.epochs, "supernet_batch_size": args.batch_size, "strategy": args.strategy, "verdicts": verdicts,
                         "runs": runs, "rule": "win if retrained mean - median random > 2 * sqrt(se_best^2 + se_median^2)"})
    _plot(runs, random_acc, RESULTS_DIR / f"{name}.png")
    print(json.dumps(rows, indent=1))


def _plot(runs, random_acc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(random_acc, bins=20, alpha=0.6, label="random NB201 cells (ground truth)")
    ax.axvline(np.median(random_acc), color="k", ls="--", label="median random")
    for rec in runs:
        ax.axvline(np.mean(rec["retrained_test_accuracy"]), color="C3", label=f"few-shot search best, seed {rec['seed']}")
    ax.set_xlabel("test accuracy after training from scratch (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
