"""SuperNeurons' peak-memory ladder (thesis Fig. 8.10) on a deep CNN and a residual network, in PyTorch.

For each network: peak memory by the shared meter (``systems.memory.measure_peak``) and step time of plain
PyTorch and of the memory runtime under the thesis' four stages - baseline (nothing freed before the step
ends), liveness, + offload of convolution outputs, + cost-aware recomputation, and that last stage with
branch-point outputs offloaded too (recompute-fanout, ours) - next to the largest single layer's need
l_peak (three ways: the meter on each layer run alone, workspaces included; the runtime's tensor
inventory; the same without parameter gradients, which is what the thesis' peak_m counts). Also: the estimator (meta-device dry run) against the meter, the planner under
memory limits, recomputation modes (Table 8.1's extra forwards), and replays through the 1 KB first-fit
pool and the LRU tensor cache. Writes benchmarks/results/memory.json and memory.png.

    python benchmarks/memory.py --reps 9   # ~6 min on a quiet 2-core machine; --reps 3 for a quicker run
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from torch import nn

from nasagent.report.plots import _plt
from nasagent.report.results import RESULTS_DIR, machine_info, write_results
from nasagent.systems.memexec import MemoryPolicy
from nasagent.systems.memory import MemoryRuntime, estimate_peak, ladder, measure_layer_needs, measure_peak, plan_memory
from nasagent.systems.memplan import DryRunner, MachineRates, first_fit_replay, lru_replay

MB = 2**20


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def deep_cnn(width: int = 32, per_stage: int = 3, classes: int = 10) -> nn.Module:
    """VGG-like: three stages of conv-BN-ReLU at 32, 64, 128 channels, max-pooling between them."""
    layers, c = [], 3
    for s, w in enumerate((width, 2 * width, 4 * width)):
        for _ in range(per_stage):
            layers += conv_bn_relu(c, w)
            c = w
        layers.append(nn.MaxPool2d(2) if s < 2 else nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, classes))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        out = self.relu(self.b1(self.c1(x)))
        return self.relu(self.b2(self.c2(out)) + self.short(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: a stem and three stages of two basic blocks (32, 64, 128 channels)."""

    def __init__(self, width: int = 32, blocks: int = 2, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(*conv_bn_relu(3, width))
        layers, c = [], width
        for s, w in enumerate((width, 2 * width, 4 * width)):
            for b in range(blocks):
                layers.append(BasicBlock(c, w, 2 if b == 0 and s > 0 else 1))
                c = w
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


NETWORKS = {"deep-cnn": deep_cnn, "resnet": ResNet}


def _timed(fn, steps: int) -> float:
    """Seconds for ``steps`` consecutive training steps: one ~0.1 s step alone is at the mercy of the scheduler."""
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    return time.perf_counter() - t0


def bench_network(name: str, batch: int, reps: int, rows: list, traces: dict, steps_per_rep: int = 3) -> None:
    torch.manual_seed(0)
    model = NETWORKS[name]()
    plain = copy.deepcopy(model)  # plain PyTorch keeps its in-place ReLUs (tracing switches them off in `model`)
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    loss_fn = nn.functional.cross_entropy
    task = f"{name}/b{batch}"
    policies = ladder(model, x.shape)
    policies["recompute-fanout"] = ladder(model, x.shape, fanout_checkpoints=True)["recompute"]
    runtimes = {stage: MemoryRuntime(model, pol) for stage, pol in policies.items()}

    def pytorch_step():
        plain.zero_grad(set_to_none=True)
        loss_fn(plain(x), y).backward()

    def runtime_step(stage):
        model.zero_grad(set_to_none=True)
        runtimes[stage].step(x, y, loss_fn)

    steps = {"pytorch": pytorch_step, **{s: (lambda s=s: runtime_step(s)) for s in runtimes}}
    for fn in steps.values():  # warm-up: lazily created state, allocator caches
        fn()

    # correctness: the runtime's gradients equal plain autograd's
    state = copy.deepcopy(model.state_dict())
    plain.load_state_dict(state)
    pytorch_step()
    ref = [p.grad.clone() for p in plain.parameters()]
    max_err = 0.0
    for s in runtimes:
        model.load_state_dict(state)
        runtime_step(s)
        max_err = max(max_err, max(float((p.grad - r).abs().max()) for p, r in zip(model.parameters(), ref)))
    model.load_state_dict(state)

    needs_measured = measure_layer_needs(model, x)
    lname, l_meas = max(needs_measured.items(), key=lambda kv: kv[1])
    live_rt = runtimes["liveness"]
    l_ledger = max(live_rt.layer_need.values())
    l_dynamic = max(live_rt.layer_need_dynamic.values())
    rows += [
        {"method": "layer", "metric": "l_peak_mb_measured", "value": l_meas / MB, "task": task, "layer": lname},
        {"method": "layer", "metric": "l_peak_mb_ledger", "value": l_ledger / MB, "task": task},
        {"method": "layer", "metric": "l_peak_mb_dynamic", "value": l_dynamic / MB, "task": task},
        {"method": "runtime", "metric": "max_abs_grad_diff_vs_autograd", "value": max_err, "task": task},
        {"method": "model", "metric": "param_mb", "value": sum(p.numel() * 4 for p in model.parameters()) / MB, "task": task},
    ]

    dry = DryRunner(model, x.shape)
    for stage, fn in steps.items():
        m = measure_peak(fn)
        row = {"task": task, "method": stage}
        rows.append({**row, "metric": "peak_mb", "value": m.peak_bytes / MB, "rss_peak_mb": (m.rss_peak_bytes or 0) / MB})
        rows.append({**row, "metric": "peak_over_l_peak_measured", "value": m.peak_bytes / l_meas})
        if stage != "pytorch":
            rt = runtimes[stage]
            rows.append({**row, "metric": "peak_mb_ledger", "value": rt.ledger.peak / MB})
            rows.append({**row, "metric": "peak_over_l_peak_ledger", "value": rt.ledger.peak / l_ledger})
            rows.append({**row, "metric": "peak_mb_dynamic", "value": rt.ledger.dynamic_peak / MB})
            rows.append({**row, "metric": "peak_over_l_peak_dynamic", "value": rt.ledger.dynamic_peak / l_dynamic})
            est = dry(policies[stage]).ledger.peak
            rows.append({**row, "metric": "estimate_mb", "value": est / MB})
            rows.append({**row, "metric": "estimate_over_measured", "value": est / m.peak_bytes})
            rows.append({**row, "metric": "host_pool_peak_mb", "value": rt.ledger.host_peak / MB})
            rows.append({**row, "metric": "recomputed_layers", "value": rt.stats["recomputed_layers"]})
            traces[(name, stage)] = [(lab, b / MB) for lab, b, _ in rt.ledger.trace]
    rows.append({"task": task, "method": "liveness", "metric": "estimate_peak_api_mb", "value": estimate_peak(model, x.shape).peak_bytes / MB})

    # step times: interleaved repetitions of steps_per_rep steps each, ratio to plain PyTorch within each repetition
    times = {k: [] for k in steps}
    for _ in range(reps):
        for k, fn in steps.items():
            times[k].append(_timed(fn, steps_per_rep) / steps_per_rep)
    for k, ts in times.items():
        ratios = [t / b for t, b in zip(ts, times["pytorch"])]
        rows.append({"task": task, "method": k, "metric": "step_seconds", "value": statistics.median(ts), "samples": reps,
                     "steps_per_rep": steps_per_rep})
        rows.append({"task": task, "method": k, "metric": "step_time_ratio", "value": statistics.median(ratios),
                     "samples": reps, "steps_per_rep": steps_per_rep, "sd": statistics.pstdev(ratios), "min": min(ratios),
                     "max": max(ratios), "ratio_of_total_time": sum(ts) / sum(times["pytorch"])})

    # recomputation modes (Table 8.1): extra forwards and estimated peak
    rec = policies["recompute"]
    for mode in ("speed", "memory", "cost-aware"):
        pol = MemoryPolicy(f"recompute-{mode}", actions=dict(rec.actions),
                           recompute_mode=dict(rec.recompute_mode) if mode == "cost-aware" else {n: mode for n in rec.actions})
        rt = dry(pol)
        rows.append({"task": task, "method": f"recompute-{mode}", "metric": "extra_forwards", "value": rt.stats["recomputed_layers"]})
        rows.append({"task": task, "method": f"recompute-{mode}", "metric": "estimate_mb", "value": rt.ledger.peak / MB})

    # allocator and tensor cache replays of the liveness step's log
    pool = first_fit_replay(live_rt.ledger.events)
    rows.append({"task": task, "method": "first-fit-1kb", "metric": "pool_mb", "value": pool.pool_bytes_needed / MB,
                 "live_peak_mb": pool.live_peak_bytes / MB, "fragmentation": pool.fragmentation})
    for frac in (1.0, 0.75, 0.5):
        cap = int(frac * live_rt.ledger.peak)
        lru = lru_replay(live_rt.ledger.events, cap)
        rows.append({"task": task, "method": f"lru-cache-{int(frac * 100)}pct", "metric": "transfer_mb",
                     "value": (lru["offload_bytes"] + lru["fetch_bytes"]) / MB, "misses": lru["misses"],
                     "locked_overflow_mb": lru["locked_overflow_bytes"] / MB})
    rows.append({"task": task, "method": "static-offload", "metric": "transfer_mb",
                 "value": (runtimes["offload"].stats["offloaded_bytes"] + runtimes["offload"].stats["fetched_bytes"]) / MB})

    # planner under memory limits (fractions of the liveness peak)
    rates = MachineRates.measure()
    live_peak = dry(policies["liveness"]).ledger.peak
    for frac in (0.75, 0.5, 0.35):
        limit = int(frac * live_peak)
        label = f"plan-{int(frac * 100)}pct"
        try:
            plan = plan_memory(model, x.shape, limit, rates)
        except Exception as e:  # a limit the planner cannot meet is a result, not a crash
            rows.append({"task": task, "method": label, "metric": "planned", "value": 0, "error": str(e)[:200]})
            continue
        rt = MemoryRuntime(model, plan.policy)
        fn = lambda: (model.zero_grad(set_to_none=True), rt.step(x, y, loss_fn))  # noqa: E731
        fn()
        m = measure_peak(fn)
        ratios = []
        for _ in range(max(2, reps // 2)):
            base = _timed(pytorch_step, steps_per_rep)
            ratios.append(_timed(fn, steps_per_rep) / base)
        n_off = sum(a == "offload" for a in plan.policy.actions.values())
        n_rec = sum(a == "recompute" for a in plan.policy.actions.values())
        rows += [
            {"task": task, "method": label, "metric": "limit_mb", "value": limit / MB},
            {"task": task, "method": label, "metric": "estimate_mb", "value": plan.estimated_peak / MB},
            {"task": task, "method": label, "metric": "peak_mb", "value": m.peak_bytes / MB, "offloaded_layers": n_off, "recomputed_layers": n_rec},
            {"task": task, "method": label, "metric": "step_time_ratio", "value": statistics.median(ratios), "samples": len(ratios)},
        ]
    print(f"{task}: done", flush=True)


def plot(rows: list, traces: dict, path) -> None:
    plt = _plt()
    nets = sorted({n for n, _ in traces})
    fig, axes = plt.subplots(2, len(nets), figsize=(6.5 * len(nets), 8), dpi=110, squeeze=False)
    stages = ["pytorch", "baseline", "liveness", "offload", "recompute", "recompute-fanout"]
    for c, net in enumerate(nets):
        ax = axes[0][c]
        task = next(r["task"] for r in rows if r["task"].startswith(net))
        peaks = [next(r["value"] for r in rows if r["task"] == task and r["method"] == s and r["metric"] == "peak_mb") for s in stages]
        ratio = [next(r["value"] for r in rows if r["task"] == task and r["method"] == s and r["metric"] == "step_time_ratio") for s in stages]
        lpk = next(r["value"] for r in rows if r["task"] == task and r["metric"] == "l_peak_mb_measured")
        lpl = next(r["value"] for r in rows if r["task"] == task and r["metric"] == "l_peak_mb_ledger")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        bars = ax.bar(stages, peaks, color=["tab:gray", "tab:red", "tab:orange", "tab:blue", "tab:green", "tab:olive"], alpha=0.85)
        for b, rt in zip(bars, ratio):
            ax.annotate(f"{rt:.2f}x time", (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
        ax.axhline(lpk, color="k", ls="--", lw=1, label=f"largest layer, measured ({lpk:.1f} MB)")
        ax.axhline(1.5 * lpk, color="k", ls=":", lw=1, label="1.5x that")
        ax.axhline(lpl, color="tab:purple", ls="--", lw=1, label=f"largest layer, inventory ({lpl:.1f} MB)")
        ax.set_ylabel("peak MB (measure_peak)")
        ax.set_title(f"{task}: peak memory per stage")
        ax.legend(fontsize=7)
        ax = axes[1][c]
        for stage in stages[1:]:
            tr = traces[(net, stage)]
            ax.plot(range(len(tr)), [b for _, b in tr], label=stage)
        ax.set_xlabel("step (forward layers, loss, backward layers)")
        ax.set_ylabel("MB held by the runtime (ledger)")
        ax.set_title(f"{net}: memory per step (Fig. 8.10 style)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps-per-rep", type=int, default=3, help="consecutive steps timed together in each repetition")
    ap.add_argument("--networks", nargs="+", default=list(NETWORKS))
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows: list = []
    traces: dict = {}
    for name in args.networks:
        bench_network(name, args.batch, args.reps, rows, traces, args.steps_per_rep)
    write_results("memory", rows, extra={"goal": "peak <= 1.5x largest single layer's need with recompute, step time <= 1.3x plain PyTorch"},
                  machine=machine_info(threads=1))
    plot(rows, traces, RESULTS_DIR / "memory.png")
    for r in rows:
        if r["metric"] in ("peak_mb", "peak_over_l_peak_measured", "peak_over_l_peak_ledger", "peak_over_l_peak_dynamic",
                           "step_time_ratio", "l_peak_mb_measured", "l_peak_mb_ledger", "l_peak_mb_dynamic"):
            print(f"{r['task']:14s} {r['method']:16s} {r['metric']:28s} {r['value']:.3f}")


if __name__ == "__main__":
    main()
