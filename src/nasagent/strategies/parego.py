"""ParEGO (Knowles, 2006): multi-objective Bayesian optimisation by one random scalarisation per proposal.

Each proposal draws weights uniformly from the simplex, turns every evaluated design's objective vector
(``Result.scores``, maximise-values, each normalised to [0, 1] by the range seen so far) into one augmented
Chebyshev value, min_i w_i f_i + rho * sum_i w_i f_i, fits a surrogate to those values and proposes the
candidate with the largest expected improvement. Over many proposals the random weights sweep the whole
front. Infeasible designs (``Result.violation`` > 0) score below every feasible one, ordered by violation.

The surrogate is the ``gp-hamming`` predictor (an overlap-kernel GP on the space's encoding; fits in
milliseconds). Candidates are the one-edit neighbours of the current non-dominated set (at most
``front_parents`` members, a random subset when the front is larger) plus ``n_candidates`` random unvisited
architectures, so the cost per proposal does not grow with the size of the space. With one objective it is
plain GP-EI BO with a local-plus-random candidate pool.
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.runtime.pareto import nondominated
from nasagent.strategies.base import Strategy, add_random_candidates, local_candidates, sample_unvisited


class ParEGO(Strategy):
    _transient = ("space",)

    def __init__(self, space, seed: int = 0, n_init: int = 10, n_candidates: int = 1000, front_parents: int = 30,
                 rho: float = 0.05, predictor: str = "gp-hamming", predictor_options: dict | None = None, max_tries: int = 10_000):
        super().__init__(space, seed)
        if n_init < 2 or n_candidates < 1 or front_parents < 0 or rho < 0:
            raise NasagentError(
                f"parego needs n_init >= 2, n_candidates >= 1, front_parents >= 0 and rho >= 0; "
                f"got {n_init}, {n_candidates}, {front_parents}, {rho}"
            )
        self.n_init, self.n_candidates, self.front_parents, self.rho = n_init, n_candidates, front_parents, rho
        self.predictor, self.predictor_options, self.max_tries = predictor, dict(predictor_options or {}), max_tries
        self._new_predictor()
        self.archs: list = []
        self.points: list[tuple[float, ...]] = []  # per-objective maximise-values of each evaluated design
        self.violations: list[float] = []
        self.proposed: set[str] = set()
        self.n_proposals = 0

    def _new_predictor(self):
        """A fresh surrogate (validated: it must give an uncertainty)."""
        from nasagent.evaluation.predictors.base import gives_uncertainty
        from nasagent.evaluation.predictors.factory import make_predictor

        model = make_predictor(self.predictor, self.space, seed=self.seed, **self.predictor_options)
        if not gives_uncertainty(model):
            raise NasagentError(f"parego needs a predictor with uncertainty (gp-hamming, gp, rf); {self.predictor!r} has none")
        return model

    # -- scalarisation ------------------------------------------------------------------------------------
    def chebyshev(self, weights: np.ndarray) -> np.ndarray:
        """Augmented Chebyshev value (maximised) of every evaluated design under ``weights``."""
        pts = np.asarray(self.points, dtype=float)
        lo, hi = pts.min(0), pts.max(0)
        f = (pts - lo) / np.where(hi > lo, hi - lo, 1.0)
        value = (weights * f).min(1) + self.rho * (weights * f).sum(1)
        viol = np.asarray(self.violations)
        bad = viol > 0
        if bad.any():  # below every feasible design, a smaller violation first
            value[bad] = value[~bad].min(initial=0.0) - 1.0 - viol[bad] / max(viol[bad].max(), 1e-12)
        return value

    # -- candidates ---------------------------------------------------------------------------------------
    def _candidates(self, rng) -> list:
        found: dict[str, object] = {}
        feasible = [i for i, v in enumerate(self.violations) if v == 0]
        if feasible and self.front_parents:
            front = [feasible[i] for i in nondominated(np.asarray([self.points[i] for i in feasible]))]
            if len(front) > self.front_parents:
                front = list(rng.choice(front, self.front_parents, replace=False))
            for i in front:
                for a in local_candidates(self.space, self.archs[i], rng):
                    found.setdefault(self.space.key(a), a)
        add_random_candidates(found, self.space, rng, self.n_candidates)
        return [a for k, a in found.items() if k not in self.proposed]

    # -- ask / tell ---------------------------------------------------------------------------------------
    def _propose(self):
        rng = np.random.default_rng([self.seed, 11, self.n_proposals])
        self.n_proposals += 1
        if len(self.points) < max(self.n_init, 2):
            arch = sample_unvisited(self.space, rng, self.proposed, self.max_tries, "parego")
        else:
            weights = rng.dirichlet(np.ones(len(self.points[0])))
            model = self._new_predictor().fit(self.archs, self.chebyshev(weights))
            cands = self._candidates(rng) or [sample_unvisited(self.space, rng, self.proposed, self.max_tries, "parego")]
            if hasattr(model, "expected_improvement"):
                value = model.expected_improvement(cands)
            else:  # upper confidence bound for predictors without a latent EI
                value = model.predict(cands) + 2.0 * model.predict_std(cands)
            arch = cands[int(np.argmax(value))]
        self.proposed.add(self.space.key(arch))
        return arch

    def _observe(self, trial: Trial, result: Result) -> None:
        self.proposed.add(self.space.key(trial.arch))
        if not result.ok:
            return
        scores = tuple(float(s) for s in result.scores) if result.scores is not None else (float(result.score),)
        if self.points and len(scores) != len(self.points[0]):
            raise NasagentError(f"parego got {len(scores)} objective values after {len(self.points[0])}; one objective set per run")
        self.archs.append(trial.arch)
        self.points.append(scores)
        self.violations.append(float(result.violation or 0.0))
