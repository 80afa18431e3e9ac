"""Why LA-MCTS only ties on Levy-20 and Rosenbrock-20 (issue 5): how far could a better local solver go?

Issue 5 asks for an LA-MCTS variant best on every 20-D task by the 2-standard-error rule. On Levy-20 and
Rosenbrock-20 every variant ties (benchmarks/results/lamcts_synthetic_20d_balanced.json). This script measures two
ceilings, each with the whole 500-evaluation budget given to a solver family over the whole box (no tree), so the
figures bound what that family could bring as LA-MCTS's local solver:

- ``levy``: CMA-ES and separable CMA-ES (the ``cmaes`` package) over a grid of first step (sigma, unit-cube
  coordinates), population (default or larger) and start (box centre or a seeded random point), 5 seeds each.
  The best cell is compared with the value a win would need against the committed peers (TuRBO-1 and CMA-ES
  rows of the 20-D file): ``mean + 2 * sqrt(se^2 + se_peer^2) < peer mean`` for both.
- ``rosenbrock``: COBYLA and COBYQA (scipy) from 30 seeded random starts (first step 1/4 of the box). The final
  values spread over an order of magnitude, and the value after k evaluations hardly predicts the final one
  (Spearman's rho), so neither the tree's choice of start nor a race between short runs can pick the good starts
  early: such a scheme does about as well as a random start, whose mean (measured here) is above NGOpt's
  deterministic 118.65 (COBYLA from the centre).

This is a diagnostic, not a method comparison: the peers' figures are read from the committed 20-D results file
(same tasks, seeds 0-4, budget 500), not rerun. About a minute on one core::

    python benchmarks/lamcts_20d_ceiling.py

Writes benchmarks/results/lamcts_20d_ceiling.json and .png.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.registry import make_benchmark
from nasagent.report.results import RESULTS_DIR, mean_se, write_results

BUDGET = 500
PEERS_FILE = RESULTS_DIR / "lamcts_synthetic_20d_balanced.json"


class _Spent(Exception):
    """The budget ran out inside a scipy solver's callback."""


def _objective(task: str):
    bench = make_benchmark(task)
    lo, hi = bench.spec.lower, bench.spec.upper
    return (lambda u: bench.f(lo + (hi - lo) * np.clip(u, 0.0, 1.0))), bench.dim


def cmaes_best(task: str, separable: bool, sigma: float, popsize: int | None, start: str, seed: int) -> float:
    """Best value of one CMA-ES run of ``BUDGET`` evaluations in the unit cube."""
    from cmaes import CMA, SepCMA

    f, dim = _objective(task)
    rng = np.random.default_rng(seed)
    mean = np.full(dim, 0.5) if start == "centre" else rng.random(dim)
    cls = SepCMA if separable else CMA
    opt = cls(mean=mean, sigma=sigma, bounds=np.array([[0.0, 1.0]] * dim), seed=seed, population_size=popsize)
    best, n = np.inf, 0
    while n < BUDGET:
        told = []
        for _ in range(opt.population_size):
            u = opt.ask()
            v = f(u)
            n += 1
            best = min(best, v)
            told.append((u, v))
            if n >= BUDGET:
                break
        if len(told) == opt.population_size:
            opt.tell(told)
    return float(best)


def scipy_trace(task: str, method: str, seed: int, step: float = 0.25) -> np.ndarray:
    """Best-so-far values of one COBYLA or COBYQA run of ``BUDGET`` evaluations from a seeded random start."""
    from scipy.optimize import Bounds, minimize

    f, dim = _objective(task)
    values: list[float] = []

    def counted(u):
        if len(values) >= BUDGET:
            raise _Spent
        values.append(f(u))
        return values[-1]

    u0 = np.random.default_rng(seed).random(dim)
    box = Bounds(np.zeros(dim), np.ones(dim))
    options = {"maxiter": BUDGET, "rhobeg": step, "tol": 1e-6} if method == "COBYLA" else {"maxfev": BUDGET, "initial_tr_radius": step}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            minimize(counted, u0, method=method, bounds=box, options=options)
        except _Spent:
            pass
    trace = np.minimum.accumulate(values)
    return np.concatenate([trace, np.full(BUDGET - len(trace), trace[-1])])  # a run that converged early keeps its best


def peers(task: str) -> dict[str, tuple[float, float]]:
    rows = json.loads(PEERS_FILE.read_text())["rows"]
    return {r["method"]: (r["value"], r["se"]) for r in rows if r["task"] == task and r["metric"] == "value"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per CMA-ES setting (the issue's 5)")
    ap.add_argument("--starts", type=int, default=30, help="random starts per scipy solver on Rosenbrock-20")
    ap.add_argument("--name", default="lamcts_20d_ceiling")
    args = ap.parse_args()
    from scipy.stats import spearmanr

    rows, extra = [], {"budget": BUDGET, "peers_file": str(PEERS_FILE)}
    levy_peers = peers("levy-20")
    grid = []
    for separable in (False, True):
        for sigma in (0.15, 0.3, 0.5):
            for popsize in (None, 20):
                for start in ("centre", "random"):
                    v = [cmaes_best("levy-20", separable, sigma, popsize, start, s) for s in range(args.seeds)]
                    m, se = mean_se(v)
                    name = f"{'sep-' if separable else ''}cmaes-sigma{sigma}-pop{popsize or 'default'}-{start}"
                    grid.append((m, se, name))
                    rows.append({"task": "levy-20", "method": name, "metric": "value", "value": m, "se": se,
                                 "per_seed": v, "n_seeds": args.seeds, "budget": BUDGET})
                    print(f"levy-20 {name:38s} {m:7.2f} +- {se:5.2f}", flush=True)
    best_m, best_se, best_name = min(grid)
    need = {p: levy_peers[p][0] - 2 * np.hypot(best_se, levy_peers[p][1]) for p in ("turbo", "cmaes")}
    extra["levy"] = {"best_setting": best_name, "best_mean": best_m, "best_se": best_se,
                     "peers": {p: levy_peers[p] for p in ("turbo", "cmaes", "lamcts-cmaes")},
                     "mean_needed_to_win": {p: float(v) for p, v in need.items()},
                     "could_win": bool(all(best_m < v for v in need.values()))}

    traces = {}
    for method in ("COBYLA", "COBYQA"):
        T = np.array([scipy_trace("rosenbrock-20", method, s) for s in range(args.starts)])
        traces[method] = T
        final = T[:, -1]
        rho = {k: float(spearmanr(T[:, k - 1], final)[0]) for k in (1, 60, 100, 150, 250)}
        m, se = mean_se(final)
        rows.append({"task": "rosenbrock-20", "method": f"{method.lower()}-random-start", "metric": "value", "value": m, "se": se,
                     "median": float(np.median(final)), "per_seed": final.tolist(), "n_seeds": args.starts, "budget": BUDGET})
        extra[f"rosenbrock_{method.lower()}"] = {"spearman_value_at_k_vs_final": rho, "min": float(final.min()),
                                                 "max": float(final.max()),
                                                 "share_below_ngopt": float(np.mean(final < peers("rosenbrock-20")["ngopt"][0]))}
        print(f"rosenbrock-20 {method}: mean {m:.1f} +- {se:.1f}, median {np.median(final):.1f}, rho {rho}", flush=True)
    extra["rosenbrock_ngopt"] = peers("rosenbrock-20")["ngopt"]
    path = write_results(args.name, rows, extra=extra)
    plot(grid, levy_peers, traces, peers("rosenbrock-20")["ngopt"][0], path.with_suffix(".png"))
    print(json.dumps(extra["levy"], indent=1))


def plot(grid, levy_peers, traces, ngopt: float, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    grid = sorted(grid)
    y = np.arange(len(grid))
    a.errorbar([g[0] for g in grid], y, xerr=[2 * g[1] for g in grid], fmt="o", color="tab:blue", capsize=2)
    a.set_yticks(y, [g[2] for g in grid], fontsize=7)
    for p, colour in (("turbo", "tab:red"), ("cmaes", "tab:orange"), ("lamcts-cmaes", "tab:green")):
        a.axvline(levy_peers[p][0], color=colour, ls="--", label=f"{p} (committed run) {levy_peers[p][0]:.2f}")
    a.set_xlabel("best value after 500 evaluations (mean, bars 2 se)")
    a.set_title("Levy-20: CMA-ES settings over the whole box")
    a.legend(fontsize=8)
    for method, colour in (("COBYLA", "tab:blue"), ("COBYQA", "tab:purple")):
        for t in traces[method]:
            b.plot(np.arange(1, len(t) + 1), t, color=colour, alpha=0.25, lw=0.8)
        b.plot([], [], color=colour, label=f"{method}, {len(traces[method])} random starts")
    b.axhline(ngopt, color="k", ls="--", label=f"NGOpt (COBYLA from the centre) {ngopt:.1f}")
    b.set_yscale("log")
    b.set_xlabel("evaluations")
    b.set_ylabel("best so far")
    b.set_title("Rosenbrock-20: where a local solver ends depends on its start")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
