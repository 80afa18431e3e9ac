"""Evaluation by training from scratch: the expensive, accurate path of the evaluation module.

``TrainingBenchmark`` is an ordinary benchmark (``bench(arch, budget, hint) -> Result``) registered as the
family ``train:<data>`` (``train:digits``, ``train:digits16``, ``train:/path/file.npz``, ``train:/path/folder``),
built on the space given by ``--space`` (nb201 by default). Each call builds the architecture's network,
trains it with SGD (momentum, cosine schedule) on the training split and returns:

- ``val_accuracy`` (%, the default objective; searches use it), ``test_accuracy`` (%, reported only),
- ``params``, ``flops`` (one image, 2 per multiply-add), ``latency_ms`` (median, batch 1, fixed threads),
- ``train_loss``, ``epochs_trained``, ``stopped_early`` (0/1), ``inherited_fraction``, ``parent_distance``,
- with ``measure_memory=True``: ``peak_memory_mb`` of one training step (``systems.meter.measure_peak``,
  process max RSS if that module is unavailable),
- with ``max_memory_mb``: ``est_memory_mb``, the estimated memory of a training step (``systems.memory``,
  weights and momentum included); a network estimated above the limit fails at once, untrained,
- cost = measured seconds of the whole evaluation.

Thesis Ch. 2/3 practices, all optional:

- *Early termination*: the search trains ``epochs`` (a short schedule; AlphaX used 70 of 600), and
  ``finetune`` continues the top-K architectures for more epochs afterwards.
- *Learning-curve early stopping* (``curve_stop=True``): after ``min_epochs`` the validation curve is
  extrapolated (linear in log-epoch) to the last epoch; a run whose optimistic extrapolation falls below the
  best finished run is stopped.
- *Weight inheritance*: ``hint={"parent": <arch string>}`` (AlphaX) or, with ``inherit="nearest"``, the
  already-trained network at the smallest edit distance: layers with the same name and shape are copied, the
  rest initialised, and training runs ``inherit_epochs`` (AlphaX: 20 instead of 70, i.e. 2/7 of ``epochs``).
- *The published regularisers* (DARTS' evaluation recipe, which PARSEC follows, and AlphaX's NASNet one):
  ``cutout=S`` zeroes one random S x S square per training image (any network); for DARTS and NASNet networks
  ``aux_weight=w`` adds w times the auxiliary head's loss (the network gets the head) and ``drop_path=p``
  drops op outputs (branches) with a probability that grows linearly from 0 to p over the epochs. Schedules:
  cosine (default), ``lr_decay`` (exponential per epoch) or ``sgdr_period=T0`` (cosine with warm restarts,
  periods T0, T0·``sgdr_mult``, ...; AlphaX: 10, 20, 40 = its 70 search epochs).
- *Checkpoints*: with a ``checkpoint_dir`` every epoch is saved, and an interrupted evaluation resumes at its
  last finished epoch; finished networks are kept there for inheritance and fine-tuning.

A loss that becomes NaN or infinite ends the evaluation as a failed trial naming the epoch and step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Benchmark, Metric
from nasagent.core import Budget, NasagentError, Result
from nasagent.evaluation.datasets import Dataset, load_dataset
from nasagent.evaluation.networks import _torch, build

#: AlphaX's transfer schedule: 20 epochs for an inherited network where 70 train one from scratch
INHERIT_RATIO = 20 / 70


class TrainingDiverged(NasagentError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainSettings:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05
    min_lr: float = 0.0
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    grad_clip: float | None = 5.0
    max_seconds: float | None = None
    curve_stop: bool = False
    min_epochs: int | None = None  # for curve_stop; default max(2, epochs // 4)
    curve_margin: float = 1.0  # accuracy points added to the extrapolation before comparing (optimism)
    cutout: int = 0  # side of the square zeroed in each training image (DARTS: 16 on 32x32); 0: off
    aux_weight: float = 0.0  # weight of the auxiliary head's loss (DARTS: 0.4); needs a network with that head
    drop_path: float = 0.0  # final path-dropout probability, reached linearly over the epochs (DARTS: 0.2; PARSEC: 0.4)
    label_smoothing: float = 0.0  # DARTS' ImageNet recipe: 0.1
    lr_decay: float | None = None  # lr * lr_decay**epoch instead of the cosine schedule (DARTS' ImageNet recipe: 0.97)
    sgdr_period: int | None = None  # cosine with warm restarts: first period (AlphaX: 10 epochs)
    sgdr_mult: int = 2  # each period this many times the previous one
    amp: bool = False  # automatic mixed precision: float16 with loss scaling on CUDA, bfloat16 elsewhere

    def check(self) -> TrainSettings:
        if int(self.epochs) < 1:
            raise NasagentError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise NasagentError(f"batch_size must be >= 1, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise NasagentError(f"lr must be a positive number, got {self.lr}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise NasagentError(f"max_seconds must be > 0, got {self.max_seconds}")
        if int(self.cutout) < 0:
            raise NasagentError(f"cutout must be a square side >= 0 (0: off), got {self.cutout}")
        if not (0 <= self.aux_weight and math.isfinite(self.aux_weight)):
            raise NasagentError(f"aux_weight must be >= 0, got {self.aux_weight}")
        if not 0 <= self.drop_path < 1:
            raise NasagentError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if not 0 <= self.label_smoothing < 1:
            raise NasagentError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lr_decay is not None and not 0 < self.lr_decay <= 1:
            raise NasagentError(f"lr_decay must be in (0, 1] (a per-epoch factor), got {self.lr_decay}")
        if self.sgdr_period is not None and (int(self.sgdr_period) < 1 or int(self.sgdr_mult) < 1):
            raise NasagentError(f"sgdr_period and sgdr_mult must be >= 1, got {self.sgdr_period} and {self.sgdr_mult}")
        if self.sgdr_period is not None and self.lr_decay is not None:
            raise NasagentError("choose one schedule: lr_decay or sgdr_period, not both")
        return self

    def check_model(self, model) -> None:
        """The regularisers that need something of the network: say which network has it, before training."""
        if self.aux_weight > 0 and getattr(model, "auxiliary_head", None) is None:
            raise NasagentError("aux_weight > 0 needs a network with an auxiliary head: DARTS or NASNet cells (--space darts "
                                "or nasnet); the training evaluator adds the head itself")
        if self.drop_path > 0 and not hasattr(model, "drop_path_prob"):
            raise NasagentError("drop_path > 0 is implemented for DARTS and NASNet networks (--space darts or nasnet) only")


@dataclass
class TrainOutcome:
    val_accuracy: float
    test_accuracy: float
    train_loss: float
    epochs_trained: int
    seconds: float
    curve: list[float] = field(default_factory=list)  # validation accuracy after each epoch
    stopped_early: bool = False
    stop_reason: str = ""
    predicted_final: float | None = None


# -- small shared loops (also used by the supernets) ------------------------------------------------------------
def pick_device(device: str = "auto"):
    torch = _torch()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise NasagentError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise NasagentError(f"device {device!r} was asked for but CUDA is not available; use device='cpu'")
    return dev


def batch_order(n: int, batch_size: int, seed, epoch: int) -> list[np.ndarray]:
    """Seeded shuffled mini-batches of ``range(n)`` for one epoch (a batch of one is merged: BN needs two)."""
    perm = np.random.default_rng([*np.atleast_1d(seed).tolist(), 101, epoch]).permutation(n)
    out = [perm[i : i + batch_size] for i in range(0, n, batch_size)]
    if len(out) > 1 and len(out[-1]) < 2:
        out[-2] = np.concatenate([out[-2], out.pop()])
    return out


def accuracy(model, x: np.ndarray, y: np.ndarray, device, arch=None, batch_size: int = 512) -> float:
    """Top-1 accuracy (%) of ``model`` (eval mode) on arrays ``x``, ``y``."""
    torch = _torch()
    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[i : i + batch_size]).to(device)
            out = model(xb) if arch is None else model(xb, arch)
            correct += int((out.argmax(1).cpu().numpy() == y[i : i + batch_size]).sum())
    model.train(was)
    return 100.0 * correct / max(1, len(y))


def cosine_lr(settings: TrainSettings, epoch: int, epochs: int) -> float:
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1 + math.cos(math.pi * epoch / max(1, epochs)))


def epoch_lr(settings: TrainSettings, epoch: int, epochs: int) -> float:
    """The cosine schedule; the exponential one with ``lr_decay``; cosine with warm restarts (SGDR) with
    ``sgdr_period``, the lr going back to its maximum at the start of every period."""
    if settings.lr_decay is not None:
        return settings.lr * settings.lr_decay**epoch
    if settings.sgdr_period is not None:
        start, period = 0, int(settings.sgdr_period)
        while epoch >= start + period:
            start, period = start + period, period * int(settings.sgdr_mult)
        return cosine_lr(settings, epoch - start, period)
    return cosine_lr(settings, epoch, epochs)


def sgd(params, settings: TrainSettings):
    torch = _torch()
    return torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum, nesterov=settings.nesterov and settings.momentum > 0,
                           weight_decay=settings.weight_decay)


def cutout(x, size: int, rng: np.random.Generator):
    """Zero one ``size`` x ``size`` square per image, centred uniformly (clipped at the borders), as DeVries &
    Taylor's cutout that DARTS trains with. The centres come from ``rng``, so a seeded run is reproducible."""
    torch = _torch()
    n, _, h, w = x.shape
    cy, cx = rng.integers(0, h, size=n), rng.integers(0, w, size=n)
    half = size // 2
    rows = np.abs(np.arange(h)[None, :] - cy[:, None] + 0.5) <= half  # [c - half, c + half) like the reference
    cols = np.abs(np.arange(w)[None, :] - cx[:, None] + 0.5) <= half
    keep = ~(rows[:, :, None] & cols[:, None, :])
    return x * torch.from_numpy(keep).to(device=x.device, dtype=x.dtype)[:, None]


class MixedPrecision:
    """``amp``: forward passes under autocast, float16 with a gradient scaler on CUDA (fp16 gradients underflow
    without it) and bfloat16 elsewhere (same exponent range as float32: no scaler needed). Off, every method is the
    plain float32 step, so one training loop serves both."""

    def __init__(self, enabled: bool, device):
        torch = _torch()
        self.enabled = bool(enabled)
        device = torch.device(device)
        self.device_type = device.type
        self.dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.enabled and device.type == "cuda")

    def autocast(self):
        return _torch().autocast(self.device_type, dtype=self.dtype, enabled=self.enabled)

    def backward(self, loss) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self, optimizer) -> None:
        """Bring gradients back to their true size (before clipping or inspecting them)."""
        self.scaler.unscale_(optimizer)

    def step(self, optimizer) -> None:
        self.scaler.step(optimizer)  # skips the update when the scaled gradients overflowed
        self.scaler.update()

    def skip(self) -> None:
        """An unscaled step found non-finite gradients and is dropped: lower the scale as a skipped step would."""
        if self.scaler.is_enabled():
            self.scaler.update()

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if state and self.scaler.is_enabled():
            self.scaler.load_state_dict(state)


def recipe_loss(model, x, y, settings: TrainSettings, *args):
    """The training loss under ``settings``: cross-entropy (with ``label_smoothing``) of ``model(x, *args)``,
    plus ``aux_weight`` times that of the auxiliary head (stand-alone training and PARSEC's weight update)."""
    torch = _torch()
    smooth = float(settings.label_smoothing)
    if settings.aux_weight > 0:
        out, aux = model(x, *args, return_aux=True)
        return (torch.nn.functional.cross_entropy(out, y, label_smoothing=smooth)
                + settings.aux_weight * torch.nn.functional.cross_entropy(aux, y, label_smoothing=smooth))
    return torch.nn.functional.cross_entropy(model(x, *args), y, label_smoothing=smooth)


def check_loss(loss, epoch: int, step: int, lr: float) -> None:
    value = float(loss)
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"training diverged: the loss became {value} at epoch {epoch + 1}, step {step + 1} (lr {lr:.3g}); "
            "lower the learning rate (lr=...) or keep gradient clipping on"
        )


def predict_final(curve: list[float], epochs: int) -> float:
    """Extrapolate a validation curve to epoch ``epochs``: least squares of accuracy on log(epoch)."""
    t = np.log(np.arange(1, len(curve) + 1, dtype=float))
    if len(curve) < 2:
        return float(curve[-1])
    slope, intercept = np.polyfit(t, np.asarray(curve, dtype=float), 1)
    if slope <= 0:
        return float(curve[-1])
    return float(min(100.0, max(curve[-1], intercept + slope * math.log(epochs))))


def inherit_weights(model, state: dict) -> float:
    """Copy every tensor of ``state`` whose name and shape exist in ``model``; return the fraction of the
    model's parameters (by count) that were inherited."""
    own = model.state_dict()
    copied = {k: v for k, v in state.items() if k in own and tuple(own[k].shape) == tuple(v.shape)}
    own.update(copied)
    model.load_state_dict(own)
    names = dict(model.named_parameters())
    total = sum(p.numel() for p in names.values())
    got = sum(names[k].numel() for k in copied if k in names)
    return got / total if total else 0.0


def edit_distance(space, a, b) -> int:
    """Edits between two architectures: differing edge ops (NB201), differing (op, input) slots (DARTS),
    else half the L1 distance of the one-hot encodings (the number of changed choices)."""
    name = getattr(space, "name", "")
    if name == "nb201":
        return sum(x != y for x, y in zip(a, b, strict=True))
    if name == "darts":  # node by node on the canonical genotypes (sets would forget where a pair sits)
        from itertools import zip_longest

        return sum(x != y for k in ("normal", "reduce") for x, y in zip_longest(a.cell(k), b.cell(k)))
    if hasattr(space, "edit_distance"):
        return int(space.edit_distance(a, b))
    return int(round(np.abs(space.encode(a) - space.encode(b)).sum() / 2))


def _atomic_save(obj, path: Path) -> None:
    torch = _torch()
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train_model(model, data: Dataset, settings: TrainSettings, seed: int, device, checkpoint: Path | None = None,
                reference: float | None = None, measure_memory: bool = False) -> tuple[TrainOutcome, dict]:
    """Train ``model`` on ``data`` (resuming from ``checkpoint`` when it holds a run). Returns the outcome and
    extras (``peak_memory_mb``, ``memory_source``). ``reference`` enables learning-curve stopping against it."""
    torch = _torch()
    settings.check()
    settings.check_model(model)
    model.to(device)
    opt = sgd(model.parameters(), settings)
    amp = MixedPrecision(settings.amp, device)
    epochs = int(settings.epochs)
    start_epoch, curve, elapsed, last_loss = 0, [], 0.0, float("nan")
    if checkpoint is not None and checkpoint.exists():
        try:
            ck = torch.load(checkpoint, map_location=device, weights_only=False)
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            amp.load_state_dict(ck.get("amp"))
            start_epoch, curve, elapsed, last_loss = ck["epoch"], list(ck["curve"]), ck["elapsed"], ck["loss"]
            if "torch_rng" in ck:  # drop-path and dropout draw from torch's generator: continue its stream
                torch.set_rng_state(ck["torch_rng"].cpu())
                if ck.get("cuda_rng") is not None and torch.device(device).type == "cuda":
                    torch.cuda.set_rng_state(ck["cuda_rng"].cpu(), device)
        except (OSError, RuntimeError, KeyError, EOFError) as e:
            raise NasagentError(f"checkpoint {checkpoint} cannot be read ({e}); delete it to start this evaluation over") from None
    extras: dict = {}
    t0 = time.perf_counter()
    xtr = torch.from_numpy(data.x_train).to(device)
    ytr = torch.from_numpy(data.y_train).to(device)
    min_epochs = settings.min_epochs or max(2, epochs // 4)
    stop_reason, predicted = "", None
    epoch = start_epoch
    model.train()
    for epoch in range(start_epoch, epochs):
        lr = epoch_lr(settings, epoch, epochs)
        for g in opt.param_groups:
            g["lr"] = lr
        if settings.drop_path > 0:
            model.drop_path_prob = settings.drop_path * epoch / epochs  # DARTS' linear ramp
        cut_rng = np.random.default_rng([seed, epoch, 31])  # per epoch, so a resumed run draws the same squares
        losses = []
        for step, idx in enumerate(batch_order(len(ytr), settings.batch_size, seed, epoch)):
            ib = torch.from_numpy(idx).to(device)

            def one_step(ib=ib, cut_rng=cut_rng):
                opt.zero_grad(set_to_none=True)
                xb = cutout(xtr[ib], int(settings.cutout), cut_rng) if settings.cutout else xtr[ib]
                with amp.autocast():
                    loss = recipe_loss(model, xb, ytr[ib], settings)
                amp.backward(loss)
                if settings.grad_clip:
                    amp.unscale(opt)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
                amp.step(opt)
                return loss.detach().float()

            if measure_memory and step == 1 and "peak_memory_mb" not in extras:
                loss, extras = _measured(one_step, device)
            else:
                loss = one_step()
            check_loss(loss, epoch, step, lr)
            losses.append(float(loss))
        last_loss = float(np.mean(losses))
        curve.append(accuracy(model, data.x_val, data.y_val, device))
        seconds = elapsed + time.perf_counter() - t0
        if checkpoint is not None:
            cuda_rng = torch.cuda.get_rng_state(device) if torch.device(device).type == "cuda" else None
            _atomic_save({"model": model.state_dict(), "optimizer": opt.state_dict(), "amp": amp.state_dict(), "epoch": epoch + 1, "curve": curve,
                          "elapsed": seconds, "loss": last_loss, "torch_rng": torch.get_rng_state(), "cuda_rng": cuda_rng},
                         checkpoint)
        if epoch + 1 < epochs and settings.max_seconds is not None and seconds >= settings.max_seconds:
            stop_reason = f"time budget of {settings.max_seconds:g} s reached after {epoch + 1} epoch(s)"
            break
        if settings.curve_stop and reference is not None and epoch + 1 >= min_epochs and epoch + 1 < epochs:
            predicted = predict_final(curve, epochs)
            if predicted + settings.curve_margin < reference:
                stop_reason = f"learning curve predicts {predicted:.2f} % < best finished {reference:.2f} %"
                break
    done = len(curve)
    outcome = TrainOutcome(
        val_accuracy=curve[-1] if curve else float("nan"),
        test_accuracy=accuracy(model, data.x_test, data.y_test, device),
        train_loss=last_loss,
        epochs_trained=done,
        seconds=elapsed + time.perf_counter() - t0,
        curve=curve,
        stopped_early=bool(stop_reason),
        stop_reason=stop_reason,
        predicted_final=predicted,
    )
    return outcome, extras


def _measured(step_fn, device):
    """Run one training step under the project's peak-memory meter (process max RSS if it is missing)."""
    try:
        from nasagent.systems.meter import measure_peak
    except ImportError:
        measure_peak = None
    if measure_peak is not None:
        try:
            pm = measure_peak(step_fn, device=str(device), rss=False)
            return pm.result, {"peak_memory_mb": pm.peak_mb, "memory_source": pm.source}
        except NasagentError:
            pass
    import resource

    loss = step_fn()
    return loss, {"peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "memory_source": "process-max-rss"}


# -- the store of trained networks (inheritance, fine-tuning) ------------------------------------------------------
#: the validation accuracies of finished runs, one per line, in a configuration's running directory
FINISHED_LEDGER = "finished.txt"


class WeightStore:
    """Trained weights by architecture key: on disk under ``root`` (shared by worker processes), or in memory."""

    def __init__(self, root: Path | None, max_in_memory: int = 256):
        self.root = Path(root) if root is not None else None
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        self.memory: dict[str, dict] = {}
        self.max_in_memory = max_in_memory

    @staticmethod
    def slug(key: str) -> str:
        return hashlib.sha1(key.encode()).hexdigest()[:20]

    def put(self, key: str, arch_text: str, state: dict, val_accuracy: float) -> None:
        state = {k: v.detach().cpu().clone() for k, v in state.items()}
        if self.root is None:
            if len(self.memory) >= self.max_in_memory:
                self.memory.pop(next(iter(self.memory)))
            self.memory[key] = {"arch": arch_text, "state": state, "val_accuracy": val_accuracy}
            return
        s = self.slug(key)
        _atomic_save(state, self.root / f"{s}.pt")
        (self.root / f"{s}.json").write_text(json.dumps({"key": key, "arch": arch_text, "val_accuracy": val_accuracy}))

    def get(self, key: str) -> dict | None:
        if self.root is None:
            hit = self.memory.get(key)
            return None if hit is None else hit["state"]
        p = self.root / f"{self.slug(key)}.pt"
        if not p.exists():
            return None
        return _torch().load(p, map_location="cpu", weights_only=True)

    def entries(self) -> list[dict]:
        if self.root is None:
            return [{"key": k, "arch": v["arch"], "val_accuracy": v["val_accuracy"]} for k, v in self.memory.items()]
        out = []
        for p in sorted(self.root.glob("*.json")):
            try:
                out.append(json.loads(p.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
        return out


# -- the benchmark ------------------------------------------------------------------------------------------------------
class TrainingBenchmark(Benchmark):
    """Train each architecture from scratch (or from an inherited parent) on a dataset; see the module doc."""

    def __init__(
        self,
        data: Dataset | str = "digits",
        space="nb201",
        seed: int = 0,
        data_seed: int = 0,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 0.05,
        weight_decay: float = 5e-4,
        grad_clip: float | None = 5.0,
        max_seconds: float | None = None,
        curve_stop: bool = False,
        cutout: int = 0,
        aux_weight: float = 0.0,
        drop_path: float = 0.0,
        label_smoothing: float = 0.0,
        lr_decay: float | None = None,
        sgdr_period: int | None = None,
        sgdr_mult: int = 2,
        amp: bool = False,
        inherit: str = "hint",
        inherit_epochs: int | None = None,
        max_parent_distance: int | None = None,
        checkpoint_dir: str | Path | None = None,
        device: str = "auto",
        threads: int | None = 1,
        measure: bool = True,
        measure_memory: bool = False,
        max_memory_mb: float | None = None,
        **sizes,
    ):
        from nasagent.registry import make_space

        torch = _torch()
        if threads:
            torch.set_num_threads(int(threads))
        sp = make_space(space) if isinstance(space, str) else space
        dataset = data if isinstance(data, Dataset) else load_dataset(str(data), seed=int(data_seed))
        if inherit not in ("hint", "nearest", "none"):
            raise NasagentError(f"inherit must be 'hint', 'nearest' or 'none', got {inherit!r}")
        metrics = {
            "val_accuracy": Metric("val_accuracy", "max", "validation accuracy (%) after training", report="test_accuracy"),
            "test_accuracy": Metric("test_accuracy", "max", "test accuracy (%) after training (report it, never search on it)"),
            "train_loss": Metric("train_loss", "min", "mean training loss of the last epoch"),
            "params": Metric("params", "min", "number of parameters"),
            "flops": Metric("flops", "min", "FLOPs of one image's forward pass (2 per multiply-add)"),
            "latency_ms": Metric("latency_ms", "min", "median CPU/GPU latency of one image (ms)"),
            "peak_memory_mb": Metric("peak_memory_mb", "min", "peak memory of one training step (MiB)"),
            "est_memory_mb": Metric("est_memory_mb", "min", "estimated peak of one training step plus weights (MiB, systems.memory)"),
        }
        super().__init__(
            name=f"train:{dataset.name}", space=sp, metrics=metrics, default_metric="val_accuracy",
            notes=f"trains each architecture on {dataset.describe()}; cost = measured seconds",
        )
        self.data = dataset
        self.seed = int(seed)
        self.settings = TrainSettings(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), weight_decay=float(weight_decay),
                                      grad_clip=grad_clip, max_seconds=max_seconds, curve_stop=bool(curve_stop),
                                      cutout=int(cutout), aux_weight=float(aux_weight), drop_path=float(drop_path),
                                      label_smoothing=float(label_smoothing), lr_decay=lr_decay, sgdr_period=sgdr_period,
                                      sgdr_mult=int(sgdr_mult), amp=bool(amp)).check()
        if self.settings.aux_weight > 0:
            from nasagent.evaluation.networks import EXTRA_OPTIONS

            if "auxiliary" not in EXTRA_OPTIONS.get(sp.name, ()):
                raise NasagentError(f"aux_weight needs a network with an auxiliary head (spaces darts, nasnet), not {sp.name!r}")
            sizes = {**sizes, "auxiliary": True}
        self.inherit = inherit
        self.inherit_epochs = int(inherit_epochs) if inherit_epochs else max(1, round(self.settings.epochs * INHERIT_RATIO))
        self.max_parent_distance = max_parent_distance
        self.device = pick_device(device)
        self.measure = bool(measure)
        self.measure_memory = bool(measure_memory)
        if max_memory_mb is not None and not float(max_memory_mb) > 0:
            raise NasagentError(f"max_memory_mb must be a positive number of MiB, got {max_memory_mb}")
        self.max_memory_mb = float(max_memory_mb) if max_memory_mb is not None else None
        self.sizes = sizes
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        # finished weights are shared by evaluators of the same network and data (any schedule: a parent
        # trained for 70 epochs serves a 20-epoch child); running checkpoints need the exact configuration
        net_tag = hashlib.sha1(json.dumps({"space": sp.name, "seed": self.seed, "sizes": sizes}, sort_keys=True,
                                          default=str).encode()).hexdigest()[:8]
        self.store = WeightStore(self.checkpoint_dir / "weights" / f"{dataset.fingerprint()}-{net_tag}" if self.checkpoint_dir else None)
        tag = f"{dataset.fingerprint()}-{self._config_hash()}"
        self.running_dir = self.checkpoint_dir / "running" / tag if self.checkpoint_dir else None
        if self.running_dir is not None:
            self.running_dir.mkdir(parents=True, exist_ok=True)
        self._finished: list[float] = []
        probe = build(self.space.sample(np.random.default_rng(0)), dataset.num_classes, dataset.input_shape, space=self.space, **sizes)
        self.settings.check_model(probe)  # e.g. drop_path on a network without paths to drop: say so now

    def _config_hash(self) -> str:
        cfg = {"space": self.space.name, "seed": self.seed, "settings": asdict(self.settings), "sizes": self.sizes}
        return hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:8]

    def network(self, arch):
        torch = _torch()
        torch.manual_seed(self.seed)
        return build(arch, self.data.num_classes, self.data.input_shape, space=self.space, check=False, **self.sizes)

    def _parent(self, arch, hint: dict | None):
        """(state dict, distance) of the network to inherit from, or (None, None)."""
        if self.inherit == "none":
            return None, None
        candidates = []
        if hint and hint.get("parent") is not None:
            try:
                parent = self.space.validate(hint["parent"])
            except NasagentError:
                parent = None
            if parent is not None:
                candidates.append((edit_distance(self.space, arch, parent), self.space.key(parent)))
        if self.inherit == "nearest" and not candidates:
            key = self.space.key(arch)
            for e in self.store.entries():
                if e["key"] == key:
                    continue
                other = self.space.parse(e["arch"])
                candidates.append((edit_distance(self.space, arch, other), -e.get("val_accuracy", 0.0), e["key"]))
            candidates.sort()
        for cand in candidates:
            d, key = cand[0], cand[-1]
            if self.max_parent_distance is not None and d > self.max_parent_distance:
                break
            state = self.store.get(key)
            if state is not None:
                return state, d
        return None, None

    def __call__(self, arch, budget: Budget | None = None, hint: dict | None = None) -> Result:
        t0 = time.perf_counter()
        arch = self.space.validate(arch)
        key = self.space.key(arch)
        model = self.network(arch)
        est_mb = self._check_memory(model)  # systems.memory: reject a network that cannot fit before training it
        if isinstance(est_mb, Result):
            return est_mb
        settings = TrainSettings(**asdict(self.settings))
        if budget is not None and budget.seconds is not None:
            settings.max_seconds = min(settings.max_seconds or math.inf, budget.seconds)
        state, distance = self._parent(arch, hint)
        fraction = 0.0
        if state is not None:
            fraction = inherit_weights(model, state)
            settings.epochs = self.inherit_epochs
        ck = None
        if self.running_dir is not None:
            ck = self.running_dir / f"{WeightStore.slug(key)}-e{settings.epochs}.pt"
        reference = self._reference()
        try:
            outcome, extras = train_model(model, self.data, settings, self.seed, self.device, checkpoint=ck, reference=reference,
                                          measure_memory=self.measure_memory)
        except TrainingDiverged as e:
            if ck is not None:
                ck.unlink(missing_ok=True)
            return Result.failed(str(e), cost=time.perf_counter() - t0)
        metrics = {
            "val_accuracy": outcome.val_accuracy,
            "test_accuracy": outcome.test_accuracy,
            "train_loss": outcome.train_loss,
            "epochs_trained": float(outcome.epochs_trained),
            "stopped_early": float(outcome.stopped_early),
            "inherited_fraction": float(fraction),
            "train_seconds": outcome.seconds,
        }
        if distance is not None:
            metrics["parent_distance"] = float(distance)
        if outcome.predicted_final is not None:
            metrics["predicted_val_accuracy"] = outcome.predicted_final
        if "peak_memory_mb" in extras:
            metrics["peak_memory_mb"] = float(extras["peak_memory_mb"])
        if est_mb is not None:
            metrics["est_memory_mb"] = float(est_mb)
        if self.measure:
            from nasagent.evaluation.networks.metrics import count_flops, count_params, measure_latency

            metrics["params"] = float(count_params(model))
            metrics["flops"] = float(count_flops(model, self.data.input_shape))
            metrics["latency_ms"] = 1000 * measure_latency(model, self.data.input_shape, repeats=20)
        if not outcome.stopped_early:
            self._record_finished(outcome.val_accuracy)
        self.store.put(key, self.space.format(arch), model.state_dict(), outcome.val_accuracy)
        if ck is not None:
            ck.unlink(missing_ok=True)
        return Result(metrics=metrics, cost=time.perf_counter() - t0)

    def _reference(self) -> float | None:
        """The best validation accuracy of a run that trained to its end, for learning-curve stopping: this
        evaluator's, and with a checkpoint directory every evaluator's of the same configuration (the worker
        processes of one search, and the run before a resume)."""
        seen = list(self._finished)
        if self.running_dir is not None:
            try:
                text = (self.running_dir / FINISHED_LEDGER).read_text()
            except OSError:
                text = ""
            for line in text.split("\n")[:-1]:  # the text after the last newline may be a line still being written
                try:
                    seen.append(float(line))
                except ValueError:
                    continue
        seen = [v for v in seen if math.isfinite(v)]
        return max(seen) if seen else None

    def _record_finished(self, val_accuracy: float) -> None:
        self._finished.append(val_accuracy)
        if self.running_dir is not None:
            with open(self.running_dir / FINISHED_LEDGER, "a") as f:  # one short append: the processes do not interleave
                f.write(f"{val_accuracy!r}\n")

    def _check_memory(self, model):
        """With ``max_memory_mb``: the estimated MiB of a training step (``systems.memory.estimate_peak``:
        activations, saved tensors and gradients, plus the weights and SGD's momentum buffers), or a failed
        Result when that exceeds the limit, so that the network is never trained. None without a limit."""
        if self.max_memory_mb is None:
            return None
        from nasagent.systems.memory import estimate_peak

        est = estimate_peak(model, (self.settings.batch_size, *self.data.input_shape))
        mb = (est.peak_bytes + est.param_bytes * (2 if self.settings.momentum > 0 else 1)) / 2**20
        if mb > self.max_memory_mb:
            return Result(metrics={"est_memory_mb": mb}, cost=0.0, status="failed",
                          error=f"estimated training-step memory {mb:.1f} MiB exceeds max_memory_mb={self.max_memory_mb:g}")
        return mb

    def finetune(self, arch, epochs: int) -> Result:
        """Continue a trained architecture for ``epochs`` more (top-K fine-tuning after the search)."""
        t0 = time.perf_counter()
        arch = self.space.validate(arch)
        state = self.store.get(self.space.key(arch))
        if state is None:
            raise NasagentError(f"{self.space.format(arch)} was not trained by this evaluator; evaluate it first")
        model = self.network(arch)
        model.load_state_dict(state)
        settings = TrainSettings(**{**asdict(self.settings), "epochs": int(epochs), "curve_stop": False, "max_seconds": None})
        outcome, _ = train_model(model, self.data, settings, self.seed + 1, self.device)
        self.store.put(self.space.key(arch), self.space.format(arch), model.state_dict(), outcome.val_accuracy)
        return Result(metrics={"val_accuracy": outcome.val_accuracy, "test_accuracy": outcome.test_accuracy,
                               "epochs_trained": float(outcome.epochs_trained)}, cost=time.perf_counter() - t0)


def retrain(arch, data: Dataset | str, space="darts", inits: int = 1, seed: int = 0, **options) -> dict:
    """Train ``arch`` from scratch ``inits`` times (training seeds ``seed``, ``seed + 1``, ...) and summarise.

    Papers report a final architecture as the mean ± std over several initialisations (DARTS and PARSEC: 5);
    one run of a small network on a small task is noisy enough to reorder cells. ``options`` are
    ``TrainingBenchmark``'s (epochs, lr, cutout, aux_weight, drop_path, C, layers, ...). Returns the mean and
    standard deviation of the validation and test accuracy, and every run's metrics."""
    if int(inits) < 1:
        raise NasagentError(f"inits must be >= 1, got {inits}")
    runs = []
    for i in range(int(inits)):
        bench = TrainingBenchmark(data, space=space, seed=int(seed) + i, **{"measure": False, **options})
        r = bench(arch)
        if r.status != "ok":
            raise NasagentError(f"retraining {arch} (seed {int(seed) + i}) failed: {r.error}")
        runs.append({k: float(v) for k, v in r.metrics.items()} | {"seed": int(seed) + i})
    out = {"inits": int(inits), "runs": runs}
    for key in ("val_accuracy", "test_accuracy"):
        vals = np.array([r[key] for r in runs])
        out[key], out[key.replace("accuracy", "std")] = float(vals.mean()), float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def finetune_top(bench: TrainingBenchmark, rows, k: int = 5, epochs: int = 20) -> list[tuple[str, Result]]:
    """Fine-tune the ``k`` best (arch text, val accuracy) rows for ``epochs`` more; best first after fine-tuning."""
    best = sorted(rows, key=lambda r: -r[1])[: int(k)]
    out = [(arch, bench.finetune(arch, epochs)) for arch, _ in best]
    return sorted(out, key=lambda t: -t[1].metrics["val_accuracy"])


def training_benchmark(spec: str, space: str | None = None, **options) -> TrainingBenchmark:
    """Registry entry for ``train:<data>``; options are TrainingBenchmark's keyword arguments."""
    data = spec.split(":", 1)[1] if ":" in spec else ""
    if not data:
        raise NasagentError("benchmark train:<data> needs a dataset: train:digits, train:digits16, train:FILE.npz or train:FOLDER")
    import inspect

    allowed = set(inspect.signature(TrainingBenchmark.__init__).parameters) - {"self", "data", "space", "sizes"}
    allowed |= {"C", "N", "layers", "auxiliary", "stem", "dropout", "width"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise NasagentError(f"benchmark {spec!r} has no option {unknown[0]!r}; options: {', '.join(sorted(allowed))}")
    from nasagent.evaluation.networks import check_sizes
    from nasagent.registry import check_option_types

    check_option_types(f"benchmark {spec!r}", TrainingBenchmark.__init__, options)
    check_sizes(options)
    return TrainingBenchmark(data, space=space or "nb201", **options)
