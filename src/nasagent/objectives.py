"""Several objectives and constraints behind the one-objective interface the runner speaks.

The runner asks an objective for ``score`` (the value strategies maximise), ``value`` (what the trace shows),
``mode`` and ``metric``. A ``MultiObjective`` answers these through a scalarisation (weighted sum, augmented
Chebyshev, or TuNAS' absolute reward) with a penalty for violated constraints, and also gives every
objective's own maximise-value (``scores``) and the constraint violation, which the runner hands to
strategies in ``Result.scores`` / ``Result.violation`` (NSGA-II style selection uses them directly).

With one objective and constraints, ``value`` and ``metric`` are that objective's own, so traces read as
usual. With two or more, ``value`` is the scalarised score (``mode`` "max"): the run's "best" is the best
scalarised design, and the Pareto front is what ``nasagent report`` exports.

Constraint handling (docs/multiobjective.md): a constraint on a metric the evaluator knows *before* it
evaluates (``evaluator.static_metrics(arch)``, e.g. parameters or latency of a table) rejects the proposal
without evaluating it; any other violated constraint is penalised: ``score - R * (1 + violation)``, where
``R`` is the width of the score's range, so that every feasible design outranks every infeasible one when
the objectives' ranges are known (tables), and a smaller violation outranks a larger one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nasagent.core import NasagentError, Objective

SCALARIZATIONS = ("weighted", "chebyshev", "tunas-abs")
#: penalty scale ``R`` when the score's range is unknown (no table, no ranges given)
DEFAULT_PENALTY = 1e3
#: augmentation of the Chebyshev scalarisation (keeps it from preferring weakly dominated points)
CHEBYSHEV_RHO = 0.05
#: TuNAS' default cost exponent (seed-004: beta = -0.10 in the released code)
TUNAS_BETA = -0.1

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.\-/]*)\s*(<=|>=|<|>)\s*([-+]?[\d.]+(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``metric op bound`` with ``op`` one of ``<=``, ``>=``, ``<``, ``>``."""

    metric: str
    op: str
    bound: float

    def __post_init__(self) -> None:
        if self.op not in ("<=", ">=", "<", ">"):
            raise NasagentError(f"constraint operator must be <=, >=, < or >, got {self.op!r}")
        if not math.isfinite(self.bound):
            raise NasagentError(f"constraint bound must be a finite number, got {self.bound}")

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT.match(str(text))
        if m is None:
            raise NasagentError(f"malformed constraint {text!r}: write it like 'params<=1.5' or 'accuracy>=90'")
        try:
            bound = float(m.group(3))
        except ValueError:  # the pattern admits e.g. "1.2.3"
            raise NasagentError(f"malformed constraint {text!r}: {m.group(3)!r} is not a number") from None
        return cls(m.group(1), m.group(2), bound)

    def excess(self, value: float) -> float:
        """How far ``value`` lies outside the bound (0 when satisfied; a tiny positive number for a strict
        bound met with equality)."""
        over = value - self.bound if self.op in ("<=", "<") else self.bound - value
        if over > 0:
            return over
        if over == 0 and self.op in ("<", ">"):
            return 1e-12
        return 0.0

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def parse_objective(text: str, default_mode=None) -> Objective:
    """``NAME`` or ``NAME:max|min``; ``default_mode(name)`` gives the direction when it is omitted."""
    name, sep, mode = str(text).strip().rpartition(":")
    if not sep:
        name, mode = mode, ""
    if not name:
        raise NasagentError(f"malformed objective {text!r}: write it like 'accuracy:max' or 'latency:min'")
    if not mode:
        mode = default_mode(name) if default_mode else "max"
    if mode not in ("max", "min"):
        raise NasagentError(f"objective {text!r}: the direction must be 'max' or 'min', got {mode!r}")
    return Objective(name, mode)


@dataclass(frozen=True)
class MultiObjective:
    """Objectives (each with its direction), constraints and how to turn them into one score.

    ``ranges`` holds ``(metric, low, high)`` for normalisation: objective ``i`` becomes ``u_i`` in [0, 1]
    with 1 best. Tables provide their column ranges (``make_objective``); elsewhere the raw maximise-values
    are used by the weighted sum, and Chebyshev asks for ranges. ``weights`` default to equal.
    ``target``/``beta`` belong to ``tunas-abs``: ``u_quality + beta * |cost / target - 1|``.
    """

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()
    scalarization: str = "weighted"
    weights: tuple[float, ...] | None = None
    ranges: tuple[tuple[str, float, float], ...] = ()
    target: float | None = None
    beta: float = TUNAS_BETA
    penalty: float | None = None

    def __post_init__(self) -> None:
        if not self.objectives:
            raise NasagentError("a multi-objective search needs at least one objective")
        names = [o.metric for o in self.objectives]
        for o in self.objectives:
            if names.count(o.metric) > 1:
                modes = {x.mode for x in self.objectives if x.metric == o.metric}
                if len(modes) > 1:
                    raise NasagentError(f"objective {o.metric!r} is asked to be both maximised and minimised")
                raise NasagentError(f"objective {o.metric!r} is given twice")
        if self.scalarization not in SCALARIZATIONS:
            raise NasagentError(f"unknown scalarization {self.scalarization!r}; choose {', '.join(SCALARIZATIONS)}")
        if self.weights is not None:
            if len(self.weights) != len(self.objectives):
                raise NasagentError(f"{len(self.weights)} weights given for {len(self.objectives)} objectives")
            if any(not (w >= 0) for w in self.weights) or sum(self.weights) <= 0:
                raise NasagentError(f"weights must be >= 0 and not all 0, got {list(self.weights)}")
        for metric, lo, hi in self.ranges:
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise NasagentError(f"range of {metric!r} must be two finite numbers low <= high, got {lo}, {hi}")
        if self.scalarization == "chebyshev" and self.multi:
            missing = [o.metric for o in self.objectives if o.metric not in self._range]
            if missing:
                raise NasagentError(
                    f"chebyshev scalarisation needs the range of every objective (missing: {', '.join(missing)}); "
                    "table benchmarks provide them, otherwise pass ranges"
                )
        if self.scalarization == "tunas-abs":
            if len(self.objectives) != 2 or self.objectives[1].mode != "min":
                raise NasagentError(
                    "tunas-abs needs exactly two objectives, quality then cost, e.g. "
                    "--objective accuracy:max --objective latency:min"
                )
            if self.target is None or not self.target > 0:
                raise NasagentError("tunas-abs needs a positive cost target T0: --scalarization tunas-abs:target=VALUE")
        if self.penalty is not None and not self.penalty > 0:
            raise NasagentError(f"penalty must be > 0, got {self.penalty}")

    @cached_property
    def _range(self) -> dict[str, tuple[float, float]]:
        return {m: (float(lo), float(hi)) for m, lo, hi in self.ranges}

    # -- the runner's interface --------------------------------------------------------------------
    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def metric(self) -> str:
        if not self.multi:
            return self.objectives[0].metric
        return f"{self.scalarization}({','.join(str(o) for o in self.objectives)})"

    @property
    def mode(self) -> str:
        return self.objectives[0].mode if not self.multi else "max"

    def better(self, a: float, b: float) -> bool:
        return a > b if self.mode == "max" else a < b

    def score(self, metrics: dict) -> float | None:
        return self._one(metrics, 0)

    def value(self, metrics: dict) -> float | None:
        return self._one(metrics, 1)

    def scores(self, metrics: dict) -> tuple[float, ...] | None:
        """Each objective's maximise-value (raw units; minimised metrics negated)."""
        out = tuple(o.score(metrics) for o in self.objectives)
        return None if any(v is None for v in out) else out

    def violation(self, metrics: dict) -> float | None:
        """Sum over constraints of the excess, relative to the metric's range (or to ``max(|bound|, 1)``)."""
        cols = self._columns(metrics)
        if cols is None:
            return None
        v = self._violation(cols)[0]
        return float(v) if np.isfinite(v) else None

    def feasible(self, metrics: dict) -> bool:
        return self.violation(metrics) == 0

    def reject(self, static_metrics: dict) -> str | None:
        """Why a proposal is rejected before evaluation (a constraint on a metric known up front), else None."""
        for c in self.constraints:
            v = static_metrics.get(c.metric)
            if v is not None and c.excess(float(v)) > 0:
                return f"rejected before evaluation: {c.metric} = {float(v):.6g} violates the constraint {c}"
        return None

    def penalty_scale(self) -> float:
        """``R``: the width of the score's range where it is known, else ``penalty`` or DEFAULT_PENALTY."""
        if self.penalty is not None:
            return self.penalty
        if self.multi and all(o.metric in self._range for o in self.objectives):
            # the width of the scalarised score, so that every infeasible design scores below every feasible one
            if self.scalarization == "chebyshev":
                w = self._weights()
                return float(w.max() + CHEBYSHEV_RHO * w.sum())
            if self.scalarization == "tunas-abs":
                lo, hi = self._range[self.objectives[1].metric]
                return 1.0 + abs(self.beta) * max(abs(lo / self.target - 1.0), abs(hi / self.target - 1.0))
            return 1.0  # weighted: u @ w lies in [0, 1]
        if not self.multi and self.objectives[0].metric in self._range:
            lo, hi = self._range[self.objectives[0].metric]
            return (hi - lo) or 1.0
        return DEFAULT_PENALTY

    # -- vectorised core: metric columns -> (score, value) -------------------------------------------
    def _needed(self) -> set[str]:
        return {o.metric for o in self.objectives} | {c.metric for c in self.constraints}

    def _columns(self, metrics: dict) -> dict[str, np.ndarray] | None:
        cols = {}
        for m in self._needed():
            v = metrics.get(m)
            if v is None:
                return None
            cols[m] = np.array([float(v)])
        return cols

    def _one(self, metrics: dict, which: int) -> float | None:
        cols = self._columns(metrics)
        if cols is None:
            return None
        v = self.evaluate(cols)[which][0]
        return float(v) if np.isfinite(v) else None

    def normalized(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """``u`` (rows x objectives): 1 at the best end of each objective's range, 0 at the worst; the raw
        maximise-value for an objective without a range."""
        out = []
        for o in self.objectives:
            v = cols[o.metric]
            r = self._range.get(o.metric)
            if r is None:
                out.append(v if o.mode == "max" else -v)
            else:
                lo, hi = r
                w = (hi - lo) or 1.0
                out.append((v - lo) / w if o.mode == "max" else (hi - v) / w)
        return np.stack(out, axis=1)

    def _violation(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        total = np.zeros(len(next(iter(cols.values()))))
        for c in self.constraints:
            v = cols[c.metric]
            lo_hi = self._range.get(c.metric)
            scale = (lo_hi[1] - lo_hi[0]) if lo_hi and lo_hi[1] > lo_hi[0] else max(abs(c.bound), 1.0)
            over = v - c.bound if c.op in ("<=", "<") else c.bound - v
            strict_tie = (over == 0) & (c.op in ("<", ">"))
            total = total + np.where(over > 0, over, np.where(strict_tie, 1e-12, 0.0)) / scale
        return total  # NaN where a constraint metric is NaN

    def _weights(self) -> np.ndarray:
        w = np.ones(len(self.objectives)) if self.weights is None else np.asarray(self.weights, dtype=float)
        return w / w.sum()

    def scalarize(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        if not self.multi:
            o = self.objectives[0]
            return cols[o.metric] if o.mode == "max" else -cols[o.metric]
        u = self.normalized(cols)
        w = self._weights()
        if self.scalarization == "weighted":
            return u @ w
        if self.scalarization == "chebyshev":
            gap = w * (1.0 - u)
            return -gap.max(axis=1) - CHEBYSHEV_RHO * gap.sum(axis=1)
        cost = cols[self.objectives[1].metric]
        return u[:, 0] + self.beta * np.abs(cost / self.target - 1.0)

    def evaluate(self, cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(score, value) for arrays of metric values; NaN where a needed metric is not finite."""
        with np.errstate(invalid="ignore"):
            s = self.scalarize(cols)
            v = self._violation(cols)
            score = np.where(v > 0, s - self.penalty_scale() * (1.0 + v), s)
            score = np.where(np.isfinite(score) & np.isfinite(v), score, np.nan)
            if self.multi:
                value = score
            else:
                value = np.where(np.isfinite(score), cols[self.objectives[0].metric], np.nan)
        return score, value

    # -- tables ------------------------------------------------------------------------------------
    def optimum_of(self, evaluator) -> tuple[float, frozenset[str]] | None:
        """The best ``value`` over an enumerable table (and the keys reaching it); what the runner uses for
        samples-to-optimum. Other evaluators: their own optimum when nothing is constrained, else None."""
        columns = getattr(evaluator, "columns", None)
        keys = getattr(evaluator, "keys", None)
        if columns is None or keys is None:
            if not self.multi and not self.constraints and hasattr(evaluator, "optimum"):
                return evaluator.optimum(self.objectives[0])
            return None
        scores, values = self.evaluate({m: np.asarray(columns[m], dtype=float) for m in self._needed()})
        finite = np.isfinite(scores)
        if not finite.any():
            return None
        best = scores[finite].max()
        hit = np.flatnonzero(finite & (scores == best))
        return float(values[hit[0]]), frozenset(keys[i] for i in hit)

    def __str__(self) -> str:
        head = ", ".join([str(o) for o in self.objectives] + [str(c) for c in self.constraints])
        return f"{head} ({self.scalarization})" if self.multi else head

# ------------------------------------------------------------------------------------------------------
# building from names (CLI / API)
# ------------------------------------------------------------------------------------------------------
def parse_scalarization(spec: str | None) -> dict:
    """``weighted``, ``weighted:0.7,0.3``, ``chebyshev[:w1,w2]``, ``tunas-abs:target=84[,beta=-0.1]``."""
    if spec is None:
        return {}
    name, _, rest = str(spec).strip().partition(":")
    if name not in SCALARIZATIONS:
        raise NasagentError(f"unknown scalarization {name!r}; choose {', '.join(SCALARIZATIONS)}")
    out: dict = {"scalarization": name}
    if not rest:
        return out
    try:
        if name == "tunas-abs":
            for item in rest.split(","):
                k, sep, v = item.partition("=")
                if not sep or k.strip() not in ("target", "beta"):
                    raise ValueError(item)
                out[k.strip()] = float(v)
        else:
            out["weights"] = tuple(float(v) for v in rest.split(","))
    except ValueError:
        example = "tunas-abs:target=84,beta=-0.1" if name == "tunas-abs" else f"{name}:0.7,0.3"
        raise NasagentError(f"malformed scalarization {spec!r}; write it like {example!r}") from None
    return out


def make_objective(
    benchmark,
    metric: str | None = None,
    mode: str | None = None,
    objectives=(),
    constraints=(),
    scalarization: str | None = None,
    ranges: dict | None = None,
    penalty: float | None = None,
):
    """The objective a run searches: the core ``Objective`` when there is one objective and no constraint
    (exactly what ``--metric`` gives), else a ``MultiObjective`` with the table's ranges filled in."""
    metrics = getattr(benchmark, "metrics", {}) or {}

    def default_mode(name: str) -> str:
        return metrics[name].mode if name in metrics else "max"

    objs = [o if isinstance(o, Objective) else parse_objective(o, default_mode) for o in objectives]
    if metric is not None:
        primary = Objective(metric, mode or default_mode(metric))
        if objs and (len(objs) != 1 or objs[0] != primary):
            raise NasagentError("give the objectives either with --metric/--mode or with --objective (repeatable), not both")
        objs = [primary]
    elif mode is not None and not objs:
        objs = [benchmark.objective(None, mode)]
    elif mode is not None:  # each --objective carries its own direction (metric:min); --mode would be ignored
        raise NasagentError(f"--mode {mode} does not apply to --objective; give the direction with each objective "
                            "(e.g. --objective accuracy:max)")
    if not objs:
        objs = [benchmark.objective()]
    cons = tuple(c if isinstance(c, Constraint) else Constraint.parse(c) for c in constraints)
    known = list(metrics)
    for name in [o.metric for o in objs] + [c.metric for c in cons]:
        if known and name not in metrics:
            raise NasagentError(f"benchmark {benchmark.name!r} has no metric {name!r}; it has: {', '.join(known)}")
    if len(objs) == 1 and not cons and scalarization is None and not ranges and penalty is None:
        return objs[0]
    rng = dict(ranges or {})
    columns = getattr(benchmark, "columns", None)
    if columns is not None:
        for name in {o.metric for o in objs} | {c.metric for c in cons}:
            if name not in rng and name in columns:
                col = np.asarray(columns[name], dtype=float)
                col = col[np.isfinite(col)]
                if col.size:
                    rng[name] = (float(col.min()), float(col.max()))
    spec = parse_scalarization(scalarization)
    obj = MultiObjective(
        tuple(objs), cons, ranges=tuple((k, float(v[0]), float(v[1])) for k, v in sorted(rng.items())), penalty=penalty, **spec
    )
    if columns is not None and cons:
        _check_satisfiable(benchmark, obj)
    return obj


def _check_satisfiable(table, obj: MultiObjective) -> None:
    """A table can say up front that nothing satisfies the constraints."""
    cols = {c.metric: np.asarray(table.columns[c.metric], dtype=float) for c in obj.constraints}
    with np.errstate(invalid="ignore"):
        ok = obj._violation(cols) == 0
    if not ok.any():
        spans = ", ".join(f"{m} spans {np.nanmin(v):.6g}..{np.nanmax(v):.6g}" for m, v in cols.items())
        raise NasagentError(
            f"no architecture in {table.name!r} satisfies {' and '.join(str(c) for c in obj.constraints)} ({spans})"
        )


def strategy_options_for(strategy: str, objective, options: dict) -> dict:
    """Options a strategy needs from the objective up front: ``n_objectives`` for strategies that take it
    (Optuna's samplers must know how many values a study optimises before the first result arrives)."""
    import inspect

    from nasagent.registry import strategy_class

    options = dict(options)
    if getattr(objective, "multi", False):
        params = inspect.signature(strategy_class(strategy).__init__).parameters
        if "n_objectives" in params:
            options.setdefault("n_objectives", len(objective.objectives))
    return options
