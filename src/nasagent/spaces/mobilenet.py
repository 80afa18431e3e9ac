"""MobileNet-like macro spaces of TuNAS (seed-004): ProxylessNAS, ProxylessNAS-Enlarged and MobileNetV3-Like.

A network is a stem conv, a separable conv, body blocks of inverted-bottleneck (IB) layers and a head. The
search is a list of independent categorical *decisions*, each tagged ``op`` (depthwise kernel, SE, skip) or
``filters`` (expansion ratio, output filters). An architecture is a tuple of choice indices, one per decision,
in depth-first order, written ``"0:2:1:..."`` (the TuNAS code's encoding).

- Every block's first IB layer is mandatory (it carries the stride); the others are residual and skippable
  (decision ``skip``: "keep" or "zero"). Decisions inside a skipped layer do not count (``gate``).
- Output filters are searched per block (Enlarged, V3-Like) as ``base x {1/2, 5/8, 3/4, 1, 5/4, 3/2, 2}``
  rounded half-up to a multiple of ``divisor`` (8), distinct values only; all layers of a block share the
  block's width, which is what lets the residual connections join them. Base filters double per block
  (seed ambiguity A1: we follow the code: per block, after leading 16s).
- Expansion is relative to the layer's *active* input width: ``expanded = round8(in x ratio)``.
- A residual connection is added where the stride is 1 and the active input and output widths are equal.

``width`` scales every base width and ``depth``/``blocks`` shorten the body so the spaces train on a CPU; the
defaults build the full ImageNet-size spaces (cardinalities ~1e21, ~1e28, ~1e43, the paper's upper bounds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space, one_hot

MULTIPLIERS = (0.5, 0.625, 0.75, 1.0, 1.25, 1.5, 2.0)
KERNELS = (3, 5, 7)
FAMILIES = ("proxylessnas", "proxylessnas-enlarged", "mobilenet-v3-like")
#: ProxylessNAS-Mobile's hand-made filters for stem, sepconv, six body blocks and head (seed §1.2)
PROXYLESS_FILTERS = (32, 16, 32, 40, 80, 96, 192, 320, 1280)
PROXYLESS_STRIDES = (2, 2, 2, 1, 2, 1)
PROXYLESS_DEPTHS = (4, 4, 4, 4, 4, 1)
ENLARGED_BASE = (16, 16, 16, 32, 64, 128, 256, 512, 1024)
V3_BASE = (16, 16, 32, 64, 128, 256, 512, 1024)
V3_STRIDES = (2, 2, 2, 1, 2)
V3_ACTS = ("relu", "relu", "swish", "swish", "swish")


def make_divisible(value: float, divisor: int = 8, minimum: int | None = None) -> int:
    """Round ``value`` half-up to a multiple of ``divisor`` (at least ``minimum``, default ``divisor``).

    TuNAS rounds half up (seed §1.2 table), unlike MobileNet's make_divisible which guards a 10 % drop."""
    minimum = divisor if minimum is None else minimum
    return max(minimum, int(math.floor(value / divisor + 0.5)) * divisor)


def scale_filters(base: float, divisor: int = 8) -> tuple[int, ...]:
    """The distinct output-filter choices for a base width."""
    return tuple(sorted({make_divisible(base * m, divisor) for m in MULTIPLIERS}))


@dataclass(frozen=True)
class Decision:
    name: str
    choices: tuple
    tag: str  # "op" or "filters" (the warmups act by tag)
    gate: int | None = None  # index of the skip decision whose "zero" switches this decision off


@dataclass(frozen=True)
class Layer:
    """One layer; each searchable field is a decision index (``int``) or, if fixed, ``("fixed", value)``."""

    kind: str  # "stem", "sepconv", "ib", "head"
    stride: int
    act: str
    kernel: Any = ("fixed", 3)
    expansion: Any = ("fixed", 1)
    se: Any = ("fixed", False)
    out: Any = ("fixed", 8)
    skip: int | None = None  # decision index of {keep, zero}; None = mandatory
    block: int = 0


@dataclass(frozen=True)
class Resolved:
    """A layer's concrete configuration in one architecture (what the latency table is keyed by)."""

    kind: str
    kernel: int
    cin: int
    mid: int  # expanded width (IB), cin otherwise
    out: int
    se: bool
    stride: int
    act: str
    residual: bool
    active: bool


class MobileNetSpace(Space):
    """One of the three TuNAS spaces at a chosen scale (see the module docstring)."""

    sequential = True

    def __init__(self, family: str = "mobilenet-v3-like", width: float = 1.0, depth: int | None = None,
                 blocks: int | None = None, divisor: int = 8, name: str | None = None):
        if family not in FAMILIES:
            raise NasagentError(f"unknown MobileNet space family {family!r}; families: {', '.join(FAMILIES)}")
        if not (0 < float(width) <= 4):
            raise NasagentError(f"width must be in (0, 4], got {width}")
        if depth is not None and not 1 <= int(depth) <= 4:
            raise NasagentError(f"depth (layers per block) must be 1..4, got {depth}")
        if int(divisor) < 1:
            raise NasagentError(f"divisor must be >= 1, got {divisor}")
        self.family, self.width, self.divisor = family, float(width), int(divisor)
        self.depth = None if depth is None else int(depth)
        n_body = 6 if family != "mobilenet-v3-like" else 5
        if blocks is not None and not 1 <= int(blocks) <= n_body:
            raise NasagentError(f"blocks must be 1..{n_body} for {family}, got {blocks}")
        self.blocks = n_body if blocks is None else int(blocks)
        self.decisions: list[Decision] = []
        self.layers: list[Layer] = []
        self._build()
        suffix = "" if (self.width, self.depth, self.blocks, self.divisor) == (1.0, None, n_body, 8) else (
            f"[w{self.width:g},d{self.depth or 'full'},b{self.blocks},div{self.divisor}]")
        self.name = name or family + suffix

    # -- spec ---------------------------------------------------------------------------------------------------
    def config(self) -> dict:
        return {"family": self.family, "width": self.width, "depth": self.depth, "blocks": self.blocks, "divisor": self.divisor}

    def _decide(self, name, choices, tag, gate=None) -> int:
        self.decisions.append(Decision(name, tuple(choices), tag, gate))
        return len(self.decisions) - 1

    def _filters(self, name, base) -> Any:
        choices = scale_filters(base * self.width, self.divisor)
        return self._decide(name, choices, "filters") if len(choices) > 1 else ("fixed", choices[0])

    def _build(self) -> None:
        fam, w = self.family, self.width
        fixed = fam == "proxylessnas"
        v3 = fam == "mobilenet-v3-like"
        base = V3_BASE if v3 else ENLARGED_BASE
        if v3:
            strides, acts, depths = V3_STRIDES, V3_ACTS, (4,) * 5
        else:
            strides, acts, depths = PROXYLESS_STRIDES, ("relu",) * 6, PROXYLESS_DEPTHS
        strides, acts, depths = strides[: self.blocks], acts[: self.blocks], depths[: self.blocks]
        # stem
        k = self._decide("stem/kernel", (3, 5), "op") if v3 else ("fixed", 3)
        out = ("fixed", make_divisible(PROXYLESS_FILTERS[0] * w, self.divisor)) if fixed else self._filters("stem/filters", base[0])
        self.layers.append(Layer("stem", 2, "swish" if v3 else "relu", kernel=k, out=out))
        # separable conv (optional and residual in V3-Like)
        skip = self._decide("sep/skip", ("keep", "zero"), "op") if v3 else None
        k = self._decide("sep/kernel", KERNELS, "op", gate=skip)
        out = ("fixed", make_divisible(PROXYLESS_FILTERS[1] * w, self.divisor)) if fixed else self._filters("sep/filters", base[1])
        if isinstance(out, int) and skip is not None:  # a skipped separable conv is an identity: its width is moot
            self.decisions[out] = Decision(self.decisions[out].name, self.decisions[out].choices, "filters", gate=skip)
        self.layers.append(Layer("sepconv", 1, "relu", kernel=k, out=out, skip=skip))
        # body
        ratios = (1, 2, 3, 4, 5, 6) if v3 else (3, 6)
        for b, (stride, act, n) in enumerate(zip(strides, acts, depths, strict=True)):
            n = n if self.depth is None or n == 1 else min(n, self.depth)
            if fixed:
                out = ("fixed", make_divisible(PROXYLESS_FILTERS[b + 2] * w, self.divisor))
            else:
                out = self._filters(f"block{b}/filters", base[b + 2])
            for i in range(n):
                skip = self._decide(f"block{b}/layer{i}/skip", ("keep", "zero"), "op") if i > 0 else None
                k = self._decide(f"block{b}/layer{i}/kernel", KERNELS, "op", gate=skip)
                e = self._decide(f"block{b}/layer{i}/expansion", ratios, "filters", gate=skip)
                se = self._decide(f"block{b}/layer{i}/se", (False, True), "op", gate=skip) if v3 else ("fixed", False)
                self.layers.append(Layer("ib", stride if i == 0 else 1, act, kernel=k, expansion=e, se=se, out=out,
                                         skip=skip, block=b + 1))
        # head: the filter base continues the doubling after the last body block
        if fixed:
            head_base = PROXYLESS_FILTERS[-1] * w
            out = ("fixed", make_divisible(head_base, self.divisor))
        else:  # the base keeps doubling after the last body block (a shortened body gets a smaller head)
            head_base = base[2 + self.blocks]
            out = self._filters("head/filters", head_base)
        self.layers.append(Layer("head", 1, "swish" if v3 else "relu", out=out, block=self.blocks + 1))
        self.v3 = v3
        self.head_extra = make_divisible(1280 * w * (head_base / 1024), self.divisor) if v3 else None

    # -- values -----------------------------------------------------------------------------------------------
    def value(self, arch, field) -> Any:
        if isinstance(field, tuple):
            return field[1]
        return self.decisions[field].choices[arch[field]]

    def active(self, arch, index: int) -> bool:
        """Whether decision ``index`` matters in ``arch`` (it is not inside a skipped layer)."""
        g = self.decisions[index].gate
        return g is None or self.decisions[g].choices[arch[g]] == "keep"

    def resolve(self, arch, in_channels: int = 3) -> list[Resolved]:
        """Concrete widths and ops of every layer (skipped layers come back with ``active=False``)."""
        out_layers = []
        cin = int(in_channels)
        for layer in self.layers:
            out = int(self.value(arch, layer.out))
            active = layer.skip is None or self.value(arch, layer.skip) == "keep"
            kernel = int(self.value(arch, layer.kernel))
            se = bool(self.value(arch, layer.se))
            mid = cin
            if layer.kind == "ib":
                mid = make_divisible(cin * float(self.value(arch, layer.expansion)), self.divisor)
            if layer.kind == "head":
                kernel = 1
            residual = layer.kind in ("sepconv", "ib") and layer.stride == 1 and cin == out
            out_layers.append(Resolved(layer.kind, kernel, cin, mid, out, se, layer.stride, layer.act, residual, active))
            if active:
                cin = out
        return out_layers

    # -- graph encoding (the Neural Predictor's chain, seed-003 brief A12) --------------------------------------
    def _options(self, field) -> tuple:
        return (field[1],) if isinstance(field, tuple) else self.decisions[field].choices

    def _label(self, kind, kernel, expansion, se, width_index) -> str:
        return f"{kind}/k{kernel}/e{expansion}/se{int(bool(se))}/w{width_index}"

    @property
    def graph_vocabulary(self) -> list[str]:
        """Every node label a chain of this space can hold: input, output, skip and each layer configuration."""
        labels = {"input", "output", "skip"}
        for layer in self.layers:
            widths = range(len(self._options(layer.out)))
            for k in self._options(layer.kernel):
                for e in self._options(layer.expansion):
                    for se in self._options(layer.se):
                        labels.update(self._label(layer.kind, k, e, se, w) for w in widths)
        return sorted(labels)

    def graph(self, arch) -> tuple[np.ndarray, list[str]]:
        """input -> one node per layer -> output. A skipped layer stays as a ``skip`` node (positions survive);
        a layer's label is its kind, kernel, expansion, SE and the index of its width choice (not the width
        itself, so one vocabulary serves every block)."""
        arch = self.validate(arch)
        labels = ["input"]
        for layer in self.layers:
            if layer.skip is not None and self.value(arch, layer.skip) != "keep":
                labels.append("skip")
                continue
            w = 0 if isinstance(layer.out, tuple) else arch[layer.out]
            labels.append(self._label(layer.kind, self.value(arch, layer.kernel), self.value(arch, layer.expansion),
                                      self.value(arch, layer.se), w))
        labels.append("output")
        n = len(labels)
        adj = np.zeros((n, n), np.int8)
        adj[np.arange(n - 1), np.arange(1, n)] = 1
        return adj, labels

    # -- cardinality ------------------------------------------------------------------------------------------
    def cardinality(self, distinct: bool = False) -> int:
        """The paper's upper bound (every decision independent) or, with ``distinct``, the count where the
        decisions inside a skipped layer do not multiply (seed ambiguity A11)."""
        if not distinct:
            return math.prod(len(d.choices) for d in self.decisions)
        gated: dict[int, int] = {}
        free = 1
        for i, d in enumerate(self.decisions):
            if d.gate is None:
                if not any(e.gate == i for e in self.decisions):
                    free *= len(d.choices)
            else:
                gated[d.gate] = gated.get(d.gate, 1) * len(d.choices)
        for _g, inner in gated.items():
            free *= inner + 1
        return free

    # -- Space contract ---------------------------------------------------------------------------------------
    def format(self, arch) -> str:
        return ":".join(str(int(i)) for i in arch)

    def parse(self, text: str) -> tuple[int, ...]:
        if isinstance(text, (tuple, list, np.ndarray)):
            parts = list(text)
        else:
            text = str(text).strip()
            if text.startswith("["):
                try:
                    parts = json.loads(text)
                except json.JSONDecodeError as e:
                    raise NasagentError(f"cannot read {text!r} as a JSON list of choice indices: {e}") from None
            else:
                parts = text.split(":") if text else []
        if len(parts) != len(self.decisions):
            raise NasagentError(
                f"a {self.name} architecture has {len(self.decisions)} decisions, got {len(parts)}; "
                "write it as colon-separated choice indices, e.g. " + ":".join("0" * 1 for _ in self.decisions[:4]) + ":..."
            )
        arch = []
        for i, (p, d) in enumerate(zip(parts, self.decisions, strict=True)):
            try:
                v = int(p)
            except (TypeError, ValueError):
                raise NasagentError(f"decision {i} ({d.name}) must be an integer index, got {p!r}") from None
            if not 0 <= v < len(d.choices):
                raise NasagentError(f"decision {i} ({d.name}) has {len(d.choices)} choices {d.choices}; index {v} is out of range")
            arch.append(v)
        return tuple(arch)

    def key(self, arch) -> str:
        """Decisions inside skipped layers are set to 0, so equivalent networks share a key (deduplication)."""
        return self.format(self.canonical(arch))

    def canonical(self, arch) -> tuple[int, ...]:
        return tuple(v if self.active(arch, i) else 0 for i, v in enumerate(arch))

    def to_json(self, arch) -> str:
        return json.dumps(list(map(int, arch)))

    def sample(self, rng: np.random.Generator) -> tuple[int, ...]:
        return tuple(int(rng.integers(len(d.choices))) for d in self.decisions)

    def encode(self, arch) -> np.ndarray:
        return np.concatenate([one_hot(v, len(d.choices)) for v, d in zip(arch, self.decisions, strict=True)])

    def neighbors(self, arch) -> list[tuple[int, ...]]:
        """One changed decision each, distinct networks only: a change inside a skipped layer is no change."""
        out, seen = [], {self.key(arch)}
        for i, d in enumerate(self.decisions):
            for v in range(len(d.choices)):
                if v != arch[i]:
                    n = arch[:i] + (v,) + arch[i + 1 :]
                    if self.key(n) not in seen:
                        seen.add(self.key(n))
                        out.append(n)
        return out

    def mutate(self, arch, rng):
        """Change one decision that is in use (one inside a skipped layer would leave the network as it was)."""
        live = [i for i in range(len(self.decisions)) if self.active(arch, i) and len(self.decisions[i].choices) > 1]
        i = live[int(rng.integers(len(live)))]
        n = len(self.decisions[i].choices)
        v = (arch[i] + 1 + int(rng.integers(n - 1))) % n
        return arch[:i] + (v,) + arch[i + 1 :]

    def root(self):
        return ()

    def actions(self, state):
        return [] if self.is_terminal(state) else list(range(len(self.decisions[len(state)].choices)))

    def step(self, state, action):
        if action not in self.actions(state):
            raise NasagentError(f"action {action!r} is not allowed in state {tuple(state)} of {self.name}")
        return tuple(state) + (int(action),)

    def is_terminal(self, state) -> bool:
        return len(state) == len(self.decisions)

    def edit_distance(self, a, b) -> int:
        return sum(x != y for x, y in zip(self.canonical(a), self.canonical(b), strict=True))

    # -- helpers ------------------------------------------------------------------------------------------------
    def smallest(self) -> tuple[int, ...]:
        """Every decision at its cheapest choice (skips on, smallest kernel/ratio/filters, no SE)."""
        return tuple(len(d.choices) - 1 if d.choices == ("keep", "zero") else 0 for d in self.decisions)

    def largest(self) -> tuple[int, ...]:
        return tuple(0 if d.choices == ("keep", "zero") else len(d.choices) - 1 for d in self.decisions)

    def summary(self, arch) -> str:
        """One line per layer: kind, kernel, widths, SE, stride; skipped layers marked."""
        lines = []
        for r, layer in zip(self.resolve(arch), self.layers, strict=True):
            if not r.active:
                lines.append(f"b{layer.block} {r.kind:7s} (skipped)")
                continue
            extra = f" x{r.mid}" if r.kind == "ib" else ""
            lines.append(f"b{layer.block} {r.kind:7s} k{r.kernel} {r.cin}->{r.out}{extra}{' se' if r.se else ''} s{r.stride} "
                         f"{r.act}{' +res' if r.residual else ''}")
        return "\n".join(lines)

    def build_network(self, arch, num_classes: int, input_shape, dropout: float = 0.0, **unknown):
        """The stand-alone network (real widths, stateful batch norm) for ``arch``."""
        if unknown:
            raise NasagentError(f"MobileNet networks take no size option(s) {', '.join(unknown)}; scale the space instead (width, depth, blocks)")
        from nasagent.evaluation.tunas_models import MobileNetNetwork

        return MobileNetNetwork(self, self.validate(arch), num_classes=num_classes, in_channels=int(input_shape[0]), dropout=dropout)


def mobilenet_space(family: str = "mobilenet-v3-like", **kwargs) -> MobileNetSpace:
    return MobileNetSpace(family, **kwargs)


#: small CPU variants used by tests and the digits benchmark (width x0.25, 2 layers per block, 3 blocks)
TINY = {"width": 0.25, "depth": 2, "blocks": 3}
