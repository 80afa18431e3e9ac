"""Predictors by name, so strategies and scripts choose one with a string and a dict of options.

Each entry is a class and the options it is built with unless the caller overrides them. Unknown names and
options fail with one line that lists the valid ones.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field

from nasagent.core import NasagentError


@dataclass(frozen=True)
class PredictorEntry:
    path: str  # "module:Class"
    defaults: dict = field(default_factory=dict)
    description: str = ""


_P = "nasagent.evaluation.predictors"
PREDICTORS: dict[str, PredictorEntry] = {
    "gcn": PredictorEntry(f"{_P}.gcn:GCNPredictor", {}, "Neural Predictor bidirectional GCN (graph encoding)"),
    "gcn-ensemble": PredictorEntry(f"{_P}.gcn:GCNPredictor", {"n_models": 5}, "5 GCNs trained as one stack; mean and spread"),
    "cascade": PredictorEntry(f"{_P}.gcn:CascadePredictor", {}, "two-stage GCN: classifier filter, then regressor"),
    "mlp": PredictorEntry(f"{_P}.mlp:MLPPredictor", {}, "AlphaX's Meta-DNN MLP on the flat encoding"),
    "mlp-ensemble": PredictorEntry(f"{_P}.ensemble:EnsemblePredictor", {"base": "mlp", "n_models": 5}, "5 Meta-DNN MLPs (BANANAS-style ensemble)"),
    "rf": PredictorEntry(f"{_P}.sklearn_models:RandomForestPredictor", {}, "random forest on the flat encoding (scikit-learn)"),
    "gbdt": PredictorEntry(f"{_P}.sklearn_models:GradientBoostingPredictor", {}, "gradient-boosted trees on the flat encoding"),
    "gp": PredictorEntry(f"{_P}.sklearn_models:GPPredictor", {}, "Gaussian process (RBF + noise) on the flat encoding"),
    "gp-hamming": PredictorEntry(f"{_P}.gp:HammingGPPredictor", {}, "GP, overlap kernel on the encoding, rank targets (fast BO)"),
    "tuned": PredictorEntry(f"{_P}.selection:TunedPredictor", {}, "any predictor with its grid chosen by 10 one-third hold-outs"),
}


def predictor_class(name: str):
    entry = PREDICTORS.get(name)
    if entry is None:
        raise NasagentError(f"unknown predictor {name!r}; predictors: {', '.join(PREDICTORS)}")
    module, _, attr = entry.path.partition(":")
    return getattr(importlib.import_module(module), attr)


def make_predictor(name: str, space, seed: int = 0, **options):
    cls = predictor_class(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p in params if p not in ("self", "space", "seed")]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise NasagentError(f"predictor {name!r} has no option {unknown[0]!r}; its options: {', '.join(allowed)}")
    return cls(space, seed=seed, **{**PREDICTORS[name].defaults, **options})


def get_params(predictor) -> dict:
    """The constructor arguments of a predictor (scikit-learn style: stored under their own names)."""
    names = [p for p in inspect.signature(type(predictor).__init__).parameters if p not in ("self", "space")]
    return {k: getattr(predictor, k) for k in names if hasattr(predictor, k)}


def clone(predictor, **overrides):
    """An unfitted copy of ``predictor`` with some parameters changed."""
    return type(predictor)(predictor.space, **{**get_params(predictor), **overrides})
