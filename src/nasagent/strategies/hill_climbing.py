"""Hill climbing with revisit-restart, the baseline of the AlphaX paper (seed-000, App. 8 / Fig. 13).

Start from a random architecture; evaluate *every* child (one-edit neighbour) of the current one; move to
the best child; when the move would return to an architecture that was already current, restart from a
fresh random architecture. Children evaluated before are answered from the journal without spending
budget. The seed moves to the best child even when it is worse than the current architecture (the
revisit rule is what stops it at a local optimum); ``require_improvement=True`` restarts instead as soon
as no child improves (classic steepest ascent).
"""

from __future__ import annotations

from nasagent.core import Result, Trial
from nasagent.strategies.base import Proposal, Strategy, sample_unvisited


class HillClimbing(Strategy):
    requires = ("neighbors",)

    def __init__(self, space, seed: int = 0, require_improvement: bool = False, max_tries: int = 10_000):
        super().__init__(space, seed)
        self.require_improvement = require_improvement
        self.max_tries = max_tries
        self.current = None  # (arch, score) whose children are being evaluated
        self.start = None  # the random start proposed and not yet told, if any
        self.queue: list = []  # children still to propose
        self.waiting: set[str] = set()  # children proposed and not yet told
        self.children: list = []  # (arch, score) of the current children told so far
        self.visited: set[str] = set()  # keys that have been the current architecture
        self.proposed: set[str] = set()
        self.restarts = 0

    # -- ask ----------------------------------------------------------------------------------------
    def _propose(self) -> Proposal:
        if self.current is None and self.start is None:
            self.start = self._random_unvisited()
            return self._take(self.start, "start")
        if self.queue:
            return self._take(self.queue.pop(), "child")
        # waiting for the start or for children (parallel workers): keep the worker busy with a random sample
        return self._take(self._random_unvisited(), "filler")

    def _take(self, arch, phase: str) -> Proposal:
        self.proposed.add(self.space.key(arch))
        if phase == "child":
            self.waiting.add(self.space.key(arch))
        return Proposal(arch, info={"phase": phase})

    def _random_unvisited(self):
        return sample_unvisited(self.space, self.rng, self.proposed, self.max_tries, "hill climbing")

    # -- tell ---------------------------------------------------------------------------------------
    def _observe(self, trial: Trial, result: Result) -> None:
        phase = trial.info.get("phase")
        score = result.score if result.ok else float("-inf")
        key = self.space.key(trial.arch)
        if phase == "start" and self.start is not None and key == self.space.key(self.start):
            self.start = None
            self._move_to((trial.arch, score))
        elif phase == "child" and key in self.waiting:
            self.waiting.discard(key)
            self.children.append((trial.arch, score))
            if not self.queue and not self.waiting:
                self._advance()

    def _move_to(self, member) -> None:
        self.current = member
        self.visited.add(self.space.key(member[0]))
        nbrs = self.space.neighbors(member[0])
        self.queue = [nbrs[i] for i in self.rng.permutation(len(nbrs))][::-1]
        self.children = []
        self.waiting = set()
        if not self.queue:
            self._restart()

    def _advance(self) -> None:
        best = max(self.children, key=lambda m: m[1])
        worse = self.require_improvement and not best[1] > self.current[1]
        if worse or self.space.key(best[0]) in self.visited:
            self._restart()
        else:
            self._move_to(best)

    def _restart(self) -> None:
        self.current, self.queue, self.children, self.waiting = None, [], [], set()
        self.restarts += 1
