"""The Neural Predictor's bidirectional GCN (Wen et al., ECCV 2020), and its two-stage cascade.

Layer (paper, Eq. 1 made bidirectional): ``V' = 1/2 ReLU(A_f V W+) + 1/2 ReLU(A_b V W-)``, where ``A_f`` passes
messages along the edges (each node gathers from its predecessors), ``A_b`` against them, both with self-loops
and degree normalisation. No bias, so padded nodes stay zero; the readout is the mean over real nodes, then
an FC head (128 hidden units) and a scalar output.

The paper leaves the training recipe to a missing supplement; the defaults are those of the public
re-implementations (``ultmaster/neuralpredictor.pytorch``, NASLib): width 144, dropout 0.1, Adam lr 1e-4,
weight decay 1e-3, 300 epochs with cosine annealing, batch 10, MSE on standardised targets
(``output="linear"``). ``output="sigmoid"`` restores the paper's head, ``10 + 90 sigmoid(z)`` (percent).

Several networks train at once as one *stack* (weights with a leading member axis): an ensemble, or the 10
cross-validation splits of one hyper-parameter setting, cost about one network's Python overhead. Training
is seeded (its own torch RNG, the caller's is untouched) and deterministic on CPU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.predictors.base import NotFittedError, Predictor
from nasagent.evaluation.predictors.graphs import GraphBatch, GraphEncoder, check_positions, normalized_adjacency
from nasagent.evaluation.predictors.targets import TargetTransform


def _torch():
    try:
        import torch
    except ImportError:
        raise NasagentError("the GCN predictor needs PyTorch: pip install 'nasagent[torch]'") from None
    return torch


@contextmanager
def _torch_session(seed: int, threads: int | None):
    """Seeded, single-threaded by default, and without touching the caller's RNG or thread setting."""
    torch = _torch()
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            yield torch
    finally:
        torch.set_num_threads(old)


@dataclass
class GraphInputs:
    """What the GCN consumes: normalised forward/backward adjacencies, node labels, node mask."""

    fwd: np.ndarray
    bwd: np.ndarray
    x: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx) -> GraphInputs:
        return GraphInputs(self.fwd[idx], self.bwd[idx], self.x[idx], self.mask[idx])


def graph_inputs(batch: GraphBatch, norm: str = "row") -> GraphInputs:
    at = np.ascontiguousarray(np.swapaxes(batch.adj, 1, 2))  # at[i, j] = 1 when j -> i: gather from predecessors
    return GraphInputs(
        normalized_adjacency(at, batch.mask, norm), normalized_adjacency(batch.adj, batch.mask, norm), batch.x, batch.mask
    )


# --------------------------------------------------------------------------------------------------
# The stacked network and its training loop
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GCNConfig:
    layers: int = 3
    hidden: int = 144
    fc: tuple[int, ...] = (128,)
    dropout: float = 0.1
    lr: float = 1e-4
    weight_decay: float = 1e-3
    epochs: int = 300
    batch_size: int = 10
    output: str = "linear"  # linear (standardised targets) | sigmoid (paper: lo + (hi - lo) sigmoid)
    output_range: tuple[float, float] = (10.0, 100.0)

    def check(self) -> None:
        if self.layers < 1 or self.hidden < 1 or any(f < 1 for f in self.fc):
            raise NasagentError(f"GCN needs layers >= 1 and positive widths, got layers={self.layers} hidden={self.hidden} fc={self.fc}")
        if not 0 <= self.dropout < 1:
            raise NasagentError(f"GCN dropout must be in [0, 1), got {self.dropout}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise NasagentError("GCN epochs and batch_size must be >= 1 and lr > 0")
        if self.output not in ("linear", "sigmoid"):
            raise NasagentError(f"GCN output must be 'linear' or 'sigmoid', got {self.output!r}")


def _build_stack(torch, n_members: int, n_in: int, cfg: GCNConfig):
    nn = torch.nn

    def xavier(*shape):
        w = torch.empty(n_members, *shape)
        for m in range(n_members):
            nn.init.xavier_uniform_(w[m])
        return nn.Parameter(w)

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            dims = [n_in] + [cfg.hidden] * cfg.layers
            self.w_fwd = nn.ParameterList([xavier(dims[i], dims[i + 1]) for i in range(cfg.layers)])
            self.w_bwd = nn.ParameterList([xavier(dims[i], dims[i + 1]) for i in range(cfg.layers)])
            fcs = [cfg.hidden, *cfg.fc, 1]
            self.fc_w = nn.ParameterList([xavier(fcs[i], fcs[i + 1]) for i in range(len(fcs) - 1)])
            self.fc_b = nn.ParameterList([nn.Parameter(torch.zeros(n_members, 1, fcs[i + 1])) for i in range(len(fcs) - 1)])
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, fwd, bwd, x, mask):  # (M, B, n, n) x2, (M, B, n, d), (M, B, n) -> (M, B)
            n_mem, b, n, _ = x.shape
            h = x
            for wf, wb in zip(self.w_fwd, self.w_bwd, strict=True):
                # one (B*n, D) x (D, 2D') GEMM per member for both directions, then the per-graph propagation
                hw = torch.bmm(h.reshape(n_mem, b * n, -1), torch.cat([wf, wb], dim=2)).reshape(n_mem, b, n, -1)
                d = wf.shape[2]
                h = 0.5 * torch.relu(fwd @ hw[..., :d]) + 0.5 * torch.relu(bwd @ hw[..., d:])
                h = self.drop(h)
            m = mask.unsqueeze(-1)
            h = (h * m).sum(2) / m.sum(2).clamp_min(1.0)  # masked mean over nodes: (M, B, D)
            for i, (w, b) in enumerate(zip(self.fc_w, self.fc_b, strict=True)):
                h = torch.bmm(h, w) + b
                if i < len(self.fc_w) - 1:
                    h = self.drop(torch.relu(h))
            return h.squeeze(-1)

    return Stack()


class FittedStack:
    """A trained stack and the per-member target scaling needed to turn its outputs into predictions."""

    def __init__(self, net, cfg: GCNConfig, task: str, loc: np.ndarray, scale: np.ndarray):
        self.net, self.cfg, self.task, self.loc, self.scale = net, cfg, task, loc, scale

    @property
    def n_members(self) -> int:
        return len(self.loc)

    def __getstate__(self) -> dict:
        """Pickle as weights + config: the network class is built inside ``_build_stack``, so it cannot be."""
        n_in = int(self.net.w_fwd[0].shape[1])
        weights = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        return {"cfg": self.cfg, "task": self.task, "loc": self.loc, "scale": self.scale, "n_in": n_in, "weights": weights}

    def __setstate__(self, state: dict) -> None:
        torch = _torch()
        with torch.random.fork_rng(devices=[]):  # the throw-away initialisation must not move the caller's RNG
            net = _build_stack(torch, len(state["loc"]), state["n_in"], state["cfg"])
        net.load_state_dict(state["weights"])
        net.eval()
        self.net, self.cfg, self.task, self.loc, self.scale = net, state["cfg"], state["task"], state["loc"], state["scale"]

    def predict(self, inp: GraphInputs, chunk: int = 4096) -> np.ndarray:
        """(members, archs) predictions in target units (probabilities for a classifier)."""
        torch = _torch()
        self.net.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(inp), chunk):
                t = _tensors(torch, inp.take(slice(s, s + chunk)))
                z = self.net(*(v.unsqueeze(0).expand(self.n_members, *v.shape) for v in t))
                out.append(_decode(torch, z, self).numpy())
        return np.concatenate(out, axis=1).astype(np.float64) if out else np.zeros((self.n_members, 0))


def _tensors(torch, inp: GraphInputs):
    return tuple(torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in (inp.fwd, inp.bwd, inp.x, inp.mask))


def _decode(torch, z, fitted: FittedStack):
    if fitted.task == "classification":
        return torch.sigmoid(z)
    if fitted.cfg.output == "sigmoid":
        lo, hi = fitted.loc, fitted.scale  # for the sigmoid head loc/scale hold the output range
        return torch.from_numpy(lo[:, None].astype(np.float32)) + torch.from_numpy((hi - lo)[:, None].astype(np.float32)) * torch.sigmoid(z)
    return z * torch.from_numpy(fitted.scale[:, None].astype(np.float32)) + torch.from_numpy(fitted.loc[:, None].astype(np.float32))


def train_stack(
    inp: GraphInputs,
    y: np.ndarray,
    members: Sequence[np.ndarray],
    cfg: GCNConfig,
    seed: int = 0,
    task: str = "regression",
    threads: int | None = 1,
) -> FittedStack:
    """Train one network per entry of ``members`` (index arrays of equal length into ``inp``/``y``) at once."""
    cfg.check()
    members = [np.asarray(m, dtype=np.int64) for m in members]
    sizes = {len(m) for m in members}
    if len(sizes) != 1:
        raise NasagentError(f"stacked GCN members need training sets of one size, got sizes {sorted(sizes)}")
    n_train = sizes.pop()
    n_mem = len(members)
    y = np.asarray(y, dtype=np.float64)
    y = np.broadcast_to(y, (n_mem, y.shape[-1])) if y.ndim == 1 else y  # one target vector per member allowed
    ym = [y[k, m] for k, m in enumerate(members)]  # each member's training labels
    if task == "classification":
        loc, scale = np.zeros(n_mem), np.ones(n_mem)
    elif cfg.output == "sigmoid":
        lo, hi = cfg.output_range
        if np.nanmax(np.abs(y)) <= 1.0:  # targets given as fractions: the paper's [10 %, 100 %] as [0.1, 1]
            lo, hi = lo / 100.0, hi / 100.0
        loc, scale = np.full(n_mem, lo), np.full(n_mem, hi)
    else:
        loc = np.array([v.mean() for v in ym])
        scale = np.array([max(v.std(), 1e-8) for v in ym])
    rng = np.random.default_rng([seed, 7])
    with _torch_session(seed, threads) as torch:
        net = _build_stack(torch, n_mem, inp.x.shape[-1], cfg)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
        data = _tensors(torch, inp)
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))  # (M, n)
        idx = np.stack(members)  # (M, n_train)
        bs = min(cfg.batch_size, n_train)
        steps = n_train // bs
        fitted = FittedStack(net, cfg, task, loc, scale)
        loc_t = torch.from_numpy(loc[:, None].astype(np.float32))
        scale_t = torch.from_numpy(scale[:, None].astype(np.float32))
        sd_t = torch.from_numpy(np.array([max(v.std(), 1e-8) for v in ym], np.float32))[:, None]
        net.train()
        for _ in range(cfg.epochs):
            order = np.take_along_axis(idx, rng.permuted(np.tile(np.arange(n_train), (n_mem, 1)), axis=1), axis=1)
            for s in range(steps):
                b = torch.from_numpy(order[:, s * bs : (s + 1) * bs])  # (M, bs)
                z = net(*(t[b] for t in data))
                target = torch.gather(yt, 1, b)
                if task == "classification":
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target, reduction="none")
                elif cfg.output == "sigmoid":
                    pred = loc_t + (scale_t - loc_t) * torch.sigmoid(z)
                    loss = ((pred - target) / sd_t) ** 2
                else:
                    loss = (z - (target - loc_t) / scale_t) ** 2
                opt.zero_grad()
                loss.mean(1).sum().backward()  # members' losses are independent: sum of per-member means
                opt.step()
            sched.step()
        net.eval()
    return fitted


# --------------------------------------------------------------------------------------------------
# Predictors
# --------------------------------------------------------------------------------------------------
class GCNPredictor(Predictor):
    """The Neural Predictor's regressor.

    ``target`` transforms the labels before the linear head (``rank``: normal scores, our default, see
    ``targets.py``; ``standard``: mean/std as the re-implementations do); the sigmoid head always fits labels
    as they are. ``n_models > 1`` trains an ensemble (each member its own initialisation and batch order) and
    gives ``predict_std``. ``nb201_prune`` picks the NB201 graph encoding (``graphs.nb201_graph``). ``positions=P``
    adds a one-hot node index to the op labels (``graphs.GraphEncoder``): ``"auto"`` (default) does so where nodes
    are fixed layers (NAS-Bench-Graph) and not for cells; ``0`` is the paper's features everywhere.
    """

    def __init__(
        self,
        space,
        seed: int = 0,
        layers: int = 3,
        hidden: int = 144,
        fc: Sequence[int] = (128,),
        dropout: float = 0.1,
        lr: float = 1e-4,
        weight_decay: float = 1e-3,
        epochs: int = 300,
        batch_size: int = 10,
        norm: str = "row",
        output: str = "linear",
        output_range: Sequence[float] = (10.0, 100.0),
        target: str = "rank",
        n_models: int = 1,
        nb201_prune: bool = True,
        positions: int | str = "auto",
        threads: int | None = 1,
    ):
        super().__init__(space, seed)
        self.layers, self.hidden, self.fc, self.dropout = layers, hidden, tuple(fc), dropout
        self.lr, self.weight_decay, self.epochs, self.batch_size = lr, weight_decay, epochs, batch_size
        self.norm, self.output, self.output_range, self.target = norm, output, tuple(output_range), target
        self.n_models, self.nb201_prune, self.positions, self.threads = n_models, nb201_prune, positions, threads
        if n_models < 1:
            raise NasagentError(f"GCN n_models must be >= 1, got {n_models}")
        self.config().check()
        if norm not in ("row", "sym"):
            raise NasagentError(f"GCN norm must be 'row' or 'sym', got {norm!r}")
        check_positions(positions)
        TargetTransform(target)  # validates the name
        self._encoder = None
        self._fitted: FittedStack | None = None
        self._tf: list[TargetTransform | None] = []

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_encoder"] = None  # rebuilt on first use (it holds a closure over the space)
        return state

    def config(self) -> GCNConfig:
        return GCNConfig(
            self.layers, int(self.hidden), self.fc, self.dropout, self.lr, self.weight_decay, self.epochs,
            self.batch_size, self.output, self.output_range,
        )

    def widen(self, factor: float) -> dict:
        """Parameters for a network with about ``factor`` times the parameters (the paper's 1.5x refit)."""
        return {"hidden": int(round(self.hidden * math.sqrt(factor)))}

    @property
    def encoder(self) -> GraphEncoder:
        if self._encoder is None:
            self._encoder = GraphEncoder(self.space, nb201_prune=self.nb201_prune, positions=self.positions)
        return self._encoder

    def featurize(self, archs: Sequence) -> GraphInputs:
        return graph_inputs(self.encoder.encode_batch(archs), self.norm)

    def _transform(self, y: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, TargetTransform | None]:
        """Targets for one member trained on ``idx`` (entries outside ``idx`` are never read)."""
        if self.output == "sigmoid":
            return y, None
        tf = TargetTransform(self.target)
        z = np.zeros_like(y)
        z[idx] = tf.fit_transform(y[idx])
        return z, tf

    def _train(self, X: GraphInputs, y: np.ndarray, members: list[np.ndarray]) -> tuple[FittedStack, list]:
        pairs = [self._transform(y, m) for m in members]
        fitted = train_stack(X, np.stack([z for z, _ in pairs]), members, self.config(), self.seed, threads=self.threads)
        return fitted, [tf for _, tf in pairs]

    def _fit(self, X: GraphInputs, y: np.ndarray) -> None:
        self._fitted, self._tf = self._train(X, y, [np.arange(len(y))] * self.n_models)

    def _raw(self, X: GraphInputs) -> np.ndarray:
        """(members, archs) outputs in transformed units."""
        return self._fitted.predict(X)

    def _predict(self, X: GraphInputs) -> np.ndarray:
        raw = self._raw(X)
        tf = self._tf[0]
        return raw.mean(0) if tf is None else tf.inverse(raw.mean(0))

    def predict_std(self, archs: Sequence) -> np.ndarray:
        if self.n_models < 2:
            return super().predict_std(archs)
        if not self.fitted_:
            raise NotFittedError("GCNPredictor must be fitted before predict_std (call fit(archs, y))")
        raw = self._raw(self.featurize(archs))
        tf = self._tf[0]
        return raw.std(0) if tf is None else tf.inverse_scale(raw.mean(0), raw.std(0))

    def fit_predict_splits(self, X: GraphInputs, y: np.ndarray, splits) -> list[np.ndarray]:
        """Cross-validation fast path: one stacked training for every (train, validation) split."""
        fitted, tfs = self._train(X, y, [np.asarray(tr) for tr, _ in splits])
        raw = fitted.predict(X)
        return [raw[m, va] if tf is None else tf.inverse(raw[m, va]) for m, ((_, va), tf) in enumerate(zip(splits, tfs, strict=True))]


class CascadePredictor(Predictor):
    """The paper's two-stage NB101 predictor: a GCN classifier drops likely-poor architectures (label at or
    below ``threshold``), a GCN regressor trained on the above-threshold samples ranks the rest.

    ``predict`` keeps the ranking rule in the values it returns: architectures the classifier passes score
    ``max(regressor, threshold)``; rejected ones score ``y_min + (threshold - y_min) * p_good`` (below the
    threshold, ordered by the classifier's confidence), so sorting by prediction ranks predicted-good first.
    ``threshold_quantile`` sets the threshold from the training labels instead (for tables whose scale is not
    NB101's 91 %); ``single_stage=True`` switches the classifier off. The stages are two independent networks
    of one shape, ``gcn`` (ambiguity A6), the classifier trained with binary cross-entropy. With fewer than
    ``min_good`` samples on either side of the threshold it falls back to one stage (``stages_`` says which).
    """

    def __init__(
        self,
        space,
        seed: int = 0,
        threshold: float = 91.0,
        threshold_quantile: float | None = None,
        p_pass: float = 0.5,
        single_stage: bool = False,
        min_good: int = 10,
        gcn: dict | None = None,
    ):
        super().__init__(space, seed)
        if threshold_quantile is not None and not 0 < threshold_quantile < 1:
            raise NasagentError(f"cascade threshold_quantile must be in (0, 1), got {threshold_quantile}")
        if not 0 < p_pass < 1:
            raise NasagentError(f"cascade p_pass must be in (0, 1), got {p_pass}")
        self.threshold, self.threshold_quantile, self.p_pass = threshold, threshold_quantile, p_pass
        self.single_stage, self.min_good, self.gcn = single_stage, min_good, dict(gcn or {})
        self.regressor = GCNPredictor(space, seed=seed, **self.gcn)
        self.stages_: int | None = None

    def featurize(self, archs: Sequence) -> GraphInputs:
        return self.regressor.featurize(archs)

    def _fit(self, X: GraphInputs, y: np.ndarray) -> None:
        t = float(np.quantile(y, self.threshold_quantile)) if self.threshold_quantile is not None else float(self.threshold)
        self.threshold_, self.y_min_ = t, float(y.min())
        good = np.flatnonzero(y > t)
        self._clf = None
        if self.single_stage or min(len(good), len(y) - len(good)) < self.min_good:
            self.stages_ = 1
            self._reg, self._tf = self.regressor._train(X, y, [np.arange(len(y))])
            return
        self.stages_ = 2
        reg = self.regressor
        self._clf = train_stack(X, (y > t).astype(np.float64), [np.arange(len(y))], reg.config(), self.seed + 1, "classification", reg.threads)
        self._reg, self._tf = reg._train(X, y, [good])

    def pass_probability(self, archs: Sequence) -> np.ndarray:
        """The classifier's probability that each architecture is above the threshold (1 in one-stage mode)."""
        if not self.fitted_:
            raise NotFittedError("CascadePredictor must be fitted first (call fit(archs, y))")
        if self._clf is None:
            return np.ones(len(archs))
        return self._clf.predict(self.featurize(archs))[0]

    def _predict(self, X: GraphInputs) -> np.ndarray:
        raw = self._reg.predict(X)[0]
        reg = raw if self._tf[0] is None else self._tf[0].inverse(raw)
        if self._clf is None:
            return reg
        p = self._clf.predict(X)[0]
        t = self.threshold_
        return np.where(p >= self.p_pass, np.maximum(reg, t), self.y_min_ + (t - self.y_min_) * np.minimum(p, self.p_pass - 1e-6))
