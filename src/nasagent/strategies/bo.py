"""Gaussian-process Bayesian optimisation on ``space.encode`` with expected improvement (botorch).

After ``n_init`` random samples, each proposal maximises log expected improvement (botorch's
``LogExpectedImprovement``, a numerically safe EI) of a ``SingleTaskGP`` (botorch's default kernel: RBF with
ARD and a dimension-scaled log-normal length-scale prior; outcome standardised) fitted to every score so
far. Discrete spaces maximise it over a candidate pool: ``n_candidates`` fresh random architectures plus
every one-edit neighbour of the ``n_parents`` best so far (the space's ``neighbors``, else ``mutate``),
skipping anything proposed before. Continuous boxes maximise it with
botorch's ``optimize_acqf`` over the unit cube and decode. GP hyper-parameters are re-fitted by marginal
likelihood (L-BFGS, at most ``fit_iterations`` steps, warm-started from the last fit) every ``refit_every``
new observations and reused in between (the GP is still conditioned on all data at every step): an
unbounded fit of the 30-dimensional ARD kernel took ~1,000 L-BFGS steps and dominated the run time.
"""

from __future__ import annotations

import numpy as np

from nasagent.core import NasagentError, Result, Trial
from nasagent.strategies.base import Proposal, Strategy, local_candidates, sample_unvisited


def _botorch():
    try:
        import torch
        from botorch.acquisition import LogExpectedImprovement
        from botorch.fit import fit_gpytorch_mll
        from botorch.models import SingleTaskGP
        from botorch.models.transforms import Standardize
        from gpytorch.mlls import ExactMarginalLogLikelihood
    except ImportError as e:
        raise NasagentError(f"strategy 'bo' needs botorch and torch: pip install 'nasagent[bbo]' ({e})") from None
    return torch, SingleTaskGP, Standardize, ExactMarginalLogLikelihood, fit_gpytorch_mll, LogExpectedImprovement


class BayesianOptimization(Strategy):
    _transient = ("space", "_encodings")

    def __init__(
        self,
        space,
        seed: int = 0,
        n_init: int = 10,
        n_candidates: int = 500,
        n_parents: int = 5,
        refit_every: int = 10,
        fit_iterations: int = 100,
        max_tries: int = 10_000,
    ):
        super().__init__(space, seed)
        if n_init < 2 or n_candidates < 1 or n_parents < 0 or refit_every < 1:
            raise NasagentError(
                f"bo needs n_init >= 2, n_candidates >= 1, n_parents >= 0, refit_every >= 1; "
                f"got {n_init}, {n_candidates}, {n_parents}, {refit_every}"
            )
        self.n_init, self.n_candidates, self.n_parents, self.refit_every = n_init, n_candidates, n_parents, refit_every
        self.fit_iterations = fit_iterations
        self.max_tries = max_tries
        self.continuous = hasattr(space, "decode") and not getattr(space, "sequential", True)  # a box
        self.X: list[np.ndarray] = []  # encodings of successful observations
        self.y: list[float] = []
        self.archs: list = []
        self.proposed: set[str] = set()
        self.hyper_state: dict | None = None  # GP hyper-parameters (tensors as numpy), refitted every refit_every
        self.fitted_at = 0
        self.observed: set[str] = set()
        self._encodings: dict[str, np.ndarray] = {}  # a cache, left out of snapshots

    # -- ask ----------------------------------------------------------------------------------------
    def _propose(self) -> Proposal:
        if len(self.y) < self.n_init:
            return self._take(self._random(), "random")
        gp = self._model()
        if self.continuous:
            arch = self._optimize_box(gp)
        else:
            pool = self._pool()
            if not pool:
                return self._take(self._random(), "random")
            arch = pool[int(np.argmax(self._acquisition(gp, np.stack([self._encode(a) for a in pool]))))]
        return self._take(arch, "ei")

    def _take(self, arch, phase: str) -> Proposal:
        key = self.space.key(arch)
        self.proposed.add(key)
        if self.continuous:  # asked, not yet told: the next proposal of a parallel search must look elsewhere
            self._pending()[key] = self._encode(arch)
        return Proposal(arch, info={"phase": phase})

    def _pending(self) -> dict[str, np.ndarray]:
        return self.__dict__.setdefault("pending", {})  # (a snapshot from before it was kept has none)

    def _encode(self, arch) -> np.ndarray:
        """``space.encode``, memoised by key: the pools of successive steps share most candidates."""
        key = self.space.key(arch)
        x = self._encodings.get(key)
        if x is None:
            if len(self._encodings) >= 50_000:  # huge spaces: keep the memo bounded
                self._encodings.clear()
            x = self._encodings[key] = np.asarray(self.space.encode(arch), dtype=np.float64)
        return x

    def _random(self):
        return sample_unvisited(self.space, self.rng, self.proposed, self.max_tries, "bo")

    def _pool(self) -> list:
        out: dict[str, object] = {}
        for _ in range(self.n_candidates * 3):
            if len(out) >= self.n_candidates:
                break
            a = self.space.sample(self.rng)
            k = self.space.key(a)
            if k not in self.proposed:
                out.setdefault(k, a)
        for i in np.argsort(self.y)[::-1][: self.n_parents]:
            for a in local_candidates(self.space, self.archs[int(i)], self.rng):
                k = self.space.key(a)
                if k not in self.proposed:
                    out.setdefault(k, a)
        return list(out.values())

    # -- the model ----------------------------------------------------------------------------------
    def _model(self):
        torch, SingleTaskGP, Standardize, MLL, fit, _ = _botorch()
        X = torch.tensor(np.stack(self.X), dtype=torch.float64)
        Y = torch.tensor(self.y, dtype=torch.float64).unsqueeze(-1)
        gp = SingleTaskGP(X, Y, outcome_transform=Standardize(m=1))
        refit = self.hyper_state is None or len(self.y) - self.fitted_at >= self.refit_every
        if self.hyper_state is not None:  # reuse, or warm-start the refit from, the last hyper-parameters
            try:
                gp.load_state_dict({k: torch.as_tensor(v) for k, v in self.hyper_state.items()}, strict=False)
            except (RuntimeError, KeyError):
                refit = True
        if refit:
            with torch.random.fork_rng():  # seeded, without touching the caller's global torch generator
                torch.manual_seed(self.seed + len(self.y))
                fit(MLL(gp.likelihood, gp), optimizer_kwargs={"options": {"maxiter": self.fit_iterations}})
            self.hyper_state = {
                k: v.detach().numpy().copy() for k, v in gp.state_dict().items() if "outcome_transform" not in k and "train" not in k
            }
            self.fitted_at = len(self.y)
        gp.eval()
        return gp

    def _acquisition(self, gp, cand: np.ndarray) -> np.ndarray:
        """Log EI of each candidate (botorch's LogExpectedImprovement, from the marginals of one joint posterior).

        LogEI's own call wants a batch of single points, for which gpytorch builds the training covariance
        once per candidate (~1/3 of a run); one joint posterior over the pool has the same marginals.
        """
        torch, *_, LogEI = _botorch()
        try:
            from botorch.acquisition.analytic import _log_ei_helper
        except ImportError:  # older/newer botorch: LogEI's own (slower) batched call
            _log_ei_helper = None
        acq = LogEI(gp, best_f=max(self.y))
        out = []
        with torch.no_grad():
            for chunk in np.array_split(cand, max(1, len(cand) // 1000)):
                x = torch.tensor(chunk, dtype=torch.float64)
                if _log_ei_helper is None:
                    out.append(acq(x.unsqueeze(1)).numpy())
                    continue
                post = gp.posterior(x)
                mean = post.mean.squeeze(-1)
                sigma = post.variance.clamp_min(1e-12).sqrt().view(mean.shape)
                out.append((_log_ei_helper((mean - acq.best_f) / sigma) + sigma.log()).numpy())
        return np.concatenate(out)

    def _optimize_box(self, gp):
        """EI's maximiser in the unit cube; with points still being evaluated (parallel workers), the EI of a batch
        that contains them (botorch's ``X_pending``), so parallel asks do not all land on one point."""
        torch, *_, LogEI = _botorch()
        from botorch.optim import optimize_acqf

        d = len(self.X[0])
        bounds = torch.stack([torch.zeros(d, dtype=torch.float64), torch.ones(d, dtype=torch.float64)])
        pending = list(self._pending().values())
        if pending:
            from botorch.acquisition.logei import qLogExpectedImprovement

            acq = qLogExpectedImprovement(gp, best_f=max(self.y), X_pending=torch.tensor(np.stack(pending), dtype=torch.float64))
        else:
            acq = LogEI(gp, best_f=max(self.y))
        with torch.random.fork_rng():
            torch.manual_seed(self.seed + len(self.y) + 7919 * len(pending))
            x, _ = optimize_acqf(acq, bounds=bounds, q=1, num_restarts=5, raw_samples=256)
        return self.space.decode(x.detach().numpy().ravel())

    # -- tell ---------------------------------------------------------------------------------------
    def _observe(self, trial: Trial, result: Result) -> None:
        key = self.space.key(trial.arch)
        self.proposed.add(key)
        self._pending().pop(key, None)
        if not result.ok or key in self.observed:  # failures, and re-proposals answered from the journal
            return
        self.observed.add(key)
        self.X.append(np.asarray(self.space.encode(trial.arch), dtype=np.float64))
        self.y.append(float(result.score))
        self.archs.append(trial.arch)
