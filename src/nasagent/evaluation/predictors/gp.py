"""A Gaussian process with an overlap (Hamming) kernel on the space's encoding: a cheap, strong surrogate for BO.

Architecture encodings are one-hot choices (NB201: an op per edge) or bits (NB101 adjacency), so the natural
distance is the number of choices two architectures disagree on, h(a, b) = ||x_a - x_b||_1 / 2, and the
kernel is exp(-h / length_scale) (the categorical "overlap" kernel of COMBO / CoCaBO, as a product over
choices). Targets are replaced by their normal scores (Gaussian quantiles of their ranks): accuracy tables
have long low tails, and a GP fitted to raw accuracies spends its flexibility on them.

The kernel has no fitted hyper-parameters on purpose: on the embedded NB201 table, per-choice (ARD) length
scales fitted by marginal likelihood did not beat the fixed length scale 1 in a 10-seed development run,
and the fixed kernel makes a fit an O(n^3) Cholesky of a few-hundred-point matrix (milliseconds).
``expected_improvement`` is computed in the GP's own (normal-score) units, over the best training target.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.spatial.distance import cdist

from nasagent.core import NasagentError
from nasagent.evaluation.predictors.base import NotFittedError, Predictor, expected_improvement
from nasagent.evaluation.predictors.targets import TargetTransform


@lru_cache(maxsize=50_000)  # NB201 (15,625) and NAS-Bench-Graph (26,206) tables fit whole
def _cached_encoding(space, arch) -> np.ndarray:
    """Encodings are re-used across refits (a whole table is scored at every step); 0/1 codes are kept as bytes."""
    x = np.asarray(space.encode(arch), dtype=np.float64)
    return x.astype(np.uint8) if ((x == 0) | (x == 1)).all() else x


def overlap_kernel(A: np.ndarray, B: np.ndarray, length_scale: float) -> np.ndarray:
    """exp(-|a - b|_1 / (2 length_scale)) between the rows of A and B (shared with strategies/ehvi.py)."""
    if ((A == 0) | (A == 1)).all() and ((B == 0) | (B == 1)).all():  # 0/1 codes: |a-b|_1 by one matrix product
        l1 = A.sum(1)[:, None] + B.sum(1)[None, :] - 2.0 * (A @ B.T)
    else:
        l1 = cdist(A, B, "cityblock")
    return np.exp(-l1 / (2.0 * length_scale))


class HammingGPPredictor(Predictor):
    def __init__(self, space, seed: int = 0, length_scale: float = 1.0, noise: float = 1e-3, target: str = "rank"):
        super().__init__(space, seed)
        if length_scale <= 0 or noise <= 0:
            raise NasagentError(f"gp-hamming needs length_scale > 0 and noise > 0, got {length_scale} and {noise}")
        TargetTransform(target)
        self.length_scale, self.noise, self.target = float(length_scale), float(noise), target

    def featurize(self, archs) -> np.ndarray:
        try:
            return np.stack([_cached_encoding(self.space, a) for a in archs]).astype(np.float64)
        except TypeError:  # unhashable architecture objects: encode without the cache
            return super().featurize(archs)
        except (KeyError, ValueError, AttributeError, IndexError):
            return super().featurize(archs)  # raises the contract's clear error

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        return overlap_kernel(A, B, self.length_scale)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._tf = TargetTransform(self.target)
        z = self._tf.fit_transform(y)
        self.center_, self.scale_ = float(z.mean()), float(max(z.std(), 1e-12))
        zs = (z - self.center_) / self.scale_
        K = self._kernel(X, X) + self.noise * np.eye(len(X))
        self.chol_ = np.linalg.cholesky(K)
        self.alpha_ = cho_solve((self.chol_, True), zs)
        self.X_, self.best_ = X, float(zs.max())

    def _latent(self, archs) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and standard deviation in standardised normal-score units."""
        if not self.fitted_:
            raise NotFittedError(f"{type(self).__name__} must be fitted before predicting (call fit(archs, y))")
        Ks = self._kernel(self.featurize(archs), self.X_)
        v = solve_triangular(self.chol_, Ks.T, lower=True, check_finite=False)
        return Ks @ self.alpha_, np.sqrt(np.clip(1.0 - (v * v).sum(0), 1e-12, None))

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return self._tf.inverse(self._kernel(X, self.X_) @ self.alpha_ * self.scale_ + self.center_)

    def predict_std(self, archs) -> np.ndarray:
        if len(archs) == 0 and self.fitted_:
            return np.zeros(0)
        mean, std = self._latent(archs)
        return self._tf.inverse_scale(mean * self.scale_ + self.center_, std * self.scale_)

    def expected_improvement(self, archs) -> np.ndarray:
        """EI over the best training target, in latent units (a monotone label map would distort it)."""
        if len(archs) == 0:
            return np.zeros(0)
        mean, std = self._latent(archs)
        return expected_improvement(mean, std, self.best_)
