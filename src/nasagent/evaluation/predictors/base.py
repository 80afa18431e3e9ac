"""The predictor contract: scikit-learn-like surrogates that learn a metric from architectures.

``fit(archs, y)`` and ``predict(archs)`` take architecture objects of the predictor's space (the space
turns them into features: ``space.encode`` by default, a graph encoding for GCNs). ``predict_std`` is
optional (ensembles, GPs). Constructors only store parameters; ``fit`` validates its input and raises
``NasagentError`` with a clear message (too few samples, archs from another space, NaN targets).
``save(path)`` / ``load_predictor(path)`` checkpoint a fitted predictor (the paper's artifacts).
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError


#: the tag a checkpoint written by ``Predictor.save`` carries
CHECKPOINT_FORMAT = "nasagent-predictor"


class NotFittedError(NasagentError):
    pass


class Predictor(ABC):
    """Subclasses implement ``_fit(X, y)`` / ``_predict(X)`` on features, or override ``featurize``."""

    def __init__(self, space, seed: int = 0):
        self.space = space
        self.seed = seed
        self.fitted_ = False

    def featurize(self, archs: Sequence) -> np.ndarray:
        try:
            return np.stack([np.asarray(self.space.encode(a), dtype=np.float64) for a in archs])
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise NasagentError(
                f"{type(self).__name__} cannot encode these architectures with space {self.space.name!r} "
                f"(are they from another space?): {type(e).__name__}: {e}"
            ) from None

    def fit(self, archs: Sequence, y) -> Predictor:
        y = np.asarray(y, dtype=np.float64).ravel()
        if len(archs) != len(y):
            raise NasagentError(f"fit got {len(archs)} architectures but {len(y)} targets")
        if len(y) < 2:
            raise NasagentError(f"{type(self).__name__} needs at least 2 samples to fit, got {len(y)}")
        if not np.isfinite(y).all():
            raise NasagentError("fit targets contain NaN or infinite values; drop failed trials first")
        self._fit(self.featurize(archs), y)
        self.fitted_ = True
        return self

    def predict(self, archs: Sequence) -> np.ndarray:
        if not self.fitted_:
            raise NotFittedError(f"{type(self).__name__} must be fitted before predict (call fit(archs, y))")
        if len(archs) == 0:
            return np.zeros(0)
        return np.asarray(self._predict(self.featurize(archs)), dtype=np.float64).ravel()

    def save(self, path) -> Path:
        """Write this predictor, fitted or not, to ``path`` (a pickle; read it back with ``load_predictor``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump({"format": CHECKPOINT_FORMAT, "version": 1, "predictor": self}, f)
        return path

    def predict_std(self, archs: Sequence) -> np.ndarray:
        raise NasagentError(f"{type(self).__name__} gives no uncertainty; use an ensemble or a GP predictor")

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray: ...


def load_predictor(path) -> Predictor:
    """A predictor written by ``Predictor.save``. Checkpoints are pickles: load only files you trust."""
    path = Path(path)
    if not path.is_file():
        raise NasagentError(f"no predictor checkpoint at {path}")
    try:
        with open(path, "rb") as f:
            doc = pickle.load(f)
    except Exception as e:  # a truncated file or another format: say which file and what to do
        raise NasagentError(f"{path} is not a readable nasagent predictor checkpoint ({type(e).__name__}: {e}); "
                            "write one with predictor.save(path)") from None
    if not isinstance(doc, dict) or doc.get("format") != CHECKPOINT_FORMAT or not isinstance(doc.get("predictor"), Predictor):
        raise NasagentError(f"{path} is not a nasagent predictor checkpoint; write one with predictor.save(path)")
    return doc["predictor"]


def gives_uncertainty(predictor: Predictor) -> bool:
    """Whether ``predictor`` implements ``predict_std`` (an ensemble of one does not; a tuned predictor does
    when every setting it may select does)."""
    template = getattr(predictor, "template", None)
    if template is not None and hasattr(predictor, "settings"):
        from nasagent.evaluation.predictors.factory import clone

        return all(gives_uncertainty(clone(template, **s)) for s in predictor.settings())
    if type(predictor).predict_std is Predictor.predict_std:
        return False
    return getattr(predictor, "n_models", 2) >= 2


def expected_improvement(mean, std, best: float) -> np.ndarray:
    """Expected improvement over ``best`` (maximisation) of Gaussian beliefs ``mean`` ± ``std`` (std floored at
    1e-12, so a point the model is certain of scores its plain improvement)."""
    from scipy.stats import norm

    mean = np.asarray(mean, dtype=np.float64)
    std = np.maximum(np.asarray(std, dtype=np.float64), 1e-12)
    z = (mean - best) / std
    return (mean - best) * norm.cdf(z) + std * norm.pdf(z)
