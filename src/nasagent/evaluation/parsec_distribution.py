"""PARSEC's prior over DARTS cells: one categorical per (cell type, node, input slot) over (predecessor, op) pairs.

Casale et al. (PARSEC, §3.3): node ``n`` (0-based; DARTS' node n+2) of a cell has two input slots, and each
slot picks one of the ``(n + 2) * P`` pairs (predecessor j in 0..n+1, op p). With N = 4 nodes and the P = 7
DARTS ops ("none" excluded) a cell has 8 categoricals of 14, 14, 21, 21, 28, 28, 35, 35 categories (196
probabilities); normal + reduction cells give 16 categoricals and 392 logits. Category ``i`` of a slot is
predecessor ``i // P`` and op ``ops[i % P]``.

π is parameterised by logits (π = softmax(logits / temperature)); the logits are ``torch`` leaf tensors so
``log_prob`` is differentiable and Adam can update them (A2 of the brief). A sample is a tuple of 16 category
indices. Both slots of a node may pick the same predecessor (the paper's size formula counts that case, A1);
``exclude_duplicates=True`` instead draws the second slot from the pairs whose predecessor differs from the
first slot's, so every sample is a valid DARTS genotype.

Proposals must be valid genotypes of ``DartsSpace`` (two distinct inputs per node): ``best_valid`` and
``top_k`` rank valid cells by their probability under the model, whatever ``exclude_duplicates`` says.
"""

from __future__ import annotations

import heapq
import math

import numpy as np

from nasagent.core import NasagentError
from nasagent.evaluation.networks import _torch
from nasagent.spaces.darts import CELL_TYPES, N_NODES, OPS, DartsGenotype, _canonical


class CellDistribution:
    """Fully factorised p(α | π) over DARTS cells (normal and reduction); see the module docstring."""

    def __init__(self, ops=OPS, n_nodes: int = N_NODES, cell_types=CELL_TYPES, exclude_duplicates: bool = False,
                 temperature: float = 1.0, init_std: float = 0.0, seed: int = 0):
        torch = _torch()
        self.ops = tuple(ops)
        if "none" in self.ops:
            raise NasagentError("PARSEC chooses inputs explicitly and has no 'none' op; remove it from ops")
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise NasagentError(f"ops must be a non-empty list of distinct op names, got {list(ops)}")
        if int(n_nodes) < 1:
            raise NasagentError(f"a cell needs at least one node, got n_nodes={n_nodes}")
        if not (temperature > 0 and math.isfinite(temperature)):
            raise NasagentError(f"temperature must be a positive number, got {temperature}")
        self.n_nodes = int(n_nodes)
        self.cell_types = tuple(cell_types)
        self.exclude_duplicates = bool(exclude_duplicates)
        self.temperature = float(temperature)
        #: (cell type, node, slot) of each categorical, in sample order
        self.slots = [(kind, n, s) for kind in self.cell_types for n in range(self.n_nodes) for s in (0, 1)]
        gen = torch.Generator().manual_seed(int(seed))
        self.logits = [
            (init_std * torch.randn(self.categories(n), generator=gen)).requires_grad_(True) for _, n, _ in self.slots
        ]

    # -- structure ----------------------------------------------------------------------------------------------
    @property
    def P(self) -> int:
        return len(self.ops)

    def categories(self, node: int) -> int:
        return (node + 2) * self.P

    def pair(self, index: int) -> tuple[int, str]:
        """(predecessor, op) of category ``index``."""
        return index // self.P, self.ops[index % self.P]

    def index(self, predecessor: int, op: str) -> int:
        return predecessor * self.P + self.ops.index(op)

    def size(self) -> int:
        """Number of distinct samples (ordered slots, duplicates allowed): ∏ P²(n+2)² per cell, the paper's count
        (≈ 8.3e10 per cell for N = 4, P = 7; it writes "≈ 10^10")."""
        per_cell = 1
        for n in range(self.n_nodes):
            per_cell *= self.categories(n) ** 2
        return per_cell ** len(self.cell_types)

    def max_entropy(self) -> float:
        """Entropy of the uniform π (duplicates allowed): Σ log(categories) ≈ 50.28 nats for the DARTS cells."""
        return float(sum(math.log(self.categories(n)) for _, n, _ in self.slots))

    # -- probabilities -----------------------------------------------------------------------------------------
    def log_probs(self, c: int, detach: bool = False):
        torch = _torch()
        z = self.logits[c].detach() if detach else self.logits[c]
        return torch.log_softmax(z / self.temperature, dim=-1)

    def _second_slot_mask(self, c: int, first: int):
        """Boolean mask of the second slot's categories whose predecessor differs from category ``first``."""
        torch = _torch()
        pred = torch.arange(self.logits[c].numel(), device=self.logits[c].device) // self.P
        return pred != (first // self.P)

    def _masked_log_probs(self, c: int, first: int, detach: bool = False):
        torch = _torch()
        z = (self.logits[c].detach() if detach else self.logits[c]) / self.temperature
        return torch.log_softmax(z.masked_fill(~self._second_slot_mask(c, first), float("-inf")), dim=-1)

    def log_prob(self, sample):
        """log p(α | π) of a sample (a differentiable torch scalar)."""
        sample = self.check(sample)
        total = 0.0
        for c, (_, _, s) in enumerate(self.slots):
            if s == 1 and self.exclude_duplicates:
                lp = self._masked_log_probs(c, sample[c - 1])
            else:
                lp = self.log_probs(c)
            total = total + lp[sample[c]]
        return total

    def log_prob_many(self, samples):
        """log p(α_k | π) of several samples as one differentiable (k,) tensor (one softmax per categorical)."""
        torch = _torch()
        samples = [self.check(s) for s in samples]
        if self.exclude_duplicates:
            return torch.stack([self.log_prob(s) for s in samples])
        idx = torch.tensor(samples, dtype=torch.long, device=self.logits[0].device)
        return sum(self.log_probs(c)[idx[:, c]] for c in range(len(self.slots)))

    def entropy(self) -> float:
        """Exact entropy (nats) of p(α | π)."""
        return float(sum(self.slot_entropies()))

    def slot_entropies(self) -> list[float]:
        """Per-categorical entropies; with ``exclude_duplicates`` the second slot's is its conditional entropy."""
        torch = _torch()
        out = []
        with torch.no_grad():
            for c, (_, n, s) in enumerate(self.slots):
                if s == 1 and self.exclude_duplicates:
                    p_first = self.log_probs(c - 1, detach=True).exp().reshape(n + 2, self.P).sum(1)
                    h = 0.0
                    for j in range(n + 2):
                        lp = self._masked_log_probs(c, j * self.P, detach=True)
                        p = lp.exp()
                        h += float(p_first[j]) * float(-(p * lp.nan_to_num(neginf=0.0)).sum())
                    out.append(h)
                else:
                    lp = self.log_probs(c, detach=True)
                    out.append(float(-(lp.exp() * lp).sum()))
        return out

    def probabilities(self) -> list[np.ndarray]:
        return [self.log_probs(c, detach=True).exp().cpu().numpy() for c in range(len(self.slots))]

    # -- samples ------------------------------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        """One architecture (16 category indices) drawn with the caller's ``numpy`` generator."""
        out: list[int] = []
        for c, (_, _, s) in enumerate(self.slots):
            if s == 1 and self.exclude_duplicates:
                p = self._masked_log_probs(c, out[-1], detach=True).exp().cpu().numpy().astype(float)
            else:
                p = self.log_probs(c, detach=True).exp().cpu().numpy().astype(float)
            out.append(int(rng.choice(len(p), p=p / p.sum())))
        return tuple(out)

    def samples(self, rng: np.random.Generator, k: int) -> list[tuple[int, ...]]:
        """``k`` independent samples (the probabilities are computed once for all of them)."""
        if self.exclude_duplicates:
            return [self.sample(rng) for _ in range(int(k))]
        cols = []
        for c in range(len(self.slots)):
            p = self.log_probs(c, detach=True).exp().cpu().numpy().astype(float)
            cols.append(rng.choice(len(p), size=int(k), p=p / p.sum()))
        return [tuple(int(col[i]) for col in cols) for i in range(int(k))]

    def mode(self) -> tuple[int, ...]:
        """The most probable sample (per-slot argmax; jointly per node with ``exclude_duplicates``, A13)."""
        if self.exclude_duplicates:
            return self.best_valid()
        return tuple(int(self.log_probs(c, detach=True).argmax()) for c in range(len(self.slots)))

    def _node_pairs(self, c: int, valid: bool) -> list[tuple[float, int, int]]:
        """(log p, first, second) of every joint choice of the node whose first slot is categorical ``c``."""
        lp0 = self.log_probs(c, detach=True).cpu().numpy()
        free = self.log_probs(c + 1, detach=True).cpu().numpy()
        out = []
        for a in range(len(lp0)):
            lp1 = self._masked_log_probs(c + 1, a, detach=True).cpu().numpy() if self.exclude_duplicates else free
            for b in range(len(lp1)):
                if valid and a // self.P == b // self.P:
                    continue
                if np.isfinite(lp1[b]):
                    out.append((float(lp0[a] + lp1[b]), a, b))
        return out

    def best_valid(self) -> tuple[int, ...]:
        """The most probable sample whose nodes take two distinct inputs (a valid DARTS genotype)."""
        return self.top_k(1)[0]

    def top_k(self, k: int) -> list[tuple[int, ...]]:
        """The ``k`` most probable valid samples, most probable first (exact: top-k merges of per-node lists)."""
        k = int(k)
        if k < 1:
            raise NasagentError(f"top_k needs k >= 1, got {k}")
        partial: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
        for c in range(0, len(self.slots), 2):
            pairs = heapq.nlargest(k, self._node_pairs(c, valid=True))
            merged = [(lp + q, prefix + (a, b)) for lp, prefix in partial for q, a, b in pairs]
            partial = heapq.nlargest(k, merged, key=lambda t: t[0])
        return [s for _, s in partial]

    def check(self, sample) -> tuple[int, ...]:
        sample = tuple(int(i) for i in sample)
        if len(sample) != len(self.slots):
            raise NasagentError(f"a PARSEC sample has {len(self.slots)} category indices, got {len(sample)}")
        for c, (_, n, _) in enumerate(self.slots):
            if not 0 <= sample[c] < self.categories(n):
                raise NasagentError(f"category {sample[c]} out of range 0..{self.categories(n) - 1} for slot {self.slots[c]}")
        return sample

    def is_valid(self, sample) -> bool:
        """True when every node takes two distinct predecessors (a genotype ``DartsSpace`` accepts)."""
        return all(sample[c] // self.P != sample[c + 1] // self.P for c in range(0, len(self.slots), 2))

    # -- genotypes ----------------------------------------------------------------------------------------------
    def cells(self, sample) -> dict[str, tuple]:
        sample = self.check(sample)
        out: dict[str, list] = {kind: [] for kind in self.cell_types}
        for c, (kind, _, _) in enumerate(self.slots):
            j, op = self.pair(sample[c])
            out[kind].append((op, j))
        return {k: tuple(v) for k, v in out.items()}

    def network_genotype(self, sample) -> DartsGenotype:
        """The sample as a ``DartsGenotype`` the DARTS network can run (duplicate inputs allowed: a node that
        picks the same edge twice adds that edge's output twice, one weight set per edge as in DARTS, A1)."""
        cells = self.cells(sample)
        return DartsGenotype(cells["normal"], cells["reduce"])

    def genotype(self, sample) -> DartsGenotype:
        """The sample as a valid ``DartsSpace`` genotype; raises for a sample with a duplicate input."""
        if not self.is_valid(sample):
            raise NasagentError("this PARSEC sample takes one input twice in some node; it is not a DARTS genotype")
        cells = self.cells(sample)
        return DartsGenotype(_canonical(cells["normal"]), _canonical(cells["reduce"]))

    def sample_of(self, genotype: DartsGenotype) -> tuple[int, ...]:
        """Category indices of a genotype (its canonical slot order)."""
        out = []
        for kind in self.cell_types:
            for op, j in genotype.cell(kind):
                out.append(self.index(j, op))
        return self.check(out)

    # -- persistence and transfer (§4.2: initialise π from a previous search) ----------------------------------
    def state_dict(self) -> dict:
        return {"ops": list(self.ops), "n_nodes": self.n_nodes, "cell_types": list(self.cell_types),
                "exclude_duplicates": self.exclude_duplicates, "temperature": self.temperature,
                "logits": [z.detach().clone() for z in self.logits]}

    def load_state_dict(self, state: dict) -> None:
        """Copy logits from ``state`` (a previous search's π); the cell structure must match."""
        if list(state.get("ops", [])) != list(self.ops) or int(state.get("n_nodes", -1)) != self.n_nodes \
                or list(state.get("cell_types", [])) != list(self.cell_types):
            raise NasagentError(
                f"cannot load π: it was learnt for ops {state.get('ops')}, {state.get('n_nodes')} nodes, cells "
                f"{state.get('cell_types')}; this distribution has {list(self.ops)}, {self.n_nodes}, {list(self.cell_types)}"
            )
        torch = _torch()
        with torch.no_grad():
            for z, v in zip(self.logits, state["logits"], strict=True):
                z.copy_(torch.as_tensor(v, dtype=z.dtype))
