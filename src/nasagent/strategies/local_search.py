"""Local search: the strongest simple baseline on NB201 (White et al., 2021).

Start from the best of ``n_init`` random samples; evaluate the one-edit neighbours of the current
architecture in random order and move to the first one that improves on it (first improvement); when a
neighbourhood holds no improvement (a local optimum), restart from the best of ``n_init`` fresh samples.
Nothing already proposed is proposed again: a neighbour evaluated earlier (by a previous climb) is skipped, not
compared, so a climb can restart beside a better cell it already knows. The committed baseline figures are
measured with this behaviour.
"""

from __future__ import annotations

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Proposal, Strategy, sample_unvisited


class LocalSearch(Strategy):
    requires = ("neighbors",)

    def __init__(self, space, seed: int = 0, n_init: int = 10, max_tries: int = 10_000):
        super().__init__(space, seed)
        if n_init < 1:
            raise NasagentError(f"local-search n_init must be >= 1, got {n_init}")
        self.n_init = n_init
        self.max_tries = max_tries
        self.asked: set[str] = set()
        self.current = None  # (arch, score) the neighbourhood is taken around
        self.queue: list = []  # neighbours of current still to propose
        self.init_left = n_init  # random samples still to propose in this (re)start
        self.init_best = None  # best (arch, score) among this start's random samples

    def _propose(self) -> Proposal:
        for _ in range(self.max_tries):
            if self.init_left > 0:
                self.init_left -= 1
                return self._take(self._fresh_sample(), "init")
            while self.queue:
                arch = self.queue.pop()
                if self.space.key(arch) not in self.asked:
                    return self._take(arch, "neighbor")
            if self.current is None and self.init_best is not None:
                self._move(self.init_best)
            else:  # a local optimum, or the start's samples are still being evaluated: restart
                self.current, self.init_best, self.init_left = None, None, self.n_init
        raise SpaceExhausted("local search found nothing new to propose")

    def _take(self, arch, phase: str) -> Proposal:
        self.asked.add(self.space.key(arch))
        return Proposal(arch, info={"phase": phase})

    def _fresh_sample(self):
        return sample_unvisited(self.space, self.rng, self.asked, self.max_tries, "local search")

    def _move(self, member) -> None:
        self.current = member
        nbrs = self.space.neighbors(member[0])
        self.queue = [nbrs[i] for i in self.rng.permutation(len(nbrs))]

    def _observe(self, trial: Trial, result: Result) -> None:
        if not result.ok:
            return
        member = (trial.arch, result.score)
        if trial.info.get("phase") == "init" and (self.init_best is None or member[1] > self.init_best[1]):
            self.init_best = member
        if self.current is not None and member[1] > self.current[1]:
            self._move(member)
