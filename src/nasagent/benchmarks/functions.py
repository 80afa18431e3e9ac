"""Synthetic black-box functions (minimised, f* = 0) with a seeded random shift of the optimum.

Without the shift, Ackley and Rastrigin have their optimum at the origin and Levy/Rosenbrock at (1, ..., 1):
points any optimiser tends to try early (the centre of a symmetric box, or a default start). The shift
moves the optimum to a seeded random point in the inner 80 % of the box, so no method gets it for free.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nasagent.benchmarks.base import Benchmark, Metric
from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.spaces.box import BoxSpace


def ackley(z: np.ndarray) -> float:
    d = z.size
    return float(-20.0 * np.exp(-0.2 * np.sqrt(np.sum(z**2) / d)) - np.exp(np.sum(np.cos(2 * np.pi * z)) / d) + 20.0 + np.e)


def levy(z: np.ndarray) -> float:
    w = 1.0 + (z - 1.0) / 4.0
    head = np.sin(np.pi * w[0]) ** 2
    mid = np.sum((w[:-1] - 1.0) ** 2 * (1.0 + 10.0 * np.sin(np.pi * w[:-1] + 1.0) ** 2))
    tail = (w[-1] - 1.0) ** 2 * (1.0 + np.sin(2.0 * np.pi * w[-1]) ** 2)
    return float(head + mid + tail)


def rosenbrock(z: np.ndarray) -> float:
    return float(np.sum(100.0 * (z[1:] - z[:-1] ** 2) ** 2 + (1.0 - z[:-1]) ** 2))


def rastrigin(z: np.ndarray) -> float:
    return float(10.0 * z.size + np.sum(z**2 - 10.0 * np.cos(2 * np.pi * z)))


@dataclass(frozen=True)
class FunctionSpec:
    fn: Callable[[np.ndarray], float]
    lower: float
    upper: float
    native_optimum: float  # every coordinate of the unshifted minimiser


# the thesis' boxes (brief §5 item 15); Rosenbrock was [-5, 10] before 2026-12-06
FUNCTIONS: dict[str, FunctionSpec] = {
    "ackley": FunctionSpec(ackley, -5.0, 10.0, 0.0),
    "levy": FunctionSpec(levy, -10.0, 10.0, 1.0),
    "rosenbrock": FunctionSpec(rosenbrock, -10.0, 10.0, 1.0),
    "rastrigin": FunctionSpec(rastrigin, -5.12, 5.12, 0.0),
}


class FunctionBenchmark(Benchmark):
    """``f(x) = g(x - s)`` on the function's usual box, where ``s`` moves the minimiser to ``optimum_x``."""

    def __init__(self, function: str, dim: int, shift_seed: int | None = 0):
        if function not in FUNCTIONS:
            raise NasagentError(f"unknown function {function!r}; functions: {', '.join(FUNCTIONS)}")
        if dim < 1:
            raise NasagentError(f"function dimension must be >= 1, got {dim}")
        if function == "rosenbrock" and dim < 2:
            raise NasagentError("rosenbrock needs at least 2 dimensions")
        if shift_seed is not None and (isinstance(shift_seed, bool) or not isinstance(shift_seed, (int, np.integer)) or shift_seed < 0):
            raise NasagentError(f"shift_seed must be an integer >= 0 (or null: no shift), got {shift_seed!r}")
        spec = FUNCTIONS[function]
        space = BoxSpace(np.full(dim, spec.lower), np.full(dim, spec.upper), name=f"box-{dim}")
        super().__init__(
            name=f"{function}-{dim}",
            space=space,
            metrics={"value": Metric("value", "min", f"{function} value (global minimum 0)")},
            default_metric="value",
            notes=f"shifted {function} in {dim}-D on [{spec.lower}, {spec.upper}]^{dim}, shift seed {shift_seed}",
        )
        self.spec = spec
        self.dim = dim
        if shift_seed is None:
            self.optimum_x = np.full(dim, spec.native_optimum)
        else:
            rng = np.random.default_rng([shift_seed, dim, list(FUNCTIONS).index(function)])
            margin = 0.1 * (spec.upper - spec.lower)
            self.optimum_x = rng.uniform(spec.lower + margin, spec.upper - margin, dim)
        self.shift = self.optimum_x - spec.native_optimum

    def f(self, x) -> float:
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.dim,):
            raise NasagentError(f"{self.name} takes {self.dim} coordinates, got shape {x.shape}")
        return self.spec.fn(x - self.shift)

    def __call__(self, arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        return Result(metrics={"value": self.f(arch)}, cost=1.0)

    def optimum(self, objective: Objective) -> tuple[float, frozenset[str]] | None:
        if objective.metric == "value" and objective.mode == "min":
            return 0.0, frozenset()
        return None


def parse_function_spec(spec: str) -> tuple[str, int] | None:
    """'ackley-20' -> ('ackley', 20); None when ``spec`` is not a function benchmark name."""
    name, sep, dim = spec.rpartition("-")
    if sep and name in FUNCTIONS and dim.isdigit():
        return name, int(dim)
    if spec in FUNCTIONS:
        return spec, 20
    return None
