"""PARSEC (Casale, Gordon & Fusi 2019) as a resumable ``OneShotSearch``: importance-weighted Monte-Carlo
empirical Bayes over a distribution π of DARTS cells, trained jointly with shared weights v.

One step of Algorithm 1 (``step``):

1. draw K architectures α_k ~ p(α | π) (``CellDistribution``);
2. without gradients, one child at a time, score each on a *search* batch: ℓ_k = log p(y_s | X_s, v, α_k);
3. importance weights ω̃ = softmax(ℓ) (log-sum-exp), effective sample size 1 / Σ ω̃²;
4. one child at a time, on a *train* batch: backward ω̃_k · CE(α_k) into v and −ω̃_k · log p(α_k | π) into π.
   Gradients accumulate, so only one child's activations are ever alive (the paper's memory claim);
5. clip v's gradient norm (5), SGD step on v (momentum 0.9, cosine lr 0.025 → 0.001, weight decay 3e-4:
   DARTS' search settings, which the paper follows), Adam step on π's logits (lr 0.02, β (0.5, 0.999)).

What ℓ_k is (A3 of the brief) is the option ``weighting``:

- ``"batch"`` (default, the literal Alg. 1): ℓ_k = Σ_b log p(y_b | x_b, α_k) / ``temperature``. With a batch
  of 64 the weights are nearly one-hot (ESS ≈ 1): the step keeps the best of K children;
- ``"example"``: per-example importance weights softmax_k(log p(y_b | x_b, α_k)), averaged over the batch
  (the marginal likelihood with one architecture per example);
- ``"mean"``: ℓ_k = mean_b log p(y_b | x_b, α_k) / ``temperature`` (the batch likelihood tempered by 1/B).

``estimator="reinforce"`` is the ablation of the importance-weighted update: uniform 1/K weights for v and
REINFORCE with a moving-average baseline for π (reward = mean search log-likelihood).

``min_weight`` (default 0: exact) skips the train-batch passes of children whose weight is below it; with the
batch weighting most of the K weights are ~0, so 1e-3 saves most backward passes for a bias below K·1e-3.

v's gradient uses the mean (not summed) cross-entropy of the train batch, which only rescales the learning
rate. Edges no child of a step used keep ``grad=None`` and are skipped by SGD (no momentum, no weight decay:
A8). BN runs in train mode with ``affine=False`` during scoring and training (A4, DARTS' search setting). An
epoch is one pass over the train half, K children per step (A5). A step whose likelihoods or loss are NaN or
infinite is skipped (no update is applied) and counted in the epoch's ``skipped_steps``; an epoch in which
every step was skipped raises ``TrainingDiverged``.

Fine-tuning (§4.2) is a second search on a bigger network started from this one's π: ``finetune(...)``
(defaults: Adam lr 0.01, as the paper; ``FINETUNE_RECIPE`` adds the paper's batch 96, auxiliary towers and
cutout, i.e. ``aux_weight`` and ``cutout``, which apply to the weight update only: the importance weights
score the clean search batch with the main head).

Checkpoints (v, π, both optimisers, RNG states, history) are written after every epoch under
``checkpoint_dir/<stage>.pt``; a second ``fit`` with the same directory resumes.

The paper's final trainings are kept as recipes for ``nasagent.evaluation.train.retrain`` (GPU scale):
``CIFAR10_RECIPE`` (§4.1) and ``IMAGENET_RECIPE`` (§4.3, the mobile setting), from ``evaluation/recipes.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nasagent.core import Budget, NasagentError
from nasagent.evaluation.datasets import Dataset
from nasagent.evaluation.networks import _torch
from nasagent.evaluation.oneshot import Epoch, run_epochs
from nasagent.evaluation.parsec_distribution import CellDistribution
from nasagent.evaluation.recipes import PARSEC_CIFAR10, PARSEC_FINETUNE, PARSEC_IMAGENET
from nasagent.evaluation.train import (
    MixedPrecision,
    TrainingDiverged,
    TrainSettings,
    _atomic_save,
    cutout,
    pick_device,
    recipe_loss,
    sgd,
)

WEIGHTINGS = ("batch", "example", "mean")
ESTIMATORS = ("importance", "reinforce")

#: the paper's final trainings and π's fine-tuning (``nasagent.evaluation.recipes``)
CIFAR10_RECIPE, IMAGENET_RECIPE, FINETUNE_RECIPE = PARSEC_CIFAR10, PARSEC_IMAGENET, PARSEC_FINETUNE


def importance_weights(loglik, weighting: str = "batch", temperature: float = 1.0):
    """Normalised weights ω̃ (K,) from per-example log-likelihoods ``loglik`` (K, B); see the module docstring."""
    torch = _torch()
    if weighting == "batch":
        return torch.softmax(loglik.sum(1) / temperature, dim=0)
    if weighting == "mean":
        return torch.softmax(loglik.mean(1) / temperature, dim=0)
    if weighting == "example":
        return torch.softmax(loglik / temperature, dim=0).mean(1)
    raise NasagentError(f"unknown weighting {weighting!r}; weightings: {', '.join(WEIGHTINGS)}")


class ParsecSearch:
    """PARSEC on the DARTS cell space; a resumable ``OneShotSearch`` (``fit`` then ``propose``).

    Defaults are the paper's search setting (K = 16, 8 cells of 16 channels, π by Adam(0.02, (0.5, 0.999)),
    100 epochs, a 50/50 train/search split of the training data); make ``C``/``layers`` smaller on a CPU.
    """

    stage = "parsec"

    def __init__(self, space="darts", K: int = 16, seed: int = 0, epochs: int = 100, batch_size: int = 64,
                 lr: float = 0.025, min_lr: float = 0.001, momentum: float = 0.9, weight_decay: float = 3e-4,
                 grad_clip: float | None = 5.0, arch_lr: float = 0.02, arch_betas=(0.5, 0.999), arch_weight_decay: float = 0.0,
                 weighting: str = "batch", temperature: float = 1.0, estimator: str = "importance", baseline_decay: float = 0.9,
                 exclude_duplicates: bool = False, init_std: float = 0.0, search_fraction: float = 0.5,
                 min_weight: float = 0.0, monitor: bool = True, device: str = "auto", C: int = 16, layers: int = 8, stage: str | None = None,
                 aux_weight: float = 0.0, cutout: int = 0, amp: bool = False):
        from nasagent.registry import make_space

        self.space = make_space(space) if isinstance(space, str) else space
        if getattr(self.space, "name", None) != "darts":
            raise NasagentError(
                f"PARSEC searches DARTS cells; got space {getattr(self.space, 'name', self.space)!r}. Use --space darts"
            )
        if not (isinstance(K, (int, np.integer)) and K >= 1):
            raise NasagentError(f"PARSEC needs K >= 1 architecture samples per step, got K={K!r}")
        if weighting not in WEIGHTINGS:
            raise NasagentError(f"unknown weighting {weighting!r}; weightings: {', '.join(WEIGHTINGS)}")
        if estimator not in ESTIMATORS:
            raise NasagentError(f"unknown estimator {estimator!r}; estimators: {', '.join(ESTIMATORS)}")
        if not 0 < search_fraction < 1:
            raise NasagentError(f"search_fraction must be in (0, 1), got {search_fraction}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise NasagentError(f"temperature must be a positive number, got {temperature}")
        self.K, self.seed = int(K), int(seed)
        self.settings = TrainSettings(epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), min_lr=float(min_lr),
                                      momentum=float(momentum), nesterov=False, weight_decay=float(weight_decay),
                                      grad_clip=grad_clip, aux_weight=float(aux_weight), cutout=int(cutout),
                                      amp=bool(amp)).check()
        if not (math.isfinite(float(arch_lr)) and arch_lr >= 0 and math.isfinite(float(arch_weight_decay)) and arch_weight_decay >= 0):
            raise NasagentError(f"arch_lr and arch_weight_decay must be finite numbers >= 0 (arch_lr 0 freezes the architecture), got {arch_lr} and {arch_weight_decay}")
        if not 0 <= baseline_decay < 1:
            raise NasagentError(f"baseline_decay must be in [0, 1), got {baseline_decay}")
        if not 0 <= min_weight < 1:
            raise NasagentError(f"min_weight must be in [0, 1) (a child's normalised weight; 1 would skip every update), got {min_weight}")
        self.arch_lr, self.arch_betas, self.arch_weight_decay = float(arch_lr), tuple(arch_betas), float(arch_weight_decay)
        self.weighting, self.temperature, self.estimator = weighting, float(temperature), estimator
        self.baseline_decay = float(baseline_decay)
        self.search_fraction = float(search_fraction)
        self.min_weight = float(min_weight)
        self.monitor = bool(monitor)
        self.device = pick_device(device)
        self.sizes = {"C": int(C), "layers": int(layers)}
        self.stage = stage or self.stage
        self.dist = CellDistribution(self.space.ops, n_nodes=self.space.n_nodes, exclude_duplicates=exclude_duplicates,
                                     init_std=init_std, seed=self.seed)
        self.net = None
        self.epoch = 0
        self.epoch_step = 0  # batches of the current epoch done when a time budget stopped it mid-way
        self.seconds = 0.0
        self.history: list[dict] = []
        self.baseline: float | None = None
        self.rng = np.random.default_rng([self.seed, 2002])

    # -- setup ------------------------------------------------------------------------------------------------
    def _setup(self, data: Dataset) -> None:
        torch = _torch()
        if self.net is not None:
            return
        from nasagent.evaluation.networks.darts import DartsNetwork, full_cell_region

        torch.manual_seed(self.seed)
        self.data = data
        region = {k: full_cell_region(self.space.ops, self.space.n_nodes) for k in ("normal", "reduce")}
        self.net = DartsNetwork(region, num_classes=data.num_classes, in_channels=data.input_shape[0], affine=False,
                                search=True, auxiliary=self.settings.aux_weight > 0, **self.sizes).to(self.device)
        self.optimizer = sgd(self.net.parameters(), self.settings)
        self.amp = MixedPrecision(self.settings.amp, self.device)
        for z in self.dist.logits:
            z.data = z.data.to(self.device)
        self.arch_optimizer = torch.optim.Adam(self.dist.logits, lr=self.arch_lr, betas=self.arch_betas,
                                               weight_decay=self.arch_weight_decay)
        perm = np.random.default_rng([self.seed, 2003]).permutation(len(data.y_train))
        cut = int(round(len(perm) * (1 - self.search_fraction)))
        if cut < 2 or len(perm) - cut < 2:
            raise NasagentError(f"{len(perm)} training examples are too few to split into train and search halves")
        self._t_idx, self._s_idx = np.sort(perm[:cut]), np.sort(perm[cut:])

    def init_from(self, other) -> None:
        """Start π from another search's π (or a ``CellDistribution`` state dict): the §4.2 transfer."""
        state = other.dist.state_dict() if isinstance(other, ParsecSearch) else other
        self.dist.load_state_dict(state)

    # -- one step of Algorithm 1 ----------------------------------------------------------------------------------
    def _loglik(self, x, y, sample):
        torch = _torch()
        out = self.net(x, self.dist.network_genotype(sample))
        return -torch.nn.functional.cross_entropy(out, y, reduction="none")

    def step(self, xs, ys, xt, yt) -> dict:
        """One Alg. 1 update; returns its statistics (``skipped`` names why a NaN step was not applied)."""
        torch = _torch()
        samples = self.dist.samples(self.rng, self.K)
        with torch.no_grad(), self.amp.autocast():
            ll = torch.stack([self._loglik(xs, ys, s).float() for s in samples])  # (K, B), one child alive at a time
        if not bool(torch.isfinite(ll).all()):
            return {"skipped": "non-finite search likelihood"}
        reward = ll.mean(1)
        if self.estimator == "importance":
            w = importance_weights(ll, self.weighting, self.temperature)
            w_v, w_pi = w, w
        else:
            w_v = torch.full((self.K,), 1.0 / self.K, device=ll.device)
            b = float(reward.mean()) if self.baseline is None else self.baseline
            w_pi = (reward - b) / self.K
        ess = float(1.0 / (w_v * w_v).sum())
        self.optimizer.zero_grad(set_to_none=True)
        self.arch_optimizer.zero_grad(set_to_none=True)
        train_loss = 0.0
        if self.settings.cutout:
            xt = cutout(xt, self.settings.cutout, self.rng)
        for k, s in enumerate(samples):
            if float(w_v[k]) < self.min_weight:
                continue  # a negligible child: its weighted gradient is (almost) zero, skip its passes
            with self.amp.autocast():
                loss = recipe_loss(self.net, xt, yt, self.settings, self.dist.network_genotype(s))
            if not bool(torch.isfinite(loss)):
                self.optimizer.zero_grad(set_to_none=True)
                self.arch_optimizer.zero_grad(set_to_none=True)
                return {"skipped": "non-finite training loss"}
            self.amp.backward(float(w_v[k]) * loss)  # v: Σ ω̃_k ∇(−log p(y_t | α_k)); this child's graph is freed here
            train_loss += float(w_v[k]) * float(loss.detach())
        (-(w_pi.detach() * self.dist.log_prob_many(samples)).sum()).backward()  # π: −Σ ω̃_k ∇ log p(α_k | π)
        self.amp.unscale(self.optimizer)  # π's gradient is float32 and never scaled
        grads = [p.grad for p in self.net.parameters() if p.grad is not None] + [z.grad for z in self.dist.logits]
        if not all(bool(torch.isfinite(g).all()) for g in grads if g is not None):
            self.optimizer.zero_grad(set_to_none=True)
            self.arch_optimizer.zero_grad(set_to_none=True)
            self.amp.skip()
            return {"skipped": "non-finite gradient"}
        if self.settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.grad_clip)
        self.amp.step(self.optimizer)
        self.arch_optimizer.step()
        if self.estimator == "reinforce":
            r = float(reward.mean())
            self.baseline = r if self.baseline is None else self.baseline_decay * self.baseline + (1 - self.baseline_decay) * r
        return {"ess": ess, "train_loss": train_loss, "search_loglik": float(reward.mean())}

    # -- the resumable loop -------------------------------------------------------------------------------------
    def fit(self, data: Dataset, budget: Budget | int, checkpoint_dir: Path | None = None) -> None:
        self._setup(data)
        ck = Path(checkpoint_dir) / f"{self.stage}.pt" if checkpoint_dir else None
        run_epochs(self, data, budget, ck, [(self._t_idx, 2004), (self._s_idx, 2005)], self._train_epoch,
                   lambda ep, out: self._epoch_record(*out, ep.lr))

    def _train_epoch(self, ep: Epoch) -> tuple[list, list]:
        """One step per (weight batch, search batch) pair; stops early when the wall-time budget runs out."""
        torch = _torch()
        self.net.train()
        stats, skipped = [], []
        for i, (bt, bs) in enumerate(ep.batches):
            it = torch.from_numpy(self._t_idx[bt]).to(self.device)
            isb = torch.from_numpy(self._s_idx[bs]).to(self.device)
            st = self.step(ep.x[isb], ep.y[isb], ep.x[it], ep.y[it])
            (skipped if "skipped" in st else stats).append(st)
            if ep.stop_after(i + 1):
                break
        if not stats:
            raise TrainingDiverged(
                f"PARSEC epoch {self.epoch + 1}: every step was skipped ({skipped[0]['skipped'] if skipped else 'no steps'}); "
                "lower the learning rate (lr=...) or keep gradient clipping on"
            )
        return stats, skipped

    def _epoch_record(self, stats, skipped, lr) -> dict:
        mode = self.dist.best_valid()
        text = self.space.format(self.dist.genotype(mode))
        rec = {
            "epoch": self.epoch, "seconds": self.seconds, "lr": lr,
            "entropy": self.dist.entropy(), "slot_entropies": self.dist.slot_entropies(),
            "ess": float(np.mean([s["ess"] for s in stats])), "train_loss": float(np.mean([s["train_loss"] for s in stats])),
            "search_loglik": float(np.mean([s["search_loglik"] for s in stats])),
            "steps": len(stats), "skipped_steps": len(skipped),
            "skip_reasons": sorted({s["skipped"] for s in skipped}),
            "mode": text, "mode_changed": bool(not self.history or self.history[-1]["mode"] != text),
        }
        rec.update(self._peak_memory())
        if self.monitor and not self.epoch_step:  # not mid-epoch: its train-mode forward passes move the BN
            rec["mode_val_accuracy"] = self.mode_accuracy()  # statistics, and a resumed search must match a straight one
        return rec

    def _peak_memory(self) -> dict:
        """Peak memory for the epoch log: the process max RSS so far (every device), and on CUDA the epoch's peak
        of allocated tensor bytes (the counter is reset, so each epoch reports its own)."""
        import resource

        out = {"max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if self.device.type == "cuda":
            torch = _torch()
            out["cuda_peak_allocated_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            torch.cuda.reset_peak_memory_stats(self.device)
        return out

    def mode_accuracy(self, split: str = "val") -> float:
        """Accuracy (%) of the most probable valid cell with the shared weights (train-mode BN: batch statistics,
        since the shared running statistics mix every child; Fig. 3a of the paper)."""
        torch = _torch()
        x, y = self.data.split(split)
        arch = self.dist.network_genotype(self.dist.best_valid())
        correct = 0
        with torch.no_grad():
            for i in range(0, len(y), 256):
                xb = torch.from_numpy(x[i : i + 256]).to(self.device)
                if len(xb) < 2:
                    continue
                correct += int((self.net(xb, arch).argmax(1).cpu().numpy() == y[i : i + 256]).sum())
        return 100.0 * correct / max(1, len(y))

    # -- proposals ---------------------------------------------------------------------------------------------
    def propose(self, n: int = 1, how: str = "samples") -> list:
        """The most probable valid cell first, then distinct valid cells drawn from π (``how="samples"``) or the
        next most probable ones (``how="top"``)."""
        if self.net is None and not self.history:
            raise NasagentError("PARSEC has not been fitted yet; call fit(data, budget, checkpoint_dir) first")
        n = max(1, int(n))
        if how == "top":
            return [self.dist.genotype(s) for s in self.dist.top_k(n)]
        if how != "samples":
            raise NasagentError(f"unknown proposal kind {how!r}; use 'samples' or 'top'")
        out = {}
        best = self.dist.genotype(self.dist.best_valid())
        out[self.space.key(best)] = best
        rng = np.random.default_rng([self.seed, 2006])
        tries = 0
        while len(out) < n and tries < 200 * n:
            s = self.dist.sample(rng)
            tries += 1
            if self.dist.is_valid(s):
                g = self.dist.genotype(s)
                out.setdefault(self.space.key(g), g)
        if len(out) < n:
            for s in self.dist.top_k(n + len(out)):
                g = self.dist.genotype(s)
                out.setdefault(self.space.key(g), g)
        return list(out.values())[:n]

    # -- persistence ------------------------------------------------------------------------------------------
    def _save(self, path: Path) -> None:
        torch = _torch()
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save({"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(), "pi": self.dist.state_dict(),
                      "arch_optimizer": self.arch_optimizer.state_dict(), "amp": self.amp.state_dict(), "epoch": self.epoch,
                      "epoch_step": self.epoch_step, "seconds": self.seconds,
                      "history": self.history, "baseline": self.baseline, "rng": self.rng.bit_generator.state,
                      "torch_rng": torch.get_rng_state(), "config": self.config()}, path)

    def _load(self, path: Path) -> None:
        torch = _torch()
        try:
            st = torch.load(path, map_location=self.device, weights_only=False)
            self.net.load_state_dict(st["net"])
            self.optimizer.load_state_dict(st["optimizer"])
            self.dist.load_state_dict(st["pi"])
            self.arch_optimizer.load_state_dict(st["arch_optimizer"])
            self.amp.load_state_dict(st.get("amp"))
            self.rng.bit_generator.state = st["rng"]
            torch.set_rng_state(st["torch_rng"])
        except (OSError, RuntimeError, KeyError, EOFError) as e:
            raise NasagentError(f"PARSEC checkpoint {path} cannot be read ({e}); delete it to restart") from None
        self.epoch, self.seconds, self.history, self.baseline = st["epoch"], st["seconds"], list(st["history"]), st["baseline"]
        self.epoch_step = st.get("epoch_step", 0)  # absent from checkpoints older than mid-epoch resumption

    def config(self) -> dict:
        """Everything that defines this search (dumped into checkpoints)."""
        return {"K": self.K, "seed": self.seed, "settings": vars(self.settings).copy(), "arch_lr": self.arch_lr,
                "arch_betas": list(self.arch_betas), "arch_weight_decay": self.arch_weight_decay, "weighting": self.weighting,
                "temperature": self.temperature, "estimator": self.estimator, "exclude_duplicates": self.dist.exclude_duplicates,
                "search_fraction": self.search_fraction, "min_weight": self.min_weight, "sizes": self.sizes, "stage": self.stage}


def finetune(search: ParsecSearch, data: Dataset, budget, checkpoint_dir: Path | None = None, C: int | None = None,
             layers: int | None = None, arch_lr: float = 0.01, **options) -> ParsecSearch:
    """§4.2: a new search on a bigger network (fresh weights) whose π starts from ``search``'s; π is tuned with
    Adam at ``arch_lr`` (0.01, the paper's) for ``budget`` epochs. Its checkpoints are the stage "finetune".
    ``options`` are ``ParsecSearch``'s (e.g. ``batch_size=96, aux_weight=0.4, cutout=16``: ``FINETUNE_RECIPE``)."""
    opts = {"K": search.K, "seed": search.seed + 1, "weighting": search.weighting, "temperature": search.temperature,
            "exclude_duplicates": search.dist.exclude_duplicates, "device": str(search.device),
            "batch_size": search.settings.batch_size, **options}
    bigger = ParsecSearch(search.space, arch_lr=arch_lr, C=C or 2 * search.sizes["C"], layers=layers or search.sizes["layers"],
                          stage="finetune", **opts)
    bigger.init_from(search)
    bigger.fit(data, budget, checkpoint_dir)
    return bigger
