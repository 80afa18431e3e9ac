"""LaNAS' ConvNet-60K domain (thesis section 4.3.1; brief section 3 table and A10): 10 ternary variables.

A network is a VGG-style chain of 10 convolution layers (3 x 3 kernels, BatchNorm, ReLU, no residuals); each
layer's variable picks its (filters, kernel) among (32, 3), (64, 3) and (96, 3): 3^10 = 59,049 networks. The
thesis also says "depth 1-10", which contradicts |Omega| = 3^10 with no "absent" value (A10); the depth is fixed
at 10 here, which keeps the thesis' count and its 10-ternary encoding.

The authors' table of 59,049 trained networks is private, so nothing here scores them offline: the space gives
LaNAS (and every other strategy) the thesis' encoding, and ``train:<data> --space convnet60k`` trains them.
Where the thesis is silent on the network around the chain, our choice: a 2 x 2 max-pool after layers 4 and 8
(three resolutions, as a 10-layer VGG on 32 x 32 images has), then global average pooling and a linear
classifier.

Text form: the 10 filter counts joined by dashes, e.g. ``32-64-96-32-32-64-96-96-64-32``.
``encode`` is the thesis' 10 ternary values (0, 1, 2).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

#: each variable's (filters, kernel) values, in the order of its ternary code
CHOICES = ((32, 3), (64, 3), (96, 3))
FILTERS = tuple(f for f, _ in CHOICES)
DEPTH = 10
#: a 2 x 2 max-pool follows these layers (1-based)
POOL_AFTER = (4, 8)

ConvNet60KArch = tuple  # 10 ternary codes


class ConvNet60KSpace(Space):
    name = "convnet60k"

    # -- text ----------------------------------------------------------------------------------------------------
    def format(self, arch: ConvNet60KArch) -> str:
        return "-".join(str(FILTERS[c]) for c in arch)

    def parse(self, text: str) -> ConvNet60KArch:
        parts = str(text).strip().split("-")
        if len(parts) != DEPTH or not all(p.strip().isdigit() for p in parts):
            raise NasagentError(f"malformed convnet60k architecture {text!r}: expected {DEPTH} filter counts joined "
                                f"by '-', each one of {', '.join(map(str, FILTERS))}")
        counts = [int(p) for p in parts]
        bad = [(i + 1, f) for i, f in enumerate(counts) if f not in FILTERS]
        if bad:
            raise NasagentError(f"convnet60k layer {bad[0][0]} has {bad[0][1]} filters; choices: {', '.join(map(str, FILTERS))}")
        return tuple(FILTERS.index(f) for f in counts)

    def validate(self, arch) -> ConvNet60KArch:
        if isinstance(arch, str):
            return self.parse(arch)
        codes = tuple(arch)
        if len(codes) != DEPTH or not all(isinstance(c, (int, np.integer)) and 0 <= c < len(CHOICES) for c in codes):
            raise NasagentError(f"a convnet60k architecture is {DEPTH} ternary codes (0, 1, 2), got {arch!r}")
        return tuple(int(c) for c in codes)

    # -- sampling, encoding, enumeration ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> ConvNet60KArch:
        return tuple(int(c) for c in rng.integers(len(CHOICES), size=DEPTH))

    def encode(self, arch: ConvNet60KArch) -> np.ndarray:
        return np.asarray(arch, dtype=np.float64)

    def size(self) -> int:
        return len(CHOICES) ** DEPTH

    def enumerate(self) -> Iterator[ConvNet60KArch]:
        return itertools.product(range(len(CHOICES)), repeat=DEPTH)

    def neighbors(self, arch: ConvNet60KArch) -> list[ConvNet60KArch]:
        """The 20 networks that change one layer's choice."""
        return [arch[:i] + (c,) + arch[i + 1 :] for i in range(DEPTH) for c in range(len(CHOICES)) if c != arch[i]]

    def edit_distance(self, a, b) -> int:
        return sum(x != y for x, y in zip(a, b, strict=True))

    # -- sequential: choose the layers in order ------------------------------------------------------------------
    def root(self) -> tuple:
        return ()

    def actions(self, state: tuple) -> list[int]:
        return [] if len(state) >= DEPTH else list(range(len(CHOICES)))

    def step(self, state: tuple, action: int) -> tuple:
        if action not in self.actions(state):
            raise NasagentError(f"illegal convnet60k action {action!r} at layer {len(state) + 1}")
        return (*state, int(action))

    def is_terminal(self, state: tuple) -> bool:
        return len(state) == DEPTH

    def to_arch(self, state: tuple) -> ConvNet60KArch:
        return tuple(state)

    # -- the network ---------------------------------------------------------------------------------------------------
    def build_network(self, arch, num_classes: int, input_shape, width: float = 1.0, **unknown):
        """The VGG-style chain; ``width`` scales every layer's filters (e.g. 0.25 for CPU tests)."""
        from torch import nn

        if unknown:
            raise NasagentError(f"network option(s) {', '.join(sorted(unknown))} unknown for space 'convnet60k'; options: width")
        if not 0 < float(width) <= 4:
            raise NasagentError(f"convnet60k width must be in (0, 4], got {width}")
        layers, c_in = [], int(input_shape[0])
        for i, code in enumerate(arch, start=1):
            filters, kernel = CHOICES[code]
            c_out = max(1, round(filters * float(width)))
            layers += [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            if i in POOL_AFTER:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, int(num_classes))]
        return nn.Sequential(*layers)
