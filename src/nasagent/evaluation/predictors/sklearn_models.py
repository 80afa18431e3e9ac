"""Cheap baselines on the space's flat encoding, from scikit-learn: random forest, gradient boosting, GP.

They answer "does the GCN earn its cost?" in ``benchmarks/predictor_ranking.py``. The features are
``space.encode`` (NB101: upper-triangular adjacency + op one-hots, the encoding of the paper's MLP comparison;
NB201: one-hot op per edge). The random forest gives an uncertainty from the spread of its trees, the GP its
posterior standard deviation, so both can drive the iterative (BANANAS-like) search.
"""

from __future__ import annotations

import warnings

import numpy as np

from nasagent.evaluation.predictors.base import NotFittedError, Predictor
from nasagent.evaluation.predictors.targets import TargetTransform


class _SklearnPredictor(Predictor):
    """Fits ``self._model()`` on transformed targets (``target``: standard or rank) and maps predictions back."""

    target: str = "standard"

    def _model(self):
        raise NotImplementedError

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._tf = TargetTransform(self.target)
        z = self._tf.fit_transform(y)
        self.model_ = self._model()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GP optimiser convergence chatter on tiny training sets
            self.model_.fit(X, z)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._tf.inverse(self.model_.predict(X))

    def _check_fitted(self) -> None:
        if not self.fitted_:
            raise NotFittedError(f"{type(self).__name__} must be fitted before predict_std (call fit(archs, y))")


class RandomForestPredictor(_SklearnPredictor):
    def __init__(self, space, seed: int = 0, n_estimators: int = 300, max_features: float = 0.5, min_samples_leaf: int = 1,
                 target: str = "standard"):
        super().__init__(space, seed)
        self.n_estimators, self.max_features, self.min_samples_leaf, self.target = n_estimators, max_features, min_samples_leaf, target
        TargetTransform(target)

    def _model(self):
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(self.n_estimators, max_features=self.max_features, min_samples_leaf=self.min_samples_leaf,
                                     random_state=self.seed, n_jobs=1)

    def predict_std(self, archs) -> np.ndarray:
        self._check_fitted()
        if len(archs) == 0:
            return np.zeros(0)
        X = self.featurize(archs)
        per_tree = np.stack([t.predict(X) for t in self.model_.estimators_])
        return self._tf.inverse_scale(per_tree.mean(0), per_tree.std(0))


class GradientBoostingPredictor(_SklearnPredictor):
    """Gradient-boosted trees (scikit-learn's ``GradientBoostingRegressor``, exact splits: small N)."""

    def __init__(self, space, seed: int = 0, n_estimators: int = 300, learning_rate: float = 0.05, max_depth: int = 3,
                 subsample: float = 0.8, target: str = "standard"):
        super().__init__(space, seed)
        self.n_estimators, self.learning_rate, self.max_depth, self.subsample, self.target = (
            n_estimators, learning_rate, max_depth, subsample, target)
        TargetTransform(target)

    def _model(self):
        from sklearn.ensemble import GradientBoostingRegressor

        return GradientBoostingRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                                         max_depth=self.max_depth, subsample=self.subsample, random_state=self.seed)


class GPPredictor(_SklearnPredictor):
    """A Gaussian process with an RBF kernel (one length scale) plus white noise, hyper-parameters by marginal
    likelihood (scikit-learn). ``predict_std`` is the posterior standard deviation of the latent function."""

    def __init__(self, space, seed: int = 0, length_scale: float = 2.0, noise: float = 0.1, target: str = "standard"):
        super().__init__(space, seed)
        self.length_scale, self.noise, self.target = length_scale, noise, target
        TargetTransform(target)

    def _model(self):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * RBF(self.length_scale, (1e-1, 1e2)) + WhiteKernel(self.noise, (1e-5, 1e1))
        return GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=0, random_state=self.seed)

    def predict_std(self, archs) -> np.ndarray:
        self._check_fitted()
        if len(archs) == 0:
            return np.zeros(0)
        X = self.featurize(archs)
        mean, std = self.model_.predict(X, return_std=True)
        noise = self.model_.kernel_.k2.noise_level * getattr(self.model_, "_y_train_std", 1.0) ** 2
        latent = np.sqrt(np.maximum(std**2 - noise, 0.0))
        return self._tf.inverse_scale(mean, latent)
