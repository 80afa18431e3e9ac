"""Random search: uniform samples, without replacement where the space can be enumerated."""

from __future__ import annotations

import numpy as np

from nasagent.core import Result, SpaceExhausted, Trial
from nasagent.strategies.base import Strategy

#: spaces up to this many architectures are enumerated once and visited in a seeded random order
ENUMERATE_LIMIT = 2_000_000


class RandomSearch(Strategy):
    """On an enumerable space (NB201, NB101, NAS-Bench-Graph) every architecture is visited at most once, in
    a seeded random order, so the expected samples to find one optimum among N is (N + 1) / 2. Elsewhere it
    samples with ``space.sample`` and skips keys it has already proposed (``max_tries`` per ask)."""

    _transient = ("space", "_order")

    def __init__(self, space, seed: int = 0, without_replacement: bool = True, max_tries: int = 10_000):
        super().__init__(space, seed)
        self.without_replacement = without_replacement
        self.max_tries = max_tries
        size = space.size()
        self.enumerable = bool(without_replacement and size is not None and size <= ENUMERATE_LIMIT)
        self._position = 0
        self._proposed: set[str] = set()
        self._order = None

    def _propose(self):
        if self.enumerable:
            if self._order is None:
                archs = list(self.space.enumerate())
                perm = np.random.default_rng([self.seed, 1]).permutation(len(archs))
                self._order = [archs[i] for i in perm]
            if self._position >= len(self._order):
                raise SpaceExhausted(f"random search has proposed all {len(self._order)} architectures")
            arch = self._order[self._position]
            self._position += 1
            return arch
        for _ in range(self.max_tries):
            arch = self.space.sample(self.rng)
            if not self.without_replacement:
                return arch
            key = self.space.key(arch)
            if key not in self._proposed:
                self._proposed.add(key)
                return arch
        raise SpaceExhausted(f"random search found no new architecture in {self.max_tries} samples")

    def _observe(self, trial: Trial, result: Result) -> None:
        pass
