"""Name -> object lookup for spaces, benchmarks and strategies, imported lazily.

Adding a space, benchmark family or strategy means adding one entry here (and a docs page). Lookups fail
with one line that lists the valid names.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nasagent.core import NasagentError


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


# -- spaces -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpaceEntry:
    factory: str  # "module:callable"
    kwargs: tuple = ()
    description: str = ""


SPACES: dict[str, SpaceEntry] = {
    "nb201": SpaceEntry("nasagent.spaces.nb201:NB201Space", (), "NAS-Bench-201 cell: 6 edges x 5 ops (15,625)"),
    "nb101": SpaceEntry("nasagent.spaces.nb101:NB101Space", (), "NAS-Bench-101 cell: <=7 nodes, <=9 edges, 3 ops (423,624)"),
    "nb101-6": SpaceEntry(
        "nasagent.spaces.nb101:NB101Space", (("max_nodes", 6),), "NAS-Bench-101 cells of <=6 nodes (AlphaX subspace, 64,542)"
    ),
    "darts": SpaceEntry("nasagent.spaces.darts:DartsSpace", (), "DARTS normal + reduction cells, 4 nodes x 2 inputs, 7 ops"),
    "lanas-cell": SpaceEntry("nasagent.spaces.lanas_cell:LaNASCellSpace", (),
                             "LaNAS' supernet cells (thesis 4.2.3): normal + reduction, 5 nodes, 4 ops, inputs may repeat"),
    "nbgraph": SpaceEntry("nasagent.spaces.gnn:NBGraphSpace", (), "NAS-Bench-Graph GNNs: 9 wirings x 9 ops per layer (26,206)"),
    "nbgraph-proteins": SpaceEntry(
        "nasagent.spaces.gnn:NBGraphSpace", (("proteins", True),), "NAS-Bench-Graph with the 5 ops of 'proteins' (2,021)"
    ),
    "nasnet": SpaceEntry("nasagent.spaces.nasnet:NASNetSpace", (), "AlphaX NASNet-style cells: normal + reduction, <=5 blocks, 12 ops"),
    "convnet60k": SpaceEntry("nasagent.spaces.convnet60k:ConvNet60KSpace", (),
                             "LaNAS' ConvNet-60K: 10 VGG-style layers, each 32, 64 or 96 filters (59,049; no table: private data)"),
    "convnet": SpaceEntry("nasagent.spaces.convnet:ConvNetSpace", (), "AlphaX simplified CNN domain (App. 8): <=3 conv layers (585)"),
    **{  # TuNAS' MobileNet-like spaces (full ImageNet size, and tiny CPU variants: width x0.25, 2 layers/block, 3 blocks)
        f"{fam}{tag}": SpaceEntry("nasagent.spaces.mobilenet:MobileNetSpace", (("family", fam), ("name", f"{fam}{tag}"), *opts),
                                  f"TuNAS {fam} space{note}")
        for fam in ("proxylessnas", "proxylessnas-enlarged", "mobilenet-v3-like")
        for tag, opts, note in (("", (), ""), ("-tiny", (("width", 0.25), ("depth", 2), ("blocks", 3)), ", tiny CPU variant"))
    },
}


def make_space(name: str, **kwargs):
    if name.startswith("box-") and name[4:].isdigit():
        from nasagent.spaces.box import BoxSpace

        d = int(name[4:])
        return BoxSpace([0.0] * d, [1.0] * d)
    entry = SPACES.get(name)
    if entry is None:
        raise NasagentError(f"unknown space {name!r}; spaces: {', '.join(list(SPACES) + ['box-<dim>'])}")
    return _load(entry.factory)(**{**dict(entry.kwargs), **kwargs})


def sequential_spaces() -> list[str]:
    out = []
    for name in SPACES:
        try:
            if make_space(name).sequential:
                out.append(name)
        except Exception:  # a space whose optional dependency is missing is simply not listed
            continue
    return out


# -- benchmarks ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchmarkFamily:
    name: str  # how it is written on the command line, e.g. "nbgraph/<dataset>"
    description: str
    match: Callable[[str], bool]
    build: str  # "module:callable(spec, **options)"
    takes_space: bool = False  # built on --space (passed as the option ``space``) instead of fixing its own
    run_dir_option: str | None = None  # option through which the family receives a folder inside the run directory


def _build_nb201(spec: str, **opts):
    from nasagent.benchmarks.nb201 import nb201_benchmark

    _no_options(spec, opts)
    return nb201_benchmark()


def _build_csv(spec: str, table=None, arch_column=None, cost_column=None, **opts):
    from nasagent.benchmarks.nb201 import csv_benchmark

    _no_options(spec, opts)
    if table is None:
        raise NasagentError("benchmark nb201-csv needs a table file: --table PATH.csv")
    return csv_benchmark(table, arch_column=arch_column, cost_column=cost_column)


def _build_nbgraph(spec: str, **opts):
    from nasagent.benchmarks.nbgraph import nbgraph_benchmark

    _no_options(spec, opts)
    return nbgraph_benchmark(spec.split("/", 1)[1])


def _build_nb101(spec: str, table=None, epochs: int = 108, max_nodes: int = 7, **opts):
    from nasagent.benchmarks.nb101_tfrecord import nb101_benchmark

    _no_options(spec, opts)
    if table is None:
        raise NasagentError("benchmark nb101-tfrecord needs the NB101 file: --table PATH/nasbench_only108.tfrecord")
    return nb101_benchmark(table, epochs=int(epochs), max_nodes=int(max_nodes))


def _build_nb101_synthetic(spec: str, seed: int = 0, space: str | None = None, **opts):
    from nasagent.benchmarks.nb101_synthetic import nb101_synthetic_benchmark

    _no_options(spec, opts)
    # checked here, not only in api.build: the 7-node space shares the space name "nb101" and would pass there
    if space is not None and space != "nb101-6":
        raise NasagentError(
            f"benchmark {spec!r} is defined on space 'nb101-6' (cells of at most 6 nodes), not {space!r}; "
            "omit --space or use --space nb101-6"
        )
    return nb101_synthetic_benchmark(seed=int(seed))


def _build_function(spec: str, shift_seed: int | None = 0, **opts):
    from nasagent.benchmarks.functions import FunctionBenchmark, parse_function_spec

    _no_options(spec, opts)
    name, dim = parse_function_spec(spec)
    return FunctionBenchmark(name, dim, shift_seed=shift_seed)


def _no_options(spec: str, opts: dict) -> None:
    extra = {k: v for k, v in opts.items() if v is not None}
    if extra:
        hint = "; a table of your own goes with -b nb201-csv or -b nb101-tfrecord" if "table" in extra else ""
        raise NasagentError(f"benchmark {spec!r} takes no option(s) {', '.join(extra)}{hint}")


def _is_function(spec: str) -> bool:
    from nasagent.benchmarks.functions import parse_function_spec

    return parse_function_spec(spec) is not None


BENCHMARKS: list[BenchmarkFamily] = [
    BenchmarkFamily("nb201", "embedded NAS-Bench-201 CIFAR-10 table (+ quantised/analog accuracies)", lambda s: s == "nb201", "nasagent.registry:_build_nb201"),
    BenchmarkFamily("nb201-csv", "your NB201 table: --table FILE.csv [--arch-column COL] [--metric COL]", lambda s: s == "nb201-csv", "nasagent.registry:_build_csv"),
    BenchmarkFamily("nbgraph/<dataset>", "NAS-Bench-Graph: arxiv citeseer computers cora cs photo physics proteins pubmed", lambda s: s.startswith("nbgraph/"), "nasagent.registry:_build_nbgraph"),
    BenchmarkFamily("nb101-tfrecord", "official NB101 file read without TensorFlow: --table nasbench_only108.tfrecord", lambda s: s == "nb101-tfrecord", "nasagent.registry:_build_nb101"),
    BenchmarkFamily("nb101-synthetic", "SYNTHETIC accuracies over the 64,542 NB101 cells of <=6 nodes (--space nb101-6; --bopt seed=N)", lambda s: s == "nb101-synthetic", "nasagent.registry:_build_nb101_synthetic", takes_space=True),
    BenchmarkFamily("train:<data>", "train each candidate from scratch on digits, digits16, FILE.npz or FOLDER (--space nb201|darts|nasnet|lanas-cell|convnet60k|...)", lambda s: s.startswith("train:"), "nasagent.evaluation.train:training_benchmark", takes_space=True, run_dir_option="checkpoint_dir"),
    BenchmarkFamily("oneshot:<data>", "score candidates with a one-shot supernet trained on <data> (--space nb201|darts|lanas-cell)", lambda s: s.startswith("oneshot:"), "nasagent.evaluation.supernet:oneshot_benchmark", takes_space=True, run_dir_option="checkpoint_dir"),
    BenchmarkFamily("fewshot:<data>", "score candidates with few-shot sub-supernets trained on <data> (--space nb201|darts)", lambda s: s.startswith("fewshot:"), "nasagent.evaluation.fewshot:fewshot_benchmark", takes_space=True, run_dir_option="checkpoint_dir"),
    BenchmarkFamily("<function>-<dim>", "shifted ackley / levy / rosenbrock / rastrigin, e.g. ackley-20", _is_function, "nasagent.registry:_build_function"),
    BenchmarkFamily("rover-60 | lunar | swimmer | hopper", "control tasks for box optimisers (LA-MCTS, thesis 5.4); gymnasium for lunar/swimmer/hopper", lambda s: s in ("lunar", "swimmer", "hopper") or s.startswith("rover-"), "nasagent.benchmarks.control:control_benchmark"),
]


def benchmark_family(spec: str) -> BenchmarkFamily | None:
    return next((fam for fam in BENCHMARKS if fam.match(spec)), None)


def make_benchmark(spec: str, **options):
    for fam in BENCHMARKS:
        if fam.match(spec):
            return _load(fam.build)(spec, **options)
    raise NasagentError(f"unknown benchmark {spec!r}; benchmarks: {', '.join(f.name for f in BENCHMARKS)}")


def _build_benchmark(build: str, spec: str, **options):
    return _load(build)(spec, **options)


def benchmark_factory(spec: str, **options):
    """A picklable no-argument callable that builds this benchmark in a worker process. It names the family's
    build function directly, so benchmarks registered in the driver (plug-ins) also build in workers."""
    for fam in BENCHMARKS:
        if fam.match(spec):
            return functools.partial(_build_benchmark, fam.build, spec, **options)
    raise NasagentError(f"unknown benchmark {spec!r}; benchmarks: {', '.join(f.name for f in BENCHMARKS)}")


# -- strategies ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategyEntry:
    path: str  # "module:Class"
    description: str


STRATEGIES: dict[str, StrategyEntry] = {
    "random": StrategyEntry("nasagent.strategies.random:RandomSearch", "uniform random search (without replacement on enumerable spaces)"),
    "evolution": StrategyEntry("nasagent.strategies.evolution:RegularizedEvolution", "regularized evolution (Real et al. 2019): tournament + ageing"),
    "local-search": StrategyEntry("nasagent.strategies.local_search:LocalSearch", "first-improvement local search over one-edit neighbours, with restarts"),
    "alphax": StrategyEntry("nasagent.strategies.alphax:AlphaX", "AlphaX: MCTS over construction actions with a Meta-DNN value model and two-phase backprop (sequential spaces)"),
    "evolution-nsga2": StrategyEntry("nasagent.strategies.nsga2:NSGA2Evolution", "multi-objective evolution: steady-state NSGA-II selection (rank + crowding), one-edit mutation"),
    "parego": StrategyEntry("nasagent.strategies.parego:ParEGO", "multi-objective BO: a random Chebyshev scalarisation per proposal, GP (overlap kernel) + EI"),
    "mobo-ehvi": StrategyEntry("nasagent.strategies.ehvi:EHVI", "multi-objective BO: per-objective GPs (overlap kernel), expected hypervolume improvement over the whole space"),
    "hill-climbing": StrategyEntry("nasagent.strategies.hill_climbing:HillClimbing", "AlphaX baseline: evaluate every child, move to the best, restart on a revisit"),
    "q-learning": StrategyEntry("nasagent.strategies.q_learning:QLearning", "tabular epsilon-greedy Q-learning over sequential decisions (alpha 0.2, gamma 1, eps 0.2, Q0 0.5)"),
    "reinforce": StrategyEntry("nasagent.strategies.reinforce:Reinforce", "REINFORCE over independent categorical decisions (Adam, moving-average baseline)"),
    "bo": StrategyEntry("nasagent.strategies.bo:BayesianOptimization", "GP Bayesian optimisation on the encoding with expected improvement (botorch)"),
    "optuna-tpe": StrategyEntry("nasagent.strategies.optuna_samplers:OptunaTPE", "Optuna's TPE sampler over the sequential decisions (or a box)"),
    "optuna-nsga2": StrategyEntry("nasagent.strategies.optuna_samplers:OptunaNSGA2", "Optuna's NSGA-II sampler over the sequential decisions (or a box)"),
    "lanas": StrategyEntry("nasagent.strategies.lanas:LaNAS", "LaNAS: fixed tree of learned linear partitions + UCB (thesis Ch. 4)"),
    "lamcts": StrategyEntry("nasagent.strategies.lamcts:LAMCTS", "LA-MCTS: K-means/SVM partition tree + local solver (--opt solver=turbo|bo|cmaes|cobyla|random); boxes"),
    "turbo": StrategyEntry("nasagent.strategies.turbo:TuRBO", "TuRBO-1: trust-region Bayesian optimisation with restarts (boxes)"),
    "cmaes": StrategyEntry("nasagent.strategies.cma_es:CMAES", "CMA-ES (the cmaes package) with restarts (boxes)"),
    "neural-predictor": StrategyEntry("nasagent.strategies.neural_predictor:NeuralPredictorSearch", "Neural Predictor: N random, GCN ranks a pool, top K (--opt mode=iterative: BANANAS-like refits)"),
    "darts": StrategyEntry("nasagent.strategies.darts:Darts", "DARTS, or few-shot DARTS with --opt splits=K: trains the relaxation, then proposes cells (--space nb201|darts --data D)"),
    "parsec": StrategyEntry("nasagent.strategies.parsec:Parsec", "PARSEC: importance-weighted empirical Bayes over a distribution of DARTS cells (--space darts --data D)"),
}


def strategy_class(name: str):
    entry = STRATEGIES.get(name)
    if entry is None:
        raise NasagentError(f"unknown strategy {name!r}; strategies: {', '.join(STRATEGIES)}")
    return _load(entry.path)


def check_option_types(owner: str, fn, options: dict) -> None:
    """Refuse a value whose type the option's annotation does not admit (``--opt c=abc``, ``--opt k=null``,
    ``--opt height=2.5``, ``--opt cp=[1]``) with one line naming the option, before it reaches a constructor
    and fails deep inside it (or is silently truncated).

    The CLI reads values as JSON and keeps what does not parse as text, so text is what a typo becomes. Only
    annotations made of plain types (bool, int, float, str, None, dict, list, tuple) are checked; anything else
    (a Literal, a Path, a class, ``list[str]``) is left to the constructor.
    """
    import numbers
    import types
    import typing

    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: nothing to check against
        return
    plain = (bool, int, float, str, type(None), dict, list, tuple)
    for key, value in options.items():
        if key not in hints:
            continue
        kinds, stack = set(), [hints[key]]
        while stack:
            kind = stack.pop()
            if typing.get_origin(kind) in (typing.Union, types.UnionType):
                stack.extend(typing.get_args(kind))
            elif kind in plain:
                kinds.add(kind)
            else:
                kinds = None  # something this check cannot judge
                break
        if not kinds:
            continue
        if isinstance(value, bool):
            ok = bool in kinds
        elif value is None:
            ok = type(None) in kinds
        elif isinstance(value, numbers.Integral):
            ok = bool(kinds & {int, float}) or (bool in kinds and value in (0, 1))  # 0/1 as a flag (older configs)
        elif isinstance(value, numbers.Real):
            ok = float in kinds or (int in kinds and float(value).is_integer())
        elif isinstance(value, str):
            ok = str in kinds
        elif isinstance(value, (dict, list, tuple)):
            ok = type(value) in kinds or (isinstance(value, (list, tuple)) and bool(kinds & {list, tuple}))
        else:
            continue  # an object (a callable, a model): the constructor knows what it takes
        if not ok:
            wanted = [w for w, k in (("true or false", bool), ("an integer", int), ("a number", float), ("text", str),
                                     ("a mapping", dict), ("a list", list), ("null", type(None))) if k in kinds]
            if float in kinds:
                wanted = [w for w in wanted if w != "an integer"]
            raise NasagentError(f"{owner} option {key!r} must be {' or '.join(wanted)}, got {value!r}")


def make_strategy(name: str, space, seed: int = 0, **options):
    cls = strategy_class(name)
    params = inspect.signature(cls.__init__).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    allowed = [p for p in params if p not in ("self", "space", "seed") and params[p].kind is not inspect.Parameter.VAR_KEYWORD]
    unknown = [k for k in options if k not in allowed]
    if unknown and not accepts_any:
        raise NasagentError(
            f"strategy {name!r} has no option {unknown[0]!r}; its options: {', '.join(allowed) or '(none)'}"
        )
    check_option_types(f"strategy {name!r}", cls.__init__, options)
    tries = options.get("max_tries")
    if isinstance(tries, (int, float)) and not isinstance(tries, bool) and tries < 1:  # every strategy's draw budget
        raise NasagentError(f"strategy {name!r} option max_tries must be >= 1 (draws per proposal), got {tries}")
    return cls(space, seed=seed, **options)


# -- plug-ins ---------------------------------------------------------------------------------------------------
def register_benchmark(name: str, description: str, match: Callable[[str], bool], build: str) -> None:
    """Add a benchmark family: ``build`` is "module:callable(spec, **options)" returning a Benchmark."""
    BENCHMARKS.insert(0, BenchmarkFamily(name, description, match, build))


def register_strategy(name: str, path: str, description: str = "") -> None:
    """Add a strategy: ``path`` is "module:Class" taking ``(space, seed=..., **options)``."""
    STRATEGIES[name] = StrategyEntry(path, description)
