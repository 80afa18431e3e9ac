"""LA-MCTS diagnostics (thesis Figs. 5.9b and 5.11; brief acceptance check 1): 2-D Ackley on [-10, 10]^2.

Settings as the acceptance check: leaf size 10, C_p 1, 40 initial samples, ~200 evaluations; the local solver
is ``random`` (one point per iteration) so that every evaluation is one tree rebuild and one selection. Reports,
per seed, the share of iterations (after the first 5) whose selected region contains the optimum x* = 0, the
tree height and number of splits at the start and at the end, and the regret of the selected leaf's mean
against the number of splits (Fig. 5.9a analogue, summarised as the Spearman correlation). Saves the final
partition of seed 0 (every grid point coloured by its leaf, samples on top, the selected region outlined) and
its tree dump. Writes benchmarks/results/lamcts_diagnostics.json (with the tree dump of seed 0) and .png.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.benchmarks.functions import ackley
from nasagent.report.results import RESULTS_DIR, mean_se, write_results
from nasagent.strategies.lamcts import LAMCTSOptimizer


def run(seed: int, budget: int):
    opt = LAMCTSOptimizer([-10, -10], [10, 10], seed=seed, minimize=True, solver="random", leaf_size=10, cp=1.0,
                          n_init=40, keep_trees=False)
    contains = []
    for _ in range(budget):
        x = opt.ask()
        if opt.history and len(contains) < len(opt.history):  # a new iteration selected a region
            region = _selected_region(opt)
            contains.append(bool(region.contains(np.zeros((1, 2)))[0]) if region.depth else True)
        opt.tell(x, ackley(x))
    return opt, contains


def _selected_region(opt):
    """Re-select on the tree the last iteration built (same seed state is not needed: we read the leaf id)."""
    tree, leaf_id = opt.tree, opt.history[-1]["leaf"]
    from nasagent.strategies.lamcts_tree import Region

    path, node = [], tree.nodes[leaf_id]
    while node.parent is not None:
        parent = tree.nodes[node.parent]
        path.insert(0, (parent.svm, parent.kids.index(node.id)))
        node = parent
    return Region(tree.lower, tree.upper, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=200)
    args = ap.parse_args()
    from scipy.stats import spearmanr

    rows, per_seed, first = [], [], None
    for seed in range(args.seeds):
        opt, contains = run(seed, args.budget)
        h = opt.history
        share = float(np.mean(contains[5:])) if len(contains) > 5 else float("nan")
        splits = np.array([e["splits"] for e in h])
        regret = np.array([abs(e["leaf_mean"]) for e in h])  # optimum 0: regret of the selected leaf's mean
        rho = float(spearmanr(splits, regret).statistic) if np.ptp(splits) > 0 else float("nan")
        per_seed.append({"seed": seed, "share_selected_contains_optimum": share, "height_start": h[0]["height"],
                         "height_end": h[-1]["height"], "splits_start": int(splits[0]), "splits_end": int(splits[-1]),
                         "spearman_splits_vs_leaf_regret": rho, "best": opt.best[1]})
        if seed == 0:
            first = opt
    for key in ("share_selected_contains_optimum", "height_end", "splits_end", "spearman_splits_vs_leaf_regret", "best"):
        v, se = mean_se([p[key] for p in per_seed])
        rows.append({"method": "lamcts-random", "metric": key, "value": v, "se": se, "task": "ackley-2 [-10,10]^2",
                     "n_seeds": args.seeds, "budget": args.budget})
    # the tree of seed 0 travels inside the results file, so every file in results/ follows the protocol
    write_results("lamcts_diagnostics", rows, extra={"per_seed": per_seed, "tree_dump_seed0": first.tree.dump()})
    plot_partition(first, RESULTS_DIR / "lamcts_diagnostics.png")
    for r in rows:
        print(f"{r['metric']:34s} {r['value']:8.3f} +- {r['se']:.3f}")


def plot_partition(opt, path) -> None:
    from nasagent.report.plots import _plt

    plt = _plt()
    tree = opt.tree
    g = np.linspace(-10, 10, 161)
    G = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    leaves = [n for n in tree.nodes if n.leaf]
    order = {n.id: i for i, n in enumerate(sorted(leaves, key=lambda n: -n.mean))}  # 0 = best leaf
    leaf_of = np.zeros(len(G), dtype=int)
    stack = [(tree.nodes[0], np.arange(len(G)))]
    while stack:  # route the whole grid down the tree in batches
        node, idx = stack.pop()
        if node.leaf or idx.size == 0:
            leaf_of[idx] = node.id
            continue
        side = node.svm.predict(G[idx])
        stack += [(tree.nodes[node.kids[0]], idx[side == 0]), (tree.nodes[node.kids[1]], idx[side == 1])]
    lab = np.array([order[i] for i in leaf_of]).reshape(len(g), len(g))
    fig, ax = plt.subplots(1, 2, figsize=(11, 4.6), dpi=100)
    ax[0].pcolormesh(g, g, lab, cmap="viridis_r", shading="auto")
    ax[0].contour(g, g, (lab == 0).astype(float), levels=[0.5], colors="red", linewidths=1.5)
    ax[0].scatter(opt.X[:, 0], opt.X[:, 1], s=6, c="white", edgecolors="k", linewidths=0.3)
    ax[0].plot([0], [0], "r*", ms=12)
    ax[0].set_title(f"2-D Ackley: {len(leaves)} leaves after {len(opt.f)} samples (red: best leaf, *: optimum)", fontsize=9)
    h = opt.history
    ax[1].plot([e["splits"] for e in h], [abs(e["leaf_mean"]) for e in h], ".", ms=4)
    ax[1].set_xlabel("splits in the tree")
    ax[1].set_ylabel("regret of the selected leaf's mean")
    ax[1].set_title("selected region vs splits (Fig. 5.9a analogue)", fontsize=9)
    ax[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
