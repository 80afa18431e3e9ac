"""Ground truth on CPU: a fixed sample of NB201 architectures trained from scratch on the derived digits task.

Trains ``--archs`` cells (uniform without replacement, fixed sample seed) for ``--seeds`` training seeds each
with the training evaluator (``train:digits16``, small NB201 macro skeleton), caching every (arch, seed) under
``benchmarks/cache/nb201_ground_truth/`` so an interrupted run resumes. Seeds run outer, so a partial run
already holds complete seeds. Writes ``benchmarks/results/nb201_ground_truth.json`` (+ .png) with the table
(per arch: validation and test accuracy per seed, params, FLOPs, latency, the NB201 CIFAR-10 accuracy) and
the table's own seed-to-seed Kendall tau: no supernet can rank these architectures better than that.

    python benchmarks/nb201_ground_truth.py --archs 100 --seeds 3
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nasagent.report.results import CACHE_DIR, RESULTS_DIR, machine_info, write_results

#: the derived task and the small network every training-path figure uses (supernet_ranking reads it back)
TASK = {"data": "digits16", "C": 8, "N": 1, "epochs": 10, "lr": 0.1, "batch_size": 128, "data_seed": 0}
SAMPLE_SEED = 2024


def sample_archs(n: int) -> list[str]:
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    archs = list(sp.enumerate())
    idx = np.random.default_rng(SAMPLE_SEED).permutation(len(archs))[:n]
    return [sp.format(archs[i]) for i in idx]


def config_tag(task: dict) -> str:
    return hashlib.sha1(json.dumps(task, sort_keys=True).encode()).hexdigest()[:10]


def top_fraction_tau(truth, score, fraction: float = 0.1) -> float:
    """Kendall tau among the architectures whose truth is in the top ``fraction``."""
    truth, score = np.asarray(truth, float), np.asarray(score, float)
    k = max(2, int(round(fraction * len(truth))))
    top = np.argsort(-truth)[:k]
    tau = kendalltau(truth[top], score[top]).statistic
    return float(tau) if np.isfinite(tau) else 0.0


def load_table(task: dict = TASK, cache: Path | None = None) -> dict:
    """Whatever is cached: {arch: {seed: record}}.

    The cache is not committed, so a fresh clone reads the table back from the committed results file instead
    (when it was written for the same ``task``): readers such as supernet_ranking.py then need no retraining.
    """
    explicit = cache is not None
    cache = cache or CACHE_DIR / "nb201_ground_truth" / config_tag(task)
    out: dict = {}
    for p in sorted(cache.glob("*.json")):
        rec = json.loads(p.read_text())
        out.setdefault(rec["arch"], {})[int(rec["seed"])] = rec
    if out or explicit:
        return out
    committed = RESULTS_DIR / "nb201_ground_truth.json"
    if committed.exists():
        doc = json.loads(committed.read_text())
        if doc.get("task") == task:
            for arch, e in doc["table"].items():
                for i, seed in enumerate(doc["seeds"]):
                    out.setdefault(arch, {})[int(seed)] = {"arch": arch, "seed": int(seed), "test_accuracy": e["test_accuracy"][i],
                                                           "val_accuracy": e["val_accuracy"][i], "params": e["params"],
                                                           "flops": e["flops"], "latency_ms": e["latency_ms"]}
    return out


def mean_test_accuracy(n: int = 100, task: dict = TASK) -> tuple[dict[str, float], list[int]]:
    """The truth readers compare against: each trained cell among the first ``n`` sampled, in sample order, with
    its test accuracy averaged over the seeds that every one of them has; and those seeds."""
    table = load_table(task)
    archs = [a for a in sample_archs(n) if a in table]
    if len(archs) < 10:
        raise SystemExit("the ground truth is missing: run benchmarks/nb201_ground_truth.py first")
    seeds = sorted(set.intersection(*(set(table[a]) for a in archs)))
    return {a: float(np.mean([table[a][s]["test_accuracy"] for s in seeds])) for a in archs}, seeds


def random_reference(task: dict = TASK) -> tuple[float, float, np.ndarray]:
    """The ground truth's random cells as a yardstick: the median test accuracy of their all-seed means, its
    bootstrap standard error (2,000 resamples, seed 0), and the means themselves."""
    acc = np.array(list(mean_test_accuracy(100, task)[0].values()))
    boot = np.random.default_rng(0).choice(acc, size=(2000, len(acc)))
    return float(np.median(acc)), float(np.median(boot, axis=1).std()), acc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-hours", type=float, default=None, help="stop training new entries after this long (resume later)")
    ap.add_argument("--shard", default="0/1", help="K/N: train only every N-th (seed, arch) entry from the K-th, so N processes "
                    "share the work; run once more without it to write the results")
    args = ap.parse_args()
    shard, shards = (int(v) for v in args.shard.split("/"))

    import torch

    torch.set_num_threads(1)
    from nasagent.benchmarks.nb201 import nb201_benchmark
    from nasagent.evaluation.train import TrainingBenchmark

    cache = CACHE_DIR / "nb201_ground_truth" / config_tag(TASK)
    cache.mkdir(parents=True, exist_ok=True)
    archs = sample_archs(args.archs)
    t_start = time.time()
    benches = {}
    for seed in range(args.seeds):
        for i, arch in enumerate(archs):
            path = cache / f"{hashlib.sha1(arch.encode()).hexdigest()[:16]}-s{seed}.json"
            if path.exists() or (seed * len(archs) + i) % shards != shard:
                continue
            if args.max_hours is not None and time.time() - t_start > 3600 * args.max_hours:
                print(f"stopping after {args.max_hours} h; run again to continue", flush=True)
                break
            if seed not in benches:
                benches[seed] = TrainingBenchmark(TASK["data"], space="nb201", seed=seed, data_seed=TASK["data_seed"],
                                                  epochs=TASK["epochs"], lr=TASK["lr"], batch_size=TASK["batch_size"],
                                                  C=TASK["C"], N=TASK["N"])
            r = benches[seed](arch)
            if not r.ok and r.status != "ok":
                raise SystemExit(f"training failed for {arch} seed {seed}: {r.error}")
            rec = {"arch": arch, "seed": seed, "cost": r.cost, **r.metrics}
            path.write_text(json.dumps(rec))
            print(f"seed {seed} arch {i + 1}/{len(archs)}: val {r.metrics['val_accuracy']:.1f} test {r.metrics['test_accuracy']:.1f} "
                  f"({r.cost:.0f} s)", flush=True)

    if shards > 1:
        print(f"shard {args.shard} done; run without --shard to write the results", flush=True)
        return
    table = load_table(TASK, cache)
    archs = [a for a in archs if a in table]
    seeds = sorted({s for a in archs for s in table[a]})
    complete = [s for s in seeds if all(s in table[a] for a in archs)]
    nb201 = nb201_benchmark()
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    cifar = np.array([nb201.value(sp.key(sp.parse(a)), "accuracy") for a in archs])
    test = np.array([[table[a][s]["test_accuracy"] for s in complete] for a in archs])
    val = np.array([[table[a][s]["val_accuracy"] for s in complete] for a in archs])
    rows = []
    # the seed-to-seed ceiling uses every architecture trained with every seed (all of them once a run completes)
    multi = [a for a in archs if all(s in table[a] for s in seeds)]
    pair_tau, pair_tau_top, pair_tau_val = [], [], []
    for s1, s2 in itertools.combinations(seeds, 2):
        t1, t2 = ([table[a][s]["test_accuracy"] for a in multi] for s in (s1, s2))
        v1, v2 = ([table[a][s]["val_accuracy"] for a in multi] for s in (s1, s2))
        pair_tau.append(kendalltau(t1, t2).statistic)
        pair_tau_val.append(kendalltau(v1, v2).statistic)
        pair_tau_top.append(top_fraction_tau(t1, t2))
    n = len(archs)
    if len(multi) >= 5 and pair_tau:
        for metric, vals in (("seed_to_seed_kendall_tau", pair_tau), ("seed_to_seed_kendall_tau_top10", pair_tau_top),
                             ("seed_to_seed_kendall_tau_val", pair_tau_val)):
            rows.append({"method": "from-scratch", "metric": metric, "value": float(np.mean(vals)), "sd": float(np.std(vals)),
                         "n_seeds": len(seeds), "samples": len(multi), "task": "digits16", "truth": "digits"})
    truth = test.mean(axis=1)
    rows += [
        {"method": "from-scratch", "metric": "test_accuracy_mean", "value": float(truth.mean()), "samples": n, "task": "digits16"},
        {"method": "from-scratch", "metric": "test_accuracy_min", "value": float(truth.min()), "samples": n, "task": "digits16"},
        {"method": "from-scratch", "metric": "test_accuracy_median", "value": float(np.median(truth)), "samples": n, "task": "digits16"},
        {"method": "from-scratch", "metric": "test_accuracy_max", "value": float(truth.max()), "samples": n, "task": "digits16"},
        {"method": "from-scratch", "metric": "seed_sd_test_accuracy_mean", "value": float(test.std(axis=1, ddof=1).mean()) if test.shape[1] > 1 else 0.0,
         "samples": n, "task": "digits16"},
        {"method": "from-scratch", "metric": "kendall_tau_vs_nb201_cifar10", "value": float(kendalltau(truth, cifar).statistic),
         "samples": n, "task": "digits16", "truth": "nb201"},
        {"method": "from-scratch", "metric": "spearman_vs_nb201_cifar10", "value": float(spearmanr(truth, cifar).statistic),
         "samples": n, "task": "digits16", "truth": "nb201"},
        {"method": "from-scratch", "metric": "train_seconds_per_run_mean",
         "value": float(np.mean([table[a][s]["cost"] for a in archs for s in complete])), "samples": n, "task": "digits16"},
    ]
    entries = {a: {"test_accuracy": [table[a][s]["test_accuracy"] for s in complete],
                   "val_accuracy": [table[a][s]["val_accuracy"] for s in complete],
                   "params": table[a][complete[0]]["params"], "flops": table[a][complete[0]]["flops"],
                   "latency_ms": table[a][complete[0]]["latency_ms"], "nb201_cifar10": float(c)} for a, c in zip(archs, cifar, strict=True)}
    write_results("nb201_ground_truth", rows, extra={"task": TASK, "sample_seed": SAMPLE_SEED, "seeds": complete,
                                                     "seed_to_seed_archs": len(multi), "seeds_tried": seeds,
                                                     "truth_definition": "mean over seeds of test accuracy (%)", "table": entries},
                  machine=machine_info(threads=1))
    pair = [[table[a][s]["test_accuracy"] for a in multi] for s in seeds[:2]] if len(seeds) >= 2 else None
    _plot(test, cifar, pair, RESULTS_DIR / "nb201_ground_truth.png")
    print(json.dumps(rows, indent=1))


def _plot(test: np.ndarray, cifar: np.ndarray, pair, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13, 4))
    if pair is not None and len(pair[0]) >= 2:
        ax[0].scatter(pair[0], pair[1], s=10)
        ax[0].set_xlabel("test accuracy, seed 0 (%)")
        ax[0].set_ylabel("test accuracy, seed 1 (%)")
        ax[0].set_title(f"seed to seed ({len(pair[0])} cells): tau {kendalltau(pair[0], pair[1]).statistic:.3f}")
    ax[1].hist(test.mean(axis=1), bins=20)
    ax[1].set_xlabel("mean test accuracy (%)")
    ax[1].set_title("accuracy spread (no saturation)")
    ax[2].scatter(cifar, test.mean(axis=1), s=10)
    ax[2].set_xlabel("NB201 CIFAR-10 accuracy (%)")
    ax[2].set_ylabel("digits16 mean test accuracy (%)")
    ax[2].set_title(f"proxy vs NB201: tau {kendalltau(cifar, test.mean(axis=1)).statistic:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
