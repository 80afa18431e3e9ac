"""The Strategy contract: Optuna-style ask/tell; a strategy never calls the evaluator.

Subclasses implement ``_propose`` (return an architecture, or a ``Proposal`` with a hint and private info)
and ``_observe``. The base class numbers trials, owns the seeded RNG and provides ``state_dict`` /
``load_state_dict`` for snapshots: by default every attribute except those listed in ``_transient``
(objects rebuilt from the constructor arguments, such as the space) is saved.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from nasagent.core import Arch, NasagentError, Result, SpaceExhausted, Trial
from nasagent.spaces.base import Space


def local_candidates(space, arch, rng: np.random.Generator, draws: int = 20) -> list:
    """The one-edit neighbours of ``arch``, or ``draws`` random mutations of it when the space has no finite
    neighbourhood: the local half of the candidate pools that model-based strategies score."""
    try:
        return space.neighbors(arch)
    except NasagentError:
        return [space.mutate(arch, rng) for _ in range(draws)]


def sample_unvisited(space, rng: np.random.Generator, visited, max_tries: int, who: str):
    """A uniform sample of ``space`` whose key is not in ``visited``: the random step of every strategy that
    never re-proposes. ``SpaceExhausted`` after ``max_tries`` draws (the space is, or nearly is, used up)."""
    for _ in range(max_tries):
        arch = space.sample(rng)
        if space.key(arch) not in visited:
            return arch
    raise SpaceExhausted(f"{who} found no unvisited architecture in {max_tries} samples")


def add_random_candidates(found: dict, space, rng: np.random.Generator, n: int) -> None:
    """Add up to ``n`` new uniform samples to ``found`` (key -> arch), drawing at most ``3 n`` times: the
    global half of the candidate pools that model-based strategies score."""
    target = len(found) + n
    for _ in range(n * 3):
        if len(found) >= target:
            break
        arch = space.sample(rng)
        found.setdefault(space.key(arch), arch)


@dataclass
class Proposal:
    arch: Arch
    hint: dict | None = None
    info: dict = field(default_factory=dict)


class Strategy(ABC):
    #: attributes not saved in snapshots (rebuilt by ``__init__`` or lazily)
    _transient: tuple[str, ...] = ("space",)
    #: what the strategy needs from a space: any of "sequential", "neighbors", "enumerate"
    requires: tuple[str, ...] = ()

    def __init__(self, space: Space, seed: int = 0):
        self.space = space
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self._next_number = 0
        self._check_space()

    def _check_space(self) -> None:
        if "sequential" in self.requires and not getattr(self.space, "sequential", False):
            err = self.space._not_sequential() if hasattr(self.space, "_not_sequential") else None
            raise err or NasagentError(f"{type(self).__name__} needs a space with the sequential interface")
        if "neighbors" in self.requires:
            try:
                self.space.neighbors(self.space.sample(np.random.default_rng(0)))
            except NasagentError as e:
                raise NasagentError(f"{type(self).__name__} needs one-edit neighbours: {e}") from None

    # -- ask / tell ---------------------------------------------------------------------------------
    def ask(self) -> Trial:
        p = self._propose()
        if not isinstance(p, Proposal):
            p = Proposal(p)
        trial = Trial(self._next_number, p.arch, p.hint, p.info)
        self._next_number += 1
        return trial

    def tell(self, trial: Trial, result: Result) -> None:
        self._observe(trial, result)

    @abstractmethod
    def _propose(self) -> Arch | Proposal: ...

    @abstractmethod
    def _observe(self, trial: Trial, result: Result) -> None: ...

    # -- snapshots ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to continue exactly where the strategy is (serialised by the caller at once)."""
        return {k: v for k, v in vars(self).items() if k not in self._transient}

    def load_state_dict(self, state: dict) -> None:
        for k, v in copy.deepcopy(state).items():
            setattr(self, k, v)
