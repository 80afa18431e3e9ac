"""NAS-Bench-101 cell: a DAG of at most 7 nodes and 9 edges, interior nodes labelled with one of 3 ops.

Cells are stored *pruned*: every node lies on an input-to-output path (nodes off such a path compute
nothing that reaches the output). The key is the NB101 graph hash (an iterated neighbourhood hash over
in/out degrees and labels), so isomorphic cells share one key, exactly as the official table is keyed.

``enumerate_cells`` lists one cell per isomorphism class without hashing every labelled matrix: it finds
the unlabelled DAG classes with vectorised canonical codes, then the orbits of op labellings under each
class's automorphism group. All cells up to 7 nodes come out in seconds.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

INPUT, OUTPUT = "input", "output"
OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
_ALIASES = {"conv3x3": OPS[0], "conv1x1": OPS[1], "maxpool": OPS[2], **{o: o for o in OPS}}
MAX_NODES = 7
MAX_EDGES = 9


@dataclass(frozen=True)
class Cell101:
    """Upper-triangular adjacency (row = from, column = to) and node labels, input first, output last."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    @property
    def n_nodes(self) -> int:
        return len(self.ops)

    @property
    def n_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def np_matrix(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.int8)


def graph_hash(matrix: np.ndarray, labels: list) -> str:
    """NB101's iterated graph hash: invariant to node order, equal for isomorphic labelled DAGs."""
    matrix = np.asarray(matrix)
    n = matrix.shape[0]
    ins = matrix.sum(axis=0).tolist()
    outs = matrix.sum(axis=1).tolist()
    h = [hashlib.md5(str((o, i, lab)).encode()).hexdigest() for o, i, lab in zip(outs, ins, labels, strict=True)]
    preds = [[w for w in range(n) if matrix[w, v]] for v in range(n)]
    succs = [[w for w in range(n) if matrix[v, w]] for v in range(n)]
    for _ in range(n):
        h = [
            hashlib.md5(
                ("".join(sorted(h[w] for w in preds[v])) + "|" + "".join(sorted(h[w] for w in succs[v])) + "|" + h[v]).encode()
            ).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(h)).encode()).hexdigest()


def hash_labels(ops: tuple[str, ...]) -> list[int]:
    """The integer labels NB101's hash uses: -1 input, -2 output, op index otherwise."""
    return [-1 if o == INPUT else -2 if o == OUTPUT else OPS.index(o) for o in ops]


def prune(matrix: np.ndarray, ops: list[str]) -> tuple[np.ndarray, list[str]] | None:
    """Drop nodes not on an input-to-output path; ``None`` when the output is unreachable."""
    matrix = np.asarray(matrix, dtype=np.int8)
    n = matrix.shape[0]
    fwd = np.zeros(n, bool)
    fwd[0] = True
    for v in range(1, n):
        fwd[v] = bool((matrix[:v, v] & fwd[:v]).any())
    bwd = np.zeros(n, bool)
    bwd[n - 1] = True
    for v in range(n - 2, -1, -1):
        bwd[v] = bool((matrix[v, v + 1 :] & bwd[v + 1 :]).any())
    if not fwd[n - 1]:
        return None
    keep = np.flatnonzero(fwd & bwd)
    return matrix[np.ix_(keep, keep)], [ops[i] for i in keep]


class NB101Space(Space):
    """NB101 cells up to ``max_nodes`` nodes (7 is the full space, 6 is AlphaX's subspace)."""

    name = "nb101"
    ops = OPS

    def __init__(self, max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES):
        if not 2 <= max_nodes <= MAX_NODES:
            raise NasagentError(f"nb101 max_nodes must be in 2..{MAX_NODES}, got {max_nodes}")
        self.max_nodes = max_nodes
        self.max_edges = max_edges

    # -- construction --------------------------------------------------------------------------------
    def make(self, matrix, ops) -> Cell101:
        """Validate, prune and freeze a (matrix, ops) pair into a cell; ``NasagentError`` says what is wrong."""
        m = np.asarray(matrix, dtype=np.int8)
        ops = [_ALIASES.get(o, o) for o in ops]
        if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(ops):
            raise NasagentError(f"NB101 matrix must be square and match the {len(ops)} ops, got shape {m.shape}")
        if not set(np.unique(m)) <= {0, 1}:
            raise NasagentError("NB101 matrix entries must be 0 or 1")
        if np.tril(m).any():
            raise NasagentError("NB101 matrix must be strictly upper-triangular (edges go from lower to higher node)")
        if len(ops) < 2 or ops[0] != INPUT or ops[-1] != OUTPUT:
            raise NasagentError(f"NB101 ops must start with 'input' and end with 'output', got {ops}")
        bad = [o for o in ops[1:-1] if o not in OPS]
        if bad:
            raise NasagentError(f"unknown NB101 op {bad[0]!r}; ops are {', '.join(OPS)}")
        pruned = prune(m, ops)
        if pruned is None:
            raise NasagentError("NB101 cell has no path from input to output")
        pm, pops = pruned
        if len(pops) > self.max_nodes:
            raise NasagentError(f"NB101 cell has {len(pops)} nodes after pruning, the space allows {self.max_nodes}")
        if int(pm.sum()) > self.max_edges:
            raise NasagentError(f"NB101 cell has {int(pm.sum())} edges after pruning, the space allows {self.max_edges}")
        return Cell101(tuple(map(tuple, pm.tolist())), tuple(pops))

    # -- text ----------------------------------------------------------------------------------------
    def format(self, arch: Cell101) -> str:
        rows = ",".join("".join(map(str, r)) for r in arch.matrix)
        return f"{'|'.join(arch.ops)};{rows}"

    def parse(self, text: str) -> Cell101:
        ops_part, sep, mat_part = str(text).strip().partition(";")
        if not sep:
            raise NasagentError(
                f"malformed NB101 string {text!r}: expected 'input|op|...|output;row,row,...' "
                "(ops, then adjacency rows of 0/1)"
            )
        ops = ops_part.split("|")
        rows = mat_part.split(",")
        if any(len(r) != len(rows) or set(r) - {"0", "1"} for r in rows):
            raise NasagentError(f"malformed NB101 string {text!r}: adjacency rows must be {len(rows)} digits of 0/1")
        return self.make([[int(c) for c in r] for r in rows], ops)

    def key(self, arch: Cell101) -> str:
        return _cell_hash(arch)

    def validate(self, arch) -> Cell101:
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, Cell101):
            return self.make(arch.matrix, arch.ops)
        raise NasagentError(f"not an NB101 cell: {arch!r}")

    # -- sampling / encoding -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Cell101:
        """NB101's own random sampler: uniform random upper-triangular matrix and ops, rejected until valid."""
        n = self.max_nodes
        while True:
            m = np.triu(rng.integers(0, 2, size=(n, n)), 1).astype(np.int8)
            ops = [INPUT] + [OPS[i] for i in rng.integers(len(OPS), size=n - 2)] + [OUTPUT]
            pruned = prune(m, ops)
            if pruned is not None and int(pruned[0].sum()) <= self.max_edges:
                pm, pops = pruned
                return Cell101(tuple(map(tuple, pm.tolist())), tuple(pops))

    def encode(self, arch: Cell101) -> np.ndarray:
        """21 upper-triangle bits of the 7-node padded matrix (output moved to node 6) + 5x3 op one-hots."""
        m = padded_matrix(arch)
        upper = m[np.triu_indices(MAX_NODES, 1)].astype(np.float64)
        ops = np.zeros((MAX_NODES - 2, len(OPS)))
        for i, o in enumerate(arch.ops[1:-1]):
            ops[i, OPS.index(o)] = 1.0
        return np.concatenate([upper, ops.ravel()])

    def encode_digits(self, arch: Cell101) -> np.ndarray:
        """AlphaX's 56 digits: the padded 7x7 adjacency (49) then the node list (7). The seed gives no op codes,
        so: 0 absent, 1 input, 2-4 the ops in ``OPS`` order, 5 output (the output sits in the last slot, as
        in ``padded_matrix``)."""
        nodes = np.zeros(MAX_NODES, np.int64)
        inner = arch.ops[1:-1]
        nodes[0] = 1
        nodes[1 : 1 + len(inner)] = [2 + OPS.index(o) for o in inner]
        nodes[MAX_NODES - 1] = 2 + len(OPS)
        return np.concatenate([padded_matrix(arch).ravel().astype(np.int64), nodes])

    def neighbors(self, arch: Cell101) -> list[Cell101]:
        """Cells one edit away: change an op, add or remove an edge, insert a node on a new i->v->j path, or
        delete an interior node (pruned and deduplicated by key)."""
        m = arch.np_matrix()
        n = arch.n_nodes
        cands: list[tuple[np.ndarray, list[str]]] = []
        for v in range(1, n - 1):
            for op in OPS:
                if op != arch.ops[v]:
                    ops = list(arch.ops)
                    ops[v] = op
                    cands.append((m, ops))
        for i in range(n):
            for j in range(i + 1, n):
                m2 = m.copy()
                m2[i, j] ^= 1
                cands.append((m2, list(arch.ops)))
        if n < self.max_nodes:
            for pos in range(1, n):  # new node inserted before current node `pos`
                for i in range(pos):
                    for j in range(pos, n):
                        for op in OPS:
                            big, ops = _insert_node(m, list(arch.ops), pos, op)
                            big[i, pos] = 1
                            big[pos, j + 1] = 1
                            cands.append((big, ops))
        for v in range(1, n - 1):
            keep = [k for k in range(n) if k != v]
            cands.append((m[np.ix_(keep, keep)], [arch.ops[k] for k in keep]))
        out, seen = [], {self.key(arch)}
        for mat, ops in cands:
            pruned = prune(mat, ops)
            if pruned is None or len(pruned[1]) > self.max_nodes or int(pruned[0].sum()) > self.max_edges:
                continue
            cell = Cell101(tuple(map(tuple, pruned[0].tolist())), tuple(pruned[1]))
            k = self.key(cell)
            if k not in seen:
                seen.add(k)
                out.append(cell)
        return out

    def size(self) -> int:
        return count_cells(self.max_nodes, self.max_edges)

    def enumerate(self) -> Iterator[Cell101]:
        return enumerate_cells(self.max_nodes, self.max_edges)

    # -- sequential: add a node (with its op), add an edge, or terminate ------------------------------
    # A state is (matrix, ops, done). New nodes go just before the output; edges keep their endpoints.
    def root(self):
        return (((0, 0), (0, 0)), (INPUT, OUTPUT), False)

    def actions(self, state) -> list:
        matrix, ops, done = state
        if done:
            return []
        n = len(ops)
        edges = sum(map(sum, matrix))
        acts: list = []
        if n < self.max_nodes:
            acts += [("node", op) for op in OPS]
        if edges < self.max_edges:
            # the last edge allowed must leave an input -> output path: otherwise a state could reach both
            # limits with no path, no action and no way to terminate (a stranded playout). Every valid cell
            # stays reachable: adding its own last edge yields the cell, which has a path.
            fwd, bwd = _reachability(matrix, n)
            last = edges == self.max_edges - 1 and not fwd[n - 1]
            acts += [("edge", i, j) for i in range(n) for j in range(i + 1, n)
                     if not matrix[i][j] and not (last and not (fwd[i] and bwd[j]))]
        if prune(np.array(matrix), list(ops)) is not None:
            acts.append(("term",))
        return acts

    def step(self, state, action):
        matrix, ops, done = state
        if done:
            raise NasagentError("no action is legal in a terminal NB101 state")
        m = np.array(matrix, dtype=np.int8)
        n = len(ops)
        if action[0] == "node":
            big, new_ops = _insert_node(m, list(ops), n - 1, action[1])
            return (tuple(map(tuple, big.tolist())), tuple(new_ops), False)
        if action[0] == "edge":
            _, i, j = action
            m[i, j] = 1
            return (tuple(map(tuple, m.tolist())), ops, False)
        if action[0] == "term":
            return (matrix, ops, True)
        raise NasagentError(f"unknown NB101 action {action!r}")

    def is_terminal(self, state) -> bool:
        return bool(state[2])

    def to_arch(self, state) -> Cell101:
        return self.make(state[0], state[1])


def _reachability(matrix, n: int) -> tuple[list[bool], list[bool]]:
    """Which nodes the input reaches, and which reach the output (edges go from lower to higher index)."""
    fwd = [True] + [False] * (n - 1)
    for v in range(1, n):
        fwd[v] = any(fwd[u] and matrix[u][v] for u in range(v))
    bwd = [False] * (n - 1) + [True]
    for v in range(n - 2, -1, -1):
        bwd[v] = any(matrix[v][w] and bwd[w] for w in range(v + 1, n))
    return fwd, bwd


def _insert_node(m: np.ndarray, ops: list[str], pos: int, op: str) -> tuple[np.ndarray, list[str]]:
    """Insert an unconnected node labelled ``op`` at index ``pos``; later nodes shift up by one."""
    n = len(ops)
    idx = [k if k < pos else k + 1 for k in range(n)]
    big = np.zeros((n + 1, n + 1), np.int8)
    big[np.ix_(idx, idx)] = m
    return big, ops[:pos] + [op] + ops[pos:]


def padded_matrix(arch: Cell101) -> np.ndarray:
    """The 7x7 adjacency with interior nodes first and the output moved to the last row/column."""
    m = arch.np_matrix()
    n = arch.n_nodes
    big = np.zeros((MAX_NODES, MAX_NODES), np.int8)
    big[: n - 1, : n - 1] = m[: n - 1, : n - 1]
    big[: n - 1, MAX_NODES - 1] = m[: n - 1, n - 1]
    return big


@lru_cache(maxsize=1 << 18)
def _cell_hash(arch: Cell101) -> str:
    return graph_hash(arch.np_matrix(), hash_labels(arch.ops))


# --------------------------------------------------------------------------------------------------
# Enumeration of unique cells
# --------------------------------------------------------------------------------------------------
def _dag_classes(n: int, max_edges: int):
    """Unlabelled n-node cell DAGs up to isomorphism: yields (upper-triangular matrix, automorphisms),
    where an automorphism is a permutation of the interior nodes 1..n-2 that preserves the edges."""
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    e = len(pairs)
    codes = np.arange(1 << e, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(e)) & 1).astype(bool)
    ok = bits.sum(1) <= max_edges
    for v in range(n):
        ins = [k for k, (i, j) in enumerate(pairs) if j == v]
        outs = [k for k, (i, j) in enumerate(pairs) if i == v]
        if v != 0:
            ok &= bits[:, ins].any(1)
        if v != n - 1:
            ok &= bits[:, outs].any(1)
    bits = bits[ok]
    if len(bits) == 0:
        return
    perms = [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]
    # code of the permuted full n x n matrix: bit (p[i] * n + p[j]) for each present edge (i, j)
    weights = np.array([[2.0 ** (p[i] * n + p[j]) for p in perms] for i, j in pairs])  # e x P, exact in float64
    permuted = bits.astype(np.float64) @ weights  # M x P
    canon = permuted.min(1)
    _, first = np.unique(canon, return_index=True)
    for row in np.sort(first):
        auts = [p for p, c in zip(perms, permuted[row], strict=True) if c == permuted[row, 0]]
        m = np.zeros((n, n), np.int8)
        for k, (i, j) in enumerate(pairs):
            m[i, j] = bits[row, k]
        yield m, auts


def _label_orbits(n_interior: int, auts: list[tuple[int, ...]]) -> np.ndarray:
    """One labelling (array of op indices over interior nodes) per orbit of the automorphism group."""
    k = n_interior
    labs = np.array(list(itertools.product(range(len(OPS)), repeat=k)), dtype=np.int64).reshape(len(OPS) ** k, k)
    if len(auts) == 1:
        return labs
    base = len(OPS) ** np.arange(k - 1, -1, -1)
    canon = None
    for p in auts:
        idx = [p[v + 1] - 1 for v in range(k)]  # node v's label moves to node p(v)
        moved = np.empty_like(labs)
        moved[:, idx] = labs
        code = moved @ base
        canon = code if canon is None else np.minimum(canon, code)
    return labs[canon == labs @ base]


def enumerate_cells(max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES) -> Iterator[Cell101]:
    """Every unique NB101 cell (one per isomorphism class) with at most ``max_nodes`` nodes."""
    for n in range(2, max_nodes + 1):
        for m, auts in _dag_classes(n, max_edges):
            mt = tuple(map(tuple, m.tolist()))
            for lab in _label_orbits(n - 2, auts):
                yield Cell101(mt, (INPUT, *(OPS[i] for i in lab), OUTPUT))


@lru_cache(maxsize=None)
def count_cells(max_nodes: int = MAX_NODES, max_edges: int = MAX_EDGES) -> int:
    """Number of unique cells, counted class by class (no cell objects built)."""
    return sum(
        len(_label_orbits(n - 2, auts)) for n in range(2, max_nodes + 1) for _, auts in _dag_classes(n, max_edges)
    )
