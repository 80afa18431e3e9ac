"""DARTS cell space: a normal and a reduction cell, each with 4 intermediate nodes of 2 inputs.

Node ``i`` (0..3, DARTS' nodes 2..5) picks two *distinct* inputs among the cell inputs (0, 1) and earlier
nodes, each with one op. The text form is the DARTS genotype string
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
    for i in range(N_NODES):
        a, b = cell[2 * i], cell[2 * i + 1]
        out += sorted([a, b], key=lambda e: (e[1], e[0]))
    return tuple(out)


class DartsSpace(Space):
    """``include_none`` adds DARTS' 8th op ("none") to the choices (the supernet's view)."""

    name = "darts"

    def __init__(self, include_none: bool = False):
        self.ops = ALL_OPS if include_none else OPS
        self._op_index = {op: i for i, op in enumerate(self.ops)}

    # -- text ----------------------------------------------------------------------------------------
    def format(self, arch: DartsGenotype) -> str:
        def cell(c):
            return "[" + ", ".join(f"({op!r}, {j})" for op, j in c) + "]"

        concat = list(range(2, 2 + N_NODES))
        return f"Genotype(normal={cell(arch.normal)}, normal_concat={concat}, reduce={cell(arch.reduce)}, reduce_concat={concat})"

    def parse(self, text: str) -> DartsGenotype:
        s = str(text).strip()
        m = re.fullmatch(r"Genotype\((.*)\)", s, flags=re.S)
        if not m:
            raise NasagentError(f"malformed DARTS genotype {text!r}: expected 'Genotype(normal=[...], reduce=[...], ...)'")
        body = m.group(1).replace("range(2, 6)", "[2, 3, 4, 5]")
        try:
            fields = _parse_fields(body)
        except (ValueError, SyntaxError) as e:
            raise NasagentError(f"malformed DARTS genotype {text!r}: {e}") from None
        for kind in CELL_TYPES:
            if kind not in fields:
                raise NasagentError(f"malformed DARTS genotype: missing {kind}=[...]")
            concat = fields.get(f"{kind}_concat", [2, 3, 4, 5])
            if list(concat) != [2, 3, 4, 5]:
                raise NasagentError(f"DARTS {kind}_concat must be [2, 3, 4, 5], got {list(concat)}")
        return DartsGenotype(self._check_cell(fields["normal"], "normal"), self._check_cell(fields["reduce"], "reduce"))

    def _check_cell(self, cell, kind: str) -> tuple[Edge, ...]:
        cell = list(cell)
        if len(cell) != SLOTS:
            raise NasagentError(f"DARTS {kind} cell needs {SLOTS} (op, input) pairs, got {len(cell)}")
        out = []
        for k, edge in enumerate(cell):
            node = k // 2
            if not (isinstance(edge, (tuple, list)) and len(edge) == 2):
                raise NasagentError(f"DARTS {kind} cell entry {k} must be (op, input), got {edge!r}")
            op, j = edge
            if op not in self._op_index:
                raise NasagentError(
                    f"DARTS {kind} node {node + 2} has unknown op {op!r}; ops are {', '.join(self.ops)}"
                )
            if not isinstance(j, int) or not 0 <= j < node + 2:
                raise NasagentError(f"DARTS {kind} node {node + 2} input {j!r} must be in 0..{node + 1}")
            out.append((op, j))
        for node in range(N_NODES):
            if out[2 * node][1] == out[2 * node + 1][1]:
                raise NasagentError(f"DARTS {kind} node {node + 2} takes input {out[2 * node][1]} twice; inputs must differ")
        return _canonical(tuple(out))

    def validate(self, arch) -> DartsGenotype:
        if isinstance(arch, str):
            return self.parse(arch)
        return DartsGenotype(self._check_cell(arch.normal, "normal"), self._check_cell(arch.reduce, "reduce"))

    # -- sampling / encoding -------------------------------------------------------------------------
    def _sample_cell(self, rng) -> tuple[Edge, ...]:
        out = []
        for node in range(N_NODES):
            ins = rng.choice(node + 2, size=2, replace=False)
            for j in ins:
                out.append((self.ops[int(rng.integers(len(self.ops)))], int(j)))
        return _canonical(tuple(out))

    def sample(self, rng: np.random.Generator) -> DartsGenotype:
        return DartsGenotype(self._sample_cell(rng), self._sample_cell(rng))

    def encode(self, arch: DartsGenotype) -> np.ndarray:
        """Per cell, per node, per possible input: a one-hot of the op on that edge (order-invariant)."""
        n_in = N_NODES + 1
        v = np.zeros((2, N_NODES, n_in, len(self.ops)))
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
                if j2 not in (j, other):
                    out.append(cell[:k] + ((op, j2),) + cell[k + 1 :])
        return [_canonical(c) for c in out]

    def neighbors(self, arch: DartsGenotype) -> list[DartsGenotype]:
        nb = [DartsGenotype(c, arch.reduce) for c in self._cell_neighbors(arch.normal)]
        nb += [DartsGenotype(arch.normal, c) for c in self._cell_neighbors(arch.reduce)]
        return list(dict.fromkeys(nb))

    def size(self) -> int:
        per_cell = 1
        for node in range(N_NODES):
            k = node + 2
            per_cell *= k * (k - 1) // 2 * len(self.ops) ** 2
        return per_cell**2

    # -- sequential: fill the 16 (op, input) slots, normal cell first --------------------------------
    def root(self) -> tuple:
        return ()

    def actions(self, state: tuple) -> list[Edge]:
        s = len(state)
        if s >= 2 * SLOTS:
            return []
        node = (s % SLOTS) // 2
        taken = state[-1][1] if s % 2 == 1 else None
        return [(op, j) for j in range(node + 2) if j != taken for op in self.ops]

    def step(self, state: tuple, action: Edge) -> tuple:
        if action not in self.actions(state):
            raise NasagentError(f"illegal DARTS action {action!r} at slot {len(state)}")
        return state + (tuple(action),)

    def is_terminal(self, state: tuple) -> bool:
        return len(state) == 2 * SLOTS

    def to_arch(self, state: tuple) -> DartsGenotype:
        return DartsGenotype(_canonical(state[:SLOTS]), _canonical(state[SLOTS:]))


def _parse_fields(body: str) -> dict:
    """Parse ``name=value, ...`` keyword arguments of a Genotype(...) call with literal values only."""
    tree = ast.parse(f"f({body})", mode="eval")
    call = tree.body
    if not isinstance(call, ast.Call) or call.args:
        raise ValueError("expected keyword arguments only")
    return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
