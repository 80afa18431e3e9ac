"""LA-MCTS as an Optuna sampler: ``optuna.create_study(sampler=LAMCTSSampler(seed=0))``.

The sampler searches jointly over the study's float parameters (the intersection of the search spaces of the
completed trials, as Optuna's relative samplers do); log-scaled floats are searched in log space. Integer,
categorical and stepped float parameters, and every parameter of the first trial, come from an independent
sampler (``independent_sampler``, default Optuna's ``RandomSampler`` with the same seed). Completed trials
the sampler did not propose (enqueued trials, trials from another sampler) are told to LA-MCTS as extra
observations. Single-objective studies only; pruned and failed trials count as failed evaluations. If the
joint float space changes, LA-MCTS starts again on the new space (with the completed trials that cover it).
Safe with ``study.optimize(..., n_jobs=k)``: one lock serialises the sampler's asks and tells. A trial that skips
one of the joint parameters (a conditional space) counts as a failed evaluation of LA-MCTS's point; a trial
whose joint parameters were replaced (``enqueue_trial``) is told at the point actually evaluated. ``seed=None``
draws a fresh seed, as Optuna's own samplers do.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from nasagent.core import NasagentError
from nasagent.strategies.lamcts import LAMCTSOptimizer

try:
    import optuna
    from optuna.distributions import FloatDistribution
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.search_space import IntersectionSearchSpace
    from optuna.trial import TrialState
except ImportError as e:  # pragma: no cover - optuna is an optional extra
    raise ImportError(f"nasagent.integrations.optuna needs optuna ({e}); install: pip install 'nasagent[bbo]'") from None


class LAMCTSSampler(BaseSampler):
    """An Optuna sampler backed by ``LAMCTSOptimizer``; ``options`` are its options (solver, preset, cp, ...)."""

    def __init__(self, seed: int | None = None, independent_sampler: BaseSampler | None = None, **options):
        self.seed = _fresh_seed() if seed is None else int(seed)  # None: a different search each time, as Optuna's samplers
        self.options = dict(options)
        for bad in ("lower", "upper", "minimize"):
            if bad in self.options:
                raise NasagentError(f"LAMCTSSampler sets {bad!r} itself from the study; remove it from the options")
        LAMCTSOptimizer([0.0], [1.0], seed=self.seed, **self.options)  # validates the options now
        self.independent = independent_sampler or RandomSampler(seed=self.seed)
        self._space = IntersectionSearchSpace()
        self._names: tuple[str, ...] | None = None
        self._dists: dict[str, FloatDistribution] = {}
        self._opt: LAMCTSOptimizer | None = None
        self._tokens: dict[int, int] = {}  # trial number -> LA-MCTS token
        self._seen: set[int] = set()  # trial numbers already told
        self._lock = threading.RLock()  # Optuna's n_jobs > 1 calls the sampler from several threads

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # -- Optuna's sampler interface ------------------------------------------------------------------------------
    def reseed_rng(self) -> None:
        self.independent.reseed_rng()
        with self._lock:
            self.seed = _fresh_seed()
            if self._opt is not None:
                self._opt.rng = np.random.default_rng(self.seed)

    def infer_relative_search_space(self, study, trial) -> dict:
        if len(study.directions) != 1:
            raise NasagentError("LAMCTSSampler supports single-objective studies only")
        space = self._space.calculate(study)
        return {k: d for k, d in space.items() if isinstance(d, FloatDistribution) and d.step is None and d.low < d.high}

    def sample_relative(self, study, trial, search_space: dict) -> dict:
        if not search_space:
            return {}
        with self._lock:
            self._sync(study, search_space)
            token, u = self._opt.ask_token()
            self._tokens[trial.number] = token
            return {name: self._from_internal(name, v) for name, v in zip(self._names, u)}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.independent.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.independent.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.independent.after_trial(study, trial, state, values)
        with self._lock:
            token = self._tokens.pop(trial.number, None)
            if token is None or self._opt is None:
                return
            if not all(n in trial.params for n in self._names):  # a conditional space: the trial skipped one of the
                asked = self._opt.pending.get(token)  # joint parameters, so LA-MCTS's point was not evaluated
                if asked is not None:
                    self._opt.tell_token(token, asked[0], None)
                return
            x = self._internal(trial.params)
            value = values[0] if state == TrialState.COMPLETE and values else None
            if value is not None and not math.isfinite(value):
                value = None
            self._opt.tell_token(token, x, None if value is None else self._opt.sign * float(value))
            self._seen.add(trial.number)

    # -- internals --------------------------------------------------------------------------------------------
    def _sync(self, study, search_space: dict) -> None:
        """Start LA-MCTS on a new joint space, then tell it the completed trials it has not seen."""
        names = tuple(sorted(search_space))
        if names != self._names or any(search_space[n] != self._dists.get(n) for n in names):
            self._names, self._dists = names, dict(search_space)
            lo = [self._to_internal(n, search_space[n].low) for n in names]
            hi = [self._to_internal(n, search_space[n].high) for n in names]
            minimize = study.direction == optuna.study.StudyDirection.MINIMIZE
            self._opt = LAMCTSOptimizer(lo, hi, seed=self.seed, minimize=minimize, **self.options)
            self._tokens.clear()
            self._seen = set()
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.number in self._seen or t.number in self._tokens or not all(n in t.params for n in names):
                continue
            self._seen.add(t.number)
            if t.value is not None and math.isfinite(t.value):
                self._opt.tell(self._internal(t.params), float(t.value))

    def _internal(self, params: dict) -> np.ndarray:
        return np.array([self._to_internal(n, params[n]) for n in self._names], dtype=np.float64)

    def _to_internal(self, name: str, value: float) -> float:
        return math.log(value) if self._dists[name].log else float(value)

    def _from_internal(self, name: str, v: float) -> float:
        d = self._dists[name]
        value = math.exp(v) if d.log else float(v)
        return float(min(max(value, d.low), d.high))


def _fresh_seed() -> int:
    return int(np.random.SeedSequence().entropy % (2**31 - 1))
