"""Local solvers that LA-MCTS runs inside a selected region, behind one ask/tell interface.

A solver proposes points in the problem's own coordinates and is told their scores (maximised; ``None`` for a
failed evaluation). ``ask`` always returns a point, so it may be called several times before ``tell`` (batch or
parallel evaluation). ``done`` tells LA-MCTS to rebuild its tree and select again. Every point a solver
proposes is evaluated by the runner, so all solver evaluations count against the search budget.

- ``TurboSolver``: TuRBO-1 (Eriksson et al. 2019) with the thesis' three modifications when given a region:
  its initial points are drawn inside the region, its trust region is centred on the best point inside the
  region, and its candidates are drawn from the trust region intersected with the region. It runs until the
  trust region collapses. GP: gpytorch, Matern-5/2 ARD with TuRBO's constraints, Adam on the marginal
  likelihood (50 steps, then ``gp_steps_warm`` steps warm-started from the last fit). Thompson sampling over
  ``n_cand`` candidates, by botorch's pathwise (Matheron) posterior samples or by exact joint samples.
- ``BOSolver``: GP + expected improvement as the LA-MCTS reference code does it: scikit-learn GP
  (Constant x Matern-5/2, alpha 0.01) on all samples, EI (xi = 0.001) maximised over candidates drawn inside
  the region by the Fig. 5.4 cube heuristic; ``batch_size`` proposals per LA-MCTS iteration.
- ``CMAESSolver``: CMA-ES from the ``cmaes`` package in the unit cube, started at the best point of the region,
  asked points resampled until they fall in the region; runs until CMA-ES stops or stalls.
- ``CobylaSolver``: scipy's COBYLA (Powell's linear-model trust region) in the unit cube, started at the best
  point of the region with a first step the size of the region; runs until COBYLA converges. Not in the thesis:
  a derivative-free local method for smooth valleys (Rosenbrock), where the GP and CMA-ES solvers crawl.
- ``RandomSolver``: ``batch_size`` uniform points in the region per iteration.
"""

from __future__ import annotations

import math
import queue
import threading
import weakref

import numpy as np

from nasagent.core import NasagentError
from nasagent.strategies.lamcts_tree import Region, sample_region

SOLVERS = ("turbo", "bo", "cmaes", "cobyla", "random")


class LocalSolver:
    """Base: bookkeeping of the points this solver proposed and the scores it was told."""

    def __init__(self, lower, upper, rng: np.random.Generator, region: Region | None = None):
        self.lower, self.upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        self.dim = self.lower.size
        self.rng = rng
        self.region = region or Region(self.lower, self.upper, [])
        self.n_asked = 0
        self.n_told = 0
        self.fallbacks = 0  # draws that could not stay inside the region

    def to_unit(self, X) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.lower) / (self.upper - self.lower)

    def from_unit(self, U) -> np.ndarray:
        return self.lower + np.clip(np.asarray(U, dtype=np.float64), 0.0, 1.0) * (self.upper - self.lower)

    def region_points(self, n: int, centres=None, method: str = "auto") -> np.ndarray:
        pts, how = sample_region(self.region, n, self.rng, method=method, centres=centres)
        if how != "region":
            self.fallbacks += 1
        return pts

    @property
    def done(self) -> bool:
        raise NotImplementedError

    def ask(self) -> np.ndarray:
        x = self._ask()
        self.n_asked += 1
        return x

    def tell(self, x, f: float | None) -> None:
        self.n_told += 1
        self._tell(np.asarray(x, dtype=np.float64), f)

    def _ask(self) -> np.ndarray:
        raise NotImplementedError

    def _tell(self, x: np.ndarray, f: float | None) -> None:
        pass

    def describe(self) -> dict:
        return {"asked": self.n_asked, "told": self.n_told, "fallbacks": self.fallbacks}


# -- random ------------------------------------------------------------------------------------------------------
class RandomSolver(LocalSolver):
    def __init__(self, lower, upper, rng, region=None, centres=None, batch_size: int = 1):
        super().__init__(lower, upper, rng, region)
        self.queue = list(self.region_points(batch_size, centres))
        self.batch_size = batch_size

    @property
    def done(self) -> bool:
        return not self.queue

    def _ask(self):
        if self.queue:
            return self.queue.pop(0)
        return self.region_points(1)[0]


def check_failtol(value, name: str) -> int | None:
    """A TuRBO failure tolerance: None (the reference rule) or a whole number >= 1 (3.0 from a config file is 3)."""
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(value) or not float(value).is_integer() or value < 1:
        raise NasagentError(f"{name} must be a whole number >= 1 (failed batches before the trust region halves), "
                            f"got {value!r}")
    return int(value)


# -- TuRBO-1 -----------------------------------------------------------------------------------------------------
class TurboSolver(LocalSolver):
    """One TuRBO-1 run (until its trust region collapses); defaults are the TuRBO reference code's."""

    length_init, length_min, length_max = 0.8, 0.5**7, 1.6
    succtol = 3

    def __init__(
        self,
        lower,
        upper,
        rng,
        region: Region | None = None,
        n_init: int = 30,
        batch_size: int = 1,
        init: str = "lhs",
        centres=None,
        prior: tuple[np.ndarray, np.ndarray] | None = None,
        n_cand: int | None = None,
        ts: str = "pathwise",
        gp_steps: int = 50,
        gp_steps_warm: int = 10,
        max_gp_points: int = 2000,
        hypers: dict | None = None,
        failtol: int | None = None,
    ):
        super().__init__(lower, upper, rng, region)
        if ts not in ("pathwise", "exact"):
            raise NasagentError(f"TuRBO ts must be 'pathwise' or 'exact', got {ts!r}")
        failtol = check_failtol(failtol, "TuRBO failtol")
        self.batch_size = max(1, int(batch_size))
        self.n_cand = int(n_cand or min(100 * self.dim, 5000))
        self.ts, self.gp_steps, self.gp_steps_warm, self.max_gp_points = ts, int(gp_steps), int(gp_steps_warm), int(max_gp_points)
        # the reference rule waits d / batch failed batches before halving the trust region (10 at 100-D, batch 10);
        # ``failtol`` sets it directly (not the reference: a region that shrinks faster, for small budgets in many dimensions)
        self.failtol = failtol if failtol is not None else math.ceil(max(4.0 / self.batch_size, self.dim / self.batch_size))
        self.length = self.length_init
        self.succ = self.fail = 0
        self.hypers = hypers  # warm start for the GP hyper-parameters (numpy arrays by parameter name)
        # points of this run (unit cube) and their scores; ``prior`` = in-region samples LA-MCTS already has
        self.U = np.zeros((0, self.dim))
        self.y = np.zeros(0)
        if prior is not None and len(prior[0]):
            self.U, self.y = self.to_unit(prior[0]), np.asarray(prior[1], dtype=np.float64)
        n_init = max(1, int(n_init))
        if init == "lhs":
            from scipy.stats import qmc

            U0 = qmc.LatinHypercube(self.dim, seed=rng).random(n_init)
            self.queue = list(self.from_unit(U0))
        else:  # inside the region (thesis modification a)
            self.queue = list(self.region_points(n_init, centres))
        self.init_left = len(self.queue)  # TuRBO adapts its trust region only after its initial design
        self.batch_best: list[float] = []
        self._model = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_model"] = None  # a fitted GP is rebuilt from the data and the warm-start hyper-parameters
        return state

    @property
    def done(self) -> bool:
        return self.length < self.length_min

    def _ask(self):
        if self.queue:
            return self.queue.pop(0)
        if len(self.y) < 2:
            return self.region_points(1)[0]
        self.queue = list(self._next_batch())
        return self.queue.pop(0)

    def _tell(self, x, f):
        if f is None:
            if self.init_left > 0:
                self.init_left -= 1
            return
        best_before = self.y.max() if len(self.y) else -np.inf
        self.U = np.vstack([self.U, self.to_unit(x)[None]])
        self.y = np.append(self.y, f)
        if self.init_left > 0:
            self.init_left -= 1
            return
        if not self.batch_best:  # a batch is judged against the best before it, not against its own members
            self.batch_ref = best_before
        self.batch_best.append(float(f))
        if len(self.batch_best) < self.batch_size:
            return
        new_best = max(self.batch_best)
        self.batch_best = []
        ref = getattr(self, "batch_ref", best_before)  # a state saved before batch_ref existed
        if new_best > ref + 1e-3 * abs(ref):
            self.succ, self.fail = self.succ + 1, 0
        else:
            self.succ, self.fail = 0, self.fail + 1
        if self.succ == self.succtol:
            self.length, self.succ = min(2.0 * self.length, self.length_max), 0
        elif self.fail == self.failtol:
            self.length, self.fail = self.length / 2.0, 0

    # the trust region step -----------------------------------------------------------------------------------
    def centre(self) -> np.ndarray:
        """The best point of this run that lies in the region (modification b); the best overall otherwise."""
        order = np.argsort(-self.y)
        inside = self.region.contains(self.from_unit(self.U[order])) if self.region.depth else np.ones(len(order), bool)
        pick = order[np.flatnonzero(inside)[0]] if inside.any() else order[0]
        return self.U[pick]

    def _next_batch(self) -> np.ndarray:
        import torch

        from nasagent.strategies._gp import fit_turbo_gp, thompson_argmax

        U, y = self.U, self.y
        if len(y) > self.max_gp_points:  # keep the best points: the GP only matters near the trust region
            keep = np.argsort(-y)[: self.max_gp_points]
            U, y = U[keep], y[keep]
        z = (y - y.mean()) / (y.std() or 1.0)
        model, self.hypers = fit_turbo_gp(U, z, self.hypers, self.gp_steps if self.hypers is None else self.gp_steps_warm)
        ls = model.covar_module.base_kernel.lengthscale.detach().numpy().ravel()
        xc = self.centre()
        w = ls / ls.mean()
        w = w / np.prod(np.power(w, 1.0 / len(w)))
        lb, ub = np.clip(xc - w * self.length / 2, 0, 1), np.clip(xc + w * self.length / 2, 0, 1)
        cand = self._candidates(xc, lb, ub)
        seed = int(self.rng.integers(2**31 - 1))
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            pick = thompson_argmax(model, cand, self.batch_size, exact=self.ts == "exact")
        return self.from_unit(cand[pick])

    def _candidates(self, xc, lb, ub) -> np.ndarray:
        from scipy.stats import qmc

        sob = qmc.Sobol(self.dim, scramble=True, seed=self.rng).random_base2(math.ceil(math.log2(self.n_cand)))[: self.n_cand]
        pert = lb + (ub - lb) * sob
        prob = min(20.0 / self.dim, 1.0)
        mask = self.rng.random((self.n_cand, self.dim)) <= prob
        empty = np.flatnonzero(~mask.any(axis=1))
        mask[empty, self.rng.integers(self.dim, size=empty.size)] = True
        cand = np.where(mask, pert, xc)
        if self.region.depth:  # modification c: the trust region intersected with the region
            inside = self.region.contains(self.from_unit(cand))
            if inside.sum() >= self.batch_size:
                cand = cand[inside]
            else:
                self.fallbacks += 1
        return cand

    def describe(self) -> dict:
        return {**super().describe(), "length": self.length, "points": int(len(self.y))}


# -- GP-EI BO (the LA-MCTS reference solver) -------------------------------------------------------------------------
class BOSolver(LocalSolver):
    def __init__(
        self,
        lower,
        upper,
        rng,
        region: Region | None = None,
        data: tuple[np.ndarray, np.ndarray] | None = None,
        pending: np.ndarray | None = None,
        centres=None,
        batch_size: int = 1,
        n_cand: int = 10_000,
        xi: float = 0.001,
        max_gp_points: int = 1000,
        gp_maxiter: int = 50,
        theta: np.ndarray | None = None,
    ):
        super().__init__(lower, upper, rng, region)
        self.theta = theta
        X, f = data if data is not None else (np.zeros((0, self.dim)), np.zeros(0))
        if len(f) < 2:
            self.queue = list(self.region_points(batch_size, centres))
        else:
            self.queue = list(self._propose(X, f, pending, centres, batch_size, n_cand, xi, max_gp_points, gp_maxiter))

    @property
    def done(self) -> bool:
        return not self.queue

    def _ask(self):
        return self.queue.pop(0) if self.queue else self.region_points(1)[0]

    def _propose(self, X, f, pending, centres, q, n_cand, xi, max_points, maxiter):
        from scipy.stats import norm

        from nasagent.strategies._gp import fit_sklearn_gp

        U, y = self.to_unit(X), np.asarray(f, dtype=np.float64)
        if len(y) > max_points:
            keep = np.argsort(-y)[:max_points]
            U, y = U[keep], y[keep]
        if pending is not None and len(pending):  # constant liar: pending points count as the worst score seen
            U = np.vstack([U, self.to_unit(pending)])
            y = np.append(y, np.full(len(pending), y.min()))
        gp, self.theta = fit_sklearn_gp(U, y, self.theta, maxiter)
        cand = self.region_points(n_cand, centres, method="cube" if self.region.depth else "rejection")
        if len(cand) == 0:
            cand = self.rng.uniform(self.lower, self.upper, size=(n_cand, self.dim))
        Uc = self.to_unit(cand)
        mu, sd = gp.predict(Uc, return_std=True)
        best = gp.predict(U).max()
        imp = mu - best - xi
        with np.errstate(divide="ignore", invalid="ignore"):
            z = imp / sd
            ei = np.where(sd > 0, imp * norm.cdf(z) + sd * norm.pdf(z), 0.0)
        order = np.argsort(-ei)[:q]
        return cand[order]


# -- CMA-ES ---------------------------------------------------------------------------------------------------------
class CMAESSolver(LocalSolver):
    """One CMA-ES run in the unit cube. ``patience``: generations without improvement before it is done."""

    def __init__(
        self,
        lower,
        upper,
        rng,
        region: Region | None = None,
        mean: np.ndarray | None = None,
        sigma: float = 0.25,
        popsize: int | None = None,
        patience: int = 10,
        max_evals: int | None = None,
        region_tries: int = 50,
    ):
        from cmaes import CMA

        super().__init__(lower, upper, rng, region)
        m = np.full(self.dim, 0.5) if mean is None else np.clip(self.to_unit(mean), 1e-6, 1 - 1e-6)
        bounds = np.column_stack([np.zeros(self.dim), np.ones(self.dim)])
        self.cma = CMA(mean=m, sigma=float(sigma), bounds=bounds, seed=int(rng.integers(2**31 - 1)), population_size=popsize)
        self.patience, self.max_evals, self.region_tries = int(patience), max_evals, int(region_tries)
        self.members: list[np.ndarray] = []  # the current generation's points (unit cube), as CMA-ES drew them
        self.generation: dict[int, float | None] = {}  # index in ``members`` -> score told
        self.best = -np.inf
        self.stall = 0
        self._stop = False

    @property
    def done(self) -> bool:
        return self._stop or (self.max_evals is not None and self.n_asked >= self.max_evals)

    # cmaes' CMA drops its random generator when pickled (and deep-copied), drawing a fresh unseeded one, and
    # stores its covariance as one triangle (mirrored back, it can differ in the last bit): a snapshot keeps the
    # generator's state and the exact covariance beside it, so a resumed run samples as an uninterrupted one
    def __getstate__(self) -> dict:
        return {**self.__dict__, "_cma_rng": self.cma._rng.get_state(), "_cma_C": np.array(self.cma._C)}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        rng_state, cov = state.pop("_cma_rng", None), state.pop("_cma_C", None)
        if "asked_in_gen" in state:  # saved before members were tracked: its open generation cannot be finished
            state.pop("asked_in_gen")
            state.update(members=[], generation={}, _stop=True)  # LA-MCTS starts a fresh solver
        self.__dict__.update(state)
        if rng_state is not None:
            self.cma._rng = np.random.RandomState()
            self.cma._rng.set_state(rng_state)
        if cov is not None:
            self.cma._C = cov

    def _ask(self):
        if len(self.members) >= self.cma.population_size:  # generation full, results pending: an extra point
            return self.region_points(1)[0]
        for _ in range(self.region_tries):
            u = self.cma.ask()
            if not self.region.depth or self.region.contains(self.from_unit(u)[None])[0]:
                break
        else:
            self.fallbacks += 1
        self.members.append(np.asarray(u, dtype=np.float64))
        return self.from_unit(u)

    def _member(self, x) -> int | None:
        """Which untold member of the generation ``x`` is (within rounding), or None for an extra point: CMA-ES
        may only learn from its own draws, whatever order results come back in."""
        u = self.to_unit(x)
        for i, m in enumerate(self.members):  # (a draw is handed out clipped to the box)
            if i not in self.generation and np.allclose(u, np.clip(m, 0.0, 1.0), rtol=1e-6, atol=1e-9):
                return i
        return None

    def _tell(self, x, f):
        i = self._member(x)
        if i is None:
            return  # an extra point: its score goes to LA-MCTS only
        self.generation[i] = f
        if len(self.generation) < self.cma.population_size:
            return
        ok = [v for v in self.generation.values() if v is not None]
        worst = min(ok) if ok else 0.0
        # cmaes minimises; a failed evaluation counts as the worst of its generation
        scores = [self.generation[i] for i in range(len(self.members))]
        self.cma.tell([(m, -(v if v is not None else worst)) for m, v in zip(self.members, scores)])
        gen_best = max(ok) if ok else -np.inf
        if gen_best > self.best + 1e-9 * max(1.0, abs(self.best) if math.isfinite(self.best) else 1.0):
            self.best, self.stall = gen_best, 0
        else:
            self.stall += 1
        self.members, self.generation = [], {}
        if self.cma.should_stop() or self.stall >= self.patience:
            self._stop = True


# -- COBYLA ---------------------------------------------------------------------------------------------------------
COBYLA_RHOEND = 1e-6  # the step at which a COBYLA run ends (unit-cube coordinates)
#: how a COBYLA run keeps to the unit cube: the box's faces as COBYLA constraints (the default), or no constraints
#: and every point clipped into the cube before it is evaluated (as nevergrad's COBYLA; compared in docs/lamcts.md)
COBYLA_BOUNDS = ("constraints", "clip")
_FINISHED = object()  # COBYLA returned: no more points
_STOP = object()  # told to the COBYLA thread when its solver is dropped mid-run


class _Stopped(Exception):
    pass


def _run_cobyla(u0, rhobeg, rhoend, max_evals, asks: queue.Queue, tells: queue.Queue, bounds: str = "constraints") -> None:
    """scipy's COBYLA, driven by the queues: each point it wants goes out on ``asks`` (clipped into the cube), its
    value comes back on ``tells``. Runs in a thread of its own, so that a callback-driven optimiser can serve
    ask/tell. ``bounds="clip"`` gives COBYLA no constraints: it sees the clipped point's value as its own."""
    from scipy.optimize import minimize

    def objective(u):
        asks.put(np.clip(u, 0.0, 1.0))
        value = tells.get()
        if value is _STOP:
            raise _Stopped
        return value

    try:
        box = [(0.0, 1.0)] * len(u0) if bounds == "constraints" else None
        minimize(objective, u0, method="COBYLA", bounds=box,
                 options={"rhobeg": rhobeg, "tol": rhoend, "maxiter": max_evals})
    except _Stopped:
        return
    except Exception as e:  # noqa: BLE001 - handed to the solver, which raises it as a NasagentError
        asks.put(e)
        return
    asks.put(_FINISHED)


class CobylaSolver(LocalSolver):
    """One COBYLA run in the unit cube from ``start`` with first step ``rhobeg``, until its step falls below
    ``rhoend`` or it made ``max_evals`` evaluations.

    COBYLA asks one point at a time; points asked while one is pending are extra draws in the region (their
    values go to LA-MCTS only). Its steps are not confined to the region: the region chooses where it starts.
    COBYLA's first point is ``start`` itself: given ``start_value`` (its known score), the solver answers it
    without spending an evaluation. A failed evaluation is told to COBYLA as the worst value of the run.
    ``bounds`` (``COBYLA_BOUNDS``): the cube's faces as constraints, or none, with points clipped into the cube.
    COBYLA is deterministic, so a snapshot keeps only the values told; a restored solver replays them into a
    fresh COBYLA run and goes on exactly where it was. ``close`` stops the thread (a later ask replays).
    """

    def __init__(self, lower, upper, rng, region: Region | None = None, start: np.ndarray | None = None,
                 start_value: float | None = None, rhobeg: float = 0.25, rhoend: float = COBYLA_RHOEND,
                 max_evals: int = 100_000, bounds: str = "constraints"):
        super().__init__(lower, upper, rng, region)
        if not 0 < rhoend < rhobeg:
            raise NasagentError(f"COBYLA needs 0 < rhoend < rhobeg, got rhoend={rhoend}, rhobeg={rhobeg}")
        self.bounds = check_cobyla_bounds(bounds)
        self.u0 = np.full(self.dim, 0.5) if start is None else np.clip(self.to_unit(start), 0.0, 1.0)
        self.start_value = None if start is None or start_value is None else float(start_value)
        self.rhobeg, self.rhoend, self.max_evals = float(rhobeg), float(rhoend), int(max_evals)
        self.values: list[float] = []  # minimised values told to COBYLA, in order (the replay log)
        self.waiting: np.ndarray | None = None  # the point COBYLA waits on (asked, not yet told), in the box
        self.upcoming = None  # the next point COBYLA wants (or _FINISHED), fetched to answer ``done``
        self._thread = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state.update(_thread=None, _asks=None, _tells=None)
        if state["upcoming"] is _FINISHED:
            state["upcoming"] = "finished"
        return state

    def __setstate__(self, state):
        if isinstance(state.get("upcoming"), str):
            state["upcoming"] = _FINISHED
        self.__dict__.update(state)

    def _cobyla_tells(self) -> queue.Queue:
        """The queue that takes COBYLA's values; starts the COBYLA thread (replaying the told values) if needed."""
        if self._thread is None:
            self._asks, self._tells = queue.Queue(), queue.Queue()
            self._thread = threading.Thread(target=_run_cobyla, daemon=True, name="nasagent-cobyla",
                                            args=(self.u0, self.rhobeg, self.rhoend, self.max_evals, self._asks, self._tells,
                                                  getattr(self, "bounds", "constraints")))  # older snapshots: constraints
            self._thread.start()
            weakref.finalize(self, self._tells.put, _STOP)  # a dropped solver stops its thread
            for v in self.values:
                self._asks.get()
                self._tells.put(v)
            if self.waiting is not None or self.upcoming is not None:
                self._asks.get()  # the point that was outstanding when the snapshot was taken
        return self._tells

    def _next_point(self):
        tells = self._cobyla_tells()
        item = self._asks.get()
        if isinstance(item, BaseException):
            raise NasagentError(f"COBYLA stopped with an error: {item!r}") from item
        if not self.values and self.start_value is not None and item is not _FINISHED and np.allclose(item, self.u0):
            self.values.append(-self.start_value)  # the start, already evaluated: answered here
            tells.put(self.values[-1])
            return self._next_point()
        return item

    def close(self) -> None:
        """Stop the COBYLA thread now (rather than when the solver is garbage-collected)."""
        if self._thread is not None:
            self._tells.put(_STOP)
            self._thread = None

    @property
    def done(self) -> bool:
        if self.waiting is not None:
            return False
        if self.upcoming is None:
            self.upcoming = self._next_point()
        return self.upcoming is _FINISHED

    def _ask(self):
        if self.waiting is not None or self.done:  # COBYLA is waiting for a value, or finished: an extra point
            return self.region_points(1)[0]
        self.waiting, self.upcoming = self.from_unit(self.upcoming), None
        return self.waiting.copy()

    def _tell(self, x, f):
        scale = np.abs(x) + (self.upper - self.lower)
        if self.waiting is None or (np.abs(x - self.waiting) > 1e-9 * scale).any():
            return  # an extra point
        tells = self._cobyla_tells()
        self.waiting = None
        if f is None and not self.values:  # the first evaluation failed: nothing to compare with, end this run
            self.upcoming = _FINISHED
            tells.put(_STOP)
            return
        self.values.append(max(self.values) if f is None else -float(f))  # COBYLA minimises; failed = worst
        tells.put(self.values[-1])


def check_cobyla_bounds(bounds) -> str:
    if bounds not in COBYLA_BOUNDS:
        raise NasagentError(f"COBYLA bounds must be one of {', '.join(map(repr, COBYLA_BOUNDS))}, got {bounds!r}")
    return bounds


def check_solver(name: str) -> str:
    if name not in SOLVERS:
        raise NasagentError(f"unknown LA-MCTS solver {name!r}; solvers: {', '.join(SOLVERS)}")
    return name
