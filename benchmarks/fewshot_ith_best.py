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

Truth for these searches is the NB201 CIFAR-10 test accuracy of the embedded table: the digits16 ground truth
covers only 100 cells while the searches visit thousands. So they measure how well a digits16 supernet steers a
search over NB201 (``truth: nb201`` of ``supernet_ranking.py``), across the proxy gap. A fourth panel keeps the
supernets' own task: random search without replacement over the 100 trained cells, judged by the digits16 ground
truth (``truth: digits``). Both are reported, not goals. Claims: few-shot against
one-shot and one-shot-long at each reported i, by the 2-se rule over supernet seeds (each seed's mean over its
search runs, paired by seed): runs on one supernet share its training noise, which is larger than the search's.
``supernets`` in the JSON gives each supernet's cost and its Kendall tau with the table over all cells and over
the table's top 10 %.

    python benchmarks/fewshot_ith_best.py --supernet-seeds 3 --search-seeds 50 --budget 300 --workers 2

Scoring every cell takes each supernet about 25 minutes here. ``--cells N`` shrinks the universe to the 100
trained digits16 cells plus N other seeded cells: the searches run on that subset (a proposal outside it is told
as a failed trial and not counted), so a smoke run takes a few minutes (its figures are not the benchmark's):

    python benchmarks/fewshot_ith_best.py --supernet-seeds 2 --search-seeds 2 --budget 25 --epochs 2 --cells 200 \
        --name fewshot_ith_best_smoke

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
from nb201_ground_truth import TASK, mean_test_accuracy, top_fraction_tau
from supernet_ranking import scores_for, supernet_tag

from nasagent.core import Result
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, write_results

ESTIMATORS = ("one-shot", "few-shot-thesis", "one-shot-long")
STRATEGIES = ("evolution", "reinforce", "random")
REPORT_AT = (25, 50, 100, 200, 300, 500)
DIGITS_SEARCH = "random over the 100 trained cells"
DIGITS_AT = (5, 10, 25, 50)


def _cells(n: int | None = None) -> list[str]:
    """Every NB201 cell, or (``n``) the 100 trained digits16 cells and ``n`` other cells drawn with a fixed seed."""
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    every = [sp.format(a) for a in sp.enumerate()]
    if n is None:
        return every
    trained = set(mean_test_accuracy(100, TASK)[0])
    rest = [c for c in every if c not in trained]
    pick = np.random.default_rng(2026).choice(len(rest), size=min(int(n), len(rest)), replace=False)
    return sorted(trained | {rest[int(i)] for i in pick})


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
    """Truth of the best-scored cell after each of ``budget`` distinct cells of one search run. When ``truth``
    covers part of NB201 (``--cells``), the search runs on that subset and a proposal outside it fails."""
    from nasagent.registry import make_strategy
    from nasagent.spaces.nb201 import NB201Space
    from nasagent.spaces.subset import SubsetSpace

    sp = NB201Space()
    full = len(truth) == sp.size()
    strat = make_strategy(strategy, sp if full else SubsetSpace(sp, [sp.key(sp.parse(c)) for c in truth]), seed=seed)
    seen: set[str] = set()
    best_score, best_truth, curve = -np.inf, np.nan, []
    asks = 0
    while len(curve) < budget and asks < 50 * budget:  # the guard only stops a strategy stuck on seen cells
        asks += 1
        trial = strat.ask()
        cell = sp.format(trial.arch)
        if cell not in truth:  # outside the --cells universe
            strat.tell(trial, Result.failed("outside the scored cells"))
            continue
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
    """Kendall tau of a supernet's scores with the table, over all cells and over the table's top 10 % (the same
    top-10 % tau as ``supernet_ranking.py``'s)."""
    from scipy.stats import kendalltau

    cells = sorted(truth)
    t = np.array([truth[c] for c in cells])
    s = np.array([score[c] for c in cells])
    return {"kendall_tau": float(kendalltau(s, t).statistic), "kendall_tau_top10": top_fraction_tau(t, s)}


def random_curve(seed: int, score: dict[str, float], truth: dict[str, float]) -> np.ndarray:
    """Random search without replacement over ``truth``'s cells: truth of the best-scored cell after each."""
    cells = sorted(truth)
    best_score, best_truth, curve = -np.inf, np.nan, []
    for k in np.random.default_rng(seed).permutation(len(cells)):
        if score[cells[k]] > best_score:
            best_score, best_truth = score[cells[k]], truth[cells[k]]
        curve.append(best_truth)
    return np.array(curve)


def summarise(curves: dict, at: list[int], n_sn: int, truth: str) -> tuple[list[dict], dict[str, str]]:
    """Rows (mean over runs; se over supernet seeds) and few-shot's verdicts against the two one-shot supernets.

    The verdicts' unit is the supernet seed (each seed's mean over its runs, paired by seed): runs on one
    supernet share its training noise, which is larger than the search's.
    """
    rows, verdicts = [], {}
    for (search, est), cs in curves.items():
        c = np.array(cs)  # runs in supernet-seed blocks
        for i in at:
            v = c[:, i - 1]
            per_supernet = v.reshape(n_sn, -1).mean(axis=1)
            q1, med, q3 = np.percentile(v, [25, 50, 75])
            rows.append({"method": f"{search}/{est}", "metric": f"ith_best_accuracy@{i}", "value": float(v.mean()),
                         "se": float(per_supernet.std(ddof=1) / np.sqrt(n_sn)) if n_sn > 1 else float("nan"),
                         "se_search_runs": float(v.std(ddof=1) / np.sqrt(len(v))), "by_supernet_seed": per_supernet.tolist(),
                         "median": float(med), "q1": float(q1), "q3": float(q3), "n_runs": len(v), "n_supernet_seeds": n_sn,
                         "samples": i, "truth": truth, "task": "nb201/digits16"})
    for search in dict.fromkeys(k[0] for k in curves):
        few = np.array(curves[(search, "few-shot-thesis")])
        for other in ("one-shot", "one-shot-long"):
            ref = np.array(curves[(search, other)])
            for i in at:
                d = (few[:, i - 1] - ref[:, i - 1]).reshape(n_sn, -1).mean(axis=1)
                verdicts[f"{search}: few-shot vs {other} @{i}"] = beats(d, np.zeros_like(d), lower_is_better=False)
    return rows, verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--supernet-seeds", type=int, default=3)
    ap.add_argument("--search-seeds", type=int, default=50)
    ap.add_argument("--budget", type=int, default=300)
    ap.add_argument("--epochs", type=int, default=100, help="one-shot supernet epochs (children: a quarter each)")
    ap.add_argument("--batch-size", type=int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cells", type=int, default=None,
                    help="score only the 100 trained digits16 cells and N other seeded cells, and search among them (smoke runs)")
    ap.add_argument("--name", default="fewshot_ith_best", help="results file stem")
    args = ap.parse_args()
    if args.cells is not None and args.cells < 0:
        ap.error(f"--cells must be >= 0, got {args.cells}")
    t0 = time.time()
    cells = _cells(args.cells)
    seeds = range(args.supernet_seeds)
    with ProcessPoolExecutor(args.workers) as ex:
        # train each seed's tree once (one-shot and few-shot-thesis share its checkpoints), then score every cell
        list(ex.map(score_job, ["few-shot-thesis"] * len(seeds), seeds, [args.epochs] * len(seeds),
                    [args.batch_size] * len(seeds), [cells[:1]] * len(seeds)))
        futures = {(e, s): ex.submit(score_job, e, s, args.epochs, args.batch_size, cells) for s in seeds for e in ESTIMATORS}
        recs = {job: f.result() for job, f in futures.items()}

    from nasagent.benchmarks.nb201 import nb201_benchmark
    from nasagent.spaces.nb201 import NB201Space

    sp, nb = NB201Space(), nb201_benchmark()
    truth = {c: float(nb.value(sp.key(sp.parse(c)), "accuracy")) for c in cells}
    recs = {job: {**rec, "scores": {c: rec["scores"][c] for c in cells}} for job, rec in recs.items()}  # a cache may hold more
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

    rows, verdicts = summarise(curves, at, len(seeds), "nb201")
    digits_truth = mean_test_accuracy(100, TASK)[0]
    dcurves: dict[tuple[str, str], list[np.ndarray]] = {}
    for s in seeds:
        for est in (*ESTIMATORS, "truth"):
            score = digits_truth if est == "truth" else recs[(est, s)]["scores"]
            dcurves.setdefault((DIGITS_SEARCH, est), []).extend(
                random_curve(1000 * s + r, score, digits_truth) for r in range(args.search_seeds))
    more_rows, more_verdicts = summarise(dcurves, [i for i in DIGITS_AT if i <= len(digits_truth)], len(seeds), "digits")
    rows, verdicts = rows + more_rows, {**verdicts, **more_verdicts}
    optimum = max(truth.values())
    costs = {f"{e}-s{s}": {"train_seconds": recs[(e, s)]["train_seconds"], "epochs": recs[(e, s)]["epochs"],
                           "score_seconds_all_cells": recs[(e, s)]["score_seconds"],
                           **rank_agreement(recs[(e, s)]["scores"], truth)} for (e, s) in recs}
    write_results(args.name, rows, machine=machine_info(threads=1), extra={
        "task": TASK, "epochs": args.epochs, "supernet_batch_size": args.batch_size, "supernet_seeds": args.supernet_seeds,
        "search_seeds": args.search_seeds, "budget": args.budget, "cells": len(cells), "strategies": STRATEGIES, "nb201_optimum": optimum,
        "verdicts": verdicts, "supernets": costs, "wall_seconds": time.time() - t0,
        "protocol": "i-th best: the truth of the best-scored cell among a run's first i distinct cells; truth nb201: "
                    "NB201 CIFAR-10 test accuracy (embedded table), searches over all cells; truth digits: the digits16 "
                    "ground truth, random search over its 100 trained cells; value: mean over all runs; se and verdicts: "
                    "over supernet seeds (the mean of each seed's runs, paired by seed, 2-se rule); se_search_runs: over "
                    "runs, search noise only",
    })
    _plot(curves, dcurves, len(seeds), optimum, RESULTS_DIR / f"{args.name}.png")
    for k, v in verdicts.items():
        print(f"{k}: {v}")


def _plot(curves, dcurves, n_sn: int, optimum: float, path: Path) -> None:
    """Mean curve of each estimator (thick) and each supernet seed's mean (thin): the seeds' spread is the noise."""
    from nasagent.report.plots import _plt

    plt = _plt()
    panels = [(strategy, curves, "NB201 CIFAR-10 test accuracy (%)") for strategy in STRATEGIES]
    panels.append((DIGITS_SEARCH, dcurves, "digits16 test accuracy (%)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2))
    for ax, (search, cs, truth) in zip(axes, panels):
        for est, colour in zip((*ESTIMATORS, "truth"), ("tab:blue", "tab:red", "tab:green", "tab:gray")):
            c = np.array(cs[(search, est)])
            x = np.arange(1, c.shape[1] + 1)
            ax.plot(x, c.mean(axis=0), color=colour, lw=2, ls="--" if est == "truth" else "-",
                    label="truth as the score (ceiling)" if est == "truth" else est)
            if est != "truth":
                for per_seed in c.reshape(n_sn, -1, c.shape[1]).mean(axis=1):
                    ax.plot(x, per_seed, color=colour, lw=0.7, alpha=0.6)
        if cs is curves:
            ax.axhline(optimum, color="k", lw=0.8, ls=":")
            ax.set_ylim(89, 94.5)
        ax.set_xscale("log")
        ax.set_title(f"{search}\n(thick: mean; thin: one supernet seed each)", fontsize=9)
        ax.set_xlabel("distinct cells sampled (i)")
        ax.set_ylabel(f"i-th best, {truth}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
