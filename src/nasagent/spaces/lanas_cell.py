"""The cell space LaNAS searches with a supernet (thesis section 4.2.3; brief section 1.6, A11).

A normal and a reduction cell, each of 5 nodes. Node ``i`` (0-based; the thesis' node i + 1) chooses two
inputs among the two cell inputs and the ``i`` earlier nodes, **with repetition allowed**, and one op per
chosen input from sep_conv_3x3, sep_conv_5x5, max_pool_3x3 and skip_connect. Every node is connected to every
earlier state in the supernet: 2 + 3 + 4 + 5 + 6 = 20 compound edges per cell, 4 ops each.

Three views of the same cell:

- the **genotype** (the DARTS form with 5 nodes, ``Genotype(normal=[(op, input), ...], ...)``): what the journal
  stores and what builds networks (``DartsGenotypeNetwork``). A node that takes one input twice runs both ops on it
  and sums them, as the masked supernet does;
- the **thesis encoding**, 15 integers per cell, 30 in all (``to_integers``/``from_integers``, and ``encode`` by
  default): 5 connectivity integers (node i's input pair, 1-based, out of 3, 6, 10, 15, 21: first the
  repeated pairs (0,0), (1,1), ..., then the distinct pairs in lexicographic order), then 10 op integers
  in 1..4, two per node, in the order of the pair;
- the **mask** (``to_mask``): per cell a 20 x 4 matrix, one row per compound edge (node 0's inputs 0, 1, then
  node 1's inputs 0, 1, 2, ...), counting how often the cell applies each op on that edge. For a node with two
  distinct inputs the rows are the thesis' one-hot rows; a repeated input with two ops gives one row with
  two ones (or a 2 when the op repeats too): the thesis' one-hot-row rule cannot express repetition, and this
  is the masked sum the supernet computes.

Sizes: the thesis counts encodings, (3 * 6 * 10 * 15 * 21 * 4^10)^2 ~ 3.5e21. Two op orders on a repeated input
make the same network, so ``size()`` counts distinct cells (~5.8e20). ``encoding="mask"`` makes ``encode`` the
flattened 2 x 20 x 4 mask instead of the integers (a linear model on it sees every edge and op separately).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.darts import DartsGenotype, DartsSpace, Edge, _canonical

LANAS_OPS = ("sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3", "skip_connect")
N_NODES = 5
ENCODINGS = ("integers", "mask")
CELL_TYPES = ("normal", "reduce")


def input_pairs(node: int) -> list[tuple[int, int]]:
    """The input pairs node ``node`` (0-based) may take, in the order of its connectivity integer."""
    n = node + 2
    return [(j, j) for j in range(n)] + list(itertools.combinations(range(n), 2))


#: per node, its input pairs, and the index of each pair
PAIRS = tuple(input_pairs(i) for i in range(N_NODES))
PAIR_INDEX = tuple({p: k for k, p in enumerate(pairs)} for pairs in PAIRS)
#: the 20 compound edges of a cell, and the mask row of each
EDGES = tuple((node, j) for node in range(N_NODES) for j in range(node + 2))
EDGE_ROW = {e: k for k, e in enumerate(EDGES)}
INTEGERS_PER_CELL = N_NODES + 2 * N_NODES


class LaNASCellSpace(DartsSpace):
    """The thesis' NASNet-style supernet space; ``encoding`` picks ``encode``'s view (``"integers"``: the
    thesis' 30 integers; ``"mask"``: the 160 mask entries)."""

    name = "lanas-cell"
    label = "lanas-cell"
    distinct_inputs = False  # a node may take the same input twice

    def __init__(self, encoding: str = "integers"):
        super().__init__(n_nodes=N_NODES, ops=LANAS_OPS)
        if encoding not in ENCODINGS:
            raise NasagentError(f"lanas-cell encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
        self.encoding = encoding

    def parse(self, text: str) -> DartsGenotype:
        """A genotype string, or the thesis' 30 integers (e.g. ``"3 1 4 ... 2"`` or ``"[3, 1, 4, ..., 2]"``)."""
        s = str(text).strip()
        if s and not s.startswith("Genotype("):
            parts = s.strip("[]()").replace(",", " ").split()
            if not all(p.lstrip("-").isdigit() for p in parts):
                raise NasagentError(f"malformed lanas-cell architecture {text!r}: expected a Genotype(...) string or 30 integers")
            return self.from_integers([int(p) for p in parts])
        return super().parse(s)

    # -- sampling: uniform over the thesis' integers (a random mask) ---------------------------------------------
    def _sample_cell(self, rng) -> tuple[Edge, ...]:
        out = []
        for node in range(self.n_nodes):
            a, b = PAIRS[node][int(rng.integers(len(PAIRS[node])))]
            out += [(self.ops[int(rng.integers(len(self.ops)))], a), (self.ops[int(rng.integers(len(self.ops)))], b)]
        return _canonical(tuple(out))

    # -- the thesis' integers and the mask ------------------------------------------------------------------------
    def to_integers(self, arch) -> np.ndarray:
        """The 30 integers (normal cell first): per cell 5 connectivity integers, then 10 op integers."""
        out = []
        for kind in CELL_TYPES:
            cell = _canonical(arch.cell(kind))  # a repeated input's two ops in name order
            conn, ops = [], []
            for node in range(self.n_nodes):
                (op_a, a), (op_b, b) = cell[2 * node], cell[2 * node + 1]
                conn.append(PAIR_INDEX[node][(a, b)] + 1)
                ops += [self._op_index[op_a] + 1, self._op_index[op_b] + 1]
            out += conn + ops
        return np.asarray(out, dtype=np.int64)

    def from_integers(self, values) -> DartsGenotype:
        """The genotype of 30 integers; raises naming the first integer out of its range."""
        v = [int(x) for x in np.asarray(values).ravel()]
        if len(v) != 2 * INTEGERS_PER_CELL:
            raise NasagentError(f"a lanas-cell encoding has {2 * INTEGERS_PER_CELL} integers (15 per cell), got {len(v)}")
        cells = []
        for c, kind in enumerate(CELL_TYPES):
            block = v[c * INTEGERS_PER_CELL : (c + 1) * INTEGERS_PER_CELL]
            conn, ops = block[: self.n_nodes], block[self.n_nodes :]
            cell = []
            for node in range(self.n_nodes):
                if not 1 <= conn[node] <= len(PAIRS[node]):
                    raise NasagentError(f"lanas-cell {kind} node {node + 2}: connectivity integer {conn[node]} is outside 1..{len(PAIRS[node])}")
                a, b = PAIRS[node][conn[node] - 1]
                for j, o in ((a, ops[2 * node]), (b, ops[2 * node + 1])):
                    if not 1 <= o <= len(self.ops):
                        raise NasagentError(f"lanas-cell {kind} node {node + 2}: op integer {o} is outside 1..{len(self.ops)}")
                    cell.append((self.ops[o - 1], j))
            cells.append(_canonical(tuple(cell)))
        return DartsGenotype(*cells)

    def to_mask(self, arch) -> np.ndarray:
        """The 2 x 20 x 4 mask (normal cell first): how often each cell applies each op on each compound edge."""
        m = np.zeros((2, len(EDGES), len(self.ops)))
        for c, kind in enumerate(CELL_TYPES):
            for k, (op, j) in enumerate(arch.cell(kind)):
                m[c, EDGE_ROW[(k // 2, j)], self._op_index[op]] += 1.0
        return m

    def encode(self, arch) -> np.ndarray:
        if self.encoding == "mask":
            return self.to_mask(arch).ravel()
        return self.to_integers(arch).astype(np.float64)

    # -- counting, edit distance (neighbours, sequential steps and networks: DARTS', repeats allowed) -----------
    def size(self) -> int:
        """Distinct cells squared: per node, distinct input pairs x 16 op pairs + repeated inputs x 10 op multisets."""
        m = len(self.ops)
        per_cell = math.prod((n * (n - 1) // 2) * m * m + n * (m * (m + 1) // 2) for n in range(2, N_NODES + 2))
        return per_cell**2

    def edit_distance(self, a, b) -> int:
        """Changed (op, input) choices; a multiset difference, since a node may hold one choice twice."""
        return sum((Counter(a.cell(k)) - Counter(b.cell(k))).total() for k in CELL_TYPES)
