"""TuNAS (Bender, Liu et al., CVPR 2020; seed-004): REINFORCE over independent decisions with weight sharing.

Each step (seed §2.2, in the code's order, ambiguity A2):

1. sample α ~ π (independent categoricals, one per decision); under warmup a per-decision coin with
   probability p replaces an ``op`` choice by "all ops averaged" and a ``filters`` choice by the largest one;
2. one SGD step on the shared weights W for α on a training batch (label smoothing 0.1);
3. Q(α) = accuracy of the updated supernet on a validation batch (``rl_batch_multiplier`` x larger);
   T(α) from a cost model (a measured latency table, FLOPs or parameters);
4. reward r (absolute ``Q + β|T/T0 − 1|`` by default, or MnasNet soft/hard), and a REINFORCE step
   ``θ += lr_π · Adam((r − b) ∇ log π(α))`` with Adam(β1 = 0); then the baseline b ← m·b + (1 − m)·r.

Schedules as fractions of the search: warmup probability 1 → 0 linearly over the first 25 %, the RL
learning rate 0 during those 25 % and then rising exponentially ×10 to the end. The final architecture is
the argmax of every decision. ``TunasSearch`` is a resumable ``OneShotSearch``; ``rejection_sample`` is the
latency-matched random baseline the paper validates against.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from nasagent.core import Budget, NasagentError
from nasagent.spaces.mobilenet import MobileNetSpace


# -- rewards (seed §2.4) ---------------------------------------------------------------------------------------------
def abs_reward(q: float, t: float, t0: float, beta: float = -0.10) -> float:
    """TuNAS' absolute reward: Q + β|T/T0 − 1| (β < 0)."""
    return q + beta * abs(t / t0 - 1.0)


def mnas_soft(q: float, t: float, t0: float, beta: float = -0.07) -> float:
    """MnasNet's soft exponential reward Q·(T/T0)^β (ProxylessNAS' choice)."""
    return q * (t / t0) ** beta


def mnas_hard(q: float, t: float, t0: float, beta: float = -0.07) -> float:
    """MnasNet's hard exponential reward: Q if T ≤ T0, else Q·(T/T0)^β."""
    return q * min((t / t0) ** beta, 1.0)


REWARDS = {"abs": (abs_reward, -0.10), "mnas-soft": (mnas_soft, -0.07), "mnas-hard": (mnas_hard, -0.07)}


def reward_function(name: str, beta: float | None = None):
    """(reward(q, t, t0), β) for ``name``; β defaults to the seed's (abs −0.10, MnasNet −0.07)."""
    if name not in REWARDS:
        raise NasagentError(f"unknown reward {name!r}; rewards: {', '.join(REWARDS)}")
    fn, default = REWARDS[name]
    beta = default if beta is None else float(beta)
    if not beta < 0:
        raise NasagentError(f"the reward's cost exponent β must be negative, got {beta}")
    return fn, beta


def warmup_probability(progress: float, fraction: float = 0.25) -> float:
    """Op/filter warmup probability: 1 → 0 linearly over the first ``fraction`` of the search."""
    return 0.0 if fraction <= 0 else max(0.0, 1.0 - progress / fraction)


def rl_learning_rate(progress: float, lr: float, delay: float = 0.25, increase: float = 10.0) -> float:
    """0 during the RL delay, then ``lr · increase^p`` with p going 0 → 1 to the end of the search."""
    if progress < delay:
        return 0.0
    p = (progress - delay) / max(1e-12, 1.0 - delay)
    return lr * increase ** min(1.0, p)


# -- controller (seed §2.1) ----------------------------------------------------------------------------------------------
class TunasController:
    """One logit vector per decision (initialised to 0: uniform); log-probabilities and entropies count only
    the decisions that matter (those inside a skipped layer do not: hierarchical, seed §2.1)."""

    def __init__(self, space: MobileNetSpace, lr: float = 0.0048, temperature: float = 1.0, entropy: float = 0.0,
                 momentum: float = 0.95, seed: int = 0):
        import torch

        if not lr > 0 or not temperature > 0 or not 0 <= momentum < 1:
            raise NasagentError(f"controller needs lr > 0, temperature > 0, 0 <= momentum < 1; got {lr}, {temperature}, {momentum}")
        self.space = space
        self.logits = [torch.zeros(len(d.choices), dtype=torch.float64, requires_grad=True) for d in space.decisions]
        self.optimizer = torch.optim.Adam(self.logits, lr=lr, betas=(0.0, 0.999), eps=1e-8)
        self.lr, self.temperature, self.entropy_coef, self.momentum = float(lr), float(temperature), float(entropy), float(momentum)
        self.baseline: float | None = None
        self.rng = np.random.default_rng([seed, 404])

    def probabilities(self) -> list[np.ndarray]:
        import torch

        with torch.no_grad():
            return [torch.softmax(lg / self.temperature, 0).numpy() for lg in self.logits]

    def sample(self) -> tuple[int, ...]:
        u = self.rng.random(len(self.logits))
        return tuple(min(int(np.searchsorted(np.cumsum(p), x * p.sum())), len(p) - 1) for p, x in zip(self.probabilities(), u, strict=True))

    def log_prob(self, arch):
        import torch

        total = torch.zeros((), dtype=torch.float64)
        for i, lg in enumerate(self.logits):
            if self.space.active(arch, i):
                total = total + torch.log_softmax(lg / self.temperature, 0)[arch[i]]
        return total

    def entropy(self, arch):
        import torch

        total = torch.zeros((), dtype=torch.float64)
        for i, lg in enumerate(self.logits):
            if self.space.active(arch, i):
                lp = torch.log_softmax(lg / self.temperature, 0)
                total = total - (lp.exp() * lp).sum()
        return total

    def update(self, archs, rewards, lr: float) -> dict:
        """One REINFORCE step on the samples of this step (mean reward feeds the baseline)."""
        mean_r = float(np.mean(rewards))
        if self.baseline is None:  # start the moving average at the first reward (not at 0)
            self.baseline = mean_r
        advantages = [r - self.baseline for r in rewards]
        if lr > 0:
            self.optimizer.zero_grad(set_to_none=True)
            loss = sum(-a * self.log_prob(x) - self.entropy_coef * self.entropy(x) for a, x in zip(advantages, archs, strict=True))
            (loss / len(archs)).backward()
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            self.optimizer.step()
        self.baseline = self.momentum * self.baseline + (1 - self.momentum) * mean_r
        return {"advantage": float(np.mean(advantages)), "baseline": self.baseline}

    def argmax(self) -> tuple[int, ...]:
        return tuple(int(np.argmax(lg.detach().numpy())) for lg in self.logits)

    def top(self, n: int, pool: int = 2000) -> list[tuple[int, ...]]:
        """The argmax, then the most probable distinct (by canonical key) architectures of a sampled pool."""
        best = self.argmax()
        found = {self.space.key(best): best}
        rng = np.random.default_rng([0, 405])
        probs = self.probabilities()
        cands = {}
        for _ in range(pool if n > 1 else 0):
            a = tuple(int(rng.choice(len(p), p=p / p.sum())) for p in probs)
            cands.setdefault(self.space.key(a), a)
        scored = sorted(cands.items(), key=lambda kv: -float(self.log_prob(kv[1]).detach()))
        for k, a in scored:
            if len(found) >= n:
                break
            found.setdefault(k, a)
        return list(found.values())[:n]

    def state_dict(self) -> dict:
        return {"logits": [lg.detach().clone() for lg in self.logits], "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, d: dict) -> None:
        import torch

        with torch.no_grad():
            for lg, v in zip(self.logits, d["logits"], strict=True):
                lg.copy_(v)
        self.optimizer.load_state_dict(d["optimizer"])
        self.baseline = d["baseline"]
        self.rng.bit_generator.state = d["rng"]


# -- the search ------------------------------------------------------------------------------------------------------------
class TunasSearch:
    """TuNAS as a resumable ``OneShotSearch`` over a ``MobileNetSpace``.

    ``target`` is T0 in the cost model's unit (ms for ``cost="latency"``); it must lie in the space's
    achievable range. Defaults follow the seed (β −0.10, baseline momentum 0.95, warmups and RL delay over
    25 %, RL learning rate 0.0048 rising ×10, Adam β1 = 0, label smoothing 0.1, RL batch 4× the training
    batch); the shared weights use SGD with momentum and a cosine schedule with a 2.5 % linear warmup
    instead of TF-RMSProp (see docs/tunas.md).
    """

    def __init__(self, space: MobileNetSpace | str = "mobilenet-v3-like-tiny", target: float | None = None, cost="latency",
                 reward: str = "abs", beta: float | None = None, seed: int = 0, epochs: int | None = None, batch_size: int = 64,
                 lr: float = 0.2, momentum: float = 0.9, weight_decay: float = 4e-5, label_smoothing: float = 0.1,
                 rl_lr: float = 0.0048, rl_increase: float = 10.0, rl_delay: float = 0.25, warmup: float = 0.25,
                 op_warmup: bool = True, filter_warmup: bool = True, baseline_momentum: float = 0.95, entropy: float = 0.0,
                 rl_batch_multiplier: int = 4, samples_per_step: int = 1, temperature: float = 1.0, device: str = "cpu",
                 cost_options: dict | None = None):
        from nasagent.registry import make_space

        self.space = make_space(space) if isinstance(space, str) else space
        if not isinstance(self.space, MobileNetSpace):
            raise NasagentError(f"TuNAS searches MobileNet-like spaces (proxylessnas, proxylessnas-enlarged, mobilenet-v3-like); got {self.space.name!r}")
        self.reward_name = reward
        self.reward_fn, self.beta = reward_function(reward, beta)
        if target is None or not float(target) > 0:
            raise NasagentError(f"TuNAS needs a positive target cost T0 (target=...), got {target!r}")
        if warmup > rl_delay:
            raise NasagentError(f"the warmup window ({warmup}) may not be longer than the RL delay ({rl_delay}); the seed's code forbids it")
        if int(samples_per_step) < 1 or int(rl_batch_multiplier) < 1:
            raise NasagentError("samples_per_step and rl_batch_multiplier must be >= 1")
        if epochs is not None and int(epochs) < 1:
            raise NasagentError(f"TuNAS epochs must be >= 1 (or null: the budget decides), got {epochs}")
        if int(batch_size) < 2 or int(samples_per_step) > int(batch_size):
            raise NasagentError(f"TuNAS batch_size must be >= 2 and >= samples_per_step, got {batch_size} and {samples_per_step}")
        for name, value, ok in (("lr", lr, lr > 0), ("rl_lr", rl_lr, rl_lr > 0), ("rl_increase", rl_increase, rl_increase > 0),
                                ("weight_decay", weight_decay, weight_decay >= 0), ("momentum", momentum, 0 <= momentum < 1),
                                ("label_smoothing", label_smoothing, 0 <= label_smoothing < 1)):
            if not (math.isfinite(float(value)) and ok):
                raise NasagentError(f"TuNAS {name} is out of range: {value!r} (lr, rl_lr, rl_increase > 0; weight_decay >= 0; "
                                    "momentum and label_smoothing in [0, 1))")
        self.target = float(target)
        self.cost_kind, self.cost_options = cost, dict(cost_options or {})
        self.seed, self.epochs, self.batch_size = int(seed), None if epochs is None else int(epochs), int(batch_size)
        self.lr, self.momentum, self.weight_decay, self.label_smoothing = float(lr), float(momentum), float(weight_decay), float(label_smoothing)
        self.rl_lr, self.rl_increase, self.rl_delay, self.warmup = float(rl_lr), float(rl_increase), float(rl_delay), float(warmup)
        self.op_warmup, self.filter_warmup = bool(op_warmup), bool(filter_warmup)
        self.rl_batch_multiplier, self.samples_per_step = int(rl_batch_multiplier), int(samples_per_step)
        self.device = device
        self.controller = TunasController(self.space, lr=rl_lr, temperature=temperature, entropy=entropy,
                                          momentum=baseline_momentum, seed=self.seed)
        self.supernet = None
        self.cost_model = None
        self.step = 0
        self.seconds = 0.0
        self.history: list[dict] = []

    # -- setup ---------------------------------------------------------------------------------------------------------
    def _setup(self, data) -> None:
        import torch

        from nasagent.evaluation.tunas_cost import make_cost_model
        from nasagent.evaluation.tunas_models import TunasSupernet

        if self.supernet is not None:
            return
        self.data = data
        self.cost_model = make_cost_model(self.cost_kind, self.space, data.input_shape, data.num_classes, **self.cost_options)
        self.cost_model.check_target(self.target)
        torch.manual_seed(self.seed)
        self.supernet = TunasSupernet(self.space, data.num_classes, data.input_shape[0]).to(self.device)
        self.optimizer = torch.optim.SGD(self.supernet.parameters(), lr=self.lr, momentum=self.momentum, nesterov=True,
                                         weight_decay=self.weight_decay)

    def steps_per_epoch(self) -> int:
        return max(1, len(self.data.y_train) // self.batch_size)

    def _weight_lr(self, progress: float) -> float:
        if progress < 0.025:
            return self.lr * (progress + 1e-3) / 0.025
        return 0.5 * self.lr * (1 + math.cos(math.pi * (progress - 0.025) / 0.975))

    def _selection(self, arch, p: float, rng) -> list[int]:
        from nasagent.evaluation.tunas_models import ALL

        sel = list(arch)
        for i, d in enumerate(self.space.decisions):
            if rng.random() < p:
                if d.tag == "op" and self.op_warmup:
                    sel[i] = ALL
                elif d.tag == "filters" and self.filter_warmup:
                    sel[i] = len(d.choices) - 1
        return sel

    # -- OneShotSearch ---------------------------------------------------------------------------------------------------
    def fit(self, data, budget: Budget | int, checkpoint_dir: Path | None = None) -> None:
        import torch
        import torch.nn.functional as F

        from nasagent.evaluation.oneshot import fit_limits

        epochs, seconds = fit_limits(budget)
        self._setup(data)
        ck = Path(checkpoint_dir) / "tunas.pt" if checkpoint_dir else None
        if ck is not None:
            ck.parent.mkdir(parents=True, exist_ok=True)
        if ck is not None and ck.exists():
            self._load(ck)
        # the schedules span ``epochs`` when it was given (a budget then only says where to stop this call,
        # so an interrupted search resumes on the same schedule), else the budget's epochs
        if self.epochs is None and epochs is None:
            raise NasagentError("give the search length: TunasSearch(epochs=...) or Budget(evaluations=EPOCHS)")
        schedule_epochs = self.epochs if self.epochs is not None else epochs
        stop_epochs = schedule_epochs if epochs is None else min(epochs, schedule_epochs)
        per_epoch = self.steps_per_epoch()
        total = schedule_epochs * per_epoch
        stop = stop_epochs * per_epoch
        xtr, ytr = torch.from_numpy(data.x_train).to(self.device), torch.from_numpy(data.y_train).to(self.device)
        xva, yva = torch.from_numpy(data.x_val).to(self.device), torch.from_numpy(data.y_val).to(self.device)
        rl_batch = min(len(yva), self.batch_size * self.rl_batch_multiplier)
        self.supernet.train()
        while self.step < stop and (seconds is None or self.seconds < seconds):
            t0 = time.perf_counter()
            epoch = self.step // per_epoch
            rng = np.random.default_rng([self.seed, 406, epoch])
            order = rng.permutation(len(ytr))
            for s in range(self.step % per_epoch, per_epoch):
                progress = self.step / total
                p = warmup_probability(progress, self.warmup)
                lr = self._weight_lr(progress)
                for g in self.optimizer.param_groups:
                    g["lr"] = lr
                step_rng = np.random.default_rng([self.seed, 407, self.step])
                archs = [self.controller.sample() for _ in range(self.samples_per_step)]
                idx = order[s * self.batch_size : (s + 1) * self.batch_size]
                chunks = np.array_split(idx, len(archs))
                self.optimizer.zero_grad(set_to_none=True)
                loss_total = 0.0
                for a, ch in zip(archs, chunks, strict=True):
                    sel = self._selection(a, p, step_rng)
                    loss = F.cross_entropy(self.supernet(xtr[ch], sel), ytr[ch], label_smoothing=self.label_smoothing) / len(archs)
                    loss.backward()
                    loss_total += float(loss.detach())
                if not math.isfinite(loss_total):
                    raise NasagentError(f"TuNAS supernet training diverged at step {self.step} (loss {loss_total}); lower lr")
                torch.nn.utils.clip_grad_norm_(self.supernet.parameters(), 5.0)
                self.optimizer.step()
                vi = torch.from_numpy(step_rng.choice(len(yva), size=rl_batch, replace=False))
                qs, ts = [], []
                with torch.no_grad():
                    for a in archs:
                        qs.append(float((self.supernet(xva[vi], list(a)).argmax(1) == yva[vi]).float().mean()))
                        ts.append(float(self.cost_model(a)))
                rewards = [self.reward_fn(q, t, self.target, self.beta) for q, t in zip(qs, ts, strict=True)]
                rl_lr = rl_learning_rate(progress, self.rl_lr, self.rl_delay, self.rl_increase)
                info = self.controller.update(archs, rewards, rl_lr)
                self.step += 1
                if self.step % max(1, per_epoch // 4) == 0 or self.step == total:
                    best = self.controller.argmax()
                    self.history.append({
                        "step": self.step, "loss": loss_total, "q": float(np.mean(qs)), "cost": float(np.mean(ts)),
                        "reward": float(np.mean(rewards)), "baseline": info["baseline"], "advantage": info["advantage"],
                        "cost_ratio": float(np.mean(ts)) / self.target, "rl_lr": rl_lr, "warmup_p": p,
                        "argmax_cost": float(self.cost_model(best)),
                        "entropy": float(self.controller.entropy(best).detach()),
                    })
                if self.step >= stop:
                    break
            self.seconds += time.perf_counter() - t0
            if ck is not None:
                self._save(ck)

    def propose(self, n: int = 1) -> list[tuple[int, ...]]:
        """The argmax architecture first, then the most probable distinct ones."""
        return self.controller.top(int(n))

    def report(self) -> dict:
        """The final architecture, its estimated cost against T0, and the trace."""
        best = self.controller.argmax()
        cost = float(self.cost_model(best)) if self.cost_model is not None else None
        return {"arch": self.space.format(best), "cost": cost, "target": self.target, "unit": getattr(self.cost_model, "unit", ""),
                "relative_error": None if cost is None else cost / self.target - 1, "steps": self.step, "seconds": self.seconds,
                "history": self.history}

    # -- checkpoints ---------------------------------------------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        from nasagent.evaluation.train import _atomic_save

        _atomic_save({"supernet": self.supernet.state_dict(), "optimizer": self.optimizer.state_dict(),
                      "controller": self.controller.state_dict(), "step": self.step, "seconds": self.seconds,
                      "history": self.history, "config": self._config()}, path)
        if hasattr(self.cost_model, "save") and self.cost_model.path is not None:
            self.cost_model.save()

    def _config(self) -> str:
        """Everything that defines the search (not the budget, which may grow): a checkpoint of another search
        in the same folder is refused instead of being continued."""
        data = getattr(self, "data", None)
        return json.dumps({"space": self.space.name, "target": self.target, "reward": self.reward_name, "beta": self.beta,
                           "seed": self.seed, "batch": self.batch_size, "epochs": self.epochs, "lr": self.lr,
                           "momentum": self.momentum, "weight_decay": self.weight_decay, "label_smoothing": self.label_smoothing,
                           "rl_lr": self.rl_lr, "rl_increase": self.rl_increase, "rl_delay": self.rl_delay, "warmup": self.warmup,
                           "op_warmup": self.op_warmup, "filter_warmup": self.filter_warmup,
                           "rl_batch_multiplier": self.rl_batch_multiplier, "samples_per_step": self.samples_per_step,
                           "controller": [self.controller.temperature, self.controller.entropy_coef, self.controller.momentum],
                           "cost": [self.cost_kind if isinstance(self.cost_kind, str) else type(self.cost_kind).__name__,
                                    self.cost_options],
                           "data": data.fingerprint() if data is not None else None},
                          sort_keys=True, default=str)

    def _load(self, path: Path) -> None:
        import torch

        try:
            ck = torch.load(path, map_location=self.device, weights_only=False)
        except (OSError, RuntimeError, EOFError) as e:
            raise NasagentError(f"TuNAS checkpoint {path} cannot be read ({e}); delete it to start over") from None
        if ck.get("config") != self._config():
            raise NasagentError(f"TuNAS checkpoint {path} belongs to another search ({ck.get('config')}); use another directory")
        self.supernet.load_state_dict(ck["supernet"])
        self.optimizer.load_state_dict(ck["optimizer"])
        self.controller.load_state_dict(ck["controller"])
        self.step, self.seconds, self.history = ck["step"], ck["seconds"], list(ck["history"])


# -- the latency-matched random baseline (seed §2.4, §3) ----------------------------------------------------------------------
def rejection_sample(space: MobileNetSpace, cost_model, target: float, n: int, tolerance: float = 0.05, seed: int = 0,
                     max_tries: int = 200_000) -> tuple[list[tuple[int, ...]], dict]:
    """``n`` distinct uniform random architectures with cost in target·(1 ± tolerance); returns them and the
    acceptance statistics. Raises if the window is empty or too rare to fill within ``max_tries``."""
    if int(n) < 1 or not (math.isfinite(tolerance) and 0 < tolerance < 1):
        raise NasagentError(f"rejection sampling needs n >= 1 and a tolerance in (0, 1), got n={n}, tolerance={tolerance}")
    cost_model.check_target(target)
    rng = np.random.default_rng([seed, 408])
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    found: dict[str, tuple[int, ...]] = {}
    tries = 0
    while len(found) < n and tries < max_tries:
        a = space.sample(rng)
        tries += 1
        if lo <= cost_model(a) <= hi:
            found.setdefault(space.key(a), a)
    if len(found) < n:
        raise NasagentError(
            f"only {len(found)} of {n} random architectures fell in {lo:.4g}..{hi:.4g} {cost_model.unit} after {tries} tries; "
            "widen the tolerance or move the target towards the middle of the achievable range"
        )
    return list(found.values()), {"tries": tries, "accepted": len(found), "accept_rate": len(found) / tries, "window": [lo, hi]}
