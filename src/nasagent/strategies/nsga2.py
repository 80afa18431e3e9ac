"""Multi-objective evolution: steady-state NSGA-II selection with one-edit mutation (evolution's MO mode).

Members are ranked by Deb's constrained crowded comparison: feasible before infeasible, infeasible by
smaller constraint violation, feasible by non-dominated front (fast non-dominated sorting on
``Result.scores``) and then by larger crowding distance. Each proposal mutates the winner of a tournament
of ``tournament_size`` members; each evaluated child joins the population and the worst-ranked member
leaves (the (mu + 1) steady-state form of NSGA-II, which suits asynchronous workers). Like regularized
evolution it mutates instead of crossing over, since a space only promises ``mutate``.

With a single objective (``Result.scores`` is None) the score is the one objective, and this is an
elitist steady-state GA. ``archive=True`` (our extension, the default) draws tournament entrants from the
population plus the non-dominated archive of every sample so far, so no front member is lost to
replacement noise; ``archive=False`` is textbook NSGA-II. When ``max_tries`` mutations in a row give only
architectures seen before (the population has converged on a fully explored neighbourhood), the proposal
is a random unseen architecture instead.
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.runtime.pareto import crowding, nondominated, pareto_ranks
from nasagent.strategies.base import Strategy, sample_unvisited


def crowded_order(points: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Indices from best to worst by the constrained crowded-comparison operator."""
    n = len(points)
    rank = np.zeros(n)
    crowd = np.zeros(n)
    feas = np.flatnonzero(violation == 0)
    if len(feas):
        r = pareto_ranks(points[feas])
        rank[feas] = r
        for k in np.unique(r):
            members = feas[r == k]
            crowd[members] = crowding(points[members])
    infeasible = violation > 0
    rank[infeasible] = np.inf
    return np.lexsort((-crowd, violation, rank))


class NSGA2Evolution(Strategy):
    def __init__(
        self, space, seed: int = 0, population_size: int = 20, tournament_size: int = 2, archive: bool = True, max_tries: int = 50
    ):
        super().__init__(space, seed)
        if population_size < 2 or not 1 <= tournament_size <= population_size:
            raise NasagentError(
                f"evolution-nsga2 needs population_size >= 2 and 1 <= tournament_size <= population_size, "
                f"got {population_size} / {tournament_size}"
            )
        self.population_size = population_size
        self.tournament_size = tournament_size
        self.archive = archive
        self.max_tries = max_tries
        self.population: list[tuple] = []  # (arch, key, scores tuple, violation)
        self.front: list[tuple] = []  # non-dominated feasible members of every sample so far
        self.seen: set[str] = set()  # keys evaluated or proposed
        self.n_random = 0
        self.immigrants = 0  # random proposals made because no unseen child was found

    # -- ask ----------------------------------------------------------------------------------------
    def _propose(self):
        if self.n_random < self.population_size or not self.population:
            self.n_random += 1
            return self._fresh(self.space.sample(self.rng))
        pool = self.population + [m for m in self.front if m[1] not in {p[1] for p in self.population}]
        pts, viol = self._arrays(pool)
        order = crowded_order(pts, viol)
        position = np.empty(len(pool), dtype=int)
        position[order] = np.arange(len(pool))
        child = None
        for _ in range(self.max_tries):
            entrants = self.rng.choice(len(pool), size=min(self.tournament_size, len(pool)), replace=False)
            parent = pool[int(min(entrants, key=lambda i: position[i]))][0]
            child = self.space.mutate(parent, self.rng)
            if self.space.key(child) not in self.seen:
                return self._fresh(child)
        # a converged population whose one-edit neighbourhood is all evaluated: a random immigrant instead of
        # a re-proposal (re-proposals cost no budget, so without this a run can spin without progress)
        self.immigrants += 1
        try:
            return self._fresh(sample_unvisited(self.space, self.rng, self.seen, self.max_tries, "evolution-nsga2"))
        except SpaceExhausted:
            return self._fresh(child)

    def _fresh(self, arch):
        self.seen.add(self.space.key(arch))
        return arch

    def _arrays(self, members) -> tuple[np.ndarray, np.ndarray]:
        pts = np.array([m[2] for m in members], dtype=float).reshape(len(members), -1)
        viol = np.array([m[3] for m in members], dtype=float)
        return pts, viol

    # -- tell ---------------------------------------------------------------------------------------
    def _observe(self, trial: Trial, result: Result) -> None:
        key = self.space.key(trial.arch)
        self.seen.add(key)
        if not result.ok:
            if len(self.population) < self.population_size and self.n_random <= self.population_size:
                self.n_random -= 1  # a failed initial member is replaced by another random one
            return
        if any(m[1] == key for m in self.population):
            return  # a re-proposal answered from the journal
        scores = tuple(result.scores) if result.scores is not None else (float(result.score),)
        member = (trial.arch, key, scores, float(result.violation or 0.0))
        self.population.append(member)
        if len(self.population) > self.population_size:
            pts, viol = self._arrays(self.population)
            worst = int(crowded_order(pts, viol)[-1])
            self.population.pop(worst)
        if self.archive and member[3] == 0 and all(m[1] != key for m in self.front):
            cand = self.front + [member]
            pts, _ = self._arrays(cand)
            self.front = [cand[i] for i in nondominated(pts)]
