"""AlphaX's algorithm comparison on its simplified CNN domain (§4.4, Fig. 13, App. 8), on digits.

The domain (spaces/convnet.py) has 585 networks, so each is trained once and cached as a table (the paper
names no dataset; here: scikit-learn's 8x8 digits, seeded 60/20/20 split, ``--epochs`` epochs of Adam, one
fixed torch seed per network; searched metric: validation accuracy, several networks may tie at the top).
Then 10 trials of AlphaX (c = 200, the paper's value for this domain), MCTS without the Meta-DNN, tabular
Q-learning (alpha 0.2, gamma 1, epsilon 0.2, Q0 0.5), hill climbing with revisit-restart, and random
search, each until it finds a best network (cap: the 585 networks). Writes
benchmarks/results/alphax_convnet.json and .png (``--name`` to change; a ``--train-fraction`` < 1 quick check writes
alphax_convnet_quick unless named); the table is cached in benchmarks/cache/alphax/.

    python benchmarks/alphax_convnet.py --seeds 6 --epochs 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import CACHE, cached, drive, set_threads, summary  # noqa: E402

import numpy as np  # noqa: E402

from nasagent.benchmarks.base import Metric, TableBenchmark  # noqa: E402
from nasagent.registry import make_strategy  # noqa: E402
from nasagent.report.plots import plot_bars  # noqa: E402
from nasagent.report.results import RESULTS_DIR, beats, machine_info, write_results  # noqa: E402
from nasagent.spaces.convnet import ConvNetSpace  # noqa: E402

METHODS = {
    "alphax": ("alphax", {}),
    "alphax-no-metadnn": ("alphax", {"metadnn": False}),
    "q-learning": ("q-learning", {}),
    "hill-climbing": ("hill-climbing", {}),
    "random": ("random", {}),
}


def build_net(arch, in_shape, n_classes):
    """Convolutions with 'same' padding (asymmetric for the even kernels), ReLU, then the dense softmax layer."""
    import torch.nn as nn

    c, h, w = in_shape
    layers = []
    for stride, filters, kernel in arch:
        layers += [nn.ZeroPad2d(((kernel - 1) // 2, kernel // 2, (kernel - 1) // 2, kernel // 2)), nn.Conv2d(c, filters, kernel, stride), nn.ReLU()]
        c, h, w = filters, -(-h // stride), -(-w // stride)
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * h * w, n_classes))


def train_table(epochs: int, train_fraction: float = 1.0) -> dict:
    """Each network of the domain trained once; ``train_fraction`` < 1 trains on that share of the training split
    only (a quick check: the table is then a different, cheaper one, cached under its own name)."""
    import torch

    from nasagent.evaluation.datasets import load_dataset

    data = load_dataset("digits", seed=0)
    space = ConvNetSpace()
    xt, yt = (torch.as_tensor(a) for a in data.split("train"))
    keep = max(1, round(train_fraction * len(yt)))
    xt, yt = xt[:keep], yt[:keep]
    splits = {s: tuple(torch.as_tensor(a) for a in data.split(s)) for s in ("val", "test")}
    table = {}
    t0 = time.time()
    for i, arch in enumerate(space.enumerate()):
        key = space.key(arch)
        torch.manual_seed(zlib.crc32(key.encode()))
        net = build_net(arch, data.input_shape, data.num_classes)
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(epochs):
            order = torch.randperm(len(yt), generator=gen)
            for s in range(0, len(yt), 64):
                idx = order[s : s + 64]
                opt.zero_grad()
                torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx]).backward()
                opt.step()
        with torch.no_grad():
            acc = {s: float((net(x).argmax(1) == y).float().mean()) * 100 for s, (x, y) in splits.items()}
        table[key] = {"val_accuracy": acc["val"], "test_accuracy": acc["test"]}
        if i % 100 == 0:
            print(f"trained {i + 1}/{space.size()} networks ({time.time() - t0:.0f} s)", flush=True)
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-fraction", type=float, default=1.0,
                    help="share of the training split each network trains on (< 1: a quick check, not the result)")
    ap.add_argument("--name", default=None, help="results file name (default alphax_convnet; alphax_convnet_quick with "
                    "--train-fraction < 1, so that a quick check never overwrites the result)")
    args = ap.parse_args()
    if not 0 < args.train_fraction <= 1:
        raise SystemExit(f"--train-fraction must be in (0, 1], got {args.train_fraction}")
    name = args.name or ("alphax_convnet" if args.train_fraction == 1 else "alphax_convnet_quick")
    set_threads()

    tag = f"_e{args.epochs}" + (f"_f{args.train_fraction:g}" if args.train_fraction < 1 else "")
    table = cached(f"convnet_digits_table{tag}", lambda: train_table(args.epochs, args.train_fraction))
    space = ConvNetSpace()
    keys = list(table)
    bench = TableBenchmark(
        name="convnet/digits", space=space,
        metrics={"val_accuracy": Metric("val_accuracy", "max", "validation accuracy (%)", report="test_accuracy"),
                 "test_accuracy": Metric("test_accuracy", "max", "test accuracy (%)")},
        default_metric="val_accuracy", keys=keys,
        columns={m: np.array([table[k][m] for k in keys]) for m in ("val_accuracy", "test_accuracy")},
    )
    objective = bench.objective()
    optimum, opt_keys = bench.optimum(objective)
    cap = space.size()

    rows, values, bars = [], {}, {}
    for label, (name, opts) in METHODS.items():
        def go(name=name, opts=opts, seed=0):
            return drive(make_strategy(name, space, seed=seed, **opts), bench, objective, cap, opt_keys, seed=seed)

        runs = [cached(f"convnet{tag}_{label}_s{s}", lambda s=s, go=go: go(seed=s)) for s in range(args.seeds)]
        sm = summary(runs, cap)
        common = {"task": "convnet/digits", "n_seeds": args.seeds, "budget": cap, "censored": sm["censored"]}
        rows.append({"method": label, "metric": "samples_to_optimum_mean", "value": sm["mean"], "se": sm["se"], **common})
        rows.append({"method": label, "metric": "samples_to_optimum_median", "value": sm["median"], **common})
        values[label] = sm["values"]
        bars[label] = (sm["mean"], sm["se"])
        print(f"{label:18s} mean {sm['mean']:7.1f} (se {sm['se']:.1f}) median {sm['median']:6.1f} censored {sm['censored']}", flush=True)
    checks = {f"alphax_vs_{m}": beats(values["alphax"], values[m]) for m in METHODS if m != "alphax"}
    checks.update({f"{m}_over_alphax_ratio": (sum(values[m]) / len(values[m])) / (sum(values["alphax"]) / len(values["alphax"])) for m in METHODS if m != "alphax"})
    vals = np.array([table[k]["val_accuracy"] for k in keys])
    extra = {"checks": checks, "n_networks": len(keys), "n_optimal": len(opt_keys), "optimum_val_accuracy": optimum,
             "optimal_networks": sorted(opt_keys), "val_accuracy_quartiles": np.percentile(vals, [25, 50, 75]).tolist(),
             "epochs": args.epochs, "train_fraction": args.train_fraction, "dataset": "digits 8x8, seeded 60/20/20 split"}
    write_results(name, rows, extra=extra, machine=machine_info(threads=1))
    plot_bars(bars, RESULTS_DIR / f"{name}.png", title="Simplified CNN domain (digits): samples to a best network", ylabel="samples")
    print(json.dumps(checks))


if __name__ == "__main__":
    main()
