"""The contract of weight-sharing searches (DARTS, few-shot DARTS, PARSEC, TuNAS) and how the runner uses them.

A ``OneShotSearch`` trains in its own loop (``fit``), which must be resumable from ``checkpoint_dir``: calling
``fit`` again with the same directory continues where the last call stopped (after a crash, exactly; with a
larger budget, DARTS' and PARSEC's cosine schedule is stretched to the new total from the current epoch on,
while TuNAS keeps the schedule of its ``epochs``). It then ``propose``s final architectures; ``run_oneshot`` hands them to the ordinary runner, which
evaluates them with any evaluator (a table, or training from scratch) and journals them like any search.

Budgets for ``fit`` reuse ``nasagent.Budget`` with one reading shared by every weight-sharing search:
``evaluations`` = training epochs over the training split, ``seconds`` = wall time, ``cost`` = training
seconds. ``fit_limits`` turns a Budget into (epochs, seconds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from nasagent.core import Arch, Budget, NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Strategy


@runtime_checkable
class OneShotSearch(Protocol):
    """A search that trains shared weights, then proposes final candidates for the runner to evaluate."""

    space: object

    def fit(self, data, budget: Budget, checkpoint_dir: Path) -> None:
        """Train (resumably: state lives in ``checkpoint_dir``) until ``budget`` is spent."""

    def propose(self, n: int) -> list[Arch]:
        """The ``n`` best final architectures, best first (fewer if the search knows fewer)."""


def fit_limits(budget: Budget | int | None) -> tuple[int | None, float | None]:
    """(epochs, seconds) for a weight-sharing fit; an int means epochs."""
    if budget is None:
        raise NasagentError("a one-shot fit needs a budget: Budget(evaluations=EPOCHS) and/or Budget(seconds=S)")
    if isinstance(budget, int):
        budget = Budget(evaluations=budget)
    if not isinstance(budget, Budget):
        raise NasagentError(f"a one-shot fit budget must be a Budget or an int (epochs), got {budget!r}")
    seconds = [s for s in (budget.seconds, budget.cost) if s is not None]
    return (
        None if budget.evaluations is None else int(math.ceil(budget.evaluations)),
        min(seconds) if seconds else None,
    )


@dataclass
class Epoch:
    """One epoch of a weight-sharing search: its learning rate, the training split on the search's device, and
    the epoch's batches (one index array per stream, zipped: a step gets one batch of each)."""

    lr: float
    x: object
    y: object
    batches: list[tuple]
    started: float
    seconds_limit: float | None
    seconds_before: float
    stopped_after: int | None = None  # set by a ``train`` that stops early: the batches it finished
    first_step: int = 0  # the epoch's batches an earlier, time-limited call finished (``batches`` starts after them)

    def out_of_time(self) -> bool:
        """True once the wall-time budget is spent (a search may stop mid-epoch: see ``stop_after``)."""
        return self.seconds_limit is not None and self.seconds_before + time.perf_counter() - self.started >= self.seconds_limit

    def stop_after(self, done: int) -> bool:
        """Called after ``done`` of ``batches``: True once the time budget is spent, with ``stopped_after`` set, so
        that ``train`` stops there and a later call resumes the epoch at the next batch."""
        if not self.out_of_time():
            return False
        self.stopped_after = done
        return True


def run_epochs(search, data, budget: Budget | int, checkpoint: Path | None, streams: list[tuple],
               train: Callable[[Epoch], object], record: Callable[[Epoch, object], dict]) -> None:
    """The resumable epoch loop DARTS and PARSEC share (call it after ``search._setup(data)``).

    Restores ``checkpoint`` when it exists, then until the budget is spent: sets the cosine learning rate on
    ``search.optimizer``, draws each stream's seeded batch order (``streams``: (index array, stream id) pairs,
    so a resumed run draws the same batches), runs ``train(epoch)``, counts the epoch and its seconds, appends
    ``record(epoch, what train returned)`` to the history and checkpoints. A seconds budget may end an epoch
    early (``train`` sets ``epoch.stopped_after``): the history then gets a record marked ``partial``, the
    checkpoint keeps the batches done in ``search.epoch_step``, and a later call finishes that epoch's remaining
    batches, in the same order (on the same learning rate when it has the same epoch budget), before the next. ``search`` provides ``settings``,
    ``seed``, ``device``, ``optimizer``, ``epoch``, ``seconds``, ``history``, ``_save`` and ``_load`` (which keep
    ``epoch_step`` where a search can stop mid-epoch).
    """
    from nasagent.evaluation.networks import _torch
    from nasagent.evaluation.train import batch_order, cosine_lr

    torch = _torch()
    epochs, seconds = fit_limits(budget)
    if checkpoint is not None and checkpoint.exists():
        search._load(checkpoint)
    # the cosine schedule spans this call's epoch budget (else the search's epochs): callers lay it over what they
    # will train (few-shot children, a time-matched DARTS). A later call with a larger budget continues from the
    # current epoch on a schedule stretched to the new total, so 2 then 4 epochs is not one 4-epoch run.
    total = epochs if epochs is not None else search.settings.epochs
    x = torch.from_numpy(data.x_train).to(search.device)
    y = torch.from_numpy(data.y_train).to(search.device)
    while search.epoch < total and (seconds is None or search.seconds < seconds):
        started = time.perf_counter()
        lr = cosine_lr(search.settings, search.epoch, total)
        for group in search.optimizer.param_groups:
            group["lr"] = lr
        orders = [batch_order(len(idx), search.settings.batch_size, [search.seed, stream], search.epoch) for idx, stream in streams]
        batches = list(zip(*orders, strict=False))
        done_before = getattr(search, "epoch_step", 0)  # batches of this epoch an earlier, time-limited call finished
        epoch = Epoch(lr, x, y, batches[done_before:], started, seconds, search.seconds, first_step=done_before)
        out = train(epoch)
        _check_finite(search)  # before anything is recorded: the last good checkpoint must survive a divergence
        search.seconds += time.perf_counter() - started
        cut = epoch.stopped_after is not None and done_before + epoch.stopped_after < len(batches)
        if cut:  # the time budget ran out mid-epoch: keep the place, and stop
            search.epoch_step = done_before + epoch.stopped_after
        else:
            search.epoch += 1
            search.epoch_step = 0
        rec = record(epoch, out)
        if cut:  # numbered as the epoch will be when it completes, as the record that completes it
            rec = {**rec, "partial": True, **({"epoch": search.epoch + 1} if "epoch" in rec else {})}
        search.history.append(rec)
        if checkpoint is not None:
            search._save(checkpoint)
        if cut:
            break


def _check_finite(search) -> None:
    from nasagent.evaluation.networks import _torch
    from nasagent.evaluation.train import TrainingDiverged

    torch = _torch()
    net = getattr(search, "net", None)
    if net is None:
        return
    for name, t in [*net.named_parameters(), *net.named_buffers()]:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise TrainingDiverged(f"the search diverged in epoch {search.epoch + 1}: {name} became non-finite; lower the "
                                   "learning rate (lr=...) or keep gradient clipping on (the last checkpoint is kept)")


class ProposedArchitectures(Strategy):
    """A strategy that asks a fixed list of architectures in order (the proposals of a one-shot search),
    then reports the space exhausted. It lets the runner evaluate, journal and resume them."""

    def __init__(self, space, seed: int = 0, archs: list | None = None, hint: dict | None = None):
        super().__init__(space, seed)
        if not archs:
            raise NasagentError("ProposedArchitectures needs a non-empty list of architectures")
        self.archs = [space.format(space.validate(a)) for a in archs]
        self.hint = hint
        self._position = 0

    def _propose(self):
        if self._position >= len(self.archs):
            raise SpaceExhausted(f"all {len(self.archs)} proposed architectures were evaluated")
        arch = self.space.parse(self.archs[self._position])
        self._position += 1
        from nasagent.strategies.base import Proposal

        return Proposal(arch, hint=dict(self.hint) if self.hint else None)

    def _observe(self, trial: Trial, result: Result) -> None:
        pass


def run_oneshot(search: OneShotSearch, data, fit_budget, checkpoint_dir, evaluator, n: int = 1, objective=None, journal=None):
    """Fit ``search`` (resumably), take its ``n`` proposals and evaluate them through the runner.

    Returns the runner's ``RunResult``: its ``best`` is the best proposal by ``evaluator``'s objective.
    """
    from nasagent.runtime.runner import Runner

    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    search.fit(data, fit_budget if isinstance(fit_budget, Budget) else Budget(evaluations=int(fit_budget)), checkpoint_dir)
    archs = search.propose(int(n))
    if not archs:
        raise NasagentError(f"{type(search).__name__} proposed no architecture")
    strategy = ProposedArchitectures(search.space, archs=archs)
    objective = objective or evaluator.objective()
    runner = Runner(search.space, evaluator, strategy, objective, Budget(evaluations=len(archs)), journal=journal)
    return runner.run()
