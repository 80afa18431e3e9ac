"""AlphaX's Meta-DNN: value models that regress an architecture's accuracy from its encoding.

Three models from the AlphaX paper (App. 10), all behind the ``Predictor`` contract (``fit``/``predict``):

- ``MLPPredictor``: fully connected layers ending in one sigmoid unit. The paper's model has hidden layers
  512-2048-2048-512 trained with Adam (lr 2e-5, batch 128, 20 epochs), uniform initial weights and zero
  biases; those are the defaults here. Hidden activations are not stated in the paper: ReLU, as in the
  authors' public code.
- ``MultiStageMLPPredictor``: the paper's "multi-stage" model: one expert MLP per range of accuracies and a
  gating MLP that picks the expert. The paper gives neither the number of ranges nor their bounds: 4 ranges
  at the quartiles of the training targets by default (explicit bounds may be given).
- ``LSTMPredictor``: an LSTM over the encoding's digits (embedding 100, hidden 100) whose last hidden state
  goes through a fully connected layer and a sigmoid.

Every model trains with MSE on targets rescaled into the sigmoid's range (the paper's accuracies are
fractions in [0, 1]; a table in % or any other unit is rescaled by the training targets' range, with
``headroom`` above and below so that a better architecture than any seen can still be predicted).
``targets="rank"`` (MLP) regresses empirical quantiles instead, mapped back to the score's units (AlphaX's
default Meta-DNN; see docs/alphax.md). ``warm_start=True`` keeps the weights and optimizer state between fits, so refitting after a few new samples
costs a few epochs instead of a cold start (what AlphaX's online retraining needs on a CPU).

Constructor parameters are stored as given (scikit-learn style) and checked in ``fit``. ``threads`` sets
torch's intra-op threads during fit/predict and restores them afterwards (small models run 3-25x faster on
one thread). Fitted models pickle (AlphaX snapshots them with its tree).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.predictors.base import NotFittedError, Predictor

#: the paper's hidden layer widths (App. 10.2)
SEED_HIDDEN = (512, 2048, 2048, 512)


def _torch():
    try:
        import torch
    except ImportError:
        raise NasagentError(
            "the Meta-DNN predictors need PyTorch: pip install torch==2.13.0 (a CPU build), "
            "or switch the Meta-DNN off (AlphaX option metadnn=false)"
        ) from None
    return torch


@contextlib.contextmanager
def _threads(n: int | None):
    torch = _torch()
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _featurize(model: Predictor, archs: Sequence, features: str) -> np.ndarray:
    """``space.encode`` (the space's own vector) or ``space.encode_digits`` (AlphaX's digit encodings)."""
    if features == "encode":
        return Predictor.featurize(model, archs)
    if features != "digits":
        raise NasagentError(f"Meta-DNN features must be 'encode' or 'digits', got {features!r}")
    enc = getattr(model.space, "encode_digits", None)
    if enc is None:
        raise NasagentError(f"space {model.space.name!r} has no digit encoding; use features='encode'")
    try:
        return np.stack([np.asarray(enc(a), dtype=np.float64) for a in archs])
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise NasagentError(
            f"{type(model).__name__} cannot encode these architectures with space {model.space.name!r} "
            f"(are they from another space?): {type(e).__name__}: {e}"
        ) from None


def _check_positive(name: str, value, integer: bool = True) -> None:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if not ok or value <= 0:
        raise NasagentError(f"Meta-DNN parameter {name} must be a positive {'integer' if integer else 'number'}, got {value!r}")


class _TorchRegressor(Predictor):
    """Shared training loop: MSE on rescaled targets, mini-batches in a seeded order, optional warm start."""

    def __init__(
        self,
        space,
        seed: int = 0,
        lr: float = 2e-5,
        batch_size: int = 128,
        epochs: int = 20,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warm_start: bool = False,
        headroom: float = 0.1,
        threads: int | None = None,
    ):
        super().__init__(space, seed)
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.warm_start = warm_start
        self.headroom = headroom
        self.threads = threads
        self.net_ = None
        self.opt_ = None
        self.n_fits_ = 0

    # -- hooks ----------------------------------------------------------------------------------------
    def _build(self, X: np.ndarray):
        raise NotImplementedError

    def _inputs(self, X: np.ndarray):
        return _torch().as_tensor(X, dtype=_torch().float32)

    def _signature(self, X: np.ndarray) -> tuple:
        """What must not change for a warm start to reuse the network (input width by default)."""
        return (X.shape[1],)

    # -- checks ---------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        _check_positive("lr", self.lr, integer=False)
        _check_positive("batch_size", self.batch_size)
        _check_positive("epochs", self.epochs)
        if self.optimizer not in ("adam", "sgd"):
            raise NasagentError(f"Meta-DNN optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0 <= self.headroom < 1:
            raise NasagentError(f"Meta-DNN headroom must be in [0, 1), got {self.headroom!r}")

    # -- target scaling: y -> [0, 1] with headroom on both sides --------------------------------------
    # ``targets="rank"`` (MLP only) trains on the targets' empirical quantiles instead, so that the many
    # near-best architectures of a table are spread over the sigmoid's range rather than squeezed next to
    # rare failures; predictions map back through the quantile function (linear beyond the ends).
    def _set_scale(self, y: np.ndarray) -> None:
        lo, hi = float(y.min()), float(y.max())
        span = hi - lo if hi > lo else max(abs(hi), 1.0)
        self.y_lo_ = lo - self.headroom * span
        self.y_span_ = span * (1 + 2 * self.headroom)
        if getattr(self, "targets", "linear") == "rank":
            self.y_sorted_ = np.sort(y)
            self.u_grid_ = self.headroom + (1 - 2 * self.headroom) * (np.arange(len(y)) + 0.5) / len(y)

    def _to_unit(self, y: np.ndarray) -> np.ndarray:
        if getattr(self, "targets", "linear") == "rank":
            return np.interp(y, self.y_sorted_, self.u_grid_)
        return (y - self.y_lo_) / self.y_span_

    def _from_unit(self, u: np.ndarray) -> np.ndarray:
        if getattr(self, "targets", "linear") == "rank":
            out = np.interp(u, self.u_grid_, self.y_sorted_)
            slope = self.y_span_ / (1 + 2 * self.headroom)  # beyond the seen range: one span per unit
            out = np.where(u > self.u_grid_[-1], self.y_sorted_[-1] + (u - self.u_grid_[-1]) * slope, out)
            return np.where(u < self.u_grid_[0], self.y_sorted_[0] - (self.u_grid_[0] - u) * slope, out)
        return self.y_lo_ + u * self.y_span_

    # -- fit / predict --------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self._check_params()
        torch = _torch()
        with _threads(self.threads):
            sig = self._signature(X)
            if not (self.warm_start and self.net_ is not None and getattr(self, "signature_", None) == sig):
                with torch.random.fork_rng(devices=[]):  # seeded init without resetting the caller's torch RNG
                    torch.manual_seed(self.seed)  # only affects weight init; data order uses its own generator
                    self.net_ = self._build(X)
                self.opt_ = self._make_optimizer(self.net_.parameters())
                self.signature_ = sig
            self._set_scale(y)
            self._train(self.net_, self.opt_, self._inputs(X), torch.as_tensor(self._to_unit(y), dtype=torch.float32))
        self.n_fits_ += 1

    def _make_optimizer(self, params):
        torch = _torch()
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _train(self, net, opt, X, y) -> None:
        torch = _torch()
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.n_fits_)
        n = len(y)
        net.train()
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                opt.zero_grad()
                loss = torch.mean((net(X[idx]).squeeze(-1) - y[idx]) ** 2)
                loss.backward()
                opt.step()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        torch = _torch()
        with _threads(self.threads), torch.no_grad():
            self.net_.eval()
            out = [self.net_(self._inputs(X[i : i + 4096])).squeeze(-1).numpy() for i in range(0, len(X), 4096)]
        return self._from_unit(np.concatenate(out).astype(np.float64))

    def get_params(self) -> dict:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p not in ("self", "space")]
        return {k: getattr(self, k) for k in names}


def _mlp(d_in: int, hidden: Sequence[int], activation: str, sigmoid: bool):
    torch = _torch()
    nn = torch.nn
    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU}
    if activation not in acts:
        raise NasagentError(f"Meta-DNN activation must be one of {', '.join(acts)}, got {activation!r}")
    layers: list = []
    d = d_in
    for h in hidden:
        layers += [nn.Linear(d, int(h)), acts[activation]()]
        d = int(h)
    layers.append(nn.Linear(d, 1))
    if sigmoid:
        layers.append(nn.Sigmoid())
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):  # the paper: uniform initial weights, zero biases (He-uniform bound)
            bound = float(np.sqrt(6.0 / m.in_features))
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)
    return net


class MLPPredictor(_TorchRegressor):
    """The Meta-DNN MLP. Defaults are the paper's (App. 10.2); AlphaX's own default is a smaller,
    warm-started model (see docs/alphax.md for the measurement behind that choice)."""

    def __init__(
        self,
        space,
        seed: int = 0,
        hidden_sizes: Sequence[int] = SEED_HIDDEN,
        activation: str = "relu",
        output: str = "sigmoid",
        lr: float = 2e-5,
        batch_size: int = 128,
        epochs: int = 20,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warm_start: bool = False,
        headroom: float = 0.1,
        threads: int | None = None,
        features: str = "encode",
        targets: str = "linear",
    ):
        super().__init__(space, seed, lr, batch_size, epochs, optimizer, momentum, weight_decay, warm_start, headroom, threads)
        self.targets = targets
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.output = output
        self.features = features

    def featurize(self, archs: Sequence) -> np.ndarray:
        return _featurize(self, archs, self.features)

    def _check_params(self) -> None:
        super()._check_params()
        if self.targets not in ("linear", "rank"):
            raise NasagentError(f"Meta-DNN targets must be 'linear' or 'rank', got {self.targets!r}")
        if self.output not in ("sigmoid", "linear"):
            raise NasagentError(f"Meta-DNN output must be 'sigmoid' or 'linear', got {self.output!r}")
        for h in self.hidden_sizes:
            _check_positive("hidden_sizes entry", h)

    def _build(self, X: np.ndarray):
        return _mlp(X.shape[1], tuple(self.hidden_sizes), self.activation, self.output == "sigmoid")

    def get_params(self) -> dict:
        p = super().get_params()
        p["hidden_sizes"] = tuple(p["hidden_sizes"])
        return p


class MultiStageMLPPredictor(Predictor):
    """Range experts plus a gate (AlphaX §4.2): the gate classifies which accuracy range an architecture
    falls in, and that range's expert MLP predicts the value (``soft=True`` mixes experts by the gate's
    probabilities instead of picking one).

    ``ranges``: number of quantile ranges of the training targets, or explicit inner boundaries (e.g.
    ``[25, 50, 75]`` for the paper's example on a 0-100 scale). Experts share the MLP's parameters.
    """

    def __init__(
        self,
        space,
        seed: int = 0,
        ranges: int | Sequence[float] = 4,
        soft: bool = False,
        hidden_sizes: Sequence[int] = SEED_HIDDEN,
        activation: str = "relu",
        lr: float = 2e-5,
        batch_size: int = 128,
        epochs: int = 20,
        optimizer: str = "adam",
        momentum: float = 0.9,
        warm_start: bool = False,
        threads: int | None = None,
        features: str = "encode",
    ):
        super().__init__(space, seed)
        self.features = features
        self.ranges = ranges
        self.soft = soft
        self.hidden_sizes = hidden_sizes
        self.activation = activation
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.optimizer = optimizer
        self.momentum = momentum
        self.warm_start = warm_start
        self.threads = threads
        self.experts_: list[MLPPredictor] = []
        self.gate_ = None
        self.n_fits_ = 0

    def _bounds(self, y: np.ndarray) -> np.ndarray:
        if isinstance(self.ranges, (int, np.integer)):
            if self.ranges < 1:
                raise NasagentError(f"multi-stage Meta-DNN needs ranges >= 1, got {self.ranges}")
            return np.quantile(y, np.linspace(0, 1, int(self.ranges) + 1)[1:-1])
        b = np.sort(np.asarray(self.ranges, dtype=float))
        return b

    def _expert(self, i: int) -> MLPPredictor:
        return MLPPredictor(
            self.space, seed=self.seed + 7919 * (i + 1), hidden_sizes=self.hidden_sizes, activation=self.activation,
            lr=self.lr, batch_size=self.batch_size, epochs=self.epochs, optimizer=self.optimizer,
            momentum=self.momentum, warm_start=self.warm_start, threads=self.threads, features=self.features,
        )

    def featurize(self, archs: Sequence) -> np.ndarray:
        return _featurize(self, archs, self.features)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        torch = _torch()
        self.bounds_ = self._bounds(y)
        label = np.searchsorted(self.bounds_, y, side="right")
        k = len(self.bounds_) + 1
        if len(self.experts_) != k or not self.warm_start:
            self.experts_ = [self._expert(i) for i in range(k)]
        for i, ex in enumerate(self.experts_):
            mask = label == i
            # an expert with too few samples of its own learns from its neighbours' range too
            if mask.sum() < 2:
                mask = np.abs(label - i) <= 1
            if mask.sum() < 2:
                mask = np.ones_like(mask)
            ex._fit(X[mask], y[mask])
            ex.fitted_ = True
        with _threads(self.threads):
            sig = (X.shape[1], k)
            if not (self.warm_start and self.gate_ is not None and getattr(self, "gate_sig_", None) == sig):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(self.seed)
                    body = _mlp(X.shape[1], tuple(self.hidden_sizes), self.activation, sigmoid=False)
                    body[-1] = torch.nn.Linear(body[-1].in_features, k)  # k logits instead of one value
                self.gate_ = body
                self.gate_opt_ = (
                    torch.optim.Adam(body.parameters(), lr=self.lr)
                    if self.optimizer == "adam"
                    else torch.optim.SGD(body.parameters(), lr=self.lr, momentum=self.momentum)
                )
                self.gate_sig_ = sig
            Xt = torch.as_tensor(X, dtype=torch.float32)
            yt = torch.as_tensor(label, dtype=torch.long)
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.n_fits_)
            self.gate_.train()
            for _ in range(self.epochs):
                order = torch.randperm(len(yt), generator=gen)
                for s in range(0, len(yt), self.batch_size):
                    idx = order[s : s + self.batch_size]
                    self.gate_opt_.zero_grad()
                    loss = torch.nn.functional.cross_entropy(self.gate_(Xt[idx]), yt[idx])
                    loss.backward()
                    self.gate_opt_.step()
        self.n_fits_ += 1

    def gate_probabilities(self, archs: Sequence) -> np.ndarray:
        if not self.fitted_:
            raise NotFittedError("MultiStageMLPPredictor must be fitted before predict (call fit(archs, y))")
        return self._gate(self.featurize(archs))

    def _gate(self, X: np.ndarray) -> np.ndarray:
        torch = _torch()
        with _threads(self.threads), torch.no_grad():
            self.gate_.eval()
            return torch.softmax(self.gate_(torch.as_tensor(X, dtype=torch.float32)), -1).numpy().astype(np.float64)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        p = self._gate(X)
        preds = np.stack([ex._predict(X) for ex in self.experts_], axis=1)
        if self.soft:
            return (p * preds).sum(1)
        return preds[np.arange(len(X)), p.argmax(1)]


class LSTMPredictor(_TorchRegressor):
    """An LSTM over the architecture's digits (AlphaX App. 10.1, after PNAS): embedding ``embedding`` and
    hidden ``hidden``, the last hidden state through a linear layer and a sigmoid.

    Tokens are ``space.encode_digits(arch)`` where a space has it (the AlphaX 56- and 60-digit encodings),
    otherwise the rounded ``space.encode`` vector. Embeddings start uniform in [-0.1, 0.1] (the paper).
    """

    def __init__(
        self,
        space,
        seed: int = 0,
        embedding: int = 100,
        hidden: int = 100,
        lr: float = 2e-5,
        batch_size: int = 128,
        epochs: int = 20,
        optimizer: str = "adam",
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warm_start: bool = False,
        headroom: float = 0.1,
        threads: int | None = None,
    ):
        super().__init__(space, seed, lr, batch_size, epochs, optimizer, momentum, weight_decay, warm_start, headroom, threads)
        self.embedding = embedding
        self.hidden = hidden
        self.vocab_ = None

    def featurize(self, archs: Sequence) -> np.ndarray:
        return np.rint(_featurize(self, archs, "digits" if hasattr(self.space, "encode_digits") else "encode"))

    def _signature(self, X: np.ndarray) -> tuple:
        if self.vocab_ is None or (self.warm_start and X.max() >= self.vocab_) or not self.warm_start:
            self.vocab_ = int(max(X.max() + 1, self.vocab_ or 0))
        return (X.shape[1], self.vocab_)

    def _inputs(self, X: np.ndarray):
        torch = _torch()
        return torch.as_tensor(np.clip(X, 0, self.vocab_ - 1), dtype=torch.long)

    def _build(self, X: np.ndarray):
        _torch()
        return _LSTMNet(int(self.vocab_), int(self.embedding), int(self.hidden))


try:  # a module-level class, so fitted LSTM models pickle
    import torch as _t

    class _LSTMNet(_t.nn.Module):
        def __init__(self, vocab: int, emb: int, hid: int):
            super().__init__()
            nn = _t.nn
            self.emb = nn.Embedding(vocab, emb)
            self.lstm = nn.LSTM(emb, hid, batch_first=True)
            self.fc = nn.Linear(hid, 1)
            nn.init.uniform_(self.emb.weight, -0.1, 0.1)
            bound = float(np.sqrt(6.0 / hid))
            nn.init.uniform_(self.fc.weight, -bound, bound)
            nn.init.zeros_(self.fc.bias)

        def forward(self, tokens):
            _, (h, _) = self.lstm(self.emb(tokens))
            return _t.sigmoid(self.fc(h[-1]))

except ImportError:  # pragma: no cover - torch is optional; _torch() raises the clear error
    _LSTMNet = None


#: value-model names AlphaX accepts for its ``model`` option
MODELS = {"mlp": MLPPredictor, "multistage": MultiStageMLPPredictor, "lstm": LSTMPredictor}


def make_value_model(name: str, space, seed: int = 0, **params) -> Predictor:
    cls = MODELS.get(name)
    if cls is None:
        raise NasagentError(f"unknown Meta-DNN model {name!r}; models: {', '.join(MODELS)}")
    import inspect

    allowed = set(inspect.signature(cls.__init__).parameters) - {"self", "space", "seed"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise NasagentError(f"Meta-DNN model {name!r} has no parameter {unknown[0]!r}; its parameters: {', '.join(sorted(allowed))}")
    return cls(space, seed=seed, **params)
