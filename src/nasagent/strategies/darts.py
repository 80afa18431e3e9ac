"""DARTS and few-shot DARTS as runner strategies: train the relaxation first, then propose cells for the runner.

The first ``ask`` fits ``DartsSearch`` (``splits=0``) or ``FewShotDarts`` (``splits >= 1``: the supernet split by
the op on that many edges, the child with the lowest validation loss proposing); ``method=enas`` uses the
ENAS-like policy-gradient search instead of DARTS' relaxation (NB201 only), one-shot or few-shot alike. Both resume from their
checkpoints, which the API points into the run directory. Then the derived cell is asked first, followed by the
next most probable distinct cells; the runner evaluates each (``train:<data>`` trains it from scratch) and
journals it, so ``--budget N`` is the number of proposed cells.

From the command line: ``nasagent search --strategy darts --space nb201 --data digits16 --budget 3
--opt epochs=20 --opt splits=1 --opt seconds=600``. The search algorithms are in
``nasagent.evaluation.darts_search`` (see docs/training.md).
"""

from __future__ import annotations

from nasagent.core import Budget, NasagentError
from nasagent.strategies.weight_sharing import WeightSharingStrategy


class Darts(WeightSharingStrategy):
    """DARTS (``splits=0``) or few-shot DARTS over NB201 or DARTS cells; other options are ``DartsSearch``'s.

    ``data``: dataset spec; ``epochs``: search epochs (children of few-shot DARTS get ``child_fraction`` of them
    each); ``seconds``: time budget of the whole fit (few-shot DARTS leaves the children it has no time for
    untrained, the thesis' abort); ``checkpoint_dir``: set by the API to ``<run>/search``; ``threads``: torch CPU
    threads (None: leave).
    """

    label = "DARTS"

    def __init__(self, space, seed: int = 0, data: str | None = None, data_seed: int = 0, epochs: int = 50, order: int = 1,
                 splits: int = 0, edges: list | None = None, child_fraction: float = 0.25, seconds: float | None = None,
                 checkpoint_dir: str | None = None, threads: int | None = None, **options):
        if getattr(space, "name", None) not in ("nb201", "darts"):
            raise NasagentError(f"DARTS searches NB201 or DARTS cells, not the {getattr(space, 'name', space)!r} space; "
                                "use --space nb201 or --space darts")
        super().__init__(space, seed, data, data_seed, checkpoint_dir, threads)
        if int(epochs) < 1 or int(splits) < 0 or (seconds is not None and not float(seconds) > 0):
            raise NasagentError(f"epochs must be >= 1, splits >= 0 and seconds > 0; got {epochs}, {splits}, {seconds}")
        self.epochs, self.seconds = int(epochs), None if seconds is None else float(seconds)
        self.options = {"order": order, **options}
        if edges is not None:  # JSON from the command line gives lists; DARTS-space edges are (cell, (i, j))
            edges = [e if isinstance(e, int) else (e[0], tuple(e[1])) for e in edges]
        if int(splits) or edges:
            self.options.update(splits=int(splits) or len(edges), edges=edges, child_fraction=child_fraction)
        self._search = self._make_search()  # validates every option now, before any training

    def _make_search(self):
        import inspect

        from nasagent.evaluation.darts_search import METHODS, DartsSearch, EnasSearch, FewShotDarts

        method = self.options.get("method", "darts")
        if method not in METHODS:
            raise NasagentError(f"unknown DARTS method {method!r}; methods: {', '.join(METHODS)}")
        cls = FewShotDarts if "splits" in self.options else METHODS[method]
        known = {"C", "N", "layers"}  # network sizes, passed through to the network builder
        for c in (DartsSearch, EnasSearch, FewShotDarts):
            known |= set(inspect.signature(c.__init__).parameters) - {"self", "space", "seed", "options", "sizes", "region"}
        unknown = sorted(set(self.options) - known)
        if unknown:
            raise NasagentError(f"bad DARTS option {unknown[0]!r}; options: {', '.join(sorted(known | {'data', 'epochs', 'seconds', 'threads'}))}")
        options = self.options if cls is FewShotDarts else {k: v for k, v in self.options.items() if k != "method"}
        try:
            return cls(self.space.name, seed=self.seed, **options)
        except TypeError as e:
            raise NasagentError(f"bad DARTS option: {e}") from None

    def _fit(self):
        data = self._dataset()
        self._search.fit(data, Budget(evaluations=self.epochs, seconds=self.seconds), self._checkpoints())
        return self._search
