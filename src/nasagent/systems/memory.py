"""SuperNeurons-style memory runtime (thesis Ch. 8) and the project's peak-memory meter: the public face.

- ``measure_peak(fn)``: the shared meter (``systems.meter``; its docstring says exactly what counts).
- ``MemoryRuntime(model, policy)``: training steps that schedule every tensor (``systems.memexec``):
  liveness, offload/prefetch, recomputation.
- ``ladder(model, x)``: the thesis' four stages as policies; ``plan_memory(model, x, limit)``: per-layer
  choices under a memory limit (``systems.memplan``).
- ``estimate_peak(model, input_shape)``: bytes a training step needs, without computing anything - for
  design-space constraints and objectives (a network whose estimate exceeds a device can be rejected
  before it is trained).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nasagent.core import NasagentError
from nasagent.systems.memexec import LayerwiseRuntime as MemoryRuntime
from nasagent.systems.memexec import MemoryPolicy
from nasagent.systems.memplan import STAGES, DryRunner, MachineRates, MemoryPlan, cost_aware_modes, ladder, plan_memory, superneurons_policy
from nasagent.systems.meter import PeakMemory, measure_peak

__all__ = [
    "PeakMemory", "measure_peak", "MemoryRuntime", "MemoryPolicy", "MemoryPlan", "MachineRates", "ladder",
    "plan_memory", "superneurons_policy", "cost_aware_modes", "estimate_peak", "PeakEstimate", "fits_memory",
    "measure_layer_needs",
]


@dataclass
class PeakEstimate:
    """What one training step of a network needs, by the runtime's own bookkeeping."""

    peak_bytes: int  # activations, saved temporaries, output and parameter gradients alive at once
    largest_layer: str
    largest_layer_bytes: int  # max_i l_i: the floor no schedule can go below
    param_bytes: int  # the weights themselves (pre-existing; add them, and optimizer state, for a device budget)
    policy: str
    exact: bool  # False: the model could not be traced and the estimate is the coarser fall-back

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def estimate_peak(model: torch.nn.Module, input_shape, policy: str | MemoryPolicy = "liveness") -> PeakEstimate:
    """Peak bytes of one training step of ``model`` on a batch of ``input_shape`` (batch dimension included).

    Runs the memory runtime on a meta-device copy, so nothing is computed or allocated. ``policy`` is one of
    the thesis' stages ("baseline", "liveness" - what plain PyTorch does, "offload", "recompute"),
    "recompute-fanout" (recompute, with branch-point outputs offloaded: ``superneurons_policy``) or a
    ``MemoryPolicy``. The figure excludes the weights and the input batch, like ``measure_peak``. A model
    ``torch.fx`` cannot trace gets a coarser estimate, only for "liveness": the tensors its forward pass saves
    for backward plus twice the largest activation, from a meta-device pass, or - when the forward needs real
    values (data-dependent control flow) - one real forward pass on the CPU with a random batch.
    """
    shape = tuple(int(d) for d in (input_shape.shape if isinstance(input_shape, torch.Tensor) else input_shape))
    if not shape or any(d <= 0 for d in shape):
        raise NasagentError(f"input shape must be positive dimensions including the batch, got {shape}")
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    try:
        dry = DryRunner(model, shape)
    except NasagentError:
        if policy != "liveness":
            raise
        return _estimate_untraced(model, shape, params)
    if isinstance(policy, str):
        names = (*STAGES, "recompute-fanout")
        if policy not in names:
            raise NasagentError(f"unknown memory policy {policy!r}; use one of {', '.join(names)} or a MemoryPolicy")
        fanout = policy == "recompute-fanout"
        pol = superneurons_policy(dry.graph, "recompute" if fanout else policy, fanout_checkpoints=fanout)
        if pol.name.startswith("recompute"):
            pol.recompute_mode = cost_aware_modes(model, shape, pol)
    else:
        pol = policy
    rt = dry(pol)
    layer, need = max(rt.layer_need.items(), key=lambda kv: kv[1])
    return PeakEstimate(rt.ledger.peak, layer, need, params, pol.name, True)


def measure_layer_needs(model: torch.nn.Module, x: torch.Tensor, device: str | None = None) -> dict[str, int]:
    """l_i measured: for every layer, the meter's peak when it runs forward and backward alone.

    Its inputs, output gradient, input and weight gradients and the operators' workspaces all count (the
    inputs and output gradient are allocated inside the measured call); nothing else is alive. The maximum
    is the floor of any schedule, the "largest single layer's need" of the thesis, on the same meter as a
    whole step.
    """
    from nasagent.systems.memexec import _replay

    rt = MemoryRuntime(model, MemoryPolicy("probe"))
    rt.step(x)
    model.zero_grad(set_to_none=True)
    graph, needs = rt.graph, {}
    for layer in graph.layers:
        def run(layer=layer):
            values = {j: torch.randn(rt.shapes[j][0], device=x.device).to(rt.shapes[j][1]) for j in layer.inputs if j >= 0}
            leaves = {j: v.requires_grad_(v.is_floating_point() and rt.requires.get(j, False)) for j, v in values.items()}
            inp = torch.randn(x.shape, device=x.device).to(x.dtype)
            with _replay(layer, None, x.device):  # running statistics restored afterwards
                out = graph.call(layer, leaves, inp)
                targets = [v for v in leaves.values() if v.requires_grad] + [p for p in layer.params() if p.requires_grad]
                if out.requires_grad and targets:
                    torch.autograd.grad(out, targets, torch.randn_like(out), allow_unused=True)

        needs[layer.name] = measure_peak(run, device=device or str(x.device), rss=False).peak_bytes
    return needs


def fits_memory(model: torch.nn.Module, input_shape, limit_bytes: int, policy: str = "liveness") -> bool:
    """Whether a training step's estimated peak plus the weights stays within ``limit_bytes``."""
    est = estimate_peak(model, input_shape, policy)
    return est.peak_bytes + est.param_bytes <= int(limit_bytes)


def _estimate_untraced(model: torch.nn.Module, shape: tuple, params: int) -> PeakEstimate:
    import copy

    meta = copy.deepcopy(model).to("meta")
    storages: dict[int, int] = {}
    param_keys = {p.untyped_storage()._cdata for p in meta.parameters()} | {b.untyped_storage()._cdata for b in meta.buffers()}
    largest = [0, ""]

    def pack(t):
        k = t.untyped_storage()._cdata
        if k not in param_keys:
            storages[k] = t.untyped_storage().nbytes()
        return t

    def hook(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.numel() * output.element_size() > largest[0]:
            largest[:] = [output.numel() * output.element_size(), type(module).__name__]

    def forward(net, x):
        handles = [m.register_forward_hook(hook) for m in net.modules() if not list(m.children())]
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                return net(x)
        finally:
            for h in handles:
                h.remove()

    try:
        out = forward(meta, torch.empty(shape, device="meta"))
    except Exception:  # data-dependent control flow needs real values: one real forward pass on the CPU
        storages.clear()
        largest[:] = [0, ""]
        real = copy.deepcopy(model).to("cpu")
        param_keys = {p.untyped_storage()._cdata for p in real.parameters()} | {b.untyped_storage()._cdata for b in real.buffers()}
        try:
            out = forward(real, torch.randn(shape))
        except Exception as e:
            raise NasagentError(f"cannot estimate the memory of {type(model).__name__}: its forward pass fails on a "
                                f"random input of shape {shape} ({type(e).__name__}: {e})") from None
    if not isinstance(out, torch.Tensor):
        raise NasagentError(f"cannot estimate the memory of {type(model).__name__}: it returns {type(out).__name__}, not a tensor")
    peak = sum(storages.values()) + params + 2 * largest[0]
    return PeakEstimate(int(peak), largest[1], 2 * largest[0], params, "liveness", False)
