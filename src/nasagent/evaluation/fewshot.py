"""Few-shot NAS (thesis Ch. 6): split the one-shot supernet into sub-supernets by the op on chosen edges.

Splitting a compound edge fixes its op: one child per op, whose regions partition the space, so every
architecture belongs to exactly one child (``route``). Children start from their parent's weights (transfer:
a child's tensors are the parent's tensors of the ops it keeps) and train a few more epochs by uniform
single paths inside their own region. An architecture is scored by its child, exactly as a one-shot supernet
scores it (weights inherited, BN recalibrated).

Defaults follow the thesis and the authors' public NB201 configuration: one split edge (NB201: 5 children),
chosen at random with a seeded generator (the thesis found the choice matters little, Table 6.2); children
train 1/4 of the parent's epochs (150 vs 600); several edges split hierarchically (m^k children), and a
``max_seconds`` budget aborts training once spent (untrained children keep their parent's weights, so the
cover stays complete). ``op_groups`` makes a *partial* split (the thesis' future work): the split edge's ops
are grouped, one child per group. The split tree, with a checkpoint per node, lives in ``checkpoint_dir``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.datasets import Dataset
from nasagent.evaluation.supernet import Supernet, SupernetBenchmark, _check_options, _data_and_options, region_adapter, supernet_settings

#: the authors' NB201 schedule: 600 epochs for the one-shot supernet, 150 for each sub-supernet
CHILD_RATIO = 150 / 600


class FewShot:
    """One-shot supernet trained ``epochs``, then ``splits`` edges split, children trained ``child_epochs``."""

    def __init__(self, space, data: Dataset, epochs: int = 40, child_epochs: int | None = None, splits: int = 1,
                 edges: list | None = None, seed: int = 0, device: str = "auto", lr: float = 0.025, batch_size: int = 128,
                 max_seconds: float | None = None, op_groups: list | None = None, **sizes):
        self.adapter = region_adapter(space)
        self.space = self.adapter.space
        self.data = data
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.child_epochs = int(child_epochs) if child_epochs is not None else max(1, round(self.epochs * CHILD_RATIO))
        if self.epochs < 0 or self.child_epochs < 0:
            raise NasagentError("epochs and child_epochs must be >= 0")
        candidates = self.adapter.split_edges()
        if edges is None:
            if not 0 <= int(splits) <= len(candidates):
                raise NasagentError(f"splits must be in 0..{len(candidates)} for space {self.space.name!r}, got {splits}")
            pick = np.random.default_rng([self.seed, 61]).choice(len(candidates), size=int(splits), replace=False)
            edges = [candidates[int(i)] for i in pick]
        else:
            edges = [self._edge(e, candidates) for e in edges]
            if len(set(map(str, edges))) != len(edges):
                raise NasagentError("split edges must be distinct")
        self.edges = edges
        self.max_seconds = max_seconds
        self.op_groups = op_groups  # None: full split (one child per op); else a partial split into these groups
        self.device = device
        self.lr, self.batch_size, self.sizes = float(lr), int(batch_size), dict(sizes)
        self.root = self._supernet(None, self.epochs, self.seed)
        self.children: list[Supernet] = [self.root]
        self.paths: list[tuple] = [()]  # (edge, op) choices leading to each child
        self.nodes: list[Supernet] = []  # every sub-supernet of every level (accounting)
        self._built = False

    @staticmethod
    def _edge(e, candidates):
        if isinstance(e, (int, np.integer)) and not isinstance(candidates[0], (int, np.integer)):
            if not 0 <= int(e) < len(candidates):
                raise NasagentError(f"split edge index {e} out of range 0..{len(candidates) - 1}")
            return candidates[int(e)]
        if isinstance(e, list):
            e = (e[0], tuple(e[1]))
        if e not in candidates:
            raise NasagentError(f"edge {e!r} cannot be split (every architecture must use it); splittable: {candidates}")
        return e

    def _supernet(self, region, epochs, seed) -> Supernet:
        return Supernet(self.adapter, self.data, region=region, seed=seed,
                        settings=supernet_settings(max(1, epochs), self.lr, self.batch_size), device=self.device, **self.sizes)

    # -- accounting --------------------------------------------------------------------------------------------
    @property
    def train_seconds(self) -> float:
        return self.root.seconds + sum(c.seconds for c in self.nodes)

    @property
    def epochs_trained(self) -> float:
        """Supernet epochs spent in all (root and children): the unit of the equal-budget comparison."""
        return float(self.root.epoch + sum(c.epoch for c in self.nodes))

    def describe(self) -> dict:
        return {"edges": [self.adapter.describe_edge(e) for e in self.edges], "children": len(self.children),
                "epochs": self.epochs, "child_epochs": self.child_epochs}

    # -- fitting -----------------------------------------------------------------------------------------------
    def fit(self, checkpoint_dir: Path | None = None, max_seconds: float | None = None) -> None:
        budget = max_seconds if max_seconds is not None else self.max_seconds
        ck = Path(checkpoint_dir) if checkpoint_dir else None
        root_ck = ck / "root.pt" if ck else None
        if root_ck is not None:
            self.root.load(root_ck)
        self.root.train(self.epochs - self.root.epoch, max_seconds=budget, checkpoint=root_ck)
        if not self.edges or self._built:
            return
        frontier, paths = [self.root], [()]
        spent = self.root.seconds
        for level, edge in enumerate(self.edges):
            new, new_paths = [], []
            for parent, path in zip(frontier, paths, strict=True):
                for op, region in self.adapter.split(parent.region, edge, self.op_groups):
                    child = self._supernet(region, self.child_epochs, self.seed + 1 + len(new))
                    child.inherit(parent)
                    child_path = (*path, (edge, op))
                    child_ck = ck / f"level{level + 1}" / (_slug(child_path) + ".pt") if ck else None
                    if child_ck is not None:
                        child.load(child_ck)
                    remaining = None if budget is None else max(0.0, budget - spent) + child.seconds
                    child.train(self.child_epochs - child.epoch, max_seconds=remaining, checkpoint=child_ck)
                    spent += child.seconds
                    new.append(child)
                    new_paths.append(child_path)
                    self.nodes.append(child)
            frontier, paths = new, new_paths
        self.children, self.paths = frontier, paths
        self._built = True
        if ck is not None:
            (ck / "split_tree.json").write_text(json.dumps({
                **self.describe(),
                "nodes": [{"path": [[self.adapter.describe_edge(e), op] for e, op in p], "epochs": c.epoch, "seconds": c.seconds}
                          for p, c in zip(self.paths, self.children, strict=True)],
            }, indent=2))

    # -- routing and scoring --------------------------------------------------------------------------------------
    def route(self, arch) -> int:
        """Index of the unique child whose region holds ``arch``."""
        hits = [i for i, c in enumerate(self.children) if c.contains(arch)]
        if len(hits) != 1:
            raise NasagentError(f"{self.space.format(arch)} lies in {len(hits)} sub-supernets; the split is not a partition")
        return hits[0]

    def score(self, arch, split: str = "val") -> float:
        return self.children[self.route(arch)].score(arch, split)

    def scores(self, arch, splits=("val", "test")) -> list[float]:
        return self.children[self.route(arch)].scores(arch, splits)


def _slug(path) -> str:
    return "_".join(f"{str(e).replace(' ', '').replace(',', '-').replace('(', '').replace(')', '').replace(chr(39), '')}={op}"
                    for e, op in path)


def fewshot_benchmark(spec: str, space: str | None = None, checkpoint_dir=None, **options) -> SupernetBenchmark:
    """Registry entry for ``fewshot:<data>`` (options: epochs, child_epochs, splits, edges, seed, lr, batch_size,
    max_seconds, device, C, N, layers, data_seed)."""
    _check_options(spec, options, {"epochs", "child_epochs", "splits", "edges", "seed", "lr", "batch_size", "max_seconds",
                                   "op_groups", "device", "C", "N", "layers", "data_seed"})
    data = _data_and_options(spec, options)
    est = FewShot(space or "nb201", data, **options)
    return SupernetBenchmark(est, f"fewshot:{data.name}", checkpoint_dir)
