"""Every strategy in the package on the embedded NB201 table: the table a user reads to choose (issue 7).

For each registered strategy that runs on the NB201 space (a short probe run decides; the others are listed
with the reason in ``not_applicable``): samples to the global optimum (unique samples; runs stop at the
optimum; censored at the method's budget, censored runs count as the budget) and regret at 100 / 200
samples, mean and standard error over seeds 0..S-1, all in one invocation.

Scale-down (CPU budget of a shared 2-core machine; the issue asks for 100 seeds): fast strategies run
``--seeds`` seeds with a budget of ``--budget`` samples; strategies whose per-sample cost is high (a model
fitted per proposal: GP-BO, TPE, AlphaX, LaNAS, the neural predictor, ...) run ``--slow-seeds`` seeds with a
budget of 200, so their samples-to-optimum is censored at 200. Each row states its seeds, budget and
censored count. Runs are cached per (method, seed, budget) under benchmarks/cache/baselines_all/.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.api import compare
from nasagent.registry import STRATEGIES, make_benchmark
from nasagent.report.plots import plot_regret_curves, regret_matrix
from nasagent.report.results import RESULTS_DIR, mean_se, write_results

CACHE = os.path.join(os.path.dirname(__file__), "cache", "baselines_all")
AT = (100, 200)
FAST = ("random", "evolution", "local-search", "evolution-nsga2", "hill-climbing", "q-learning", "reinforce")
SLOW_BUDGET = 200


def _run(method: str, seed: int, budget: int) -> dict:
    path = os.path.join(CACHE, f"{method}__s{seed}__n{budget}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    t0 = time.perf_counter()
    r = compare("nb201", [method], seeds=[seed], budget=budget, at=AT).runs[0]
    r = {k: r[k] for k in ("samples_to_optimum", "samples", "trace", "stop_reason")} | {"seconds": time.perf_counter() - t0}
    os.makedirs(CACHE, exist_ok=True)
    with open(path, "w") as f:
        json.dump(r, f, default=float)
    return r


def probe(method: str) -> str | None:
    """Why a strategy cannot run on NB201 (None when a 5-sample run works)."""
    try:
        compare("nb201", [method], seeds=[0], budget=5, at=(5,), stop_at_optimum=False)
    except Exception as e:  # noqa: BLE001 - any failure means "not applicable", reported with its message
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=100, help="seeds of the fast strategies")
    ap.add_argument("--slow-seeds", type=int, default=100, help="seeds of the slow strategies")
    ap.add_argument("--budget", type=int, default=15_625, help="sample budget of the fast strategies")
    ap.add_argument("--methods", nargs="+", default=list(STRATEGIES))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)

    bench = make_benchmark("nb201")
    optimum = bench.optimum(bench.objective())[0]
    rows, curves, skipped, plan = [], {}, {}, {}
    for method in args.methods:
        why = probe(method)
        if why is not None:
            skipped[method] = why
            print(f"{method:18s} not applicable: {why}", flush=True)
            continue
        fast = method in FAST
        seeds, budget = (args.seeds, args.budget) if fast else (args.slow_seeds, SLOW_BUDGET)
        plan[method] = {"seeds": seeds, "budget": budget}
        runs = [_run(method, s, budget) for s in range(seeds)]
        sto = np.array([r["samples_to_optimum"] or budget for r in runs], dtype=float)
        censored = int(sum(r["samples_to_optimum"] is None for r in runs))
        common = {"task": "nb201/cifar10", "n_seeds": seeds, "budget": budget, "censored": censored}
        m, se = mean_se(sto)
        rows.append({"method": method, "metric": "samples_to_optimum_mean", "value": m, "se": se, "median": float(np.median(sto)), **common})
        reg = regret_matrix([r["trace"] for r in runs], optimum, max(AT))
        curves[method] = reg
        for n in AT:
            m_n, se_n = mean_se(reg[:, n - 1])
            rows.append({"method": method, "metric": f"regret_at_{n}", "value": m_n, "se": se_n, "samples": n, **common})
        secs = [r["seconds"] / max(r["samples"], 1) for r in runs]
        rows.append({"method": method, "metric": "seconds_per_sample", "value": float(np.mean(secs)), **common})
        print(f"{method:18s} seeds {seeds:3d} budget {budget:5d}  samples-to-optimum {m:8.1f} (se {se:6.1f}, censored {censored:3d})"
              f"  regret@100 {reg[:, 99].mean():.3f}  regret@200 {reg[:, 199].mean():.3f}  {np.mean(secs) * 1e3:.1f} ms/sample", flush=True)
        _write(rows, curves, skipped, plan, optimum, args)  # after every method, so a cut-short run still reports


def _write(rows, curves, skipped, plan, optimum, args) -> None:
    write_results("baselines_all", rows, extra={"not_applicable": skipped, "plan": plan, "optimum": optimum,
                                                "scale_down": f"fast strategies {args.seeds} seeds / budget {args.budget}; "
                                                              f"slow ones {args.slow_seeds} seeds / budget {SLOW_BUDGET} (issue: 100 seeds)"})
    plot_regret_curves(curves, RESULTS_DIR / "baselines_all.png", title="NB201 CIFAR-10: mean regret of every applicable strategy (95 % band)",
                       ylabel="regret (accuracy points)")


if __name__ == "__main__":
    main()
