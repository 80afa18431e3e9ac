"""Target transforms for regressors: fit on the training labels, map predictions back to label units.

Accuracy tables are skewed: NB201 has hundreds of cells at 10 % and a long low tail, so a squared loss on the
raw (or standardised) labels spends its capacity on the worst architectures while a search cares about the
order of the best ones. ``rank`` replaces each label by its normal score (the Gaussian quantile of its rank),
which the GCN uses by default (a development run saw held-out tau on NB201 at N = 172 rise from 0.73 to 0.77;
not re-measured by benchmarks/predictor_ranking.py, see docs/predictors.md).
Predictions are mapped back through the monotone piecewise-linear inverse, extrapolated linearly past the
training range so that the order of predictions above the best training label is kept.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata

from nasagent.core import NasagentError

KINDS = ("standard", "rank")


class TargetTransform:
    def __init__(self, kind: str = "standard"):
        if kind not in KINDS:
            raise NasagentError(f"target transform must be one of {', '.join(KINDS)}, got {kind!r}")
        self.kind = kind

    def fit_transform(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if self.kind == "standard":
            self.loc_, self.scale_ = float(y.mean()), float(max(y.std(), 1e-12))
            return (y - self.loc_) / self.scale_
        z = norm.ppf(rankdata(y) / (len(y) + 1))
        # the inverse map: unique (z, y) knots (ties share one average rank, hence one z)
        zs, first = np.unique(z, return_index=True)
        self.z_, self.y_ = zs, y[first]
        if len(zs) >= 2:
            k = min(3, len(zs) - 1)
            self.lo_slope_ = (self.y_[k] - self.y_[0]) / (zs[k] - zs[0])
            self.hi_slope_ = (self.y_[-1] - self.y_[-1 - k]) / (zs[-1] - zs[-1 - k])
        else:
            self.lo_slope_ = self.hi_slope_ = 1.0
        return z

    def inverse(self, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, dtype=np.float64)
        if self.kind == "standard":
            return z * self.scale_ + self.loc_
        out = np.interp(z, self.z_, self.y_)
        lo, hi = z < self.z_[0], z > self.z_[-1]
        out[lo] = self.y_[0] + (z[lo] - self.z_[0]) * self.lo_slope_
        out[hi] = self.y_[-1] + (z[hi] - self.z_[-1]) * self.hi_slope_
        return out

    def inverse_scale(self, z: np.ndarray, std: np.ndarray) -> np.ndarray:
        """A spread in transformed units mapped to label units (local slope of the inverse at ``z``)."""
        if self.kind == "standard":
            return np.asarray(std) * self.scale_
        eps = 1e-3
        slope = (self.inverse(np.asarray(z) + eps) - self.inverse(np.asarray(z) - eps)) / (2 * eps)
        return np.asarray(std) * np.abs(slope)
