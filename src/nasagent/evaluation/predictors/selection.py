"""Predictor model selection as the Neural Predictor paper does it: hold out a third of the N trained
architectures, average the validation error over 10 random splits, pick the best setting of a grid, refit on
all N (optionally with 1.5x the parameters, the paper's heuristic for the larger training set).

``TunedPredictor`` wraps this as a predictor, so a strategy can ask for "a GCN tuned by cross-validation".
GCNs train the 10 splits of one setting together as one stacked network (``fit_predict_splits``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.predictors.base import NotFittedError, Predictor
from nasagent.evaluation.predictors.factory import clone, get_params, make_predictor
from nasagent.evaluation.predictors.metrics import kendall_tau, mse

#: the smallest N that leaves >= 2 architectures on each side of a one-third hold-out
MIN_CV_SAMPLES = 6


def holdout_splits(n: int, n_splits: int = 10, holdout: float = 1 / 3, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, validation) index pairs with ``round(holdout * n)`` validation samples each."""
    if not 0 < holdout < 1:
        raise NasagentError(f"hold-out fraction must be in (0, 1), got {holdout}")
    n_val = int(round(holdout * n))
    if n_val < 2 or n - n_val < 2:
        raise NasagentError(
            f"too few samples to hold out a validation third: N = {n}; cross-validation needs N >= {MIN_CV_SAMPLES} "
            "(evaluate more architectures first, or fit without tuning)"
        )
    rng = np.random.default_rng([seed, 5])
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((np.sort(perm[n_val:]), np.sort(perm[:n_val])))
    return out


def _score(metric: str, y, p) -> float:
    if metric == "mse":
        return mse(y, p)
    if metric == "kendall":
        return -kendall_tau(y, p)  # lower is better for every metric here
    raise NasagentError(f"selection metric must be 'mse' or 'kendall', got {metric!r}")


def cross_validate(predictor: Predictor, archs: Sequence, y, splits, metric: str = "mse", features=None) -> float:
    """Mean validation score (lower is better) of ``predictor``'s setting over ``splits``."""
    y = np.asarray(y, dtype=np.float64)
    if hasattr(predictor, "fit_predict_splits"):
        X = predictor.featurize(archs) if features is None else features
        preds = predictor.fit_predict_splits(X, y, splits)
    else:
        preds = []
        for tr, va in splits:
            p = clone(predictor).fit([archs[i] for i in tr], y[tr])
            preds.append(p.predict([archs[i] for i in va]))
    return float(np.mean([_score(metric, y[va], p) for (_, va), p in zip(splits, preds, strict=True)]))


def expand_grid(grid: dict[str, Sequence] | Sequence[dict]) -> list[dict]:
    if isinstance(grid, dict):
        keys = list(grid)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(grid[k] for k in keys))]
    return [dict(g) for g in grid]


def select(predictor: Predictor, grid, archs: Sequence, y, n_splits: int = 10, holdout: float = 1 / 3,
           metric: str = "mse", seed: int = 0) -> tuple[dict, list[dict]]:
    """Best setting of ``grid`` (dict of lists, or list of dicts) for ``predictor`` by repeated hold-out."""
    y = np.asarray(y, dtype=np.float64)
    splits = holdout_splits(len(y), n_splits, holdout, seed)
    settings = expand_grid(grid) or [{}]
    results = []
    for s in settings:
        candidate = clone(predictor, **s)
        # a setting may change the features themselves (e.g. the GCN's node positions), so each featurises anew
        features = candidate.featurize(archs) if hasattr(candidate, "fit_predict_splits") else None
        score = cross_validate(candidate, archs, y, splits, metric, features)
        results.append({"params": s, "score": score})
    best = min(results, key=lambda r: r["score"])
    return best["params"], results


class TunedPredictor(Predictor):
    """``base`` (a predictor name) with ``options``, its ``grid`` selected by 10 random one-third hold-outs,
    then refit on every sample. ``widen`` multiplies the refit network's parameters (the paper: 1.5, for the
    GCN; ignored by predictors without a ``widen`` method); ``widen=None`` refits the selected setting as is."""

    def __init__(self, space, seed: int = 0, base: str = "gcn", grid: dict | list | None = None, options: dict | None = None,
                 n_splits: int = 10, holdout: float = 1 / 3, metric: str = "mse", widen: float | None = 1.5):
        super().__init__(space, seed)
        self.base, self.grid, self.options = base, grid or {}, dict(options or {})
        self.n_splits, self.holdout, self.metric, self.widen = n_splits, holdout, metric, widen
        self.template = make_predictor(base, space, seed=seed, **self.options)
        # refused now, not after the first setting's cross-validation has trained
        if metric not in ("mse", "kendall"):
            raise NasagentError(f"tuned metric must be 'mse' or 'kendall', got {metric!r}")
        if not 0 < holdout < 1 or int(n_splits) < 1:
            raise NasagentError(f"tuned needs n_splits >= 1 and a hold-out fraction in (0, 1), got {n_splits} and {holdout}")
        for setting in expand_grid(self.grid):
            try:
                clone(self.template, **setting)
            except TypeError as e:
                raise NasagentError(f"tuned grid setting {setting} does not fit predictor {base!r}: {e}") from None

    def settings(self) -> list[dict]:
        """Every setting the grid can select (the empty one when there is no grid)."""
        return expand_grid(self.grid) or [{}]

    def featurize(self, archs):
        return list(archs)

    def _fit(self, archs, y: np.ndarray) -> None:
        if len(y) < MIN_CV_SAMPLES:
            holdout_splits(len(y), 1, self.holdout)  # raises the clear error
        self.best_params_, self.cv_results_ = select(self.template, self.grid, archs, y, self.n_splits, self.holdout,
                                                     self.metric, self.seed)
        chosen = clone(self.template, **self.best_params_)
        if self.widen and hasattr(chosen, "widen"):
            chosen = clone(chosen, **chosen.widen(self.widen))
        self.model_ = chosen.fit(archs, y)
        self.final_params_ = get_params(chosen)

    def _predict(self, archs) -> np.ndarray:
        return self.model_.predict(archs)

    def predict_std(self, archs) -> np.ndarray:
        if not self.fitted_:
            raise NotFittedError("TunedPredictor must be fitted before predict_std")
        return np.zeros(0) if len(archs) == 0 else self.model_.predict_std(archs)
