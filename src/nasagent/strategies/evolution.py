"""Regularized evolution (Real et al., 2019): tournament selection and ageing.

The population holds the ``population_size`` most recently evaluated architectures. Each new proposal
mutates the best of ``sample_size`` members drawn at random; the oldest member dies when a child arrives.
Asynchronous by construction: a worker that frees up gets a child of the current population.
"""

from __future__ import annotations

from collections import deque

from nasagent.core import Result, Trial
from nasagent.strategies.base import Strategy, sample_unvisited

#: children in a row that were all proposed before, after which evolution proposes a fresh random cell
STUCK_AFTER = 1000


class RegularizedEvolution(Strategy):
    """Defaults (population 20, tournament 10) were picked by measurement on the embedded NB201 table
    (benchmarks/baseline_tuning.py: 113 mean samples to the optimum vs 153 for 50 / 10; docs/strategies.md).
    Real et al. used 100 / 25 on NB101-size problems and the AlphaX seed 500 / 50."""

    def __init__(self, space, seed: int = 0, population_size: int = 20, sample_size: int = 10):
        super().__init__(space, seed)
        if population_size < 1 or not 1 <= sample_size <= population_size:
            from nasagent.core import NasagentError

            raise NasagentError(
                f"evolution needs population_size >= 1 and 1 <= sample_size <= population_size, "
                f"got {population_size} / {sample_size}"
            )
        self.population_size = population_size
        self.sample_size = sample_size
        self.population: deque = deque()  # (arch, score), oldest first
        self.n_random = 0  # random initial proposals handed out
        self.proposed: set[str] = set()  # keys of the children proposed so far
        self.repeats = 0  # children in a row that were proposed before

    def _propose(self):
        if len(self.population) < self.population_size and self.n_random < self.population_size:
            self.n_random += 1
            return self._fresh(self.space.sample(self.rng))
        if not self.population:  # every initial member failed: keep sampling at random
            return self._fresh(self.space.sample(self.rng))
        idx = self.rng.choice(len(self.population), size=min(self.sample_size, len(self.population)), replace=False)
        parent = max((self.population[i] for i in idx), key=lambda m: m[1])[0]
        child = self.space.mutate(parent, self.rng)
        key = self.space.key(child)
        self.repeats = self.repeats + 1 if key in self.proposed else 0
        if self.repeats >= getattr(self, "stuck_after", STUCK_AFTER):
            # on a sparse space (a partial table) the population can close in on cells whose every mutation was
            # seen: a fresh random cell gets it moving (never reached on a whole table before its optimum). Once it
            # happened the population has converged and stays so: from then on a population's worth of repeats
            # is enough (at 1,000 each, a long run journaled ~100 free repeats per paid sample)
            self.repeats = 0
            self.stuck_after = min(STUCK_AFTER, self.population_size)
            child = sample_unvisited(self.space, self.rng, self.proposed, 10_000, "evolution")
            key = self.space.key(child)
        self.proposed.add(key)
        return child

    def _fresh(self, arch):
        self.proposed.add(self.space.key(arch))
        return arch

    def _observe(self, trial: Trial, result: Result) -> None:
        if not result.ok:
            if len(self.population) < self.population_size:
                self.n_random -= 1  # a failed initial member is replaced by another random one
            return
        self.population.append((trial.arch, result.score))
        if len(self.population) > self.population_size:
            self.population.popleft()
