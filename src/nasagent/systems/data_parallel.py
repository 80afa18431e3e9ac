"""Data-parallel training with a chosen gradient exchange: the test bed of the thesis' Ch. 7 experiments.

``train_data_parallel(build_model, data, DPConfig(...))`` starts ``workers`` processes on this machine
(``torch.multiprocessing`` spawn, a free local TCP port), wraps the model in ``DistributedDataParallel`` and
trains it with SGD + momentum on disjoint shards of each batch. Gradients travel by:

- "none": PyTorch's all-reduce hook (uncompressed float32), the baseline;
- "powersgd": PyTorch's built-in PowerSGD hook (low-rank, with its own error feedback);
- a codec name of ``systems.compression`` ("fft", "topk", "qsgd", "terngrad"): our all-gather hook.

Bytes are counted with ``count_collectives`` over the training steps only (not DDP's initial broadcast).
Backend "gloo" on CPU; "nccl" with one GPU per worker when ``device="cuda"``.
"""

from __future__ import annotations

import copy

import os
import socket
import time
import traceback
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from nasagent.core import NasagentError

EXCHANGES = ("none", "powersgd", "fft", "topk", "qsgd", "terngrad")


@dataclass
class DPConfig:
    """One data-parallel training run. Learning rate drops 10x at each fraction of ``steps`` in ``lr_decay_at``."""

    method: str = "none"
    codec_options: dict = field(default_factory=dict)
    error_feedback: bool = False
    workers: int = 2
    steps: int = 600
    batch_size: int = 32  # per worker
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_decay_at: tuple[float, ...] = (0.5, 0.75)
    theta_schedule: object = None  # a compression.ThetaSchedule; updates codec.theta every step
    powersgd_rank: int = 1
    seed: int = 0
    backend: str = "gloo"
    device: str = "cpu"
    resync_every: int = 0  # thesis: 10; 0 = never (workers stay bitwise identical, see comm_hook)
    eval_every: int = 0  # steps between test-accuracy points of the curve (0: only at the end)
    bucket_cap_mb: float = 256.0  # one bucket = the thesis' single gradient vector for small models
    threads: int = 1
    track_error: bool = False
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.method not in EXCHANGES:
            raise NasagentError(f"unknown gradient exchange {self.method!r}; choose one of {', '.join(EXCHANGES)}")
        if int(self.workers) < 1:
            raise NasagentError(f"workers must be >= 1, got {self.workers}")
        if self.backend not in ("gloo", "nccl"):
            raise NasagentError(f"backend must be gloo or nccl, got {self.backend!r}")
        if self.backend == "nccl" and not self.device.startswith("cuda"):
            raise NasagentError("the nccl backend needs device='cuda'")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_data_parallel(build_model: Callable, data, config: DPConfig) -> dict:
    """Train with ``config.workers`` processes; return rank 0's metrics (accuracy, bytes, times, curve).

    ``build_model`` must be picklable (a module-level function or ``functools.partial`` of one); every worker
    calls it after seeding torch with ``config.seed``. ``data`` is an ``evaluation.datasets.Dataset``.
    """
    import torch
    import torch.multiprocessing as mp

    if config.device.startswith("cuda") and torch.cuda.device_count() < config.workers:
        raise NasagentError(f"{config.workers} CUDA workers need as many GPUs; {torch.cuda.device_count()} visible")
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = free_port()
    procs = [ctx.Process(target=_worker, args=(r, port, build_model, data, config, queue), daemon=True) for r in range(config.workers)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + config.timeout_s
    result = None
    errors = []
    for _ in range(config.workers):
        while queue.empty():
            if time.monotonic() > deadline or not any(p.is_alive() for p in procs) and queue.empty():
                break
            time.sleep(0.05)
        if queue.empty():
            break
        kind, rank, payload = queue.get()
        if kind == "error":
            errors.append(f"worker {rank}: {payload}")
        elif rank == 0:
            result = payload
    for p in procs:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
    if errors:
        raise NasagentError("data-parallel training failed:\n" + "\n".join(errors))
    if result is None:
        raise NasagentError(f"data-parallel training produced no result (timeout {config.timeout_s}s or a worker died)")
    return result


def _worker(rank: int, port: int, build_model, data, config: DPConfig, queue) -> None:
    try:
        queue.put(("ok", rank, _train(rank, port, build_model, data, config)))
    except Exception:  # report, never hang the parent
        queue.put(("error", rank, traceback.format_exc(limit=6)))


def _train(rank: int, port: int, build_model, data, config: DPConfig) -> dict:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from nasagent.systems.comm_hook import WireCounter, count_collectives, register_compression, resync_parameters
    from nasagent.systems.compression import make_codec

    torch.set_num_threads(config.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(config.threads))
    dist.init_process_group(config.backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=config.workers)
    try:
        device = torch.device(f"cuda:{rank}" if config.device.startswith("cuda") else "cpu")
        torch.manual_seed(config.seed)
        # A ``functools.partial`` holding built modules reaches every worker through torch's multiprocessing
        # pickler, which puts their tensors in shared memory: without a private copy all workers would step the
        # same parameters in place, racing each other.
        model = copy.deepcopy(build_model()).to(device)
        n_params = sum(p.numel() for p in model.parameters())
        ddp = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None, bucket_cap_mb=config.bucket_cap_mb)
        state = None
        if config.method == "none":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

            ddp.register_comm_hook(None, default_hooks.allreduce_hook)
        elif config.method == "powersgd":
            from torch.distributed.algorithms.ddp_comm_hooks import powerSGD_hook

            state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=config.powersgd_rank,
                                                start_powerSGD_iter=2, min_compression_rate=1.0, random_seed=config.seed)
            ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
        else:
            options = dict(config.codec_options)
            if config.method in ("qsgd", "terngrad"):  # stochastic rounding: each worker its own stream, or the
                options.setdefault("seed", config.seed * 1000 + rank)  # average keeps every worker's identical noise
            codec = make_codec(config.method, **options)
            state = register_compression(ddp, codec, error_feedback=config.error_feedback, track_error=config.track_error)
        opt = torch.optim.SGD(ddp.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
        x_train = torch.as_tensor(data.x_train)
        y_train = torch.as_tensor(data.y_train)
        n = len(y_train)
        per_epoch = max(1, n // (config.batch_size * config.workers))
        decay_steps = [int(f * config.steps) for f in config.lr_decay_at]
        counter = WireCounter()
        curve, alphas, thetas = [], [], []
        compute_s = 0.0
        t_start = time.perf_counter()
        step = 0
        with count_collectives(counter):
            while step < config.steps:
                perm = torch.from_numpy(np.random.default_rng([config.seed, step // per_epoch]).permutation(n))
                for b in range(per_epoch):
                    if step >= config.steps:
                        break
                    lr = config.lr * 0.1 ** sum(step >= d for d in decay_steps)
                    for g in opt.param_groups:
                        g["lr"] = lr
                    if config.theta_schedule is not None and hasattr(getattr(state, "codec", None), "theta"):
                        state.codec.theta = float(config.theta_schedule(step, lr))
                        thetas.append(state.codec.theta)
                    start = (b * config.workers + rank) * config.batch_size
                    idx = perm[start : start + config.batch_size]
                    t0 = time.perf_counter()
                    opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(ddp(x_train[idx].to(device)), y_train[idx].to(device))
                    loss.backward()
                    opt.step()
                    compute_s += time.perf_counter() - t0
                    if config.track_error and state is not None and hasattr(state, "last_error"):
                        alphas.append(state.last_error)
                    step += 1
                    if config.resync_every and step % config.resync_every == 0:
                        resync_parameters(model)
                    if config.eval_every and step % config.eval_every == 0 and rank == 0:
                        curve.append((step, _accuracy(model, data.x_test, data.y_test, device)))
        train_s = time.perf_counter() - t_start
        identical = _params_identical(model)
        out = None
        if rank == 0:
            out = {
                "test_acc": _accuracy(model, data.x_test, data.y_test, device),
                "val_acc": _accuracy(model, data.x_val, data.y_val, device),
                "curve": curve,
                "bytes_per_step": counter.total / max(step, 1),
                "bytes_by_collective": {k: v / max(step, 1) for k, v in counter.bytes.items()},
                "uncompressed_bytes_per_step": 4 * n_params,
                "n_params": n_params,
                "steps": step,
                "step_seconds": compute_s / max(step, 1),
                "train_seconds": train_s,
                "params_identical": identical,
                "mean_alpha": float(np.mean(alphas)) if alphas else None,
                "final_theta": thetas[-1] if thetas else None,
                "config": {k: v for k, v in asdict(config).items() if k != "theta_schedule"},
            }
        dist.barrier()
        return out
    finally:
        dist.destroy_process_group()


def _accuracy(model, x, y, device) -> float:
    import torch

    was = model.training
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), 512):
            xb = torch.as_tensor(x[i : i + 512]).to(device)
            correct += int((model(xb).argmax(1).cpu() == torch.as_tensor(y[i : i + 512])).sum())
    model.train(was)
    return correct / max(len(y), 1)


def _params_identical(model) -> bool:
    """Whether every worker holds bitwise the same parameters (checked outside the byte count)."""
    import torch
    import torch.distributed as dist

    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return all(torch.equal(gathered[0], g) for g in gathered)
