"""The project's one peak-memory meter: how many bytes of tensors a call had alive at its worst moment.

What counts (the same rule on every device):

- Every block the *torch allocator* hands out while ``fn`` runs: activations, autograd's saved tensors,
  gradients (also parameter ``.grad`` tensors created inside the call), optimizer state created inside the
  call, temporaries and workspaces of operators. A block counts from its allocation to its release.
- What was already allocated before the call (parameters, the input batch, ``.grad`` tensors from an earlier
  step) does not count, and releasing such a block inside the call gives no credit: the figure is the
  high-water mark of *new* allocations, never negative.
- Memory outside the torch allocator does not count: numpy arrays, Python objects, the host pool of the
  memory runtime's offloading (``systems.memory``), the interpreter itself.

Sources: on CUDA, ``torch.cuda.max_memory_allocated`` minus the allocated bytes at the start (the caching
allocator's *allocated*, not *reserved*, bytes). On CPU there is no allocator counter, so the call runs under
``torch.profiler`` with ``profile_memory=True`` and the meter replays the allocator's allocation/free events
in time order. The profiler slows the call down: time a step separately, never inside ``measure_peak``.

Cross-check: on Linux the process's resident-set high-water mark is reset before the call
(``/proc/self/clear_refs``) and read after, giving ``rss_peak_bytes`` (peak RSS minus RSS at the start).
It also sees memory outside the torch allocator and allocator caching, so it is an upper-bound-ish sanity
check, not the figure: small blocks reuse freed heap without changing RSS, and large ones show up in both.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nasagent.core import NasagentError


@dataclass
class PeakMemory:
    """Result of ``measure_peak``; ``peak_bytes`` is the figure, the rest is context."""

    peak_bytes: int
    source: str  # "cuda-allocator" or "cpu-profiler"
    end_bytes: int  # allocated inside the call and still alive after it
    rss_peak_bytes: int | None  # resident-set high-water mark over the call's start (Linux CPU only)
    seconds: float  # wall time of the measured call, profiler overhead included
    result: Any = None

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


def measure_peak(fn: Callable, *args, device: str | None = None, rss: bool = True, **kwargs) -> PeakMemory:
    """Run ``fn(*args, **kwargs)`` once and report its peak of live tensor bytes (see the module docstring).

    ``device`` is "cpu" or "cuda[:i]"; by default CUDA when available, else CPU. Run one warm-up call first
    when you want steady-state figures (the first step also allocates lazily created state).
    """
    import torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise NasagentError(f"measure_peak was asked for {device} but CUDA is not available; use device='cpu'")
        return _measure_cuda(fn, args, kwargs, dev)
    if dev.type != "cpu":
        raise NasagentError(f"measure_peak supports cpu and cuda devices, not {device!r}")
    return _measure_cpu(fn, args, kwargs, rss)


def _measure_cuda(fn, args, kwargs, dev) -> PeakMemory:
    import torch

    torch.cuda.synchronize(dev)
    start = torch.cuda.memory_allocated(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(dev) - start
    end = torch.cuda.memory_allocated(dev) - start
    return PeakMemory(max(int(peak), 0), "cuda-allocator", int(end), None, seconds, result)


def _measure_cpu(fn, args, kwargs, rss: bool) -> PeakMemory:
    import warnings

    from torch.profiler import ProfilerActivity, profile

    rss_start = _reset_rss_peak() if rss else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            seconds = time.perf_counter() - t0
    rss_peak = None
    if rss_start is not None:
        hwm = _proc_status().get("VmHWM")
        rss_peak = max(hwm - rss_start, 0) if hwm is not None else None
    peak, end = _replay_allocations(prof)
    return PeakMemory(peak, "cpu-profiler", end, rss_peak, seconds, result)


def _replay_allocations(prof) -> tuple[int, int]:
    """Peak and final sum of the allocator's (size, time) events recorded by the profiler."""
    events = []
    try:
        from torch._C._profiler import _EventType

        def walk(ev):
            if ev.tag == _EventType.Allocation and str(ev.extra_fields.device).startswith("cpu"):
                events.append((ev.start_time_ns, int(ev.extra_fields.alloc_size)))
            for child in ev.children:
                walk(child)

        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root)
    except (ImportError, AttributeError) as e:  # a torch without the event tree: no silent wrong answer
        raise NasagentError(f"this torch build's profiler does not expose allocation events ({e}); use CUDA or upgrade torch") from None
    events.sort(key=lambda e: e[0])
    live = peak = 0
    for _, size in events:
        live += size
        peak = max(peak, live)
    return peak, max(live, 0)


def _proc_status() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _reset_rss_peak() -> int | None:
    """Reset the kernel's peak-RSS counter for this process; return the RSS now (None off Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _proc_status().get("VmRSS")
