"""AlphaX's simplified CNN domain (App. 8, used for the algorithm comparison of §4.4).

A network is 0..3 convolution layers (each: stride 1 or 2, 32 or 64 filters, kernel 2 or 4; ReLU, "same"
padding) followed by the dense softmax classifier that every network ends with: 1 + 8 + 64 + 512 = 585
networks.

Actions (App. 8): add a convolution layer (it starts at the smallest parameters: stride 1, 32 filters,
kernel 2), increment or decrement one parameter of one existing layer, or add the softmax layer, which
finishes the network (the terminal action of MCTS, random and Q-learning). Hill climbing has no terminal
action: every state is a network, and a state's children (``neighbors``) are the networks one
non-terminal action away. The paper names no dataset; the comparison script trains on digits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from nasagent.core import NasagentError
from nasagent.spaces.base import Space

#: each parameter's values, smallest first; "increment" moves one step right, "decrement" one step left
PARAMS = {"stride": (1, 2), "filters": (32, 64), "kernel": (2, 4)}
MAX_DEPTH = 3

Layer = tuple  # (stride, filters, kernel)
ConvNetArch = tuple  # tuple[Layer, ...], 0..MAX_DEPTH layers


class ConvNetSpace(Space):
    name = "convnet"

    def __init__(self, max_depth: int = MAX_DEPTH):
        if not 1 <= max_depth <= 6:
            raise NasagentError(f"convnet max_depth must be in 1..6, got {max_depth}")
        self.max_depth = max_depth
        self.configs = tuple(itertools.product(*PARAMS.values()))

    # -- text: "s1-f32-k2,s2-f64-k4" (empty string: no convolution, only the classifier) -------------
    def format(self, arch: ConvNetArch) -> str:
        return ",".join(f"s{s}-f{f}-k{k}" for s, f, k in arch) or "dense"

    def parse(self, text: str) -> ConvNetArch:
        text = str(text).strip()
        if text in ("dense", ""):
            return ()
        layers = []
        for item in text.split(","):
            try:
                s, f, k = item.strip().split("-")
                if not (s[0], f[0], k[0]) == ("s", "f", "k"):
                    raise ValueError
                layers.append((int(s[1:]), int(f[1:]), int(k[1:])))
            except (ValueError, IndexError):
                raise NasagentError(
                    f"malformed convnet layer {item!r} in {text!r}: expected 's<stride>-f<filters>-k<kernel>', "
                    "layers joined by ',' (or 'dense' for no convolution)"
                ) from None
        return self.validate(tuple(layers))

    def validate(self, arch) -> ConvNetArch:
        if isinstance(arch, str):
            return self.parse(arch)
        arch = tuple(tuple(int(v) for v in layer) for layer in arch)
        if len(arch) > self.max_depth:
            raise NasagentError(f"convnet has {len(arch)} convolution layers; at most {self.max_depth}")
        for layer in arch:
            if len(layer) != 3 or any(v not in PARAMS[p] for v, p in zip(layer, PARAMS, strict=False)):
                raise NasagentError(
                    f"convnet layer {layer} is not (stride, filters, kernel) with stride in {PARAMS['stride']}, "
                    f"filters in {PARAMS['filters']}, kernel in {PARAMS['kernel']}"
                )
        return arch

    # -- sampling, encoding, enumeration ---------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> ConvNetArch:
        """Uniform over the networks (deeper ones are more numerous, as in the enumeration)."""
        return self.enumerate_list()[int(rng.integers(self.size()))]

    def encode(self, arch: ConvNetArch) -> np.ndarray:
        """Per layer slot: present, stride 2, 64 filters, kernel 4 (4 x max_depth zeros/ones)."""
        v = np.zeros((self.max_depth, 4))
        for i, (s, f, k) in enumerate(arch):
            v[i] = (1.0, s == 2, f == 64, k == 4)
        return v.ravel()

    def size(self) -> int:
        return sum(len(self.configs) ** d for d in range(self.max_depth + 1))

    def enumerate_list(self) -> list[ConvNetArch]:
        if not hasattr(self, "_all"):
            self._all = [tuple(c) for d in range(self.max_depth + 1) for c in itertools.product(self.configs, repeat=d)]
        return self._all

    def enumerate(self) -> Iterator[ConvNetArch]:
        return iter(self.enumerate_list())

    # -- editing: the App. 8 actions without the terminal one ----------------------------------------------
    def _edits(self, layers: ConvNetArch) -> list[tuple]:
        acts: list[tuple] = []
        if len(layers) < self.max_depth:
            acts.append(("add",))
        for i, layer in enumerate(layers):
            for p, (name, values) in enumerate(PARAMS.items()):
                pos = values.index(layer[p])
                if pos + 1 < len(values):
                    acts.append(("inc", i, name))
                if pos > 0:
                    acts.append(("dec", i, name))
        return acts

    def _apply(self, layers: ConvNetArch, action: tuple) -> ConvNetArch:
        if action[0] == "add":
            return layers + (tuple(v[0] for v in PARAMS.values()),)
        _, i, name = action
        p = list(PARAMS).index(name)
        values = PARAMS[name]
        layer = list(layers[i])
        layer[p] = values[values.index(layer[p]) + (1 if action[0] == "inc" else -1)]
        return layers[:i] + (tuple(layer),) + layers[i + 1 :]

    def neighbors(self, arch: ConvNetArch) -> list[ConvNetArch]:
        return [self._apply(arch, a) for a in self._edits(arch)]

    # -- sequential: state = (layers, done) ---------------------------------------------------------------
    def root(self):
        return ((), False)

    def actions(self, state) -> list[tuple]:
        layers, done = state
        return [] if done else [*self._edits(layers), ("softmax",)]

    def step(self, state, action):
        layers, done = state
        if done:
            raise NasagentError("no action is legal in a terminal convnet state")
        if action == ("softmax",):
            return (layers, True)
        if tuple(action) not in self._edits(layers):
            raise NasagentError(f"illegal convnet action {action!r} for layers {self.format(layers)}")
        return (self._apply(layers, tuple(action)), False)

    def is_terminal(self, state) -> bool:
        return bool(state[1])

    def to_arch(self, state) -> ConvNetArch:
        return state[0]
