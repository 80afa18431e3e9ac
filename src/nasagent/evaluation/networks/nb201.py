"""The NB201 macro skeleton: stem, three stages of N cells, residual reduction blocks between them.

One class serves the stand-alone network, the one-shot supernet and every few-shot sub-supernet. Its cells
are built on a *region*: for each of the 6 edges, the ops allowed there. A stand-alone network's region has
one op per edge; the supernet's has all five; a few-shot child fixes the op of the edges it was split on.
Parameters are named by position and op (``cells.3.edges.4.nor_conv_3x3.op.1.weight``), so weights move
between a supernet, its children and stand-alone networks by name: a layer is inherited exactly when the
same op sits on the same edge of the same cell.

``forward(x, arch)`` runs the single path ``arch`` (must lie in the region); ``forward(x, weights=w)`` runs the
DARTS mixture with ``w[e]`` the weights of edge ``e``'s region ops (in region order).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasagent.evaluation.networks.ops import ResNetBasicBlock, nb201_op
from nasagent.spaces.nb201 import EDGES, OPS

Region = tuple[tuple[str, ...], ...]


def full_region(ops: Sequence[str] = OPS) -> Region:
    return tuple(tuple(ops) for _ in EDGES)


def arch_region(arch: Sequence[str]) -> Region:
    return tuple((op,) for op in arch)


def in_region(arch: Sequence[str], region: Region) -> bool:
    return all(op in allowed for op, allowed in zip(arch, region, strict=True))


class NB201Cell(nn.Module):
    def __init__(self, region: Region, c: int, affine: bool = True):
        super().__init__()
        self.region = tuple(tuple(r) for r in region)
        self.edges = nn.ModuleList()
        for ops in self.region:
            d = nn.ModuleDict()
            for op in ops:
                m = nb201_op(op, c, affine)
                if m is not None:
                    d[op] = m
            self.edges.append(d)

    def forward(self, x, arch=None, weights=None):
        nodes = [x]
        for to in (1, 2, 3):
            total = None
            for e, (t, frm) in enumerate(EDGES):
                if t != to:
                    continue
                if weights is not None:
                    out = None
                    for k, op in enumerate(self.region[e]):
                        if op == "none":
                            continue
                        y = weights[e][k] * self.edges[e][op](nodes[frm])
                        out = y if out is None else out + y
                else:
                    op = arch[e]
                    out = None if op == "none" else self.edges[e][op](nodes[frm])
                if out is not None:
                    total = out if total is None else total + out
            nodes.append(total if total is not None else torch.zeros_like(x))
        return nodes[3]


class NB201Network(nn.Module):
    """``C`` channels in the first stage (doubling twice), ``N`` cells per stage (NB201 uses C=16, N=5)."""

    def __init__(self, region: Region, C: int = 16, N: int = 5, num_classes: int = 10, in_channels: int = 3, affine: bool = True):
        super().__init__()
        self.region = tuple(tuple(r) for r in region)
        if len(self.region) != len(EDGES) or any(not r for r in self.region):
            raise ValueError("an NB201 region needs a non-empty op list for each of the 6 edges")
        self.arch = tuple(r[0] for r in self.region) if all(len(r) == 1 for r in self.region) else None
        self.config = {"C": C, "N": N, "num_classes": num_classes, "in_channels": in_channels, "affine": affine}
        self.stem = nn.Sequential(nn.Conv2d(in_channels, C, 3, padding=1, bias=False), nn.BatchNorm2d(C))
        cells = []
        c = C
        for stage in range(3):
            if stage > 0:
                cells.append(ResNetBasicBlock(c, 2 * c, 2, affine=affine))
                c *= 2
            cells += [NB201Cell(self.region, c, affine) for _ in range(N)]
        self.cells = nn.ModuleList(cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x, arch=None, weights=None):
        if weights is None:
            arch = self.arch if arch is None else tuple(arch)
            if arch is None:
                raise ValueError("this network is a supernet: pass the architecture (or mixture weights) to forward")
        x = self.stem(x)
        for cell in self.cells:
            x = cell(x, arch, weights) if isinstance(cell, NB201Cell) else cell(x)
        x = self.pool(self.lastact(x)).flatten(1)
        return self.classifier(x)
