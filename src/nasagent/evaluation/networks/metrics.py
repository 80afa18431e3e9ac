"""Cost metrics of a network: parameters, FLOPs and measured CPU latency.

FLOPs are counted by torch's own ``FlopCounterMode`` on one forward pass of a single image (2 per
multiply-add, convolutions and linear layers). Latency is the median over repeated timed forward passes of
one image, in eval mode, with a fixed number of threads (1 by default) after warm-up runs.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def _forward(model, x, arch):
    return model(x) if arch is None else model(x, arch)


def count_flops(model: nn.Module, input_shape, arch=None) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            _forward(model, x, arch)
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)


def measure_latency(model: nn.Module, input_shape, arch=None, repeats: int = 30, warmup: int = 5, threads: int = 1, batch: int = 1) -> float:
    """Median seconds of one forward pass of ``batch`` images (on the model's device; CUDA is synchronised)."""
    was_training = model.training
    old_threads = torch.get_num_threads()
    model.eval()
    device = next(model.parameters()).device
    torch.set_num_threads(max(1, int(threads)))
    try:
        x = torch.zeros(batch, *input_shape, device=device)
        times = []
        with torch.no_grad():
            for i in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                _forward(model, x, arch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
        return float(statistics.median(times))
    finally:
        torch.set_num_threads(old_threads)
        model.train(was_training)
