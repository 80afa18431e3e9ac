"""One-shot supernets: every op on every compound edge, shared weights, scored by weight inheritance.

``Supernet`` holds one network built on a *region* (the ops allowed per compound edge; see
``networks/nb201.py``). It trains by uniform single-path sampling (each step one architecture drawn uniformly
from the region runs forward and backward; NB201 draws are re-sampled while some node would receive only
``none``, as the few-shot authors' code does) and scores an architecture by masking the supernet down to it,
re-estimating the BatchNorm statistics on training batches for that path, and measuring validation
accuracy. BN layers are ``affine=False`` in supernets (the authors' NB201 setting).

Regions per space (``RegionAdapter``): NB201 (6 edges x 5 ops), DARTS (14 edges x 7 ops per cell type, a
genotype picking 2 distinct inputs per node) and LaNAS' supernet space ``lanas-cell`` (20 edges x 4 ops, inputs
may repeat; a uniform draw there is the thesis' random mask). Few-shot splitting (``fewshot.py``) only splits edges that
*every* architecture uses, so the children's regions partition the space: all 6 NB201 edges, and in DARTS
the two edges of node 0 (inputs 0 and 1) of each cell type, which every genotype takes (7 children each,
the thesis' "7 supernets" for DARTS).

``oneshot_benchmark`` registers this as the benchmark family ``oneshot:<data>``; the DARTS continuous
relaxation lives in ``darts_search.py``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Benchmark, Metric
from nasagent.core import Budget, NasagentError, Result
from nasagent.evaluation.datasets import Dataset, load_dataset
from nasagent.evaluation.networks import _torch
from nasagent.evaluation.train import TrainSettings, _atomic_save, batch_order, check_loss, cosine_lr, pick_device, sgd


# -- regions per space ---------------------------------------------------------------------------------------------
class RegionAdapter:
    """What a supernet needs from a space: regions, uniform sampling inside one, membership, splits, networks."""

    space = None

    def full_region(self): ...
    def sample(self, region, rng): ...
    def contains(self, region, arch) -> bool: ...
    def split_edges(self) -> list: ...
    def split(self, region, edge, groups=None) -> list[tuple[str, object]]: ...
    def network(self, region, num_classes, in_channels, **sizes): ...
    def describe_edge(self, edge) -> str: ...


class NB201Regions(RegionAdapter):
    def __init__(self, space=None, resample_dead: bool = True):
        from nasagent.spaces.nb201 import NB201Space

        self.space = space or NB201Space()
        self.resample_dead = resample_dead

    def full_region(self):
        from nasagent.evaluation.networks.nb201 import full_region

        return full_region()

    def sample(self, region, rng):
        from nasagent.spaces.nb201 import EDGES

        for _ in range(100):
            arch = tuple(ops[int(rng.integers(len(ops)))] for ops in region)
            if not self.resample_dead:
                return arch
            dead = any(all(arch[e] == "none" for e, (t, _) in enumerate(EDGES) if t == node) for node in (1, 2, 3))
            if not dead:
                return arch
        return arch  # the region forces a dead node (e.g. an edge fixed to none): accept it

    def contains(self, region, arch) -> bool:
        return all(op in ops for op, ops in zip(arch, region, strict=True))

    def split_edges(self) -> list:
        return list(range(6))

    def split(self, region, edge, groups=None):
        return [("+".join(g), tuple(g if e == edge else ops for e, ops in enumerate(region))) for g in _groups(region[edge], groups)]

    def network(self, region, num_classes, in_channels, **sizes):
        from nasagent.evaluation.networks.nb201 import NB201Network

        cfg = {"C": 16, "N": 5, **_sizes(sizes, ("C", "N"), self.space.name)}
        return NB201Network(region, num_classes=num_classes, in_channels=in_channels, affine=False, **cfg)

    def describe_edge(self, edge) -> str:
        from nasagent.spaces.nb201 import EDGES

        to, frm = EDGES[edge]
        return f"{to}<-{frm}"

    def encode_region(self, region):
        return [list(ops) for ops in region]

    def decode_region(self, data):
        return tuple(tuple(ops) for ops in data)


class DartsRegions(RegionAdapter):
    """DARTS genotypes: node ``i`` takes 2 distinct inputs of ``0..i+1``, each with an op of the region."""

    def __init__(self, space=None):
        from nasagent.spaces.darts import DartsSpace

        self.space = space or DartsSpace()

    def full_region(self):
        from nasagent.evaluation.networks.darts import full_cell_region

        return {kind: full_cell_region(self.space.ops, self.space.n_nodes) for kind in ("normal", "reduce")}

    def sample(self, region, rng):
        from nasagent.spaces.darts import DartsGenotype, _canonical

        cells = []
        for kind in ("normal", "reduce"):
            out = []
            for node in range(self.space.n_nodes):
                inputs = [j for j in range(node + 2) if region[kind].get((node, j))]
                pick = rng.choice(len(inputs), size=2, replace=False)
                for p in pick:
                    j = inputs[int(p)]
                    ops = region[kind][(node, j)]
                    out.append((ops[int(rng.integers(len(ops)))], j))
            cells.append(_canonical(tuple(out)))
        return DartsGenotype(*cells)

    def contains(self, region, arch) -> bool:
        from nasagent.evaluation.networks.darts import genotype_in_region

        return genotype_in_region(arch, region)

    def split_edges(self) -> list:
        return [("normal", (0, 0)), ("normal", (0, 1)), ("reduce", (0, 0)), ("reduce", (0, 1))]

    def split(self, region, edge, groups=None):
        kind, e = edge
        out = []
        for g in _groups(region[kind][e], groups):
            child = {k: dict(v) for k, v in region.items()}
            child[kind][e] = g
            out.append(("+".join(g), child))
        return out

    def network(self, region, num_classes, in_channels, **sizes):
        from nasagent.evaluation.networks.darts import DartsNetwork

        cfg = {"C": 16, "layers": 8, **_sizes(sizes, ("C", "layers"), self.space.name)}
        return DartsNetwork(region, num_classes=num_classes, in_channels=in_channels, affine=False, search=True, **cfg)

    def describe_edge(self, edge) -> str:
        kind, (node, j) = edge
        return f"{kind} node {node + 2} <- {j}"

    def encode_region(self, region):
        return {kind: [[n, j, list(ops)] for (n, j), ops in sorted(r.items())] for kind, r in region.items()}

    def decode_region(self, data):
        return {kind: {(n, j): tuple(ops) for n, j, ops in items} for kind, items in data.items()}


class LaNASCellRegions(DartsRegions):
    """The LaNAS supernet space (``lanas-cell``): 20 compound edges x 4 ops per cell; a node may take one input
    twice. Drawing a cell uniformly over the thesis' integers is the random mask applied at every training step
    (thesis section 4.2.3). No edge is used by every cell, so this space has no few-shot split."""

    def __init__(self, space=None):
        from nasagent.spaces.lanas_cell import LaNASCellSpace

        self.space = space or LaNASCellSpace()

    def sample(self, region, rng):
        from nasagent.spaces.darts import DartsGenotype, _canonical
        from nasagent.spaces.lanas_cell import PAIRS

        cells = []
        for kind in ("normal", "reduce"):
            out = []
            for node in range(self.space.n_nodes):
                pairs = [p for p in PAIRS[node] if region[kind].get((node, p[0])) and region[kind].get((node, p[1]))]
                if not pairs:
                    raise NasagentError(f"the region leaves {kind} node {node + 2} no input pair; it holds no cell")
                for j in pairs[int(rng.integers(len(pairs)))]:
                    ops = region[kind][(node, j)]
                    out.append((ops[int(rng.integers(len(ops)))], j))
            cells.append(_canonical(tuple(out)))
        return DartsGenotype(*cells)

    def split_edges(self) -> list:
        raise NasagentError("few-shot splitting needs edges every architecture uses; lanas-cell has none "
                            "(a node may take one input twice): use oneshot:<data> with this space")


def _sizes(sizes: dict, allowed: tuple, space: str) -> dict:
    """The supernet size options a space's network takes; any other is refused by name (not a TypeError)."""
    unknown = sorted(set(sizes) - set(allowed))
    if unknown:
        raise NasagentError(f"supernet size option {unknown[0]!r} does not apply to the {space} space; "
                            f"its options: {', '.join(allowed)}")
    return sizes


def _groups(ops: tuple, groups=None) -> list[tuple]:
    """The children's op sets on a split edge: one op each (full split), or a partition of the edge's ops
    into groups (a *partial* split, the thesis' future work: a 5-op edge into e.g. 2 compound edges)."""
    if groups is None:
        return [(op,) for op in ops]
    out = [tuple(op for op in g if op in ops) for g in groups]
    out = [g for g in out if g]
    flat = [op for g in out for op in g]
    if sorted(flat) != sorted(ops):
        raise NasagentError(f"op groups {groups} must partition the edge's ops {list(ops)} (each op in exactly one group)")
    return out


def region_adapter(space) -> RegionAdapter:
    from nasagent.registry import make_space

    sp = make_space(space) if isinstance(space, str) else space
    if sp.name == "nb201":
        return NB201Regions(sp)
    if sp.name == "darts":
        return DartsRegions(sp)
    if sp.name == "lanas-cell":
        return LaNASCellRegions(sp)
    raise NasagentError(f"supernets are available for the nb201, darts and lanas-cell spaces, not {sp.name!r}")


# -- the supernet ----------------------------------------------------------------------------------------------------
def recalibrate_bn(net, x: np.ndarray, arch, device, batch_size: int = 128, batches: int = 4) -> None:
    """Replace every BN layer's running statistics by their average over ``batches`` batches of ``x`` on ``arch``."""
    torch = _torch()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    old = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the recalibration batches
    net.train()
    with torch.no_grad():
        for i in range(min(batches, math.ceil(len(x) / batch_size))):
            xb = torch.from_numpy(x[i * batch_size : (i + 1) * batch_size]).to(device)
            net(xb, arch)
    for m, mom in zip(bns, old, strict=True):
        m.momentum = mom
    net.eval()


class Supernet:
    """A weight-sharing network over ``region`` (default: the whole space), trained by uniform single paths."""

    def __init__(self, space, data: Dataset, region=None, seed: int = 0, settings: TrainSettings | None = None,
                 device: str = "auto", recal_batches: int = 4, **sizes):
        torch = _torch()
        self.adapter = space if isinstance(space, RegionAdapter) else region_adapter(space)
        self.space = self.adapter.space
        self.data = data
        self.region = region if region is not None else self.adapter.full_region()
        self.seed = int(seed)
        self.settings = (settings or TrainSettings(epochs=50, lr=0.025, min_lr=0.001, weight_decay=1e-4)).check()
        self.device = pick_device(device)
        self.recal_batches = int(recal_batches)
        self.sizes = dict(sizes)
        torch.manual_seed(self.seed)
        self.net = self.adapter.network(self.region, data.num_classes, data.input_shape[0], **sizes).to(self.device)
        self.optimizer = sgd(self.net.parameters(), self.settings)
        self.epoch = 0  # epochs trained under the current schedule
        self.seconds = 0.0  # training seconds spent on this supernet (transfer excluded)
        self.steps = 0
        self._recal_x = data.x_train[np.random.default_rng([self.seed, 5]).permutation(len(data.x_train))]

    # -- training ---------------------------------------------------------------------------------------------
    def inherit(self, parent: Supernet) -> int:
        """Copy the parent's tensors for every layer this (narrower) region keeps; returns tensors copied.

        Every tensor of a child exists in its parent, so the child starts bitwise equal to the parent on its
        region. The optimizer state is not transferred (the children's schedules restart)."""
        own = self.net.state_dict()
        theirs = parent.net.state_dict()
        missing = [k for k in own if k not in theirs]
        if missing:
            raise NasagentError(f"the region is not inside the parent's: {missing[0]} has no parent tensor")
        self.net.load_state_dict({k: theirs[k].clone() for k in own})
        return len(own)

    def train(self, epochs: int, max_seconds: float | None = None, schedule_epochs: int | None = None,
              checkpoint: Path | None = None) -> int:
        """Train ``epochs`` more epochs (cosine schedule over ``schedule_epochs``, default the settings' epochs);
        stop early when ``max_seconds`` of training are spent. Returns the epochs actually trained."""
        torch = _torch()
        total = int(schedule_epochs or self.settings.epochs)
        xtr = torch.from_numpy(self.data.x_train).to(self.device)
        ytr = torch.from_numpy(self.data.y_train).to(self.device)
        done = 0
        self.net.train()
        for _ in range(int(epochs)):
            if max_seconds is not None and self.seconds >= max_seconds:
                break
            t0 = time.perf_counter()
            lr = cosine_lr(self.settings, self.epoch, total)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            rng = np.random.default_rng([self.seed, 33, self.epoch])
            for step, idx in enumerate(batch_order(len(ytr), self.settings.batch_size, [self.seed, 3], self.epoch)):
                arch = self.adapter.sample(self.region, rng)
                ib = torch.from_numpy(idx).to(self.device)
                self.optimizer.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(self.net(xtr[ib], arch), ytr[ib])
                check_loss(loss.detach(), self.epoch, step, lr)
                loss.backward()
                if self.settings.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.grad_clip)
                self.optimizer.step()
                self.steps += 1
            self.epoch += 1
            done += 1
            self.seconds += time.perf_counter() - t0
            if checkpoint is not None:
                self.save(checkpoint)
        return done

    # -- scoring ----------------------------------------------------------------------------------------------
    def contains(self, arch) -> bool:
        return self.adapter.contains(self.region, arch)

    def score(self, arch, split: str = "val") -> float:
        """Accuracy (%) of ``arch`` with inherited weights and recalibrated BN statistics on ``split``."""
        return self.scores(arch, (split,))[0]

    def scores(self, arch, splits=("val", "test")) -> list[float]:
        """Accuracies (%) on several splits after one BN recalibration."""
        from nasagent.evaluation.train import accuracy

        if not self.contains(arch):
            raise NasagentError(f"{self.space.format(arch)} is outside this supernet's region")
        recalibrate_bn(self.net, self._recal_x, arch, self.device, self.settings.batch_size, self.recal_batches)
        return [accuracy(self.net, *self.data.split(s), self.device, arch=arch) for s in splits]

    # -- persistence --------------------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "epoch": self.epoch,
                "seconds": self.seconds, "steps": self.steps, "settings": asdict(self.settings)}

    def save(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(self.state(), path)

    def load(self, path: Path) -> bool:
        path = Path(path)
        if not path.exists():
            return False
        try:
            st = _torch().load(path, map_location=self.device, weights_only=False)
            self.net.load_state_dict(st["net"])
            self.optimizer.load_state_dict(st["optimizer"])
        except (OSError, RuntimeError, KeyError, EOFError) as e:
            raise NasagentError(f"supernet checkpoint {path} cannot be read ({e}); delete it to retrain") from None
        self.epoch, self.seconds, self.steps = st["epoch"], st["seconds"], st["steps"]
        return True


def supernet_settings(epochs: int, lr: float = 0.025, batch_size: int = 128, **kw) -> TrainSettings:
    """The authors' supernet recipe (SGD, Nesterov, lr 0.025 cosine to 0.001, wd 1e-4), scaled in epochs."""
    return TrainSettings(epochs=int(epochs), lr=float(lr), min_lr=min(0.001, float(lr) / 25), weight_decay=1e-4,
                         batch_size=int(batch_size), **kw)


class OneShot:
    """The one-shot estimator: one supernet over the whole space, fitted once (resumably), then a scorer."""

    def __init__(self, space, data: Dataset, epochs: int = 40, seed: int = 0, device: str = "auto", lr: float = 0.025,
                 batch_size: int = 128, **sizes):
        self.supernet = Supernet(space, data, seed=seed, settings=supernet_settings(epochs, lr, batch_size), device=device, **sizes)
        self.space = self.supernet.space
        self.epochs = int(epochs)

    @property
    def train_seconds(self) -> float:
        return self.supernet.seconds

    @property
    def epochs_trained(self) -> float:
        return float(self.supernet.epoch)

    def fit(self, checkpoint_dir: Path | None = None, max_seconds: float | None = None) -> None:
        ck = Path(checkpoint_dir) / "oneshot.pt" if checkpoint_dir else None
        if ck is not None:
            self.supernet.load(ck)
        self.supernet.train(self.epochs - self.supernet.epoch, max_seconds=max_seconds, checkpoint=ck)

    def route(self, arch) -> int:
        return 0

    def score(self, arch, split: str = "val") -> float:
        return self.supernet.score(arch, split)

    def scores(self, arch, splits=("val", "test")) -> list[float]:
        return self.supernet.scores(arch, splits)


# -- the benchmark -------------------------------------------------------------------------------------------------
class SupernetBenchmark(Benchmark):
    """Scores architectures with a (few-shot or one-shot) supernet estimator, fitted at the first call.

    The estimator's training time is charged to the first evaluated trial's cost (so a journal's summed cost
    is the whole compute); every later call costs its scoring time.
    """

    def __init__(self, estimator, label: str, checkpoint_dir: str | Path | None = None):
        metrics = {
            "val_accuracy": Metric("val_accuracy", "max", "supernet-estimated validation accuracy (%)", report="test_accuracy"),
            "test_accuracy": Metric("test_accuracy", "max", "supernet-estimated test accuracy (%) (report only)"),
        }
        super().__init__(name=label, space=estimator.space, metrics=metrics, default_metric="val_accuracy",
                         notes="estimates by weight sharing; retrain the best architectures with train:<data>")
        self.estimator = estimator
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self._fitted = False
        self._fit_error: NasagentError | None = None

    def fit(self) -> float:
        if self._fitted:
            return 0.0
        if self._fit_error is not None:  # training is deterministic: it would fail the same way for every trial
            raise NasagentError(f"the supernet could not be trained: {self._fit_error}")
        before = self.estimator.train_seconds
        try:
            self.estimator.fit(self.checkpoint_dir)
        except NasagentError as e:
            self._fit_error = e
            raise
        self._fitted = True
        return self.estimator.train_seconds - before

    def __call__(self, arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        t0 = time.perf_counter()
        arch = self.space.validate(arch)
        fit_seconds = self.fit()
        val, test = self.estimator.scores(arch, ("val", "test"))
        metrics = {"val_accuracy": val, "test_accuracy": test, "subnet": float(self.estimator.route(arch))}
        if fit_seconds:
            metrics["supernet_train_seconds"] = fit_seconds
        return Result(metrics=metrics, cost=time.perf_counter() - t0)


def _data_and_options(spec: str, options: dict):
    data = spec.split(":", 1)[1] if ":" in spec else ""
    if not data:
        raise NasagentError(f"benchmark {spec!r} needs a dataset after the colon, e.g. {spec.split(':')[0]}:digits16")
    return load_dataset(data, seed=int(options.pop("data_seed", 0)))


def _check_options(spec: str, options: dict, allowed: set, target) -> None:
    """Unknown option names, text for a numeric option of ``target`` (the estimator's constructor) and network
    sizes below 1: one line each, before any data is loaded."""
    from nasagent.evaluation.networks import check_sizes
    from nasagent.registry import check_option_types

    unknown = sorted(set(options) - allowed)
    if unknown:
        raise NasagentError(f"benchmark {spec!r} has no option {unknown[0]!r}; options: {', '.join(sorted(allowed))}")
    check_option_types(f"benchmark {spec!r}", target, options)
    check_sizes(options)


def oneshot_benchmark(spec: str, space: str | None = None, checkpoint_dir=None, **options) -> SupernetBenchmark:
    """Registry entry for ``oneshot:<data>`` (options: epochs, seed, lr, batch_size, device, C, N, layers, data_seed)."""
    _check_options(spec, options, {"epochs", "seed", "lr", "batch_size", "device", "C", "N", "layers", "data_seed"},
                   OneShot.__init__)
    data = _data_and_options(spec, options)
    est = OneShot(space or "nb201", data, **options)
    return SupernetBenchmark(est, f"oneshot:{data.name}", checkpoint_dir)
