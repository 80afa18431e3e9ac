"""Networks of the MobileNet-like spaces: the stand-alone model of one architecture, and TuNAS' one-shot model.

``MobileNetNetwork`` has the real widths of one architecture and ordinary (stateful) batch norm.

``TunasSupernet`` holds every layer once, at its largest width, and simulates smaller widths by *masking*:
only the first N channels are kept, the rest are zeroed (seed §2.3). Operations are *collapsed*: the 1x1
expansion/projection and the SE weights are shared by every kernel size; only the depthwise conv and its
batch norm exist once per kernel. Its batch norm uses batch statistics (stateless), also when scoring.

The supernet takes a *selection*: one choice index per decision, or ``ALL`` (-1) on an ``op`` decision, which
averages the outputs of every choice (op warmup; for a skippable layer {keep, zero} that gives 0.5 x layer).
Filter warmup needs no special value: it selects the largest filter choice.

``TunasSupernet.extract(arch)`` returns a stand-alone network whose weights are the supernet's, sliced; in
training mode both compute the same function (the equivalence test of seed §5 item 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasagent.spaces.mobilenet import MobileNetSpace, make_divisible

ALL = -1
BN_EPS = 1e-3  # TuNAS code


def activation(name: str, x):
    if name == "relu":
        return F.relu(x)
    if name == "swish":
        return F.silu(x)
    raise ValueError(name)


def se_hidden(mid: int, divisor: int) -> int:
    return make_divisible(mid * 0.25, divisor)


# -- stand-alone network ------------------------------------------------------------------------------------------
class _Stem(nn.Module):
    def __init__(self, cin, out, k, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, out, k, 2, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(out, eps=BN_EPS)
        self.act = act

    def forward(self, x):
        return activation(self.act, self.bn(self.conv(x)))


class _SepConv(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.dw = nn.Conv2d(r.cin, r.cin, r.kernel, r.stride, r.kernel // 2, groups=r.cin, bias=False)
        self.bn1 = nn.BatchNorm2d(r.cin, eps=BN_EPS)
        self.pw = nn.Conv2d(r.cin, r.out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(r.out, eps=BN_EPS)
        self.r = r

    def forward(self, x):
        y = self.bn2(self.pw(activation(self.r.act, self.bn1(self.dw(x)))))
        return x + y if self.r.residual else y


class _IB(nn.Module):
    def __init__(self, r, divisor):
        super().__init__()
        self.expand = nn.Conv2d(r.cin, r.mid, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(r.mid, eps=BN_EPS)
        self.dw = nn.Conv2d(r.mid, r.mid, r.kernel, r.stride, r.kernel // 2, groups=r.mid, bias=False)
        self.bn1 = nn.BatchNorm2d(r.mid, eps=BN_EPS)
        if r.se:
            h = se_hidden(r.mid, divisor)
            self.se_reduce = nn.Conv2d(r.mid, h, 1)
            self.se_expand = nn.Conv2d(h, r.mid, 1)
        self.project = nn.Conv2d(r.mid, r.out, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(r.out, eps=BN_EPS)
        self.r = r

    def forward(self, x):
        a = self.r.act
        h = activation(a, self.bn0(self.expand(x)))
        h = activation(a, self.bn1(self.dw(h)))
        if self.r.se:
            s = torch.sigmoid(self.se_expand(F.relu(self.se_reduce(h.mean((2, 3), keepdim=True)))))
            h = h * s
        y = self.bn2(self.project(h))
        return x + y if self.r.residual else y


class MobileNetNetwork(nn.Module):
    """The stand-alone network of one architecture of a ``MobileNetSpace``."""

    def __init__(self, space: MobileNetSpace, arch, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.0):
        super().__init__()
        self.space, self.arch = space, tuple(arch)
        rs = space.resolve(arch, in_channels)
        body = []
        for r in rs:
            if r.kind == "stem":
                self.stem = _Stem(r.cin, r.out, r.kernel, r.act)
            elif r.kind == "head":
                self.head = nn.Conv2d(r.cin, r.out, 1, bias=False)
                self.head_bn = nn.BatchNorm2d(r.out, eps=BN_EPS)
                self.head_act = r.act
                width = r.out
                if space.head_extra:
                    self.head_extra = nn.Conv2d(r.out, space.head_extra, 1)
                    width = space.head_extra
                self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
                self.fc = nn.Linear(width, num_classes)
            elif not r.active:
                body.append(nn.Identity())
            elif r.kind == "sepconv":
                body.append(_SepConv(r))
            else:
                body.append(_IB(r, space.divisor))
        self.body = nn.ModuleList(body)
        _init(self)

    def forward(self, x):
        x = self.stem(x)
        for layer in self.body:
            x = layer(x)
        x = activation(self.head_act, self.head_bn(self.head(x))).mean((2, 3), keepdim=True)
        if hasattr(self, "head_extra"):
            x = activation(self.head_act, self.head_extra(x))
        return self.fc(self.dropout(x.flatten(1)))


def _init(model: nn.Module) -> None:
    """He-normal convs, N(0, 0.01) classifier (TuNAS code)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


# -- the one-shot supernet ---------------------------------------------------------------------------------------------
def _mask(x, n: int):
    """Zero all but the first ``n`` channels (masks stop gradients to the rest)."""
    if n >= x.shape[1]:
        return x
    m = torch.zeros(x.shape[1], device=x.device, dtype=x.dtype)
    m[:n] = 1
    return x * m.view(1, -1, 1, 1)


def _bn(x, bn: nn.BatchNorm2d):
    return F.batch_norm(x, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)


class TunasSupernet(nn.Module):
    """Every layer at its largest width, masked to the widths of the selected architecture."""

    def __init__(self, space: MobileNetSpace, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.space = space
        self.in_channels = int(in_channels)
        dec = space.decisions

        def choices(field):
            return (field[1],) if isinstance(field, tuple) else dec[field].choices

        self.max_widths = []  # (cin, mid, out) per layer
        cin, layers = self.in_channels, []
        for layer in space.layers:
            out = max(choices(layer.out))
            kernels = choices(layer.kernel) if layer.kind in ("stem", "sepconv", "ib") else (1,)
            mid = make_divisible(cin * max(choices(layer.expansion)), space.divisor) if layer.kind == "ib" else cin
            m = nn.Module()
            if layer.kind == "stem":
                m.conv = nn.ModuleList(nn.Conv2d(cin, out, k, 2, k // 2, bias=False) for k in kernels)
                m.bn = nn.ModuleList(nn.BatchNorm2d(out, eps=BN_EPS) for _ in kernels)
            elif layer.kind == "sepconv":
                m.dw = nn.ModuleList(nn.Conv2d(cin, cin, k, 1, k // 2, groups=cin, bias=False) for k in kernels)
                m.bn1 = nn.ModuleList(nn.BatchNorm2d(cin, eps=BN_EPS) for _ in kernels)
                m.pw = nn.Conv2d(cin, out, 1, bias=False)
                m.bn2 = nn.BatchNorm2d(out, eps=BN_EPS)
            elif layer.kind == "ib":
                m.expand = nn.Conv2d(cin, mid, 1, bias=False)
                m.bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
                m.dw = nn.ModuleList(nn.Conv2d(mid, mid, k, layer.stride, k // 2, groups=mid, bias=False) for k in kernels)
                m.bn1 = nn.ModuleList(nn.BatchNorm2d(mid, eps=BN_EPS) for _ in kernels)
                if True in choices(layer.se):
                    h = se_hidden(mid, space.divisor)
                    m.se_reduce = nn.Conv2d(mid, h, 1)
                    m.se_expand = nn.Conv2d(h, mid, 1)
                m.project = nn.Conv2d(mid, out, 1, bias=False)
                m.bn2 = nn.BatchNorm2d(out, eps=BN_EPS)
            else:
                m.conv = nn.Conv2d(cin, out, 1, bias=False)
                m.bn = nn.BatchNorm2d(out, eps=BN_EPS)
                width = out
                if space.head_extra:
                    m.extra = nn.Conv2d(out, space.head_extra, 1)
                    width = space.head_extra
                m.fc = nn.Linear(width, num_classes)
            layers.append(m)
            self.max_widths.append((cin, mid, out))
            cin = max(cin, out) if layer.skip is not None else out
        self.layers = nn.ModuleList(layers)
        _init(self)

    # -- forward ---------------------------------------------------------------------------------------------
    def _val(self, sel, field):
        if isinstance(field, tuple):
            return field[1]
        return self.space.decisions[field].choices[sel[field]]

    @staticmethod
    def _over(sel, field, n):
        """Choice indices to run for ``field``: one, or all of them under op warmup."""
        if isinstance(field, tuple):
            return [None]
        return list(range(n)) if sel[field] == ALL else [sel[field]]

    def forward(self, x, sel):
        sp = self.space
        cin = self.in_channels
        for layer, m in zip(sp.layers, self.layers, strict=True):
            out = int(self._val(sel, layer.out))
            a = layer.act
            if layer.kind == "stem":
                ks = self._over(sel, layer.kernel, len(m.conv))
                x = sum(activation(a, _bn(m.conv[j or 0](x), m.bn[j or 0])) for j in ks) / len(ks)
                x = _mask(x, out)
                cin = out
                continue
            if layer.kind == "head":
                h = activation(a, _bn(m.conv(x), m.bn))
                h = _mask(h, out).mean((2, 3), keepdim=True)
                if hasattr(m, "extra"):
                    h = activation(a, m.extra(h))
                return m.fc(h.flatten(1))
            skip_w = 0.0  # weight of the "zero" choice
            if layer.skip is not None:
                skip_w = 0.5 if sel[layer.skip] == ALL else float(sel[layer.skip] == 1)
            if skip_w == 1.0:
                continue
            residual = layer.stride == 1 and cin == out
            ks = self._over(sel, layer.kernel, len(m.dw))
            if layer.kind == "sepconv":
                h = sum(_mask(activation(a, _bn(m.dw[j or 0](x), m.bn1[j or 0])), cin) for j in ks) / len(ks)
                y = _mask(_bn(m.pw(h), m.bn2), out)
            else:
                mid = make_divisible(cin * float(self._val(sel, layer.expansion)), sp.divisor)
                h = _mask(activation(a, _bn(m.expand(x), m.bn0)), mid)
                h = sum(_mask(activation(a, _bn(m.dw[j or 0](h), m.bn1[j or 0])), mid) for j in ks) / len(ks)
                se_modes = [0.0, 1.0] if (not isinstance(layer.se, tuple) and sel[layer.se] == ALL) else [float(bool(self._val(sel, layer.se)))]
                if 1.0 in se_modes:
                    hid = se_hidden(mid, sp.divisor)
                    s = _mask(F.relu(m.se_reduce(h.mean((2, 3), keepdim=True))), hid)
                    gated = h * torch.sigmoid(m.se_expand(s))
                    h = gated if se_modes == [1.0] else 0.5 * (h + gated)
                y = _mask(_bn(m.project(h), m.bn2), out)
            if residual:
                x = x + (1.0 - skip_w) * y
            elif skip_w > 0 and x.shape == y.shape:  # op warmup over {layer, zero = identity}
                x = (1.0 - skip_w) * y + skip_w * x
            else:
                x = y
            cin = out
        raise AssertionError("space without a head")

    # -- stand-alone export --------------------------------------------------------------------------------------
    def extract(self, arch, num_classes: int | None = None, dropout: float = 0.0) -> MobileNetNetwork:
        """The stand-alone network of ``arch`` with this supernet's weights sliced into it."""
        sp = self.space
        fc = self.layers[-1].fc
        net = MobileNetNetwork(sp, arch, num_classes or fc.out_features, self.in_channels, dropout)
        rs = sp.resolve(arch, self.in_channels)
        state = {}

        def put(prefix, src: nn.Module, shape_like: nn.Module):
            for name, t in shape_like.state_dict().items():
                s = src.state_dict()[name]
                if s.dim() == 0:
                    state[f"{prefix}.{name}"] = s.clone()
                    continue
                state[f"{prefix}.{name}"] = s[tuple(slice(0, d) for d in t.shape)].clone()

        body_i = 0
        for layer, m, r in zip(sp.layers, self.layers, rs, strict=True):
            if layer.kind == "stem":
                j = self._choice(arch, layer.kernel)
                put("stem.conv", m.conv[j], net.stem.conv)
                put("stem.bn", m.bn[j], net.stem.bn)
                continue
            if layer.kind == "head":
                put("head", m.conv, net.head)
                put("head_bn", m.bn, net.head_bn)
                if hasattr(m, "extra"):
                    put("head_extra", m.extra, net.head_extra)
                put("fc", m.fc, net.fc)
                continue
            target = net.body[body_i]
            p = f"body.{body_i}"
            body_i += 1
            if not r.active:
                continue
            j = self._choice(arch, layer.kernel)
            put(f"{p}.dw", m.dw[j], target.dw)
            put(f"{p}.bn1", m.bn1[j], target.bn1)
            if layer.kind == "sepconv":
                put(f"{p}.pw", m.pw, target.pw)
                put(f"{p}.bn2", m.bn2, target.bn2)
            else:
                for name in ("expand", "bn0", "project", "bn2") + (("se_reduce", "se_expand") if r.se else ()):
                    put(f"{p}.{name}", getattr(m, name), getattr(target, name))
        net.load_state_dict(state)
        return net

    def _choice(self, arch, field) -> int:
        return 0 if isinstance(field, tuple) else int(arch[field])
