"""The Space contract: what a candidate is, how to sample, encode, identify and edit it.

A space owns its architecture objects (immutable and hashable) and converts them to and from a readable
string (``format``/``parse``), which is what the journal stores. Spaces that can be built step by step also
expose the sequential interface used by MCTS and REINFORCE (``root/actions/step/is_terminal``).
"""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from nasagent.core import Arch, NasagentError

State = Any
Action = Any


def _guarded(method):
    @functools.wraps(method)
    def guarded(self, arch):
        try:
            return method(self, arch)
        except (TypeError, ValueError, AttributeError, IndexError, KeyError) as e:
            raise NasagentError(f"{arch!r} is not an architecture of the {self.name} space ({type(e).__name__}: {e})") from e

    guarded._guarded = True
    return guarded


class Space(ABC):
    name: str = "space"
    #: True when ``root/actions/step/is_terminal`` are implemented.
    sequential: bool = True

    def __init_subclass__(cls, **kwargs):
        """Every space's ``validate`` and ``parse`` answer input that is not an architecture at all (None, a
        number, a malformed object or string) with one ``NasagentError`` naming the space, never a TypeError."""
        super().__init_subclass__(**kwargs)
        for method in ("validate", "parse"):
            own = cls.__dict__.get(method)
            if inspect.isfunction(own) and not getattr(own, "_guarded", False):  # a static/class method is left as is
                setattr(cls, method, _guarded(own))

    # -- identity and text -------------------------------------------------------------------------
    @abstractmethod
    def format(self, arch: Arch) -> str:
        """A readable string that ``parse`` turns back into the same architecture."""

    @abstractmethod
    def parse(self, text: str) -> Arch:
        """Inverse of ``format``; raises ``NasagentError`` naming what is malformed."""

    def key(self, arch: Arch) -> str:
        """Identity used for budgets, caching and table look-up (defaults to the readable string)."""
        return self.format(arch)

    @_guarded  # (subclasses' own validate and parse are guarded by __init_subclass__)
    def validate(self, arch: Arch) -> Arch:
        """Return ``arch`` (an architecture object or its text) if it belongs to this space, else raise
        ``NasagentError``."""
        return self.parse(arch if isinstance(arch, str) else self.format(arch))

    # -- sampling and editing ----------------------------------------------------------------------
    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Arch: ...

    @abstractmethod
    def encode(self, arch: Arch) -> np.ndarray:
        """Fixed-length float vector (for LaNAS, predictors, BO)."""

    def neighbors(self, arch: Arch) -> list[Arch]:
        """Every architecture one edit away (local search). Spaces without a finite neighbourhood raise."""
        raise NasagentError(f"space {self.name!r} has no finite one-edit neighbourhood")

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        """A random one-edit neighbour (evolution)."""
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))]

    # -- enumeration (optional) --------------------------------------------------------------------
    def size(self) -> int | None:
        """Number of distinct keys, when known."""
        return None

    def enumerate(self) -> Iterator[Arch]:
        """All architectures, one per key, in a fixed order (only for spaces where ``size`` is known)."""
        raise NasagentError(f"space {self.name!r} cannot be enumerated")

    # -- sequential construction (MCTS, REINFORCE) ----------------------------------------------------
    def root(self) -> State:
        raise self._not_sequential()

    def actions(self, state: State) -> Sequence[Action]:
        raise self._not_sequential()

    def step(self, state: State, action: Action) -> State:
        raise self._not_sequential()

    def is_terminal(self, state: State) -> bool:
        raise self._not_sequential()

    def to_arch(self, state: State) -> Arch:
        """The architecture a terminal state stands for (identity for most spaces)."""
        return state

    def _not_sequential(self) -> NasagentError:
        from nasagent.registry import sequential_spaces

        return NasagentError(
            f"space {self.name!r} has no sequential (root/actions/step) interface; "
            f"spaces that have one: {', '.join(sequential_spaces())}"
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def one_hot(index: int, n: int) -> np.ndarray:
    v = np.zeros(n, dtype=np.float64)
    v[index] = 1.0
    return v
