"""Policies for the memory runtime: the thesis' ladder, cost-aware recomputation, a planner under a limit,
and replays of a step's allocation log through SuperNeurons' first-fit pool and LRU tensor cache."""

from __future__ import annotations

import copy
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from nasagent.core import NasagentError
from nasagent.systems.memexec import OFFLOAD, RECOMPUTE, LayerwiseRuntime, MemoryPolicy
from nasagent.systems.memgraph import LayerGraph, trace_layers

STAGES = ("baseline", "liveness", "offload", "recompute")


def _meta_copy(model: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(model).to("meta")


def _meta_input(example) -> torch.Tensor:
    if isinstance(example, torch.Tensor):
        return torch.empty(example.shape, dtype=example.dtype, device="meta")
    return torch.empty(tuple(int(d) for d in example), device="meta")


class DryRunner:
    """Steps of a meta-device copy of a model: the runtime's ledger for any policy, without computing."""

    def __init__(self, model: torch.nn.Module, example):
        self.model = _meta_copy(model)
        self.graph = trace_layers(self.model)
        self.x = _meta_input(example)

    def __call__(self, policy: MemoryPolicy) -> LayerwiseRuntime:
        for p in self.model.parameters():
            p.grad = None
        rt = LayerwiseRuntime(self.model, policy, self.graph)
        rt.step(self.x)
        return rt


def dry_run(model: torch.nn.Module, example, policy: MemoryPolicy) -> LayerwiseRuntime:
    """One step of ``policy`` on a meta-device copy of the model (see ``DryRunner``)."""
    return DryRunner(model, example)(policy)


def superneurons_policy(graph: LayerGraph, stage: str, modes: dict[str, str] | None = None,
                        fanout_checkpoints: bool = False) -> MemoryPolicy:
    """The thesis' ladder: baseline (nothing freed early), liveness, + offload of convolution outputs,
    + recomputation of every other output (convolutions stay checkpoints, dense layers stay resident).

    ``fanout_checkpoints`` (ours, off by default = the thesis): in the last stage, a cheap output that feeds
    more than one layer (a residual block's output, read by the next convolution and by the skip path) is
    offloaded like a convolution output instead of recomputed. Recomputing it during a backward step means
    rebuilding the join that made it - both its inputs and its output at once - beside the gradients that
    step already holds; fetching it costs one tensor.
    """
    if stage not in STAGES:
        raise NasagentError(f"unknown memory stage {stage!r}; choose one of {', '.join(STAGES)}")
    if stage == "baseline":
        return MemoryPolicy("baseline", free_dead=False)
    if stage == "liveness":
        return MemoryPolicy("liveness")
    actions = {l.name: OFFLOAD for l in graph.layers if l.kind == "conv"}
    if stage == "offload":
        return MemoryPolicy("offload", actions=actions)
    for l in graph.layers:
        if l.kind == "cheap":
            actions[l.name] = OFFLOAD if fanout_checkpoints and len(set(l.consumers)) > 1 else RECOMPUTE
    name = "recompute-fanout" if fanout_checkpoints else "recompute"
    return MemoryPolicy(name, actions=actions, recompute_mode=dict(modes or {}))


def recompute_segments(graph: LayerGraph, policy: MemoryPolicy) -> list[list[int]]:
    """Connected runs of recomputed layers; each is rebuilt from the checkpoints around it."""
    rec = {l.index for l in graph.layers if policy.actions.get(l.name) == RECOMPUTE}
    parent = {i: i for i in rec}

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in rec:
        for j in graph.layers[i].inputs:
            if j in rec:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in sorted(rec):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def cost_aware_modes(model, example, policy: MemoryPolicy, l_peak: int | None = None) -> dict[str, str]:
    """Sec. 8.3.4: per segment, speed-centric when its memory (sum of its outputs plus the largest backward
    need inside it) stays within l_peak = max_i l_i, memory-centric otherwise."""
    dry = DryRunner(model, example)
    graph = dry.graph
    probe = dry(MemoryPolicy("liveness"))
    l_peak = l_peak if l_peak is not None else max(probe.layer_need.values())
    modes = {}
    for seg in recompute_segments(graph, policy):
        names = [graph.layers[i].name for i in seg]
        cost = sum(probe.layer_out_bytes[n] for n in names) + max(probe.layer_need.get(n, 0) for n in names)
        mode = "speed" if cost <= l_peak else "memory"
        modes.update({n: mode for n in names})
    return modes


def ladder(model, example, fanout_checkpoints: bool = False) -> dict[str, MemoryPolicy]:
    """The four stages of Fig. 8.10 for this model, the last with cost-aware recomputation modes
    (``fanout_checkpoints``: see ``superneurons_policy``)."""
    graph = trace_layers(_meta_copy(model))
    out = {s: superneurons_policy(graph, s, fanout_checkpoints=fanout_checkpoints) for s in STAGES}
    out["recompute"].recompute_mode = cost_aware_modes(model, example, out["recompute"])
    return out


@dataclass
class MachineRates:
    """Throughputs the planner trades against each other: arithmetic (FLOP/s) and host copies (bytes/s)."""

    flops: float = 2e10
    copy_bytes: float = 5e9

    @classmethod
    def measure(cls, device: str = "cpu") -> MachineRates:
        dev = torch.device(device)
        a = torch.randn(512, 512, device=dev)
        b = torch.randn(2**22, device=dev)
        host = torch.empty(2**22, pin_memory=dev.type == "cuda")

        def timed(fn):
            fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            for _ in range(3):
                fn()
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            return (time.perf_counter() - t) / 3

        return cls(flops=2 * 512**3 / timed(lambda: a @ a), copy_bytes=4 * 2**22 / timed(lambda: host.copy_(b)))


@dataclass
class MemoryPlan:
    policy: MemoryPolicy
    estimated_peak: int
    limit: int
    largest_layer: str
    largest_layer_bytes: int
    extra_seconds: float  # planner's estimate of offload + recompute time per step
    steps: list = field(default_factory=list)  # (layer, action, estimated peak after)


def plan_memory(model, example, limit_bytes: int, rates: MachineRates | None = None, max_rounds: int = 10_000) -> MemoryPlan:
    """Per-layer keep/offload/recompute choices whose estimated step peak fits ``limit_bytes``.

    Greedy, cheapest first: starting from liveness, take the output alive at the current peak whose
    cheaper treatment (offload: two host copies; recompute: its forward FLOPs) costs the least time per
    byte saved, apply it, re-estimate (a meta-device dry run), and repeat. Limits below the largest single
    layer's need cannot be met by any schedule and raise ``NasagentError``.
    """
    rates = rates or MachineRates()
    limit = int(limit_bytes)
    dry = DryRunner(model, example)
    base = dry(MemoryPolicy("plan"))
    need_layer, need = max(base.layer_need.items(), key=lambda kv: kv[1])
    if limit < need:
        raise NasagentError(
            f"memory limit {limit / 2**20:.2f} MiB is below the largest single layer's need ({need_layer}: "
            f"{need / 2**20:.2f} MiB: its inputs, output, their gradients and its weight gradients); no schedule fits. "
            "Raise the limit or shrink the batch"
        )
    graph = base.graph
    policy = MemoryPolicy("plan")
    peak, rt, steps, extra = base.ledger.peak, base, [], 0.0
    decided: set[str] = set()
    for _ in range(max_rounds):
        if peak <= limit:
            break
        best = None
        for key in rt.ledger.peak_live:
            if key[0] != "F":
                continue
            owner = rt.store[key[1]].owner
            layer = graph.layers[owner]
            if layer.name in decided or not rt.store[key[1]].droppable:
                continue
            nbytes = rt.store[key[1]].nbytes
            t_off = 2 * nbytes / rates.copy_bytes
            t_rec = rt.layer_flops.get(layer.name, 0.0) / rates.flops
            action, cost = (RECOMPUTE, t_rec) if t_rec < t_off else (OFFLOAD, t_off)
            score = cost / max(nbytes, 1)
            if best is None or score < best[0]:
                best = (score, layer.name, action, cost)
        if best is None:
            if any(m != "memory" for m in policy.recompute_mode.values()) or any(a == RECOMPUTE for a in policy.actions.values()):
                policy.recompute_mode = {n: "memory" for n, a in policy.actions.items() if a == RECOMPUTE}
                rt = dry(policy)
                if rt.ledger.peak < peak:
                    peak = rt.ledger.peak
                    steps.append(("*", "memory-centric", peak))
                    continue
            break
        _, name, action, cost = best
        policy.actions[name] = action
        decided.add(name)
        extra += cost
        rt = dry(policy)
        peak = rt.ledger.peak
        steps.append((name, action, peak))
    if peak > limit:
        raise NasagentError(
            f"memory limit {limit / 2**20:.2f} MiB cannot be met: the best schedule found needs {peak / 2**20:.2f} MiB "
            f"(largest single layer: {need_layer}, {need / 2**20:.2f} MiB; parameter gradients and the tensors a "
            "backward step holds add to it)"
        )
    return MemoryPlan(policy, peak, limit, need_layer, need, extra, steps)


# -- replays of the allocation log (SuperNeurons' allocator and tensor cache) ----------------------------------
@dataclass
class PoolStats:
    peak_blocks_used: int
    pool_bytes_needed: int  # highest block address touched: what a pre-allocated pool must hold
    live_peak_bytes: int
    fragmentation: float  # 1 - live_peak / pool_bytes_needed
    allocations: int


def first_fit_replay(events, block: int = 1024) -> PoolStats:
    """Replay alloc/free events through a first-fit pool of ``block``-byte blocks with coalescing (Sec. 8.3.2)."""
    free_list: list[list[int]] = [[0, 1 << 62]]  # [start block, n blocks], sorted by start
    where: dict = {}
    used = top = peak_used = live = live_peak = count = 0
    for kind, key, nbytes in events:
        if kind == "alloc":
            n = max(1, -(-int(nbytes) // block))
            for idx, (start, size) in enumerate(free_list):
                if size >= n:
                    where[key] = (start, n)
                    if size == n:
                        free_list.pop(idx)
                    else:
                        free_list[idx] = [start + n, size - n]
                    break
            used += n
            live += int(nbytes)
            count += 1
            top = max(top, where[key][0] + n)
            peak_used = max(peak_used, used)
            live_peak = max(live_peak, live)
        elif kind == "free" and key in where:
            start, n = where.pop(key)
            used -= n
            live -= int(nbytes)
            _insert_free(free_list, start, n)
    need = top * block
    return PoolStats(peak_used, need, live_peak, 1 - live_peak / need if need else 0.0, count)


def _insert_free(free_list: list[list[int]], start: int, n: int) -> None:
    import bisect

    idx = bisect.bisect_left(free_list, [start, 0])
    free_list.insert(idx, [start, n])
    if idx + 1 < len(free_list) and free_list[idx][0] + free_list[idx][1] == free_list[idx + 1][0]:
        free_list[idx][1] += free_list.pop(idx + 1)[1]
    if idx > 0 and free_list[idx - 1][0] + free_list[idx - 1][1] == free_list[idx][0]:
        free_list[idx - 1][1] += free_list.pop(idx)[1]


def lru_replay(events, capacity: int) -> dict:
    """Replay a step's tensor uses through an LRU tensor cache of ``capacity`` bytes (Alg. 9).

    A tensor is evicted to the host only when a new one does not fit, least recently used first, and never
    while it is locked: every tensor allocated or used within the current layer step stays locked until the
    step ends (a ``("step", label, 0)`` event, which the runtime's ledger writes after each step). When every
    cached tensor is locked and the new one still does not fit, the step's working set exceeds the cache
    (Alg. 9 leaves this undefined): the replay admits the tensor anyway and books the excess in
    ``locked_overflow_bytes`` (its largest value over the step), so a capacity below a layer's need shows up
    as a number rather than a hang. Returns bytes moved each way, the misses and that overflow.
    """
    cache: OrderedDict = OrderedDict()
    out_bytes = in_bytes = misses = overflow = 0
    used = 0
    evicted: set = set()
    locked: set = set()
    for kind, key, nbytes in events:
        if kind == "step":
            locked.clear()
            continue
        if kind == "free":
            if key in cache:
                used -= cache.pop(key)
            evicted.discard(key)
            locked.discard(key)
            continue
        nbytes = int(nbytes)
        locked.add(key)
        if key in cache:
            cache.move_to_end(key)
            continue
        while used + nbytes > capacity:
            victim = next((k for k in cache if k not in locked), None)
            if victim is None:
                overflow = max(overflow, used + nbytes - capacity)
                break
            size = cache.pop(victim)
            used -= size
            out_bytes += size
            evicted.add(victim)
        if kind == "use" and key in evicted:
            in_bytes += nbytes
            misses += 1
            evicted.discard(key)
        cache[key] = nbytes
        used += nbytes
    return {"offload_bytes": out_bytes, "fetch_bytes": in_bytes, "misses": misses, "locked_overflow_bytes": overflow}
