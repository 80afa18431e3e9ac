"""A model's forward graph as a list of layers, for the memory runtime (thesis Ch. 8).

``trace_layers(model)`` follows the model with ``torch.fx``: every call of a module, function or tensor
method becomes a ``Layer`` with the indices of the layers whose outputs it reads. ``route`` orders them with
the thesis' Alg. 8 (depth-first from the input, waiting at a join until all its inputs are done), which is
the execution order of both the forward and - reversed - the backward pass.

A model ``torch.fx`` cannot follow (data-dependent control flow) raises ``NasagentError``; the peak
estimator then falls back to a coarser estimate (``memory.estimate_peak``), the runtime cannot run it.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasagent.core import NasagentError

INPUT = -1  # producer index of the model's input

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONV_FUNCS = {torch.conv1d, torch.conv2d, torch.conv3d, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
               torch.nn.functional.conv3d}
_DENSE_FUNCS = {torch.nn.functional.linear, torch.matmul, torch.mm, torch.bmm, operator.matmul}


@dataclass
class Layer:
    """One operation of the forward graph."""

    index: int
    name: str
    kind: str  # "conv", "dense" (the expensive, checkpointed kinds) or "cheap"
    op: str  # fx opcode: call_module, call_function, call_method
    target: Any
    args: tuple  # fx arguments; Arg(i) marks the output of layer i (INPUT: the model input)
    kwargs: dict
    inputs: list[int] = field(default_factory=list)  # distinct producer layers, in argument order
    consumers: list[int] = field(default_factory=list)
    module: nn.Module | None = None
    random: bool = False  # draws random numbers (dropout): recomputation must replay the RNG

    def params(self) -> list[torch.Tensor]:
        return [p for p in self.module.parameters()] if self.module is not None else []


@dataclass(frozen=True)
class Arg:
    """Placeholder for a layer's output inside ``Layer.args``."""

    layer: int


@dataclass(frozen=True)
class Attr:
    """Placeholder for a parameter, buffer or constant attribute of the model."""

    path: str


@dataclass
class LayerGraph:
    layers: list[Layer]
    output: int  # the layer whose output the model returns
    model: nn.Module

    def __len__(self) -> int:
        return len(self.layers)

    def route(self) -> list[int]:
        """Alg. 8: DFS from the input; a layer joins the route once all of its inputs have (a join waits)."""
        counter = [0] * len(self.layers)
        route: list[int] = []
        firsts = [l.index for l in self.layers if not l.inputs or all(i == INPUT for i in l.inputs)]
        stack = list(reversed(firsts))
        seen_first = set()
        while stack:
            i = stack.pop()
            layer = self.layers[i]
            if i in seen_first:
                continue
            preds = [p for p in layer.inputs if p != INPUT]
            if preds:
                counter[i] += 1
                if counter[i] < len(preds):
                    continue  # wait at the join until every input is computed
            seen_first.add(i)
            route.append(i)
            stack.extend(reversed(layer.consumers))
        if len(route) != len(self.layers):
            missing = sorted(set(range(len(self.layers))) - set(route))
            raise NasagentError(f"the forward graph has layers the route never reaches: {[self.layers[i].name for i in missing]}")
        return route

    def resolve(self, value, outputs: dict[int, torch.Tensor], model_input: torch.Tensor):
        """``value`` (an fx argument template) with layer outputs and attributes filled in."""
        if isinstance(value, Arg):
            return model_input if value.layer == INPUT else outputs[value.layer]
        if isinstance(value, Attr):
            return _get_attr(self.model, value.path)
        if isinstance(value, (tuple, list)):
            return type(value)(self.resolve(v, outputs, model_input) for v in value)
        if isinstance(value, dict):
            return {k: self.resolve(v, outputs, model_input) for k, v in value.items()}
        if isinstance(value, slice):
            return slice(self.resolve(value.start, outputs, model_input), self.resolve(value.stop, outputs, model_input),
                         self.resolve(value.step, outputs, model_input))
        return value

    def call(self, layer: Layer, outputs: dict[int, torch.Tensor], model_input: torch.Tensor):
        args = self.resolve(layer.args, outputs, model_input)
        kwargs = self.resolve(layer.kwargs, outputs, model_input)
        if layer.op == "call_module":
            return layer.module(*args, **kwargs)
        if layer.op == "call_method":
            return getattr(args[0], layer.target)(*args[1:], **kwargs)
        return layer.target(*args, **kwargs)


def _get_attr(model: nn.Module, path: str):
    obj = model
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _kind(op: str, target, module) -> str:
    if op == "call_module":
        if isinstance(module, _CONV):
            return "conv"
        if isinstance(module, (nn.Linear, nn.Bilinear)):
            return "dense"
        return "cheap"
    if op == "call_function" and target in _CONV_FUNCS:
        return "conv"
    if (op == "call_function" and target in _DENSE_FUNCS) or (op == "call_method" and target in ("matmul", "mm", "bmm")):
        return "dense"
    return "cheap"


def _is_random(op: str, target, module) -> bool:
    if op == "call_module":
        return isinstance(module, nn.modules.dropout._DropoutNd)
    name = getattr(target, "__name__", str(target))
    return "dropout" in name or "rand" in name or "bernoulli" in name


def trace_layers(model: nn.Module) -> LayerGraph:
    """The model's forward graph by ``torch.fx``. In-place activations are switched off on the model (the
    runtime frees memory itself; an in-place op would overwrite a tensor another layer saved)."""
    import inspect

    import torch.fx
    from torch.fx._symbolic_trace import _assert_is_none

    # forward's optional arguments (e.g. a network's arch=None) are fixed at their defaults: one tensor input
    fixed = {p.name: p.default for p in list(inspect.signature(model.forward).parameters.values())[1:]
             if p.default is not inspect.Parameter.empty}
    try:
        gm = torch.fx.symbolic_trace(model, concrete_args=fixed or None)
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise NasagentError(
            f"torch.fx cannot follow {type(model).__name__}.forward ({type(e).__name__}: {str(e).splitlines()[0][:160]}); "
            "the memory runtime needs a traceable model (no data-dependent control flow). "
            "memory.estimate_peak falls back to a coarser estimate for such models"
        ) from None
    for m in model.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    index: dict[str, int] = {}
    layers: list[Layer] = []
    # the fixed arguments' placeholders feed only fx's checks that they keep their values (``_assert_is_none``,
    # or ``eq`` then ``_assert``): those nodes are set aside; if the model used such a value, it stays an input
    all_placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    fixed_nodes: set = set()
    for p in all_placeholders[1:]:
        checks, stack = {p}, list(p.users)
        while stack:
            u = stack.pop()
            if u.op == "call_function" and u.target in (_assert_is_none, operator.eq, torch._assert):
                checks.add(u)
                stack += list(u.users)
            else:
                break
        else:
            fixed_nodes |= checks
    placeholders = [n for n in all_placeholders if n not in fixed_nodes]
    if len(placeholders) != 1:
        raise NasagentError(f"the memory runtime handles models with one tensor input; {type(model).__name__}.forward takes {len(placeholders)}")
    output = None
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "get_attr") or node in fixed_nodes:
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, torch.fx.Node) or out.name not in index:
                raise NasagentError(f"the memory runtime needs a model that returns one tensor computed by a layer; {type(model).__name__} returns {out}")
            output = index[out.name]
            continue
        if node.op == "call_method" and str(node.target).endswith("_") and not str(node.target).startswith("__"):
            raise NasagentError(f"in-place tensor method {node.target!r} at {node.name}: the memory runtime needs out-of-place operations")
        module = _get_attr(model, node.target) if node.op == "call_module" else None
        inputs: list[int] = []

        def template(a):
            if isinstance(a, torch.fx.Node):
                if a.op == "placeholder":
                    if INPUT not in inputs:
                        inputs.append(INPUT)
                    return Arg(INPUT)
                if a.op == "get_attr":
                    return Attr(a.target)
                j = index[a.name]
                if j not in inputs:
                    inputs.append(j)
                return Arg(j)
            if isinstance(a, (tuple, list)):
                return type(a)(template(x) for x in a)
            if isinstance(a, dict):
                return {k: template(v) for k, v in a.items()}
            if isinstance(a, slice):
                return slice(template(a.start), template(a.stop), template(a.step))
            return a

        args = template(tuple(node.args))
        kwargs = template(dict(node.kwargs))
        if kwargs.get("inplace") is True:
            kwargs["inplace"] = False
        layer = Layer(len(layers), node.name, _kind(node.op, node.target, module), node.op, node.target, args, kwargs,
                      inputs, [], module, _is_random(node.op, node.target, module))
        index[node.name] = layer.index
        layers.append(layer)
    for layer in layers:
        for j in layer.inputs:
            if j != INPUT:
                layers[j].consumers.append(layer.index)
    if output is None or not layers:
        raise NasagentError(f"{type(model).__name__} has no layers the memory runtime can schedule")
    return LayerGraph(layers, output, model)


def layer_flops(layer: Layer, args: tuple, out: torch.Tensor) -> float:
    """Rough forward cost in floating-point operations (for recompute-versus-offload decisions).

    ``args`` are the layer's resolved arguments. Convolutions and dense layers count 2 multiply-adds per
    weight use; everything else a few operations per output element.
    """
    n_out = out.numel()
    if layer.kind == "conv":
        w = layer.module.weight if layer.module is not None else args[1]
        return 2.0 * n_out * w[0].numel()
    if layer.kind == "dense":
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        return 2.0 * n_out * (first.shape[-1] if first is not None and first.dim() else 1)
    return 4.0 * n_out
