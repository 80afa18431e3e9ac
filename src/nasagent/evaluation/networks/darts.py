"""The DARTS network: a stem, then ``layers`` cells with reduction cells at 1/3 and 2/3 of the depth.

Each cell takes the outputs of the two previous cells, has N intermediate nodes (DARTS: 4; read off the
region, so a ``DartsSpace(n_nodes=...)`` genotype builds too) and concatenates them. As in
``nb201.py``, a cell is built on a *region*: for each compound edge (node, input) the ops allowed there. A
genotype's region holds its 8 chosen edges with one op each; the supernet's holds all 14 edges with every op.
Parameters are named ``cells.<i>.edges.<node>_<input>.<op>...`` so weights move by name between supernet,
sub-supernets and stand-alone networks.

``forward(x, arch)`` runs a genotype (single path); ``forward(x, weights={"normal": w, "reduce": w})`` runs the
DARTS mixture, ``w[k]`` being the weights of edge ``EDGE_LIST[k]`` over ``ALL_OPS``.

The evaluation recipe of DARTS (and PARSEC, which reuses it) has three regularisers, all off by default:

- ``auxiliary=True``: an auxiliary classifier on the output of the cell at 2/3 of the depth (the second
  reduction). ``forward(..., return_aux=True)`` returns ``(logits, aux_logits)`` in training mode (``aux_logits``
  is ``None`` in eval mode), so every other caller keeps getting one tensor. DARTS pools the 8x8 CIFAR map
  with a fixed 5x5/3 window to 2x2; here an adaptive pool gives 2x2 from any map size (16x16 digits give 4x4).
- ``drop_path_prob`` (an attribute the training loop raises over the epochs): in training mode each op output
  of a genotype's cell, identities excepted, is zeroed per example with that probability and rescaled.
- ``stem="imagenet"``: DARTS' ImageNet network, three stride-2 convolutions (224 -> 28) before the first cell;
  ``"cifar"`` (default) is one stride-1 convolution.
"""

from __future__ import annotations

import torch
from torch import nn

from nasagent.evaluation.networks.ops import AuxiliaryHead, FactorizedReduce, ReLUConvBN, Zero, darts_op, drop_path
from nasagent.spaces.darts import ALL_OPS, CELL_TYPES, N_NODES, DartsGenotype


def edge_list(n_nodes: int = N_NODES) -> tuple:
    """The compound edges of a cell in DARTS' order: node 0 (inputs 0, 1), node 1 (0, 1, 2), ..."""
    return tuple((node, j) for node in range(n_nodes) for j in range(node + 2))


#: the 14 compound edges of DARTS' 4-node cell
EDGE_LIST = edge_list(N_NODES)
EDGE_INDEX = {e: k for k, e in enumerate(EDGE_LIST)}

CellRegion = dict  # {(node, input): tuple of op names}

#: the stems: CIFAR-style (one stride-1 conv) and DARTS' ImageNet one (three stride-2 convs, 224 -> 28)
STEMS = ("cifar", "imagenet")


def full_cell_region(ops=ALL_OPS, n_nodes: int = N_NODES) -> CellRegion:
    return {e: tuple(ops) for e in edge_list(n_nodes)}


def genotype_region(arch: DartsGenotype) -> dict[str, CellRegion]:
    out = {}
    for kind in CELL_TYPES:
        region: CellRegion = {}
        for k, (op, j) in enumerate(arch.cell(kind)):  # a node taking one input twice (lanas-cell) keeps both ops
            ops = region.get((k // 2, j), ())
            region[(k // 2, j)] = ops if op in ops else (*ops, op)
        out[kind] = region
    return out


def genotype_in_region(arch: DartsGenotype, regions: dict[str, CellRegion]) -> bool:
    for kind in CELL_TYPES:
        for k, (op, j) in enumerate(arch.cell(kind)):
            if op not in regions[kind].get((k // 2, j), ()):
                return False
    return True


class DartsCell(nn.Module):
    def __init__(self, region: CellRegion, c_pp, c_p, c, reduction, reduction_prev, affine=True, search=False):
        super().__init__()
        self.reduction = reduction
        self.region = {e: tuple(ops) for e, ops in region.items()}
        self.n_nodes = 1 + max(node for node, _ in self.region)  # intermediate nodes: their outputs are concatenated
        self.pre0 = FactorizedReduce(c_pp, c, affine=affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=affine)
        self.edges = nn.ModuleDict()
        for (node, j), ops in sorted(self.region.items()):
            stride = 2 if reduction and j < 2 else 1
            d = nn.ModuleDict()
            for op in ops:
                m = darts_op(op, c, stride, affine, search)
                if m is not None:
                    d[op] = m
            self.edges[f"{node}_{j}"] = d
        self._zero = {1: Zero(1), 2: Zero(2)}

    def _edge(self, node, j, op, x):
        if op == "none":
            return self._zero[2 if self.reduction and j < 2 else 1](x)
        return self.edges[f"{node}_{j}"][op](x)

    def forward(self, s0, s1, cell=None, weights=None, drop_prob: float = 0.0):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(self.n_nodes):
            total = None
            if weights is not None:
                for j in range(node + 2):
                    ops = self.region.get((node, j), ())
                    w = weights[EDGE_INDEX[(node, j)]]
                    for op in ops:
                        if op == "none":
                            continue
                        y = w[ALL_OPS.index(op)] * self.edges[f"{node}_{j}"][op](states[j])
                        total = y if total is None else total + y
            else:
                for op, j in cell[2 * node : 2 * node + 2]:
                    y = self._edge(node, j, op, states[j])
                    if drop_prob > 0 and op != "none" and not isinstance(self.edges[f"{node}_{j}"][op], nn.Identity):
                        y = drop_path(y, drop_prob)
                    total = y if total is None else total + y
            if total is None:
                total = self._zero[2 if self.reduction else 1](states[1])
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """``C`` initial channels, ``layers`` cells (DARTS evaluates C=36, 20 layers; searches C=16, 8 layers; its
    ImageNet network is C=48, 14 layers, ``stem="imagenet"``).

    ``search=True`` adds DARTS' BN after pooling ops (supernets); ``regions`` maps "normal"/"reduce" to a region.
    ``auxiliary`` adds the auxiliary head (see the module doc); ``drop_path_prob`` is set by the training loop.
    """

    def __init__(self, regions: dict[str, CellRegion], C: int = 16, layers: int = 8, num_classes: int = 10,
                 in_channels: int = 3, stem_multiplier: int = 3, affine: bool = True, search: bool = False,
                 auxiliary: bool = False, stem: str = "cifar"):
        super().__init__()
        if layers < 1:
            raise ValueError(f"a DARTS network needs at least one cell, got layers={layers}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; stems: {', '.join(STEMS)}")
        self.regions = {k: {e: tuple(o) for e, o in regions[k].items()} for k in CELL_TYPES}
        self.config = {"C": C, "layers": layers, "num_classes": num_classes, "in_channels": in_channels,
                       "stem_multiplier": stem_multiplier, "affine": affine, "search": search, "auxiliary": bool(auxiliary),
                       "stem": stem}
        self.drop_path_prob = 0.0
        if stem == "imagenet":  # three stride-2 convolutions; the first cell already sees a reduced input
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, C // 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C // 2), nn.ReLU(inplace=False),
                nn.Conv2d(C // 2, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
            self.stem1 = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(C, C, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(C))
            c_pp, c_p, c_curr, reduction_prev = C, C, C, True
        else:
            c_stem = stem_multiplier * C
            self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
            c_pp, c_p, c_curr, reduction_prev = c_stem, c_stem, C, False
        self.cells = nn.ModuleList()
        self.reduction_at = sorted({layers // 3, 2 * layers // 3}) if layers >= 2 else []
        self.aux_at = 2 * layers // 3 if auxiliary else None
        self.auxiliary_head = None
        for i in range(layers):
            reduction = i in self.reduction_at
            if reduction:
                c_curr *= 2
            kind = "reduce" if reduction else "normal"
            self.cells.append(DartsCell(self.regions[kind], c_pp, c_p, c_curr, reduction, reduction_prev, affine, search))
            reduction_prev = reduction
            c_pp, c_p = c_p, self.cells[-1].n_nodes * c_curr
            if i == self.aux_at:
                self.auxiliary_head = AuxiliaryHead(c_p, num_classes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x, arch: DartsGenotype | None = None, weights: dict | None = None, return_aux: bool = False):
        if weights is None and arch is None:
            raise ValueError("pass the genotype (or mixture weights) to forward")
        s0 = self.stem(x)
        s1 = self.stem1(s0) if self.config["stem"] == "imagenet" else s0
        drop = self.drop_path_prob if self.training else 0.0
        aux = None
        for i, cell in enumerate(self.cells):
            kind = "reduce" if cell.reduction else "normal"
            if weights is not None:
                s0, s1 = s1, cell(s0, s1, weights=weights[kind])
            else:
                s0, s1 = s1, cell(s0, s1, cell=arch.cell(kind), drop_prob=drop)
            if i == self.aux_at and self.training and return_aux:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.pool(s1).flatten(1))
        return (logits, aux) if return_aux else logits


class DartsGenotypeNetwork(DartsNetwork):
    """A stand-alone network of one genotype (its forward needs no architecture argument)."""

    def __init__(self, arch: DartsGenotype, **kw):
        super().__init__(genotype_region(arch), **kw)
        self.arch = arch

    def forward(self, x, arch=None, weights=None, return_aux: bool = False):
        return super().forward(x, arch or self.arch, weights, return_aux)
