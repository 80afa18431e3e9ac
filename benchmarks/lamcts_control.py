"""LA-MCTS against black-box baselines on control and planning tasks (issue 5, thesis section 5.4).

Tasks: Rover-60 (trajectory planning), LunarLander (12-parameter heuristic controller), MuJoCo Swimmer (16-D)
and Hopper (33-D) linear policies; rewards averaged over 3 episodes with fixed seeds. Metric: best reward found
(maximised), mean +- se over seeds, plus each optimiser's CPU overhead per sample. LA-MCTS uses the thesis'
presets: C_p 1 and leaf size 20 on Rover and Lunar ("synthetic"), C_p 10 and leaf size 100 on MuJoCo ("mujoco").

The committed run is all four tasks at 500 evaluations, 3 seeds, every peer but LA-MCTS(BO) (a Swimmer or
Hopper evaluation costs up to ~0.5 s here, so it takes ~2.5 CPU hours). ``--budget``, ``--seeds``, ``--tasks``
and ``--methods`` set the scale and the results file records it. Runs are cached per (task, method, seed) under
benchmarks/cache/lamcts/.
``--obs-norm fixed|running`` flies the MuJoCo policies on normalised observations (brief A13; see
nasagent.benchmarks.control) and writes lamcts_control_<norm>.json / .png instead; its runs are cached apart::

    python benchmarks/lamcts_control.py --tasks hopper --methods lamcts-turbo,turbo,cmaes,random --obs-norm running

Writes benchmarks/results/lamcts_control.json and .png.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from lamcts_synthetic import summarise


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="rover-60,lunar,swimmer,hopper")
    ap.add_argument("--methods", default="lamcts-turbo,turbo,cmaes,optuna-tpe,ngopt,random")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=int, default=500)
    ap.add_argument("--obs-norm", default="none", choices=["none", "fixed", "running"],
                    help="observation normalisation of the MuJoCo linear policies (writes lamcts_control_<norm>.json)")
    args = ap.parse_args()
    opts = {} if args.obs_norm == "none" else {"obs_norm": args.obs_norm}
    name = "lamcts_control" if not opts else f"lamcts_control_{args.obs_norm}"
    summarise(name, args.tasks.split(","), args.methods.split(","), args.seeds, args.budget, 1.0, "reward",
              bench_options=opts, extra={"bench_options": opts})


if __name__ == "__main__":
    main()
