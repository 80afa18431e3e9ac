"""The contract of weight-sharing searches (DARTS, few-shot DARTS, PARSEC, TuNAS) and how the runner uses them.

A ``OneShotSearch`` trains in its own loop (``fit``), which must be resumable from ``checkpoint_dir``: calling
``fit`` again with the same directory continues where the last call stopped (after a crash, or with a larger
budget). It then ``propose``s final architectures; ``run_oneshot`` hands them to the ordinary runner, which
evaluates them with any evaluator (a table, or training from scratch) and journals them like any search.

Budgets for ``fit`` reuse ``nasagent.Budget`` with one reading shared by every weight-sharing search:
``evaluations`` = training epochs over the training split, ``seconds`` = wall time, ``cost`` = training
seconds. ``fit_limits`` turns a Budget into (epochs, seconds).
"""

from __future__ import annotations

import math
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
