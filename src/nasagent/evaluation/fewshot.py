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

``edge_strategy="gradient"`` is a *learned* edge choice (the thesis' future work; the idea of GM-NAS, Hu et al.
2022): after the root trains, each splittable edge is scored by how much the gradients of the shared weights
disagree between its would-be children, and the most-disagreeing edges are split (``gradient_disagreement``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.datasets import Dataset
from nasagent.evaluation.networks import _torch
from nasagent.evaluation.supernet import (
    Supernet,
    SupernetBenchmark,
    _check_options,
    _data_and_options,
    region_adapter,
    supernet_settings,
)
from nasagent.evaluation.train import batch_order

#: the authors' NB201 schedule: 600 epochs for the one-shot supernet, 150 for each sub-supernet
CHILD_RATIO = 150 / 600
#: how the split edges are chosen when ``edges`` is not given ("random" is the thesis' choice and the default)
EDGE_STRATEGIES = ("random", "gradient")


class FewShot:
    """One-shot supernet trained ``epochs``, then ``splits`` edges split, children trained ``child_epochs``.

    ``edge_strategy`` picks the edges when ``edges`` is not given: ``"random"`` (seeded, the thesis' choice and
    the default; ``edges`` is known at once) or ``"gradient"`` (learned from the trained root, so ``edges`` is
    ``None`` until ``fit`` has probed it; ``probe_batches`` mini-batches per op and edge, see ``probe_edges``).
    """

    def __init__(self, space, data: Dataset, epochs: int = 40, child_epochs: int | None = None, splits: int = 1,
                 edges: list | None = None, seed: int = 0, device: str = "auto", lr: float = 0.025, batch_size: int = 128,
                 max_seconds: float | None = None, op_groups: list | None = None, edge_strategy: str = "random",
                 probe_batches: int = 4, **sizes):
        self.adapter = region_adapter(space)
        self.space = self.adapter.space
        self.data = data
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.child_epochs = int(child_epochs) if child_epochs is not None else max(1, round(self.epochs * CHILD_RATIO))
        if self.epochs < 0 or self.child_epochs < 0:
            raise NasagentError("epochs and child_epochs must be >= 0")
        if edge_strategy not in EDGE_STRATEGIES:
            raise NasagentError(f"unknown edge_strategy {edge_strategy!r}; valid: {', '.join(EDGE_STRATEGIES)}")
        if not isinstance(probe_batches, (int, np.integer)) or probe_batches < 1:
            raise NasagentError(f"probe_batches must be an integer >= 1, got {probe_batches!r}")
        self.probe_batches = int(probe_batches)
        self.candidates = self.adapter.split_edges()
        self.edge_strategy = "explicit" if edges is not None else edge_strategy
        self.edge_scores: dict[str, float] | None = None  # gradient strategy: score per candidate edge (described)
        self.probe_seconds = 0.0
        if edges is not None:
            edges = [self._edge(e, self.candidates) for e in edges]
            if len(set(map(str, edges))) != len(edges):
                raise NasagentError("split edges must be distinct")
        elif not 0 <= int(splits) <= len(self.candidates):
            raise NasagentError(f"splits must be in 0..{len(self.candidates)} for space {self.space.name!r}, got {splits}")
        elif edge_strategy == "random" or int(splits) == 0:
            pick = np.random.default_rng([self.seed, 61]).choice(len(self.candidates), size=int(splits), replace=False)
            edges = [self.candidates[int(i)] for i in pick]
        self.splits = len(edges) if edges is not None else int(splits)
        self.edges = edges  # None: decided by ``fit`` once the root is trained (gradient strategy)
        if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
            raise NasagentError(f"max_seconds must be a number of seconds > 0 (or null: no limit), got {max_seconds!r}")
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
        """Training seconds of every supernet, plus the edge probe's (compute the estimator spent)."""
        return self.root.seconds + self.probe_seconds + sum(c.seconds for c in self.nodes)

    @property
    def epochs_trained(self) -> float:
        """Supernet epochs spent in all (root and children): the unit of the equal-budget comparison."""
        return float(self.root.epoch + sum(c.epoch for c in self.nodes))

    def describe(self) -> dict:
        out = {"edges": None if self.edges is None else [self.adapter.describe_edge(e) for e in self.edges],
               "children": len(self.children), "epochs": self.epochs, "child_epochs": self.child_epochs,
               "edge_strategy": self.edge_strategy}
        if self.edge_strategy == "gradient":
            out.update(edge_scores=self.edge_scores, probe_batches=self.probe_batches, probe_seconds=self.probe_seconds)
        return out

    # -- fitting -----------------------------------------------------------------------------------------------
    def fit(self, checkpoint_dir: Path | None = None, max_seconds: float | None = None) -> None:
        budget = max_seconds if max_seconds is not None else self.max_seconds
        ck = Path(checkpoint_dir) if checkpoint_dir else None
        root_ck = ck / "root.pt" if ck else None
        if root_ck is not None:
            self.root.load(root_ck)
        self.root.train(self.epochs - self.root.epoch, max_seconds=budget, checkpoint=root_ck)
        if self._built:
            return
        if self.edges is None:
            self._choose_edges(ck)
        if not self.edges:
            return
        frontier, paths = [self.root], [()]
        spent = self.root.seconds + self.probe_seconds
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
            self._write_tree(ck)

    def _write_tree(self, ck: Path) -> None:
        """``split_tree.json``: the edges (described, and as ``split_edges`` to read back), scores and nodes."""
        nodes = [{"path": [[self.adapter.describe_edge(e), op] for e, op in p], "epochs": c.epoch, "seconds": c.seconds}
                 for p, c in zip(self.paths, self.children, strict=True)] if self._built else []
        ck.mkdir(parents=True, exist_ok=True)
        (ck / "split_tree.json").write_text(json.dumps({**self.describe(), "split_edges": self.edges, "nodes": nodes}, indent=2))

    # -- the learned edge choice -------------------------------------------------------------------------------
    def _choose_edges(self, ck: Path | None) -> None:
        """Reuse the edges recorded in ``ck`` (a resumed fit must split where the first did), else probe the
        trained root and record the choice at once, before any child trains."""
        if ck is not None and self._load_recorded_edges(ck / "split_tree.json"):
            return
        t0 = time.perf_counter()
        scored = self.probe_edges()
        self.probe_seconds = time.perf_counter() - t0
        self.edges = lowest_scoring(scored, self.splits)
        self.edge_scores = {self.adapter.describe_edge(e): s for e, s in scored}
        if ck is not None:
            self._write_tree(ck)

    def _load_recorded_edges(self, tree: Path) -> bool:
        if not tree.exists():
            return False
        doc = json.loads(tree.read_text())
        if "split_edges" not in doc:  # written before strategies were recorded: nothing to reuse
            return False
        recorded = (doc.get("edge_strategy"), len(doc["split_edges"] or []), doc.get("probe_batches"))
        if recorded != (self.edge_strategy, self.splits, self.probe_batches):
            raise NasagentError(f"{tree} was written with (edge_strategy, splits, probe_batches) = {recorded}, not "
                                f"{(self.edge_strategy, self.splits, self.probe_batches)}; use another checkpoint_dir")
        self.edges = [self._edge(e, self.candidates) for e in doc["split_edges"]]
        self.edge_scores = doc.get("edge_scores")
        self.probe_seconds = float(doc.get("probe_seconds", 0.0))
        return True

    def probe_edges(self) -> list[tuple[object, float]]:
        """(edge, score) for every splittable edge of the trained root; low scores: split first.

        For each child the edge's split would make (one per op, or per op group), the gradient of the training
        loss with respect to the *shared* weights (every parameter outside the edge's ops) is averaged over
        ``probe_batches`` mini-batches, each on a single path sampled in the child's region; the score is
        ``gradient_disagreement`` of those gradients. Batches and path seeds are the same for every child, so
        the gradients differ by the edge's op, not by noise. One probe of the root ranks the edges for every
        level of a multi-edge split (deeper levels are not re-probed per child). Cost: (children per edge) x
        (edges) x ``probe_batches`` forward-backward passes (NB201: 30 x 4 = 120 steps by default). The root's
        weights and BN statistics are left as they were.
        """
        torch = _torch()
        net = self.root.net
        params = dict(net.named_parameters())
        batches = self._probe_data()
        buffers = {n: b.clone() for n, b in net.named_buffers()}
        was_training = net.training
        net.train()  # gradients as training computes them (BN on batch statistics)
        try:
            scored = []
            for edge in self.candidates:
                own = self._edge_parameter_names(edge)
                shared = [p for n, p in params.items() if n not in own and p.requires_grad]
                grads = [self._mean_gradient(region, shared, batches)
                         for _, region in self.adapter.split(self.root.region, edge, self.op_groups)]
                scored.append((edge, gradient_disagreement(grads)))
        finally:
            with torch.no_grad():
                for n, b in net.named_buffers():
                    b.copy_(buffers[n])
            net.train(was_training)
        return scored

    def _probe_data(self) -> list:
        """``probe_batches`` seeded training mini-batches (tensors on the root's device), the same for every edge."""
        torch = _torch()
        order, epoch = [], 0
        while len(order) < self.probe_batches:
            order += batch_order(len(self.data.y_train), self.batch_size, [self.seed, 71], epoch)
            epoch += 1
        dev = self.root.device
        return [(torch.from_numpy(self.data.x_train[i]).to(dev), torch.from_numpy(self.data.y_train[i]).to(dev))
                for i in order[: self.probe_batches]]

    def _mean_gradient(self, region, shared: list, batches: list) -> np.ndarray:
        """The training-loss gradient w.r.t. ``shared``, averaged over ``batches`` of single paths in ``region``."""
        torch = _torch()
        total = [torch.zeros_like(p) for p in shared]
        for b, (x, y) in enumerate(batches):
            arch = self.adapter.sample(region, np.random.default_rng([self.seed, 71, b]))
            loss = torch.nn.functional.cross_entropy(self.root.net(x, arch), y)
            for t, g in zip(total, torch.autograd.grad(loss, shared, allow_unused=True), strict=True):
                if g is not None:  # None: a parameter off this path (another edge's unused op)
                    t.add_(g)
        return (torch.cat([t.flatten() for t in total]) / len(batches)).detach().cpu().numpy()

    def _edge_parameter_names(self, edge) -> set[str]:
        """Names of the root's parameters that belong to ``edge``'s ops: those that some child of a full split
        of the edge lacks. A child keeps every tensor of its parent but the other ops' on the split edge
        (parameters are named by edge and op, see ``Supernet.inherit``), so this holds for every adapter
        (NB201 and DARTS cells) without parsing names; the children are built on the meta device (no memory)."""
        torch = _torch()
        root = {n for n, _ in self.root.net.named_parameters()}
        own: set[str] = set()
        with torch.device("meta"):
            for _, region in self.adapter.split(self.root.region, edge):
                child = self.adapter.network(region, self.data.num_classes, self.data.input_shape[0], **self.sizes)
                own |= root - {n for n, _ in child.named_parameters()}
        return own

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


def gradient_disagreement(grads) -> float:
    """Mean pairwise cosine similarity of per-child gradient vectors: how much the children of a split would
    agree on the shared weights. Low (or negative) means the ops pull the shared weights apart, so one-shot
    sharing hurts most there and splitting that edge helps most. A zero vector counts as orthogonal; fewer than
    two children cannot disagree (1.0)."""
    vecs = [np.asarray(g, dtype=np.float64).ravel() for g in grads]
    if len(vecs) < 2:
        return 1.0
    norms = [float(np.linalg.norm(v)) for v in vecs]
    sims = [float(vecs[i] @ vecs[j]) / (norms[i] * norms[j]) if norms[i] * norms[j] > 0 else 0.0
            for i in range(len(vecs)) for j in range(i + 1, len(vecs))]
    return float(np.mean(sims))


def lowest_scoring(scored: list[tuple[object, float]], k: int) -> list:
    """The ``k`` edges with the lowest scores, lowest first (ties: the earlier edge)."""
    order = sorted(range(len(scored)), key=lambda i: (scored[i][1], i))
    return [scored[i][0] for i in order[: int(k)]]


def _slug(path) -> str:
    return "_".join(f"{str(e).replace(' ', '').replace(',', '-').replace('(', '').replace(')', '').replace(chr(39), '')}={op}"
                    for e, op in path)


def fewshot_benchmark(spec: str, space: str | None = None, checkpoint_dir=None, **options) -> SupernetBenchmark:
    """Registry entry for ``fewshot:<data>`` (options: epochs, child_epochs, splits, edges, edge_strategy,
    probe_batches, seed, lr, batch_size, max_seconds, op_groups, device, C, N, layers, data_seed)."""
    _check_options(spec, options, {"epochs", "child_epochs", "splits", "edges", "edge_strategy", "probe_batches", "seed",
                                   "lr", "batch_size", "max_seconds", "op_groups", "device", "C", "N", "layers", "data_seed"},
                   FewShot.__init__)
    data = _data_and_options(spec, options)
    est = FewShot(space or "nb201", data, **options)
    return SupernetBenchmark(est, f"fewshot:{data.name}", checkpoint_dir)
