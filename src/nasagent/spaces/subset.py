"""A space restricted to a finite set of architectures: a user's table that covers part of a space.

Sampling, enumeration and neighbourhoods stay inside the set, so strategies do not waste proposals on
architectures the table cannot answer. Text forms, keys, encodings and the sequential interface are the
base space's (sequential construction can still reach architectures outside the set; those fail cleanly).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nasagent.core import Arch
from nasagent.spaces.base import Space


class SubsetSpace(Space):
    def __init__(self, base: Space, keys, archs: list[Arch] | None = None):
        self.base = base
        self.name = base.name
        self.sequential = base.sequential
        keys = list(keys)
        self.keys = set(keys)
        self.archs = archs if archs is not None else [base.parse(k) for k in keys]
        self.ops = getattr(base, "ops", None)

    def format(self, arch: Arch) -> str:
        return self.base.format(arch)

    def parse(self, text: str) -> Arch:
        return self.base.parse(text)

    def key(self, arch: Arch) -> str:
        return self.base.key(arch)

    def validate(self, arch) -> Arch:
        return self.base.validate(arch)

    def encode(self, arch: Arch) -> np.ndarray:
        return self.base.encode(arch)

    def sample(self, rng: np.random.Generator) -> Arch:
        return self.archs[int(rng.integers(len(self.archs)))]

    def neighbors(self, arch: Arch) -> list[Arch]:
        return [a for a in self.base.neighbors(arch) if self.base.key(a) in self.keys]

    def mutate(self, arch: Arch, rng: np.random.Generator) -> Arch:
        nbrs = self.neighbors(arch)
        return nbrs[int(rng.integers(len(nbrs)))] if nbrs else self.sample(rng)

    def size(self) -> int:
        return len(self.archs)

    def enumerate(self) -> Iterator[Arch]:
        return iter(self.archs)

    def root(self):
        return self.base.root()

    def actions(self, state):
        return self.base.actions(state)

    def step(self, state, action):
        return self.base.step(state, action)

    def is_terminal(self, state) -> bool:
        return self.base.is_terminal(state)

    def to_arch(self, state):
        return self.base.to_arch(state)

    def __getattr__(self, name):  # anything else (iso_key, op lists, ...) comes from the base space
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)
