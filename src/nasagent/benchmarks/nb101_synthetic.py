"""A synthetic NAS-Bench-101-style table over every NB101 cell of at most 6 nodes (64,542 cells).

The real NB101 table cannot be downloaded here, so this benchmark lets the AlphaX NB101 protocol (search
for the table's global optimum among the <=6-node cells) run at all. It reproduces the *method*, not the
paper's numbers: the accuracies are made up, by the formula below, and say nothing about real training.

Formula. Each cell gets a quality logit ``s`` from interpretable features of its pruned graph:

    s = -0.45
        + 0.8 n3 + 0.5 n1 + 0.15 np - 0.1 (n3 + n1)^2     capacity, with diminishing returns
        + 0.35 min(D, 4) - 0.3 max(D - 4, 0)               depth: longest input->output path (edges)
        + 0.3 min(R, 3)                                    most conv3x3 nodes on one input->output path
        + 0.5 [input->output edge and D >= 2]              a residual connection around a deep cell
        + 0.2 min(W, 2)                                    width: interior nodes concatenated into the output
        + 0.05 E                                           edges
        - 2.5 [n3 + n1 = 0]                                no learned convolution at all: the low tail

where n3, n1, np count conv3x3, conv1x1 and maxpool nodes. Then

    val_accuracy  = 0.10 + 0.855 sigmoid(s + 0.35 z_val)
    test_accuracy = 0.10 + 0.855 sigmoid(s + 0.35 z_test) - 0.005

with ``z_val``, ``z_test`` standard normal numbers drawn from an MD5 hash of (``seed``, the column, the
cell's key), so the table is deterministic per seed and a different seed reshuffles the near-ties. The
sigmoid saturates: most cells land in a dense band (median about 0.92, 5th percentile about 0.86, best
about 0.95) and cells without convolutions form a long low tail (1 % below 0.54, minimum about 0.14). The
noise is widest, in accuracy, where the band is not yet flat, like retraining noise. It decides which of
the ~100-1,000 cells of the best feature levels is the optimum, so a searcher must learn the structure to
reach the top levels and then search among them. If two cells tie at the top of a column (vanishingly
unlikely with 53-bit noise), the one with the smallest key is raised by one ulp, so every column has
exactly one maximum.

Enumerating and hashing the cells takes ~10 s; the result (keys and compact cell codes, independent of the
seed and the formula) is cached as ``.npz`` in ``$NASAGENT_CACHE_DIR`` or ``~/.cache/nasagent``.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from nasagent.benchmarks.base import Metric, TableBenchmark
from nasagent.spaces.nb101 import INPUT, OPS, OUTPUT, Cell101, NB101Space

MAX_NODES = 6
N_CELLS = 64_542  # unique <=6-node cells by our canonical enumerator (the AlphaX paper reports 64,521)
CACHE_VERSION = 1
LOW, SPAN = 0.10, 0.855  # accuracy = LOW + SPAN * sigmoid(logit)
NOISE = 0.35  # sd of the per-cell perturbation, in logit units
TEST_OFFSET = 0.005  # test accuracy sits a little below validation, as in NB101
NAME = "nb101-synthetic"


# -- the cells: enumerated once, cached --------------------------------------------------------------------
def cache_dir() -> Path:
    return Path(os.environ.get("NASAGENT_CACHE_DIR") or Path.home() / ".cache" / "nasagent")


def encode_cell(cell: Cell101) -> tuple[int, int, int]:
    """(nodes, adjacency bits, op digits in base 3): enough to rebuild the cell without re-hashing."""
    n = cell.n_nodes
    adj = sum(1 << k for k, (i, j) in enumerate(_pairs(n)) if cell.matrix[i][j])
    ops = 0
    for o in cell.ops[1:-1]:
        ops = ops * len(OPS) + OPS.index(o)
    return n, adj, ops


def decode_cell(n: int, adj: int, ops: int) -> Cell101:
    m = [[0] * n for _ in range(n)]
    for k, (i, j) in enumerate(_pairs(n)):
        m[i][j] = (adj >> k) & 1
    labels = []
    for _ in range(n - 2):
        labels.append(OPS[ops % len(OPS)])
        ops //= len(OPS)
    return Cell101(tuple(map(tuple, m)), (INPUT, *reversed(labels), OUTPUT))


@lru_cache(maxsize=16)
def _pairs(n: int) -> tuple[tuple[int, int], ...]:
    return tuple((i, j) for i in range(n) for j in range(i + 1, n))


def _enumerate(space: NB101Space) -> tuple[list[str], np.ndarray]:
    cells = list(space.enumerate())
    return [space.key(c) for c in cells], np.array([encode_cell(c) for c in cells], dtype=np.int64)


def _cache_file(directory: Path) -> Path:
    return directory / f"nb101-{MAX_NODES}-cells-v{CACHE_VERSION}.npz"


def _read_cache(path: Path, space: NB101Space) -> tuple[list[str], np.ndarray] | None:
    """The cached cells, or ``None`` when the file is missing, damaged or disagrees with the space's hash."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, codes = [k.decode() for k in z["keys"]], z["codes"]
    except (OSError, KeyError, ValueError):
        return None
    if len(keys) != N_CELLS or codes.shape != (N_CELLS, 3):
        return None
    for i in np.linspace(0, N_CELLS - 1, 16).astype(int):  # a stale cache (hash or encoding changed) is rebuilt
        if space.key(decode_cell(*map(int, codes[i]))) != keys[i]:
            return None
    return keys, codes


@lru_cache(maxsize=4)
def load_cells(cache: bool = True, directory: str | None = None) -> tuple[list[str], np.ndarray]:
    """Keys and codes of every <=6-node cell, in enumeration order (read from the cache when possible)."""
    space = NB101Space(max_nodes=MAX_NODES)
    path = _cache_file(Path(directory) if directory else cache_dir()) if cache else None
    hit = _read_cache(path, space) if path is not None and path.exists() else None
    if hit is not None:
        return hit
    keys, codes = _enumerate(space)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(keys, dtype="S32"), codes=codes)
            tmp.replace(path)  # atomic: a concurrent reader never sees half a file
        except OSError:
            pass  # a read-only home directory only costs the rebuild next time
    return keys, codes


# -- features and the synthetic accuracy -----------------------------------------------------------------
FEATURES = ("n_conv3x3", "n_conv1x1", "n_maxpool", "depth", "conv3x3_on_path", "skip", "width", "edges")


def cell_features(cell: Cell101) -> tuple[int, ...]:
    """The interpretable features of ``FEATURES`` for one pruned cell."""
    m, ops, n = cell.matrix, cell.ops, cell.n_nodes
    depth = [0] * n  # longest path from the input, in edges
    conv3 = [0] * n  # most conv3x3 nodes on one path from the input
    for v in range(1, n):
        preds = [u for u in range(v) if m[u][v]]
        depth[v] = 1 + max(depth[u] for u in preds)
        conv3[v] = max(conv3[u] for u in preds) + (ops[v] == OPS[0])
    return (
        ops.count(OPS[0]),
        ops.count(OPS[1]),
        ops.count(OPS[2]),
        depth[-1],
        conv3[-1],
        m[0][n - 1],
        sum(m[u][n - 1] for u in range(1, n - 1)),
        cell.n_edges,
    )


def quality_logit(f: dict[str, np.ndarray]) -> np.ndarray:
    """The noise-free logit ``s`` of the module docstring, from feature columns."""
    n3, n1, npool = f["n_conv3x3"], f["n_conv1x1"], f["n_maxpool"]
    depth, conv = f["depth"], n3 + n1
    return (
        -0.45
        + 0.8 * n3 + 0.5 * n1 + 0.15 * npool - 0.1 * conv**2
        + 0.35 * np.minimum(depth, 4) - 0.3 * np.maximum(depth - 4, 0)
        + 0.3 * np.minimum(f["conv3x3_on_path"], 3)
        + 0.5 * ((f["skip"] == 1) & (depth >= 2))
        + 0.2 * np.minimum(f["width"], 2)
        + 0.05 * f["edges"]
        - 2.5 * (conv == 0)
    )


def hash_normal(keys: list[str], seed: int, salt: str) -> np.ndarray:
    """One standard normal number per key, a pure function of (seed, salt, key): Box-Muller on MD5 bits."""
    raw = b"".join(hashlib.md5(f"{NAME}:{seed}:{salt}:{k}".encode()).digest() for k in keys)
    words = np.frombuffer(raw, dtype="<u8").reshape(-1, 2) >> np.uint64(11)  # two 53-bit integers per key
    u1 = (words[:, 0].astype(np.float64) + 1.0) / 2.0**53  # in (0, 1]: log is finite
    u2 = words[:, 1].astype(np.float64) / 2.0**53
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def unique_max(values: np.ndarray, keys: list[str]) -> np.ndarray:
    """``values`` with a tie at the maximum broken: the smallest key among the tied ones goes up one ulp."""
    top = np.flatnonzero(values == values.max())
    if len(top) > 1:
        values = values.copy()
        i = min(top, key=lambda t: keys[t])
        values[i] = np.nextafter(values[i], np.inf)
    return values


def _accuracy(logit: np.ndarray) -> np.ndarray:
    return LOW + SPAN / (1.0 + np.exp(-logit))


def feature_columns(codes: np.ndarray) -> dict[str, np.ndarray]:
    rows = np.array([cell_features(decode_cell(*map(int, c))) for c in codes], dtype=np.float64)
    return {name: rows[:, i] for i, name in enumerate(FEATURES)}


@lru_cache(maxsize=2)
def _features(cache: bool, directory: str | None) -> tuple[list[str], dict[str, np.ndarray]]:
    keys, codes = load_cells(cache, directory)
    return keys, feature_columns(codes)


def synthetic_table(seed: int = 0, cache: bool = True, directory: str | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """(keys, columns): ``val_accuracy``, ``test_accuracy`` and the features, for table seed ``seed``."""
    keys, feats = _features(cache, directory)
    s = quality_logit(feats)
    val = unique_max(_accuracy(s + NOISE * hash_normal(keys, seed, "val")), keys)
    test = unique_max(_accuracy(s + NOISE * hash_normal(keys, seed, "test")) - TEST_OFFSET, keys)
    return keys, {"val_accuracy": val, "test_accuracy": test, **feats}


def nb101_synthetic_benchmark(seed: int = 0, cache: bool = True, directory: str | None = None) -> TableBenchmark:
    """The ``nb101-synthetic`` table on ``NB101Space(max_nodes=6)``; no training times, so 1 per sample."""
    keys, cols = synthetic_table(int(seed), cache, directory)
    metrics = {
        "val_accuracy": Metric("val_accuracy", "max", "synthetic validation accuracy (searched)", report="test_accuracy"),
        "test_accuracy": Metric("test_accuracy", "max", "synthetic test accuracy: same logit, independent noise (report only)"),
    }
    return TableBenchmark(
        name=NAME,
        space=NB101Space(max_nodes=MAX_NODES),
        metrics=metrics,
        default_metric="val_accuracy",
        keys=keys,
        columns={m: cols[m] for m in metrics},
        notes=f"SYNTHETIC accuracies (not NB101's) over the {N_CELLS:,} <=6-node NB101 cells, table seed {seed}; "
        "formula in nasagent/benchmarks/nb101_synthetic.py; reproduces the AlphaX NB101 protocol, not its numbers; "
        "cost 1 per sample",
    )
