"""PARSEC as a runner strategy: train π and the shared weights first, then propose cells for the runner.

The first ``ask`` runs ``ParsecSearch.fit`` (resumable: its checkpoints live in ``checkpoint_dir``, which the
API points into the run directory), optionally the §4.2 fine-tuning of π on a bigger network, and then asks
the most probable valid cell, followed by distinct cells drawn from π (``proposals="samples"``) or the next
most probable ones (``proposals="top"``). The runner evaluates each (e.g. ``train:<data>`` trains it from
scratch) and journals it, so ``--budget N`` is the number of proposed cells.

From the command line: ``nasagent search --strategy parsec --space darts --data digits16 --budget 3
--opt epochs=5 --opt K=8 --opt C=4 --opt layers=3 --bopt C=8 --bopt layers=5``. The search algorithm itself
is ``nasagent.evaluation.parsec_search`` (see docs/parsec.md).
"""

from __future__ import annotations

from nasagent.core import Budget, NasagentError
from nasagent.strategies.weight_sharing import WeightSharingStrategy


class Parsec(WeightSharingStrategy):
    """PARSEC (Casale et al. 2019) over DARTS cells; options are ``ParsecSearch``'s plus the ones below.

    ``data``: dataset spec (digits, digits16, FILE.npz, FOLDER); ``epochs``: search epochs; ``finetune_epochs``
    (0: off), ``finetune_C``/``finetune_layers``: the §4.2 fine-tuning network; ``checkpoint_dir``: where the
    search checkpoints (set by the API to ``<run>/search``); ``threads``: torch CPU threads (None: leave).
    """

    label = "PARSEC"

    def __init__(self, space, seed: int = 0, data: str | None = None, data_seed: int = 0, epochs: int = 100, K: int = 16,
                 C: int = 16, layers: int = 8, proposals: str = "samples", finetune_epochs: int = 0,
                 finetune_C: int | None = None, finetune_layers: int | None = None, checkpoint_dir: str | None = None,
                 threads: int | None = None, **options):
        if getattr(space, "name", None) != "darts":
            raise NasagentError(f"PARSEC searches DARTS cells, not the {getattr(space, 'name', space)!r} space; use --space darts")
        super().__init__(space, seed, data, data_seed, checkpoint_dir, threads)
        if proposals not in ("samples", "top"):
            raise NasagentError(f"proposals must be 'samples' or 'top', got {proposals!r}")
        if int(epochs) < 1 or int(finetune_epochs) < 0:
            raise NasagentError(f"epochs must be >= 1 and finetune_epochs >= 0, got {epochs} and {finetune_epochs}")
        self.epochs, self.finetune_epochs = int(epochs), int(finetune_epochs)
        self.finetune_sizes = {"C": finetune_C, "layers": finetune_layers}
        self.proposals = proposals
        self.options = {"K": K, "C": C, "layers": layers, **options}
        self._search = self._make_search()  # validates every option now, before any training
        self.search_summary: dict = {}

    def _make_search(self):
        from nasagent.evaluation.parsec_search import ParsecSearch

        try:
            return ParsecSearch(self.space, seed=self.seed, epochs=self.epochs, **self.options)
        except TypeError as e:
            raise NasagentError(f"bad PARSEC option: {e}") from None

    def _fit(self):
        from nasagent.evaluation.parsec_search import finetune

        data = self._dataset()
        ck = self._checkpoints()
        search = self._search
        search.fit(data, Budget(evaluations=self.epochs), ck)
        if self.finetune_epochs:
            search = finetune(search, data, Budget(evaluations=self.finetune_epochs), ck, **self.finetune_sizes)
        last = search.history[-1] if search.history else {}
        self.search_summary = {k: last.get(k) for k in ("epoch", "entropy", "ess", "mode_val_accuracy", "seconds")}
        return search

    def _cells(self, search, n: int) -> list:
        return search.propose(n, how=self.proposals)

    def _info(self) -> dict:
        return {f"search_{k}": v for k, v in self.search_summary.items()}
