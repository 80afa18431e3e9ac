"""Continuous boxes for black-box optimisation: x in [lower, upper] per dimension.

An architecture is a tuple of floats; its key is the exact ``repr`` of the floats, so two points share a
key only when they are bit-identical.
"""

from __future__ import annotations

import math

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space


class BoxSpace(Space):
    sequential = False

    def __init__(self, lower, upper, name: str | None = None):
        lo = np.atleast_1d(np.asarray(lower, dtype=np.float64))
        hi = np.atleast_1d(np.asarray(upper, dtype=np.float64))
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise NasagentError(f"box bounds must be two 1-D arrays of one length, got {lo.shape} and {hi.shape}")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise NasagentError("box bounds must be finite numbers")
        bad = np.flatnonzero(lo >= hi)
        if bad.size:
            i = int(bad[0])
            raise NasagentError(f"box bound low >= high in dimension {i}: low={lo[i]}, high={hi[i]}")
        self.lower, self.upper = lo, hi
        self.dim = lo.size
        self.name = name or f"box-{self.dim}"

    def format(self, arch) -> str:
        return "[" + ", ".join(repr(float(v)) for v in arch) + "]"

    def parse(self, text: str) -> tuple[float, ...]:
        s = str(text).strip()
        if not (s.startswith("[") and s.endswith("]")):
            raise NasagentError(f"malformed point {text!r}: expected '[x1, x2, ...]'")
        try:
            vals = [float(v) for v in s[1:-1].split(",") if v.strip()]
        except ValueError as e:
            raise NasagentError(f"malformed point {text!r}: {e}") from None
        return self.validate(vals)

    def validate(self, arch) -> tuple[float, ...]:
        if isinstance(arch, str):
            return self.parse(arch)
        x = np.asarray(arch, dtype=np.float64).ravel()
        if x.size != self.dim:
            raise NasagentError(f"point has {x.size} dimensions, the box has {self.dim}")
        if not np.isfinite(x).all():
            raise NasagentError("point has a NaN or infinite coordinate")
        if (x < self.lower).any() or (x > self.upper).any():
            i = int(np.flatnonzero((x < self.lower) | (x > self.upper))[0])
            raise NasagentError(f"coordinate {i} = {x[i]} lies outside [{self.lower[i]}, {self.upper[i]}]")
        return tuple(float(v) for v in x)

    def sample(self, rng: np.random.Generator) -> tuple[float, ...]:
        return tuple(float(v) for v in rng.uniform(self.lower, self.upper))

    def encode(self, arch) -> np.ndarray:
        """Coordinates scaled to the unit cube."""
        return (np.asarray(arch, dtype=np.float64) - self.lower) / (self.upper - self.lower)

    def decode(self, unit) -> tuple[float, ...]:
        x = self.lower + np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0) * (self.upper - self.lower)
        return tuple(float(v) for v in x)

    def mutate(self, arch, rng: np.random.Generator, scale: float = 0.1) -> tuple[float, ...]:
        """Gaussian step of ``scale`` times the box width per dimension, clipped to the box."""
        x = np.asarray(arch) + rng.normal(0.0, scale, self.dim) * (self.upper - self.lower)
        return tuple(float(v) for v in np.clip(x, self.lower, self.upper))

    def size(self) -> int | None:
        return None

    def volume(self) -> float:
        return math.prod((self.upper - self.lower).tolist())
