"""DARTS cell space: a normal and a reduction cell, each with 4 intermediate nodes of 2 inputs.

Node ``i`` (0..3, DARTS' nodes 2..5) picks two *distinct* inputs among the cell inputs (0, 1) and earlier
nodes, each with one op. ``DartsSpace(n_nodes=N, ops=[...])`` makes cells of another size or op list (PARSEC's
configurable space); the default is DARTS' 4 nodes and 7 ops. The text form is the DARTS genotype string
``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[...])``.
The two inputs of a node are unordered, so the key sorts them.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

ALL_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
OPS = ALL_OPS[1:]  # the 7 ops a derived cell uses (DARTS drops "none")
N_NODES = 4
SLOTS = 2 * N_NODES
CELL_TYPES = ("normal", "reduce")

Edge = tuple[str, int]  # (op, input index)


@dataclass(frozen=True)
class DartsGenotype:
    normal: tuple[Edge, ...]
    reduce: tuple[Edge, ...]

    def cell(self, kind: str) -> tuple[Edge, ...]:
        return self.normal if kind == "normal" else self.reduce


def _canonical(cell: tuple[Edge, ...]) -> tuple[Edge, ...]:
    out: list[Edge] = []
    for i in range(len(cell) // 2):
        a, b = cell[2 * i], cell[2 * i + 1]
        out += sorted([a, b], key=lambda e: (e[1], e[0]))
    return tuple(out)


class DartsSpace(Space):
    """``include_none`` adds DARTS' 8th op ("none") to the choices (the supernet's view). ``n_nodes`` intermediate
    nodes per cell (DARTS: 4) and ``ops``, a list of DARTS op names (default: the 7 of a derived cell), shape
    other cell spaces; the stand-alone network, the supernet, PARSEC and the graph predictor take them, the DARTS
    relaxation keeps DARTS' 4-node cell."""

    name = "darts"
    #: how messages name the space, and whether a node's two inputs must differ (LaNAS' cells allow repeats)
    label = "DARTS"
    distinct_inputs = True

    def __init__(self, include_none: bool = False, n_nodes: int = N_NODES, ops=None):
        if ops is None:
            ops = ALL_OPS if include_none else OPS
        elif isinstance(ops, str):
            ops = [o.strip() for o in ops.split(",") if o.strip()]
        ops = tuple(ops)
        unknown = [o for o in ops if o not in ALL_OPS]
        if unknown or not ops or len(set(ops)) != len(ops):
            raise NasagentError(f"DARTS ops must be distinct names from {', '.join(ALL_OPS)}; got {list(ops)}")
        if not (isinstance(n_nodes, (int, np.integer)) and not isinstance(n_nodes, bool) and n_nodes >= 1):
            raise NasagentError(f"a DARTS cell needs n_nodes >= 1 intermediate nodes, got {n_nodes!r}")
        self.ops = ops
        self.n_nodes = int(n_nodes)
        self.slots = 2 * self.n_nodes
        self._op_index = {op: i for i, op in enumerate(self.ops)}

    @classmethod
    def for_genotype(cls, arch) -> DartsSpace:
        """The space a genotype (object or string) belongs to: its node count, and "none" among the ops if used."""
        if isinstance(arch, str):
            try:
                fields = _genotype_fields(arch)
            except NasagentError:
                return cls()  # its validation then names what is malformed
            cells = [list(fields.get(kind, ())) for kind in CELL_TYPES]
        else:
            cells = [arch.cell(kind) for kind in CELL_TYPES]
        uses_none = any(isinstance(e, (tuple, list)) and len(e) == 2 and e[0] == "none" for cell in cells for e in cell)
        return cls(include_none=uses_none, n_nodes=max(1, len(cells[0]) // 2))

    # -- text ----------------------------------------------------------------------------------------
    def format(self, arch: DartsGenotype) -> str:
        def cell(c):
            return "[" + ", ".join(f"({op!r}, {j})" for op, j in c) + "]"

        concat = list(range(2, 2 + self.n_nodes))
        return f"Genotype(normal={cell(arch.normal)}, normal_concat={concat}, reduce={cell(arch.reduce)}, reduce_concat={concat})"

    def parse(self, text: str) -> DartsGenotype:
        fields = _genotype_fields(text)
        for kind in CELL_TYPES:
            if kind not in fields:
                raise NasagentError(f"malformed DARTS genotype: missing {kind}=[...]")
            want = list(range(2, 2 + self.n_nodes))
            concat = fields.get(f"{kind}_concat", want)
            if list(concat) != want:
                raise NasagentError(f"DARTS {kind}_concat must be {want} for {self.n_nodes} nodes, got {list(concat)}")
        return DartsGenotype(self._check_cell(fields["normal"], "normal"), self._check_cell(fields["reduce"], "reduce"))

    def _check_cell(self, cell, kind: str) -> tuple[Edge, ...]:
        name = self.label
        cell = list(cell)
        if len(cell) != self.slots:
            raise NasagentError(f"{name} {kind} cell needs {self.slots} (op, input) pairs ({self.n_nodes} nodes x 2), got {len(cell)}")
        out = []
        for k, edge in enumerate(cell):
            node = k // 2
            if not (isinstance(edge, (tuple, list)) and len(edge) == 2):
                raise NasagentError(f"{name} {kind} cell entry {k} must be (op, input), got {edge!r}")
            op, j = edge
            if op not in self._op_index:
                raise NasagentError(
                    f"{name} {kind} node {node + 2} has unknown op {op!r}; ops are {', '.join(self.ops)}"
                )
            if not isinstance(j, int) or isinstance(j, bool) or not 0 <= j < node + 2:
                raise NasagentError(f"{name} {kind} node {node + 2} input {j!r} must be in 0..{node + 1}")
            out.append((op, j))
        for node in range(self.n_nodes if self.distinct_inputs else 0):
            if out[2 * node][1] == out[2 * node + 1][1]:
                raise NasagentError(f"{name} {kind} node {node + 2} takes input {out[2 * node][1]} twice; inputs must differ")
        return _canonical(tuple(out))

    def validate(self, arch) -> DartsGenotype:
        if isinstance(arch, str):
            return self.parse(arch)
        return DartsGenotype(self._check_cell(arch.normal, "normal"), self._check_cell(arch.reduce, "reduce"))

    # -- sampling / encoding -------------------------------------------------------------------------
    def _sample_cell(self, rng) -> tuple[Edge, ...]:
        out = []
        for node in range(self.n_nodes):
            ins = rng.choice(node + 2, size=2, replace=False)
            for j in ins:
                out.append((self.ops[int(rng.integers(len(self.ops)))], int(j)))
        return _canonical(tuple(out))

    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        return DartsGenotype(self._sample_cell(rng), self._sample_cell(rng))

    def encode(self, arch: DartsGenotype) -> np.ndarray:
        """Per cell, per node, per possible input: a one-hot of the op on that edge (order-invariant)."""
        n_in = self.n_nodes + 1
        v = np.zeros((2, self.n_nodes, n_in, len(self.ops)))
        for c, kind in enumerate(CELL_TYPES):
            for k, (op, j) in enumerate(arch.cell(kind)):
                v[c, k // 2, j, self._op_index[op]] = 1.0
        return v.ravel()

    def _cell_neighbors(self, cell: tuple[Edge, ...]) -> list[tuple[Edge, ...]]:
        out = []
        for k, (op, j) in enumerate(cell):
            node = k // 2
            other = cell[k ^ 1][1]
            for op2 in self.ops:
                if op2 != op:
                    out.append(cell[:k] + ((op2, j),) + cell[k + 1 :])
            for j2 in range(node + 2):
                if j2 != j and (j2 != other or not self.distinct_inputs):
                    out.append(cell[:k] + ((op, j2),) + cell[k + 1 :])
        return [_canonical(c) for c in out]

    def neighbors(self, arch: DartsGenotype) -> list[DartsGenotype]:
        nb = [DartsGenotype(c, arch.reduce) for c in self._cell_neighbors(arch.normal)]
        nb += [DartsGenotype(arch.normal, c) for c in self._cell_neighbors(arch.reduce)]
        return list(dict.fromkeys(nb))

    def size(self) -> int:
        per_cell = 1
        for node in range(self.n_nodes):
            k = node + 2
            per_cell *= k * (k - 1) // 2 * len(self.ops) ** 2
        return per_cell**2

    # -- sequential: fill the 2 x 2N (op, input) slots (16 for DARTS), normal cell first ----------------
    def root(self) -> tuple:
        return ()

    def actions(self, state: tuple) -> list[Edge]:
        s = len(state)
        if s >= 2 * self.slots:
            return []
        node = (s % self.slots) // 2
        taken = state[-1][1] if s % 2 == 1 and self.distinct_inputs else None
        return [(op, j) for j in range(node + 2) if j != taken for op in self.ops]

    def step(self, state: tuple, action: Edge) -> tuple:
        if action not in self.actions(state):
            raise NasagentError(f"illegal DARTS action {action!r} at slot {len(state)}")
        return state + (tuple(action),)

    def is_terminal(self, state: tuple) -> bool:
        return len(state) == 2 * self.slots

    def to_arch(self, state: tuple) -> DartsGenotype:
        return DartsGenotype(_canonical(state[: self.slots]), _canonical(state[self.slots :]))


def _genotype_fields(text: str) -> dict:
    """The keyword fields of a ``Genotype(...)`` string (``range(a, b)`` read as its list)."""
    m = re.fullmatch(r"Genotype\((.*)\)", str(text).strip(), flags=re.S)
    if not m:
        raise NasagentError(f"malformed DARTS genotype {text!r}: expected 'Genotype(normal=[...], reduce=[...], ...)'")
    body = re.sub(r"range\(\s*(\d+)\s*,\s*(\d+)\s*\)", lambda r: str(list(range(int(r[1]), int(r[2])))), m.group(1))
    try:
        return _parse_fields(body)
    except (ValueError, SyntaxError) as e:
        raise NasagentError(f"malformed DARTS genotype {text!r}: {e}") from None


def _parse_fields(body: str) -> dict:
    """Parse ``name=value, ...`` keyword arguments of a Genotype(...) call with literal values only."""
    tree = ast.parse(f"f({body})", mode="eval")
    call = tree.body
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError("expected keyword arguments only")
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
