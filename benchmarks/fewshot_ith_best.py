"""'i-th best accuracy' curves (thesis Fig. 6.4 in small): searches steered by one-shot vs few-shot supernet scores.

Each supernet seed trains the thesis protocol of ``supernet_ranking.py`` on digits16: a one-shot NB201 supernet of
``--epochs`` epochs, then split on one seeded edge into 5 children that inherit its weights and train a quarter as
long; ``one-shot-long`` trains one supernet the same 2.25x epochs, the equal-budget control. Each estimator
scores every one of the 15,625 NB201 cells once (validation accuracy with inherited weights and recalibrated BN),
cached with ``supernet_ranking.py``'s scores. Searches then read those scores:
regularized evolution, REINFORCE and random search, ``--search-seeds`` runs each per supernet seed, ``--budget``
distinct cells per run (a re-proposed cell is answered from memory, as the runner's journal does). The i-th best
accuracy of a run is the truth of the cell with the best supernet score among its first i cells; the same
searches with the truth itself as the score are the ceiling.

Truth is the NB201 CIFAR-10 test accuracy of the embedded table, not the digits16 ground truth, which covers only
100 cells while the searches visit thousands. So the curves measure how well a digits16 supernet steers a search
over NB201 (``truth: nb201`` of ``supernet_ranking.py``): reported, not a goal. Claims: few-shot against
one-shot and one-shot-long at each reported i, 2-se rule over runs paired by (supernet seed, search seed).
``supernets`` in the JSON gives each supernet's cost and its Kendall tau with the table over all cells and over
the table's top 10 %.

    python benchmarks/fewshot_ith_best.py --supernet-seeds 2 --search-seeds 50 --budget 300 --workers 2

Writes ``benchmarks/results/fewshot_ith_best.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_ground_truth import TASK
from supernet_ranking import scores_for, supernet_tag

from nasagent.core import Result
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, write_results

ESTIMATORS = ("one-shot", "few-shot-thesis", "one-shot-long")
STRATEGIES = ("evolution", "reinforce", "random")
REPORT_AT = (25, 50, 100, 200, 300, 500)


def _cells() -> list[str]:
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    return [sp.format(a) for a in sp.enumerate()]


def _cache(epochs: int, batch_size: int) -> Path:
    path = CACHE_DIR / "supernet_ranking" / supernet_tag(epochs, batch_size)
    path.mkdir(parents=True, exist_ok=True)
    return path


def score_job(estimator: str, seed: int, epochs: int, batch_size: int, cells: list[str] | None) -> dict:
    """Scores of ``cells`` (all of NB201 when None) under one estimator, trained (or resumed) for one seed.

    ``one-shot-long`` trains as many epochs as the thesis protocol's tree spends (``epochs`` + 5 x a quarter)."""
    import torch

    torch.set_num_threads(1)
    from nasagent.evaluation.datasets import load_dataset

    data = load_dataset(TASK["data"], seed=TASK["data_seed"])
    long_epochs = epochs + 5 * max(1, round(epochs / 4))
    return scores_for(estimator, seed, cells or _cells(), epochs, data, _cache(epochs, batch_size), batch_size, long_epochs)


def search_curve(strategy: str, seed: int, score: dict[str, float], truth: dict[str, float], budget: int) -> np.ndarray:
    """Truth of the best-scored cell after each of ``budget`` distinct cells of one search run."""
    from nasagent.registry import make_strategy
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    strat = make_strategy(strategy, sp, seed=seed)
    seen: set[str] = set()
    best_score, best_truth, curve = -np.inf, np.nan, []
    asks = 0
    while len(curve) < budget and asks < 50 * budget:  # the guard only stops a strategy stuck on seen cells
        asks += 1
        trial = strat.ask()
        cell = sp.format(trial.arch)
        s = score[cell]
        strat.tell(trial, Result(metrics={"score": s}, score=s))
        if cell in seen:
            continue
        seen.add(cell)
        if s > best_score:
            best_score, best_truth = s, truth[cell]
        curve.append(best_truth)
    return np.array(curve + [best_truth] * (budget - len(curve)))


def search_curves(strategy: str, seeds: list[int], score: dict, truth: dict, budget: int) -> list[np.ndarray]:
    """One search run per seed (a process-pool job)."""
    return [search_curve(strategy, seed, score, truth, budget) for seed in seeds]


def rank_agreement(score: dict[str, float], truth: dict[str, float]) -> dict[str, float]:
    """Kendall tau of a supernet's scores with the table, over all cells and over the table's top 10 %."""
    from scipy.stats import kendalltau

    cells = sorted(truth)
    t = np.array([truth[c] for c in cells])
    s = np.array([score[c] for c in cells])
    top = t >= np.quantile(t, 0.9)
    return {"kendall_tau": float(kendalltau(s, t).statistic), "kendall_tau_top10": float(kendalltau(s[top], t[top]).statistic)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet-seeds", type=int, default=2)
    ap.add_argument("--search-seeds", type=int, default=50)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=100, help="one-shot supernet epochs (children: a quarter each)")
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    t0 = time.time()
    cells = _cells()
    seeds = range(args.supernet_seeds)
    with ProcessPoolExecutor(args.workers) as ex:
        # train each seed's tree once (the two estimators share its checkpoints), then score every cell
        list(ex.map(score_job, ["few-shot-thesis"] * len(seeds), seeds, [args.epochs] * len(seeds),
                    [args.batch_size] * len(seeds), [cells[:1]] * len(seeds)))
        futures = {(e, s): ex.submit(score_job, e, s, args.epochs, args.batch_size, None) for s in seeds for e in ESTIMATORS}
        recs = {job: f.result() for job, f in futures.items()}

    from nasagent.benchmarks.nb201 import nb201_benchmark
    from nasagent.spaces.nb201 import NB201Space

    sp, nb = NB201Space(), nb201_benchmark()
    truth = {c: float(nb.value(sp.key(sp.parse(c)), "accuracy")) for c in cells}
    at = [i for i in REPORT_AT if i <= args.budget]
    curves: dict[tuple[str, str], list[np.ndarray]] = {}
    with ProcessPoolExecutor(args.workers) as ex:
        jobs = [(strategy, s, est) for strategy in STRATEGIES for s in seeds for est in (*ESTIMATORS, "truth")]
        futures = [ex.submit(search_curves, strategy, [1000 * s + r for r in range(args.search_seeds)],
                             truth if est == "truth" else recs[(est, s)]["scores"], truth, args.budget)
                   for strategy, s, est in jobs]
        for (strategy, _, est), f in zip(jobs, futures):  # in job order, so the curves do not depend on timing
            curves.setdefault((strategy, est), []).extend(f.result())
    print(f"searches done ({time.time() - t0:.0f} s)", flush=True)

    rows, verdicts = [], {}
    for (strategy, est), cs in curves.items():
        c = np.array(cs)
        for i in at:
            q1, med, q3 = np.percentile(c[:, i - 1], [25, 50, 75])
            rows.append({"method": f"{strategy}/{est}", "metric": f"ith_best_accuracy@{i}", "value": float(c[:, i - 1].mean()),
                         "se": float(c[:, i - 1].std(ddof=1) / np.sqrt(len(c))), "median": float(med), "q1": float(q1),
                         "q3": float(q3), "n_runs": len(c), "samples": i, "truth": "nb201", "task": "nb201/digits16"})
    for strategy in STRATEGIES:
        few = np.array(curves[(strategy, "few-shot-thesis")])
        for other in ("one-shot", "one-shot-long"):
            ref = np.array(curves[(strategy, other)])
            for i in at:
                verdicts[f"{strategy}: few-shot vs {other} @{i}"] = beats(few[:, i - 1], ref[:, i - 1], lower_is_better=False)
    optimum = max(truth.values())
    costs = {f"{e}-s{s}": {"train_seconds": recs[(e, s)]["train_seconds"], "epochs": recs[(e, s)]["epochs"],
                           "score_seconds_all_cells": recs[(e, s)]["score_seconds"],
                           **rank_agreement(recs[(e, s)]["scores"], truth)} for (e, s) in recs}
    write_results("fewshot_ith_best", rows, machine=machine_info(threads=1), extra={
        "task": TASK, "epochs": args.epochs, "supernet_batch_size": args.batch_size, "supernet_seeds": args.supernet_seeds,
        "search_seeds": args.search_seeds, "budget": args.budget, "strategies": STRATEGIES, "nb201_optimum": optimum,
        "verdicts": verdicts, "supernets": costs, "wall_seconds": time.time() - t0,
        "protocol": "i-th best: NB201 CIFAR-10 test accuracy (embedded table) of the best-scored cell among a run's first "
                    "i distinct cells; verdicts: 2-se rule over runs paired by supernet seed and search seed",
    })
    _plot(curves, args.budget, optimum, RESULTS_DIR / "fewshot_ith_best.png")
    for k, v in verdicts.items():
        print(f"{k}: {v}")


def _plot(curves, budget: int, optimum: float, path: Path) -> None:
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, len(STRATEGIES), figsize=(5 * len(STRATEGIES), 4), sharey=True)
    x = np.arange(1, budget + 1)
    for ax, strategy in zip(axes, STRATEGIES):
        for est, colour in zip((*ESTIMATORS, "truth"), ("tab:blue", "tab:red", "tab:green", "tab:gray")):
            c = np.array(curves[(strategy, est)])
            q1, med, q3 = np.percentile(c, [25, 50, 75], axis=0)
            ax.plot(x, med, color=colour, label="table (ceiling)" if est == "truth" else est, ls="--" if est == "truth" else "-")
            ax.fill_between(x, q1, q3, color=colour, alpha=0.2)
        ax.axhline(optimum, color="k", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_title(f"{strategy} (median, interquartile band)", fontsize=10)
        ax.set_xlabel("distinct cells sampled (i)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("i-th best NB201 CIFAR-10 test accuracy (%)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
