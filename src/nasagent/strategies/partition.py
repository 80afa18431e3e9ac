"""What LaNAS and LA-MCTS share: the UCB score of a tree node and the exploration-constant rule.

Both searches descend a binary tree of learned space partitions, at each node moving to the child with the
larger upper confidence bound. The thesis prints four variants of the bound (brief, ambiguity A1); we use

    ucb = mean + 2 * C_p * sqrt(2 * ln(n_parent) / n)        (``formula="log"``, thesis Alg. 4, default)
    ucb = mean + 2 * C_p * sqrt(2 * sqrt(n_parent) / n)      (``formula="sqrt"``, the LA-MCTS reference code)

with ``mean`` the child's mean score (never divided by n a second time), +inf for a child without samples,
and ties broken at random. ``C_p = 0`` is greedy "go to the better child".
"""

from __future__ import annotations

import math

import numpy as np

from nasagent.core import NasagentError

UCB_FORMULAS = ("log", "sqrt")


def ucb_score(mean: float, n: int, n_parent: int, cp: float, formula: str = "log") -> float:
    if n <= 0:
        return math.inf
    if formula == "log":
        bonus = math.sqrt(2.0 * math.log(max(n_parent, 1)) / n)
    elif formula == "sqrt":
        bonus = math.sqrt(2.0 * math.sqrt(max(n_parent, 1)) / n)
    else:
        raise NasagentError(f"unknown UCB formula {formula!r}; formulas: {', '.join(UCB_FORMULAS)}")
    return mean + 2.0 * cp * bonus


def pick(scores, rng: np.random.Generator) -> int:
    """Index of the largest score, ties broken uniformly at random (``inf`` ties included)."""
    s = np.asarray(scores, dtype=np.float64)
    best = np.flatnonzero(s == s.max())
    return int(best[0]) if best.size == 1 else int(rng.choice(best))


def resolve_cp(cp, scores) -> float:
    """The exploration constant: a number, or ``"auto"`` = 0.1 x the scale of the scores seen so far.

    The thesis' rule is 0.1 x max metric (c = 10 for accuracies in [0, 100]). Where the best score is near 0
    (a minimised function whose optimum is 0, negated), 0.1 x |max f| would make the search greedy, so the
    scale is the larger of |max f| and the range max f - min f (and never exactly 0).
    """
    if isinstance(cp, str):
        if cp != "auto":
            raise NasagentError(f"cp must be a number >= 0 or 'auto', got {cp!r}")
        s = np.asarray(scores, dtype=np.float64)
        if s.size == 0:
            return 1.0
        scale = max(abs(float(s.max())), float(s.max() - s.min()))
        return 0.1 * scale if scale > 0 else 0.1
    if isinstance(cp, bool) or not isinstance(cp, (int, float, np.integer, np.floating)):
        raise NasagentError(f"cp must be a number >= 0 or 'auto', got {cp!r}")
    cp = float(cp)
    if not (cp >= 0) or not math.isfinite(cp):
        raise NasagentError(f"cp must be a finite number >= 0 or 'auto', got {cp}")
    return cp


def resolve_preset(strategy: str, preset: str | None, presets: dict, defaults: dict, **given) -> dict:
    """The options ``given`` with each None filled from the preset, else from the defaults: an option given
    explicitly wins over the preset's, which wins over the default."""
    if preset is not None and preset not in presets:
        raise NasagentError(f"unknown {strategy} preset {preset!r}; presets: {', '.join(presets)}")
    base = {**defaults, **presets.get(preset, {})}
    return {k: base[k] if v is None else v for k, v in given.items()}


def check_formula(formula: str) -> str:
    if formula not in UCB_FORMULAS:
        raise NasagentError(f"unknown UCB formula {formula!r}; formulas: {', '.join(UCB_FORMULAS)}")
    return formula
