"""What the weight-sharing strategies (PARSEC, DARTS) share: fit a ``OneShotSearch`` on the first ask, then
hand its proposals to the runner one at a time.

A subclass builds its search (``_make_search``), fits it (``_fit``, resumable from ``checkpoint_dir``) and
says how to draw ``n`` cells from the fitted search (``_cells``). The queue of proposals lives in the
strategy's state, the search object does not (it is rebuilt and resumes from its checkpoints after a restart).
"""

from __future__ import annotations

from pathlib import Path

from nasagent.core import NasagentError, Result, SpaceExhausted, Trial
from nasagent.strategies.base import Proposal, Strategy


class WeightSharingStrategy(Strategy):
    _transient = ("space", "_search")
    #: the option through which the API hands this strategy a folder inside the run directory
    run_dir_option = "checkpoint_dir"
    #: the method's name in messages and in each trial's info (``<label>_rank``)
    label = "search"

    def __init__(self, space, seed: int, data: str | None, data_seed: int, checkpoint_dir: str | None, threads: int | None):
        super().__init__(space, seed)
        if not data:
            raise NasagentError(f"{self.label} trains its own supernet and needs data: --data digits16 (or --opt data=FILE.npz)")
        self.data, self.data_seed = str(data), int(data_seed)
        self.checkpoint_dir, self.threads = checkpoint_dir, threads
        self._search = None
        self._queue: list[str] = []
        self._asked = 0

    # -- what a subclass provides --------------------------------------------------------------------------------
    def _make_search(self):
        raise NotImplementedError

    def _fit(self):
        """Fit (or resume) ``self._search`` on ``self._dataset()`` and return it."""
        raise NotImplementedError

    def _cells(self, search, n: int) -> list:
        return search.propose(n)

    def _info(self) -> dict:
        return {}

    # -- shared ---------------------------------------------------------------------------------------------------
    def _dataset(self):
        """The search data; first sets the torch thread count (the search trains in this process) and rebuilds the
        search object, which is not kept in the state, after a restart."""
        from nasagent.evaluation.datasets import load_dataset
        from nasagent.evaluation.networks import _torch

        if self.threads:
            _torch().set_num_threads(int(self.threads))
        if self._search is None:
            self._search = self._make_search()
        return load_dataset(self.data, seed=self.data_seed)

    def _checkpoints(self) -> Path | None:
        return Path(self.checkpoint_dir) if self.checkpoint_dir else None

    def _propose(self):
        if len(self._queue) <= self._asked:  # first ask (or all proposals used): fit (resumes), propose more
            search = self._fit()
            want = max(8, 2 * (self._asked + 1))
            # a search's longer list need not start with its shorter one (DARTS draws a pool whose size grows with
            # n): keep what was asked, then the new list's cells not asked yet, so none repeats and none is skipped
            asked = self._queue[: self._asked]
            fresh = [c for c in (self.space.format(a) for a in self._cells(search, want)) if c not in set(asked)]
            self._queue = asked + list(dict.fromkeys(fresh))
        if self._asked >= len(self._queue):
            raise SpaceExhausted(f"{self.label} proposed all {len(self._queue)} distinct cells it could find")
        arch = self.space.parse(self._queue[self._asked])
        self._asked += 1
        return Proposal(arch, info={f"{self.label.lower()}_rank": self._asked, **self._info()})

    def _observe(self, trial: Trial, result: Result) -> None:
        pass
