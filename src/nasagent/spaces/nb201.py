"""NAS-Bench-201 cell: a 4-node DAG whose 6 edges each carry one of 5 operations (15,625 cells).

An architecture is a tuple of 6 op names in the official edge order (1<-0), (2<-0), (2<-1), (3<-0), (3<-1),
(3<-2); its text form is the official string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``, which is also the key
(every NB201 table holds a result per string). ``iso_key`` identifies cells that compute the same function.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: (to, from) node pairs in the official edge order.
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_OP_INDEX = {op: i for i, op in enumerate(OPS)}

Cell201 = tuple  # tuple[str, str, str, str, str, str]


@lru_cache(maxsize=None)
def _format(arch: Cell201) -> str:
    a = arch
    return f"|{a[0]}~0|+|{a[1]}~0|{a[2]}~1|+|{a[3]}~0|{a[4]}~1|{a[5]}~2|"


class NB201Space(Space):
    name = "nb201"
    n_edges = len(EDGES)
    ops = OPS

    # -- text --------------------------------------------------------------------------------------
    def format(self, arch: Cell201) -> str:
        return _format(tuple(arch))

    def parse(self, text: str) -> Cell201:
        if not isinstance(text, str):
            raise NasagentError(f"NB201 architecture must be a string, got {type(text).__name__}")
        s = text.strip()
        node_strs = s.split("+")
        if len(node_strs) != 3:
            raise NasagentError(
                f"malformed NB201 string {text!r}: expected 3 node groups separated by '+', got {len(node_strs)}"
            )
        ops: list[str] = []
        for to, group in enumerate(node_strs, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise NasagentError(f"malformed NB201 string {text!r}: node {to} group {group!r} must be |...|")
            items = group[1:-1].split("|")
            if len(items) != to:
                raise NasagentError(
                    f"malformed NB201 string {text!r}: node {to} needs {to} input edge(s), got {len(items)}"
                )
            for frm, item in enumerate(items):
                op, sep, src = item.partition("~")
                if not sep or src != str(frm):
                    raise NasagentError(
                        f"malformed NB201 string {text!r}: edge {to}<-{frm} is {item!r}, expected 'OP~{frm}'"
                    )
                if op not in _OP_INDEX:
                    raise NasagentError(
                        f"malformed NB201 string {text!r}: edge {to}<-{frm} has unknown op {op!r}; "
                        f"ops are {', '.join(OPS)}"
                    )
                ops.append(op)
        return tuple(ops)

    def validate(self, arch) -> Cell201:
        if isinstance(arch, str):
            return self.parse(arch)
        arch = tuple(arch)
        if len(arch) != 6 or any(op not in _OP_INDEX for op in arch):
            raise NasagentError(f"not an NB201 cell: {arch!r} (need 6 ops from {', '.join(OPS)})")
        return arch

    # -- sampling / encoding -----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Cell201:
        idx = rng.integers(len(OPS), size=6)
        return tuple(OPS[i] for i in idx)

    def encode(self, arch: Cell201) -> np.ndarray:
        v = np.zeros((6, len(OPS)))
        v[np.arange(6), [_OP_INDEX[o] for o in arch]] = 1.0
        return v.ravel()

    def op_indices(self, arch: Cell201) -> tuple[int, ...]:
        return tuple(_OP_INDEX[o] for o in arch)

    def neighbors(self, arch: Cell201) -> list[Cell201]:
        out = []
        for i in range(6):
            for op in OPS:
                if op != arch[i]:
                    out.append(arch[:i] + (op,) + arch[i + 1 :])
        return out

    def mutate(self, arch: Cell201, rng: np.random.Generator) -> Cell201:
        i = int(rng.integers(6))
        choices = [op for op in OPS if op != arch[i]]
        return arch[:i] + (choices[int(rng.integers(len(choices)))],) + arch[i + 1 :]

    def size(self) -> int:
        return len(OPS) ** 6

    def enumerate(self) -> Iterator[Cell201]:
        return iter(itertools.product(OPS, repeat=6))

    # -- sequential: choose the op of each edge in order ----------------------------------------------
    def root(self) -> tuple:
        return ()

    def actions(self, state: tuple) -> list[str]:
        return [] if len(state) >= 6 else list(OPS)

    def step(self, state: tuple, action: str) -> tuple:
        if action not in _OP_INDEX or len(state) >= 6:
            raise NasagentError(f"illegal NB201 action {action!r} in state {state!r}")
        return state + (action,)

    def is_terminal(self, state: tuple) -> bool:
        return len(state) == 6

    # -- isomorphism -------------------------------------------------------------------------------
    def iso_key(self, arch: Cell201) -> str:
        """Equal for cells that compute the same function (ops on edges become labelled nodes).

        Edges carrying ``none`` are dropped, then everything not on an input-to-output path; the remaining
        graph (with each edge's op as an intermediate node) is hashed with the NB101 graph hash, which is
        invariant to node order. Cells with no input-to-output path all share one key.
        """
        from nasagent.spaces.nb101 import graph_hash

        live = [(frm, to, op) for (to, frm), op in zip(EDGES, arch, strict=True) if op != "none"]
        fwd = {0}
        for frm, to, _ in sorted(live, key=lambda e: e[1]):
            if frm in fwd:
                fwd.add(to)
        bwd = {3}
        for frm, to, _ in sorted(live, key=lambda e: -e[0]):
            if to in bwd:
                bwd.add(frm)
        live = [e for e in live if e[0] in fwd and e[1] in bwd and e[0] in bwd and e[1] in fwd]
        if 3 not in fwd:
            return "disconnected"
        # nodes: 0..3 are cell nodes, then one node per live edge labelled by its op
        n = 4 + len(live)
        m = np.zeros((n, n), dtype=np.int8)
        labels = [-1, -3, -3, -2] + [_OP_INDEX[op] for _, _, op in live]
        for k, (frm, to, _) in enumerate(live):
            m[frm, 4 + k] = 1
            m[4 + k, to] = 1
        keep = [i for i in range(n) if i in (0, 3) or m[i].any() or m[:, i].any()]
        m = m[np.ix_(keep, keep)]
        labels = [labels[i] for i in keep]
        return graph_hash(m, labels)
