"""How different are the accuracy distributions of LaNAS' leaves? (issue 5; brief §5 item 17: KL between leaf
distributions, the thesis' Fig. 4.7 analogue) on the embedded NB201 CIFAR-10 table.

Per seed, LaNAS in its faithful configuration (the strategy's defaults) samples ``--samples`` architectures;
its tree is then re-learned on them and every one of the 15,625 cells of the table is routed to a leaf. The
accuracies in each leaf are binned on the whole table's deciles-style quantile bins (``--bins`` of equal mass),
so the table itself is uniform over the bins. Metrics, per seed:

- ``kl_leaf_vs_table``: KL(leaf || table) averaged over leaves weighted by their size; this is the mutual
  information (nats) between "which leaf" and "which accuracy bin": 0 when the tree ignores accuracy;
- ``kl_pairwise``: symmetric KL between two leaves, averaged over pairs of leaves with at least 20 cells;
- ``leaf_order_spearman``: Spearman correlation between a leaf's left-to-right position and its mean accuracy
  (LaNAS puts the better side on the left, so a learned tree gives a strongly negative value);
- ``top1_enrichment``: the share of the table's top-1 % cells that fall in the leftmost leaf, over that leaf's
  share of the table (1 = no better than chance).

Control (same seeds, same sampled architectures, same tree shape): the tree learned on the samples' scores
shuffled among them, so any structure it finds is chance plus the encoding's geometry. Claims use the protocol's
2-standard-error rule (``beats``). Bins get a pseudo-count of 0.5 so that KL stays finite.
Writes benchmarks/results/lanas_leaves.json and .png (per-leaf accuracy box plots for seed 0, learned and
shuffled, left to right, and the pairwise KL matrix of the learned tree).

    python benchmarks/lanas_leaves.py --seeds 10 --samples 200
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.core import Result
from nasagent.registry import make_benchmark
from nasagent.report.results import RESULTS_DIR, beats, mean_se, write_results
from nasagent.strategies.lanas import LaNAS


def in_order_leaves(tree: LaNAS) -> list[int]:
    """Leaf ids from left (the better side at every split) to right."""
    out, stack, node = [], [], 0
    while stack or node is not None:
        while node is not None:
            stack.append(node)
            split = node < tree.n_internal and tree.split[node]
            node = 2 * node + 1 if split else None
        node = stack.pop()
        if not (node < tree.n_internal and tree.split[node]):
            out.append(node)
            node = None
        else:
            node = 2 * node + 2
    return out


def kl(p: np.ndarray, q: np.ndarray) -> float:
    return float(np.sum(p * np.log(p / q)))


def leaf_stats(tree: LaNAS, E: np.ndarray, acc: np.ndarray, edges: np.ndarray, top: np.ndarray) -> dict:
    """The metrics of the module docstring for one tree, plus the per-leaf accuracies (left to right)."""
    from scipy.stats import spearmanr

    leaf = tree.leaf_of(E)
    order = [n for n in in_order_leaves(tree) if (leaf == n).any()]
    bins = np.clip(np.searchsorted(edges, acc, side="right") - 1, 0, len(edges) - 2)
    k = len(edges) - 1
    table = np.bincount(bins, minlength=k) + 0.5
    table /= table.sum()
    members = {n: leaf == n for n in order}
    dists, sizes = {}, {}
    for n in order:
        h = np.bincount(bins[members[n]], minlength=k) + 0.5
        dists[n], sizes[n] = h / h.sum(), int(members[n].sum())
    total = sum(sizes.values())
    sym = [[0.5 * (kl(dists[a], dists[b]) + kl(dists[b], dists[a])) for b in order] for a in order]
    big = [i for i, n in enumerate(order) if sizes[n] >= 20]
    pair = [sym[i][j] for x, i in enumerate(big) for j in big[x + 1 :]]
    means = [float(acc[members[n]].mean()) for n in order]
    rho = float(spearmanr(np.arange(len(order)), means)[0]) if len(order) > 2 else float("nan")
    first = members[order[0]]
    return {
        "n_leaves": len(order),
        "kl_leaf_vs_table": sum(sizes[n] / total * kl(dists[n], table) for n in order),
        "kl_pairwise": float(np.mean(pair)) if pair else float("nan"),
        "leaf_order_spearman": rho,
        "top1_enrichment": float((top & first).sum() / top.sum() / (first.sum() / len(acc))),
        "order": order, "sizes": [sizes[n] for n in order], "means": means,
        "pairwise_matrix": sym,
        "acc_by_leaf": [acc[members[n]] for n in order],
    }


def run_seed(bench, space, objective, seed: int, samples: int):
    """LaNAS (defaults) for ``samples`` table lookups; returns the learned tree and a twin fit on shuffled scores."""
    tree = LaNAS(space, seed=seed)
    for _ in range(samples):
        t = tree.ask()
        res = bench(t.arch)
        tree.tell(t, Result(metrics=res.metrics, score=objective.score(res.metrics)))
    tree.learn()
    twin = LaNAS(space, seed=seed)
    twin.encodings, twin.archs = list(tree.encodings), list(tree.archs)
    twin.scores = list(np.random.default_rng(1000 + seed).permutation(np.array(tree.scores, dtype=float)))
    twin.learn()
    return tree, twin


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--samples", type=int, default=200, help="table lookups LaNAS makes before its tree is read")
    ap.add_argument("--bins", type=int, default=20, help="equal-mass accuracy bins of the whole table")
    args = ap.parse_args()
    bench = make_benchmark("nb201")
    objective = bench.objective()
    space = bench.space
    archs = list(space.enumerate())
    E = np.stack([np.asarray(space.encode(a), dtype=np.float64) for a in archs])
    acc = np.array([objective.score(bench(a).metrics) for a in archs])
    edges = np.quantile(acc, np.linspace(0, 1, args.bins + 1))
    edges[-1] += 1e-9
    top = acc >= np.quantile(acc, 0.99)
    keys = ("kl_leaf_vs_table", "kl_pairwise", "leaf_order_spearman", "top1_enrichment", "n_leaves")
    per = {"learned": {k: [] for k in keys}, "shuffled": {k: [] for k in keys}}
    first = {}
    for seed in range(args.seeds):
        tree, twin = run_seed(bench, space, objective, seed, args.samples)
        for label, t in (("learned", tree), ("shuffled", twin)):
            st = leaf_stats(t, E, acc, edges, top)
            for k in keys:
                per[label][k].append(st[k])
            if seed == 0:
                first[label] = st
        print(f"seed {seed}: " + "  ".join(f"{lab} KL {per[lab]['kl_leaf_vs_table'][-1]:.3f} rho {per[lab]['leaf_order_spearman'][-1]:+.2f} "
                                             f"top1x {per[lab]['top1_enrichment'][-1]:.1f}" for lab in per), flush=True)
    rows, claims = [], {}
    for label, d in per.items():
        for k in keys:
            v, se = mean_se(d[k])
            rows.append({"method": f"lanas-{label}", "metric": k, "value": v, "se": se, "per_seed": d[k],
                         "task": "nb201/cifar10", "n_seeds": args.seeds, "budget": args.samples})
    for k in ("kl_leaf_vs_table", "kl_pairwise", "top1_enrichment"):
        claims[f"learned_vs_shuffled_{k}"] = beats(per["learned"][k], per["shuffled"][k], lower_is_better=False)
    claims["learned_vs_shuffled_leaf_order_spearman"] = beats(per["learned"]["leaf_order_spearman"],
                                                              per["shuffled"]["leaf_order_spearman"], lower_is_better=True)
    seed0 = {lab: {k: first[lab][k] for k in ("order", "sizes", "means", "pairwise_matrix")} for lab in first}
    write_results("lanas_leaves", rows, extra={"claims": claims, "seed0": seed0, "bins": args.bins,
                                               "lanas_options": "LaNAS defaults (faithful): height 6, n_init 20, n_select 10, C_p auto"})
    plot(first, RESULTS_DIR / "lanas_leaves.png", args.samples)
    for r in rows:
        print(f"{r['method']:16s} {r['metric']:22s} {r['value']:8.3f} +- {r['se']:.3f}")
    print(claims)


def plot(first: dict, path, samples: int) -> None:
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.6), dpi=100, gridspec_kw={"width_ratios": [1.2, 1.2, 1]})
    for ax, label in zip(axes[:2], ("learned", "shuffled")):
        st = first[label]
        ax.boxplot(st["acc_by_leaf"], showfliers=False)
        ax.set_xticks(range(1, len(st["order"]) + 1), [f"{n}\n{s}" for n, s in zip(st["order"], st["sizes"])], fontsize=6)
        ax.set_xlabel("leaf id / cells of the table in it (left = the better side of every split)")
        ax.set_ylabel("CIFAR-10 accuracy of the leaf's cells")
        ax.set_title(f"seed 0, tree {label} from {samples} samples: KL(leaf||table) {st['kl_leaf_vs_table']:.3f} nats",
                     fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    lo = min(a.get_ylim()[0] for a in axes[:2])
    hi = max(a.get_ylim()[1] for a in axes[:2])
    for a in axes[:2]:  # one accuracy scale for both trees
        a.set_ylim(lo, hi)
    m = np.array(first["learned"]["pairwise_matrix"])
    im = axes[2].imshow(m, cmap="viridis")
    axes[2].set_title("symmetric KL between leaves (learned tree, seed 0)", fontsize=10)
    axes[2].set_xlabel("leaf (left to right)")
    axes[2].set_ylabel("leaf (left to right)")
    fig.colorbar(im, ax=axes[2], label="nats")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
