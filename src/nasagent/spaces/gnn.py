"""NAS-Bench-Graph space: 4 GNN layers wired by one of 9 link patterns, each layer one of 9 ops.

The definition (link patterns, op list, the canonical hash that merges isomorphic wirings) is reused from
the ``nas-bench-graph`` package. An architecture is ``(links, ops)`` in the package's canonical form; the
key is the package's integer hash, the key of its benchmark tables. 26,206 architectures (2,021 with the
5-op list of the ``proteins`` dataset).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

GNNArch = tuple  # (links: tuple[int, int, int, int], ops: tuple[str, str, str, str])


def _pkg():
    import nas_bench_graph.architecture as arch_mod

    return arch_mod


class NBGraphSpace(Space):
    """``proteins=True`` restricts ops to the 5 the ``proteins`` table was built with."""

    def __init__(self, proteins: bool = False):
        pkg = _pkg()
        self.proteins = proteins
        self.links = tuple(tuple(lk) for lk in pkg.link_list)
        self.ops = tuple(pkg.gnn_list_proteins if proteins else pkg.gnn_list)
        self.name = "nbgraph-proteins" if proteins else "nbgraph"
        self._op_index = {op: i for i, op in enumerate(pkg.gnn_list)}

    # -- canonical forms -----------------------------------------------------------------------------
    def _hash(self, links, ops) -> int:
        return _pkg().Arch(list(links), list(ops)).valid_hash()

    @cached_property
    def _by_hash(self) -> dict[int, GNNArch]:
        """Every architecture in canonical form, keyed by the package hash (built once, ~0.5 s)."""
        import itertools

        pkg = _pkg()
        out: dict[int, GNNArch] = {}
        for lk in self.links:
            for ops in itertools.product(self.ops, repeat=4):
                if all(o == "skip" for o in ops):
                    continue
                if pkg.Arch(list(lk), list(ops)).check_isomorph():
                    out[self._hash(lk, ops)] = (lk, tuple(ops))
        return out

    @cached_property
    def _keys(self) -> list[int]:
        return sorted(self._by_hash)

    def canonical(self, links, ops) -> GNNArch:
        links, ops = tuple(int(v) for v in links), tuple(ops)
        if len(links) != 4 or len(ops) != 4:
            raise NasagentError(f"NAS-Bench-Graph architecture needs 4 links and 4 ops, got {links} / {ops}")
        bad = [o for o in ops if o not in self.ops]
        if bad:
            raise NasagentError(f"unknown NAS-Bench-Graph op {bad[0]!r}; ops are {', '.join(self.ops)}")
        if all(o == "skip" for o in ops):
            raise NasagentError("a NAS-Bench-Graph architecture of only 'skip' layers is not in the space")
        try:
            h = self._hash(links, ops)
        except (UnboundLocalError, KeyError, IndexError):
            raise NasagentError(f"NAS-Bench-Graph links {list(links)} are not a valid wiring") from None
        if h not in self._by_hash:
            raise NasagentError(f"NAS-Bench-Graph links {list(links)} are not a valid wiring")
        return self._by_hash[h]

    # -- text ----------------------------------------------------------------------------------------
    def format(self, arch: GNNArch) -> str:
        links, ops = arch
        return ",".join(map(str, links)) + "|" + ",".join(ops)

    def parse(self, text: str) -> GNNArch:
        links, sep, ops = str(text).strip().partition("|")
        if not sep:
            raise NasagentError(f"malformed NAS-Bench-Graph string {text!r}: expected 'l1,l2,l3,l4|op1,op2,op3,op4'")
        try:
            lk = [int(v) for v in links.split(",")]
        except ValueError:
            raise NasagentError(f"malformed NAS-Bench-Graph links {links!r}: expected 4 integers") from None
        return self.canonical(lk, ops.split(","))

    def key(self, arch: GNNArch) -> str:
        return str(self._hash(*arch))

    def validate(self, arch) -> GNNArch:
        if isinstance(arch, str):
            return self.parse(arch)
        return self.canonical(*arch)

    # -- sampling / encoding -------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> GNNArch:
        """Uniform over the distinct architectures (isomorphic wirings counted once)."""
        return self._by_hash[self._keys[int(rng.integers(len(self._keys)))]]

    def encode(self, arch: GNNArch) -> np.ndarray:
        links, ops = arch
        v = np.zeros(len(self.links) + 4 * len(self.ops))
        v[self.links.index(tuple(links))] = 1.0
        for i, op in enumerate(ops):
            v[len(self.links) + i * len(self.ops) + self.ops.index(op)] = 1.0
        return v

    def neighbors(self, arch: GNNArch) -> list[GNNArch]:
        links, ops = arch
        own = self.key(arch)
        out: dict[str, GNNArch] = {}
        cands = [(lk, ops) for lk in self.links if lk != links]
        cands += [(links, ops[:i] + (op,) + ops[i + 1 :]) for i in range(4) for op in self.ops if op != ops[i]]
        for lk, op in cands:
            if all(o == "skip" for o in op):
                continue
            a = self._by_hash.get(self._hash(lk, op))
            if a is not None:
                k = self.key(a)
                if k != own:
                    out.setdefault(k, a)
        return list(out.values())

    def size(self) -> int:
        return len(self._keys)

    def enumerate(self) -> Iterator[GNNArch]:
        return (self._by_hash[k] for k in self._keys)

    def arch_of_key(self, key: str) -> GNNArch:
        return self._by_hash[int(key)]

    # -- sequential: the link pattern, then the op of each of the 4 layers ----------------------------
    def root(self) -> tuple:
        return ()

    def actions(self, state: tuple) -> list:
        if len(state) == 0:
            return list(self.links)
        if len(state) >= 5:
            return []
        ops = self.ops
        if len(state) == 4 and all(o == "skip" for o in state[1:]):
            ops = tuple(o for o in ops if o != "skip")
        return list(ops)

    def step(self, state: tuple, action) -> tuple:
        if action not in self.actions(state):
            raise NasagentError(f"illegal NAS-Bench-Graph action {action!r} after {state!r}")
        return state + (action,)

    def is_terminal(self, state: tuple) -> bool:
        return len(state) == 5

    def to_arch(self, state: tuple) -> GNNArch:
        return self.canonical(state[0], state[1:])
