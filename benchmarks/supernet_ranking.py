"""How well do one-shot and few-shot supernets rank NB201 architectures? (thesis Ch. 6, Table 6.3 in small)

For each seed: a one-shot supernet (uniform single path, ``--epochs`` epochs) and two few-shot estimators
that split one NB201 edge (seeded random choice, 5 sub-supernets, weights transferred from the parent):

- ``few-shot-equal``: the same total supernet epochs as one-shot (the root trains 600/1350 of them and each
  child 150/1350, the authors' 600:150 proportions), a stricter test than the thesis';
- ``few-shot-thesis``: the thesis protocol, children split from the trained one-shot supernet itself and
  trained 1/4 of its epochs each (the authors' 150 vs 600), so few-shot spends more (reported);
- ``one-shot-long``: a one-shot supernet trained as many epochs as ``few-shot-thesis`` spent in all, the
  equal-budget control for the thesis protocol (does few-shot win, or only the extra epochs?).

``--converged`` adds the same question one step closer to convergence, as the thesis trains its supernets:

- ``few-shot-converged``: the thesis protocol on top of ``one-shot-long`` (its trained supernet split, each
  child trained a quarter of its epochs);
- ``one-shot-converged``: a one-shot supernet trained as many epochs as ``few-shot-converged`` spent in all.

``--edge-strategy-study`` adds the learned split (``FewShot(edge_strategy="gradient")``, written to
``supernet_ranking_edge_strategy.json`` unless ``--name`` says otherwise):

- ``few-shot-gradient``: the thesis protocol (same root, same child epochs and seeds as ``few-shot-thesis``) with
  the edge chosen by gradient matching instead of at random; the root is the cached ``few-shot-thesis`` one.

Every estimator scores the ground-truth architectures of ``nb201_ground_truth.py`` (validation accuracy
with inherited weights and recalibrated BN). Kendall tau (all cells, and the top 10 % by truth) against
(a) the from-scratch digits16 truth (``truth: digits``, the goal) and (b) the NB201 CIFAR-10 table
(``truth: nb201``, reported). Scores are cached per (method, seed) under ``benchmarks/cache/``. Also measured:
supernet training steps per second and the peak memory of one supernet training step.

    python benchmarks/supernet_ranking.py                    # 5 seeds, 100 epochs, the 100 ground-truth cells
    python benchmarks/supernet_ranking.py --batch-size 128   # -> supernet_ranking_bs128.json
    python benchmarks/supernet_ranking.py --edge-strategy-study   # -> supernet_ranking_edge_strategy.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from scipy.stats import kendalltau, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_ground_truth import TASK, config_tag, mean_test_accuracy, top_fraction_tau  # noqa: E402

from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, mean_se, write_results  # noqa: E402

METHODS = ("one-shot", "few-shot-equal", "few-shot-thesis", "one-shot-long")
#: (few-shot method, its equal-budget one-shot control)
PAIRS = (("few-shot-equal", "one-shot"), ("few-shot-thesis", "one-shot"), ("few-shot-thesis", "one-shot-long"))
CONVERGED_METHODS = ("few-shot-converged", "one-shot-converged")
CONVERGED_PAIRS = (("few-shot-converged", "one-shot-converged"), ("few-shot-converged", "one-shot-long"))
EDGE_STRATEGY_METHODS = ("few-shot-gradient",)
EDGE_STRATEGY_PAIRS = (("few-shot-gradient", "few-shot-thesis"), ("few-shot-gradient", "one-shot"),
                       ("few-shot-gradient", "one-shot-long"))
ROOT_SHARE, CHILD_SHARE = 600 / 1350, 150 / 1350  # the authors' 600 : 5 x 150 epochs, as shares of one budget


def supernet_tag(epochs: int, batch_size: int = 128) -> str:
    """Cache folder of the supernets (fewshot_search.py reuses the thesis-protocol ones)."""
    return f"{config_tag(TASK)}-e{epochs}" + (f"-bs{batch_size}" if batch_size != 128 else "")


def equal_budget(epochs: int, children: int = 5) -> tuple[int, int]:
    """(root epochs, epochs per child) with root + children * child == epochs."""
    child = max(1, int(CHILD_SHARE * epochs))
    return epochs - children * child, child


def scores_for(method: str, seed: int, archs: list[str], epochs: int, data, cache: Path, batch_size: int = 128,
               long_epochs: int | None = None) -> dict:
    """``long_epochs``: the epochs of ``one-shot-long`` (what few-shot-thesis spent for this seed), the root of
    ``few-shot-converged``, or the epochs of ``one-shot-converged`` (what few-shot-converged spent)."""
    from nasagent.evaluation.fewshot import FewShot

    path = cache / f"{method}-s{seed}.json"
    if path.exists():
        rec = json.loads(path.read_text())
        if set(archs) <= set(rec["scores"]):
            return rec
    sizes = {"C": TASK["C"], "N": TASK["N"], "batch_size": batch_size}
    if method == "few-shot-equal":
        root, child = equal_budget(epochs)
        est = FewShot("nb201", data, epochs=root, child_epochs=child, splits=1, seed=seed, device="cpu", **sizes)
        ck = cache / f"ck-equal-s{seed}"
    elif method == "one-shot-long":
        est = FewShot("nb201", data, epochs=int(long_epochs), splits=0, seed=seed, device="cpu", **sizes)
        ck = cache / f"ck-long-s{seed}"
    elif method == "few-shot-converged":  # splits one-shot-long's supernet (same root checkpoint, same seeded edge)
        est = FewShot("nb201", data, epochs=int(long_epochs), child_epochs=max(1, round(long_epochs / 4)), splits=1, seed=seed,
                      device="cpu", **sizes)
        ck = cache / f"ck-long-s{seed}"
    elif method == "one-shot-converged":
        est = FewShot("nb201", data, epochs=int(long_epochs), splits=0, seed=seed, device="cpu", **sizes)
        ck = cache / f"ck-converged-s{seed}"
    elif method == "few-shot-gradient":  # few-shot-thesis with a learned edge: same root, child epochs and seeds
        est = FewShot("nb201", data, epochs=epochs, child_epochs=max(1, round(epochs / 4)), splits=1, seed=seed,
                      device="cpu", edge_strategy="gradient", **sizes)
        ck = cache / f"ck-gradient-s{seed}"
        _reuse_root(cache / f"ck-thesis-s{seed}", ck)
    else:  # one-shot is the root of the thesis-protocol few-shot tree: one training serves both
        est = FewShot("nb201", data, epochs=epochs, child_epochs=max(1, round(epochs / 4)), splits=1, seed=seed, device="cpu", **sizes)
        ck = cache / f"ck-thesis-s{seed}"
    est.fit(ck)
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    t0 = time.perf_counter()
    if method.startswith("one-shot"):
        scores = {a: est.root.score(sp.parse(a)) for a in archs}
        seconds, spent = est.root.seconds, est.root.epoch
    else:
        scores = {a: est.score(sp.parse(a)) for a in archs}
        seconds, spent = est.train_seconds, est.epochs_trained
    rec = {"method": method, "seed": seed, "scores": scores, "train_seconds": seconds, "epochs": spent,
           "score_seconds": time.perf_counter() - t0, "split": est.describe()}
    path.write_text(json.dumps(rec))
    return rec


def _reuse_root(source: Path, ck: Path) -> None:
    """Copy the thesis-protocol root (the trained one-shot supernet) so the learned split starts from it."""
    if (source / "root.pt").exists() and not (ck / "root.pt").exists():
        ck.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / "root.pt", ck / "root.pt")


def throughput(data) -> dict:
    """Supernet training steps per second and the peak memory of one step (systems.meter)."""
    import torch

    from nasagent.evaluation.supernet import Supernet, supernet_settings

    net = Supernet("nb201", data, settings=supernet_settings(1), device="cpu", C=TASK["C"], N=TASK["N"])
    t0 = time.perf_counter()
    net.train(1)
    steps_per_s = net.steps / (time.perf_counter() - t0)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(data.x_train[:128])
    y = torch.from_numpy(data.y_train[:128])

    def step():
        net.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net.net(x, net.adapter.sample(net.region, rng)), y)
        loss.backward()
        net.optimizer.step()

    step()
    try:
        from nasagent.systems.meter import measure_peak

        pm = measure_peak(step, device="cpu")
        peak, source = pm.peak_mb, "systems.meter.measure_peak (" + pm.source + ")"
    except ImportError:
        import resource

        peak, source = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process max RSS"
    return {"steps_per_second": steps_per_s, "peak_memory_mb": peak, "memory_source": source, "batch_size": 128}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=100, help="one-shot supernet epochs")
    ap.add_argument("--archs", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=48, help="supernet batch (48: the authors' NB201 config); "
                    "other sizes write supernet_ranking_bs<B>.json")
    ap.add_argument("--converged", action="store_true", help="also few-shot-converged and one-shot-converged")
    ap.add_argument("--edge-strategy-study", action="store_true",
                    help="also few-shot-gradient (edge chosen by gradient matching); default name *_edge_strategy")
    ap.add_argument("--name", default=None, help="results file name (default: supernet_ranking[_bs<B>][_edge_strategy])")
    args = ap.parse_args()
    if equal_budget(args.epochs)[0] < 0:  # at least an epoch per child, all within the one-shot budget
        ap.error(f"--epochs {args.epochs} cannot hold the equal-budget few-shot supernet (5 children of at least one "
                 "epoch each); give --epochs 5 or more")
    methods = METHODS + (CONVERGED_METHODS if args.converged else ()) + (EDGE_STRATEGY_METHODS if args.edge_strategy_study else ())
    pairs = PAIRS + (CONVERGED_PAIRS if args.converged else ()) + (EDGE_STRATEGY_PAIRS if args.edge_strategy_study else ())

    import torch

    torch.set_num_threads(1)
    from nasagent.benchmarks.nb201 import nb201_benchmark
    from nasagent.evaluation.datasets import load_dataset
    from nasagent.spaces.nb201 import NB201Space

    truth, seeds_gt = mean_test_accuracy(args.archs, TASK)
    archs = list(truth)
    truth_digits = np.array(list(truth.values()))
    sp = NB201Space()
    nb = nb201_benchmark()
    truth_nb201 = np.array([nb.value(sp.key(sp.parse(a)), "accuracy") for a in archs])
    data = load_dataset(TASK["data"], seed=TASK["data_seed"])
    cache = CACHE_DIR / "supernet_ranking" / supernet_tag(args.epochs, args.batch_size)
    cache.mkdir(parents=True, exist_ok=True)

    recs = {m: [] for m in methods}
    source = {"one-shot-long": "few-shot-thesis", "few-shot-converged": "few-shot-thesis", "one-shot-converged": "few-shot-converged"}
    for seed in range(args.seeds):
        for m in methods:
            long_epochs = recs[source[m]][-1]["epochs"] if m in source else None
            rec = scores_for(m, seed, archs, args.epochs, data, cache, args.batch_size, long_epochs)
            recs[m].append(rec)
            print(f"seed {seed} {m}: tau {kendalltau(truth_digits, [rec['scores'][a] for a in archs]).statistic:.3f} "
                  f"({rec['epochs']} epochs, {rec['train_seconds']:.0f} s)", flush=True)

    rows, taus = [], {}
    for m in methods:
        for truth_name, truth in (("digits", truth_digits), ("nb201", truth_nb201)):
            per_seed = {"kendall_tau": [], "kendall_tau_top10": [], "spearman": []}
            for rec in recs[m]:
                s = np.array([rec["scores"][a] for a in archs])
                per_seed["kendall_tau"].append(float(kendalltau(truth, s).statistic))
                per_seed["kendall_tau_top10"].append(top_fraction_tau(truth, s))
                per_seed["spearman"].append(float(spearmanr(truth, s).statistic))
            for metric, vals in per_seed.items():
                mean, se = mean_se(vals)
                taus[(m, truth_name, metric)] = vals
                rows.append({"method": m, "metric": metric, "value": mean, "se": se, "sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
                             "n_seeds": len(vals), "truth": truth_name, "task": "nb201/digits16", "samples": len(archs),
                             "budget": float(np.mean([r["epochs"] for r in recs[m]]))})
        rows.append({"method": m, "metric": "supernet_epochs", "value": float(np.mean([r["epochs"] for r in recs[m]])), "n_seeds": args.seeds})
        rows.append({"method": m, "metric": "train_seconds", "value": float(np.mean([r["train_seconds"] for r in recs[m]])), "n_seeds": args.seeds})
    verdicts = {}
    for few, one in pairs:
        for metric in ("kendall_tau", "kendall_tau_top10"):
            a, b = taus[(few, "digits", metric)], taus[(one, "digits", metric)]
            diff = np.array(a) - np.array(b)
            verdict = beats(a, b, lower_is_better=False)
            verdicts[f"{few} vs {one}, {metric}, truth digits"] = verdict
            rows.append({"method": few, "metric": f"{metric}_minus_{one.replace('-', '_')}", "value": float(diff.mean()),
                         "se": mean_se(diff)[1], "n_seeds": len(diff), "truth": "digits", "verdict": verdict, "versus": one})
    ratio = np.mean([r["epochs"] for r in recs["few-shot-thesis"]]) / np.mean([r["epochs"] for r in recs["one-shot"]])
    sec_ratio = np.mean([r["train_seconds"] for r in recs["few-shot-thesis"]]) / np.mean([r["train_seconds"] for r in recs["one-shot"]])
    rows.append({"method": "few-shot-thesis", "metric": "budget_ratio_vs_one_shot_epochs", "value": float(ratio)})
    rows.append({"method": "few-shot-thesis", "metric": "budget_ratio_vs_one_shot_seconds", "value": float(sec_ratio)})
    tp = throughput(data)
    rows.append({"method": "one-shot", "metric": "supernet_steps_per_second", "value": tp["steps_per_second"], "task": "nb201/digits16"})
    rows.append({"method": "one-shot", "metric": "supernet_step_peak_memory_mb", "value": tp["peak_memory_mb"], "task": "nb201/digits16"})
    gt = [s for s in seeds_gt]
    name = "supernet_ranking" if args.batch_size == 48 else f"supernet_ranking_bs{args.batch_size}"
    name = args.name or (f"{name}_edge_strategy" if args.edge_strategy_study else name)
    write_results(name, rows, machine=machine_info(threads=1), extra={
        "task": TASK, "epochs": args.epochs, "supernet_batch_size": args.batch_size, "ground_truth_seeds": gt, "verdicts": verdicts, "throughput": tp,
        "splits": {m: [r["split"] for r in recs[m]] for m in methods},
        "protocol": "Kendall tau-b (scipy) of supernet validation accuracy vs truth over the ground-truth architectures; "
                    "top10: among the architectures in the top 10% by truth; verdict: 2-standard-error rule over seeds",
    })
    _plot(rows, RESULTS_DIR / f"{name}.png")
    print(json.dumps(verdicts, indent=1))


def _seed_to_seed_tau() -> float | None:
    path = RESULTS_DIR / "nb201_ground_truth.json"
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["rows"]
    return next((r["value"] for r in rows if r["metric"] == "seed_to_seed_kendall_tau"), None)


def _plot(rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(r["method"] for r in rows if r.get("truth") and r["metric"] == "kendall_tau"))
    fig, axes = plt.subplots(1, 2, figsize=(11 + 1.5 * (len(methods) > 4), 4), sharey=True)
    for ax, truth in zip(axes, ("digits", "nb201"), strict=True):
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals = [next(r for r in rows if r["method"] == m and r.get("truth") == truth and r["metric"] == k) for k in ("kendall_tau", "kendall_tau_top10")]
            ax.bar(np.arange(2) + (i - (len(methods) - 1) / 2) * width, [v["value"] for v in vals], width, yerr=[2 * v["se"] for v in vals], label=m, capsize=3)
        ax.set_xticks(range(2), ["all cells", "top 10 %"])
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"Kendall tau vs {'from-scratch digits16' if truth == 'digits' else 'NB201 CIFAR-10'} (±2 SE)")
    ceiling = _seed_to_seed_tau()
    if ceiling is not None:  # how well one from-scratch training seed ranks another: the scale for the left panel
        axes[0].axhline(ceiling, color="grey", ls="--", lw=1, label=f"seed-to-seed τ of the truth ({ceiling:.2f})")
    axes[0].set_ylabel("Kendall tau")
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
