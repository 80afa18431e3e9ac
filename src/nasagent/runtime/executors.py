"""Executors run evaluations for the runner: inline (in this process) or in a pool of processes.

An executor takes trials with ``submit`` and hands back finished ones with ``wait`` (at least one, in
completion order, possibly out of submission order). Evaluator exceptions and dead workers become failed
results with a message; they never stop the search. The Ray executor lives in ``runtime/ray_executor.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable

from nasagent.core import Budget, NasagentError, Result, Trial


def safe_evaluate(evaluator, arch, budget: Budget | None, hint: dict | None) -> Result:
    """Call the evaluator, turning any exception or non-finite cost into a failed result."""
    t0 = time.perf_counter()
    try:
        result = evaluator(arch, budget, hint)
        if not isinstance(result, Result):
            return Result.failed(f"evaluator returned {type(result).__name__}, expected nasagent.Result", time.perf_counter() - t0)
        if result.cost is None or not math.isfinite(result.cost):
            result.cost = time.perf_counter() - t0
        return result
    except NasagentError as e:
        return Result.failed(str(e), time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - an evaluator bug must not end the search
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
        return Result.failed(f"{type(e).__name__}: {e}{where}", time.perf_counter() - t0)


class Executor(ABC):
    #: how many trials may be in flight at once
    capacity: int = 1
    #: called with a trial that the executor submits again after its worker died (the runner journals it)
    on_retry: Callable[[Trial], None] | None = None

    def start(self, evaluator, budget: Budget | None = None) -> None:
        self.evaluator = evaluator
        self.trial_budget = budget

    @abstractmethod
    def submit(self, trial: Trial) -> None: ...

    @abstractmethod
    def wait(self) -> list[tuple[Trial, Result]]:
        """Block until at least one submitted trial has finished; return the finished ones."""

    def shutdown(self) -> None:
        pass


class InlineExecutor(Executor):
    """Evaluates in the calling process. ``workers > 1`` keeps several trials *in flight* (asked, not yet
    told) while evaluating them one by one: a deterministic stand-in for a parallel cluster."""

    def __init__(self, workers: int = 1):
        self.capacity = max(1, int(workers))
        self.queue: deque[Trial] = deque()

    def submit(self, trial: Trial) -> None:
        self.queue.append(trial)

    def wait(self) -> list[tuple[Trial, Result]]:
        trial = self.queue.popleft()
        return [(trial, safe_evaluate(self.evaluator, trial.arch, self.trial_budget, trial.hint))]


# -- process pool ---------------------------------------------------------------------------------------
_WORKER_EVALUATOR = None
_WORKER_INIT_ERROR: str | None = None


def _init_worker(factory: Callable[[], object]) -> None:
    global _WORKER_EVALUATOR, _WORKER_INIT_ERROR
    _exit_with_parent()
    try:
        _WORKER_EVALUATOR = factory()
    except Exception as e:  # noqa: BLE001 - reported by start() and by each trial, not by a dying worker
        _WORKER_INIT_ERROR = f"{type(e).__name__}: {e}"


def _exit_with_parent() -> None:
    """End this worker when the search process dies (a killed driver's pool would otherwise live on, holding
    its evaluator's memory, until someone kills it by hand)."""
    import os
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="nasagent-parent-watch").start()


def _worker_init_error() -> str | None:
    return _WORKER_INIT_ERROR


def _run_in_worker(arch, budget, hint) -> Result:
    if _WORKER_INIT_ERROR is not None:
        return Result.failed(f"the evaluator could not be built in the worker process: {_WORKER_INIT_ERROR}")
    try:
        return safe_evaluate(_WORKER_EVALUATOR, arch, budget, hint)
    except SystemExit as e:  # the pool would re-raise it in the search process and end the search
        return Result.failed(f"the evaluator called sys.exit({e.code!r}) in a worker process")


class ProcessPoolExecutor(Executor):
    """A pool of ``workers`` processes, each building its own evaluator once from ``factory``.

    ``factory`` must be picklable (a module-level function or a ``functools.partial`` of one); the
    runner passes one that rebuilds the benchmark by name. A worker that dies fails its trial and the
    pool is rebuilt.
    """

    def __init__(self, workers: int = 2, factory: Callable[[], object] | None = None, start_method: str = "spawn"):
        self.capacity = max(1, int(workers))
        self.factory = factory
        self.start_method = start_method
        self.pool: cf.ProcessPoolExecutor | None = None
        self.futures: dict[cf.Future, tuple[Trial, int]] = {}  # -> (trial, generation of the pool running it)
        self.generation = -1

    def start(self, evaluator, budget: Budget | None = None) -> None:
        super().start(evaluator, budget)
        if self.factory is None:
            raise NasagentError("the process executor needs an evaluator factory (a picklable callable)")
        self._new_pool()
        try:
            error = self.pool.submit(_worker_init_error).result()
        except cf.process.BrokenProcessPool:
            error = "a worker process died while starting"
        if error is not None:
            self.shutdown()
            raise NasagentError(f"the process executor could not build the evaluator in a worker process ({error}); "
                                "check the benchmark's options, or try --executor inline to see the error in place")

    def _new_pool(self) -> None:
        self.generation += 1  # futures remember which pool ran them
        self.pool = cf.ProcessPoolExecutor(
            max_workers=self.capacity, mp_context=mp.get_context(self.start_method), initializer=_init_worker, initargs=(self.factory,)
        )

    def _replace_pool(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self._new_pool()

    def submit(self, trial: Trial) -> None:
        try:
            fut = self.pool.submit(_run_in_worker, trial.arch, self.trial_budget, trial.hint)
        except cf.process.BrokenProcessPool:
            # a worker died after the last wait() collected its results: the trials still on the old pool fail
            # when waited for; this one goes to a fresh pool
            self._replace_pool()
            fut = self.pool.submit(_run_in_worker, trial.arch, self.trial_budget, trial.hint)
        self.futures[fut] = (trial, self.generation)

    def wait(self) -> list[tuple[Trial, Result]]:
        done, _ = cf.wait(list(self.futures), return_when=cf.FIRST_COMPLETED)
        out = []
        broken = False
        for fut in done:
            trial, gen = self.futures.pop(fut)
            try:
                out.append((trial, fut.result()))
            except cf.process.BrokenProcessPool:
                broken = broken or gen == self.generation  # an old pool's failure was dealt with when it broke
                out.append((trial, Result.failed("a worker process of the pool died while this trial was in flight (the pool breaks as a whole)")))
            except Exception as e:  # noqa: BLE001 - e.g. an unpicklable result
                out.append((trial, Result.failed(f"{type(e).__name__}: {e}")))
        if broken:
            # every other future of a broken pool fails too: collect them, then start a fresh pool
            for fut, (trial, gen) in list(self.futures.items()):
                if gen != self.generation:
                    continue
                try:
                    out.append((trial, fut.result(timeout=0)))
                except Exception:  # noqa: BLE001
                    out.append((trial, Result.failed("the worker pool broke while this trial was running")))
                del self.futures[fut]
            self._replace_pool()
        return out

    def shutdown(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
