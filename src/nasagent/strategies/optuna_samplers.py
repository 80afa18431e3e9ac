"""Optuna's samplers (TPE, NSGA-II) on nasagent spaces, through Optuna's own ask/tell interface.

An architecture is built by walking the space's sequential interface: the choice at step ``t`` is an Optuna
categorical parameter ``d{t}`` over the legal actions (spaces whose action set at a step varies with the
state get one parameter per distinct action set, so Optuna never sees a categorical with changing choices).
Continuous boxes get one float parameter per dimension. Optuna maximises ``Result.score``, or, with
``n_objectives`` > 1, each of ``Result.scores`` (``nasagent search`` fills ``n_objectives`` from the
``--objective`` list); the constraint violation reaches NSGA-II and TPE as the trial's constraint value
(``Trial.set_constraint``: feasible when <= 0). With ``n_objectives=1`` on a multi-objective run the
sampler optimises the scalarised score.

Snapshots hold the sampler (Optuna documents pickling it to resume) and the finished trials; the study
is rebuilt from them on ``load_state_dict``. Trials running at snapshot time are re-added when told.
"""

from __future__ import annotations

import hashlib

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy


def _optuna():
    try:
        import optuna
    except ImportError as e:
        raise NasagentError(f"the Optuna strategies need optuna: pip install 'nasagent[bbo]' ({e})") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class OptunaStrategy(Strategy):
    """Base adapter: subclasses say which sampler to build (``_make_sampler``)."""

    _transient = ("space", "_study", "_live")

    def __init__(self, space, seed: int = 0, n_objectives: int = 1, constraints: bool = True):
        super().__init__(space, seed)
        if n_objectives < 1:
            raise NasagentError(f"n_objectives must be >= 1, got {n_objectives}")
        self.n_objectives = int(n_objectives)
        self.constraints = constraints
        self.continuous = not getattr(space, "sequential", False)
        if self.continuous and not hasattr(space, "decode"):
            raise NasagentError(f"{type(self).__name__} needs a sequential space or a box; {space.name!r} is neither")
        self._sampler = self._make_sampler()
        self._finished: list = []  # finished FrozenTrials of a snapshot (rebuild the study on load)
        self._params: dict[int, tuple[dict, dict]] = {}  # our trial number -> (params, distributions) until told
        self._signatures: dict[str, str] = {}  # parameter name -> action-set signature
        self._study = None
        self._live: dict[int, object] = {}  # our trial number -> live optuna Trial

    def _make_sampler(self):
        raise NotImplementedError

    # -- the study ----------------------------------------------------------------------------------
    @property
    def study(self):
        if self._study is None:
            optuna = _optuna()
            self._study = optuna.create_study(directions=["maximize"] * self.n_objectives, sampler=self._sampler)
            if self._finished:
                self._study.add_trials(self._finished)
        return self._study

    def _param_name(self, t: int, keys: list[str]) -> str:
        sig = hashlib.sha1("\x1f".join(keys).encode()).hexdigest()[:10]
        name = f"d{t}"
        known = self._signatures.setdefault(name, sig)
        if known != sig:
            name = f"d{t}_{sig}"
            self._signatures.setdefault(name, sig)
        return name

    # -- ask / tell -----------------------------------------------------------------------------------
    def _propose(self):
        trial = self.study.ask()
        if self.continuous:
            lo, hi = self.space.lower, self.space.upper
            x = [trial.suggest_float(f"x{i}", float(lo[i]), float(hi[i])) for i in range(self.space.dim)]
            arch = self.space.validate(x)
        else:
            state = self.space.root()
            t = 0
            while not self.space.is_terminal(state):
                acts = list(self.space.actions(state))
                if not acts:
                    raise NasagentError(f"space {self.space.name!r} offers no action in a non-terminal state")
                keys = [repr(a) for a in acts]
                choice = trial.suggest_categorical(self._param_name(t, keys), keys)
                state = self.space.step(state, acts[keys.index(choice)])
                t += 1
            arch = self.space.to_arch(state)
        self._live[self._next_number] = trial
        self._params[self._next_number] = (dict(trial.params), dict(trial.distributions))
        return Proposal(arch, info={"optuna_trial": trial.number})

    def _observe(self, trial: Trial, result: Result) -> None:
        optuna = _optuna()
        live = self._live.pop(trial.number, None)
        params, dists = self._params.pop(trial.number, (None, None))
        values = None
        if result.ok:
            values = list(result.scores) if self.n_objectives > 1 and result.scores is not None else [result.score]
            if len(values) != self.n_objectives:  # e.g. n_objectives=2 on a single-objective run
                raise NasagentError(
                    f"{type(self).__name__} was built for {self.n_objectives} objective(s) but the run has {len(values)}; "
                    f"pass n_objectives={len(values)}"
                )
        violation = float(result.violation or 0.0) if result.ok else 0.0
        if live is not None:
            if self.constraints:
                live.set_constraint("violation", violation)
            if values is None:
                self.study.tell(live, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(live, values)
        elif params is not None:  # asked before a snapshot, told after the resume: add it as a finished trial
            state = optuna.trial.TrialState.COMPLETE if values is not None else optuna.trial.TrialState.FAIL
            self.study.add_trial(
                optuna.trial.create_trial(
                    state=state, values=values, params=params, distributions=dists,
                    constraints={"violation": violation} if self.constraints else None,
                )
            )

    # -- snapshots ------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        d = super().state_dict()
        if self._study is not None:
            states = (_optuna().trial.TrialState.COMPLETE, _optuna().trial.TrialState.FAIL)
            d["_finished"] = self._study.get_trials(deepcopy=False, states=states)
        return d

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._study = None
        self._live = {}


class OptunaTPE(OptunaStrategy):
    """Optuna's TPE sampler with its defaults (10 random start-up trials, 24 EI candidates)."""

    def __init__(self, space, seed: int = 0, n_objectives: int = 1, constraints: bool = True, multivariate: bool = False):
        self.multivariate = multivariate
        super().__init__(space, seed, n_objectives, constraints)

    def _make_sampler(self):
        return _optuna().samplers.TPESampler(seed=self.seed, multivariate=self.multivariate)


class OptunaNSGA2(OptunaStrategy):
    """Optuna's NSGA-II sampler with its defaults (population 50, uniform crossover p 0.9)."""

    def __init__(self, space, seed: int = 0, n_objectives: int = 1, constraints: bool = True, population_size: int = 50):
        if population_size < 2:
            raise NasagentError(f"optuna-nsga2 population_size must be >= 2, got {population_size}")
        self.population_size = population_size
        super().__init__(space, seed, n_objectives, constraints)

    def _make_sampler(self):
        return _optuna().samplers.NSGAIISampler(seed=self.seed, population_size=self.population_size)
