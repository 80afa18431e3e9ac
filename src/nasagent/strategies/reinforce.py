"""REINFORCE over independent categorical decisions, and the controller it trains (reused by TuNAS).

``CategoricalPolicy`` holds one logit per (decision, choice) and samples each decision independently from
the softmax over the choices legal at that point (a state-dependent action set simply masks the rest).
Its update is REINFORCE with a moving-average baseline, ``theta += lr * Adam((r - b) * grad log pi)``,
as in TuNAS (seed-004: baseline momentum 0.95, Adam with beta1 = 0); an optional entropy bonus keeps it
from collapsing early. The logit table grows as new choices appear, which is why the few lines of Adam
live here rather than in a torch optimizer (whose parameters are fixed at construction).

``Reinforce`` walks the space's sequential interface (decision ``t`` is the t-th step) and rewards the
policy with ``Result.score``; ``policy.argmax_arch(space)`` is the architecture it would export.
"""

from __future__ import annotations

import math

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy


class CategoricalPolicy:
    def __init__(
        self,
        lr: float = 0.05,
        beta1: float = 0.0,
        beta2: float = 0.999,
        eps: float = 1e-8,
        baseline_momentum: float = 0.95,
        entropy: float = 0.0,
    ):
        if not lr > 0 or not 0 <= beta1 < 1 or not 0 <= beta2 < 1 or not 0 <= baseline_momentum < 1:
            raise NasagentError(
                f"policy needs lr > 0, 0 <= beta1, beta2, baseline_momentum < 1; got {lr}, {beta1}, {beta2}, {baseline_momentum}"
            )
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.baseline_momentum = baseline_momentum
        self.entropy = entropy
        self.logits: dict[tuple, float] = {}
        self.m: dict[tuple, float] = {}
        self.v: dict[tuple, float] = {}
        self.steps = 0
        self.baseline: float | None = None

    def probs(self, decision, choices) -> np.ndarray:
        z = np.array([self.logits.get((decision, c), 0.0) for c in choices])
        z = np.exp(z - z.max())
        return z / z.sum()

    def sample(self, decision, choices, rng: np.random.Generator) -> int:
        return int(rng.choice(len(choices), p=self.probs(decision, choices)))

    def argmax(self, decision, choices) -> int:
        return int(np.argmax(self.probs(decision, choices)))

    def update(self, picks, reward: float, lr: float | None = None) -> float:
        """One REINFORCE step for a sampled set of decisions ``[(decision, choices, index)]``; returns the
        advantage ``reward - baseline`` (the baseline is updated after it is used)."""
        reward = float(reward)
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self.baseline = self.baseline_momentum * self.baseline + (1 - self.baseline_momentum) * reward
        grads: dict[tuple, float] = {}
        for decision, choices, index in picks:
            p = self.probs(decision, choices)
            g = -p * advantage
            g[index] += advantage
            if self.entropy:
                logp = np.log(np.maximum(p, 1e-300))
                g += self.entropy * (-p * (logp + float(-(p * logp).sum())))
            for c, gc in zip(choices, g, strict=True):
                grads[(decision, c)] = grads.get((decision, c), 0.0) + float(gc)
        self.steps += 1
        step = self.lr if lr is None else lr
        c1 = 1 - self.beta1**self.steps
        c2 = 1 - self.beta2**self.steps
        for k, g in grads.items():  # Adam ascent on the log-likelihood weighted by the advantage
            self.m[k] = self.beta1 * self.m.get(k, 0.0) + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v.get(k, 0.0) + (1 - self.beta2) * g * g
            self.logits[k] = self.logits.get(k, 0.0) + step * (self.m[k] / c1) / (math.sqrt(self.v[k] / c2) + self.eps)
        return advantage

    # -- over a sequential space --------------------------------------------------------------------
    def rollout(self, space, rng: np.random.Generator, greedy: bool = False, max_steps: int = 10_000):
        """Build an architecture decision by decision; returns (arch, picks)."""
        state = space.root()
        picks = []
        for t in range(max_steps):
            if space.is_terminal(state):
                return space.to_arch(state), picks
            acts = list(space.actions(state))
            if not acts:
                raise NasagentError(f"space {space.name!r} offers no action in a non-terminal state")
            keys = [repr(a) for a in acts]
            i = self.argmax(t, keys) if greedy else self.sample(t, keys, rng)
            picks.append((t, keys, i))
            state = space.step(state, acts[i])
        raise NasagentError(f"a rollout did not terminate within {max_steps} steps")

    def argmax_arch(self, space):
        """The most probable choice at every decision (TuNAS' exported architecture)."""
        return self.rollout(space, np.random.default_rng(0), greedy=True)[0]


class Reinforce(Strategy):
    """Defaults: Adam lr 0.05 (beta1 0) and baseline momentum 0.95 (TuNAS), no entropy bonus; measured
    on NB201 in benchmarks/baselines_all.py (docs/baselines.md). ``unique`` re-draws repeats (see _propose)."""

    requires = ("sequential",)

    def __init__(
        self,
        space,
        seed: int = 0,
        lr: float = 0.05,
        baseline_momentum: float = 0.95,
        entropy: float = 0.0,
        unique: bool = True,
        max_tries: int = 50,
    ):
        super().__init__(space, seed)
        self.policy = CategoricalPolicy(lr=lr, baseline_momentum=baseline_momentum, entropy=entropy)
        self.pending: dict[int, list] = {}
        self.unique, self.max_tries = unique, max_tries
        self.proposed: set[str] = set()

    def _propose(self) -> Proposal:
        # unique=True (our default): re-draw up to max_tries times for an architecture not proposed before, since a
        # repeat costs no budget on a table and a peaked policy would otherwise spin; unique=False is plain sampling
        for _ in range(self.max_tries if self.unique else 1):
            arch, picks = self.policy.rollout(self.space, self.rng)
            if self.space.key(arch) not in self.proposed:
                break
        self.proposed.add(self.space.key(arch))
        self.pending[self._next_number] = picks
        return Proposal(arch)

    def _observe(self, trial: Trial, result: Result) -> None:
        picks = self.pending.pop(trial.number, None)
        if picks is not None and result.ok:
            self.policy.update(picks, result.score)
