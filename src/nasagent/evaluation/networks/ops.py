"""Operation modules of the NB201 and DARTS cells (the published definitions, written for this package).

Every op maps (N, C_in, H, W) to (N, C_out, H/stride, W/stride). ``affine`` is the BatchNorm flag: stand-alone
networks learn BN scale and shift; supernets use ``affine=False`` as the few-shot authors' NB201 code does.
"""

from __future__ import annotations

import torch
from torch import nn


class ReLUConvBN(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation=1, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class SepConv(nn.Module):
    """DARTS separable conv: (ReLU, depthwise k x k, pointwise 1 x 1, BN) twice, the first with the stride."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_in, 1, bias=False),
            nn.BatchNorm2d(c_in, affine=affine),
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=1, padding=padding, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class DilConv(nn.Module):
    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )

    def forward(self, x):
        return self.op(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels: two offset stride-2 1x1 convs, concatenated."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even number of output channels, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # same ceil(H/2) size for odd H too
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Zero(nn.Module):
    def __init__(self, stride=1):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Pool(nn.Module):
    """3x3 pooling, stride 1 or 2, with a BN after it when the op sits in a supernet (DARTS' search cells)."""

    def __init__(self, kind, stride, bn_channels=None, affine=False):
        super().__init__()
        if kind == "avg":
            self.pool = nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
        else:
            self.pool = nn.MaxPool2d(3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(bn_channels, affine=affine) if bn_channels else None

    def forward(self, x):
        x = self.pool(x)
        return self.bn(x) if self.bn is not None else x


class ResNetBasicBlock(nn.Module):
    """NB201's reduction block between stages: two 3x3 ReLU-conv-BNs (the first with stride 2) plus a
    pooled 1x1 shortcut (pooling rounds up, so odd image sizes work; even sizes are unchanged)."""

    def __init__(self, c_in, c_out, stride=2, affine=True):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride, 1, affine=affine)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=affine)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x):
        return self.conv_b(self.conv_a(x)) + self.downsample(x)


def nb201_op(name: str, c: int, affine: bool) -> nn.Module | None:
    """The NB201 op ``name`` on ``c`` channels (stride 1); ``None`` for ``none`` (computed as zeros)."""
    if name == "none":
        return None
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, 1, 0, affine=affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, 1, 1, affine=affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {name!r}")


def darts_op(name: str, c: int, stride: int, affine: bool, search: bool = False) -> nn.Module | None:
    """The DARTS op ``name`` on ``c`` channels; pooling gets a BN inside supernets (``search``) as in DARTS."""
    if name == "none":
        return None
    if name == "max_pool_3x3":
        return Pool("max", stride, c if search else None, affine=False)
    if name == "avg_pool_3x3":
        return Pool("avg", stride, c if search else None, affine=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine=affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine=affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine=affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine=affine)
    raise ValueError(f"unknown DARTS op {name!r}")


def drop_path(x, prob: float):
    """Zero whole examples of ``x`` with probability ``prob`` and rescale the rest (NASNet's and DARTS' path
    dropout: a cell's branch is switched off for that example)."""
    keep = 1.0 - prob
    mask = torch.empty(x.size(0), 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class AuxiliaryHead(nn.Module):
    """The auxiliary tower of NASNet and DARTS: ReLU, pool to 2x2, 1x1 conv to 128, BN, ReLU, 2x2 conv to 768,
    BN, ReLU, linear. The originals pool an 8x8 map with a fixed 5x5/3 window; an adaptive pool gives 2x2 from
    any map size."""

    def __init__(self, c_in: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(2),
            nn.Conv2d(c_in, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))
