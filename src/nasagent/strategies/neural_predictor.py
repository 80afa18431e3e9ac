"""Neural Predictor search (Wen et al., ECCV 2020) and its iterative, BANANAS-like variant, on ask/tell.

``mode="oneshot"`` is the paper's workflow: (1) evaluate ``n_train`` (N) random architectures and fit a
predictor on them; (2) score a large candidate pool (the whole space when it has at most ``pool_size``
architectures, else ``pool_size`` random ones); (3) propose the pool in order of prediction, best first.
``top_k`` (K) stops the search after N + K evaluations (the budget may stop it earlier); without it the
ranking is followed until the budget ends, refitting on everything seen once ``queue`` proposals are spent.
The paper deploys the best evaluated architecture, which is what the runner reports.

Soft-Pareto selection (the paper's ImageNet pipeline, one-shot mode): with ``soft_pareto=J`` and a ``cost``
(``"flops"`` or ``"params"`` of a MobileNet-like space, or any callable ``arch -> float``), the pool is cut to
the candidates admitted by the soft-Pareto rule on (predicted accuracy, cost), optionally inside
``cost_window=(low, high)``, and exactly those K are proposed, best predicted first; then the search ends.
A callable cost is not saved in snapshots: pass it again to resume.

``mode="bo"`` is the iterative loop tuned for sample efficiency (Bayesian optimisation): the ``gp-hamming``
predictor (a GP with an overlap kernel on the encoding and rank targets), expected improvement, one proposal
per refit, and the whole unvisited space as candidates when it enumerates (else the iterative candidates below
with 1,000 random ones). On the embedded NB201 table it is the best configuration shipped (docs/predictors.md).

``mode="iterative"`` refits after every ``batch`` proposals on everything evaluated so far and proposes the
``batch`` best candidates by an acquisition on the predictor's mean and spread (``its``: independent
Thompson samples, BANANAS' default; ``ucb``; ``ei``; ``mean``). Spread needs a predictor with
``predict_std`` (``gcn-ensemble``, ``mlp-ensemble``, ``rf``, ``gp``). Candidates are, as in BANANAS, the one-edit
neighbours of the ``mutate_top`` best evaluated architectures plus ``random_candidates`` random unvisited ones
(``random_candidates=None`` scores the whole unvisited space when it has at most ``pool_size`` architectures:
slower, and on NB201 more exploratory than helpful).

Architectures already proposed are never proposed again (ambiguity A7: the pool excludes them). The
predictor is rebuilt from the stored evaluations when needed, so snapshots stay small and a resumed search
continues exactly (training is seeded).
"""

from __future__ import annotations

import math

import numpy as np

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Proposal, Strategy, add_random_candidates, local_candidates, sample_unvisited

MODES = ("oneshot", "iterative", "bo")
ACQUISITIONS = ("its", "ucb", "ei", "mean")

#: defaults per mode: oneshot is the paper's N = 172; iterative follows BANANAS (ensemble, Thompson sampling, 10 per
#: refit). benchmarks/neural_predictor_nb201.py compares them on NB201 (docs/predictors.md).
DEFAULTS = {
    "oneshot": {"predictor": "gcn", "n_train": 172, "batch": None, "acquisition": "mean", "random_candidates": None},
    "iterative": {"predictor": "gcn-ensemble", "n_train": 10, "batch": 10, "acquisition": "its", "random_candidates": 100},
    "bo": {"predictor": "gp-hamming", "n_train": 10, "batch": 1, "acquisition": "ei", "random_candidates": None},
}
#: random candidates per refit in mode "bo" when the space is too large to score whole
BO_RANDOM_CANDIDATES = 1000
#: a fast GCN recipe for search (the reference recipe, width 144 and 300 epochs at lr 1e-4, costs ~8x more to fit)
FAST_GCN = {"hidden": 64, "epochs": 100, "lr": 2e-3, "batch_size": 32, "weight_decay": 1e-4}


class NeuralPredictorSearch(Strategy):
    _transient = ("space", "_pool", "_model", "_cost_fn")

    def __init__(
        self,
        space,
        seed: int = 0,
        mode: str = "oneshot",
        predictor: str | None = None,
        predictor_options: dict | None = None,
        n_train: int | None = None,
        top_k: int | None = None,
        pool_size: int = 100_000,
        batch: int | None = None,
        acquisition: str | None = None,
        kappa: float = 2.0,
        mutate_top: int = 10,
        queue: int = 1000,
        max_tries: int = 10_000,
        random_candidates: int | None | str = "auto",
        soft_pareto: int | None = None,
        cost=None,
        cost_window: tuple[float, float] | None = None,
    ):
        super().__init__(space, seed)
        if mode not in MODES:
            raise NasagentError(f"neural-predictor mode must be one of {', '.join(MODES)}, got {mode!r}")
        d = DEFAULTS[mode]
        self.mode = mode
        self.predictor = predictor or d["predictor"]
        opts = dict(FAST_GCN) if self.predictor in ("gcn", "gcn-ensemble") and predictor_options is None else {}
        self.predictor_options = {**opts, **(predictor_options or {})}
        self.n_train = int(n_train if n_train is not None else d["n_train"])
        self.top_k = top_k
        self.pool_size = int(pool_size)
        self.batch = int(batch if batch is not None else (d["batch"] or queue))
        self.acquisition = acquisition or d["acquisition"]
        self.kappa, self.mutate_top, self.queue_size, self.max_tries = kappa, mutate_top, queue, max_tries
        # "auto": 100 random candidates per refit for iterative (BANANAS), the whole space for bo
        self.random_candidates = d["random_candidates"] if random_candidates == "auto" else random_candidates
        if self.random_candidates is not None and (not isinstance(self.random_candidates, int) or self.random_candidates < 0):
            raise NasagentError(f"neural-predictor random_candidates must be an integer >= 0, None or 'auto', got {random_candidates!r}")
        self.soft_pareto, self.cost_window = soft_pareto, None if cost_window is None else tuple(map(float, cost_window))
        self.cost = cost if isinstance(cost, str) or cost is None else "callable"
        self._cost_fn = cost if callable(cost) else None
        if soft_pareto is not None:
            if mode != "oneshot":
                raise NasagentError("neural-predictor soft_pareto selects the one-shot pool: use it with mode='oneshot'")
            if int(soft_pareto) < 1:
                raise NasagentError(f"neural-predictor soft_pareto (J) must be >= 1, got {soft_pareto}")
            if cost is None:
                raise NasagentError("neural-predictor soft_pareto needs a cost: 'flops', 'params' or a callable arch -> float")
            self._cost()  # validates the cost now
        self.n_admitted: int | None = None  # size of the soft-Pareto set once selected
        if self.n_train < 2:
            raise NasagentError(f"neural-predictor n_train must be >= 2 (the predictor needs data), got {self.n_train}")
        if top_k is not None and top_k < 1:
            raise NasagentError(f"neural-predictor top_k must be >= 1, got {top_k}")
        if self.pool_size < 1 or self.batch < 1:
            raise NasagentError("neural-predictor pool_size and batch must be >= 1")
        if self.acquisition not in ACQUISITIONS:
            raise NasagentError(f"neural-predictor acquisition must be one of {', '.join(ACQUISITIONS)}, got {self.acquisition!r}")
        self._model = self._new_predictor(0)  # validates the predictor name and options now
        from nasagent.evaluation.predictors.base import gives_uncertainty

        if self.acquisition in ("its", "ucb", "ei") and not gives_uncertainty(self._model):
            raise NasagentError(
                f"acquisition {self.acquisition!r} needs a predictor with uncertainty (gcn-ensemble, mlp-ensemble, rf, gp); "
                f"{self.predictor!r} has none: choose one of those or acquisition=mean"
            )
        self.archs: list = []  # evaluated architectures with a score, in tell order
        self.scores: list[float] = []
        self.proposed: set[str] = set()
        self.n_random = 0  # random proposals handed out in phase 1
        self.n_ranked = 0  # proposals taken from a ranking
        self.ranking: list = []  # (arch, predicted) still to propose from the current ranking
        self.n_fits = 0
        self.last_fit_size = 0
        self._pool = None

    @property
    def iterative(self) -> bool:
        """Refit after every batch (oneshot ranks once, then follows the queue)."""
        return self.mode in ("iterative", "bo")

    # -- building blocks -------------------------------------------------------------------------------
    def _new_predictor(self, k: int):
        from nasagent.evaluation.predictors.factory import make_predictor

        return make_predictor(self.predictor, self.space, seed=self.seed * 1000 + k, **self.predictor_options)

    def _cost(self):
        """The cost callable of the soft-Pareto rule (rebuilt from its name after a resume)."""
        if self._cost_fn is None:
            if self.cost == "callable":
                raise NasagentError("this search was started with a callable cost; pass cost=... again to resume it")
            from nasagent.evaluation.tunas_cost import FlopsCost, ParamsCost

            models = {"flops": FlopsCost, "params": ParamsCost}
            if self.cost not in models:
                raise NasagentError(f"neural-predictor cost must be 'flops', 'params' or a callable, got {self.cost!r}")
            if not hasattr(self.space, "resolve"):
                raise NasagentError(f"cost={self.cost!r} is defined for the MobileNet-like spaces, not {self.space.name!r}; "
                                    "pass a callable arch -> float instead")
            self._cost_fn = models[self.cost](self.space)
        return self._cost_fn

    def _fresh(self, arch) -> bool:
        return self.space.key(arch) not in self.proposed

    def _take(self, arch, phase: str, predicted: float | None = None) -> Proposal:
        self.proposed.add(self.space.key(arch))
        info = {"phase": phase}
        if predicted is not None and math.isfinite(predicted):
            info["predicted"] = round(float(predicted), 6)
        return Proposal(arch, info=info)

    def _random_arch(self):
        pool = self._enumerated()
        if pool is not None:
            rng = np.random.default_rng([self.seed, 3, self.n_random])
            for i in rng.permutation(len(pool)):
                if self._fresh(pool[i]):
                    return pool[i]
            raise SpaceExhausted("neural-predictor has proposed every architecture of the space")
        return sample_unvisited(self.space, self.rng, self.proposed, self.max_tries, "neural-predictor")

    def _enumerated(self):
        """The whole space as a list when it has at most ``pool_size`` architectures, else None."""
        if self._pool is None:
            size = self.space.size()
            self._pool = list(self.space.enumerate()) if size is not None and size <= self.pool_size else False
        return self._pool or None

    def _candidates(self) -> list:
        pool = self._enumerated()
        local = self.iterative and (self.random_candidates is not None or (self.mode == "bo" and pool is None))
        if pool is not None and not local:
            return [a for a in pool if self._fresh(a)]
        rng = np.random.default_rng([self.seed, 4, self.n_fits])
        seen: dict[str, object] = {}
        if self.iterative and self.mutate_top > 0 and self.archs:
            for i in np.argsort(-np.asarray(self.scores), kind="stable")[: self.mutate_top]:
                for a in local_candidates(self.space, self.archs[i], rng):
                    seen.setdefault(self.space.key(a), a)
        n_random = (BO_RANDOM_CANDIDATES if self.random_candidates is None else self.random_candidates) if local else self.pool_size
        add_random_candidates(seen, self.space, rng, n_random)
        return [a for k, a in seen.items() if k not in self.proposed]

    def _rank(self) -> None:
        """Fit on everything evaluated, score the candidates, keep the best ``batch`` (``queue``) in order."""
        model = self._new_predictor(self.n_fits)
        model.fit(self.archs, np.asarray(self.scores))
        self.n_fits += 1
        self.last_fit_size = len(self.scores)
        cands = self._candidates()
        if not cands:
            raise SpaceExhausted("neural-predictor has no unvisited candidate left to rank")
        # a predictor with its own expected improvement predicts the mean inside it: score the pool once, and
        # predict the mean only for what is kept (unless soft-Pareto needs it for the whole pool)
        own_ei = self.acquisition == "ei" and hasattr(model, "expected_improvement") and self.soft_pareto is None
        mean = None if own_ei else model.predict(cands)
        value = self._acquire(model, cands, mean)
        order = np.argsort(-value, kind="stable")  # ties keep pool order: deterministic, and indices not values
        if self.soft_pareto is not None:
            from nasagent.evaluation.predictors.soft_pareto import soft_pareto

            cost = self._cost()
            admitted = soft_pareto(mean, [cost(a) for a in cands], j=int(self.soft_pareto), window=self.cost_window)
            if admitted.size == 0:
                raise SpaceExhausted(f"no candidate of the pool lies in the cost window {self.cost_window}")
            order = admitted[np.argsort(-mean[admitted], kind="stable")]
            self.n_admitted = int(admitted.size)
        take = self.batch if self.iterative else len(order) if self.soft_pareto is not None else self.queue_size
        if self.top_k is not None and self.mode == "oneshot":
            take = min(take, self.top_k - self.n_ranked)
        kept = order[:take]
        predicted = mean[kept] if mean is not None else model.predict([cands[i] for i in kept])
        self.ranking = [(cands[i], float(p)) for i, p in zip(kept, predicted, strict=True)]
        self._model = model

    def _acquire(self, model, cands, mean: np.ndarray | None) -> np.ndarray:
        """Acquisition values of ``cands``; ``mean`` may be None only when the model computes its own EI."""
        if self.acquisition == "mean":
            return mean
        if self.acquisition == "ei" and hasattr(model, "expected_improvement"):
            return model.expected_improvement(cands)  # the predictor knows its own units (gp-hamming)
        std = np.maximum(model.predict_std(cands), 1e-12)
        if self.acquisition == "ucb":
            return mean + self.kappa * std
        if self.acquisition == "its":
            rng = np.random.default_rng([self.seed, 6, self.n_fits])
            return rng.normal(mean, std)
        from nasagent.evaluation.predictors.base import expected_improvement

        return expected_improvement(mean, std, max(self.scores))

    # -- ask / tell --------------------------------------------------------------------------------------
    def _propose(self) -> Proposal:
        if self.n_random < self.n_train or len(self.scores) < 2:
            self.n_random += 1
            return self._take(self._random_arch(), "random")
        if self.top_k is not None and self.mode == "oneshot" and self.n_ranked >= self.top_k:
            raise SpaceExhausted(f"the one-shot workflow has proposed its N + K = {self.n_train} + {self.top_k} architectures")
        if self.n_admitted is not None and not self.ranking:
            raise SpaceExhausted(f"the one-shot workflow has proposed its soft-Pareto set (K = {self.n_admitted})")
        while self.ranking and not self._fresh(self.ranking[0][0]):
            self.ranking.pop(0)
        if not self.ranking:
            self._rank()
        arch, predicted = self.ranking.pop(0)
        self.n_ranked += 1
        return self._take(arch, "ranked", predicted)

    def _observe(self, trial: Trial, result: Result) -> None:
        if result.ok:
            self.archs.append(trial.arch)
            self.scores.append(float(result.score))
