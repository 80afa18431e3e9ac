"""NASNet-style networks for AlphaX's space (``spaces/nasnet.py``): cells of blocks, each block the sum of
a left and a right branch, each branch a short chain of Table 4's layers.

Macro skeleton (NASNet-A's CIFAR layout): a 3x3 stem to 3C channels, then ``N`` normal cells, a reduction
cell, ``N`` normal cells, a reduction cell, ``N`` normal cells; channels double at each reduction; global
pooling and a linear classifier. A cell preprocesses its two inputs (the previous cell and the one before;
FactorizedReduce when the one before is twice as large) to ``C`` channels, runs its blocks in order and
concatenates the outputs of the blocks no other block reads (NASNet's "unused hidden states").

In a reduction cell the first layer of a branch that reads a cell input has stride 2 (identity becomes
FactorizedReduce); branches reading blocks are already reduced. Parameters are named
``cells.<i>.blocks.<j>.<left|right>.<k>_<layer>...``, so weight inheritance (``train.inherit_weights``) copies a
layer exactly when the same layer sits at the same place of a parent.

AlphaX's training recipe (App. 9.2) regularises with NASNet's tools, all off by default: ``auxiliary=True``
adds the auxiliary classifier after the second reduction cell (2/3 of the depth; ``forward(...,
return_aux=True)`` returns ``(logits, aux)`` in training mode), ``dropout`` is the dense dropout before the
classifier, and ``drop_path_prob`` (set by the training loop) drops whole branches per example, identity
branches excepted.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from nasagent.evaluation.networks.ops import AuxiliaryHead, FactorizedReduce, ReLUConvBN, SepConv, drop_path


def nasnet_layer(name: str, c: int, stride: int, affine: bool = True) -> nn.Module:
    """One of AlphaX Table 4's layers on ``c`` channels."""
    kind, _, size = name.rpartition("_")
    if name == "identity":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    k = int(size.split("x")[0]) if "x" in size else None
    if kind == "avg_pool":
        return nn.AvgPool2d(k, stride=stride, padding=k // 2, count_include_pad=False)
    if kind == "max_pool":
        return nn.MaxPool2d(k, stride=stride, padding=k // 2)
    if kind == "conv":
        return ReLUConvBN(c, c, k, stride, k // 2, affine=affine)
    if kind == "sep_conv":
        return SepConv(c, c, k, stride, k // 2, affine=affine)
    raise ValueError(f"unknown NASNet layer {name!r}")


class Branch(nn.Module):
    def __init__(self, layers: tuple[str, ...], c: int, stride: int, affine: bool):
        super().__init__()
        mods = [(f"{i}_{name}", nasnet_layer(name, c, stride if i == 0 else 1, affine)) for i, name in enumerate(layers)]
        if not mods and stride != 1:  # an empty branch is the identity; reduced when it reads a cell input
            mods = [("0_identity", FactorizedReduce(c, c, affine=affine))]
        self.layers = nn.Sequential(OrderedDict(mods)) if mods else nn.Identity()
        self.identity = all(isinstance(m, nn.Identity) for m in self.layers.modules() if m is not self.layers) \
            if mods else True  # path dropout spares branches that only pass their input on

    def forward(self, x, drop_prob: float = 0.0):
        y = self.layers(x)
        return drop_path(y, drop_prob) if drop_prob > 0 and not self.identity else y


class NASNetCell(nn.Module):
    def __init__(self, blocks, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, affine: bool = True):
        super().__init__()
        self.reduction = reduction
        self.inputs = [(b.in_left, b.in_right) for b in blocks]
        self.pre0 = FactorizedReduce(c_pp, c, affine=affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine=affine)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, affine=affine)
        self.blocks = nn.ModuleList()
        for b in blocks:
            sides = nn.ModuleDict()
            for side, layers, src in (("left", b.left, b.in_left), ("right", b.right, b.in_right)):
                sides[side] = Branch(tuple(layers), c, 2 if reduction and src < 2 else 1, affine)
            self.blocks.append(sides)
        read = {src for pair in self.inputs for src in pair}
        self.concat = [j for j in range(len(blocks)) if j + 2 not in read] or [len(blocks) - 1]
        self.out_channels = len(self.concat) * c

    def forward(self, s0, s1, drop_prob: float = 0.0):
        # NASNet input numbering: 0 the previous cell (s1 here), 1 the cell before it (s0)
        states = [self.pre1(s1), self.pre0(s0)]
        for sides, (in_l, in_r) in zip(self.blocks, self.inputs, strict=True):
            states.append(sides["left"](states[in_l], drop_prob) + sides["right"](states[in_r], drop_prob))
        return torch.cat([states[j + 2] for j in self.concat], dim=1)


class NASNetNetwork(nn.Module):
    """The stand-alone network of one NASNet architecture; ``C`` stem cell width, ``N`` normal cells per stage;
    ``auxiliary`` and ``dropout``: AlphaX's regularisers (module doc)."""

    def __init__(self, space, arch, num_classes: int = 10, in_channels: int = 3, C: int = 32, N: int = 2,
                 stem_multiplier: int = 3, affine: bool = True, auxiliary: bool = False, dropout: float = 0.0):
        super().__init__()
        if C < 2 or C % 2:
            raise ValueError(f"NASNet networks need an even C >= 2 (FactorizedReduce halves channels), got C={C}")
        if N < 1:
            raise ValueError(f"NASNet networks need N >= 1 normal cells per stage, got N={N}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.arch = space.validate(arch)
        c_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c = c_curr, c_curr, C
        self.cells = nn.ModuleList()
        self.aux_at, self.auxiliary_head = None, None
        reduction_prev = False
        for stage in range(3):
            kinds = (["reduce"] if stage else []) + ["normal"] * N
            for kind in kinds:
                reduction = kind == "reduce"
                if reduction:
                    c *= 2
                cell = NASNetCell(self.arch.cell(kind), c_pp, c_p, c, reduction, reduction_prev, affine)
                self.cells.append(cell)
                reduction_prev = reduction
                c_pp, c_p = c_p, cell.out_channels
                if auxiliary and stage == 2 and reduction:  # after the second reduction: 2/3 of the depth
                    self.aux_at = len(self.cells) - 1
                    self.auxiliary_head = AuxiliaryHead(c_p, num_classes)
        self.drop_path_prob = 0.0
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x, arch=None, return_aux: bool = False):
        s0 = s1 = self.stem(x)
        drop = self.drop_path_prob if self.training else 0.0
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, drop)
            if i == self.aux_at and self.training and return_aux:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.dropout(self.pool(s1).flatten(1)))
        return (logits, aux) if return_aux else logits
