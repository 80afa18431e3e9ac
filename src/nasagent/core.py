"""The small value types every module shares: trials, results, budgets, objectives, errors.

They are plain dataclasses so that a strategy, an evaluator and the journal can exchange them without
importing one another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

Arch = Any  # an architecture object owned by its Space (tuple, frozen dataclass, ...)


class NasagentError(Exception):
    """An error caused by the user's input or environment, shown as one clear line (no traceback)."""


class SpaceExhausted(NasagentError):
    """Raised by a strategy's ``ask`` when every architecture it could propose has been evaluated."""


@dataclass
class Trial:
    """One proposal of a strategy.

    ``number`` is assigned by the strategy (0, 1, 2, ... in ask order) and is the trial's identity in the
    journal. ``hint`` carries extras for the evaluator (e.g. a parent architecture whose weights may be
    inherited). ``info`` is strategy-private, JSON-serialisable data that the runner journals and hands back
    unchanged in ``tell``, also after a resume.
    """

    number: int
    arch: Arch
    hint: dict | None = None
    info: dict = field(default_factory=dict)


@dataclass
class Result:
    """What an evaluator returns, and what a strategy is told.

    ``metrics`` holds every number the evaluator knows (a table returns all of its columns). ``cost`` is the
    compute the evaluation represents: table training seconds where the table has them, measured seconds when
    training, 1 per sample for tables without times. ``score`` is filled by the runner from the objective:
    the value to *maximise* (the runner negates minimised metrics), ``None`` when the trial failed.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    cost: float = 1.0
    status: str = "ok"  # ok | failed
    error: str | None = None
    score: float | None = None
    scores: tuple[float, ...] | None = None  # per-objective maximise-values (multi-objective search)
    violation: float = 0.0  # summed relative constraint excess, 0 when feasible (filled by the runner)

    @property
    def ok(self) -> bool:
        """Succeeded with a usable score: a NaN or infinite score counts as failed, so that a result told to a
        strategy without the runner (which already turns those into failures) cannot poison its model."""
        return self.status == "ok" and self.score is not None and math.isfinite(self.score)

    @classmethod
    def failed(cls, error: str, cost: float = 0.0) -> Result:
        return cls(metrics={}, cost=cost, status="failed", error=error)


@dataclass
class Budget:
    """When a search stops. Any combination; the first limit reached ends the run.

    ``evaluations`` counts unique valid architectures (re-proposals answered from the journal are free),
    ``cost`` sums ``Result.cost``, ``seconds`` is wall time of the search (a resumed run adds to it).
    """

    evaluations: int | None = None
    cost: float | None = None
    seconds: float | None = None

    def __post_init__(self) -> None:
        for name in ("evaluations", "cost", "seconds"):
            v = getattr(self, name)
            if v is not None and not (v > 0):
                raise NasagentError(f"budget {name} must be > 0, got {v}")
        if self.evaluations is None and self.cost is None and self.seconds is None:
            raise NasagentError("a budget needs at least one of evaluations, cost or seconds")

    def exhausted(self, evaluations: int, cost: float, seconds: float) -> bool:
        return (
            (self.evaluations is not None and evaluations >= self.evaluations)
            or (self.cost is not None and cost >= self.cost)
            or (self.seconds is not None and seconds >= self.seconds)
        )


@dataclass(frozen=True)
class Objective:
    """A metric and its direction. ``score`` turns a metrics dict into the value a strategy maximises."""

    metric: str
    mode: str = "max"  # max | min

    def __post_init__(self) -> None:
        if self.mode not in ("max", "min"):
            raise NasagentError(f"objective mode must be 'max' or 'min', got {self.mode!r}")

    def value(self, metrics: dict[str, float]) -> float | None:
        v = metrics.get(self.metric)
        if v is None:
            return None
        v = float(v)
        return v if math.isfinite(v) else None

    def score(self, metrics: dict[str, float]) -> float | None:
        v = self.value(metrics)
        if v is None:
            return None
        return v if self.mode == "max" else -v

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def __str__(self) -> str:
        return f"{self.metric}:{self.mode}"
