"""Run trials as Ray tasks: one machine or many, with retries after worker deaths and trial timeouts.

Each trial is one Ray task that asks for ``cpus_per_trial`` / ``gpus_per_trial``; results stream back in
completion order and the runner asks the strategy for a new trial as soon as a slot frees up. The runner's
journal, on the driver, stays the only record of the run: a crashed driver resumes from it (trials that
were running are evaluated again), and this executor never writes anything itself.

Faults are handled here rather than by Ray's own task retries, so that each retry is visible (the runner
journals it as another attempt) and the limit is ours:

- a worker process or node that dies mid-trial makes Ray raise a system error; the trial is submitted
  again up to ``max_retries`` times, then handed back as a failed result (the search goes on);
- a trial running longer than ``trial_timeout`` seconds (counted from dispatch) is cancelled with
  ``ray.cancel(force=True)``, which kills its worker process, and is handed back as failed, not retried.

Every Ray worker builds the evaluator once, from the picklable ``factory`` (or from the evaluator object
itself when there is none), and keeps it for the following trials of the run.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import ray
import ray.exceptions as rex

from nasagent.core import Budget, NasagentError, Result, Trial
from nasagent.runtime.executors import Executor, safe_evaluate

log = logging.getLogger("nasagent")

#: Ray errors that mean "the process or machine running the trial went away": worth another attempt.
_LOST = tuple(
    getattr(rex, name)
    for name in (
        "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "OutOfMemoryError", "ObjectLostError",
        "RaySystemError",
    )
    if hasattr(rex, name)
)

# -- worker side ----------------------------------------------------------------------------------------
_EVALUATORS: dict[str, object] = {}  # run token -> evaluator, in each Ray worker process
_KEEP = 2  # evaluators kept per worker when one cluster serves several runs


def _evaluator(token: str, source: list, is_factory: bool):
    ev = _EVALUATORS.get(token)
    if ev is None:
        obj = ray.get(source[0])  # the ref is wrapped in a list so Ray does not fetch it on every call
        ev = obj() if is_factory else obj
        while len(_EVALUATORS) >= _KEEP:
            _EVALUATORS.pop(next(iter(_EVALUATORS)))
        _EVALUATORS[token] = ev
    return ev


@ray.remote(max_retries=0)
def _run_trial(token: str, source: list, is_factory: bool, arch, budget, hint) -> Result:
    return safe_evaluate(_evaluator(token, source, is_factory), arch, budget, hint)


@ray.remote(max_retries=0)
def _warm_up(token: str, source: list, is_factory: bool) -> tuple[str, int]:
    _evaluator(token, source, is_factory)
    return socket.gethostname(), os.getpid()


# -- driver side ----------------------------------------------------------------------------------------
@dataclass
class _Running:
    trial: Trial
    submitted: float  # of the current attempt
    first_submitted: float  # of the first attempt
    attempt: int


class RayExecutor(Executor):
    """Trials as Ray tasks on a local cluster (started here) or an existing one (``address``).

    ``workers`` is how many trials run at once; it is lowered, with a warning, to what the cluster's CPUs and
    GPUs can hold at ``cpus_per_trial`` / ``gpus_per_trial`` so that a trial never waits for resources (its
    timeout clock starts at dispatch). A local cluster gets ``num_cpus = ceil(workers * cpus_per_trial)``
    logical CPUs (default), so sleep- or GPU-bound trials may outnumber the machine's cores. If Ray is already
    initialised in this process the executor uses that cluster and leaves it running.
    """

    def __init__(
        self,
        workers: int = 1,
        factory: Callable[[], object] | None = None,
        address: str | None = None,
        cpus_per_trial: float = 1.0,
        gpus_per_trial: float = 0.0,
        trial_timeout: float | None = None,
        max_retries: int = 2,
        num_cpus: int | None = None,
        warm_up: bool = True,
        start_timeout: float = 300.0,
    ):
        if int(workers) < 1:
            raise NasagentError(f"the Ray executor needs workers >= 1, got {workers}")
        if not cpus_per_trial >= 0 or not gpus_per_trial >= 0 or (cpus_per_trial == 0 and gpus_per_trial == 0):
            raise NasagentError(
                "cpus_per_trial and gpus_per_trial must be >= 0 and not both 0, "
                f"got {cpus_per_trial} / {gpus_per_trial}"
            )
        if trial_timeout is not None and not trial_timeout > 0:
            raise NasagentError(f"trial_timeout must be > 0 seconds, got {trial_timeout}")
        if int(max_retries) < 0:
            raise NasagentError(f"max_retries must be >= 0, got {max_retries}")
        self.workers = int(workers)
        self.capacity = self.workers
        self.factory = factory
        self.address = address
        self.cpus_per_trial = float(cpus_per_trial)
        self.gpus_per_trial = float(gpus_per_trial)
        self.trial_timeout = None if trial_timeout is None else float(trial_timeout)
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.warm_up = warm_up
        self.start_timeout = start_timeout
        self.running: dict[ray.ObjectRef, _Running] = {}
        self.owns_cluster = False
        self.startup_seconds = 0.0  # cluster start (or join) plus warm-up, measured in ``start``
        self.worker_processes: set[tuple[str, int]] = set()  # (host, pid) that answered the warm-up
        self.n_retries = 0
        self.n_timeouts = 0
        self._token = ""
        self._source: list = []
        self._is_factory = False

    # -- life cycle ---------------------------------------------------------------------------------------
    def start(self, evaluator, budget: Budget | None = None) -> None:
        super().start(evaluator, budget)
        t0 = time.perf_counter()
        try:
            self._connect()
            self._fit_capacity()
            self._token = uuid.uuid4().hex
            is_factory = self.factory is not None
            self._source = [ray.put(self.factory if is_factory else evaluator)]
            self._is_factory = is_factory
            if self.warm_up:
                self._warm()
        except BaseException:
            self.shutdown()
            raise
        self.startup_seconds = time.perf_counter() - t0

    def _connect(self) -> None:
        if ray.is_initialized():
            return
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        kwargs = {"include_dashboard": False, "logging_level": logging.WARNING}
        if address is None:
            kwargs["num_cpus"] = self.num_cpus or max(1, math.ceil(self.workers * self.cpus_per_trial))
        else:
            _check_reachable(address)
        try:
            # "local": a new cluster of our own, never one left behind by `ray start` (its num_cpus would be refused)
            ray.init(address=address or "local", **kwargs)
        except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
            where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
            raise NasagentError(f"could not start or join {where}: {str(e).rstrip('.')}. {_ADDRESS_HELP}") from None
        self.owns_cluster = True

    def _fit_capacity(self) -> None:
        total = ray.cluster_resources()
        fits = []
        for name, need in (("CPU", self.cpus_per_trial), ("GPU", self.gpus_per_trial)):
            if need > 0:
                have = float(total.get(name, 0.0))
                fits.append(int(math.floor(have / need + 1e-9)))
                if fits[-1] == 0:
                    raise NasagentError(
                        f"each trial asks for {need:g} {name}(s) but the Ray cluster has {have:g}; "
                        f"lower --{name.lower()}s-per-trial or add machines with {name}s"
                    )
        fit = min(fits)
        if fit < self.workers:
            log.warning(
                "the Ray cluster holds %d trials at once (%s), not %d; running %d in parallel",
                fit, ", ".join(f"{k} {v:g}" for k, v in total.items() if k in ("CPU", "GPU")), self.workers, fit,
            )
        self.capacity = min(self.workers, fit)

    def _warm(self) -> None:
        """Build the evaluator on as many workers as will run trials, so start-up is not billed to trials."""
        warm = _warm_up.options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial)
        refs = [warm.remote(self._token, self._source, self._is_factory) for _ in range(self.capacity)]
        ready, not_ready = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout)
        for ref in not_ready:
            ray.cancel(ref, force=True)
        if not ready:
            raise NasagentError(
                f"no Ray worker started within {self.start_timeout:g} s; is the cluster busy or short of resources?"
            )
        for ref in ready:
            try:
                self.worker_processes.add(tuple(ray.get(ref)))
            except rex.RayTaskError as e:
                raise NasagentError(f"building the evaluator on a Ray worker failed: {_cause(e)}") from None
            except _LOST:
                continue  # a worker lost during warm-up is replaced by Ray when trials arrive

    def shutdown(self) -> None:
        for ref in list(self.running):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - the cluster may already be gone
                pass
        self.running.clear()
        if self.owns_cluster and ray.is_initialized():
            ray.shutdown()
        self.owns_cluster = False

    # -- trials ------------------------------------------------------------------------------------------
    def submit(self, trial: Trial) -> None:
        now = time.monotonic()
        self._submit(_Running(trial, now, now, 1))

    def _submit(self, run: _Running) -> None:
        name = f"nasagent-trial-{run.trial.number}"
        ref = _run_trial.options(num_cpus=self.cpus_per_trial, num_gpus=self.gpus_per_trial, name=name).remote(
            self._token, self._source, self._is_factory, run.trial.arch, self.trial_budget, run.trial.hint
        )
        self.running[ref] = run

    def wait(self) -> list[tuple[Trial, Result]]:
        if not self.running:
            raise NasagentError("RayExecutor.wait() called with no trial in flight")
        while True:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=self._time_to_deadline())
            if ready:  # collect everything else that is done too, without waiting
                ready, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
            out = [done for ref in ready if (done := self._collect(ref)) is not None]
            out += self._expire()
            if out:
                return out

    def _collect(self, ref) -> tuple[Trial, Result] | None:
        run = self.running.pop(ref)
        try:
            return run.trial, ray.get(ref)
        except _LOST as e:
            if run.attempt <= self.max_retries:
                self.n_retries += 1
                log.warning(
                    "trial %d lost its Ray worker (%s); retry %d of %d",
                    run.trial.number, type(e).__name__, run.attempt, self.max_retries,
                )
                if self.on_retry is not None:
                    self.on_retry(run.trial)
                self._submit(_Running(run.trial, time.monotonic(), run.first_submitted, run.attempt + 1))
                return None
            why = (
                f"the Ray worker evaluating this trial died {run.attempt} time(s) ({type(e).__name__}); "
                f"max_retries={self.max_retries}"
            )
            return run.trial, Result.failed(why, time.monotonic() - run.first_submitted)
        except rex.TaskCancelledError:
            why = "the Ray task was cancelled (by Ray, or by a KeyboardInterrupt inside the evaluator)"
            return run.trial, Result.failed(why, time.monotonic() - run.first_submitted)
        except rex.RayTaskError as e:  # an error outside the evaluator, e.g. while unpickling the trial
            return run.trial, Result.failed(f"Ray task error: {_cause(e)}", time.monotonic() - run.first_submitted)
        except rex.RayError as e:  # e.g. unschedulable, or a runtime environment that failed to set up
            why = f"Ray error: {type(e).__name__}: {e}"
            return run.trial, Result.failed(why, time.monotonic() - run.first_submitted)

    def _time_to_deadline(self) -> float | None:
        if self.trial_timeout is None:
            return None
        first = min(r.submitted for r in self.running.values())
        return max(0.0, first + self.trial_timeout - time.monotonic())

    def _expire(self) -> list[tuple[Trial, Result]]:
        if self.trial_timeout is None:
            return []
        now = time.monotonic()
        out = []
        for ref, run in list(self.running.items()):
            if now - run.submitted >= self.trial_timeout:
                ray.cancel(ref, force=True)  # kills the worker process, freeing its slot
                del self.running[ref]
                self.n_timeouts += 1
                msg = f"trial exceeded the trial timeout of {self.trial_timeout:g} s and was cancelled"
                out.append((run.trial, Result.failed(msg, now - run.first_submitted)))
        return out


_ADDRESS_HELP = "For --address give the HOST:PORT that 'ray start --head' printed (see docs/distributed.md)"


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds, not after Ray's minutes of reconnecting, when nothing listens at HOST:PORT."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise NasagentError(f"no Ray cluster answers at {address} ({e.strerror or e}). {_ADDRESS_HELP}") from None


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    if cause is not None:
        return f"{type(cause).__name__}: {cause}"
    lines = str(e).strip().splitlines()
    return lines[-1] if lines else type(e).__name__
