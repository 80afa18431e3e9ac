"""Optuna's samplers (TPE, NSGA-II) on nasagent spaces, through Optuna's own ask/tell interface.

An architecture is built by walking the space's sequential interface: the choice at step ``t`` is an Optuna
categorical parameter ``d{t}`` over the legal actions (spaces whose action set at a step varies with the
state get one parameter per distinct action set, so Optuna never sees a categorical with changing choices).
Continuous boxes get one float parameter per dimension. Optuna maximises ``Result.score``, or, with
``n_objectives`` > 1, each of ``Result.scores`` (``nasagent search`` fills ``n_objectives`` from the
``--objective`` list); the constraint violation reaches NSGA-II and TPE as the trial's constraint value
(``Trial.set_constraint``: feasible when <= 0). With ``n_objectives=1`` on a multi-objective run the
sampler optimises the scalarised score.

Snapshots hold the sampler (Optuna documents pickling it to resume), every trial of the study (running
ones too: TPE's constant liar reads them) and the study's system attributes (NSGA-II keeps its population
there); ``load_state_dict`` rebuilds the study with the same trial numbers and re-links the running trials,
so a resumed search continues exactly.
"""

from __future__ import annotations

import copy
import hashlib
import threading

import numpy as np

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
        self._study_attrs: dict = {}  # the study's system attributes of a snapshot
        self._live_numbers: dict[int, int] = {}  # our trial number -> Optuna trial number, of a snapshot

    def _make_sampler(self):
        raise NotImplementedError

    # -- the study ----------------------------------------------------------------------------------
    @property
    def study(self):
        if self._study is None:
            optuna = _optuna()
            study = optuna.create_study(directions=["maximize"] * self.n_objectives, sampler=self._sampler)
            storage, sid = study._storage, study._study_id
            for t in self._finished:  # the snapshot's trials, in order, so their numbers stay the same
                storage.create_new_trial(sid, template_trial=t)
            for key, value in self._study_attrs.items():
                storage.set_study_system_attr(sid, key, value)
            for ours, number in self._live_numbers.items():
                self._live[ours] = optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(sid, number))
            self._finished, self._study_attrs, self._live_numbers = [], {}, {}
            self._study = study
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
            st = self._study
            d["_finished"] = st.get_trials(deepcopy=True)  # every state: running trials feed TPE's constant liar
            d["_study_attrs"] = dict(st._storage.get_study_system_attrs(st._study_id))
            d["_live_numbers"] = {ours: t.number for ours, t in self._live.items()}
        d["_sampler"] = _without_locks(d["_sampler"])
        return d

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        _restore_locks(self._sampler)
        self._study = None
        self._live = {}


_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def _without_locks(sampler):
    """A shallow copy of ``sampler`` without its thread locks, which cannot be pickled (Optuna 5's
    NSGA-II sampler holds one); their names are kept so ``_restore_locks`` can put fresh ones back."""
    names = [k for k, v in vars(sampler).items() if isinstance(v, _LOCK_TYPES)]
    if not names:
        return sampler
    out = copy.copy(sampler)
    for k in names:
        setattr(out, k, None)
    out._nasagent_locks = [(k, isinstance(getattr(sampler, k), _LOCK_TYPES[1])) for k in names]
    return out


def _restore_locks(sampler) -> None:
    for name, reentrant in vars(sampler).pop("_nasagent_locks", ()):
        setattr(sampler, name, threading.RLock() if reentrant else threading.Lock())


class OptunaTPE(OptunaStrategy):
    """Optuna's TPE sampler with its defaults (10 random start-up trials, 24 EI candidates)."""

    def __init__(self, space, seed: int = 0, n_objectives: int = 1, constraints: bool = True, multivariate: bool = False):
        self.multivariate = multivariate
        super().__init__(space, seed, n_objectives, constraints)

    def _make_sampler(self):
        return _shared_split_tpe()(seed=self.seed, multivariate=self.multivariate)


def _shared_split_tpe():
    """Optuna's ``TPESampler``, splitting the history once per trial instead of once per parameter.

    Independent TPE samples each parameter of a trial on its own, and Optuna re-splits every finished trial
    into "below" / "above" (a sort of the whole history that also reads each trial's constraints) and
    re-collects their parameters for every parameter: on NB201 (6 decisions) that was ~2/3 of a run's time.
    The split depends only on the finished trials, so one trial's parameters share it here; what is proposed
    is unchanged (tests/test_baselines.py compares with Optuna's own sampler). Falls back to Optuna's sampler
    when its private helpers are not where Optuna 4-5 keep them.
    """
    if "SharedSplitTPE" in globals():
        return globals()["SharedSplitTPE"]
    optuna = _optuna()
    try:
        from optuna.samplers._tpe import sampler as tpe
        from optuna.trial import TrialState

        split, gammas = tpe._split_trials, (tpe.default_gamma, tpe.default_gamma_multiobjective)
    except (ImportError, AttributeError):
        return optuna.samplers.TPESampler

    class SharedSplitTPE(optuna.samplers.TPESampler):
        _shared = None  # (key of the split, below, above, {id(trials): their params}); not pickled

        def __getstate__(self):
            return {k: v for k, v in self.__dict__.items() if k != "_shared"}

        def _sample(self, study, trial, search_space):  # Optuna's _sample, the split computed once per trial
            running = (TrialState.RUNNING,) if self._constant_liar else ()
            states = (TrialState.COMPLETE, TrialState.PRUNED, *running)
            trials = study._get_trials(deepcopy=False, states=states, use_cache=not self._constant_liar)
            if self._constant_liar:
                trials = [t for t in trials if t.number != trial.number]
            n = sum(t.state != TrialState.RUNNING for t in trials)
            key = (trial.number, len(trials), n)
            if self._shared is None or self._shared[0] != key:
                if self._gamma is None:
                    self._gamma = gammas[len(study.directions) > 1]
                below, above = split(study, trials, self._gamma(n))
                self._shared = (key, below, above, {})
            _, below, above, _ = self._shared
            mpe_below = self._build_parzen_estimator(study, search_space, below, handle_below=True)
            mpe_above = self._build_parzen_estimator(study, search_space, above, handle_below=False)
            samples = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
            best = type(self)._compare(samples, self._compute_acquisition_func(samples, mpe_below, mpe_above))
            return {name: dist.to_external_repr(best[name]) for name, dist in search_space.items()}

        def _get_internal_repr(self, trials, search_space, study):
            shared = self._shared
            if shared is None or not (trials is shared[1] or trials is shared[2]):
                return super()._get_internal_repr(trials, search_space, study)
            params = shared[3].get(id(trials))
            if params is None:
                params = shared[3][id(trials)] = [self._get_params(t, study) for t in trials]
            rows = [p for p in params if search_space.keys() <= p.keys()]
            return {name: np.asarray([d.to_internal_repr(p[name]) for p in rows]) for name, d in search_space.items()}

    SharedSplitTPE.__module__, SharedSplitTPE.__qualname__ = __name__, "SharedSplitTPE"  # pickled with snapshots
    globals()["SharedSplitTPE"] = SharedSplitTPE
    return SharedSplitTPE


def __getattr__(name: str):
    if name == "SharedSplitTPE":  # a snapshot being unpickled in a fresh process
        return _shared_split_tpe()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OptunaNSGA2(OptunaStrategy):
    """Optuna's NSGA-II sampler with its defaults (population 50, uniform crossover p 0.9)."""

    def __init__(self, space, seed: int = 0, n_objectives: int = 1, constraints: bool = True, population_size: int = 50):
        if population_size < 2:
            raise NasagentError(f"optuna-nsga2 population_size must be >= 2, got {population_size}")
        self.population_size = population_size
        super().__init__(space, seed, n_objectives, constraints)

    def _make_sampler(self):
        return _optuna().samplers.NSGAIISampler(seed=self.seed, population_size=self.population_size)
