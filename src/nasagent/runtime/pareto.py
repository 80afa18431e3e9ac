"""Pareto fronts and hypervolume (pymoo does the sorting and the indicator).

Convention: points are given as *maximise-values* (``Result.scores``: minimised metrics negated), shape
``n x k``. For the hypervolume every objective is first normalised to [0, 1] as a minimisation (0 at the
best end of its range), and the reference point is 1.1 in each (the protocol of benchmarks/multiobjective.py).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError

REFERENCE = 1.1


def _pymoo():
    try:
        from pymoo.indicators.hv import HV
        from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    except ImportError as e:
        raise NasagentError(f"multi-objective search needs pymoo: pip install 'nasagent[bbo]' ({e})") from None
    return HV, NonDominatedSorting


def nondominated(points) -> np.ndarray:
    """Indices of the points no other point dominates (maximise-values; duplicates all kept)."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0:
        return np.zeros(0, dtype=int)
    _, nds = _pymoo()
    return np.sort(np.asarray(nds().do(-p, only_non_dominated_front=True), dtype=int))


def pareto_ranks(points) -> np.ndarray:
    """Front index of each point (0 = non-dominated), by fast non-dominated sorting."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0:
        return np.zeros(0, dtype=int)
    _, nds = _pymoo()
    _, rank = nds().do(-p, return_rank=True)
    return np.asarray(rank, dtype=int)


def crowding(points) -> np.ndarray:
    """NSGA-II crowding distance within one front: per objective, the gap between a point's two neighbours
    divided by the objective's spread, summed; the extreme points of each objective get infinity. (Written
    here because importing pymoo's version pulls in its whole operator package, ~3 s.)"""
    p = np.asarray(points, dtype=float)
    n = len(p)
    if n <= 2:
        return np.full(n, np.inf)
    out = np.zeros(n)
    for k in range(p.shape[1]):
        order = np.argsort(p[:, k], kind="mergesort")
        v = p[order, k]
        spread = v[-1] - v[0]
        out[order[0]] = out[order[-1]] = np.inf
        if spread > 0:
            out[order[1:-1]] += (v[2:] - v[:-2]) / spread
    return out


def normalize(points, lower, upper) -> np.ndarray:
    """Maximise-values -> minimisation in [0, 1]: 0 at ``upper`` (best), 1 at ``lower`` (worst)."""
    p = np.asarray(points, dtype=float)
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    width = np.where(hi > lo, hi - lo, 1.0)
    return (hi - p) / width


def hypervolume(points, lower, upper, reference: float = REFERENCE) -> float:
    """Hypervolume of maximise-value points after normalising each objective by [lower, upper]."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0:
        return 0.0
    hv_cls, _ = _pymoo()
    f = normalize(p, lower, upper)
    ref = np.full(f.shape[1], reference)
    f = f[(f < ref).all(axis=1)]
    if len(f) == 0:
        return 0.0
    return float(hv_cls(ref_point=ref)(f))


def objective_bounds(objective) -> tuple[np.ndarray, np.ndarray] | None:
    """[lower, upper] of each objective's maximise-value from the objective's ranges, if all are known."""
    rng = dict((m, (lo, hi)) for m, lo, hi in getattr(objective, "ranges", ()))
    lo, hi = [], []
    for o in objective.objectives:
        if o.metric not in rng:
            return None
        a, b = rng[o.metric]
        lo.append(a if o.mode == "max" else -b)
        hi.append(b if o.mode == "max" else -a)
    return np.array(lo), np.array(hi)


def table_front(table, objective) -> tuple[list[str], np.ndarray]:
    """Keys and maximise-values of a table's true Pareto front (feasible rows only)."""
    cols = {m: np.asarray(table.columns[m], dtype=float) for m in objective._needed()}
    pts = np.stack([cols[o.metric] if o.mode == "max" else -cols[o.metric] for o in objective.objectives], axis=1)
    ok = np.isfinite(pts).all(axis=1)
    if objective.constraints:
        with np.errstate(invalid="ignore"):
            ok &= objective._violation(cols) == 0
    idx = np.flatnonzero(ok)
    front = idx[nondominated(pts[idx])]
    return [table.keys[i] for i in front], pts[front]


def run_front(rows, objective) -> tuple[list[dict], float | None]:
    """The Pareto front of a run's counted samples (journal rows), feasible ones first: if no sample is
    feasible, the front of the least-violating ones is returned, each marked ``feasible: False``."""
    recs = []
    for r in rows:
        if not r.counted or r.score is None:
            continue
        s = objective.scores(r.metrics)
        v = objective.violation(r.metrics)
        if s is None or v is None:
            continue
        recs.append((r, s, v))
    if not recs:
        return [], None
    viol = np.array([v for _, _, v in recs])
    pool = np.flatnonzero(viol == 0) if (viol == 0).any() else np.flatnonzero(viol == viol.min())
    pts = np.array([recs[i][1] for i in pool])
    front = [pool[i] for i in nondominated(pts)]
    out = []
    for i in sorted(front, key=lambda i: recs[i][0].sample):
        r, s, v = recs[i]
        out.append(
            {
                "sample": r.sample,
                "trial": r.number,
                "arch": r.arch,
                "key": r.key,
                **{o.metric: r.metrics[o.metric] for o in objective.objectives},
                **{c.metric: r.metrics[c.metric] for c in objective.constraints if c.metric in r.metrics},
                "feasible": bool(v == 0),
            }
        )
    bounds = objective_bounds(objective)
    hv = None
    if bounds is not None and (viol == 0).any():
        hv = hypervolume(np.array([recs[i][1] for i in front]), *bounds)
    return out, hv


def hypervolume_trace(rows, objective, at) -> dict[int, float]:
    """Hypervolume of the feasible front among the first n counted samples, for each n in ``at``."""
    bounds = objective_bounds(objective)
    if bounds is None:
        raise NasagentError("hypervolume needs the range of every objective (tables provide them)")
    ordered = sorted((r for r in rows if r.counted and r.score is not None), key=lambda r: r.sample)
    pts, ok = [], []
    for r in ordered:
        s = objective.scores(r.metrics)
        pts.append(s if s is not None else [np.nan] * len(objective.objectives))
        ok.append(s is not None and objective.violation(r.metrics) == 0)
    pts, ok = np.array(pts, dtype=float).reshape(len(pts), -1), np.array(ok, dtype=bool)
    return {n: hypervolume(pts[:n][ok[:n]], *bounds) for n in at}


def write_front(front: list[dict], directory: str | Path, hypervolume_value: float | None = None) -> list[Path]:
    """``front.csv`` and ``front.json`` in ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / "front.csv", d / "front.json"]
    fields = list(dict.fromkeys(k for row in front for k in row)) or ["sample", "trial", "arch", "key", "feasible"]
    with open(paths[0], "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(front)
    paths[1].write_text(json.dumps({"hypervolume": hypervolume_value, "size": len(front), "front": front}, indent=2, default=float))
    return paths
