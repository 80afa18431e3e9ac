"""The Neural Predictor's soft-Pareto selection (ImageNet experiment, paper §4.2), for any cost.

Candidates carry a *predicted* accuracy and a known cost (latency, FLOPs, parameters). Sort them by
increasing cost; a candidate is "soft-Pareto optimal when the predicted accuracy is higher than the minimum of
the previous J models". We read "previous J models" as the last J models *already admitted* (ambiguity A15 in
the brief: over all candidates the rule would keep about 6/7 of an i.i.d. pool, not the paper's 137 of
112,000), so J = 1 is exactly the Pareto front and larger J admits a band of near-front models to be trained
(the paper: J = 6 gave K = 137). The first candidate is always admitted; while fewer than J are admitted the
minimum is over all of them. Cost ties are broken by higher accuracy first; comparisons are strict.

``latency_window`` keeps only candidates whose cost lies in [low, high] first (the paper: 75-85 ms on Pixel 1).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from nasagent.core import NasagentError


def soft_pareto(accuracy, cost, j: int = 6, window: tuple[float, float] | None = None) -> np.ndarray:
    """Indices of the admitted candidates, in order of increasing cost."""
    acc = np.asarray(accuracy, dtype=np.float64).ravel()
    c = np.asarray(cost, dtype=np.float64).ravel()
    if acc.shape != c.shape:
        raise NasagentError(f"soft-Pareto needs one cost per accuracy, got {len(acc)} accuracies and {len(c)} costs")
    if j < 1:
        raise NasagentError(f"soft-Pareto J must be >= 1, got {j}")
    if not (np.isfinite(acc).all() and np.isfinite(c).all()):
        raise NasagentError("soft-Pareto accuracies and costs must be finite")
    idx = np.arange(len(acc))
    if window is not None:
        lo, hi = window
        if lo > hi:
            raise NasagentError(f"cost window must be (low, high) with low <= high, got {window}")
        idx = idx[(c >= lo) & (c <= hi)]
    order = idx[np.lexsort((-acc[idx], c[idx]))]  # by cost, then by accuracy descending
    admitted: list[int] = []
    last: deque[float] = deque(maxlen=j)
    for i in order:
        if not last or acc[i] > min(last):
            admitted.append(int(i))
            last.append(acc[i])
    return np.asarray(admitted, dtype=np.int64)


def pareto_front(accuracy, cost) -> np.ndarray:
    """Indices of the true Pareto front (max accuracy, min cost) in order of increasing cost: soft-Pareto J = 1."""
    return soft_pareto(accuracy, cost, j=1)
