"""Compressed gradient exchange for ``DistributedDataParallel`` and a counter of bytes sent through collectives.

``register_compression(ddp_model, codec)`` installs a DDP communication hook: each gradient bucket is
encoded by the codec into one fixed-length ``uint8`` payload, the payloads of all workers are exchanged
with ``all_gather`` (the thesis exchanges every method's gradients with all-gather, Sec. 7.4), and every
worker decodes all payloads and averages them. Decoding is deterministic and every worker decodes the
same payloads in the same order, so the workers' averaged gradients - and hence their parameters - stay
bitwise identical; the thesis' periodic parameter re-broadcast is therefore not needed here
(``resync_parameters`` exists for trainers that want it anyway).

The FFT runs per DDP bucket. For the thesis' single global gradient vector construct DDP with a
``bucket_cap_mb`` larger than the model's gradients.

``count_collectives()`` wraps ``torch.distributed``'s collectives in this process and adds up the bytes of
the tensors each rank hands to them (all-reduce: the buffer; all-gather: this rank's input; broadcast: the
tensor, on the source rank only). With 2 workers and ring algorithms this equals the bytes each worker puts
on the wire; it counts every collective issued from Python, also those of PyTorch's own hooks (PowerSGD,
all-reduce).
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from nasagent.core import NasagentError
from nasagent.systems.compression import Codec


@dataclass
class WireCounter:
    """Bytes and calls this rank contributed to collectives, by collective name."""

    bytes: dict[str, int] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.bytes.values())

    def add(self, name: str, nbytes: int) -> None:
        self.bytes[name] = self.bytes.get(name, 0) + int(nbytes)
        self.calls[name] = self.calls.get(name, 0) + 1

    def reset(self) -> None:
        self.bytes.clear()
        self.calls.clear()


def _nbytes(t) -> int:
    if isinstance(t, (list, tuple)):
        return sum(_nbytes(x) for x in t)
    return t.numel() * t.element_size() if isinstance(t, torch.Tensor) else 0


@contextlib.contextmanager
def count_collectives(counter: WireCounter | None = None):
    """Count the bytes this rank sends through ``torch.distributed`` collectives inside the block."""
    counter = counter if counter is not None else WireCounter()

    def wrap(name, fn, sent):
        def counted(*args, **kwargs):
            counter.add(name, sent(args, kwargs))
            return fn(*args, **kwargs)

        return counted

    def arg(args, kwargs, i, key):
        return args[i] if len(args) > i else kwargs.get(key)

    def on_source(args, kwargs):
        src = arg(args, kwargs, 1, "src")
        return _nbytes(arg(args, kwargs, 0, "tensor")) if src is None or src == dist.get_rank() else 0

    senders = {
        "all_reduce": lambda a, k: _nbytes(arg(a, k, 0, "tensor")),
        "all_gather": lambda a, k: _nbytes(arg(a, k, 1, "tensor")),
        "all_gather_into_tensor": lambda a, k: _nbytes(arg(a, k, 1, "input_tensor")),
        "reduce_scatter_tensor": lambda a, k: _nbytes(arg(a, k, 1, "input")),
        "all_to_all_single": lambda a, k: _nbytes(arg(a, k, 1, "input")),
        "broadcast": on_source,
    }
    saved = {name: getattr(dist, name) for name in senders if hasattr(dist, name)}
    try:
        for name, fn in saved.items():
            setattr(dist, name, wrap(name, fn, senders[name]))
        yield counter
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)


@dataclass
class CompressionState:
    """What the hook keeps between steps: the codec, error-feedback residuals, counters."""

    codec: Codec
    process_group: object = None
    error_feedback: bool = False
    simulate_single: bool = False
    track_error: bool = False
    residuals: dict = field(default_factory=dict)
    steps: int = 0
    last_error: float = float("nan")  # alpha of the last bucket this rank compressed (Assumption 3)


def compression_hook(state: CompressionState, bucket) -> torch.futures.Future:
    """DDP comm hook: encode the bucket, all-gather the payloads, decode and average them."""
    group = state.process_group if state.process_group is not None else dist.group.WORLD
    world = dist.get_world_size(group)
    flat = bucket.buffer()
    n = flat.numel()
    if world == 1 and not state.simulate_single:  # nothing to exchange: the exact gradient, nothing sent
        fut = torch.futures.Future()
        fut.set_result(flat)
        return fut
    x = flat.detach().to(torch.float32)
    # residuals belong to parameters: DDP rebuilds its buckets after the first step (in gradient-ready order), so
    # a bucket's index and size say nothing about which parameter sits where in it
    params = list(bucket.parameters())
    sizes = [p.numel() for p in params]
    per_param = sum(sizes) == n
    if state.error_feedback:
        if per_param:
            x = x + torch.cat([state.residuals.get(id(p), torch.zeros(k, device=x.device)) for p, k in zip(params, sizes)])
        else:
            x = x + state.residuals.get(tuple(map(id, params)), torch.zeros_like(x))
    payload = state.codec.encode(x)
    state.steps += bucket.is_last()
    if state.error_feedback or state.track_error or world == 1:
        own = state.codec.decode(payload, n)
        if state.error_feedback:
            left = x - own
            if per_param:
                state.residuals.update({id(p): r for p, r in zip(params, torch.split(left, sizes))})
            else:
                state.residuals[tuple(map(id, params))] = left
        denom = float(x.norm())
        state.last_error = float((x - own).norm()) / denom if denom > 0 else 0.0
        if world == 1:
            fut = torch.futures.Future()
            fut.set_result(own.to(flat.dtype))
            return fut
    gathered = [torch.empty_like(payload) for _ in range(world)]
    work = dist.all_gather(gathered, payload, group=group, async_op=True)

    def average(_):
        total = torch.zeros(n, dtype=torch.float32, device=flat.device)
        for p in gathered:  # fixed rank order: every worker computes the same sum
            total += state.codec.decode(p, n)
        return (total / world).to(flat.dtype)

    return work.get_future().then(average)


compression_hook.__annotations__["return"] = torch.futures.Future[torch.Tensor]  # DDP checks the real type


def register_compression(model, codec: Codec, *, error_feedback: bool = False, process_group=None,
                         simulate_single: bool = False, track_error: bool = False) -> CompressionState:
    """Make a ``DistributedDataParallel`` model exchange gradients through ``codec``.

    ``error_feedback`` adds each worker's compression residual to its next gradient (off in the thesis);
    ``track_error`` records alpha = ||g - decode(encode(g))|| / ||g|| of the last bucket in ``state.last_error``.
    A process group of one has nothing to exchange: the hook then passes gradients through unchanged (with a
    warning), or, with ``simulate_single=True``, applies the codec's loss locally to study its effect.
    """
    from torch.nn.parallel import DistributedDataParallel

    if not isinstance(model, DistributedDataParallel):
        raise NasagentError(f"register_compression needs a DistributedDataParallel model, got {type(model).__name__}")
    if not isinstance(codec, Codec):
        raise NasagentError(f"codec must be a nasagent Codec (see systems.compression.make_codec), got {type(codec).__name__}")
    group = process_group if process_group is not None else dist.group.WORLD
    if dist.get_world_size(group) == 1 and not simulate_single:
        warnings.warn("gradient compression on a process group of one: nothing is sent, gradients pass through unchanged", stacklevel=2)
    state = CompressionState(codec, process_group, error_feedback, simulate_single, track_error)
    model.register_comm_hook(state, compression_hook)
    return state


def resync_parameters(model, process_group=None) -> None:
    """Broadcast rank 0's parameters to every worker (the thesis re-broadcasts every 10 iterations)."""
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=0, group=process_group)
