"""NASNet-style cells as AlphaX defines them (AlphaX §3.1, §3.3, App. 7, Table 4).

An architecture is a normal cell (keeps the spatial size) and a reduction cell (halves it). Each cell has
1..5 *blocks*; a block has a left and a right branch, each a short chain of layers from the 12 of Table 4,
fed by one input: ``0`` the previous cell's output, ``1`` the cell before that, ``i + 2`` the output of
block ``i`` (0-based) of the same cell.

AlphaX's constraints (App. 7): a branch has at most 1 layer (``max_layers``; the 60-digit encoding leaves
room for 2), a cell has at most 5 blocks, "the depth of blocks is limited to 2" (read here as: a block may
take its inputs from the cell inputs or from blocks that take only cell inputs; ``max_depth``).

Encoding (AlphaX §3.3): 6 digits per block ``[L1, L2, R1, R2, in_L, in_R]`` with layer codes 1..12
(Table 4, 0 = absent); absent blocks are zeros; 5 blocks x 6 digits per cell, normal cell first: 60 digits.

Sequential actions (AlphaX §3.1): create a block in a cell with a pair of inputs; add a layer to the left
or right branch of a block; terminate, which is legal once both cells have a block and every branch has a
layer. Actions that would break a constraint are not offered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

#: Table 4 of the AlphaX paper: the layer with code c is OPS[c - 1]
OPS = (
    "avg_pool_3x3", "avg_pool_5x5", "avg_pool_7x7",
    "max_pool_3x3", "max_pool_5x5", "max_pool_7x7",
    "conv_3x3", "conv_5x5", "identity",
    "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7",
)  # fmt: skip
CELLS = ("normal", "reduce")
MAX_BLOCKS = 5
DIGITS_PER_BLOCK = 6


class Block(NamedTuple):
    left: tuple[str, ...]  # layers of the left branch, applied in order
    right: tuple[str, ...]
    in_left: int  # 0 previous cell, 1 the one before, i + 2 block i of this cell
    in_right: int


@dataclass(frozen=True)
class NASNetArch:
    normal: tuple[Block, ...]
    reduce: tuple[Block, ...]

    def cell(self, kind: str) -> tuple[Block, ...]:
        if kind not in CELLS:
            raise NasagentError(f"unknown cell {kind!r}; cells are {', '.join(CELLS)}")
        return getattr(self, kind)


class NASNetSpace(Space):
    name = "nasnet"
    ops = OPS

    def __init__(self, max_blocks: int = MAX_BLOCKS, max_layers: int = 1, max_depth: int = 2):
        if not 1 <= max_blocks <= MAX_BLOCKS:
            raise NasagentError(f"nasnet max_blocks must be in 1..{MAX_BLOCKS} (the encoding has 5 block slots), got {max_blocks}")
        if max_layers not in (1, 2):
            raise NasagentError(f"nasnet max_layers must be 1 or 2 (the encoding has 2 layer slots), got {max_layers}")
        if max_depth < 1:
            raise NasagentError(f"nasnet max_depth must be >= 1, got {max_depth}")
        self.max_blocks = max_blocks
        self.max_layers = max_layers
        self.max_depth = max_depth

    # -- structure rules ---------------------------------------------------------------------------
    @staticmethod
    def depths(blocks) -> list[int]:
        """Depth of each block: 1 + the deepest block it reads (cell inputs have depth 0)."""
        out: list[int] = []
        for b in blocks:
            out.append(1 + max(0 if i < 2 else out[i - 2] for i in (b.in_left, b.in_right)))
        return out

    def input_choices(self, blocks) -> list[int]:
        """Inputs a new block may read without exceeding ``max_depth``."""
        d = self.depths(blocks)
        return [0, 1] + [j + 2 for j in range(len(blocks)) if d[j] + 1 <= self.max_depth]

    def _check_cell(self, kind: str, blocks, complete: bool = True) -> None:
        if not 1 <= len(blocks) <= self.max_blocks:
            raise NasagentError(f"NASNet {kind} cell needs 1..{self.max_blocks} blocks, got {len(blocks)}")
        for j, b in enumerate(blocks):
            for side, layers in (("left", b.left), ("right", b.right)):
                if not (1 if complete else 0) <= len(layers) <= self.max_layers:
                    raise NasagentError(
                        f"NASNet {kind} block {j} {side} branch has {len(layers)} layers; allowed 1..{self.max_layers}"
                    )
                bad = [o for o in layers if o not in OPS]
                if bad:
                    raise NasagentError(f"unknown NASNet layer {bad[0]!r}; layers are {', '.join(OPS)}")
            for inp in (b.in_left, b.in_right):
                if not 0 <= inp < j + 2:
                    raise NasagentError(f"NASNet {kind} block {j} reads input {inp}; allowed 0, 1 or 2..{j + 1} (earlier blocks)")
        if max(self.depths(blocks)) > self.max_depth:
            raise NasagentError(f"NASNet {kind} cell has blocks deeper than {self.max_depth} (blocks reading blocks)")

    def make(self, normal, reduce) -> NASNetArch:
        cells = []
        for kind, blocks in (("normal", normal), ("reduce", reduce)):
            bl = tuple(Block(tuple(b[0]), tuple(b[1]), int(b[2]), int(b[3])) for b in blocks)
            self._check_cell(kind, bl)
            cells.append(bl)
        return NASNetArch(*cells)

    def validate(self, arch) -> NASNetArch:
        if isinstance(arch, str):
            return self.parse(arch)
        if isinstance(arch, NASNetArch):
            return self.make(arch.normal, arch.reduce)
        raise NasagentError(f"not a NASNet architecture: {arch!r}")

    # -- text: "normal: sep_conv_3x3@0/identity@1, conv_5x5@1/max_pool_3x3@2 | reduce: ..." -------
    def format(self, arch: NASNetArch) -> str:
        def block(b: Block) -> str:
            return f"{'>'.join(b.left)}@{b.in_left}/{'>'.join(b.right)}@{b.in_right}"

        return " | ".join(f"{kind}: " + ", ".join(block(b) for b in arch.cell(kind)) for kind in CELLS)

    def parse(self, text: str) -> NASNetArch:
        hint = "expected 'normal: L@in/R@in, ... | reduce: L@in/R@in, ...' (layers joined by '>')"
        parts = str(text).strip().split("|")
        if len(parts) != 2:
            raise NasagentError(f"malformed NASNet string {text!r}: {hint}")
        cells = {}
        for part in parts:
            kind, sep, body = part.partition(":")
            kind = kind.strip()
            if not sep or kind not in CELLS:
                raise NasagentError(f"malformed NASNet string {text!r}: {hint}")
            blocks = []
            for item in body.split(","):
                left, sep2, right = item.strip().partition("/")
                try:
                    (lops, lin), (rops, rin) = (x.rsplit("@", 1) for x in (left, right))
                    blocks.append((tuple(lops.split(">")) if lops else (), tuple(rops.split(">")) if rops else (), int(lin), int(rin)))
                except ValueError:
                    raise NasagentError(f"malformed NASNet block {item.strip()!r} in {text!r}: {hint}") from None
            cells[kind] = blocks
        if set(cells) != set(CELLS):
            raise NasagentError(f"malformed NASNet string {text!r}: {hint}")
        return self.make(cells["normal"], cells["reduce"])

    # -- encodings ----------------------------------------------------------------------------------
    def encode_digits(self, arch) -> np.ndarray:
        """AlphaX's 60 digits (normal cell, then reduction cell). Works on partial states too."""
        blocks_by_cell = (arch.normal, arch.reduce) if isinstance(arch, NASNetArch) else arch[:2]
        v = np.zeros(2 * MAX_BLOCKS * DIGITS_PER_BLOCK, dtype=np.int64)
        for c, blocks in enumerate(blocks_by_cell):
            for j, b in enumerate(blocks):
                base = (c * MAX_BLOCKS + j) * DIGITS_PER_BLOCK
                for slot, op in enumerate(b.left):
                    v[base + slot] = OPS.index(op) + 1
                for slot, op in enumerate(b.right):
                    v[base + 2 + slot] = OPS.index(op) + 1
                v[base + 4], v[base + 5] = b.in_left, b.in_right
        return v

    def encode(self, arch: NASNetArch) -> np.ndarray:
        return self.encode_digits(arch).astype(np.float64)

    def edit_distance(self, a: NASNetArch, b: NASNetArch) -> int:
        """Number of differing digits of the 60-digit encodings (each digit is one choice)."""
        return int((self.encode_digits(a) != self.encode_digits(b)).sum())

    # -- sampling and editing -----------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> NASNetArch:
        """Uniform block count, then uniform inputs (within the depth limit), layer counts and layers."""
        cells = []
        for _ in CELLS:
            blocks: list[Block] = []
            for _ in range(int(rng.integers(1, self.max_blocks + 1))):
                choices = self.input_choices(blocks)
                ins = [choices[int(rng.integers(len(choices)))] for _ in range(2)]
                branches = [
                    tuple(OPS[int(i)] for i in rng.integers(len(OPS), size=int(rng.integers(1, self.max_layers + 1))))
                    for _ in range(2)
                ]
                blocks.append(Block(branches[0], branches[1], ins[0], ins[1]))
            cells.append(tuple(blocks))
        return NASNetArch(*cells)

    def neighbors(self, arch: NASNetArch) -> list[NASNetArch]:
        """One choice changed: a layer's op, a block's input, or the last block of a cell removed."""
        out, seen = [], {self.key(arch)}

        def add(normal, reduce):
            try:
                cand = self.make(normal, reduce)
            except NasagentError:
                return
            k = self.key(cand)
            if k not in seen:
                seen.add(k)
                out.append(cand)

        for c, kind in enumerate(CELLS):
            blocks = list(arch.cell(kind))

            def put(new_blocks):
                cells = [list(arch.normal), list(arch.reduce)]
                cells[c] = new_blocks
                add(*cells)

            for j, b in enumerate(blocks):
                for side in ("left", "right"):
                    layers = getattr(b, side)
                    for slot in range(len(layers)):
                        for op in OPS:
                            if op != layers[slot]:
                                new = layers[:slot] + (op,) + layers[slot + 1 :]
                                put(blocks[:j] + [b._replace(**{side: new})] + blocks[j + 1 :])
                for field in ("in_left", "in_right"):
                    for inp in range(j + 2):
                        if inp != getattr(b, field):
                            put(blocks[:j] + [b._replace(**{field: inp})] + blocks[j + 1 :])
            if len(blocks) > 1:
                put(blocks[:-1])
        return out

    # -- sequential construction ------------------------------------------------------------------------
    # A state is (normal blocks, reduce blocks, done); blocks may have empty branches until terminal.
    def root(self):
        return ((), (), False)

    def _complete(self, state) -> bool:
        return all(blocks and all(b.left and b.right for b in blocks) for blocks in state[:2])

    def actions(self, state) -> list:
        if state[2]:
            return []
        acts: list = []
        for c, kind in enumerate(CELLS):
            blocks = state[c]
            if len(blocks) < self.max_blocks:
                ins = self.input_choices(blocks)
                acts += [("block", kind, a, b) for i, a in enumerate(ins) for b in ins[i:]]
            for j, b in enumerate(blocks):
                for side in ("left", "right"):
                    if len(getattr(b, side)) < self.max_layers:
                        acts += [("layer", kind, j, side, op) for op in OPS]
        if self._complete(state):
            acts.append(("term",))
        return acts

    def step(self, state, action):
        if state[2]:
            raise NasagentError("no action is legal in a terminal NASNet state")
        if action not in self.actions(state):
            raise NasagentError(f"illegal NASNet action {action!r} in this state")
        cells = [list(state[0]), list(state[1])]
        if action[0] == "term":
            return (state[0], state[1], True)
        c = CELLS.index(action[1])
        if action[0] == "block":
            cells[c].append(Block((), (), action[2], action[3]))
        else:
            _, _, j, side, op = action
            b = cells[c][j]
            cells[c][j] = b._replace(**{side: getattr(b, side) + (op,)})
        return (tuple(cells[0]), tuple(cells[1]), False)

    def is_terminal(self, state) -> bool:
        return bool(state[2])

    def to_arch(self, state) -> NASNetArch:
        return self.make(state[0], state[1])
