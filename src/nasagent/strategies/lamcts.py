"""LA-MCTS (thesis Ch. 5): learn a partition of a box with K-means + SVM splits, pick a region by UCB, and run a
local solver (TuRBO-1, GP-EI BO, CMA-ES, COBYLA or random) inside it.

``LAMCTSOptimizer`` is the algorithm as a plain ask/tell object in the problem's coordinates, for use in any
code (``minimize=True`` flips the sign of what you tell it). ``LAMCTS`` is the same algorithm as a nasagent
strategy on a ``BoxSpace`` (benchmarks ackley-20, rover-60, lunar, swimmer, ...), and
``nasagent.integrations.optuna.LAMCTSSampler`` wraps it for Optuna studies.

One iteration (thesis section 5.3): rebuild the tree from all samples (split every leaf holding more than
``leaf_size`` samples while it is splittable), descend by UCB to a leaf, and start a local solver in the leaf's
region (the intersection of the SVM decisions along the path). The solver runs until it reports ``done``
(TuRBO: its trust region collapsed; BO and random: ``batch_size`` proposals; CMA-ES: it stopped or stalled;
COBYLA: it converged);
everything it evaluates joins the data. Every evaluation counts against the budget: the runner evaluates each
point the solver proposes.
"""

from __future__ import annotations

import json
import logging
import math

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy
from nasagent.strategies.lamcts_tree import KERNELS, SAMPLERS, PartitionTree, sample_region
from nasagent.strategies.local_solvers import (
    COBYLA_RHOEND,
    BOSolver,
    CMAESSolver,
    CobylaSolver,
    RandomSolver,
    TurboSolver,
    check_cobyla_bounds,
    check_failtol,
    check_solver,
)
from nasagent.strategies.partition import check_formula, resolve_cp, resolve_preset

#: initial designs: the reference code's Latin hypercube, uniform draws, or either with the box's centre as the
#: first point (not the thesis; nevergrad's optimisers and most designs of experiments start at the centre)
INITS = ("lhs", "random", "centre+lhs", "centre+random")
#: the options a preset sets, when neither it nor the caller does: the thesis' synthetic / Lunar / Rover setting
#: (the reference code's 40 Latin-hypercube initial points)
DEFAULTS: dict = {"cp": 1.0, "leaf_size": 20, "kernel": "rbf", "gamma": "auto", "n_init": 40, "reuse_region_data": False,
                  "local_n_init": 30}
#: hyper-parameters per task family. "synthetic" and "mujoco" are the thesis' (section 5.4, appendix): C_p 1 and
#: leaf size 20 on synthetic functions, Lunar and Rover; C_p 10, leaf size 100, 30 initial samples on MuJoCo,
#: with an RBF kernel for the easier tasks and a linear one for the large ones. The others are the reference
#: code's per-function settings (brief section 2.7).
PRESETS: dict[str, dict] = {
    "synthetic": {"cp": 1.0, "leaf_size": 20, "kernel": "rbf", "gamma": "auto", "n_init": 40},
    "mujoco": {"cp": 10.0, "leaf_size": 100, "kernel": "rbf", "gamma": "auto", "n_init": 30},
    "mujoco-large": {"cp": 10.0, "leaf_size": 100, "kernel": "linear", "gamma": "auto", "n_init": 30},
    "reference-ackley": {"cp": 1.0, "leaf_size": 10, "kernel": "rbf", "gamma": "auto", "n_init": 40},
    "reference-levy": {"cp": 10.0, "leaf_size": 8, "kernel": "poly", "gamma": "auto", "n_init": 40},
    "reference-lunar": {"cp": 50.0, "leaf_size": 10, "kernel": "poly", "gamma": "scale", "n_init": 40},
    "reference-swimmer": {"cp": 20.0, "leaf_size": 10, "kernel": "poly", "gamma": "scale", "n_init": 40},
    "reference-hopper": {"cp": 10.0, "leaf_size": 100, "kernel": "poly", "gamma": "auto", "n_init": 150},
    # not the thesis: for budgets of a few hundred evaluations (benchmarks/lamcts_synthetic.py, docs/lamcts.md)
    "small-budget": {"cp": 1.0, "leaf_size": 20, "kernel": "rbf", "gamma": "auto", "n_init": 20,
                     "reuse_region_data": True, "local_n_init": 5},
}


class LAMCTSOptimizer:
    """LA-MCTS as an ask/tell optimiser over the box [lower, upper] (maximises, unless ``minimize=True``).

    ``ask()`` returns a point (a numpy array); ``tell(x, y)`` reports its value. ``ask`` may be called several
    times before the matching ``tell`` calls (parallel workers). Telling a point that was never asked adds it
    as an extra observation. Options are those of the ``lamcts`` strategy (see ``docs/lamcts.md``).
    """

    def __init__(
        self,
        lower,
        upper,
        seed: int = 0,
        minimize: bool = False,
        preset: str | None = None,
        solver: str = "turbo",
        cp: float | str | None = None,
        leaf_size: int | None = None,
        kernel: str | None = None,
        gamma: str | float | None = None,
        n_init: int | None = None,
        init: str = "lhs",
        ucb: str = "log",
        kmeans_scale: str = "raw",
        assign: str = "kmeans",
        batch_size: int = 1,
        region_sampler: str = "auto",
        local_n_init: int | None = None,
        reuse_region_data: bool | None = None,
        ts: str = "pathwise",
        gp_steps_warm: int = 10,
        turbo_failtol: int | None = None,
        cmaes_sigma: float | None = None,
        cmaes_patience: int = 10,
        cobyla_rhobeg: float | None = None,
        cobyla_bounds: str = "constraints",
        keep_trees: bool = False,
    ):
        o = resolve_preset("LA-MCTS", preset, PRESETS, DEFAULTS, cp=cp, leaf_size=leaf_size, kernel=kernel, gamma=gamma,
                           n_init=n_init, reuse_region_data=reuse_region_data, local_n_init=local_n_init)
        cp, leaf_size, kernel, gamma = o["cp"], o["leaf_size"], o["kernel"], o["gamma"]
        n_init, reuse_region_data, local_n_init = o["n_init"], o["reuse_region_data"], o["local_n_init"]
        lo = np.atleast_1d(np.asarray(lower, dtype=np.float64))
        hi = np.atleast_1d(np.asarray(upper, dtype=np.float64))
        if lo.shape != hi.shape or lo.ndim != 1 or lo.size == 0:
            raise NasagentError(f"LA-MCTS bounds must be two 1-D arrays of one length, got {lo.shape} and {hi.shape}")
        if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
            raise NasagentError("LA-MCTS bounds must be finite numbers")
        if (lo >= hi).any():
            i = int(np.flatnonzero(lo >= hi)[0])
            raise NasagentError(f"LA-MCTS bound low >= high in dimension {i}: low={lo[i]}, high={hi[i]}")
        if kernel not in KERNELS:
            raise NasagentError(f"unknown SVM kernel {kernel!r}; kernels: {', '.join(KERNELS)}")
        if region_sampler not in SAMPLERS:
            raise NasagentError(f"unknown region sampler {region_sampler!r}; samplers: {', '.join(SAMPLERS)}")
        if init not in INITS:
            raise NasagentError(f"LA-MCTS init must be one of {', '.join(map(repr, INITS))}, got {init!r}")
        if cobyla_rhobeg is not None and (isinstance(cobyla_rhobeg, bool) or not isinstance(cobyla_rhobeg, (int, float, np.number))
                                          or not COBYLA_RHOEND < cobyla_rhobeg <= 1):
            raise NasagentError(f"cobyla_rhobeg is COBYLA's first step in unit-cube coordinates, a number in "
                                f"({COBYLA_RHOEND:g}, 1]; got {cobyla_rhobeg!r}")
        if int(n_init) < 2 or int(leaf_size) < 2 or int(batch_size) < 1 or int(local_n_init) < 1:
            raise NasagentError(
                f"LA-MCTS needs n_init >= 2, leaf_size >= 2, batch_size >= 1, local_n_init >= 1; "
                f"got {n_init}, {leaf_size}, {batch_size}, {local_n_init}"
            )
        resolve_cp(cp, [])
        width = hi - lo
        if gamma == "auto" and kmeans_scale == "raw" and (width.min() < 1e-2 or width.max() > 1e3):
            logging.getLogger("nasagent").warning(
                "LA-MCTS partitions in the problem's own units (the thesis' setting) and this box is %.3g to %.3g wide, "
                "so its tree will split too little or too much; pass gamma='scale', kmeans_scale='standardize'",
                width.min(), width.max())
        self.lower, self.upper, self.dim = lo, hi, lo.size
        self.sign = -1.0 if minimize else 1.0
        self.solver_name = check_solver(solver)
        self.cp, self.leaf_size, self.kernel, self.gamma = cp, int(leaf_size), kernel, gamma
        self.n_init, self.init, self.ucb = int(n_init), init, check_formula(ucb)
        self.kmeans_scale, self.assign, self.batch_size = kmeans_scale, assign, int(batch_size)
        self.region_sampler, self.local_n_init, self.reuse_region_data = region_sampler, int(local_n_init), bool(reuse_region_data)
        self.ts, self.gp_steps_warm = ts, int(gp_steps_warm)
        self.turbo_failtol = check_failtol(turbo_failtol, "turbo_failtol")
        self.cmaes_sigma, self.cmaes_patience = cmaes_sigma, int(cmaes_patience)
        self.cobyla_rhobeg = None if cobyla_rhobeg is None else float(cobyla_rhobeg)
        self.cobyla_bounds = check_cobyla_bounds(cobyla_bounds)
        self.keep_trees = keep_trees
        PartitionTree(np.zeros((0, self.dim)), np.zeros(0), lo, hi, leaf_size, kernel, gamma, kmeans_scale, assign)  # validates
        self.rng = np.random.default_rng(seed)
        self.seed = int(seed)
        self.X = np.zeros((0, self.dim))
        self.f = np.zeros(0)  # maximised values
        self.init_queue: list[np.ndarray] | None = None
        self.solver = None
        self.solvers: dict[int, object] = {}  # solver id -> solver with points still pending
        self.pending: dict[int, tuple[np.ndarray, int | None]] = {}  # token -> (point, solver id)
        self._next_token = 0
        self._next_solver = 0
        self._current_sid: int | None = None
        self.tree: PartitionTree | None = None
        self.history: list[dict] = []
        self.bo_theta = None

    # -- public ask / tell -------------------------------------------------------------------------------------
    def ask(self) -> np.ndarray:
        return self.ask_token()[1]

    def tell(self, x, y: float | None) -> None:
        """Report the value of ``x`` (``None`` for a failed evaluation; NaN and inf are refused)."""
        x = np.asarray(x, dtype=np.float64).ravel()
        if x.size != self.dim:
            raise NasagentError(f"tell got a point of {x.size} dimensions; this optimiser has {self.dim}")
        if y is not None:
            y = float(y)
            if not math.isfinite(y):
                raise NasagentError(f"tell got a non-finite value {y} for a point; pass None to report a failed evaluation")
        token = next((t for t, (p, _) in self.pending.items() if np.array_equal(p, x)), None)
        if token is None:  # not handed back bit for bit: the nearest pending point, if within rounding of x
            near = [(float(np.max(np.abs(p - x) / (self.upper - self.lower))), t) for t, (p, _) in self.pending.items()
                    if self._same_point(p, x)]
            token = min(near)[1] if near else None
        self.tell_token(token, x, None if y is None else self.sign * y)

    def _same_point(self, a: np.ndarray, b: np.ndarray) -> bool:
        """``b`` is ``a`` up to rounding: a part in a million of the box's width, or what a float32 cast of ``a``
        loses (a few parts in 10^8 of its magnitude)."""
        return bool(np.all(np.abs(a - b) <= 1e-6 * (self.upper - self.lower) + 1.2e-7 * np.abs(a)))

    @property
    def best(self) -> tuple[np.ndarray, float] | None:
        """(point, value in the caller's sign) of the best observation so far."""
        if not len(self.f):
            return None
        i = int(np.argmax(self.f))
        return self.X[i].copy(), self.sign * float(self.f[i])

    # -- token-level ask / tell (the strategy and the Optuna sampler use these) --------------------------------------
    def ask_token(self) -> tuple[int, np.ndarray]:
        if self.init_queue is None:
            self.init_queue = list(self._initial_design())
        sid = None
        if self.init_queue:
            x = self.init_queue.pop(0)
        elif len(self.f) < 2:  # initial points still being evaluated (parallel asks): more random points
            x = self.rng.uniform(self.lower, self.upper)
        else:
            if self.solver is None or self.solver.done:
                self._new_iteration()
            x = np.clip(self.solver.ask(), self.lower, self.upper)
            sid = self._current_sid
            self.solvers[sid] = self.solver
        token = self._next_token
        self._next_token += 1
        self.pending[token] = (x, sid)
        return token, x

    def tell_token(self, token: int | None, x, f: float | None) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        entry = self.pending.pop(token, None) if token is not None else None
        if f is not None:
            self.X = np.vstack([self.X, x[None]])
            self.f = np.append(self.f, float(f))
        if entry is not None and entry[1] is not None:
            sid = entry[1]
            solver = self.solvers.get(sid)
            if solver is not None:
                if self._same_point(entry[0], x):
                    solver.tell(entry[0], f)  # the point the solver asked for (x may come back rounded)
                elif isinstance(solver, TurboSolver):  # another point was evaluated in its place (an Optuna
                    solver.tell(x, f)  # enqueue_trial): TuRBO's GP learns from any point
                else:  # CMA-ES and COBYLA learn only from their own points, and this one was never evaluated
                    solver.tell(entry[0], None)
                still = any(s == sid for _, s in self.pending.values())
                if not still and solver is not self.solver:
                    del self.solvers[sid]

    # -- internals ------------------------------------------------------------------------------------------------
    def _initial_design(self) -> np.ndarray:
        centre = self.init.startswith("centre+")
        n = self.n_init - centre
        if self.init.endswith("lhs"):
            from scipy.stats import qmc

            U = qmc.LatinHypercube(self.dim, seed=self.rng).random(n)
        else:
            U = self.rng.random((n, self.dim))
        if centre:
            U = np.vstack([np.full((1, self.dim), 0.5), U])
        return self.lower + U * (self.upper - self.lower)

    def build_tree(self) -> PartitionTree:
        return PartitionTree(self.X, self.f, self.lower, self.upper, self.leaf_size, self.kernel, self.gamma,
                             self.kmeans_scale, self.assign, seed=int(self.rng.integers(2**31 - 1)))

    def _new_iteration(self) -> None:
        tree = self.build_tree()
        cp = resolve_cp(self.cp, self.f)
        leaf, region = tree.select(cp, self.rng, self.ucb)
        inside = region.contains(self.X) if region.depth else np.ones(len(self.f), dtype=bool)
        Xin, fin = self.X[inside], self.f[inside]
        pending = np.array([p for p, _ in self.pending.values()]).reshape(-1, self.dim)
        reg = region if region.depth else None
        name = self.solver_name
        if name == "turbo":
            solver = TurboSolver(self.lower, self.upper, self.rng, reg, n_init=self.local_n_init, batch_size=self.batch_size,
                                 init="region", centres=Xin, prior=(Xin, fin) if self.reuse_region_data else None,
                                 ts=self.ts, gp_steps_warm=self.gp_steps_warm, failtol=getattr(self, "turbo_failtol", None))
        elif name == "bo":
            solver = BOSolver(self.lower, self.upper, self.rng, reg, data=(self.X, self.f), pending=pending, centres=Xin,
                              batch_size=self.batch_size, theta=self.bo_theta)
            self.bo_theta = solver.theta
        elif name == "cmaes":
            mean = Xin[int(np.argmax(fin))] if len(fin) else None
            sigma = self.cmaes_sigma if self.cmaes_sigma is not None else self._region_step(Xin)
            solver = CMAESSolver(self.lower, self.upper, self.rng, reg, mean=mean, sigma=sigma, patience=self.cmaes_patience)
        elif name == "cobyla":
            start, start_value = self._cobyla_start(Xin, fin, region)
            step = getattr(self, "cobyla_rhobeg", None)  # absent from snapshots older than the option
            rhobeg = step if step is not None else self._region_step(Xin)
            solver = CobylaSolver(self.lower, self.upper, self.rng, reg, start=start, start_value=start_value, rhobeg=rhobeg,
                                  bounds=getattr(self, "cobyla_bounds", "constraints"))
        else:
            solver = RandomSolver(self.lower, self.upper, self.rng, reg, centres=Xin, batch_size=self.batch_size)
        self.solver = solver
        self._current_sid = self._next_solver
        self._next_solver += 1
        self.tree = tree
        entry = {"iteration": len(self.history), "samples": int(len(self.f)), "nodes": len(tree.nodes),
                 "splits": tree.n_splits, "height": tree.height, "leaf": leaf.id, "leaf_n": leaf.n,
                 "leaf_mean": self.sign * leaf.mean, "depth": region.depth, "in_region": int(inside.sum()),
                 "best": None if not len(self.f) else self.sign * float(self.f.max()), "cp": cp}
        if self.keep_trees:
            entry["tree"] = self._signed(tree.dump())
        self.history.append(entry)

    def _cobyla_start(self, Xin: np.ndarray, fin: np.ndarray, region) -> tuple[np.ndarray, float | None]:
        """Where the next COBYLA run starts: the region's best point, with its value, unless a run started there
        already; then a fresh point in the region. COBYLA is deterministic: restarted from the same point with the
        same step it would repeat its last run point for point."""
        used = self.__dict__.setdefault("cobyla_starts", set())
        if len(fin):
            i = int(np.argmax(fin))
            if Xin[i].tobytes() not in used:
                used.add(Xin[i].tobytes())
                return Xin[i], float(fin[i])
        x = sample_region(region, 1, self.rng, centres=Xin if len(Xin) else None)[0][0]
        used.add(x.tobytes())
        return x, None

    def close(self) -> None:
        """Release what the local solvers hold (COBYLA's thread); asking again resumes them."""
        for solver in [self.solver, *self.solvers.values()]:  # closing twice is harmless
            if hasattr(solver, "close"):
                solver.close()

    def _region_step(self, Xin: np.ndarray) -> float:
        """A local solver's first step: the spread of the region's samples in unit coordinates, within [0.05, 0.25]."""
        if len(Xin) < 2:
            return 0.25
        spread = ((Xin - self.lower) / (self.upper - self.lower)).std(axis=0).mean()
        return float(np.clip(spread, 0.05, 0.25))

    def tree_dump(self) -> list[dict]:
        """The current tree (rebuilt from all data now if no iteration has run yet); means in the caller's sign."""
        return self._signed((self.tree or self.build_tree()).dump())

    def _signed(self, rows: list[dict]) -> list[dict]:
        """A tree dump in the caller's values (the tree itself maximises ``sign * value``): when minimising, ``ucb``
        is the optimistic bound below the mean."""
        return [{**r, "mean": self.sign * r["mean"], "ucb": None if r["ucb"] is None else self.sign * r["ucb"]} for r in rows]


class LAMCTS(Strategy):
    """LA-MCTS on a continuous box space; options as ``LAMCTSOptimizer`` (``--opt solver=turbo|bo|cmaes|cobyla|random``)."""

    def __init__(self, space, seed: int = 0, **options):
        super().__init__(space, seed)
        unknown, allowed = _unknown_options(options, fixed=())
        if unknown:
            raise NasagentError(f"strategy 'lamcts' has no option {unknown[0]!r}; its options: {', '.join(allowed)}")
        from nasagent.registry import check_option_types

        check_option_types("strategy 'lamcts'", LAMCTSOptimizer.__init__, options)
        lower, upper = _box_bounds(space, "lamcts")
        self.opt = LAMCTSOptimizer(lower, upper, seed=seed, **options)

    def _propose(self) -> Proposal:
        token, x = self.opt.ask_token()
        return Proposal(tuple(float(v) for v in x), info={"token": token})

    def _observe(self, trial: Trial, result: Result) -> None:
        self.opt.tell_token(trial.info.get("token"), np.asarray(trial.arch, dtype=np.float64), result.score if result.ok else None)

    @property
    def history(self) -> list[dict]:
        return self.opt.history


def _unknown_options(options: dict, fixed: tuple) -> tuple[list[str], list[str]]:
    """(options ``LAMCTSOptimizer`` does not take, those it does): the caller sets the box, seed and direction, and
    the names in ``fixed``."""
    import inspect

    taken = ("self", "lower", "upper", "seed", "minimize", *fixed)
    allowed = [p for p in inspect.signature(LAMCTSOptimizer.__init__).parameters if p not in taken]
    return [k for k in options if k not in allowed], allowed


def _box_bounds(space, name: str) -> tuple[np.ndarray, np.ndarray]:
    lower, upper = getattr(space, "lower", None), getattr(space, "upper", None)
    if lower is None or upper is None or getattr(space, "sequential", True):
        raise NasagentError(
            f"strategy {name!r} searches continuous boxes (benchmarks such as ackley-20, rover-60, lunar, swimmer); "
            f"space {space.name!r} is not one. For NAS spaces use lanas."
        )
    return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


# -- a drop-in entry point ---------------------------------------------------------------------------------------------
class MinimizeResult(dict):
    """What ``minimize`` returns (a dict with attribute access, like scipy's ``OptimizeResult``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def minimize(fun, bounds, budget: int = 500, seed: int = 0, batch_size: int = 1, workers: int = 1, callback=None,
             journal=None, **options) -> MinimizeResult:
    """Minimise ``fun(x) -> float`` over a box with LA-MCTS; scipy-style: ``bounds`` is ``[(low, high), ...]``.

    ``budget`` counts every evaluation (the initial design and every point the local solver tries). With
    ``workers > 1`` each batch of ``batch_size`` points is evaluated in a thread pool (use it when ``fun``
    releases the GIL or calls out to another process). ``fun`` may return ``None`` or raise for a failed
    evaluation (the point is recorded as failed and the search goes on); NaN or inf is an error. ``callback(x, y)``
    is called after every evaluation. Other ``options`` are ``LAMCTSOptimizer``'s (``solver``, ``preset``,
    ``cp``, ``leaf_size``, ...). Returns ``x``, ``fun`` (best point and value), ``nfev``, ``nfail``,
    ``history_x``, ``history_y`` and ``optimizer`` (for its tree and diagnostics).

    ``journal``: a file path. Every evaluation is written to that SQLite journal as it completes, and a call
    with the same journal (after a crash, or with a larger ``budget``) replays the journalled values into a fresh
    optimiser instead of calling ``fun`` again, then goes on: LA-MCTS is deterministic given its seed and the
    values told (if it no longer is, the rest of the journal is told as observations, with a warning). The journal
    remembers the bounds, seed, batch shape and options, and refuses a call that differs.
    ``callback`` sees only new evaluations.
    """
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        lb, ub = np.broadcast_arrays(np.atleast_1d(np.asarray(bounds.lb, dtype=np.float64)),
                                     np.atleast_1d(np.asarray(bounds.ub, dtype=np.float64)))
        bounds = np.column_stack([lb, ub])
    b = np.asarray(bounds, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 2:
        raise NasagentError(f"bounds must be a list of (low, high) pairs, got an array of shape {b.shape}")
    unknown, allowed = _unknown_options(options, fixed=("batch_size",))
    if unknown:  # e.g. scipy's maxiter: the budget is ``budget``
        raise NasagentError(f"minimize has no option {unknown[0]!r} (the evaluation budget is budget=); LA-MCTS options: "
                            f"{', '.join(allowed)}")
    if not callable(fun):
        raise NasagentError("minimize needs a callable fun(x) -> float")
    if int(budget) < 1 or int(workers) < 1:
        raise NasagentError(f"budget and workers must be >= 1, got {budget} and {workers}")
    opt = LAMCTSOptimizer(b[:, 0], b[:, 1], seed=seed, minimize=True, batch_size=batch_size, **options)
    per_batch = max(int(batch_size), int(workers))
    log = None if journal is None else _MinimizeJournal(journal, {"bounds": b.tolist(), "seed": int(seed),
                                                                   "batch_size": int(batch_size),
                                                                   "points_per_batch": per_batch, "options": options})
    xs, ys, nfail = [], [], 0

    def call(x):
        try:
            y = fun(x.copy())
        except Exception:  # a failed evaluation, as a crashed trial in a search
            return None
        if y is None:
            return None
        try:
            y = float(y)
        except (TypeError, ValueError):
            raise NasagentError(f"fun must return a number, got {type(y).__name__}") from None
        if not math.isfinite(y):
            raise NasagentError(f"fun returned {y} at x={x.tolist()}; return None (or raise) for a failed evaluation")
        return y

    pool = None
    if int(workers) > 1:
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(int(workers))

    def evaluate(number_and_x) -> tuple[float | None, bool]:
        """(value, whether ``fun`` was called for it)."""
        number, x = number_and_x
        if log is not None and log.has(number):
            return log.replay(number), False
        y = call(x)
        if log is not None:
            log.record(number, x, y)
        return y, True

    def add(x, y) -> None:
        nonlocal nfail
        if y is None:
            nfail += 1
        else:
            xs.append(x)
            ys.append(y)

    def settle(batch, first: int) -> None:
        """Evaluate (or replay) the asked ``(token, x)`` pairs as evaluations ``first``, ``first + 1``, ... and tell
        them in order."""
        jobs = [(first + j, x) for j, (_, x) in enumerate(batch)]
        values = list(pool.map(evaluate, jobs)) if pool else [evaluate(job) for job in jobs]
        for (token, x), (y, fresh) in zip(batch, values):
            opt.tell_token(token, x, None if y is None else -y)
            add(x, y)
            if callback is not None and fresh:
                callback(x, y)

    try:
        while len(xs) + nfail < int(budget):
            n = min(per_batch, int(budget) - len(xs) - nfail)
            first = len(xs) + nfail
            asked = [opt.ask_token() for _ in range(n)]
            j0 = None if log is None else log.first_divergence(first, [x for _, x in asked])
            if j0 is None:
                settle(asked, first)
                continue
            settle(asked[:j0], first)  # the points before the first that differs still replay
            # the rest of the journal (within the budget) as plain observations, told without a token so that no
            # asked point is taken for one of them
            for x, y in log.take_rest(first + j0, limit=int(budget) - first - j0):
                opt.tell_token(None, x, None if y is None else -y)
                add(x, y)
            first = len(xs) + nfail
            settle(asked[j0:][:max(0, int(budget) - first)], first)  # points asked past the budget stay unevaluated
    finally:
        if pool is not None:
            pool.shutdown()
        opt.close()
        if log is not None:
            log.close()
    if not ys:
        raise NasagentError(f"every one of the {nfail} evaluations failed (fun returned None or raised)")
    i = int(np.argmin(ys))
    return MinimizeResult(x=xs[i], fun=ys[i], nfev=len(xs) + nfail, nfail=nfail, history_x=np.array(xs),
                          history_y=np.array(ys), optimizer=opt, replayed=0 if log is None else log.replayed)


def read_minimize_journal(path) -> MinimizeResult | None:
    """What a ``minimize(..., journal=path)`` run has evaluated so far, read without locking it (it may still be
    running): ``x``, ``fun``, ``nfev``, ``nfail``, ``history_x``, ``history_y`` and ``settings``; None when
    ``path`` is a nasagent journal that ``minimize`` did not write."""
    from nasagent.runtime.journal import Journal

    journal = Journal(path, create=False)
    try:
        settings = journal.get_meta("minimize")
        if settings is None:
            return None
        rows = [r for r in journal.trials() if r.status != "running"]
    finally:
        journal.close()
    done = [(_row_point(r), _row_value(r)) for r in rows]
    xs = [x for x, y in done if y is not None]
    ys = [y for _, y in done if y is not None]
    i = int(np.argmin(ys)) if ys else None
    return MinimizeResult(x=None if i is None else xs[i], fun=None if i is None else ys[i], nfev=len(done),
                          nfail=len(done) - len(ys), history_x=np.array(xs), history_y=np.array(ys), settings=settings)


def _row_point(row) -> np.ndarray:
    """The point of a journal row ``minimize`` wrote (its ``arch`` is the point as a JSON list)."""
    return np.asarray(json.loads(row.arch), dtype=np.float64)


def _row_value(row) -> float | None:
    """The value of a journal row ``minimize`` wrote; None for a failed evaluation."""
    return row.metrics.get("value") if row.status == "ok" else None


class _MinimizeJournal:
    """``minimize``'s evaluations in a nasagent SQLite journal (one trial row per evaluation, written the moment
    it returns), so that a killed ``minimize`` loses nothing and a later call with the same journal replays it."""

    def __init__(self, path, setting: dict):
        import threading

        from nasagent.runtime.journal import Journal

        try:
            # as it will read back: tuples become lists, numpy numbers plain ones
            setting = json.loads(json.dumps(setting, default=lambda v: v.tolist() if isinstance(v, (np.ndarray, np.generic)) else
                                            json.JSONEncoder().default(v)))
        except (TypeError, ValueError) as e:
            raise NasagentError(f"minimize(journal=...) stores its options in the journal, and one of them is not "
                                f"plain data ({e}); pass numbers, strings and lists") from None
        self.path = str(path)
        if self.path.strip() in ("", ":memory:"):
            raise NasagentError(f"minimize(journal=...) needs a file path, got {path!r}; leave journal out for no journal")
        self.journal = Journal(self.path)
        try:
            if self.journal.get_meta("config") is not None:
                raise NasagentError(f"{self.path} is the journal of a 'nasagent search' run, not of minimize; continue "
                                    "it with 'nasagent search --resume DIR' or give minimize a new journal path")
            self.journal.lock(advice="or give minimize another journal path")
            stored = self.journal.get_meta("minimize")
            if stored is None:
                self.journal.set_meta("minimize", setting)
            elif stored != setting:
                diff = [k for k in setting if stored.get(k) != setting[k]]
                raise NasagentError(f"{self.path} holds a minimize run with other settings ({', '.join(diff)} differ: "
                                    f"{ {k: stored.get(k) for k in diff} }); call minimize with those, or give it a new "
                                    "journal path")
            self.rows = {r.number: r for r in self.journal.trials()}
        except BaseException:
            self.journal.close()
            raise
        self.replayed = 0
        self.replaying = True  # the optimiser retraces the journal; False once it asked for another point
        self.shift = 0  # row number - evaluation index of new rows once it stopped retracing
        self.lock = threading.Lock()

    def has(self, number: int) -> bool:
        """Whether evaluation ``number`` is journalled and can be replayed."""
        row = self.rows.get(number)
        return self.replaying and row is not None and row.status != "running"

    def _point(self, number: int) -> np.ndarray:
        return _row_point(self.rows[number])

    def _value(self, number: int) -> float | None:
        return _row_value(self.rows[number])

    def first_divergence(self, first: int, points: list[np.ndarray]) -> int | None:
        """The position in ``points`` (evaluations ``first``, ``first + 1``, ...) of the first whose journal row
        holds another point, or None. A mismatch means another nasagent or library version, or a solver whose
        floating point differs between machines. Rows left running by a kill are compared too: their number must
        not be reused for another point."""
        if not self.replaying:
            return None
        for j, x in enumerate(points):
            if first + j in self.rows and not np.array_equal(self._point(first + j), x):
                return j
        return None

    def take_rest(self, first: int, limit: int) -> list[tuple[np.ndarray, float | None]]:
        """Up to ``limit`` journalled evaluations from ``first`` on, and stop replaying: later evaluations get new
        rows."""
        rest = sorted(k for k in self.rows if k >= first and self.has(k))[:max(0, limit)]
        logging.getLogger("nasagent").warning(
            "%s: from evaluation %d on, the optimiser asks for other points than the journal holds; its %d remaining "
            "evaluations are told as plain observations and the search goes on from there", self.path, first, len(rest))
        taken = [(self._point(k), self._value(k)) for k in rest]
        self.replayed += len(taken)
        self.replaying = False
        self.shift = max(self.rows) + 1 - (first + len(taken))  # new rows go after every journalled one
        return taken

    def replay(self, number: int) -> float | None:
        """The journalled value of evaluation ``number`` (``first_divergence`` checked that it was made at the asked
        point)."""
        with self.lock:
            self.replayed += 1
        return self._value(number)

    def record(self, number: int, x: np.ndarray, y: float | None) -> None:
        result = Result(metrics={} if y is None else {"value": y}, score=None if y is None else -y,
                        status="failed" if y is None else "ok", error="fun returned None or raised" if y is None else None)
        number += self.shift
        with self.lock:  # worker threads write one at a time (the journal's event counter is not atomic)
            if number in self.rows:  # asked, then killed before its value was written: evaluated again
                self.journal.record_start(number)
            else:
                self.journal.record_ask(number, f"x{number}", json.dumps(x.tolist()), None, {}, started=True)
            self.journal.record_tell(number, result.status, result, counted=True, sample=number + 1)

    def close(self) -> None:
        self.journal.close()
