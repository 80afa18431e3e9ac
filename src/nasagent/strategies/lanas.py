"""LaNAS (thesis Ch. 4): learn the action space of MCTS as a fixed tree of linear partitions.

A complete binary tree of ``height`` levels covers the space. Every internal node j holds a linear regressor
f_j(a) = w.a + b fitted by least squares (ridge, closed form) to the encodings and scores of the samples that
reach it, and the node mean V_j of their scores (Eq. 4.1). "Go left" is f_j(a) > V_j (the good side), "go
right" is f_j(a) <= V_j. Each learning phase re-fits every node on all samples so far and re-routes them; then
``n_select`` samples follow (Alg. 5), each found by a UCB descent to a leaf and a draw of an unvisited
architecture that satisfies every constraint on the path (pi_rand: rejection sampling, or an exact draw from
the enumerated space). Each result is back-propagated along its route.

Hooks for surrogates and supernets (thesis section 4.2.3 and pi_bayes): draw ``n_candidates`` architectures
inside the chosen region and keep the one a ``score_fn(archs) -> scores`` (e.g. a weight-sharing supernet's
validation accuracy) or a ``predictor`` (a ``nasagent`` Predictor, refitted at every learning phase; expected
improvement when it gives uncertainty) ranks best. Without either, a uniform draw is taken (the thesis).

A local solver inside the leaf (``leaf_solver="gp-ei"``, as LA-MCTS runs BO inside its chosen region, thesis
Ch. 5): every unvisited architecture of the leaf's region (all of them on an enumerated space, else
``leaf_candidates`` rejection draws) is scored by the expected improvement of a GP with an overlap kernel
(``gp-hamming``) refitted on every sample so far, and the best is proposed. The tree decides *where* to look,
the GP *what* to evaluate there; ``leaf_solver="random"`` (default) is the thesis' pi_rand.

Where this differs from the thesis (each with a flag): a node with fewer than ``min_node_samples`` samples
is a leaf (a complete tree is kept whenever the data allow); ``threshold="reference"`` routes training samples
by their true score as the reference code does (brief A2); an empty region falls back to its parent's.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Proposal, Strategy
from nasagent.strategies.partition import check_formula, pick, resolve_cp, resolve_preset, ucb_score

#: enumerable spaces up to this size are encoded once and sampled exactly (no rejection loop)
POOL_LIMIT = 200_000
LEAF_SOLVERS = ("random", "gp-ei")

#: the options a preset sets, when neither it nor the caller does (scaled for spaces of 10^4-10^5 architectures)
DEFAULTS = {"height": 6, "n_init": 20, "n_select": 10, "cp": "auto"}
PRESETS = {
    # thesis section 4.3.1 (NASBench-101, 4e4 samples): height 8, 200 initial samples, #select = 50
    "thesis": {"height": 8, "n_init": 200, "n_select": 50, "cp": "auto"},
    # the reference NASBench-101 script: height 5, Cp 0.1 on accuracies in [0, 1], 10 initial, 20 per phase
    "reference": {"height": 5, "n_init": 10, "n_select": 20, "cp": "auto"},
    # the reference one-shot (supernet) script: C_p 10 on accuracies in %, the tree re-learned after every sample;
    # it states no height or initial samples, so those are the NASBench-101 script's
    "oneshot": {"height": 5, "n_init": 10, "n_select": 1, "cp": 10.0},
}


class LaNAS(Strategy):
    """Options (defaults scaled for spaces of 10^4-10^5 architectures; ``preset="thesis"`` restores Ch. 4's
    height, initial samples, samples per phase and C_p; any of the four given explicitly wins over the preset):

    - ``height`` levels of the complete tree (``2**(height-1)`` leaves), ``n_init`` random samples before the
      first learning phase, ``n_select`` samples per learning phase;
    - ``cp``: UCB exploration constant, a number or ``"auto"`` (0.1 x the score scale, the thesis rule);
      ``ucb``: ``"log"`` or ``"sqrt"`` (see ``partition.py``);
    - ``threshold``: ``"thesis"`` (route training samples by prediction vs the node's mean score) or
      ``"reference"`` (route by true score); ``ridge``: L2 weight of the closed-form fit (0 = least squares);
    - ``sampler``: ``"auto"`` (exact draw from the enumerated space when it has at most 200,000 members,
      else rejection), ``"pool"`` or ``"rejection"``; ``max_tries`` bounds the rejection loop per region;
    - ``n_candidates`` drawn in the region and ranked by ``score_fn`` or ``predictor`` (1 = pi_rand);
    - ``leaf_solver``: ``"random"`` (pi_rand and the hooks above) or ``"gp-ei"`` (GP expected improvement over
      the leaf's unvisited members; ``leaf_candidates`` rejection draws where the space is not enumerated).
    """

    _transient = ("space", "_pool", "score_fn", "predictor", "_leaf_gp")

    def __init__(
        self,
        space,
        seed: int = 0,
        preset: str | None = None,
        height: int | None = None,
        n_init: int | None = None,
        n_select: int | None = None,
        cp: float | str | None = None,
        ucb: str = "log",
        threshold: str = "thesis",
        ridge: float = 1e-3,
        sampler: str = "auto",
        max_tries: int = 20_000,
        n_candidates: int = 1,
        min_node_samples: int = 2,
        score_fn=None,
        predictor=None,
        leaf_solver: str = "random",
        leaf_candidates: int = 2000,
    ):
        super().__init__(space, seed)
        o = resolve_preset("LaNAS", preset, PRESETS, DEFAULTS, height=height, n_init=n_init, n_select=n_select, cp=cp)
        height, n_init, n_select, cp = o["height"], o["n_init"], o["n_select"], o["cp"]
        for name, value in (("height", height), ("n_init", n_init), ("n_select", n_select), ("max_tries", max_tries),
                            ("n_candidates", n_candidates), ("leaf_candidates", leaf_candidates)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise NasagentError(f"LaNAS {name} must be a whole number, got {value!r}")
        if int(max_tries) < 1:
            raise NasagentError(f"LaNAS max_tries must be >= 1, got {max_tries}")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not (math.isfinite(ridge) and ridge >= 0):
            raise NasagentError(f"LaNAS ridge must be a finite number >= 0 (0: least squares), got {ridge!r}")
        if isinstance(min_node_samples, bool) or not isinstance(min_node_samples, int) or min_node_samples < 2:
            raise NasagentError(f"LaNAS min_node_samples must be an integer >= 2 (a split needs two samples), got {min_node_samples!r}")
        if not 1 <= int(height) <= 12:
            raise NasagentError(f"LaNAS height must be in 1..12, got {height}")
        if int(n_init) < 2 or int(n_select) < 1:
            raise NasagentError(f"LaNAS needs n_init >= 2 and n_select >= 1, got {n_init} and {n_select}")
        if threshold not in ("thesis", "reference"):
            raise NasagentError(f"LaNAS threshold must be 'thesis' or 'reference', got {threshold!r}")
        if sampler not in ("auto", "pool", "rejection"):
            raise NasagentError(f"LaNAS sampler must be auto, pool or rejection, got {sampler!r}")
        if int(n_candidates) < 1:
            raise NasagentError(f"LaNAS n_candidates must be >= 1, got {n_candidates}")
        if leaf_solver not in LEAF_SOLVERS:
            raise NasagentError(f"LaNAS leaf_solver must be one of {', '.join(LEAF_SOLVERS)}, got {leaf_solver!r}")
        if int(leaf_candidates) < 1:
            raise NasagentError(f"LaNAS leaf_candidates must be >= 1, got {leaf_candidates}")
        if score_fn is not None and not callable(score_fn):
            raise NasagentError("LaNAS score_fn must be a callable archs -> scores (higher is better)")
        self._predictor_named = isinstance(predictor, str)  # built here: snapshots keep it (fitted, with its RNG)
        if isinstance(predictor, str):
            from nasagent.evaluation.predictors.factory import make_predictor

            predictor = make_predictor(predictor, space, seed=seed)
        if predictor is not None and not (hasattr(predictor, "fit") and hasattr(predictor, "predict")):
            raise NasagentError("LaNAS predictor must have fit(archs, y) and predict(archs) (a nasagent Predictor)")
        resolve_cp(cp, [])  # validates
        self.height, self.n_init, self.n_select = int(height), int(n_init), int(n_select)
        self.cp, self.ucb = cp, check_formula(ucb)
        self.threshold, self.ridge, self.max_tries = threshold, float(ridge), int(max_tries)
        self.n_candidates, self.min_node_samples = int(n_candidates), max(2, int(min_node_samples))
        self.score_fn, self.predictor = score_fn, predictor
        self.leaf_solver, self.leaf_candidates = leaf_solver, int(leaf_candidates)
        self._leaf_gp = None
        if leaf_solver == "gp-ei":
            from nasagent.evaluation.predictors.factory import make_predictor

            self._leaf_gp = make_predictor("gp-hamming", space, seed=seed)
        size = space.size()
        if sampler == "pool" and (size is None or size > 5_000_000):
            raise NasagentError(f"LaNAS sampler='pool' needs an enumerable space; {space.name!r} is not (use rejection)")
        self.sampler = sampler if sampler != "auto" else ("pool" if size is not None and size <= POOL_LIMIT else "rejection")

        self.dim = int(np.asarray(space.encode(space.sample(np.random.default_rng(0)))).size)
        n_nodes = 2**self.height - 1
        self.n_internal = 2 ** (self.height - 1) - 1
        self.W = np.zeros((max(self.n_internal, 1), self.dim))
        self.b = np.zeros(max(self.n_internal, 1))
        self.thr = np.zeros(max(self.n_internal, 1))
        self.split = np.zeros(max(self.n_internal, 1), dtype=bool)  # node has a learned boundary and children
        self.visits = np.zeros(n_nodes, dtype=np.int64)
        self.n_ok = np.zeros(n_nodes, dtype=np.int64)
        self.total = np.zeros(n_nodes)
        self.learned = False
        self.since_learn = 0
        self.asked: set[str] = set()
        self.archs: list = []  # evaluated architectures, in tell order
        self.encodings: list[np.ndarray] = []
        self.scores: list[float | None] = []
        self.n_fallbacks = 0  # draws that had to leave the chosen region (empty or exhausted)
        self.history: list[dict] = []  # one entry per learning phase (diagnostics)
        self._pool = None

    # -- ask / tell ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self._predictor_named:  # it is fitted only at learning phases: a resumed run needs the fitted one
            from nasagent.strategies.alphax import _detached

            state["predictor"] = _detached(self.predictor)
        return state

    def load_state_dict(self, state: dict) -> None:
        state = dict(state)
        predictor = state.pop("predictor", None)
        super().load_state_dict(state)
        if predictor is not None:
            from nasagent.strategies.alphax import _attach

            self.predictor = copy.deepcopy(predictor)
            _attach(self.predictor, self.space)

    def _propose(self) -> Proposal:
        n_ok = sum(s is not None for s in self.scores)
        if len(self.asked) < self.n_init or n_ok < 2:
            arch = self._draw([], 1)
            if not arch:
                raise SpaceExhausted("LaNAS found no unvisited architecture (the space is exhausted, or max_tries "
                                     "draws found none)")
            return self._take(arch[0], {"phase": "init"})
        if not self.learned or self.since_learn >= self.n_select:
            self.learn()
        self.since_learn += 1
        leaf, path = self.select()
        n = self.n_candidates if self.leaf_solver == "random" else None
        for depth in range(len(path), -1, -1):  # the chosen region, then its ancestors if it holds nothing new
            cands = self._draw(path[:depth], n)
            if cands:
                if depth < len(path):
                    self.n_fallbacks += 1
                arch = self._choose(cands)
                return self._take(arch, {"phase": "search", "leaf": int(leaf), "depth": depth})
        raise SpaceExhausted("LaNAS found no unvisited architecture (the space is exhausted)")

    def _take(self, arch, info: dict) -> Proposal:
        self._mark_asked(self.space.key(arch))
        return Proposal(arch, info=info)

    def _mark_asked(self, key: str) -> None:
        self.asked.add(key)
        if self._pool is not None and key in self._pool[3]:
            self._pool[2][self._pool[3][key]] = False

    def _observe(self, trial: Trial, result: Result) -> None:
        x = np.asarray(self.space.encode(trial.arch), dtype=np.float64)
        score = result.score if result.ok else None
        self.archs.append(trial.arch)
        self.encodings.append(x)
        self.scores.append(score)
        self._mark_asked(self.space.key(trial.arch))
        if self.learned:  # back-propagate along the sample's route in the fixed tree
            for node in self._route_one(x):
                self._count(node, score)

    # -- learning phase --------------------------------------------------------------------------------------
    def learn(self) -> None:
        """Re-fit every node on all samples so far (top-down) and recompute the statistics by re-routing."""
        X = np.asarray(self.encodings, dtype=np.float64).reshape(-1, self.dim)
        ok = np.array([s is not None for s in self.scores], dtype=bool)
        y = np.array([s if s is not None else np.nan for s in self.scores], dtype=np.float64)
        self.visits[:] = 0
        self.n_ok[:] = 0
        self.total[:] = 0.0
        self.split[:] = False
        members = {0: np.arange(len(y))}
        for node in range(2**self.height - 1):
            idx = members.pop(node, np.zeros(0, dtype=np.int64))
            self.visits[node] = idx.size
            good = idx[ok[idx]]
            self.n_ok[node] = good.size
            self.total[node] = float(y[good].sum()) if good.size else 0.0
            if node >= self.n_internal or good.size < self.min_node_samples:
                continue
            self._fit_node(node, X[good], y[good])
            pred = X[idx] @ self.W[node] + self.b[node]
            go_left = pred > self.thr[node]
            if self.threshold == "reference":  # route training samples by true score (failed ones by prediction)
                go_left = np.where(ok[idx], y[idx] > self.thr[node], go_left)
            self.split[node] = True
            members[2 * node + 1], members[2 * node + 2] = idx[go_left], idx[~go_left]
        if self.predictor is not None and ok.sum() >= 2:
            self.predictor.fit([a for a, k in zip(self.archs, ok) if k], y[ok])
        self.learned = True
        self.since_learn = 0
        self.history.append({"samples": int(len(y)), "splits": int(self.split.sum()), "tree": self.tree_dump()})

    def _fit_node(self, node: int, X: np.ndarray, y: np.ndarray) -> None:
        """Closed-form ridge regression with an unpenalised intercept (least squares when ridge = 0)."""
        xm, ym = X.mean(axis=0), y.mean()
        Xc, yc = X - xm, y - ym
        if self.ridge > 0:
            w = np.linalg.solve(Xc.T @ Xc + self.ridge * np.eye(self.dim), Xc.T @ yc)
        else:
            w = np.linalg.lstsq(Xc, yc, rcond=None)[0]
        self.W[node], self.b[node] = w, ym - xm @ w
        self.thr[node] = ym  # Eq. 4.1: the node's mean score (= the mean prediction, for a fit with intercept)

    # -- search phase ----------------------------------------------------------------------------------------
    def select(self) -> tuple[int, list[tuple[int, int]]]:
        """UCB descent from the root; returns the leaf and the path as (node, side) with side 0 = left (good)."""
        cp = resolve_cp(self.cp, [s for s in self.scores if s is not None])
        node, path = 0, []
        while node < self.n_internal and self.split[node]:
            kids = (2 * node + 1, 2 * node + 2)
            scores = [ucb_score(self._mean(k), int(self.visits[k]), int(self.visits[node]), cp, self.ucb) for k in kids]
            side = pick(scores, self.rng)
            path.append((node, side))
            node = kids[side]
        return node, path

    def _mean(self, node: int) -> float:
        if self.n_ok[node]:
            return self.total[node] / self.n_ok[node]
        ok = [s for s in self.scores if s is not None]
        return min(ok) if ok else 0.0  # visited, but every sample failed: as bad as the worst seen

    def in_region(self, E: np.ndarray, path) -> np.ndarray:
        """Batched membership: which encodings satisfy every linear constraint of ``path``."""
        E = np.atleast_2d(E)
        if not path:
            return np.ones(len(E), dtype=bool)
        nodes = [node for node, _ in path]
        left = E @ self.W[nodes].T + self.b[nodes] > self.thr[nodes]
        want_left = np.array([side == 0 for _, side in path])
        return (left == want_left).all(axis=1)

    def leaf_of(self, E: np.ndarray) -> np.ndarray:
        """Batched routing: the leaf each encoding falls in under the current tree (diagnostics, e.g. the
        accuracy distribution per leaf over a whole table)."""
        E = np.atleast_2d(np.asarray(E, dtype=np.float64))
        node = np.zeros(len(E), dtype=np.int64)
        for _ in range(self.height - 1):
            at = np.flatnonzero(node < self.n_internal)
            at = at[self.split[node[at]]]
            if not at.size:
                break
            nd = node[at]
            left = np.einsum("ij,ij->i", E[at], self.W[nd]) + self.b[nd] > self.thr[nd]
            node[at] = 2 * nd + np.where(left, 1, 2)
        return node

    def _route_one(self, x: np.ndarray) -> list[int]:
        node, route = 0, [0]
        while node < self.n_internal and self.split[node]:
            node = 2 * node + (1 if x @ self.W[node] + self.b[node] > self.thr[node] else 2)
            route.append(node)
        return route

    def _count(self, node: int, score: float | None) -> None:
        self.visits[node] += 1
        if score is not None:
            self.n_ok[node] += 1
            self.total[node] += score

    def _draw(self, path, n: int | None) -> list:
        """Up to ``n`` distinct unvisited architectures inside the region of ``path`` (uniform over it).

        ``n=None`` asks for the leaf solver's candidate set: every member on a pool, else ``leaf_candidates``.
        """
        if self.sampler == "pool":
            archs, E, free = self._pool_data()
            idx = np.flatnonzero(free)
            if path:
                idx = idx[self.in_region(E[idx], path)]
            if idx.size == 0:
                return []
            take = idx if n is None else self.rng.choice(idx, size=min(n, idx.size), replace=False)
            return [archs[i] for i in take]
        n = self.leaf_candidates if n is None else n
        out, seen, tries = [], set(), 0
        batch = 64
        while tries < self.max_tries and len(out) < n:
            cands = [self.space.sample(self.rng) for _ in range(min(batch, self.max_tries - tries))]
            tries += len(cands)
            if path:
                E = np.stack([np.asarray(self.space.encode(a), dtype=np.float64) for a in cands])
                cands = [a for a, k in zip(cands, self.in_region(E, path)) if k]
            for a in cands:
                key = self.space.key(a)
                if key not in self.asked and key not in seen:
                    seen.add(key)
                    out.append(a)
                    if len(out) == n:
                        break
            batch = min(batch * 2, 1024)
        return out

    def _pool_data(self):
        """(architectures, encodings, mask of those not yet asked) of the enumerated space, built once."""
        if self._pool is None:
            archs = list(self.space.enumerate())
            index = {self.space.key(a): i for i, a in enumerate(archs)}
            E = np.stack([np.asarray(self.space.encode(a), dtype=np.float64) for a in archs])
            free = np.ones(len(archs), dtype=bool)
            free[[index[k] for k in self.asked if k in index]] = False
            self._pool = (archs, E, free, index)
        return self._pool[:3]

    def _choose(self, cands: list):
        if self.leaf_solver == "gp-ei":
            return self._choose_gp_ei(cands)
        if len(cands) == 1 or (self.score_fn is None and self.predictor is None):
            return cands[0]
        if self.score_fn is not None:
            s = np.asarray(self.score_fn(cands), dtype=np.float64).ravel()
            if s.shape != (len(cands),) or not np.isfinite(s).any():
                raise NasagentError(f"LaNAS score_fn must return {len(cands)} finite scores, got shape {s.shape}")
            return cands[int(np.nanargmax(np.where(np.isfinite(s), s, -np.inf)))]
        if not getattr(self.predictor, "fitted_", True):
            return cands[0]
        mu = self.predictor.predict(cands)
        try:
            sd = np.asarray(self.predictor.predict_std(cands), dtype=np.float64)
        except NasagentError:
            return cands[int(np.argmax(mu))]
        best = max(s for s in self.scores if s is not None)
        from nasagent.evaluation.predictors.base import expected_improvement

        return cands[int(np.argmax(expected_improvement(mu, sd, best)))]

    def _choose_gp_ei(self, cands: list):
        """The candidate with the largest GP expected improvement (refitted on every successful sample)."""
        ok = [i for i, s in enumerate(self.scores) if s is not None]
        if len(cands) == 1 or len(ok) < 2:
            return cands[int(self.rng.integers(len(cands)))]
        self._leaf_gp.fit([self.archs[i] for i in ok], [self.scores[i] for i in ok])
        return cands[int(np.argmax(self._leaf_gp.expected_improvement(cands)))]

    # -- diagnostics ----------------------------------------------------------------------------------------
    def tree_dump(self) -> list[dict]:
        """One row per reachable node: id, depth, samples (visits), mean score, leaf flag, UCB vs its parent."""
        cp = resolve_cp(self.cp, [s for s in self.scores if s is not None])
        rows, stack = [], [0]
        while stack:
            node = stack.pop()
            parent = (node - 1) // 2 if node else None
            leaf = not (node < self.n_internal and self.split[node])
            ucb = None if parent is None else ucb_score(self._mean(node), int(self.visits[node]), int(self.visits[parent]), cp, self.ucb)
            rows.append({"id": node, "depth": int(math.log2(node + 1)), "n": int(self.visits[node]),
                         "mean": float(self._mean(node)), "ucb": ucb, "leaf": leaf})
            if not leaf:
                stack += [2 * node + 2, 2 * node + 1]
        return rows
