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

Source, on both devices: the call runs under ``torch.profiler`` with ``profile_memory=True`` and the meter
replays the allocator's allocation/free events of that device in time order. A free is paired with its
allocation by address; a free of a block allocated before the call is skipped, which is the "no credit" rule
(the CPU profiler does not even record those; the CUDA caching allocator does). CUDA's own counter,
``torch.cuda.max_memory_allocated`` minus the allocated bytes at the start, would credit such frees: a call that
drops last step's 4 MiB of gradients and then allocates 8 MiB reads 4 MiB there. It is used only where the
profiler recorded no CUDA allocation at all (a torch build whose CUDA allocator does not report to the profiler),
and the result's ``source`` says so ("cuda-allocator" instead of "cuda-profiler"). Allocated, not reserved,
bytes in both cases. The profiler slows the call down: time a step separately, never inside ``measure_peak``.

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
    source: str  # "cpu-profiler", "cuda-profiler", or "cuda-allocator" (the fallback; see the module docstring)
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
    name = str(dev) if dev.index is not None else f"cuda:{torch.cuda.current_device()}"  # before fn may switch devices
    prof, result, seconds = _profiled(fn, args, kwargs, sync=lambda: torch.cuda.synchronize(dev))
    events = _allocation_events(prof, name)
    if events:
        peak, end = peak_of_allocations(events)
        return PeakMemory(peak, "cuda-profiler", end, None, seconds, result)
    peak = torch.cuda.max_memory_allocated(dev) - start  # credits frees of older blocks (module docstring)
    end = torch.cuda.memory_allocated(dev) - start  # no events also means a call that allocated nothing: 0 and 0
    return PeakMemory(max(int(peak), 0), "cuda-allocator", max(int(end), 0), None, seconds, result)


def _measure_cpu(fn, args, kwargs, rss: bool) -> PeakMemory:
    rss_start = _reset_rss_peak() if rss else None
    prof, result, seconds = _profiled(fn, args, kwargs)
    rss_peak = None
    if rss_start is not None:
        hwm = _proc_status().get("VmHWM")
        rss_peak = max(hwm - rss_start, 0) if hwm is not None else None
    peak, end = peak_of_allocations(_allocation_events(prof, "cpu"))
    return PeakMemory(peak, "cpu-profiler", end, rss_peak, seconds, result)


def _profiled(fn, args, kwargs, sync=None):
    """``fn(*args, **kwargs)`` under the profiler with memory events: (profiler, result, wall seconds)."""
    import warnings

    from torch.profiler import ProfilerActivity, profile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if sync is not None else [])  # as torch's default on a GPU
        with profile(activities=activities, profile_memory=True) as prof:
            t0 = time.perf_counter()
            result = fn(*args, **kwargs)
            if sync is not None:
                sync()  # the call's kernels (and their frees) finish inside the profiled window
            seconds = time.perf_counter() - t0
    return prof, result, seconds


def _allocation_events(prof, device: str) -> list[tuple[int, int, int]]:
    """(time in ns, address, size) of every allocator event on ``device`` ("cpu" or "cuda:i"); frees have a
    negative size."""
    events = []
    try:
        from torch._C._profiler import _EventType

        def walk(ev):
            if ev.tag == _EventType.Allocation and str(ev.extra_fields.device) == device:
                events.append((ev.start_time_ns, int(ev.extra_fields.ptr), int(ev.extra_fields.alloc_size)))
            for child in ev.children:
                walk(child)

        for root in prof.profiler.kineto_results.experimental_event_tree():
            walk(root)
    except (ImportError, AttributeError) as e:  # a torch without the event tree: no silent wrong answer
        raise NasagentError(f"this torch build's profiler does not expose allocation events ({e}); upgrade torch") from None
    return events


def peak_of_allocations(events) -> tuple[int, int]:
    """Peak and final sum of live bytes over ``(time, address, size)`` allocator events (frees negative), in time
    order. A free counts only against an allocation made within the events: freeing an older block gives no
    credit. An address may be reused after its free. Events with equal times keep the order they were recorded
    in (an allocator can free an older block and hand its address out again within one clock tick)."""
    live = peak = 0
    alive: dict[int, int] = {}  # address -> bytes allocated inside the call and not yet freed
    for _, ptr, size in sorted(events, key=lambda e: e[0]):
        if size >= 0:
            alive[ptr] = alive.get(ptr, 0) + size
            live += size
            peak = max(peak, live)
        elif ptr in alive:
            freed = min(-size, alive.pop(ptr))
            live -= freed
    return peak, live


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
