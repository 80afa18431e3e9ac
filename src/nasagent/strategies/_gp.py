"""Gaussian-process plumbing for the local solvers: fitting (capped, warm-started) and Thompson sampling.

TuRBO's GP is a botorch ``SingleTaskGP`` with TuRBO's kernel and constraints (Matern-5/2 ARD, lengthscale in
[0.005, 2], outputscale in [0.05, 20], noise in [5e-4, 0.2]), trained with Adam (lr 0.1) on the exact marginal
likelihood as the TuRBO code does. The BO solver's GP is scikit-learn's, as in the LA-MCTS reference code, with
its L-BFGS hyper-parameter search capped at ``maxiter`` steps and started from the previous fit.
"""

from __future__ import annotations

import warnings

import numpy as np


def fit_turbo_gp(U: np.ndarray, z: np.ndarray, hypers: dict | None, steps: int):
    """(model in eval mode, its hyper-parameters as numpy) for standardised targets ``z`` on unit-cube ``U``."""
    import gpytorch
    import torch
    from botorch.models import SingleTaskGP
    from gpytorch.constraints import Interval

    X = torch.as_tensor(U, dtype=torch.float64)
    Y = torch.as_tensor(z, dtype=torch.float64).reshape(-1, 1)
    d = X.shape[1]
    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=Interval(5e-4, 0.2))
    kernel = gpytorch.kernels.ScaleKernel(
        gpytorch.kernels.MaternKernel(nu=2.5, ard_num_dims=d, lengthscale_constraint=Interval(0.005, 2.0)),
        outputscale_constraint=Interval(0.05, 20.0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # botorch's advice to standardise (we do) and to use float64 (we do)
        model = SingleTaskGP(X, Y, likelihood=likelihood, covar_module=kernel, mean_module=gpytorch.means.ConstantMean(),
                             outcome_transform=None)
    model = model.double()
    if hypers is None:
        model.initialize(**{"covar_module.outputscale": 1.0, "covar_module.base_kernel.lengthscale": 0.5,
                            "likelihood.noise": 0.005})
    else:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in hypers and tuple(hypers[name].shape) == tuple(p.shape):
                    p.copy_(torch.as_tensor(hypers[name], dtype=p.dtype))
    model.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    with gpytorch.settings.max_cholesky_size(2000):
        for _ in range(max(0, steps)):
            opt.zero_grad()
            loss = -mll(model(X), model.train_targets)
            loss.backward()
            opt.step()
    model.eval()
    new = {name: p.detach().numpy().copy() for name, p in model.named_parameters()}
    return model, new


def thompson_argmax(model, cand: np.ndarray, q: int, exact: bool = False) -> list[int]:
    """Indices of ``q`` distinct candidates, each the maximiser of one posterior sample over ``cand``."""
    import gpytorch
    import torch

    X = torch.as_tensor(cand, dtype=torch.float64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exact:
            with gpytorch.settings.max_cholesky_size(float("inf")):
                vals = model.posterior(X).rsample(torch.Size([q])).reshape(q, -1)
        else:
            from botorch.sampling.pathwise import draw_matheron_paths

            vals = draw_matheron_paths(model, sample_shape=torch.Size([q]))(X).reshape(q, -1)
    vals = vals.numpy().copy()
    chosen: list[int] = []
    for i in range(q):
        row = vals[i]
        row[chosen] = -np.inf
        chosen.append(int(np.argmax(row)))
    return chosen


def fit_sklearn_gp(U: np.ndarray, y: np.ndarray, theta: np.ndarray | None, maxiter: int):
    """scikit-learn GP (Constant x Matern-5/2, alpha 0.01, standardised targets); L-BFGS capped at ``maxiter``."""
    from scipy.optimize import minimize
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern

    kernel = ConstantKernel(1.0) * Matern(length_scale=1.0, nu=2.5)
    if theta is not None:
        kernel = kernel.clone_with_theta(np.asarray(theta))

    def optimizer(obj_func, initial_theta, bounds):
        res = minimize(obj_func, initial_theta, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": maxiter})
        return res.x, res.fun

    gp = GaussianProcessRegressor(kernel=kernel, alpha=0.01, normalize_y=True, optimizer=optimizer if maxiter > 0 else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp.fit(U, y)
    return gp, gp.kernel_.theta.copy()
