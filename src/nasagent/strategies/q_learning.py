"""Tabular epsilon-greedy Q-learning over the space's sequential interface (MetaQNN; AlphaX seed baseline).

An episode walks from ``space.root()`` to a terminal state, choosing a random legal action with
probability ``epsilon`` and otherwise the action of highest Q (ties broken at random; unseen pairs hold
``q0``). The episode's architecture is evaluated; its reward arrives only at the end, and the episode's
transitions are updated last to first (MetaQNN's replay order, so one episode carries the reward back to
the root): ``Q(s,a) += alpha * (r_t + gamma * max_a' Q(s',a') - Q(s,a))`` with ``r_t`` the reward on the
final transition and 0 before it. Seed defaults (AlphaX paper, App. 8): alpha 0.2, gamma 1, epsilon 0.2
fixed, Q0 0.5.

Rewards: the seed's rewards are accuracies in [0, 1], where Q0 = 0.5 sits mid-range. Metrics here come in
any unit (NB201 accuracy is in %), so by default (``reward="minmax"``) a score is scaled to [0, 1] by the
lowest and highest scores seen so far; ``reward="raw"`` uses the score as it is (the seed's behaviour when
the metric already lies in [0, 1]). A failed evaluation earns reward 0.
"""

from __future__ import annotations

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy


class QLearning(Strategy):
    requires = ("sequential",)

    def __init__(
        self,
        space,
        seed: int = 0,
        alpha: float = 0.2,
        gamma: float = 1.0,
        epsilon: float = 0.2,
        q0: float = 0.5,
        reward: str = "minmax",
        max_steps: int = 10_000,
    ):
        super().__init__(space, seed)
        if not 0 < alpha <= 1 or not 0 <= gamma <= 1 or not 0 <= epsilon <= 1:
            raise NasagentError(f"q-learning needs 0 < alpha <= 1, 0 <= gamma <= 1, 0 <= epsilon <= 1; got {alpha}, {gamma}, {epsilon}")
        if reward not in ("minmax", "raw"):
            raise NasagentError(f"q-learning reward must be 'minmax' or 'raw', got {reward!r}")
        self.alpha, self.gamma, self.epsilon, self.q0 = alpha, gamma, epsilon, q0
        self.reward = reward
        self.max_steps = max_steps
        self.q: dict[tuple[str, str], float] = {}
        self.episodes: dict[int, list[tuple]] = {}  # trial number -> [(state, action key)], until told
        self.low = self.high = None  # score range seen so far (minmax rewards)

    def _q(self, skey: str, akey: str) -> float:
        return self.q.get((skey, akey), self.q0)

    def _propose(self) -> Proposal:
        state = self.space.root()
        path = []
        for _ in range(self.max_steps):
            if self.space.is_terminal(state):
                break
            acts = list(self.space.actions(state))
            if not acts:
                raise NasagentError(f"space {self.space.name!r} offers no action in a non-terminal state")
            skey = repr(state)
            if self.rng.random() < self.epsilon:
                i = int(self.rng.integers(len(acts)))
            else:
                values = [self._q(skey, repr(a)) for a in acts]
                best = max(values)
                ties = [j for j, v in enumerate(values) if v == best]
                i = ties[int(self.rng.integers(len(ties)))]
            path.append((state, repr(acts[i])))
            state = self.space.step(state, acts[i])
        else:
            raise NasagentError(f"q-learning episode did not terminate within {self.max_steps} steps")
        self.episodes[self._next_number] = path
        return Proposal(self.space.to_arch(state))

    def _scaled(self, result: Result) -> float:
        if not result.ok:
            return 0.0
        s = float(result.score)
        if self.reward == "raw":
            return s
        self.low = s if self.low is None else min(self.low, s)
        self.high = s if self.high is None else max(self.high, s)
        return 0.5 if self.high == self.low else (s - self.low) / (self.high - self.low)

    def _observe(self, trial: Trial, result: Result) -> None:
        path = self.episodes.pop(trial.number, None)
        if not path:
            return
        r = self._scaled(result)
        for t in range(len(path) - 1, -1, -1):
            state, akey = path[t]
            if t == len(path) - 1:
                target = r
            else:
                nxt = path[t + 1][0]
                target = self.gamma * max(self._q(repr(nxt), repr(a)) for a in self.space.actions(nxt))
            skey = repr(state)
            self.q[(skey, akey)] = self._q(skey, akey) + self.alpha * (target - self._q(skey, akey))
