"""How well does each predictor rank held-out architectures, as a function of the training size N? (issue 6)

For each dataset (the embedded NB201 CIFAR-10 table and NAS-Bench-Graph tables), training size N and seed s:
draw a random permutation of the table (seed s), train on its first N architectures (training sets are
nested across N) and score a fixed held-out set (the next ``--test`` architectures, disjoint from every
training set). Metrics: Kendall tau, Spearman rho and precision of the predicted top 5 % of the held-out set.
All seeds of one GCN setting train together as one stacked network (``GCNPredictor.fit_predict_splits``).

Fit and predict times of every predictor at N = 500 (one seed, predict on 10,000 NB201 cells; ``--timing-train``
and ``--timing-predict`` make them small for a quick check) come from the same invocation. Results cache per (dataset, predictor, N) under benchmarks/cache/predictor_ranking/.
Writes benchmarks/results/predictor_ranking.json and .png (``--name`` to change; with ``--no-timings``, or
``--timing-train`` / ``--timing-predict`` below their defaults, predictor_ranking_quick unless named).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.evaluation.predictors.factory import make_predictor
from nasagent.evaluation.predictors.metrics import classifier_report, kendall_tau, precision_at_top, spearman_rho
from nasagent.evaluation.predictors.selection import select
from nasagent.registry import make_benchmark
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, mean_se, write_results

#: the GCN recipe used in search (strategies/neural_predictor.py FAST_GCN) and the reference re-implementations'
FAST_GCN = {"hidden": 64, "epochs": 100, "lr": 2e-3, "batch_size": 32, "weight_decay": 1e-4}
REF_GCN = {}  # hidden 144, 300 epochs, Adam 1e-4, wd 1e-3, batch 10 (the GCNPredictor defaults)
MLP = {"hidden_sizes": (128, 128), "lr": 1e-3, "epochs": 100, "batch_size": 32, "output": "linear", "threads": 1}
PREDICTORS = {
    "gcn": ("gcn", FAST_GCN),
    "gcn-reference": ("gcn", REF_GCN),
    "mlp": ("mlp", MLP),
    "rf": ("rf", {"n_estimators": 100}),
    "gbdt": ("gbdt", {}),
    "gp": ("gp", {}),
    "gp-hamming": ("gp-hamming", {}),
    # the paper's two-stage NB101 predictor; threshold = the training labels' median (91 % is NB101's scale)
    "cascade": ("cascade", {"threshold_quantile": 0.5, "gcn": FAST_GCN}),
}
TIMED = {
    "gcn": ("gcn", FAST_GCN),
    "gcn-reference": ("gcn", {**REF_GCN, "epochs": 30}),  # timed at 30 of its 300 epochs, fit time scaled x10
    "gcn-ensemble": ("gcn-ensemble", FAST_GCN),
    "cascade": ("cascade", {"threshold_quantile": 0.5, "gcn": FAST_GCN}),
    "mlp": ("mlp", MLP),
    "mlp-paper": ("mlp", {"threads": 1}),
    "mlp-ensemble": ("mlp-ensemble", {"options": MLP}),
    "rf": ("rf", {}),
    "gbdt": ("gbdt", {}),
    "gp": ("gp", {}),
    "gp-hamming": ("gp-hamming", {}),
}
#: tuned variants: label -> (predictor, fixed options, grid). The grid is searched once per (dataset, N) by the paper's
#: rule (10 random one-third hold-outs of seed 0's N training architectures, here scored by Kendall tau), and the
#: chosen setting is then reused for every seed. ``positions`` is our node-index feature (off in the paper).
TUNED = {
    "gcn-tuned": ("gcn", FAST_GCN, {"positions": [0, 8], "batch_size": [8, 32], "dropout": [0.0, 0.1]}),
    "rf-tuned": ("rf", {"n_estimators": 100}, {"max_features": [0.2, 0.5, 1.0], "min_samples_leaf": [1, 3]}),
    "gbdt-tuned": ("gbdt", {}, {"learning_rate": [0.02, 0.05, 0.1], "max_depth": [2, 3, 5]}),
    "mlp-tuned": ("mlp", MLP, {"targets": ["linear", "rank"], "lr": [1e-3, 1e-2]}),
    "gp-hamming-tuned": ("gp-hamming", {}, {"length_scale": [0.5, 1.0, 2.0]}),
}
METRICS = ("kendall_tau", "spearman_rho", "precision_top5")


def table(name: str):
    bench = make_benchmark(name)
    metric = bench.default_metric
    archs = list(bench.space.enumerate())
    y = np.array([bench.value(bench.space.key(a), metric) for a in archs], dtype=np.float64)
    ok = np.isfinite(y)
    return bench.space, [a for a, k in zip(archs, ok, strict=True) if k], y[ok]


def _scores(y_true, y_pred) -> dict:
    return {"kendall_tau": kendall_tau(y_true, y_pred), "spearman_rho": spearman_rho(y_true, y_pred),
            "precision_top5": precision_at_top(y_true, y_pred, 0.05)}


def tune(space, archs, y, method: str, n: int, perm) -> tuple[dict, list[dict]]:
    """The grid setting of a ``TUNED`` method chosen on the first ``n`` architectures of ``perm`` (seed 0)."""
    name, opts, grid = TUNED[method]
    train = perm[:n]
    best, results = select(make_predictor(name, space, seed=0, **opts), grid, [archs[i] for i in train], y[train],
                           n_splits=10, metric="kendall", seed=0)
    return {**opts, **best}, results


def evaluate(space, archs, y, method: str, n: int, perms, n_test: int, max_n: int, opts: dict | None = None) -> list[dict]:
    """Per-seed scores of ``method`` trained on the first ``n`` of each permutation."""
    name, fixed = (TUNED[method][0], None) if method in TUNED else PREDICTORS[method]
    opts = fixed if opts is None else opts
    tests = [p[max_n : max_n + n_test] for p in perms]
    if name == "gcn":
        idx = np.unique(np.concatenate([np.concatenate([p[:n], t]) for p, t in zip(perms, tests, strict=True)]))
        where = {int(a): i for i, a in enumerate(idx)}
        model = make_predictor(name, space, seed=0, **opts)
        X = model.featurize([archs[i] for i in idx])
        splits = [(np.array([where[int(a)] for a in p[:n]]), np.array([where[int(a)] for a in t])) for p, t in zip(perms, tests, strict=True)]
        preds = model.fit_predict_splits(X, y[idx], splits)
        return [_scores(y[t], pr) for t, pr in zip(tests, preds, strict=True)]
    out = []
    for s, (p, t) in enumerate(zip(perms, tests, strict=True)):
        model = make_predictor(name, space, seed=s, **opts).fit([archs[i] for i in p[:n]], y[p[:n]])
        held_out = [archs[i] for i in t]
        out.append(_scores(y[t], model.predict(held_out)))
        if name == "cascade":  # the filter's own quality (the paper's Fig. 6): good ones dropped, kept ones good
            rep = classifier_report(y[t], model.pass_probability(held_out) >= model.p_pass, model.threshold_)
            out[-1].update({"filter_fnr": rep["fnr"], "filter_precision": rep["precision"], "filter_stages": model.stages_})
    return out


def timings(space, archs, y, n: int = 500, n_pred: int = 10_000) -> list[dict]:
    perm = np.random.default_rng(0).permutation(len(archs))
    train, pool = [archs[i] for i in perm[:n]], [archs[i] for i in perm[n : n + n_pred]]
    rows = []
    for method, (name, opts) in TIMED.items():
        model = make_predictor(name, space, seed=0, **opts)
        t0 = time.perf_counter()
        model.fit(train, y[perm[:n]])
        t1 = time.perf_counter()
        model.predict(pool)
        t2 = time.perf_counter()
        scale = 10.0 if method == "gcn-reference" else 1.0  # per-epoch cost is constant, so 30 epochs x 10 = 300
        rows += [{"method": method, "metric": "fit_seconds", "value": (t1 - t0) * scale, "n_train": n, "task": "nb201/cifar10",
                  **({"note": "30 epochs timed, scaled x10"} if scale != 1 else {})},
                 {"method": method, "metric": "predict_seconds", "value": t2 - t1, "samples": n_pred, "task": "nb201/cifar10"}]
        print(f"time {method:14s} fit {(t1 - t0) * scale:7.2f}s predict({n_pred}) {t2 - t1:6.2f}s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--sizes", default="20,50,100,172,500")
    ap.add_argument("--datasets", default="nb201,nbgraph/cora,nbgraph/citeseer")
    ap.add_argument("--methods", default=",".join([*PREDICTORS, *TUNED]))
    ap.add_argument("--reference-sizes", default="172", help="sizes at which gcn-reference (300 epochs) also runs")
    ap.add_argument("--reference-datasets", default="nb201")
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--no-timings", action="store_true")
    ap.add_argument("--timing-train", type=int, default=500, help="cells each timed predictor is fitted on")
    ap.add_argument("--timing-predict", type=int, default=10_000, help="cells each timed predictor scores")
    ap.add_argument("--plot-only", action="store_true", help="redraw the figure from the results file")
    ap.add_argument("--name", default=None, help="results file name (default predictor_ranking; predictor_ranking_quick "
                    "with --no-timings or --timing-train / --timing-predict below their defaults, so a partial run keeps "
                    "the result)")
    args = ap.parse_args()
    quick = args.timing_train < 500 or args.timing_predict < 10_000
    # a run with small or no timing rows is not the full result: keep it out of the committed file unless named
    name = args.name or ("predictor_ranking_quick" if quick or args.no_timings else "predictor_ranking")
    if args.plot_only:
        doc = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        plot(doc["rows"], args.datasets.split(","), RESULTS_DIR / f"{name}.png")
        return
    import torch

    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    ref_sizes = {int(s) for s in args.reference_sizes.split(",") if s}
    cache = CACHE_DIR / "predictor_ranking"
    cache.mkdir(parents=True, exist_ok=True)
    rows, per_seed = [], {}
    for ds in args.datasets.split(","):
        space, archs, y = table(ds)
        perms = [np.random.default_rng([s, 17]).permutation(len(archs)) for s in range(args.seeds)]
        for method in args.methods.split(","):
            for n in sizes:
                if method == "gcn-reference" and (n not in ref_sizes or ds not in args.reference_datasets.split(",")):
                    continue
                f = cache / f"{ds.replace('/', '_')}__{method}__{n}__{args.seeds}__{args.test}.json"
                if f.exists():
                    res = json.loads(f.read_text())
                else:
                    t0 = time.perf_counter()
                    chosen = None
                    if method in TUNED:
                        chosen, cv = tune(space, archs, y, method, n, perms[0])
                    scores = evaluate(space, archs, y, method, n, perms, args.test, max(sizes), chosen)
                    res = {"scores": scores, "chosen": chosen, "cv": cv} if method in TUNED else scores
                    f.write_text(json.dumps(res))
                    tau = np.mean([r["kendall_tau"] for r in scores])
                    print(f"{ds:16s} {method:14s} N={n:4d} tau {tau:.3f} ({time.perf_counter() - t0:.1f}s) {chosen or ''}", flush=True)
                chosen = res["chosen"] if isinstance(res, dict) else None
                res = res["scores"] if isinstance(res, dict) else res
                per_seed[(ds, method, n)] = res
                for m in METRICS + tuple(k for k in ("filter_fnr", "filter_precision") if k in res[0]):
                    v, se = mean_se(r[m] for r in res)
                    rows.append({"method": method, "metric": m, "value": v, "se": se, "n_seeds": len(res), "n_train": n, "task": ds,
                                 **({"chosen": {k: chosen[k] for k in TUNED[method][2]}} if chosen else {})})
    checks = {}
    nb = per_seed.get(("nb201", "gcn", 172))
    if nb:
        checks["gcn_tau_nb201_n172"] = float(np.mean([r["kendall_tau"] for r in nb]))
        checks["gcn_tau_nb201_n172_goal_0.75_met"] = checks["gcn_tau_nb201_n172"] >= 0.75
    ref = per_seed.get(("nb201", "gcn-reference", 172))
    if ref:
        checks["gcn_reference_tau_nb201_n172"] = float(np.mean([r["kendall_tau"] for r in ref]))
    best = {}
    for ds in args.datasets.split(","):
        for n in sizes:
            cand = {m: np.mean([r["kendall_tau"] for r in per_seed[(ds, m, n)]]) for (d, m, k) in per_seed if d == ds and k == n}
            best[f"{ds}@{n}"] = max(cand, key=cand.get)
    checks["best_by_tau"] = best
    # the goal: the GCN ranks best on every dataset at N <= 100. Per the protocol, "A beats B" needs the paired
    # mean difference over the shared seeds to exceed 2 se; the GCN is "best" where no other predictor beats it.
    # Judged for each GCN variant (the fixed search recipe, and the paper's procedure: tuned per (dataset, N)).
    for gcn in ("gcn", "gcn-tuned"):
        verdicts = {}
        for ds in args.datasets.split(","):
            for n in (k for k in sizes if k <= 100):
                if (ds, gcn, n) not in per_seed:
                    continue
                mine = [r["kendall_tau"] for r in per_seed[(ds, gcn, n)]]
                verdicts[f"{ds}@{n}"] = {m: beats(mine, [r["kendall_tau"] for r in per_seed[(d, m, k)]], lower_is_better=False)
                                         for (d, m, k) in per_seed if d == ds and k == n and not m.startswith(("gcn", "cascade"))}
        if verdicts:
            checks[f"{gcn}_vs_flat_predictors_at_n_le_100"] = verdicts
            checks[f"{gcn}_never_beaten_at_n_le_100"] = all("loss" not in v.values() for v in verdicts.values())
    if not args.no_timings:
        space, archs, y = table("nb201")
        if args.timing_train < 2 or args.timing_predict < 1 or args.timing_train + args.timing_predict > len(archs):
            raise SystemExit(f"--timing-train (>= 2) plus --timing-predict (>= 1) must fit in the table's {len(archs)} cells")
        rows += timings(space, archs, y, n=args.timing_train, n_pred=args.timing_predict)
    write_results(name, rows, extra={"checks": checks, "sizes": sizes, "test_size": args.test},
                  machine=machine_info(threads=1))
    plot(rows, args.datasets.split(","), RESULTS_DIR / f"{name}.png")
    print(json.dumps(checks, indent=1))


def plot(rows, datasets, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(datasets), figsize=(5 * len(datasets) + 2, 4.5), squeeze=False)
    # one colour per predictor in every panel; a tuned variant shares its base's colour, dashed
    colors = {m: f"C{i % 10}" for i, m in enumerate(PREDICTORS)}
    for ax, ds in zip(axes[0], datasets, strict=True):
        sel = [r for r in rows if r.get("task") == ds and r["metric"] == "kendall_tau"]
        for m in dict.fromkeys(r["method"] for r in sel):
            pts = sorted((r["n_train"], r["value"], r["se"]) for r in sel if r["method"] == m)
            n, v, se = map(np.array, zip(*pts, strict=True))
            base = m.removesuffix("-tuned")
            ax.errorbar(n, v, yerr=2 * se, marker="o", capsize=3, label=m, color=colors.get(base),
                        linestyle="--" if m in TUNED else "-", markerfacecolor="white" if m in TUNED else None)
        ax.set_xscale("log")
        ticks = sorted({r["n_train"] for r in sel})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("training architectures N")
        ax.set_ylabel("Kendall tau, held-out (mean ± 2 se)")
        ax.set_title(ds)
        ax.grid(alpha=0.3)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.get_legend_handles_labels()[0]}
    fig.legend(handles.values(), handles.keys(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
