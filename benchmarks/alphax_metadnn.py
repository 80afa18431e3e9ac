"""AlphaX's Meta-DNN value models on NB201 CIFAR-10: rank correlation on held-out cells and fit time.

The paper's ablation (§4.2, Fig. 11) compares its MLP, multi-stage MLP and LSTM by the correlation of
predicted and true accuracy on an 80/20 split of NASBench. Here: ``--n-train`` random NB201 cells to fit,
2,000 other cells to test (Kendall tau and Spearman rho), seconds per fit, for the seed-size MLP (the paper's
512-2048-2048-512, Adam lr 2e-5, batch 128, 20 epochs), the small default AlphaX refits (64-64, rank
targets; and with linear targets), the multi-stage model (small widths) and the LSTM (embedding 100, hidden
100). Fit time is what AlphaX pays per refit; it is why the default is the small warm-started model.
Writes benchmarks/results/alphax_metadnn.json and .png.

    python benchmarks/alphax_metadnn.py --seeds 3 --n-train 100 500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import cached, set_threads  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import kendalltau, spearmanr  # noqa: E402

from nasagent.evaluation.predictors.mlp import make_value_model  # noqa: E402
from nasagent.registry import make_benchmark  # noqa: E402
from nasagent.report.plots import plot_bars  # noqa: E402
from nasagent.report.results import RESULTS_DIR, machine_info, mean_se, write_results  # noqa: E402
from nasagent.strategies.alphax import SEED_MODEL, SMALL_MODEL  # noqa: E402

SMALL = {k: v for k, v in SMALL_MODEL.items() if k != "warm_start"}
MODELS = {
    "mlp-seed-size": ("mlp", dict(SEED_MODEL)),
    "mlp-small-rank": ("mlp", dict(SMALL)),
    "mlp-small-linear": ("mlp", {**SMALL, "targets": "linear"}),
    "multistage-small": ("multistage", {k: v for k, v in SMALL.items() if k != "targets"}),
    "lstm": ("lstm", {"embedding": 100, "hidden": 100, "lr": 2e-5, "batch_size": 128, "epochs": 20}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-train", type=int, nargs="*", default=[100, 500])
    ap.add_argument("--n-test", type=int, default=2000)
    args = ap.parse_args()
    set_threads()
    bench = make_benchmark("nb201")
    space = bench.space
    keys = [space.key(a) for a in space.enumerate()]

    def one(label: str, n: int, seed: int) -> dict:
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(keys))
        archs = [space.parse(keys[i]) for i in idx[: n + args.n_test]]
        y = np.array([bench(a).metrics["accuracy"] for a in archs])
        name, opts = MODELS[label]
        model = make_value_model(name, space, seed=seed, threads=1, **opts)
        t0 = time.perf_counter()
        model.fit(archs[:n], y[:n])
        fit_s = time.perf_counter() - t0
        pred = model.predict(archs[n:])
        return {"kendall": float(kendalltau(pred, y[n:]).statistic), "spearman": float(spearmanr(pred, y[n:]).statistic), "fit_seconds": fit_s}

    rows, bars = [], {}
    for n in args.n_train:
        for label in MODELS:
            runs = [cached(f"metadnn_{label}_n{n}_s{s}", lambda label=label, n=n, s=s: one(label, n, s)) for s in range(args.seeds)]
            for metric in ("kendall", "spearman", "fit_seconds"):
                m, se = mean_se(r[metric] for r in runs)
                name = {"kendall": "kendall_tau", "spearman": "spearman_rho", "fit_seconds": "fit_seconds"}[metric]
                rows.append({"method": label, "metric": name, "value": m, "se": se, "n_train": n, "n_seeds": args.seeds, "task": "nb201/cifar10"})
                if metric == "kendall" and n == max(args.n_train):
                    bars[label] = (m, se)
            print(f"n={n:5d} {label:18s} " + " ".join(f"{k} {np.mean([r[k] for r in runs]):.3f}" for k in ("kendall", "spearman", "fit_seconds")), flush=True)
    write_results("alphax_metadnn", rows, extra={"n_test": args.n_test}, machine=machine_info(threads=1))
    plot_bars(bars, RESULTS_DIR / "alphax_metadnn.png", title=f"Meta-DNN on NB201: Kendall tau on {args.n_test} held-out cells (n_train={max(args.n_train)})", ylabel="Kendall tau")


if __name__ == "__main__":
    main()
