"""How good is a predictor: rank correlation and top-set precision on held-out architectures, errors, and
the cascade classifier's false-negative rate and precision (the paper's Fig. 6)."""

from __future__ import annotations

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nasagent.core import NasagentError


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y, p = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    if y.shape != p.shape or len(y) < 2:
        raise NasagentError(f"metrics need two equal-length arrays of >= 2 values, got {len(y)} and {len(p)}")
    return y, p


def kendall_tau(y_true, y_pred) -> float:
    """Kendall tau-b (ties handled as scipy does); 0 when a side is constant."""
    y, p = _pair(y_true, y_pred)
    t = kendalltau(y, p).statistic
    return 0.0 if not np.isfinite(t) else float(t)


def spearman_rho(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    r = spearmanr(y, p).statistic
    return 0.0 if not np.isfinite(r) else float(r)


def precision_at_top(y_true, y_pred, fraction: float = 0.05) -> float:
    """Share of the predicted top ``fraction`` that is truly in the top ``fraction`` (ties broken by index)."""
    y, p = _pair(y_true, y_pred)
    k = max(1, int(round(fraction * len(y))))
    true_top = set(np.argsort(-y, kind="stable")[:k].tolist())
    pred_top = np.argsort(-p, kind="stable")[:k]
    return float(np.mean([i in true_top for i in pred_top]))


def mse(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    return float(np.mean((y - p) ** 2))


def r2(y_true, y_pred) -> float:
    y, p = _pair(y_true, y_pred)
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - p) ** 2)) / ss if ss > 0 else 0.0


def ranking_report(y_true, y_pred, top: float = 0.05) -> dict[str, float]:
    """Every metric of the predictor_ranking benchmark in one dict."""
    m = mse(y_true, y_pred)
    return {
        "kendall_tau": kendall_tau(y_true, y_pred),
        "spearman_rho": spearman_rho(y_true, y_pred),
        f"precision_top{round(top * 100)}": precision_at_top(y_true, y_pred, top),
        "mse": m,
        "rmse": float(np.sqrt(m)),
        "r2": r2(y_true, y_pred),
    }


def classifier_report(y_true, passed, threshold: float) -> dict[str, float]:
    """For a filter that keeps ``passed`` architectures: the share of truly good ones (label > threshold) it
    drops (false-negative rate) and the share of kept ones that are good (precision)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    keep = np.asarray(passed, dtype=bool).ravel()
    good = y > threshold
    fnr = float(np.mean(~keep[good])) if good.any() else 0.0
    precision = float(np.mean(good[keep])) if keep.any() else 0.0
    return {"fnr": fnr, "precision": precision, "kept": float(keep.mean())}
