"""A layer-by-layer training step that schedules every tensor itself: SuperNeurons' runtime in PyTorch.

The step runs the forward graph (``memgraph``) one layer at a time, each layer on *detached* copies of its
inputs so that its autograd graph is its own, and then walks the layers backwards, calling
``torch.autograd.grad`` on one layer at a time. In between, the runtime decides where each layer output
lives:

- liveness (thesis Sec. 8.3.2): an output is freed right after its last use - its last consumer in the
  forward pass if no backward step needs it, else its last backward user; output gradients are freed
  after their layer's backward step. ``free_dead=False`` is the naive baseline that frees nothing before the
  step ends.
- offload/prefetch (Sec. 8.3.3): after its last forward use an output moves to a host pool and comes back
  when a backward step needs it; on CUDA the copy-back of the next step's tensors is started early on a
  side stream (prefetch).
- recomputation (Sec. 8.3.4): the output is dropped and recomputed from its inputs when needed, in
  "speed" mode (intermediates recomputed on the way are kept for their own backward steps) or "memory"
  mode (they are dropped again).

What a backward step needs is learned, not guessed: ``torch.autograd.graph.saved_tensors_hooks`` sees every
tensor a layer saves for backward. A saved tensor that is some layer's output is stored as a reference
(materialised on unpack, which is where offloaded tensors are fetched and dropped ones recomputed); other
saved temporaries (pooling indices, dropout masks, normalisation statistics) stay with the layer, or go to
the host pool when large and the layer is offloaded or recomputed.

Freeing is real: an output's storage is resized to zero (the autograd graph keeps only its metadata), so
the allocator gets the memory back at once. A ``Ledger`` books every tensor the runtime manages; on a
``meta``-device copy of the model the same step runs without computing anything, which is the peak-memory
estimator (``memory.estimate_peak``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from nasagent.core import NasagentError
from nasagent.systems.memgraph import INPUT, LayerGraph, layer_flops, trace_layers

KEEP, OFFLOAD, RECOMPUTE = "keep", "offload", "recompute"
PARAM_GRAD = "parameter-gradient"
ACTIONS = (KEEP, OFFLOAD, RECOMPUTE)


@dataclass
class MemoryPolicy:
    """Where each layer output lives between its forward and backward use.

    ``actions`` maps a layer name to keep/offload/recompute (missing names: keep); ``recompute_mode`` maps
    recomputed layers to "speed" or "memory" (missing: speed). ``prefetch`` None means: on CUDA only.
    """

    name: str = "liveness"
    free_dead: bool = True
    actions: dict[str, str] = field(default_factory=dict)
    recompute_mode: dict[str, str] = field(default_factory=dict)
    prefetch: bool | None = None
    offload_temps: bool = True
    temp_threshold: int = 1 << 16

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.actions.items() if v not in ACTIONS}
        if bad:
            raise NasagentError(f"memory policy actions must be one of {ACTIONS}; got {bad}")
        bad = {k: v for k, v in self.recompute_mode.items() if v not in ("speed", "memory")}
        if bad:
            raise NasagentError(f"recompute modes must be 'speed' or 'memory'; got {bad}")


class Ledger:
    """Bytes of every tensor the runtime holds, with a per-step high-water trace and an event log.

    ``peak`` counts everything the runtime holds, parameter gradients included. ``dynamic_peak`` leaves the
    parameter gradients out, like the weights themselves: they are the persistent "functional" tensors
    SuperNeurons allocates before the step, and the thesis' peak_m excludes them (Table 8.1 gives ResNet50
    and ResNet101 the same peak_m, which memory that grows with the weights could not do).
    """

    def __init__(self) -> None:
        self.live: dict = {}
        self.current = 0
        self.peak = 0
        self.dynamic_current = 0
        self.dynamic_peak = 0
        self.host_current = 0
        self.host_peak = 0
        self.trace: list[tuple[str, int, int]] = []  # (step label, peak bytes within the step, live tensors)
        self.events: list[tuple[str, object, int]] = []  # ("alloc"|"free"|"use", key, bytes), ("step", label, 0)
        self.peak_live: list = []  # keys alive when the peak was reached
        self._step_peak = 0
        self._step_count = 0

    def alloc(self, key, nbytes: int, kind: str) -> None:
        if key in self.live:
            return
        self.live[key] = (int(nbytes), kind)
        self.current += int(nbytes)
        if kind != PARAM_GRAD:
            self.dynamic_current += int(nbytes)
            self.dynamic_peak = max(self.dynamic_peak, self.dynamic_current)
        if self.current > self.peak:
            self.peak = self.current
            self.peak_live = list(self.live)
        self._step_peak = max(self._step_peak, self.current)
        self._step_count = max(self._step_count, len(self.live))
        self.events.append(("alloc", key, int(nbytes)))

    def free(self, key) -> None:
        item = self.live.pop(key, None)
        if item is not None:
            self.current -= item[0]
            if item[1] != PARAM_GRAD:
                self.dynamic_current -= item[0]
            self.events.append(("free", key, item[0]))

    def use(self, key) -> None:
        if key in self.live:
            self.events.append(("use", key, self.live[key][0]))

    def host(self, delta: int) -> None:
        self.host_current += int(delta)
        self.host_peak = max(self.host_peak, self.host_current)

    def end_step(self, label: str) -> None:
        self.trace.append((label, self._step_peak, self._step_count))
        self.events.append(("step", label, 0))
        self._step_peak = self.current
        self._step_count = len(self.live)


@dataclass
class _Entry:
    """One managed storage: a layer output (and the layers that alias it)."""

    owner: int
    nbytes: int
    dtype: torch.dtype
    numel: int
    storage: object  # the original untyped storage (resized to 0 when freed)
    droppable: bool
    state: str = "dev"  # dev | host | gone
    dev: torch.Tensor | None = None  # flat tensor over the storage while on the device
    host: object = None
    fwd_left: int = 0
    bwd_users: set = field(default_factory=set)  # layers whose backward needs it; ("R", k): recomputing k does
    pins: list = field(default_factory=list)  # keys this one holds as its recomputation sources
    event: object = None


class _Saved:
    """What a layer's autograd graph keeps instead of a saved tensor."""

    __slots__ = ("key", "size", "stride", "offset", "dtype", "tensor", "host", "nbytes", "tkey")

    def __init__(self, t: torch.Tensor):
        self.key = None
        self.tkey = None
        self.size, self.stride, self.offset, self.dtype = t.size(), t.stride(), t.storage_offset(), t.dtype
        self.tensor = t
        self.host = None
        self.nbytes = 0


def _skey(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


class LayerwiseRuntime:
    """Runs training steps of ``model`` under a ``MemoryPolicy``; gradients land in the parameters' ``.grad``."""

    def __init__(self, model: torch.nn.Module, policy: MemoryPolicy | None = None, graph: LayerGraph | None = None):
        self.model = model
        self.graph = graph if graph is not None else trace_layers(model)
        self.route = self.graph.route()
        self.policy = policy or MemoryPolicy()
        self.ledger = Ledger()
        self.stats: dict = {}
        self.layer_need: dict[str, int] = {}  # bytes each layer's forward or backward step touches (l_i)
        self.layer_need_dynamic: dict[str, int] = {}  # the same without the layer's weight gradients
        self.layer_out_bytes: dict[str, int] = {}
        self.layer_flops: dict[str, float] = {}
        self.saved_by: dict[str, list[str]] = {}  # layer -> layers whose outputs its backward needs
        self.shapes: dict[int, tuple] = {}  # layer index -> (output shape, dtype) of the last step

    # -- the step ---------------------------------------------------------------------------------------
    def step(self, x: torch.Tensor, target=None, loss_fn=None) -> torch.Tensor:
        """One forward + backward pass; returns the (detached) loss. ``loss_fn(output, target)`` defaults to
        ``output.sum()``. Parameter gradients are accumulated into ``.grad`` as ``loss.backward()`` would."""
        self._begin(x)
        try:
            for i in self.route:
                self._forward(i)
            loss = self._loss(target, loss_fn)
            for i in reversed(self.route):
                self._backward(i)
        finally:
            self._end()
        return loss

    def _begin(self, x: torch.Tensor) -> None:
        self.ledger = Ledger()
        self.x = x
        self.device = x.device
        self.meta = x.device.type == "meta"
        self.prefetch = self.policy.prefetch if self.policy.prefetch is not None else x.device.type == "cuda"
        self.stream = torch.cuda.Stream(device=x.device) if self.prefetch and x.device.type == "cuda" else None
        self.param_keys = {_skey(p) for p in self.model.parameters()} | {_skey(b) for b in self.model.buffers()}
        self.input_key = _skey(x)
        self.store: dict[int, _Entry] = {}
        self.key_of: dict[int, int | None] = {}
        self.meta_of: dict[int, tuple] = {}
        self.fwd: dict[int, torch.Tensor] = {}
        self.out: dict[int, torch.Tensor] = {}
        self.leaves: dict[int, list] = {}
        self.params: dict[int, list] = {}
        self.needs: dict[int, set] = {}
        self.temps: dict[int, list] = {}
        self.G: dict[int, torch.Tensor] = {}
        self.g_holders: dict[int, int] = {}
        self.rng: dict[int, object] = {}
        self.requires: dict[int, bool] = {}
        self._gkey: dict[int, int] = {}
        self._pending: list = []
        self._fwd_need: dict[int, int] = {}
        self.stats = {"recomputed_layers": 0, "offloaded_bytes": 0, "fetched_bytes": 0, "prefetched_bytes": 0}

    def _end(self) -> None:
        for k in list(self.store):
            self._release(k, final=True)
        for i in list(self.G):
            self._drop_grad(i)
        for hs in self.temps.values():
            for h in hs:
                self.ledger.free(h.tkey)
                h.tensor = h.host = None
        self.fwd.clear()
        self.out.clear()
        self.leaves.clear()
        self.temps.clear()
        self.x = None

    # -- forward ------------------------------------------------------------------------------------------
    def _value(self, j: int) -> torch.Tensor:
        """Layer j's output as a tensor (materialising its storage first)."""
        k = self.key_of.get(j)
        if k is None:
            return self.fwd[j]
        flat = self._materialize(k)
        size, stride, offset, dtype = self.meta_of[j]
        base = flat if flat.dtype == dtype else flat.view(dtype)
        return base.as_strided(size, stride, offset)

    def _forward(self, i: int) -> None:
        layer = self.graph.layers[i]
        leafs: dict[int, torch.Tensor] = {}
        for j in layer.inputs:
            if j == INPUT:
                continue
            leafs[j] = self.fwd[j].detach().requires_grad_(self.requires[j])
        if layer.random:
            self.rng[i] = _rng_state(self.device)
        args = (self.graph.resolve(layer.args, leafs, self.x), self.graph.resolve(layer.kwargs, leafs, self.x))
        self._pending = []
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(lambda t: self._pack(t, i), self._unpack):
            o = self.graph.call(layer, leafs, self.x)
        if not isinstance(o, torch.Tensor):
            raise NasagentError(f"layer {layer.name} returns {type(o).__name__}; the memory runtime schedules layers that return one tensor")
        self.out[i] = o
        self.fwd[i] = o.detach()
        self.requires[i] = o.requires_grad
        self.meta_of[i] = (o.size(), o.stride(), o.storage_offset(), o.dtype)
        self.shapes[i] = (tuple(o.shape), o.dtype)
        self.layer_out_bytes[layer.name] = o.numel() * o.element_size()
        self.layer_flops[layer.name] = layer_flops(layer, args[0], o)
        k = _skey(o)
        n_consumers = len(layer.consumers) + (i == self.graph.output)
        if k in self.store:  # a view of an input (flatten, reshape): same storage, more consumers
            self.key_of[i] = k
            self.store[k].fwd_left += n_consumers
        elif k in self.param_keys or k == self.input_key:
            self.key_of[i] = None
        else:
            nbytes = o.untyped_storage().nbytes()
            droppable = o.is_contiguous() and o.storage_offset() == 0 and o.numel() * o.element_size() == nbytes
            self.store[k] = _Entry(i, nbytes, o.dtype, o.numel(), o.untyped_storage(), droppable,
                                   dev=o.detach().reshape(-1) if droppable else o.detach(), fwd_left=n_consumers)
            self.key_of[i] = k
            self.ledger.alloc(("F", k), nbytes, "activation")
        self._settle_saved(i)
        self._pin_sources(i)
        self.leaves[i] = [(j, leaf) for j, leaf in leafs.items() if leaf.requires_grad]
        self.params[i] = _params_of(layer, args)
        in_keys = {self.key_of[j] for j in layer.inputs if j != INPUT and self.key_of.get(j) is not None}
        self._fwd_need[i] = sum(self.store[k].nbytes for k in in_keys) + self.layer_out_bytes[layer.name]
        for j in layer.inputs:
            if j != INPUT and self.key_of.get(j) is not None:
                e = self.store[self.key_of[j]]
                e.fwd_left -= 1
                if e.fwd_left == 0:
                    self._forward_dead(self.key_of[j])
        if self.key_of[i] is not None and self.store[self.key_of[i]].fwd_left == 0:
            self._forward_dead(self.key_of[i])
        self.ledger.end_step(f"F:{layer.name}")

    def _pack(self, t: torch.Tensor, i: int) -> _Saved:
        h = _Saved(t)
        k = _skey(t)
        if k not in self.param_keys and k != self.input_key:  # parameters and the input are not ours to free
            self._pending.append((h, k))  # settled after the call, when the layer's own output is known
        return h

    def _settle_saved(self, i: int) -> None:
        """Saved tensors of layer i: references to managed outputs, or temporaries the layer keeps."""
        layer = self.graph.layers[i]
        needs = self.needs.setdefault(i, set())
        for h, k in self._pending:
            if k in self.store:
                h.key, h.tensor = k, None
                needs.add(k)
                self.store[k].bwd_users.add(i)
            else:
                h.nbytes = h.tensor.untyped_storage().nbytes()
                h.tkey = ("T", k)
                self.ledger.alloc(h.tkey, h.nbytes, "saved-temporary")
                self.temps.setdefault(i, []).append(h)
        self._pending = []
        self.saved_by[layer.name] = sorted({self.graph.layers[self.store[k].owner].name for k in needs})
        action = self.policy.actions.get(layer.name, KEEP)
        if action != KEEP and self.policy.offload_temps and self.policy.free_dead:
            for h in self.temps.get(i, []):
                if h.tensor is not None and h.nbytes >= self.policy.temp_threshold:
                    self._temp_to_host(h)

    def _pin_sources(self, i: int) -> None:
        """An output that will be recomputed keeps its inputs available (offloaded, kept, or recomputable in
        turn) until it is released: the chain back to the nearest checkpoint is the recomputation segment."""
        k = self.key_of.get(i)
        if k is None or self.store[k].owner != i or not self.policy.free_dead:
            return
        e = self.store[k]
        if not e.droppable or self.policy.actions.get(self.graph.layers[i].name, KEEP) != RECOMPUTE:
            return
        for j in self.graph.layers[i].inputs:
            kj = self.key_of.get(j) if j != INPUT else None
            if kj is not None and kj != k and kj not in e.pins:
                self.store[kj].bwd_users.add(("R", k))
                e.pins.append(kj)

    def _unpack(self, h: _Saved) -> torch.Tensor:
        if h.key is not None:
            flat = self._materialize(h.key)
            base = flat if flat.dtype == h.dtype else flat.view(h.dtype)
            return base.as_strided(h.size, h.stride, h.offset)
        if h.host is not None:
            h.tensor = self._from_host(h.host, h.dtype, h.nbytes).as_strided(h.size, h.stride, h.offset)
            self.ledger.alloc(h.tkey, h.nbytes, "saved-temporary")
            self.ledger.host(-h.nbytes)
            h.host = None
        return h.tensor

    def _forward_dead(self, k: int) -> None:
        """k's last forward consumer has run: free it, keep it, move it to the host, or drop it."""
        e = self.store[k]
        if not self.policy.free_dead:
            return
        if not e.bwd_users:
            self._release(k, final=True)
            return
        action = self.policy.actions.get(self.graph.layers[e.owner].name, KEEP) if e.droppable else KEEP
        if action == OFFLOAD:
            self._to_host(k)
        elif action == RECOMPUTE:
            self._free_device(k)

    # -- storage moves -----------------------------------------------------------------------------------
    def _free_device(self, k: int) -> None:
        e = self.store[k]
        if e.state != "dev":
            return
        if e.dev is not None and not self.meta:
            e.dev.untyped_storage().resize_(0)
            if e.storage is not None:
                e.storage.resize_(0)
        e.dev = None
        e.state = "host" if e.host is not None else "gone"
        self.ledger.free(("F", k))

    def _to_host(self, k: int) -> None:
        e = self.store[k]
        if e.host is None:
            e.host = self._host_copy(e.dev, e.nbytes)
            self.ledger.host(e.nbytes)
            self.stats["offloaded_bytes"] += e.nbytes
        self._free_device(k)

    def _host_copy(self, t: torch.Tensor, nbytes: int):
        if self.meta:
            return True
        raw = t.reshape(-1).view(torch.uint8)
        if t.device.type == "cuda":
            host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
            host.copy_(raw, non_blocking=False)
            return host
        host = np.empty(nbytes, dtype=np.uint8)  # outside the torch allocator: the "host pool"
        torch.from_numpy(host).copy_(raw)
        return host

    def _from_host(self, host, dtype: torch.dtype, nbytes: int, stream=None) -> torch.Tensor:
        itemsize = torch.empty((), dtype=dtype).element_size()
        if self.meta:
            return torch.empty(nbytes // itemsize, dtype=dtype, device="meta")
        t = torch.empty(nbytes // itemsize, dtype=dtype, device=self.device)
        src = host if isinstance(host, torch.Tensor) else torch.from_numpy(host)
        if stream is not None:
            with torch.cuda.stream(stream):
                t.view(torch.uint8).copy_(src, non_blocking=True)
        else:
            t.view(torch.uint8).copy_(src)
        return t

    def _temp_to_host(self, h: _Saved) -> None:
        h.host = self._host_copy(h.tensor.detach(), h.nbytes) if not self.meta else True
        self.ledger.free(h.tkey)
        self.ledger.host(h.nbytes)
        h.tensor = None

    def _materialize(self, k: int, mode: str | None = None) -> torch.Tensor:
        e = self.store[k]
        self.ledger.use(("F", k))
        if e.state == "dev":
            if e.event is not None:
                torch.cuda.current_stream(self.device).wait_event(e.event)
                e.event = None
            return e.dev
        if e.state == "host":
            e.dev = self._from_host(e.host, e.dtype, e.nbytes)
            e.state = "dev"
            self.ledger.alloc(("F", k), e.nbytes, "activation")
            self.stats["fetched_bytes"] += e.nbytes
            return e.dev
        return self._recompute(k, mode)

    def _recompute(self, k: int, mode: str | None) -> torch.Tensor:
        e = self.store[k]
        layer = self.graph.layers[e.owner]
        mode = mode or self.policy.recompute_mode.get(layer.name, "speed")
        brought: list[int] = []
        values: dict[int, torch.Tensor] = {}
        for j in layer.inputs:
            if j == INPUT:
                continue
            kj = self.key_of.get(j)
            if kj is not None and self.store[kj].state != "dev":
                brought.append(kj)
                self._materialize(kj, mode)
            values[j] = self._value(j)
        with torch.no_grad(), _replay(layer, self.rng.get(e.owner), self.device):
            r = self.graph.call(layer, values, self.x)
        e.dev = r.reshape(-1)
        e.storage = None  # the recomputed tensor has a storage of its own
        e.state = "dev"
        self.ledger.alloc(("F", k), e.nbytes, "activation")
        self.stats["recomputed_layers"] += 1
        for kj in brought:  # speed-centric keeps what later backward steps need; memory-centric drops it
            if mode == "memory" or not any(isinstance(u, int) for u in self.store[kj].bwd_users):
                self._free_device(kj)
        return e.dev

    def _prefetch(self, pos: int) -> None:
        """Start copying the host-resident tensors of the next backward step to the device (CUDA)."""
        if self.stream is None or pos < 0:
            return
        nxt = self.route[pos]
        for k in self.needs.get(nxt, ()):
            e = self.store[k]
            if e.state == "host":
                self.stream.wait_stream(torch.cuda.current_stream(self.device))
                e.dev = self._from_host(e.host, e.dtype, e.nbytes, stream=self.stream)
                e.event = torch.cuda.Event()
                e.event.record(self.stream)
                e.state = "dev"
                self.ledger.alloc(("F", k), e.nbytes, "activation")
                self.stats["prefetched_bytes"] += e.nbytes

    def _release(self, k: int, final: bool) -> None:
        e = self.store.get(k)
        if e is None:
            return
        self._free_device(k)
        if final and e.host is not None:
            self.ledger.host(-e.nbytes)
            e.host = None
            e.state = "gone"
        if final:
            pins, e.pins = e.pins, []
            for kj in pins:
                src = self.store[kj]
                src.bwd_users.discard(("R", k))
                if not src.bwd_users and src.fwd_left <= 0 and self.policy.free_dead:
                    self._release(kj, final=True)

    # -- loss and backward ------------------------------------------------------------------------------
    def _loss(self, target, loss_fn) -> torch.Tensor:
        o = self.graph.output
        leaf = self._value(o).detach().requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(leaf, target) if loss_fn is not None else leaf.sum()
            (g,) = torch.autograd.grad(loss, leaf)
        self._hold_grad(o, g)
        k = self.key_of.get(o)
        if k is not None:
            e = self.store[k]
            e.fwd_left -= 1
            if e.fwd_left == 0:
                self._forward_dead(k)
        self.ledger.end_step("loss")
        return loss.detach()

    def _hold_grad(self, i: int, g: torch.Tensor) -> None:
        if i in self.G:
            self.G[i] = self.G[i] + g
            old = self._gkey.pop(i)
            self._unhold(old)
        else:
            self.G[i] = g
        k = _skey(self.G[i])
        self._gkey[i] = k
        self.g_holders[k] = self.g_holders.get(k, 0) + 1
        self.ledger.alloc(("G", k), self.G[i].untyped_storage().nbytes(), "gradient")

    def _unhold(self, k: int) -> None:
        self.g_holders[k] -= 1
        if self.g_holders[k] == 0:
            del self.g_holders[k]
            self.ledger.free(("G", k))

    def _drop_grad(self, i: int) -> None:
        self.G.pop(i, None)
        k = self._gkey.pop(i, None)
        if k is not None:
            self._unhold(k)

    def _backward(self, i: int) -> None:
        layer = self.graph.layers[i]
        pos = self.route.index(i)
        targets = [leaf for _, leaf in self.leaves.get(i, [])] + self.params.get(i, [])
        need = pneed = 0
        if i in self.G and targets and self.out[i].requires_grad:
            for k in self.needs.get(i, ()):
                self._materialize(k)
                need += self.store[k].nbytes
            self._prefetch(pos - 1)
            for h in self.temps.get(i, []):
                if h.host is not None:
                    self._unpack(h)
            need += self.G[i].untyped_storage().nbytes() + sum(h.nbytes for h in self.temps.get(i, []))
            grads = torch.autograd.grad(self.out[i], targets, self.G[i], allow_unused=True)
            n_leaves = len(self.leaves[i])
            for (j, _), g in zip(self.leaves[i], grads[:n_leaves]):
                if g is not None:
                    need += g.numel() * g.element_size()
                    self._hold_grad(j, g)
            for p, g in zip(self.params[i], grads[n_leaves:]):
                if g is None:
                    continue
                need += g.numel() * g.element_size()
                pneed += g.numel() * g.element_size()
                if p.grad is None:
                    p.grad = g
                    self.ledger.alloc(("P", id(p)), g.numel() * g.element_size(), PARAM_GRAD)
                else:
                    p.grad = p.grad + g
            del grads
        self.layer_need[layer.name] = max(self._fwd_need.get(i, 0), need)
        self.layer_need_dynamic[layer.name] = max(self._fwd_need.get(i, 0), need - pneed)
        if self.policy.free_dead:
            self.out.pop(i, None)
            self.leaves.pop(i, None)
            for h in self.temps.pop(i, []):
                self.ledger.free(h.tkey)
                if h.host is not None:
                    self.ledger.host(-h.nbytes)
                h.tensor = h.host = None
            self._drop_grad(i)
            for k in self.needs.get(i, ()):
                e = self.store[k]
                e.bwd_users.discard(i)
                if not e.bwd_users and e.fwd_left <= 0:
                    self._release(k, final=True)
        self.ledger.end_step(f"B:{layer.name}")


def _params_of(layer, args) -> list[torch.Tensor]:
    out = [p for p in layer.params() if p.requires_grad]
    seen = {id(p) for p in out}

    def scan(a):
        if isinstance(a, torch.nn.Parameter) and a.requires_grad and id(a) not in seen:
            seen.add(id(a))
            out.append(a)
        elif isinstance(a, (tuple, list)):
            for x in a:
                scan(x)
        elif isinstance(a, dict):  # keyword arguments: F.conv2d(x, w, bias=b)
            for x in a.values():
                scan(x)

    scan(args)  # (positional, keyword)
    return out


def _rng_state(device: torch.device):
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


@contextlib.contextmanager
def _replay(layer, rng, device):
    """Recompute a layer exactly as in the forward pass: same random numbers, running statistics untouched."""
    buffers = [b.detach().clone() for b in layer.module.buffers()] if layer.module is not None else []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, enabled=rng is not None):
        if rng is not None:
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng:
                torch.cuda.set_rng_state(rng["cuda"], device)
        yield
    if buffers:
        with torch.no_grad():
            for b, saved in zip(layer.module.buffers(), buffers):
                b.copy_(saved)
