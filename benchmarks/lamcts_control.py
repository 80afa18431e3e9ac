"""LA-MCTS against black-box baselines on control and planning tasks (issue 5, thesis section 5.4).

Tasks: Rover-60 (trajectory planning), LunarLander (12-parameter heuristic controller), MuJoCo Swimmer (16-D)
and Hopper (33-D) linear policies; rewards averaged over 3 episodes with fixed seeds. Metric: best reward found
(maximised), mean +- se over seeds, plus each optimiser's CPU overhead per sample. LA-MCTS uses the thesis'
presets: C_p 1 and leaf size 20 on Rover and Lunar ("synthetic"), C_p 10 and leaf size 100 on MuJoCo ("mujoco").

The committed run is all four tasks at 500 evaluations, 3 seeds, every peer but LA-MCTS(BO) (a Swimmer or
Hopper evaluation costs up to ~0.5 s here, so it takes ~2.5 CPU hours). ``--budget``, ``--seeds``, ``--tasks``
and ``--methods`` set the scale and the results file records it. Runs are cached per (task, method, seed) under
benchmarks/cache/lamcts/.
``--obs-norm fixed`` or ``running`` flies the MuJoCo policies on normalised observations (brief A13; see
nasagent.benchmarks.control) and writes lamcts_control_<norm>.json / .png instead; its runs are cached apart.
A comma list compares the settings on the same seeds and writes lamcts_control_obsnorm.json / .png instead::

    python benchmarks/lamcts_control.py --tasks hopper --methods lamcts-turbo,lamcts-turbo-reuse,turbo,cmaes \
        --obs-norm none,fixed,running

Writes benchmarks/results/lamcts_control.json and .png (``--name`` another file, e.g. for a subset of tasks).
LA-MCTS(BO) on all four tasks, with every peer in the same run (one LA-MCTS(BO) run is 2-17 CPU minutes; the
whole run is ~1.5 hours on 2 cores)::

    python benchmarks/lamcts_control.py --tasks rover-60,lunar,swimmer,hopper --name lamcts_control_bo \
        --methods lamcts-turbo,lamcts-turbo-reuse,lamcts-bo,lamcts-cmaes,turbo,cmaes,optuna-tpe,ngopt,random
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
from lamcts_synthetic import run_one, summarise

from nasagent.report.results import RESULTS_DIR, beats, mean_se, write_results

NORMS = ("none", "fixed", "running")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="rover-60,lunar,swimmer,hopper")
    ap.add_argument("--methods", default="lamcts-turbo,turbo,cmaes,optuna-tpe,ngopt,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--name", default="lamcts_control", help="results file name (e.g. lamcts_control_bo for a subset "
                    "of tasks, so that the committed four-task file is not overwritten)")
    ap.add_argument("--obs-norm", default="none",
                    help="observation normalisation of the MuJoCo linear policies: none, fixed, running (writes "
                         "lamcts_control_<norm>.json), or a comma list (compares them: lamcts_control_obsnorm.json)")
    args = ap.parse_args()
    norms = args.obs_norm.split(",")
    bad = [n for n in norms if n not in NORMS]
    if bad:
        ap.error(f"--obs-norm takes {', '.join(NORMS)}; got {', '.join(bad)}")
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    if len(norms) > 1:
        compare_norms(tasks, methods, norms, args.seeds, args.budget)
        return
    opts = {} if norms == ["none"] else {"obs_norm": norms[0]}
    summarise(args.name if not opts else f"{args.name}_{norms[0]}", tasks, methods, args.seeds, args.budget,
              1.0, "reward", bench_options=opts, extra={"bench_options": opts})


def compare_norms(tasks, methods, norms, seeds: int, budget: int) -> None:
    """Best reward per (task, method, normalisation) on the same seeds, and each setting against ``none`` (2-se rule)."""
    rows, claims, best = [], {}, {}
    for task in tasks:
        for m in methods:
            for norm in norms:
                opts = {} if norm == "none" else {"obs_norm": norm}
                best[(task, m, norm)] = np.array([max(run_one(task, m, s, budget, opts, 1.0)["values"]) for s in range(seeds)])
                v, se = mean_se(best[(task, m, norm)])
                rows.append({"task": task, "method": f"{m}[{norm}]", "metric": "reward", "value": v, "se": se,
                             "per_seed": best[(task, m, norm)].tolist(), "n_seeds": seeds, "budget": budget})
            if "none" in norms:
                for norm in norms:
                    if norm != "none":
                        claims[f"{task}/{m}/{norm}_vs_none"] = beats(best[(task, m, norm)], best[(task, m, "none")], lower_is_better=False)
    write_results("lamcts_control_obsnorm", rows, extra={"claims": claims, "norms": norms})
    plot_norms(best, tasks, methods, norms, RESULTS_DIR / "lamcts_control_obsnorm.png")
    for k, v in claims.items():
        print(f"{k:40s} {v}")


def plot_norms(best, tasks, methods, norms, path) -> None:
    from nasagent.report.plots import _plt, grouped_bars

    plt = _plt()
    fig, axes = plt.subplots(1, len(tasks), figsize=(6 * len(tasks), 4), dpi=100, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        series = {f"obs_norm={n}": tuple(zip(*(mean_se(best[(task, m, n)]) for m in methods))) for n in norms}
        grouped_bars(ax, methods, series, fontsize=8, rotation=15)
        ax.set_ylabel("best reward (mean +- se over seeds)")
        ax.set_title(f"{task}: observation normalisation of the linear policy")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
