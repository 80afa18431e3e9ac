"""Evaluators by look-up or cheap simulation, and the metadata a runner needs to judge a search.

Every benchmark is an ``Evaluator``: ``bench(arch, budget=None, hint=None) -> Result``. Table benchmarks
also know their global optimum, so the runner can report regret and samples-to-optimum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from nasagent.core import Arch, Budget, NasagentError, Objective, Result
from nasagent.spaces.base import Space


class Evaluator(Protocol):
    def __call__(self, arch: Arch, budget: Budget | None = None, hint: dict | None = None) -> Result: ...


@dataclass(frozen=True)
class Metric:
    name: str
    mode: str  # max | min
    description: str = ""
    #: the metric to report beside this one when it is searched (validation -> test), if any
    report: str | None = None
    #: known before evaluating (parameters, a latency model): a constraint on it rejects without evaluating
    static: bool = False


@dataclass
class Benchmark:
    """Base class: a name, a space, the metrics it returns and the one searched by default."""

    name: str
    space: Space
    metrics: dict[str, Metric]
    default_metric: str
    notes: str = ""

    def __call__(self, arch: Arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        raise NotImplementedError

    def objective(self, metric: str | None = None, mode: str | None = None) -> Objective:
        """The objective for ``metric`` (default metric when omitted), with the metric's own direction."""
        metric = metric or self.default_metric
        if metric not in self.metrics:
            raise NasagentError(
                f"benchmark {self.name!r} has no metric {metric!r}; it has: {', '.join(self.metrics)}"
            )
        return Objective(metric, mode or self.metrics[metric].mode)

    # Tables override these; open-ended evaluators (functions with a known f*, training) may too.
    def optimum(self, objective: Objective) -> tuple[float, frozenset[str]] | None:
        """(best value, keys that reach it) when known, else ``None``."""
        return None

    def close(self) -> None:
        """Release resources (open files, worker pools)."""


@dataclass
class TableBenchmark(Benchmark):
    """A benchmark backed by a table: one row of metric values per architecture key.

    ``cost_metric`` names the column holding training seconds; tables without one cost 1 per sample.
    Keys missing from the table (a user's partial table) are answered as failed trials with a clear error,
    so they do not count toward the budget (see docs/benchmarks.md).
    """

    keys: list[str] = field(default_factory=list)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    cost_metric: str | None = None

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}
        n = len(self.keys)
        for name, col in self.columns.items():
            if len(col) != n:
                raise NasagentError(f"table column {name!r} has {len(col)} rows, expected {n}")
        self._rows: dict[int, dict[str, float]] = {}
        self._optima: dict[Objective, tuple[float, frozenset[str]]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def row(self, key: str) -> dict[str, float] | None:
        i = self.index.get(key)
        if i is None:
            return None
        r = self._rows.get(i)
        if r is None:
            r = self._rows[i] = {name: float(col[i]) for name, col in self.columns.items()}
        return r

    def __call__(self, arch: Arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        key = self.space.key(arch)
        r = self.row(key)
        if r is None:
            return Result.failed(f"architecture {self.space.format(arch)} is not in table {self.name!r}")
        cost = r[self.cost_metric] if self.cost_metric else 1.0
        return Result(metrics=dict(r), cost=cost)

    def static_metrics(self, arch: Arch) -> dict[str, float]:
        """The metrics marked ``static`` (known without training), for rejecting before evaluation."""
        names = [m.name for m in self.metrics.values() if m.static]
        r = self.row(self.space.key(arch)) if names else None
        return {} if r is None else {n: r[n] for n in names if n in r}

    def value(self, key: str, metric: str) -> float | None:
        r = self.row(key)
        return None if r is None else r.get(metric)

    def optimum(self, objective: Objective) -> tuple[float, frozenset[str]]:
        hit = self._optima.get(objective)
        if hit is None:
            col = self.columns[objective.metric].astype(np.float64)
            finite = np.isfinite(col)
            if not finite.any():
                raise NasagentError(f"metric {objective.metric!r} of {self.name} has no finite value in the table "
                                    f"(every row is NaN or missing); choose another --metric")
            best = col[finite].max() if objective.mode == "max" else col[finite].min()
            keys = frozenset(self.keys[i] for i in np.flatnonzero(finite & (col == best)))
            hit = self._optima[objective] = (float(best), keys)
        return hit

    def values(self, metric: str) -> np.ndarray:
        return self.columns[metric]
