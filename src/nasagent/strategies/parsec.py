"""PARSEC as a runner strategy: train π and the shared weights first, then propose cells for the runner.

The first ``ask`` runs ``ParsecSearch.fit`` (resumable: its checkpoints live in ``checkpoint_dir``, which the
API points into the run directory), optionally the §4.2 fine-tuning of π on a bigger network, and then asks
the most probable valid cell, followed by distinct cells drawn from π (``proposals="samples"``) or the next
most probable ones (``proposals="top"``). The runner evaluates each (e.g. ``train:<data>`` trains it from
scratch) and journals it, so ``--budget N`` is the number of proposed cells.

``search_seeds=n`` runs n independent searches (seeds seed .. seed+n-1, each resumable in its own
``seed<i>`` folder) and keeps the one that is best by ``select_by``: the paper ran 2 seeds and kept the
cell with the highest validation accuracy; here that is the shared-weight validation accuracy of each
search's most probable cell after its last epoch (``mode_val_accuracy``), or the lowest entropy of π
(``entropy``: the most confident search).

From the command line: ``nasagent search --strategy parsec --space darts --data digits16 --budget 3
--opt epochs=5 --opt K=8 --opt C=4 --opt layers=3 --bopt C=8 --bopt layers=5``. The search algorithm itself
is ``nasagent.evaluation.parsec_search`` (see docs/parsec.md).
"""

from __future__ import annotations

import math

from nasagent.core import Budget, NasagentError
from nasagent.strategies.weight_sharing import WeightSharingStrategy

#: how ``search_seeds`` searches are compared: the last record that has the figure, and whether higher is better
SELECTION = {"mode_val_accuracy": True, "entropy": False}


def select_search(searches, criterion: str = "mode_val_accuracy") -> int:
    """Index of the best fitted search by ``criterion`` (ties: the lowest seed)."""
    higher = SELECTION[criterion]
    # the last record that has it (a search stopped mid-epoch by a time budget ends on a record without accuracy)
    values = [next((h[criterion] for h in reversed(s.history) if criterion in h), float("nan")) for s in searches]
    ranked = [(-v if higher else v, i) for i, v in enumerate(values) if not math.isnan(v)]
    if not ranked:
        raise NasagentError(f"no PARSEC search recorded {criterion!r}; cannot choose between the seeds")
    return min(ranked)[1]


class Parsec(WeightSharingStrategy):
    """PARSEC (Casale et al. 2019) over DARTS cells; options are ``ParsecSearch``'s plus the ones below.

    ``data``: dataset spec (digits, digits16, FILE.npz, FOLDER); ``epochs``: search epochs; ``finetune_epochs``
    (0: off), ``finetune_C``/``finetune_layers``: the §4.2 fine-tuning network; ``checkpoint_dir``: where the
    search checkpoints (set by the API to ``<run>/search``); ``threads``: torch CPU threads (None: leave);
    ``search_seeds``/``select_by``: several searches, the best kept (module doc).
    """

    label = "PARSEC"

    def __init__(self, space, seed: int = 0, data: str | None = None, data_seed: int = 0, epochs: int = 100, K: int = 16,
                 C: int = 16, layers: int = 8, proposals: str = "samples", finetune_epochs: int = 0,
                 finetune_C: int | None = None, finetune_layers: int | None = None, checkpoint_dir: str | None = None,
                 threads: int | None = None, search_seeds: int = 1, select_by: str = "mode_val_accuracy", **options):
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
        if int(search_seeds) < 1:
            raise NasagentError(f"search_seeds must be >= 1, got {search_seeds}")
        if select_by not in SELECTION:
            raise NasagentError(f"select_by must be one of {', '.join(SELECTION)}, got {select_by!r}")
        self.search_seeds, self.select_by = int(search_seeds), select_by
        if self.search_seeds > 1 and select_by == "mode_val_accuracy" and options.get("monitor") is False:
            raise NasagentError("choosing between search_seeds by mode_val_accuracy needs monitor=true (it records "
                                "that accuracy each epoch); or choose another select_by")
        self.options = {"K": K, "C": C, "layers": layers, **options}
        self._search = self._make_search()  # validates every option now, before any training
        self.search_summary: dict = {}

    def _make_search(self, offset: int = 0):
        from nasagent.evaluation.parsec_search import ParsecSearch

        try:
            return ParsecSearch(self.space, seed=self.seed + offset, epochs=self.epochs, **self.options)
        except TypeError as e:
            raise NasagentError(f"bad PARSEC option: {e}") from None

    def _fit(self):
        from nasagent.evaluation.parsec_search import finetune

        data = self._dataset()
        ck = self._checkpoints()
        searches = [self._search] + [self._make_search(i) for i in range(1, self.search_seeds)]
        for i, search in enumerate(searches):
            folder = ck / f"seed{i}" if ck is not None and self.search_seeds > 1 else ck
            search.fit(data, Budget(evaluations=self.epochs), folder)
        best = select_search(searches, self.select_by) if len(searches) > 1 else 0  # one search: nothing to choose
        search = searches[best]
        if self.finetune_epochs:
            search = finetune(search, data, Budget(evaluations=self.finetune_epochs), ck, **self.finetune_sizes)
        last = search.history[-1] if search.history else {}
        self.search_summary = {k: last.get(k) for k in ("epoch", "entropy", "ess", "mode_val_accuracy", "seconds")}
        if self.search_seeds > 1:
            self.search_summary["seed"] = self.seed + best
        return search

    def _cells(self, search, n: int) -> list:
        return search.propose(n, how=self.proposals)

    def _info(self) -> dict:
        return {f"search_{k}": v for k, v in self.search_summary.items()}
