"""AlphaX (Wang et al., 2019): Monte Carlo tree search over a space's construction actions, with a Meta-DNN.

Each ``ask`` runs one MCTS episode over the space's sequential interface (``root/actions/step``):

1. **Selection** from the root by UCB (Eq. 1): ``Q/N + 2c sqrt(2 ln N(s) / N(s,a))``, untried actions
   first, random tie-breaks, until an untried action is chosen.
2. **Expansion** of that action's node ``s'`` (its edges start at ``Q = N = 0``).
3. **Simulation** (Eq. 2): k+1 uniform-random playouts from ``s'`` to terminal states. The first is the
   architecture proposed for real evaluation; the Meta-DNN predicts the other k, ``q̂`` is their mean
   (an already evaluated playout uses its measured value, as the authors' code does).
4. **Two-phase backpropagation** (§3.5, Eq. 4-5): ``q̂`` is back-propagated at once (``Q += q̂, N += 1``
   up to the root), so trials asked before earlier ones are told spread over the tree; when the result
   arrives, ``Q += q - q̂`` with ``q = (acc + q̂) / 2`` corrects it. With one trial in flight this is
   exactly the sequential Eq. 3. ``two_phase=False`` is naive parallel MCTS (backprop only on tell).

Values are kept in the objective's own units and mapped into [0, 1] when UCB compares them, so ``c`` means
the same for accuracies in % or fractions: ``normalise="minmax"`` (by the lowest and highest score seen;
the paper's accuracies are fractions) or ``"rank"`` (the share of measured scores below the mean; default).
Defects of the paper's pseudocode that this fixes are listed in docs/alphax.md.

Improvements behind flags (measured in benchmarks/alphax_nb201.py, see docs/alphax.md): ``rollout="guided"``
proposes, instead of one uniform playout, the best-predicted unevaluated one among ``candidates`` playouts
from ``s'``; rank normalisation; a small warm-started Meta-DNN trained on rank targets, refitted every few
samples. ``faithful=True`` restores every paper default at once.

``model`` may also name any predictor of ``evaluation/predictors/factory.py`` (e.g. ``"gp-hamming"``, refitted
after every result by default since it fits in milliseconds). ``rollout="acquisition"`` proposes the
unevaluated terminal descendant of ``s'`` with the highest expected improvement under that model (all
descendants when there are at most ``candidates``, else the distinct ones among ``candidates`` uniform
playouts); ``expansion="acquisition"`` expands the untried action whose subtree holds the highest expected
improvement instead of a random one; ``prior_weight`` adds to Eq. 1 that weight times each action's best
expected improvement relative to its siblings' (a PUCT-like prior). ``GP_EI`` is the measured combination.
"""

from __future__ import annotations

import bisect
import copy
import math
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Proposal, Strategy

#: the paper's Meta-DNN (App. 10.2) and its retraining after every result (Alg. 2, line 13)
SEED_MODEL = {"hidden_sizes": (512, 2048, 2048, 512), "lr": 2e-5, "batch_size": 128, "epochs": 20}
#: the shipped default: a small MLP refitted every few samples with a warm start (docs/alphax.md)
SMALL_MODEL = {"hidden_sizes": (64, 64), "lr": 3e-3, "batch_size": 64, "epochs": 10, "warm_start": True, "targets": "rank"}
#: the paper's exploration constant per space (0.5 in §3.2, 2 on NASBench in App. 9.1, 200 on the simplified
#: domain in App. 8); any other space gets 0.5
PAPER_C = {"nb101": 2.0, "convnet": 200.0}


ROLLOUTS = ("random", "guided", "acquisition")
#: the GP-guided configuration measured as ``alphax-gp`` in benchmarks/alphax_nb201.py (docs/alphax.md)
GP_EI = {
    "model": "gp-hamming", "rollout": "acquisition", "expansion": "acquisition", "prior_weight": 5.0, "candidates": 4096,
    "c": 0.05,  # chosen on development seeds 200..299 (docs/alphax.md); the paper's 0.5 explores subtrees the model rules out
}


def _is_meta_dnn(name: str) -> bool:
    from nasagent.evaluation.predictors.mlp import MODELS

    return name in MODELS


def paper_c(space) -> float:
    return PAPER_C.get(getattr(space, "name", ""), 0.5)


class AlphaX(Strategy):
    """Options (CLI ``--opt key=value``):

    c: exploration constant of Eq. 1; default the paper's value for the space (0.5 in general, 2 on NB101, 200 on
        the simplified convnet domain).
    k: Meta-DNN playouts per expansion (paper: 10). metadnn: False runs pure MCTS (q = measured accuracy).
    model: "mlp" | "multistage" | "lstm" (Meta-DNNs, evaluation/predictors/mlp.py) or any predictor name of
        evaluation/predictors/factory.py, e.g. "gp-hamming"; model_options: its parameters.
    refit_every / refit_growth / min_fit: retrain the Meta-DNN once it has min_fit results, then after
        max(refit_every, refit_growth x the training-set size at the last fit) new results.
    two_phase: preemptive backprop of q̂ (True) or naive parallel MCTS (False).
    rollout: "random" (paper), "guided" (best predicted playout) or "acquisition" (highest expected improvement
        among the expanded node's terminal descendants); candidates: how many are scored per proposal.
    expansion: "random" (paper: a random untried action) or "acquisition" (the untried action whose subtree holds
        the highest expected improvement). prior_weight: weight of the acquisition prior added to Eq. 1 (0 = off).
    untried_first: with the prior on, False lets tried actions compete with untried ones (first-play urgency).
    failed: "worst" (a failed trial counts as the worst score seen) or "skip" (its visit is undone).
    normalise: "rank" (default) or "minmax" (faithful): how UCB maps values into [0, 1].
    transfer: pass the nearest evaluated architecture up the tree as the evaluator's hint.
    warm_start: a previous AlphaX run directory (or journal file) to start from (tree and Meta-DNN).
    faithful: the paper's configuration (seed-size MLP refitted after every result, uniform playouts).
    """

    requires = ("sequential",)
    _transient = ("space", "model", "_leaf_cache", "_acq_memo")

    def __init__(
        self,
        space,
        seed: int = 0,
        c: float | None = None,
        k: int = 10,
        metadnn: bool = True,
        model: str = "mlp",
        model_options: dict | None = None,
        refit_every: int | None = None,
        refit_growth: float | None = None,
        min_fit: int = 8,
        two_phase: bool = True,
        rollout: str | None = None,
        candidates: int = 512,
        expansion: str = "random",
        prior_weight: float = 0.0,
        untried_first: bool = True,
        failed: str = "worst",
        normalise: str | None = None,
        transfer: bool = True,
        warm_start: str | None = None,
        warm_weight: float = 1.0,
        faithful: bool = False,
        threads: int | None = 1,
        max_tries: int = 100,
    ):
        super().__init__(space, seed)
        if rollout is None:
            rollout = "random" if faithful else "guided"
        fast_model = not _is_meta_dnn(model)  # a factory predictor (GP, forest...) refits in milliseconds
        if refit_every is None:
            refit_every = 1 if faithful or fast_model else 4
        if refit_growth is None:
            refit_growth = 0.0 if faithful or fast_model else 0.1
        self.model_defaults = dict(SEED_MODEL) if faithful else dict(SMALL_MODEL)
        if model_options is not None and not isinstance(model_options, dict):
            raise NasagentError(f"alphax model_options must be a mapping of the model's options, got {model_options!r}")
        self.model_options = dict(model_options or {})
        self.c = float(paper_c(space) if c is None else c)
        self.k = int(k)
        self.metadnn = bool(metadnn)
        self.model_name = model
        self.refit_every = int(refit_every)
        self.refit_growth = float(refit_growth)
        self.min_fit = int(min_fit)
        self.two_phase = bool(two_phase)
        self.rollout = rollout
        self.candidates = int(candidates)
        self.expansion = expansion
        self.prior_weight = float(prior_weight)
        self.untried_first = bool(untried_first)
        self.failed_mode = failed
        self.normalise = normalise if normalise is not None else ("minmax" if faithful else "rank")
        self.transfer = bool(transfer)
        self.warm_weight = float(warm_weight)
        self.faithful = bool(faithful)
        self.threads = threads
        self.max_tries = int(max_tries)
        self._validate()

        # the tree, as flat per-node lists so that paths are JSON-serialisable (node id, action index)
        self.states: list = []
        self.node_actions: list[list] = []
        self.children: list[dict[int, int]] = []
        self.parent: list[tuple[int, int] | None] = []
        self.N: list[list[float]] = []
        self.Q: list[list[float]] = []
        self.prior: list[dict[int, tuple[float, float]]] = []  # warm start: (mean in [0, 1], visits)
        self.exhausted: list[bool] = []
        self.fresh: list[bool] = []  # built from a warm start and not yet simulated in this run
        self._add_node(space.root(), None)

        # what has been measured: key -> score; the Meta-DNN's training set
        self.known: dict[str, float] = {}
        self.train_archs: list = []
        self.train_y: list[float] = []
        self.fitted_at = 0  # size of the training set at the last fit
        self.lo: float | None = None
        self.hi: float | None = None
        self.sum_scores = 0.0
        self.n_scores = 0
        self.sorted_scores: list[float] = []
        self.evaluated: dict[int, list[tuple[str, int]]] = {}  # rollout_from node -> [(arch text, trial number)]
        self.pending: dict[str, int] = {}  # keys asked and not yet told -> how many times
        self.model = None
        self._leaf_cache: dict[str, list] = {}  # enumerated subtrees by state (deterministic, so not snapshotted)
        self._acq_memo: dict[str, float] = {}  # acquisition values under the current fit of the value model
        self.model_is_old = False  # a warm-started Meta-DNN ranks playouts but gives no q̂ until refitted
        # a missing source is an error at the first ask, not here: a resumed run is built from its config (which
        # names the source) and then restored from its own snapshot, which holds the warm-started tree and model
        self._warm_source = None
        if warm_start:
            if self._warm_journal(warm_start).exists():
                self._warm_start(warm_start)
            else:
                self._warm_source = warm_start

    # -- configuration ------------------------------------------------------------------------------
    def _check_space(self) -> None:
        if not getattr(self.space, "sequential", False):
            raise self.space._not_sequential()  # names the spaces that work

    def _validate(self) -> None:
        if not math.isfinite(self.c) or self.c < 0:
            raise NasagentError(f"alphax c must be a finite number >= 0, got {self.c}")
        if self.k < 1:
            raise NasagentError(f"alphax k (Meta-DNN playouts) must be >= 1, got {self.k}")
        if self.refit_every < 1 or self.min_fit < 2 or not self.refit_growth >= 0:
            raise NasagentError(f"alphax needs refit_every >= 1 and min_fit >= 2, got {self.refit_every} / {self.min_fit}")
        if self.rollout not in ROLLOUTS:
            raise NasagentError(f"alphax rollout must be one of {', '.join(ROLLOUTS)}, got {self.rollout!r}")
        if self.expansion not in ("random", "acquisition"):
            raise NasagentError(f"alphax expansion must be 'random' or 'acquisition', got {self.expansion!r}")
        if self.expansion == "acquisition" and not self.metadnn:
            raise NasagentError("alphax expansion='acquisition' needs a value model; use metadnn=True")
        if not self.prior_weight >= 0 or (self.prior_weight > 0 and not self.metadnn):
            raise NasagentError(f"alphax prior_weight must be >= 0 (and > 0 needs metadnn=True), got {self.prior_weight}")
        if self.candidates < 1:
            raise NasagentError(f"alphax candidates must be >= 1, got {self.candidates}")
        if self.normalise not in ("minmax", "rank"):
            raise NasagentError(f"alphax normalise must be 'minmax' or 'rank', got {self.normalise!r}")
        if self.failed_mode not in ("worst", "skip"):
            raise NasagentError(f"alphax failed must be 'worst' or 'skip', got {self.failed_mode!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 1):
            raise NasagentError(f"alphax threads must be an integer >= 1 (or null: torch's default), got {self.threads!r}")
        if not (math.isfinite(self.warm_weight) and self.warm_weight >= 0):
            raise NasagentError(f"alphax warm_weight must be a finite number >= 0, got {self.warm_weight}")
        if self.max_tries < 1:
            raise NasagentError(f"alphax max_tries must be >= 1, got {self.max_tries}")
        if self.rollout == "acquisition" and not self.metadnn:
            raise NasagentError("alphax rollout='acquisition' ranks playouts with a value model; use metadnn=True")
        if self.metadnn:
            from nasagent.evaluation.predictors.factory import PREDICTORS
            from nasagent.evaluation.predictors.mlp import MODELS

            if self.model_name not in MODELS and self.model_name not in PREDICTORS:
                names = ", ".join([*MODELS, *(p for p in PREDICTORS if p not in MODELS)])
                raise NasagentError(f"unknown alphax model {self.model_name!r}; models: {names}")

    def _make_model(self):
        import inspect

        from nasagent.evaluation.predictors.mlp import MODELS, make_value_model

        if not _is_meta_dnn(self.model_name):
            from nasagent.evaluation.predictors.factory import make_predictor

            return make_predictor(self.model_name, self.space, seed=self.seed, **self.model_options)

        # the size defaults apply where the chosen model has such a parameter (the LSTM has no hidden_sizes)
        accepted = inspect.signature(MODELS[self.model_name].__init__).parameters
        opts = {k: v for k, v in self.model_defaults.items() if k in accepted}
        opts.update(self.model_options)
        opts.setdefault("threads", self.threads)
        return make_value_model(self.model_name, self.space, seed=self.seed, **opts)

    # -- tree ---------------------------------------------------------------------------------------
    def _add_node(self, state, parent: tuple[int, int] | None) -> int:
        acts = list(self.space.actions(state)) if not self.space.is_terminal(state) else []
        self.states.append(state)
        self.node_actions.append(acts)
        self.children.append({})
        self.parent.append(parent)
        self.N.append([0.0] * len(acts))
        self.Q.append([0.0] * len(acts))
        self.prior.append({})
        self.exhausted.append(False)
        self.fresh.append(False)
        return len(self.states) - 1

    def _norm(self, v: float) -> float:
        if self.lo is None or self.hi is None or self.hi <= self.lo:
            return 0.5
        if self.normalise == "rank":  # the share of measured scores below v (ties count half)
            n = len(self.sorted_scores)
            return (bisect.bisect_left(self.sorted_scores, v) + bisect.bisect_right(self.sorted_scores, v)) / (2 * n)
        return (v - self.lo) / (self.hi - self.lo)

    def _select_action(self, node: int) -> int | None:
        """Eq. 1 over the node's actions that do not lead into an exhausted subtree; untried ones first."""
        acts = self.node_actions[node]
        live = [a for a in range(len(acts)) if not (a in self.children[node] and self.exhausted[self.children[node][a]])]
        if not live:
            return None
        n_eff, mean = {}, {}
        for a in live:
            n, q = self.N[node][a], self.Q[node][a]
            pm, pn = self.prior[node].get(a, (0.0, 0.0))
            pn *= self.warm_weight
            n_eff[a] = n + pn
            if n_eff[a] > 0:
                mean[a] = ((self._norm(q / n) * n) if n > 0 else 0.0) / n_eff[a] + pm * pn / n_eff[a]
        untried = [a for a in live if n_eff[a] <= 0]
        guided = self._model_ready() and not self.model_is_old
        if untried and self.expansion == "acquisition" and guided and len(untried) > 1:
            acq = self._subtree_acquisition(node, untried)
            if np.isfinite(acq).any():
                return untried[int(np.argmax(acq))]
        puct = self.prior_weight > 0 and guided
        if untried and (self.untried_first or not puct or len(untried) == len(live)):
            return untried[int(self.rng.integers(len(untried)))]
        if untried:  # first-play urgency: an untried action counts as one visit at the mean of the tried ones
            fpu = float(np.mean([mean[a] for a in live if n_eff[a] > 0]))
            for a in untried:
                n_eff[a], mean[a] = 1.0, fpu
        total = sum(n_eff.values())
        log_total = math.log(max(total, 1.0))
        scores = np.array([mean[a] + 2 * self.c * math.sqrt(2 * log_total / n_eff[a]) for a in live])
        if puct:  # PUCT-like: the share of the best acquisition value under each action
            acq = self._subtree_acquisition(node, live)
            top = acq[np.isfinite(acq)].max() if np.isfinite(acq).any() else 0.0
            if top > 0:
                scores = scores + self.prior_weight * np.where(np.isfinite(acq), acq, 0.0) / top
        best = np.flatnonzero(scores >= scores.max() - 1e-12)
        return live[int(best[int(self.rng.integers(len(best)))])]

    def _subtree_acquisition(self, node: int, actions: list[int]) -> np.ndarray:
        """Per action, the highest acquisition value among the unevaluated architectures under it (-inf if none):
        a model-guided expansion order and selection prior."""
        out = np.full(len(actions), -np.inf)
        for i, a in enumerate(actions):
            fresh = self._fresh(self._descendants(self.space.step(self.states[node], self.node_actions[node][a])))
            if fresh:
                out[i] = float(np.max(self._memo_acquisition(fresh)))
        return out

    def _mark_exhausted(self, node: int) -> None:
        """A subtree is exhausted when its terminal states were all proposed: selection skips it."""
        while node is not None:
            acts = self.node_actions[node]
            done = not acts or (
                len(self.children[node]) == len(acts) and all(self.exhausted[ch] for ch in self.children[node].values())
            )
            if not done:
                return
            self.exhausted[node] = True
            p = self.parent[node]
            node = None if p is None else p[0]

    def _select_and_expand(self) -> tuple[list[tuple[int, int]], int]:
        """Descend by Eq. 1 and add one new node; returns the path [(node, action), ...] and the new node."""
        path: list[tuple[int, int]] = []
        node = 0
        while True:
            if self.exhausted[0]:
                raise SpaceExhausted("alphax has expanded every terminal state of the search tree")
            a = self._select_action(node)
            if a is None:  # every child became exhausted since the parent was last checked
                self._mark_exhausted(node)
                path, node = [], 0
                continue
            path.append((node, a))
            child = self.children[node].get(a)
            if child is None:
                child = self._add_node(self.space.step(self.states[node], self.node_actions[node][a]), (node, a))
                self.children[node][a] = child
                if not self.node_actions[child]:
                    self._mark_exhausted(child)
                return path, child
            if self.fresh[child]:  # a node inherited from a warm start: simulate it as if just expanded
                self.fresh[child] = False
                return path, child
            node = child

    # -- simulation ---------------------------------------------------------------------------------
    def _playout(self, state):
        """Uniform-random actions until a terminal state (the paper's simulation policy)."""
        for _ in range(10_000):
            if self.space.is_terminal(state):
                return self.space.to_arch(state)
            acts = self.space.actions(state)
            if not acts:
                raise NasagentError(f"space {self.space.name!r} offers no action in a non-terminal state {state!r}")
            state = self.space.step(state, acts[int(self.rng.integers(len(acts)))])
        raise NasagentError(f"a playout in space {self.space.name!r} did not terminate within 10,000 actions")

    def _valid_playout(self, state):
        """A playout whose terminal architecture the space accepts (invalid ones are drawn again)."""
        err = None
        for _ in range(self.max_tries):
            try:
                return self._playout(state)
            except NasagentError as e:
                err = e
                if "did not terminate" in str(e) or "offers no action" in str(e):
                    raise
        raise NasagentError(f"alphax found no valid playout in {self.max_tries} tries: {err}")

    def _model_ready(self) -> bool:
        return self.metadnn and self.model is not None and getattr(self.model, "fitted_", False)

    def _values(self, archs: list) -> np.ndarray:
        """Measured score where known, else the Meta-DNN's prediction."""
        keys = [self.space.key(a) for a in archs]
        out = np.array([self.known.get(k, np.nan) for k in keys], dtype=float)
        todo = np.flatnonzero(np.isnan(out))
        if len(todo):
            out[todo] = self.model.predict([archs[i] for i in todo])
        return out

    def _simulate(self, node: int) -> tuple:
        """(architecture to evaluate, q̂ or None before the Meta-DNN is trained)."""
        state = self.states[node]
        qhat = None
        if self._model_ready() and not self.model_is_old:
            sims = [self._valid_playout(state) for _ in range(self.k)]
            qhat = float(np.mean(self._values(sims)))
        if self.rollout == "acquisition" and self._model_ready():
            fresh = self._fresh(self._descendants(state))
            if fresh:
                return fresh[int(np.argmax(self._memo_acquisition(fresh)))], qhat
        if self.rollout == "guided" and self._model_ready():
            pool = {}
            for _ in range(self.candidates):
                a = self._valid_playout(state)
                pool.setdefault(self.space.key(a), a)
            fresh = [a for key, a in pool.items() if key not in self.known and key not in self.pending]
            if fresh:
                pred = self.model.predict(fresh)
                return fresh[int(np.argmax(pred))], qhat
            return next(iter(pool.values())), qhat
        return self._valid_playout(state), qhat

    def _descendants(self, state) -> list:
        """Every terminal architecture under ``state`` when there are at most ``candidates`` of them (depth-first,
        in action order), else the distinct ones among ``candidates`` uniform playouts."""
        tag = repr(state)
        if tag in self._leaf_cache:
            return self._leaf_cache[tag]
        out: list = []
        stack = [state]
        while stack:
            st = stack.pop()
            if self.space.is_terminal(st):
                try:
                    out.append(self.space.to_arch(st))
                except NasagentError:  # a terminal state the space rejects (e.g. an invalid NB101 cell)
                    continue
                if len(out) > self.candidates:
                    break
                continue
            stack.extend(self.space.step(st, a) for a in reversed(self.space.actions(st)))
        if len(out) <= self.candidates and not stack:
            if sum(map(len, self._leaf_cache.values())) + len(out) > 500_000:
                self._leaf_cache.clear()
            self._leaf_cache[tag] = out
            return out
        pool = {}
        for _ in range(self.candidates):
            a = self._valid_playout(state)
            pool.setdefault(self.space.key(a), a)
        return list(pool.values())

    def _fresh(self, archs: list) -> list:
        return [a for a in archs if (k := self.space.key(a)) not in self.known and k not in self.pending]

    def _memo_acquisition(self, archs: list) -> np.ndarray:
        """``_acquisition`` with values remembered until the next refit (selection scores nested subtrees)."""
        keys = [self.space.key(a) for a in archs]
        todo = [i for i, k in enumerate(keys) if k not in self._acq_memo]
        if todo:
            vals = self._acquisition([archs[i] for i in todo])
            self._acq_memo.update((keys[i], float(v)) for i, v in zip(todo, vals))
        return np.array([self._acq_memo[k] for k in keys])

    def _acquisition(self, archs: list) -> np.ndarray:
        """Expected improvement under the value model: its own where it has one (the GP's, in its latent
        units), else from its mean and spread over the best measured score, else the predicted mean."""
        ei = getattr(self.model, "expected_improvement", None)
        if ei is not None:
            return np.asarray(ei(archs), dtype=float)
        mean = np.asarray(self.model.predict(archs), dtype=float)
        try:
            std = np.asarray(self.model.predict_std(archs), dtype=float)
        except NasagentError:  # no uncertainty: greedy on the mean
            return mean
        from nasagent.evaluation.predictors.base import expected_improvement

        return expected_improvement(mean, std, self.hi)

    # -- transfer ------------------------------------------------------------------------------------
    def _distance(self, a, b) -> float:
        fn = getattr(self.space, "edit_distance", None)
        if fn is not None:
            return float(fn(a, b))
        return float(np.abs(np.asarray(self.space.encode(a)) - np.asarray(self.space.encode(b))).sum())

    def _parent_hint(self, node: int, arch) -> dict | None:
        """The evaluated architecture nearest to ``arch`` among those rolled out from ``node``'s ancestors."""
        best = None
        cur: int | None = node
        while cur is not None:
            for text, number in self.evaluated.get(cur, []):
                d = self._distance(arch, self.space.parse(text))
                if best is None or d < best[0]:
                    best = (d, text, number)
            p = self.parent[cur]
            cur = None if p is None else p[0]
        if best is None:
            return None
        return {"parent": best[1], "parent_number": best[2], "edit_distance": best[0]}

    # -- ask / tell -----------------------------------------------------------------------------------
    def _placeholder(self, qhat: float | None) -> float:
        if qhat is not None:
            return qhat
        return self.sum_scores / self.n_scores if self.n_scores else 0.0

    def _backprop(self, path, dq: float, dn: float) -> None:
        for node, a in path:
            self.Q[node][a] += dq
            self.N[node][a] += dn

    def _propose(self) -> Proposal:
        if self._warm_source is not None:
            self._warm_start(self._warm_source)  # raises: it was missing when this run started and still is
        path, node = self._select_and_expand()
        arch, qhat = self._simulate(node)
        placeholder = self._placeholder(qhat)
        if self.two_phase:
            self._backprop(path, placeholder, 1.0)  # Eq. 4
        info = {"path": [list(p) for p in path], "node": node, "qhat": qhat, "placeholder": placeholder}
        hint = self._parent_hint(node, arch) if self.transfer else None
        key = self.space.key(arch)
        self.pending[key] = self.pending.get(key, 0) + 1
        return Proposal(arch, hint=hint, info=info)

    def _observe(self, trial: Trial, result: Result) -> None:
        path = [tuple(p) for p in trial.info["path"]]
        key = self.space.key(trial.arch)
        if self.pending.get(key, 0) > 1:
            self.pending[key] -= 1
        else:
            self.pending.pop(key, None)
        qhat, placeholder = trial.info.get("qhat"), trial.info["placeholder"]
        if result.ok:
            acc = float(result.score)
            self._record(trial, acc)
        elif self.failed_mode == "skip":
            if self.two_phase:
                self._backprop(path, -placeholder, -1.0)
            return
        elif self.lo is None:  # no score seen yet, so no "worst" to give it: skip it as failed='skip' does
            if self.two_phase:
                self._backprop(path, -placeholder, -1.0)
            return
        else:
            acc = self.lo  # the worst score seen so far
        q = acc if qhat is None else (acc + qhat) / 2  # Eq. 2
        if self.two_phase:
            self._backprop(path, q - placeholder, 0.0)  # Eq. 5
        else:
            self._backprop(path, q, 1.0)  # Eq. 3, applied when the result arrives
        self._maybe_refit()

    def _record(self, trial: Trial, score: float) -> None:
        key = self.space.key(trial.arch)
        self.lo = score if self.lo is None else min(self.lo, score)
        self.hi = score if self.hi is None else max(self.hi, score)
        self.sum_scores += score
        self.n_scores += 1
        bisect.insort(self.sorted_scores, score)
        if key in self.known:
            return
        self.known[key] = score
        self.train_archs.append(trial.arch)
        self.train_y.append(score)
        self.evaluated.setdefault(int(trial.info.get("node", 0)), []).append((self.space.format(trial.arch), trial.number))

    def _maybe_refit(self) -> None:
        n = len(self.train_y)
        gap = max(self.refit_every, int(self.refit_growth * self.fitted_at))
        if not self.metadnn or n < self.min_fit or n - self.fitted_at < gap:
            return
        if self.model is None:
            self.model = self._make_model()
        self.model.fit(self.train_archs, self.train_y)
        self._acq_memo = {}
        self.fitted_at = n
        self.model_is_old = False

    # -- snapshots and warm start -------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        state["model"] = _detached(self.model)
        state["space_name"] = self.space.name
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        model = state.pop("model", None)
        state.pop("space_name", None)
        super().load_state_dict(state)
        self._leaf_cache, self._acq_memo = {}, {}
        self.model = copy.deepcopy(model)
        _attach(self.model, self.space)

    @staticmethod
    def _warm_journal(source: str) -> Path:
        path = Path(source)
        return path / "journal.db" if path.is_dir() else path

    def _warm_start(self, source: str) -> None:
        """Start from a previous AlphaX run: its Meta-DNN (weights, refitted on this run's data from then on)
        and its tree's per-edge mean values as priors (in [0, 1], weight ``warm_weight`` x old visits)."""
        from nasagent.runtime.journal import Journal

        jpath = self._warm_journal(source)
        if not jpath.exists():
            raise NasagentError(f"alphax warm_start: {jpath} does not exist (give a run directory or its journal.db)")
        journal = Journal(jpath, create=False)
        try:
            snap = journal.latest_snapshot()
        finally:
            journal.close()
        if snap is None or "states" not in snap[1].get("strategy", {}):
            raise NasagentError(f"alphax warm_start: {jpath} holds no AlphaX snapshot (was it an alphax run?)")
        old = snap[1]["strategy"]
        if old.get("space_name") != self.space.name:
            raise NasagentError(
                f"alphax warm_start: the previous run searched space {old.get('space_name')!r}, this one {self.space.name!r}"
            )
        lo, hi = old["lo"], old["hi"]

        def norm(v):
            return 0.5 if lo is None or hi is None or hi <= lo else (v - lo) / (hi - lo)

        # replay the old tree's nodes in creation order (parents first), keeping its edge statistics as priors
        mapping = {0: 0}
        for i in range(1, len(old["states"])):
            p_old, a = old["parent"][i]
            p_new = mapping[p_old]
            child = self._add_node(old["states"][i], (p_new, a))
            self.children[p_new][a] = child
            self.fresh[child] = True
            mapping[i] = child
        for i_old, i_new in mapping.items():
            for a, n in enumerate(old["N"][i_old]):
                prev = old["prior"][i_old].get(a)
                if n > 0:
                    self.prior[i_new][a] = (norm(old["Q"][i_old][a] / n), float(n))
                elif prev is not None:
                    self.prior[i_new][a] = prev
        if self.metadnn and old.get("model") is not None:
            self.model = copy.deepcopy(old["model"])
            _attach(self.model, self.space)
            self.model.warm_start = True  # keep the old weights when refitting on this run's data
            self.model_is_old = True  # its values are in the old task's units: rank with it, no q̂ yet


def _detached(model):
    """A copy of the Meta-DNN without its space (the space is rebuilt from the run config)."""
    if model is None:
        return None
    return copy.deepcopy(model, memo={id(model.space): None})


def _attach(model, space) -> None:
    if model is None:
        return
    model.space = space
    for part in getattr(model, "experts_", []):  # the multi-stage model's range experts
        part.space = space
