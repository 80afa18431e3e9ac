"""TuRBO-1 (Eriksson et al. 2019) as a strategy: one trust region, restarted from scratch when it collapses.

The same ``TurboSolver`` that LA-MCTS runs inside its regions, here over the whole box with a Latin-hypercube
initial design of ``n_init`` points per restart (30, as the thesis' TuRBO baseline). Defaults are the TuRBO
reference code's (see ``local_solvers.py``); ``batch_size`` points per Thompson-sampling step; ``failtol`` failed
batches halve the trust region (default: the reference's ceil(max(4, d) / batch_size)).
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy
from nasagent.strategies.lamcts import _box_bounds
from nasagent.strategies.local_solvers import TurboSolver


class TuRBO(Strategy):
    def __init__(self, space, seed: int = 0, n_init: int = 30, batch_size: int = 1, ts: str = "pathwise",
                 n_cand: int | None = None, gp_steps_warm: int = 10, failtol: int | None = None):
        super().__init__(space, seed)
        self.lower, self.upper = _box_bounds(space, "turbo")
        if int(n_init) < 2 or int(batch_size) < 1:
            raise NasagentError(f"turbo needs n_init >= 2 and batch_size >= 1, got {n_init} and {batch_size}")
        self.options = {"n_init": int(n_init), "batch_size": int(batch_size), "ts": ts, "n_cand": n_cand,
                        "gp_steps_warm": int(gp_steps_warm), "failtol": failtol}
        self.solvers: dict[int, TurboSolver] = {}
        self.current = -1
        self.restarts = 0
        self._start()

    def _start(self) -> None:
        self.current += 1
        self.solvers[self.current] = TurboSolver(self.lower, self.upper, self.rng, None, init="lhs", **self.options)

    def _propose(self) -> Proposal:
        if self.solvers[self.current].done:
            self.restarts += 1
            self._start()
        x = self.solvers[self.current].ask()
        return Proposal(tuple(float(v) for v in np.clip(x, self.lower, self.upper)), info={"run": self.current})

    def _observe(self, trial: Trial, result: Result) -> None:
        run = trial.info.get("run")
        solver = self.solvers.get(run)
        if solver is not None:
            solver.tell(np.asarray(trial.arch, dtype=np.float64), result.score if result.ok else None)
        for k in [k for k in self.solvers if k != self.current]:  # finished runs are not needed again
            if self.solvers[k].n_told >= self.solvers[k].n_asked:
                del self.solvers[k]
