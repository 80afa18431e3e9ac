"""DARTS (Liu et al. 2019) and few-shot DARTS (thesis §6.2.3) as ``OneShotSearch``es.

``DartsSearch`` relaxes every compound edge to a softmax(α)-weighted mixture of its ops and alternates two
steps per batch: α descends the loss on one half of the training split (the "validation" half of DARTS),
the network weights w descend the loss on the other half. ``order=1`` uses the current w for the α gradient;
``order=2`` differentiates through one unrolled SGD step, w' = w − ξ∇w L_train (ξ = the current learning
rate), with the finite-difference Hessian-vector product of the DARTS paper (ε = 0.01 / ‖∇w' L_val‖).
Defaults are DARTS': SGD momentum 0.9, lr 0.025 cosine to 0.001, weight decay 3e-4, gradient clip 5; Adam
for α with lr 3e-4, betas (0.5, 0.999), weight decay 1e-3. Proposals: the argmax architecture first (NB201:
argmax op per edge, ``none`` included; DARTS: per node the 2 inputs with the strongest non-``none`` op), then
the most probable distinct architectures under softmax(α).

``EnasSearch`` is the ENAS-like member of the thesis' gradient-based family (Pham et al. 2018; thesis §6.3.1
runs DARTS, PC-DARTS, ENAS and SETN on NB201): the same α, read as a policy (independent categoricals per
edge, softmax(α)) rather than as mixture weights. Each batch pair makes one single-path weight step on an
architecture drawn from the policy, then one REINFORCE step on α whose reward is the accuracy of another draw
on the α half, with a moving-average baseline and an entropy bonus. ENAS' controller is an LSTM; the
factorised policy keeps the α shape, so splitting, inheritance and derivation are shared with DARTS.

``FewShotDarts`` trains a DARTS (or ENAS-like, ``method="enas"``) supernet, splits it by the op on chosen edges
into sub-supernets that inherit both w and α (``transfer=False`` trains them from scratch, as in the thesis'
NB201 gradient experiment), trains each, and proposes from the child with the lowest validation loss.

Both are resumable: ``fit`` saves after every epoch into ``checkpoint_dir`` and continues from there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nasagent.core import Budget, NasagentError
from nasagent.evaluation.datasets import Dataset
from nasagent.evaluation.networks import _torch
from nasagent.evaluation.oneshot import Epoch, fit_limits, run_epochs
from nasagent.evaluation.train import TrainSettings, _atomic_save, check_loss, pick_device, sgd


class _Relaxation:
    """Space-specific pieces: the mixture network, α's shape and mask, and deriving architectures from α."""

    def __init__(self, space, region=None):
        from nasagent.registry import make_space

        self.space = make_space(space) if isinstance(space, str) else space
        if self.space.name not in ("nb201", "darts"):
            raise NasagentError(f"DARTS is available for the nb201 and darts spaces, not {self.space.name!r}")
        self.kinds = ("cell",) if self.space.name == "nb201" else ("normal", "reduce")
        if self.space.name == "nb201":
            from nasagent.evaluation.networks.nb201 import full_region
            from nasagent.spaces.nb201 import OPS

            self.ops = OPS
            self.region = region if region is not None else full_region(OPS)
        else:
            from nasagent.evaluation.networks.darts import full_cell_region
            from nasagent.spaces.darts import ALL_OPS, N_NODES

            if getattr(self.space, "n_nodes", N_NODES) != N_NODES:
                raise NasagentError(f"the DARTS relaxation is built for DARTS' {N_NODES}-node cell, not {self.space.n_nodes} "
                                    "nodes; use PARSEC or a supernet for other cell sizes")

            self.ops = ALL_OPS
            self.region = region if region is not None else {k: full_cell_region(ALL_OPS) for k in self.kinds}

    def edges(self, kind):
        if self.space.name == "nb201":
            return list(range(6))
        from nasagent.evaluation.networks.darts import EDGE_LIST

        return list(EDGE_LIST)

    def allowed(self, kind, edge) -> tuple:
        return self.region[edge] if self.space.name == "nb201" else self.region[kind].get(edge, ())

    def mask(self):
        """{kind: bool array (edges, ops)}: which α entries the region allows."""
        out = {}
        for kind in self.kinds:
            m = np.zeros((len(self.edges(kind)), len(self.ops)), dtype=bool)
            for i, e in enumerate(self.edges(kind)):
                for op in self.allowed(kind, e):
                    m[i, self.ops.index(op)] = True
            out[kind] = m
        return out

    def network(self, num_classes, in_channels, **sizes):
        if self.space.name == "nb201":
            from nasagent.evaluation.networks.nb201 import NB201Network

            return NB201Network(self.region, num_classes=num_classes, in_channels=in_channels, affine=False, **{"C": 16, "N": 5, **sizes})
        from nasagent.evaluation.networks.darts import DartsNetwork

        return DartsNetwork(self.region, num_classes=num_classes, in_channels=in_channels, affine=False, search=True,
                            **{"C": 16, "layers": 8, **sizes})

    def forward(self, net, x, weights: dict, params=None):
        """Mixture forward; ``weights[kind]`` is a (edges, ops) tensor over ``self.ops``."""
        torch = _torch()
        if self.space.name == "nb201":
            w = weights["cell"]
            per_edge = [torch.stack([w[e, self.ops.index(op)] for op in self.region[e]]) for e in range(6)]
            args, kwargs = (x,), {"weights": per_edge}
        else:
            args, kwargs = (x,), {"weights": {k: weights[k] for k in self.kinds}}
        if params is None:
            return net(*args, **kwargs)
        return torch.func.functional_call(net, params, args, kwargs)

    def derive(self, probs: dict):
        """The DARTS argmax architecture of probabilities ``probs[kind]`` (edges, ops)."""
        if self.space.name == "nb201":
            p = probs["cell"]
            return tuple(self.ops[int(np.argmax(p[e]))] for e in range(6))
        from nasagent.spaces.darts import N_NODES, DartsGenotype, _canonical

        cells = []
        none = self.ops.index("none")
        for kind in self.kinds:
            p = probs[kind].copy()
            p[:, none] = -1.0
            out = []
            edges = self.edges(kind)
            for node in range(N_NODES):
                cand = [(i, e) for i, e in enumerate(edges) if e[0] == node]
                strength = sorted(cand, key=lambda t: -p[t[0]].max())[:2]
                for i, (_, j) in sorted(strength, key=lambda t: t[1][1]):
                    out.append((self.ops[int(np.argmax(p[i]))], j))
            cells.append(_canonical(tuple(out)))
        return DartsGenotype(*cells)

    def sample(self, probs: dict, rng):
        """One architecture drawn from softmax(α) (DARTS: 2 distinct inputs per node by edge strength)."""
        if self.space.name == "nb201":
            p = probs["cell"]
            return tuple(self.ops[int(rng.choice(len(self.ops), p=p[e] / p[e].sum()))] for e in range(6))
        from nasagent.spaces.darts import N_NODES, DartsGenotype, _canonical

        none = self.ops.index("none")
        cells = []
        for kind in self.kinds:
            p = probs[kind].copy()
            p[:, none] = 0.0
            edges = self.edges(kind)
            out = []
            for node in range(N_NODES):
                cand = [i for i, e in enumerate(edges) if e[0] == node and p[i].sum() > 0]
                strength = np.array([p[i].sum() for i in cand])
                pick = rng.choice(len(cand), size=2, replace=False, p=strength / strength.sum())
                for c in sorted(pick, key=lambda c: edges[cand[c]][1]):
                    i = cand[c]
                    out.append((self.ops[int(rng.choice(len(self.ops), p=p[i] / p[i].sum()))], edges[i][1]))
            cells.append(_canonical(tuple(out)))
        return DartsGenotype(*cells)

    def log_prob(self, probs: dict, arch) -> float:
        if self.space.name == "nb201":
            return float(sum(math.log(max(probs["cell"][e, self.ops.index(op)], 1e-12)) for e, op in enumerate(arch)))
        from nasagent.evaluation.networks.darts import EDGE_INDEX

        lp = 0.0
        for kind in self.kinds:
            for k, (op, j) in enumerate(arch.cell(kind)):
                lp += math.log(max(probs[kind][EDGE_INDEX[(k // 2, j)], self.ops.index(op)], 1e-12))
        return lp


class DartsSearch:
    """DARTS on ``space`` ("nb201" or "darts"), first or second order; a resumable ``OneShotSearch``."""

    def __init__(self, space="nb201", order: int = 1, seed: int = 0, lr: float = 0.025, min_lr: float = 0.001,
                 weight_decay: float = 3e-4, batch_size: int = 64, arch_lr: float = 3e-4, arch_weight_decay: float = 1e-3,
                 epochs: int = 50, region=None, device: str = "auto", **sizes):
        if order not in (1, 2):
            raise NasagentError(f"DARTS order must be 1 (first order) or 2 (second order), got {order}")
        self.relax = _Relaxation(space, region)
        self.space = self.relax.space
        self.order = int(order)
        self.seed = int(seed)
        self.settings = TrainSettings(epochs=int(epochs), lr=float(lr), min_lr=float(min_lr), weight_decay=float(weight_decay),
                                      batch_size=int(batch_size)).check()
        if not (math.isfinite(float(arch_lr)) and arch_lr >= 0 and math.isfinite(float(arch_weight_decay)) and arch_weight_decay >= 0):
            raise NasagentError(f"arch_lr and arch_weight_decay must be finite numbers >= 0 (arch_lr 0 freezes the architecture), got {arch_lr} and {arch_weight_decay}")
        from nasagent.evaluation.networks import check_sizes

        check_sizes(sizes)
        self.arch_lr, self.arch_weight_decay = float(arch_lr), float(arch_weight_decay)
        self.device = pick_device(device)
        self.sizes = dict(sizes)
        self.net = None
        self.alpha = None
        self.epoch = 0
        self.epoch_step = 0  # batches of the current epoch done when a time budget stopped it mid-way
        self.seconds = 0.0
        self.history: list[dict] = []

    # -- setup ------------------------------------------------------------------------------------------------
    def _setup(self, data: Dataset) -> None:
        torch = _torch()
        if self.net is not None:
            return
        torch.manual_seed(self.seed)
        self.data = data
        self.net = self.relax.network(data.num_classes, data.input_shape[0], **self.sizes).to(self.device)
        self._mask = {k: torch.from_numpy(m).to(self.device) for k, m in self.relax.mask().items()}
        self.alpha = {k: (1e-3 * torch.randn(m.shape, device=self.device)).requires_grad_(True) for k, m in self._mask.items()}
        self.optimizer = sgd(self.net.parameters(), self.settings)
        self.arch_optimizer = torch.optim.Adam(list(self.alpha.values()), lr=self.arch_lr, betas=(0.5, 0.999),
                                               weight_decay=self.arch_weight_decay)
        perm = np.random.default_rng([self.seed, 71]).permutation(len(data.y_train))
        half = len(perm) // 2
        self._w_idx, self._a_idx = np.sort(perm[:half]), np.sort(perm[half:])

    def weights(self, detach: bool = False) -> dict:
        """softmax(α) per kind, with ops outside the region at exactly 0."""
        torch = _torch()
        out = {}
        for k, a in self.alpha.items():
            a = a.detach() if detach else a
            out[k] = torch.softmax(a.masked_fill(~self._mask[k], float("-inf")), dim=-1)
        return out

    def probabilities(self) -> dict:
        return {k: w.cpu().numpy() for k, w in self.weights(detach=True).items()}

    def inherit(self, parent: DartsSearch) -> None:
        """Start from the parent's w (tensors of the kept ops) and α (DARTS few-shot transfer)."""
        own = self.net.state_dict()
        theirs = parent.net.state_dict()
        self.net.load_state_dict({k: theirs[k].clone() if k in theirs and theirs[k].shape == own[k].shape else own[k] for k in own})
        with _torch().no_grad():
            for k in self.alpha:
                self.alpha[k].copy_(parent.alpha[k])

    # -- training ---------------------------------------------------------------------------------------------
    def _loss(self, x, y, weights, params=None):
        torch = _torch()
        return torch.nn.functional.cross_entropy(self.relax.forward(self.net, x, weights, params), y)

    def _arch_step(self, xt, yt, xv, yv, lr) -> None:
        torch = _torch()
        self.arch_optimizer.zero_grad(set_to_none=True)
        if self.order == 1:
            loss = self._loss(xv, yv, self.weights())
            loss.backward()
            self.net.zero_grad(set_to_none=True)
        else:
            params = dict(self.net.named_parameters())
            names = list(params)
            w = [params[n] for n in names]
            g_train = torch.autograd.grad(self._loss(xt, yt, self.weights(detach=True)), w, allow_unused=True)
            unrolled = {n: (p - lr * g).detach().requires_grad_(True) if g is not None else p.detach().requires_grad_(True)
                        for n, p, g in zip(names, w, g_train, strict=True)}
            alphas = list(self.alpha.values())
            loss = self._loss(xv, yv, self.weights(), unrolled)
            grads = torch.autograd.grad(loss, alphas + [unrolled[n] for n in names], allow_unused=True)
            d_alpha, d_w = grads[: len(alphas)], grads[len(alphas):]
            d_w = [g if g is not None else torch.zeros_like(p) for g, p in zip(d_w, w, strict=True)]
            norm = torch.sqrt(sum((g * g).sum() for g in d_w))
            eps = 0.01 / (float(norm) + 1e-12)
            hess = []
            for sign in (1.0, -1.0):
                shifted = {n: (p + sign * eps * g).detach() for n, p, g in zip(names, w, d_w, strict=True)}
                loss_t = self._loss(xt, yt, self.weights(), shifted)
                hess.append(torch.autograd.grad(loss_t, alphas, allow_unused=True))
            for a, da, hp, hm in zip(alphas, d_alpha, hess[0], hess[1], strict=True):
                g = da if da is not None else torch.zeros_like(a)
                if hp is not None and hm is not None:
                    g = g - lr * (hp - hm) / (2 * eps)
                a.grad = g
        self.arch_optimizer.step()

    def fit(self, data: Dataset, budget: Budget | int, checkpoint_dir: Path | None = None) -> None:
        self._setup(data)
        ck = Path(checkpoint_dir) / "darts.pt" if checkpoint_dir else None
        run_epochs(self, data, budget, ck, [(self._w_idx, 72), (self._a_idx, 73)], self._train_epoch,
                   lambda ep, losses: {"epoch": self.epoch, "train_loss": float(np.mean(losses)), "arch": self.space.format(self.derive())})

    def _train_epoch(self, ep: Epoch) -> list[float]:
        """Alternate an architecture step (on the α split) and a weight step (on the w split) per batch pair."""
        torch = _torch()
        self.net.train()
        losses = []
        for step, (bw, ba) in enumerate(ep.batches):
            iw = torch.from_numpy(self._w_idx[bw]).to(self.device)
            ia = torch.from_numpy(self._a_idx[ba]).to(self.device)
            self._arch_step(ep.x[iw], ep.y[iw], ep.x[ia], ep.y[ia], ep.lr)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self._loss(ep.x[iw], ep.y[iw], self.weights(detach=True))
            check_loss(loss.detach(), self.epoch, ep.first_step + step, ep.lr)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.grad_clip or 5.0)
            self.optimizer.step()
            losses.append(float(loss.detach()))
            if ep.stop_after(step + 1):  # the time budget ends here; a later fit finishes the epoch
                break
        return losses

    def validation_loss(self, data: Dataset | None = None) -> float:
        """Cross-entropy of the searched network on the validation split (few-shot DARTS picks the lowest child);
        what "the searched network" is comes from ``_scoring_forward``."""
        torch = _torch()
        data = data or self.data
        forward = self._scoring_forward()
        total, n = 0.0, 0
        with torch.no_grad():
            for i in range(0, len(data.y_val), 256):
                x = torch.from_numpy(data.x_val[i : i + 256]).to(self.device)
                y = torch.from_numpy(data.y_val[i : i + 256]).to(self.device)
                total += float(torch.nn.functional.cross_entropy(forward(x), y, reduction="sum"))
                n += len(y)
        self.net.train()
        return total / max(1, n)

    def _scoring_forward(self):
        """DARTS: the α-weighted mixture, BN in eval mode."""
        self.net.eval()
        w = self.weights(detach=True)
        return lambda x: self.relax.forward(self.net, x, w)

    # -- proposals --------------------------------------------------------------------------------------------
    def derive(self):
        if self.alpha is None:
            raise NasagentError("DARTS has not been fitted yet; call fit(data, budget, checkpoint_dir) first")
        return self.relax.derive(self.probabilities())

    def propose(self, n: int = 1) -> list:
        best = self.derive()
        probs = self.probabilities()
        out = {self.space.key(best): best}
        rng = np.random.default_rng([self.seed, 74])
        tries = 0
        pool = {}
        while len(pool) < 4 * n and tries < 50 * n:
            a = self.relax.sample(probs, rng)
            pool[self.space.key(a)] = a
            tries += 1
        for key, a in sorted(pool.items(), key=lambda t: -self.relax.log_prob(probs, t[1])):
            if len(out) >= n:
                break
            out.setdefault(key, a)
        return list(out.values())[: max(1, int(n))]

    # -- persistence ------------------------------------------------------------------------------------------
    def _state(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict(),
                "alpha": {k: a.detach().cpu() for k, a in self.alpha.items()},
                "arch_optimizer": self.arch_optimizer.state_dict(), "epoch": self.epoch, "epoch_step": self.epoch_step,
                "seconds": self.seconds, "history": self.history}

    def _restore(self, st: dict) -> None:
        torch = _torch()
        self.net.load_state_dict(st["net"])
        self.optimizer.load_state_dict(st["optimizer"])
        with torch.no_grad():
            for k, a in self.alpha.items():
                a.copy_(st["alpha"][k])
        self.arch_optimizer.load_state_dict(st["arch_optimizer"])

    def _save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(self._state(), path)

    def _load(self, path: Path) -> None:
        torch = _torch()
        try:
            st = torch.load(path, map_location=self.device, weights_only=False)
            self._restore(st)
        except (OSError, RuntimeError, KeyError, EOFError) as e:
            raise NasagentError(f"DARTS checkpoint {path} cannot be read ({e}); delete it to restart") from None
        self.epoch, self.seconds, self.history = st["epoch"], st["seconds"], list(st["history"])
        self.epoch_step = st.get("epoch_step", 0)  # absent from checkpoints older than mid-epoch resumption


class EnasSearch(DartsSearch):
    """ENAS-like search on NB201 (module doc). Defaults are ENAS': policy Adam lr 3.5e-4, entropy weight 1e-4,
    baseline decay 0.99; the shared weights use DARTS' SGD settings. ``validation_loss`` is the loss of the
    derived (most probable) architecture on a single path, with batch statistics in BN (the supernet's running
    statistics mix every path)."""

    def __init__(self, space="nb201", seed: int = 0, arch_lr: float = 3.5e-4, entropy_weight: float = 1e-4,
                 baseline_decay: float = 0.99, order: int = 1, **options):
        if int(order) != 1:
            raise NasagentError(f"the ENAS-like search has no second-order variant (order={order}); leave order at 1")
        super().__init__(space, order=1, seed=seed, arch_lr=arch_lr, arch_weight_decay=0.0, **options)
        if self.space.name != "nb201":
            raise NasagentError(f"the ENAS-like search covers the nb201 space, not {self.space.name!r}; use method='darts' there")
        if not 0 <= baseline_decay < 1 or entropy_weight < 0:
            raise NasagentError(f"baseline_decay must be in [0, 1) and entropy_weight >= 0, got {baseline_decay} and {entropy_weight}")
        self.entropy_weight, self.baseline_decay = float(entropy_weight), float(baseline_decay)
        self.baseline: float | None = None
        self.rng = np.random.default_rng([self.seed, 76])

    def _log_policy(self):
        torch = _torch()
        return torch.log_softmax(self.alpha["cell"].masked_fill(~self._mask["cell"], float("-inf")), dim=-1)

    def _sample(self) -> tuple[tuple, list[int]]:
        probs = self.probabilities()["cell"]
        idx = [int(self.rng.choice(len(self.relax.ops), p=row / row.sum())) for row in probs]
        return tuple(self.relax.ops[i] for i in idx), idx

    def _train_epoch(self, ep: Epoch) -> list[tuple[float, float]]:
        torch = _torch()
        self.net.train()
        out = []
        edges = torch.arange(6, device=self.device)
        for step, (bw, ba) in enumerate(ep.batches):
            iw = torch.from_numpy(self._w_idx[bw]).to(self.device)
            ia = torch.from_numpy(self._a_idx[ba]).to(self.device)
            arch, _ = self._sample()  # shared weights: one single-path step on a policy draw
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self.net(ep.x[iw], arch), ep.y[iw])
            check_loss(loss.detach(), self.epoch, ep.first_step + step, ep.lr)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.settings.grad_clip or 5.0)
            self.optimizer.step()
            arch, idx = self._sample()  # policy: REINFORCE on the accuracy of another draw
            reward = self._reward(arch, ep.x[ia], ep.y[ia])
            base = reward if self.baseline is None else self.baseline
            logp = self._log_policy()
            entropy = -(logp.exp() * logp.masked_fill(~self._mask["cell"], 0.0)).sum()
            chosen = logp[edges, torch.tensor(idx, device=self.device)].sum()
            self.arch_optimizer.zero_grad(set_to_none=True)
            (-(reward - base) * chosen - self.entropy_weight * entropy).backward()
            self.arch_optimizer.step()
            self.baseline = base * self.baseline_decay + (1 - self.baseline_decay) * reward
            out.append((float(loss.detach()), reward))
            if ep.stop_after(step + 1):
                break
        return out

    def _reward(self, arch, x, y) -> float:
        """The policy's reward: the accuracy of ``arch`` with the shared weights on an α-half batch."""
        torch = _torch()
        with torch.no_grad():
            return float((self.net(x, arch).argmax(1) == y).float().mean())

    def fit(self, data: Dataset, budget: Budget | int, checkpoint_dir: Path | None = None) -> None:
        self._setup(data)
        ck = Path(checkpoint_dir) / "enas.pt" if checkpoint_dir else None
        run_epochs(self, data, budget, ck, [(self._w_idx, 72), (self._a_idx, 73)], self._train_epoch,
                   lambda ep, rows: {"epoch": self.epoch, "train_loss": float(np.mean([r[0] for r in rows])),
                                     "reward": float(np.mean([r[1] for r in rows])), "arch": self.space.format(self.derive())})

    def _scoring_forward(self):
        """ENAS: the derived architecture on its single path, BN on batch statistics (class doc)."""
        self.net.train()
        arch = self.derive()
        return lambda x: self.net(x, arch)

    def _state(self) -> dict:
        return {**super()._state(), "baseline": self.baseline, "rng": self.rng.bit_generator.state}

    def _restore(self, st: dict) -> None:
        super()._restore(st)
        self.baseline, self.rng.bit_generator.state = st["baseline"], st["rng"]


#: the gradient-based searches ``FewShotDarts`` can split
METHODS = {"darts": DartsSearch, "enas": EnasSearch}


class FewShotDarts:
    """Few-shot DARTS: a DARTS supernet split by the op on ``splits`` edges; the child with the lowest
    validation loss proposes. ``child_fraction`` of the fit's epochs goes to *each* child (default 1/4, the
    authors' 150 of 600); with ``transfer`` children inherit w and α from their parent. A time limit in the fit's
    budget covers the whole tree: once it is spent, the remaining children keep their parent's w and α untrained
    (the thesis aborts the split; the cover of the space stays complete)."""

    def __init__(self, space="nb201", order: int = 1, splits: int = 1, edges: list | None = None, transfer: bool = True,
                 child_fraction: float = 0.25, seed: int = 0, method: str = "darts", **options):
        if method not in METHODS:
            raise NasagentError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
        self.search_class = METHODS[method]
        self.options = dict(options, order=order)
        self.seed = int(seed)
        self.root = self.search_class(space, seed=self.seed, **self.options)
        self.space = self.root.space
        candidates = list(range(6)) if self.space.name == "nb201" else [("normal", (0, 0)), ("normal", (0, 1)), ("reduce", (0, 0)), ("reduce", (0, 1))]
        if edges is None:
            if not 0 <= int(splits) <= len(candidates):
                raise NasagentError(f"splits must be in 0..{len(candidates)} for the {self.space.name} space, got {splits}")
            pick = np.random.default_rng([self.seed, 62]).choice(len(candidates), size=int(splits), replace=False)
            edges = [candidates[int(i)] for i in pick]
        for e in edges:
            if e not in candidates:
                raise NasagentError(f"edge {e!r} cannot be split; splittable edges: {candidates}")
        self.edges = list(edges)
        self.transfer = bool(transfer)
        if not 0 < child_fraction <= 1:
            raise NasagentError(f"child_fraction must be in (0, 1], got {child_fraction}")
        self.child_fraction = float(child_fraction)
        self.children: list[DartsSearch] = []  # EnasSearch children with method='enas'
        self.chosen: int | None = None
        self.val_losses: list[float] = []
        self.untrained = 0  # children left untrained because the fit's time budget ran out

    def _split(self, parent: DartsSearch, edge) -> list[tuple[str, object]]:
        region = parent.relax.region
        if self.space.name == "nb201":
            return [(op, tuple((op,) if e == edge else ops for e, ops in enumerate(region))) for op in region[edge] if op != "none"] \
                + ([("none", tuple(("none",) if e == edge else ops for e, ops in enumerate(region)))] if "none" in region[edge] else [])
        kind, e = edge
        out = []
        for op in region[kind][e]:
            if op == "none":
                continue  # node 0 always takes this edge, so a child fixed to "none" holds no genotype
            child = {k: dict(v) for k, v in region.items()}
            child[kind][e] = (op,)
            out.append((op, child))
        return out

    @property
    def seconds(self) -> float:
        return self.root.seconds + sum(c.seconds for c in self.children)

    def fit(self, data: Dataset, budget: Budget | int, checkpoint_dir: Path | None = None) -> None:
        epochs, seconds = fit_limits(budget)
        if epochs is None:
            raise NasagentError("few-shot DARTS needs an epoch budget: Budget(evaluations=EPOCHS)")
        ck = Path(checkpoint_dir) if checkpoint_dir else None
        child_epochs = max(1, round(self.child_fraction * epochs))
        self.root.fit(data, Budget(evaluations=epochs, seconds=seconds), ck / "root" if ck else None)
        frontier, spent = [self.root], self.root.seconds
        self.untrained = 0
        for level, edge in enumerate(self.edges):
            new = []
            for parent in frontier:
                for op, region in self._split(parent, edge):
                    child = self.search_class(self.space, seed=self.seed + 1 + len(new), region=region, **self.options)
                    child._setup(data)
                    if self.transfer:
                        child.inherit(parent)
                    name = f"level{level + 1}-{len(new)}-{op}"
                    child_ck = ck / name if ck else None
                    left = None if seconds is None else seconds - spent
                    if left is not None and left <= 0 and not (child_ck and child_ck.exists()):
                        self.untrained += 1  # the time budget T is spent (thesis: abort the split): keep the parent's w, α
                    else:  # (a checkpoint from before an interruption is loaded even when T is spent)
                        child.fit(data, Budget(evaluations=child_epochs, seconds=max(left, 1e-12) if left is not None else None), child_ck)
                    spent += child.seconds
                    new.append(child)
            frontier = new
        self.children = frontier
        self.val_losses = [c.validation_loss(data) for c in self.children]
        self.chosen = int(np.argmin(self.val_losses))
        if ck is not None:
            (ck / "fewshot_darts.json").write_text(json.dumps({
                "edges": [str(e) for e in self.edges], "val_losses": self.val_losses, "chosen": self.chosen,
                "untrained_children": self.untrained,
                "proposal": self.space.format(self.children[self.chosen].derive())}, indent=2))

    def propose(self, n: int = 1) -> list:
        if self.chosen is None:
            raise NasagentError("few-shot DARTS has not been fitted yet; call fit(data, budget, checkpoint_dir) first")
        out = list(self.children[self.chosen].propose(n))
        for i in np.argsort(self.val_losses):  # fill up from the next-best children
            if len(out) >= n:
                break
            for a in self.children[int(i)].propose(n):
                if all(self.space.key(a) != self.space.key(b) for b in out) and len(out) < n:
                    out.append(a)
        return out
