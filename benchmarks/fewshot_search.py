"""A search end to end with the few-shot evaluator, its best architecture retrained from scratch.

For each seed: regularized evolution searches NB201 through the benchmark ``fewshot:digits16`` (the same
few-shot supernets as ``supernet_ranking.py``'s thesis protocol, loaded from its cache when present) for
``--budget`` samples. The best architecture by supernet validation score is then retrained from scratch
with the ground truth's recipe for 3 training seeds, and compared with the median random architecture of
the ground truth (``nb201_ground_truth.py``: uniform random cells trained the same way). The claim needs the
difference to exceed 2 standard errors (best: over its training seeds; median: bootstrap over the sample).

``--top-k K`` adds the usual last stage of a weight-sharing search (top-K selection, thesis §6.1 item 3): the K
cells with the best supernet scores are each trained from scratch once with a *selection* seed (100, never one
of the evaluation seeds), the one with the best validation accuracy is kept, and that cell is retrained with
the evaluation seeds like the supernet's best. Its extra cost (K trainings) is reported. Writes
``benchmarks/results/fewshot_search.json`` and ``.png``.

    python benchmarks/fewshot_search.py --seeds 3 --budget 300 --top-k 10
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
from nb201_ground_truth import TASK, random_reference  # noqa: E402
from supernet_ranking import supernet_tag  # noqa: E402

from nasagent.evaluation.selection import SELECTION_SEED, top_scored  # noqa: E402
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, machine_info, mean_se, write_results  # noqa: E402


def _verdict(diff: float, se: float) -> str:
    """The protocol's 2-standard-error rule for a difference from the median random cell."""
    return "win" if diff > 2 * se else ("loss" if diff < -2 * se else "tie")


def top_k_stage(run_dir: Path, k: int, train, eval_seeds: int) -> dict:
    """Train the ``k`` best-scored cells of a search once each (selection seed), keep the best by validation
    accuracy, and retrain that one with the evaluation seeds (``nasagent.select_top_k`` with this script's
    training recipe and caching)."""
    top = [arch for arch, _ in top_scored(run_dir, k)]
    t0 = time.time()
    val = [train(a, SELECTION_SEED)["val_accuracy"] for a in top]
    seconds = time.time() - t0
    pick = top[int(np.argmax(val))]
    return {"top_k_archs": top, "top_k_val_accuracy": val, "top_k_pick": pick, "top_k_train_seconds": seconds,
            "top_k_retrained_test_accuracy": [train(pick, s)["test_accuracy"] for s in range(eval_seeds)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=100, help="supernet epochs (children get a quarter each), as in supernet_ranking.py")
    ap.add_argument("--strategy", default="evolution")
    ap.add_argument("--retrain-seeds", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=10, help="also select among the K best supernet scores by one "
                    "from-scratch training each (0: off)")
    ap.add_argument("--batch-size", type=int, default=48, help="supernet batch, as in supernet_ranking.py "
                    "(other than 48: writes fewshot_search_bs<B>.json)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    import nasagent
    from nasagent.evaluation.train import TrainingBenchmark

    median, median_se, random_acc = random_reference(TASK)

    cache = CACHE_DIR / "fewshot_search" / f"{supernet_tag(args.epochs, args.batch_size)}-b{args.budget}-{args.strategy}"
    cache.mkdir(parents=True, exist_ok=True)
    supernets = CACHE_DIR / "supernet_ranking" / supernet_tag(args.epochs, args.batch_size)

    def train(arch: str, seed: int):
        bench = TrainingBenchmark(TASK["data"], space="nb201", seed=seed, data_seed=TASK["data_seed"], epochs=TASK["epochs"],
                                  lr=TASK["lr"], batch_size=TASK["batch_size"], C=TASK["C"], N=TASK["N"], measure=False)
        return bench(arch).metrics

    runs = []
    for seed in range(args.seeds):
        path = cache / f"s{seed}.json"
        if path.exists():
            rec = json.loads(path.read_text())
            if args.top_k <= 0 or rec.get("top_k") == args.top_k:
                runs.append(rec)
                continue
        t0 = time.time()
        opts = {"epochs": args.epochs, "child_epochs": max(1, round(args.epochs / 4)), "splits": 1, "seed": seed, "batch_size": args.batch_size,
                "C": TASK["C"], "N": TASK["N"], "device": "cpu", "checkpoint_dir": str(supernets / f"ck-thesis-s{seed}")}
        res = nasagent.search(f"fewshot:{TASK['data']}", args.strategy, budget=args.budget, seed=seed, space="nb201",
                              benchmark_options=opts, plot=False, out=cache / f"run-s{seed}", overwrite=True)
        search_seconds = time.time() - t0
        best = res.best.arch
        accs = [train(best, s)["test_accuracy"] for s in range(args.retrain_seeds)]
        rec = {"seed": seed, "best_arch": best, "supernet_score": res.best_value, "retrained_test_accuracy": accs,
               "search_wall_seconds": search_seconds, "search_cost": res.cost, "samples": res.samples,
               "retrain_wall_seconds": time.time() - t0 - search_seconds}
        if args.top_k > 0:
            rec.update(top_k_stage(cache / f"run-s{seed}", args.top_k, train, args.retrain_seeds), top_k=args.top_k)
        path.write_text(json.dumps(rec))
        runs.append(rec)
        print(f"seed {seed}: best {best} supernet {res.best_value:.1f} retrained {np.mean(accs):.2f} "
              f"(search {search_seconds:.0f} s)" + (f"; top-{args.top_k} pick {rec['top_k_pick']} retrained "
              f"{np.mean(rec['top_k_retrained_test_accuracy']):.2f}" if args.top_k > 0 else ""), flush=True)

    rows = []
    variants = [(f"{args.strategy}-fewshot", "retrained_test_accuracy")]
    if args.top_k > 0:
        variants.append((f"{args.strategy}-fewshot-top{args.top_k}", "top_k_retrained_test_accuracy"))
    verdicts_by = {}
    for method, field in variants:
        for rec in runs:
            m, se = mean_se(rec[field])
            diff = m - median
            se_diff = math.sqrt(se**2 + median_se**2)
            verdict = _verdict(diff, se_diff)
            verdicts_by.setdefault(method, []).append(verdict)
            rows.append({"method": method, "metric": "retrained_test_accuracy", "value": m, "se": se,
                         "n_seeds": len(rec[field]), "task": "nb201/digits16", "samples": rec["samples"],
                         "seed": rec["seed"], "verdict_vs_median_random": verdict, "difference": diff, "difference_se": se_diff})
        # the pipeline on average: one mean per search, SE over searches (so a search's cell counts once)
        m, se = mean_se([float(np.mean(rec[field])) for rec in runs])
        diff, se_diff = m - median, math.sqrt(se**2 + median_se**2)
        verdict = _verdict(diff, se_diff)
        verdicts_by[f"{method}, pooled over search seeds"] = verdict
        rows.append({"method": method, "metric": "retrained_test_accuracy_all_seeds", "value": m, "se": se, "n_seeds": len(runs),
                     "verdict_vs_median_random": verdict, "difference": diff, "difference_se": se_diff})
    verdicts = list(verdicts_by[f"{args.strategy}-fewshot"])
    for rec in runs:
        rows.append({"method": f"{args.strategy}-fewshot", "metric": "search_wall_seconds", "value": rec["search_wall_seconds"],
                     "seed": rec["seed"], "samples": rec["samples"]})
        if args.top_k > 0:
            rows.append({"method": f"{args.strategy}-fewshot-top{args.top_k}", "metric": "selection_train_seconds",
                         "value": rec["top_k_train_seconds"], "seed": rec["seed"], "trainings": args.top_k})
    rows.append({"method": "random", "metric": "median_test_accuracy", "value": median, "se": median_se, "samples": len(random_acc),
                 "task": "nb201/digits16"})
    rows.append({"method": "random", "metric": "best_of_sample_test_accuracy", "value": float(random_acc.max()), "samples": len(random_acc)})
    name = "fewshot_search" if args.batch_size == 48 else f"fewshot_search_bs{args.batch_size}"
    write_results(name, rows, machine=machine_info(threads=1),
                  extra={"task": TASK, "budget": args.budget, "supernet_epochs": args.epochs, "supernet_batch_size": args.batch_size, "strategy": args.strategy, "verdicts": verdicts,
                         "verdicts_by_method": verdicts_by, "top_k": args.top_k, "selection_seed": SELECTION_SEED,
                         "runs": runs, "rule": "win if retrained mean - median random > 2 * sqrt(se_best^2 + se_median^2)"})
    _plot(runs, random_acc, RESULTS_DIR / f"{name}.png")
    print(json.dumps(rows, indent=1))


def _plot(runs, random_acc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    lo = float(np.percentile(random_acc, 2)) - 1  # cells at chance level (no input-output path) would squash the axis
    shown = random_acc[random_acc >= lo]
    ax.hist(shown, bins=np.arange(np.floor(lo), np.ceil(random_acc.max()) + 0.5, 0.5), alpha=0.5, color="C0",
            label=f"random NB201 cells, 3-seed mean ({len(random_acc) - len(shown)} below {lo:.0f} % not shown)")
    ax.axvline(np.median(random_acc), color="k", ls="--", label="median random cell")
    for i, rec in enumerate(runs):
        m = np.mean(rec["retrained_test_accuracy"])
        ax.axvline(m, color="C3", lw=1.5, label="supernet's best, retrained (one line per search seed)" if i == 0 else None)
        if "top_k_retrained_test_accuracy" in rec:
            ax.axvline(np.mean(rec["top_k_retrained_test_accuracy"]), color="C2", ls=":", lw=2,
                       label=f"top-{rec['top_k']} selected, retrained" if i == 0 else None)
    ax.set_xlabel("test accuracy after training from scratch (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
