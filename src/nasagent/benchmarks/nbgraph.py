"""NAS-Bench-Graph tables (``nas-bench-graph`` package): 9 node-classification datasets, 26,206 GNNs each.

Each row has validation and test performance, inference latency (s) and parameters (M). Search runs on
validation performance; the test performance of the chosen architecture is what gets reported.
No training times are stored, so each sample costs 1.
"""

from __future__ import annotations

import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Metric, TableBenchmark
from nasagent.core import NasagentError
from nasagent.spaces.gnn import NBGraphSpace

DATASETS = ("arxiv", "citeseer", "computers", "cora", "cs", "photo", "physics", "proteins", "pubmed")
_COLUMNS = {"valid_perf": "valid_perf", "test_perf": "perf", "latency": "latency", "params": "para"}


@lru_cache(maxsize=None)
def _load(dataset: str) -> tuple[list[str], dict[str, np.ndarray]]:
    import nas_bench_graph

    path = Path(nas_bench_graph.__file__).parent / "light" / f"{dataset}.bench"
    if not path.exists():
        raise NasagentError(f"NAS-Bench-Graph table {path} is missing; reinstall nas-bench-graph==1.4.0")
    with open(path, "rb") as f:
        data = pickle.load(f)  # a plain dict of dicts shipped inside the package wheel
    keys = sorted(data)
    cols = {ours: np.array([float(data[k][theirs]) for k in keys]) for ours, theirs in _COLUMNS.items()}
    return [str(k) for k in keys], cols


def nbgraph_benchmark(dataset: str) -> TableBenchmark:
    if dataset not in DATASETS:
        raise NasagentError(f"unknown NAS-Bench-Graph dataset {dataset!r}; datasets: {', '.join(DATASETS)}")
    keys, cols = _load(dataset)
    return TableBenchmark(
        name=f"nbgraph/{dataset}",
        space=NBGraphSpace(proteins=dataset == "proteins"),
        metrics={
            "valid_perf": Metric("valid_perf", "max", "validation performance", report="test_perf"),
            "test_perf": Metric("test_perf", "max", "test performance (report only: do not search on it)"),
            "latency": Metric("latency", "min", "inference latency (s)", static=True),
            "params": Metric("params", "min", "parameters (millions)", static=True),
        },
        default_metric="valid_perf",
        keys=keys,
        columns=cols,
        notes=f"NAS-Bench-Graph {dataset}: search on valid_perf, report test_perf; cost 1 per sample",
    )
