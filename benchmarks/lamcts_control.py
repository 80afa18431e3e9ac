"""LA-MCTS against black-box baselines on control and planning tasks (issue 5, thesis section 5.4).

Tasks: Rover-60 (trajectory planning), LunarLander (12-parameter heuristic controller), MuJoCo Swimmer (16-D)
and Hopper (33-D) linear policies; rewards averaged over 3 episodes with fixed seeds. Metric: best reward found
(maximised), mean +- se over seeds, plus each optimiser's CPU overhead per sample. LA-MCTS uses the thesis'
presets: C_p 1 and leaf size 20 on Rover and Lunar ("synthetic"), C_p 10 and leaf size 100 on MuJoCo ("mujoco").

The committed run is all four tasks at 500 evaluations, 3 seeds, every peer but LA-MCTS(BO) (a Swimmer or
Hopper evaluation costs up to ~0.5 s here, so it takes ~2.5 CPU hours). ``--budget``, ``--seeds``, ``--tasks``
and ``--methods`` set the scale and the results file records it. Runs are cached per (task, method, seed) under
benchmarks/cache/lamcts/.
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
    args = ap.parse_args()
    summarise("lamcts_control", args.tasks.split(","), args.methods.split(","), args.seeds, args.budget, 1.0, "reward")


if __name__ == "__main__":
    main()
