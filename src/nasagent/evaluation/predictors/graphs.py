"""Graph encodings of architectures for graph predictors (the Neural Predictor's GCN).

An architecture becomes a directed graph whose *nodes* carry a one-hot operation label, as the Neural
Predictor paper encodes NASBench-101 cells: ``(adjacency, features)`` with ``adjacency[i, j] = 1`` for an
edge i -> j and ``features`` of shape (nodes, vocabulary). Spaces whose operations sit on edges are turned
into ops-on-nodes graphs first (each edge becomes a node labelled with its op, the line-graph view used by
NASLib's NB201 port). One module holds every space's encoding so that spaces stay free of predictor code; a
space may also define ``graph(arch) -> (adjacency, features)`` and ``graph_vocabulary`` itself (a chain space
such as a MobileNet-like space would), which takes precedence.

``GraphEncoder(space)`` picks the encoding; ``encode_batch`` pads a list of graphs to one size with a node
mask, so a batch of 10^5 candidates is three dense arrays. ``positions=P`` (not in the paper) appends a one-hot
of each node's index (slots 0..P-1, later nodes share the last): mean pooling forgets *where* an op sits, which
matters where the nodes are fixed layers rather than interchangeable cell nodes. ``positions="auto"`` turns it
on exactly there: NAS-Bench-Graph (one slot per node: input, 4 layers, output), and off for cells (see
docs/predictors.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from nasagent.core import NasagentError


@dataclass
class GraphBatch:
    """Padded graphs: ``adj`` (B, n, n) 0/1, ``x`` (B, n, d) one-hot labels, ``mask`` (B, n) real nodes."""

    adj: np.ndarray
    x: np.ndarray
    mask: np.ndarray

    def __len__(self) -> int:
        return len(self.adj)

    def take(self, idx) -> GraphBatch:
        return GraphBatch(self.adj[idx], self.x[idx], self.mask[idx])


# --------------------------------------------------------------------------------------------------
# NAS-Bench-201: ops on the 6 edges of a 4-node cell -> 8-node graph (input, 6 op nodes, output)
# --------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1 << 16)
def nb201_graph(arch: tuple, prune: bool = True) -> tuple[np.ndarray, list[str]]:
    """Ops-on-nodes form of an NB201 cell.

    Each of the 6 edges (to <- from) becomes a node labelled with its op. Op node e feeds op node f when e ends
    where f starts; edges leaving cell node 0 are fed by the input node and edges entering cell node 3 feed the
    output node (the standard NASLib conversion). With ``prune`` (our default), ``none`` edges are removed and so
    is every node off an input-to-output path, as NB101 prunes its cells: a cell whose output is unreachable
    becomes the two-node graph input, output with no edge, so the predictor sees it is disconnected.
    ``prune=False`` keeps ``none`` as an ordinary op node (NASLib's encoding).
    """
    from nasagent.spaces.nb101 import prune as prune_dag
    from nasagent.spaces.nb201 import EDGES

    ops = list(arch)
    n = len(EDGES) + 2
    out = n - 1
    adj = np.zeros((n, n), np.int8)
    for e, (to_e, frm_e) in enumerate(EDGES):
        if frm_e == 0:
            adj[0, e + 1] = 1
        if to_e == 3:
            adj[e + 1, out] = 1
        for f, (_, frm_f) in enumerate(EDGES):
            if frm_f == to_e:
                adj[e + 1, f + 1] = 1
    labels = ["input", *ops, "output"]
    if prune:
        keep = [0] + [e + 1 for e, op in enumerate(ops) if op != "none"] + [out]
        adj = adj[np.ix_(keep, keep)]
        labels = [labels[i] for i in keep]
        pruned = prune_dag(adj, labels)  # the line graph is upper-triangular, as NB101's pruning expects
        if pruned is None:
            return np.zeros((2, 2), np.int8), ["input", "output"]
        adj, labels = pruned
    return adj, labels


# --------------------------------------------------------------------------------------------------
# NAS-Bench-101: already a DAG with labelled nodes
# --------------------------------------------------------------------------------------------------
def nb101_graph(arch) -> tuple[np.ndarray, list[str]]:
    """The cell's own (pruned) adjacency and labels ``input``, the interior ops, ``output`` (the paper's D_0 = 5)."""
    return np.array(arch.matrix, dtype=np.int8), list(arch.ops)


# --------------------------------------------------------------------------------------------------
# DARTS: two cells, each 2 inputs + 8 op nodes + 4 sum nodes + 1 output; the graphs are kept disjoint
# --------------------------------------------------------------------------------------------------
def darts_graph(arch) -> tuple[np.ndarray, list[str]]:
    """Normal and reduction cell as one graph of two disjoint 15-node components.

    In a cell, edge (op, j) of intermediate node i becomes an op node fed by input j (the cell inputs c_{k-2},
    c_{k-1} for j = 0, 1, else sum node j-2) that feeds sum node i; the 4 sum nodes feed the output (concat).
    Labels carry the cell type (``normal:sep_conv_3x3``, ``reduce:add``...) so the two cells stay distinct.
    """
    from nasagent.spaces.darts import CELL_TYPES

    blocks, labels = [], []
    for kind in CELL_TYPES:
        cell = arch.cell(kind)
        n_nodes = len(cell) // 2  # 4 in DARTS' space; DartsSpace(n_nodes=...) makes others
        n = 2 + len(cell) + n_nodes + 1
        adj = np.zeros((n, n), np.int8)
        lab = [f"{kind}:input", f"{kind}:input"] + [f"{kind}:{op}" for op, _ in cell] + [f"{kind}:add"] * n_nodes
        lab.append(f"{kind}:output")
        first_sum = 2 + len(cell)
        for k, (_, j) in enumerate(cell):
            src = j if j < 2 else first_sum + (j - 2)
            adj[src, 2 + k] = 1
            adj[2 + k, first_sum + k // 2] = 1
        adj[first_sum : first_sum + n_nodes, n - 1] = 1
        blocks.append(adj)
        labels += lab
    total = sum(len(b) for b in blocks)
    adj = np.zeros((total, total), np.int8)
    at = 0
    for b in blocks:
        adj[at : at + len(b), at : at + len(b)] = b
        at += len(b)
    return adj, labels


# --------------------------------------------------------------------------------------------------
# NAS-Bench-Graph: input, 4 layer nodes wired by the link pattern, output fed by the unused layers
# --------------------------------------------------------------------------------------------------
NBGRAPH_NODES = 6  # input, 4 layers, output: every NAS-Bench-Graph graph has all six


def nbgraph_graph(arch) -> tuple[np.ndarray, list[str]]:
    """``links[i]`` is the input of layer i+1 (0 = the pre-processed features, j = layer j's output); layers no
    other layer reads are combined into the output, as in NAS-Bench-Graph's model builder."""
    links, ops = arch
    n = len(ops) + 2
    adj = np.zeros((n, n), np.int8)
    for i, src in enumerate(links):
        adj[int(src), i + 1] = 1
    used = {int(s) for s in links}
    for i in range(1, len(ops) + 1):
        if i not in used:
            adj[i, n - 1] = 1
    return adj, ["input", *ops, "output"]


# --------------------------------------------------------------------------------------------------
# Chains: one node per layer (a ProxylessNAS / MobileNet-like space), for spaces that expose their layers
# --------------------------------------------------------------------------------------------------
def chain_graph(choices: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """A linear graph input -> layer 1 -> ... -> layer L -> output, each layer labelled by its choice.

    The paper encodes the ProxylessNAS space this way (one-hot of length 7 per layer). Skipped layers stay in
    the chain as ``skip`` nodes so that position information survives (ambiguity A12 in the brief).
    """
    labels = ["input", *choices, "output"]
    n = len(labels)
    adj = np.zeros((n, n), np.int8)
    adj[np.arange(n - 1), np.arange(1, n)] = 1
    return adj, labels


# --------------------------------------------------------------------------------------------------
class GraphEncoder:
    """Turns architectures of one space into padded graph batches with a fixed label vocabulary."""

    def __init__(self, space, nb201_prune: bool = True, positions: int | str = 0):
        self.space = space
        base = getattr(space, "base", space)  # a SubsetSpace encodes like its base space
        self.nb201_prune = nb201_prune
        check_positions(positions)
        if positions == "auto":  # node i is layer i only in NAS-Bench-Graph's graphs: input, 4 layers, output
            positions = NBGRAPH_NODES if type(base).__name__ == "NBGraphSpace" else 0
        self.positions = int(positions)
        if hasattr(space, "graph") and hasattr(space, "graph_vocabulary"):
            self._fn, vocab = space.graph, list(space.graph_vocabulary)
        else:
            name = type(base).__name__
            if name == "NB201Space":
                self._fn = lambda a: nb201_graph(tuple(a), prune=self.nb201_prune)  # cached: needs a tuple
                vocab = ["input", "output", *base.ops]
            elif name == "NB101Space":
                self._fn = nb101_graph
                vocab = ["input", "output", *base.ops]
            elif name == "DartsSpace":
                self._fn = darts_graph
                vocab = [f"{k}:{lab}" for k in ("normal", "reduce") for lab in ("input", "add", "output", *base.ops)]
            elif name == "NBGraphSpace":
                self._fn = nbgraph_graph
                vocab = ["input", "output", *base.ops]
            else:
                raise NasagentError(
                    f"no graph encoding for space {space.name!r}; graph predictors support nb201, nb101, darts, "
                    "nbgraph, and spaces that define graph(arch) and graph_vocabulary; use a vector predictor "
                    "(mlp, rf, gbdt, gp) instead"
                )
        self.vocabulary = vocab
        self._index = {lab: i for i, lab in enumerate(vocab)}

    @property
    def n_features(self) -> int:
        return len(self.vocabulary) + self.positions

    def graph(self, arch) -> tuple[np.ndarray, np.ndarray]:
        adj, labels = self._fn(arch)
        nodes = np.arange(len(labels))
        x = np.zeros((len(labels), self.n_features), np.float32)
        x[nodes, [self._index[lab] for lab in labels]] = 1.0
        if self.positions:
            x[nodes, len(self.vocabulary) + np.minimum(nodes, self.positions - 1)] = 1.0
        return np.asarray(adj, np.float32), x

    def encode_batch(self, archs: Sequence) -> GraphBatch:
        try:
            graphs = [self.graph(a) for a in archs]
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise NasagentError(
                f"cannot build graphs of these architectures with space {self.space.name!r} "
                f"(are they from another space?): {type(e).__name__}: {e}"
            ) from None
        return pad_graphs(graphs, self.n_features)


def check_positions(positions) -> None:
    ok = positions == "auto" or (isinstance(positions, (int, np.integer)) and not isinstance(positions, bool) and positions >= 0)
    if not ok:
        raise NasagentError(f"graph positions must be 'auto' or an integer >= 0 (0 = op labels only, the paper's features), "
                            f"got {positions!r}")


def pad_graphs(graphs: Sequence[tuple[np.ndarray, np.ndarray]], n_features: int) -> GraphBatch:
    n = max((len(a) for a, _ in graphs), default=1)
    b = len(graphs)
    adj = np.zeros((b, n, n), np.float32)
    x = np.zeros((b, n, n_features), np.float32)
    mask = np.zeros((b, n), np.float32)
    for i, (a, f) in enumerate(graphs):
        k = len(a)
        adj[i, :k, :k] = a
        x[i, :k] = f
        mask[i, :k] = 1.0
    return GraphBatch(adj, x, mask)


def normalized_adjacency(adj: np.ndarray, mask: np.ndarray, mode: str = "row") -> np.ndarray:
    """(A + I) over real nodes, normalised by node degree: ``row`` D^-1 (A+I), ``sym`` D^-1/2 (A+I) D^-1/2.

    Padded nodes get no self-loop, so their rows and columns stay zero and they never contribute.
    """
    if mode not in ("row", "sym"):
        raise NasagentError(f"adjacency normalisation must be 'row' or 'sym', got {mode!r}")
    a = adj + mask[:, :, None] * np.eye(adj.shape[1], dtype=adj.dtype)[None]
    deg = a.sum(-1)
    with np.errstate(divide="ignore"):
        if mode == "row":
            inv = np.where(deg > 0, 1.0 / deg, 0.0).astype(adj.dtype)
            return a * inv[:, :, None]
        inv = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0).astype(adj.dtype)
        col = np.where(a.sum(-2) > 0, 1.0 / np.sqrt(a.sum(-2)), 0.0).astype(adj.dtype)
        return a * inv[:, :, None] * col[:, None, :]
