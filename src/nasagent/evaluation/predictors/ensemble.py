"""An ensemble of any predictor: members differ in seed; the spread of their predictions is the uncertainty.

BANANAS (White et al., 2021) drives its search with such an ensemble; the iterative mode of the
``neural-predictor`` strategy does too. GCN ensembles are better built as ``GCNPredictor(n_models=k)``, which
trains the members together as one stacked network (``make_predictor("gcn-ensemble")`` does that).
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.predictors.base import NotFittedError, Predictor


class EnsemblePredictor(Predictor):
    """``base`` is a predictor name from ``factory.PREDICTORS``; member i is built with seed ``seed + i``.
    ``bootstrap`` trains each member on a bootstrap resample (more diversity, fewer distinct samples each)."""

    def __init__(self, space, seed: int = 0, base: str = "mlp", n_models: int = 5, bootstrap: bool = False,
                 options: dict | None = None):
        super().__init__(space, seed)
        if n_models < 2:
            raise NasagentError(f"an ensemble needs n_models >= 2, got {n_models}")
        self.base, self.n_models, self.bootstrap, self.options = base, n_models, bootstrap, dict(options or {})
        from nasagent.evaluation.predictors.factory import make_predictor

        self.members = [make_predictor(base, space, seed=seed + i, **self.options) for i in range(n_models)]

    def featurize(self, archs):
        return list(archs)  # each member featurizes for itself

    def _fit(self, archs, y: np.ndarray) -> None:
        rng = np.random.default_rng([self.seed, 11])
        for m in self.members:
            idx = rng.integers(len(y), size=len(y)) if self.bootstrap else np.arange(len(y))
            m.fit([archs[i] for i in idx], y[idx])

    def _all(self, archs) -> np.ndarray:
        return np.stack([m.predict(archs) for m in self.members])

    def _predict(self, archs) -> np.ndarray:
        return self._all(archs).mean(0)

    def predict_std(self, archs) -> np.ndarray:
        if not self.fitted_:
            raise NotFittedError("EnsemblePredictor must be fitted before predict_std (call fit(archs, y))")
        return self._all(list(archs)).std(0)
