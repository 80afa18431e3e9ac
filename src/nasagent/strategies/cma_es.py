"""CMA-ES as a strategy, from the ``cmaes`` package, with restarts.

It runs in the unit cube of the box with the package's bound handling. The initial step size is 0.25 of the box
width (the thesis' CMA-ES baseline uses sigma 0.5 on [-1, 1] boxes, the same fraction); a restart begins from a
uniformly random mean when CMA-ES reports convergence or has not improved for ``patience`` generations.
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy
from nasagent.strategies.lamcts import _box_bounds
from nasagent.strategies.local_solvers import CMAESSolver


class CMAES(Strategy):
    def __init__(self, space, seed: int = 0, sigma: float = 0.25, popsize: int | None = None, patience: int = 50):
        super().__init__(space, seed)
        self.lower, self.upper = _box_bounds(space, "cmaes")
        if not 0 < float(sigma) <= 1:
            raise NasagentError(f"cmaes sigma is a fraction of the box width in (0, 1], got {sigma}")
        if popsize is not None and int(popsize) < 2:
            raise NasagentError(f"cmaes popsize must be >= 2, got {popsize}")
        self.sigma, self.popsize, self.patience = float(sigma), popsize, int(patience)
        self.solvers: dict[int, CMAESSolver] = {}
        self.current = -1
        self.restarts = 0
        self._start(mean=(self.lower + self.upper) / 2)

    def _start(self, mean) -> None:
        self.current += 1
        self.solvers[self.current] = CMAESSolver(self.lower, self.upper, self.rng, None, mean=mean, sigma=self.sigma,
                                                 popsize=self.popsize, patience=self.patience)

    def _propose(self) -> Proposal:
        if self.solvers[self.current].done:
            self.restarts += 1
            self._start(mean=self.rng.uniform(self.lower, self.upper))
        x = self.solvers[self.current].ask()
        return Proposal(tuple(float(v) for v in np.clip(x, self.lower, self.upper)), info={"run": self.current})

    def _observe(self, trial: Trial, result: Result) -> None:
        solver = self.solvers.get(trial.info.get("run"))
        if solver is not None:
            solver.tell(np.asarray(trial.arch, dtype=np.float64), result.score if result.ok else None)
        for k in [k for k in self.solvers if k != self.current]:
            if self.solvers[k].n_told >= self.solvers[k].n_asked:
                del self.solvers[k]
