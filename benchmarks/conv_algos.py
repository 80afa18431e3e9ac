"""Memory-budgeted convolution algorithms (SuperNeurons §8.3.5, Fig. 8.12) on the deep CNN of benchmarks/memory.py.

Part 1, per conv layer at batch 32: every candidate algorithm's measured workspace (the shared meter, minus
the pass's own results) and median time, forward and backward (data + filter gradients).
Part 2, a whole training step under a sweep of per-layer workspace budgets (0 ... unlimited): the algorithms
the selector chose, step time as a ratio to plain PyTorch (nn.Conv2d everywhere) measured in interleaved
repetitions, and the step's peak memory by the meter - the CPU analogue of Fig. 8.12 (speed against
workspace). Also: per-step budgets from the memory runtime's ledger under a memory limit (what SuperNeurons
does: functional tensors first, the rest is workspace), and the wrapper's own overhead (native through
``apply_algorithms``). Writes benchmarks/results/conv_algos.json and conv_algos.png.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/conv_algos.py     # ~5 min; --fresh re-benchmarks the layers
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import deep_cnn  # noqa: E402  (the memory benchmark's network, unchanged)

from nasagent.report.plots import _plt  # noqa: E402
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, machine_info, write_results  # noqa: E402
from nasagent.systems import convalgo as ca  # noqa: E402
from nasagent.systems.memory import MemoryRuntime, estimate_peak, ladder, measure_peak  # noqa: E402

MB = 2**20
BUDGETS_MB = (0, 1, 4, 16, 64, None)  # None: unlimited
LEDGER_SLACK_MB = (0, 1, 4)  # memory limit = liveness peak + weights + batch + this


def label(mb) -> str:
    return "budget-unlimited" if mb is None else f"budget-{mb}mb"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=5, help="timed repetitions per algorithm and pass (median)")
    ap.add_argument("--step-reps", type=int, default=15, help="interleaved training-step repetitions per configuration")
    ap.add_argument("--fresh", action="store_true", help="ignore the benchmark cache in benchmarks/cache/")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    task = f"deep-cnn/b{args.batch}"
    model = deep_cnn()
    x = torch.randn(args.batch, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch,))
    cache_path = CACHE_DIR / "conv_algos_bench.json"
    if args.fresh and cache_path.exists():
        cache_path.unlink()
    bench = ca.Benchmarker(ca.BenchmarkCache(cache_path), reps=args.reps)
    rows: list[dict] = []
    for _ in range(2):  # warm the process up (thread pool, oneDNN primitives) before anything is timed
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)

    # part 1: every algorithm on every layer (the unlimited selection benchmarks them all)
    t0 = time.perf_counter()
    unlimited = ca.select_algorithms(model, x, None, benchmarker=bench)
    print(f"layer benchmarks: {bench.runs} run, {time.perf_counter() - t0:.0f} s", flush=True)
    for name, ch in unlimited.items():
        shape = "x".join(map(str, ch.problem.x_shape))
        cols = ca.im2col_workspace_bytes(ch.problem.x_shape, ch.problem.w_shape, ch.problem.geom)
        for c in ch.candidates:
            common = {"task": f"{task}/conv{name}/{c['phase']}", "method": c["algorithm"], "layer": name, "phase": c["phase"], "input_shape": shape}
            rows.append({**common, "metric": "workspace_mb", "value": c["workspace"] / MB})
            rows.append({**common, "metric": "time_ms", "value": c["seconds"] * 1e3, "samples": args.reps})
        rows.append({"task": f"{task}/conv{name}", "method": "im2col", "metric": "analytic_columns_mb", "value": cols / MB, "layer": name})

    # part 2: whole training steps under budgets, with plain autograd and under the memory runtime's recompute stage
    print(f"selecting under budgets ({bench.runs} benchmarks so far)", flush=True)
    for engine in ("autograd", "recompute"):
        sweep(engine, model, x, y, bench, unlimited, args, rows)
        print(f"{engine}: done", flush=True)

    write_results("conv_algos", rows, extra={
        "goal": "Fig. 8.12 analogue: the selector never exceeds a budget, and step speed rises with the workspace it is given",
        "budgets_mb": list(BUDGETS_MB), "candidates": ca.algorithm_names(args.batch), "batch": args.batch,
        "baseline": "native-everywhere: the unmodified nn.Conv2d layers, same engine, interleaved repetitions"},
        machine=machine_info(threads=1))
    plot(rows, task, RESULTS_DIR / "conv_algos.png")
    for r in rows:
        if r["task"].startswith(task + "/") and r["metric"] in ("step_time_ratio", "peak_mb", "max_chosen_workspace_mb"):
            print(f"{r['task']:22s} {r['method']:26s} {r['metric']:24s} {r['value']:8.3f}")


def sweep(engine: str, model, x, y, bench, unlimited, args, rows) -> None:
    """Training steps of ``engine`` ("autograd": plain PyTorch; "recompute": the memory runtime's last stage)
    with the algorithms chosen under each budget, against the same engine with unmodified nn.Conv2d layers."""
    task = f"deep-cnn/b{args.batch}/{engine}"
    stage = "liveness" if engine == "autograd" else "recompute"
    policy = ladder(model, x.shape)[stage]
    configs: dict[str, dict] = {"native-everywhere": {"choices": None}}

    def choose(key, free, **info):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            configs[key] = {"choices": ca.select_algorithms(model, x, free, benchmarker=bench), "warnings": len(caught), **info}

    for mb in BUDGETS_MB:
        choose(label(mb), None if mb is None else mb * MB, budget_mb=mb)
    est = estimate_peak(model, x.shape, policy)  # the runtime's own ledger peak for this stage
    fixed = est.peak_bytes + est.param_bytes + x.numel() * x.element_size()
    for slack in LEDGER_SLACK_MB:
        limit = fixed + slack * MB
        free = ca.free_bytes_per_step(model, x, limit, policy=stage)
        choose(f"ledger-limit-plus-{slack}mb", free, limit_mb=limit / MB, free_mb={n: [round(b / MB, 3) for b in v] for n, v in free.items()})
    configs["native-wrapped"] = {"choices": {n: "native" for n in unlimited}, "warnings": 0}

    def make_step(net):
        if engine == "autograd":
            def step():
                net.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), y).backward()
        else:
            rt = MemoryRuntime(net, policy)

            def step():
                net.zero_grad(set_to_none=True)
                rt.step(x, y, F.cross_entropy)
        return step

    steps = {}
    for key, cfg in configs.items():
        net = copy.deepcopy(model)
        if cfg["choices"] is not None:
            ca.apply_algorithms(net, cfg["choices"])
        steps[key] = make_step(net)
    for fn in steps.values():  # warm-up
        fn()
    peaks = {k: measure_peak(fn, rss=False).peak_bytes for k, fn in steps.items()}
    times = {k: [] for k in steps}
    keys = list(steps)
    for r in range(args.step_reps):
        for k in keys[r % len(keys):] + keys[:r % len(keys)]:
            t = time.perf_counter()
            steps[k]()
            times[k].append(time.perf_counter() - t)
    base = times["native-everywhere"]
    for k, ts in times.items():
        ratios = [t / b for t, b in zip(ts, base)]
        row = {"task": task, "method": k}
        sd = statistics.stdev(ratios) if len(ratios) > 1 else 0.0  # (a smoke run with --step-reps 1)
        rows.append({**row, "metric": "step_time_ratio", "value": statistics.median(ratios), "samples": len(ratios),
                     "sd": sd, "se": sd / len(ratios) ** 0.5, "min": min(ratios), "max": max(ratios)})
        rows.append({**row, "metric": "step_seconds", "value": statistics.median(ts), "samples": len(ts)})
        rows.append({**row, "metric": "images_per_s", "value": args.batch / statistics.median(ts), "samples": len(ts)})
        rows.append({**row, "metric": "peak_mb", "value": peaks[k] / MB, "over_native": peaks[k] / peaks["native-everywhere"]})
        chosen = configs[k]["choices"]
        if chosen is None:
            continue
        info = {kk: v for kk, v in configs[k].items() if kk not in ("choices", "warnings")}
        algos = {n: (c.forward, c.backward) if isinstance(c, ca.AlgoChoice) else (c, c) for n, c in chosen.items()}
        rows.append({**row, "metric": "fallback_passes", "value": configs[k]["warnings"],
                     "algorithms": {n: f"{f}/{b}" for n, (f, b) in algos.items()}, **info})
        if isinstance(next(iter(chosen.values())), ca.AlgoChoice):
            ws = max(c.workspace[p] for c in chosen.values() for p in ca.PHASES)
            rows.append({**row, "metric": "max_chosen_workspace_mb", "value": ws / MB})
            rows.append({**row, "metric": "sum_layer_seconds", "value": sum(c.seconds[p] for c in chosen.values() for p in ca.PHASES)})


def plot(rows: list, task: str, path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(18, 5), dpi=110)
    layer_rows = [r for r in rows if r["task"].startswith(task + "/conv") and r["metric"] in ("workspace_mb", "time_ms")]
    algos = sorted({r["method"] for r in layer_rows if r["metric"] == "time_ms"})
    for ax, phase in zip(axes[:2], ca.PHASES):
        for i, a in enumerate(algos):
            ws = {r["layer"]: r["value"] for r in layer_rows if r["method"] == a and r["phase"] == phase and r["metric"] == "workspace_mb"}
            tm = {r["layer"]: r["value"] for r in layer_rows if r["method"] == a and r["phase"] == phase and r["metric"] == "time_ms"}
            keys = [k for k in ws if k in tm]
            ax.scatter([max(ws[k], 1e-3) for k in keys], [tm[k] for k in keys], label=a, s=18, marker="os^vD<>ph"[i % 9])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("workspace MB (meter)")
        ax.set_ylabel("time ms (median)")
        ax.set_title(f"{task}: {phase} pass, every conv layer")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax = axes[2]
    ax2 = ax.twinx()
    for engine, color in (("autograd", "tab:blue"), ("recompute", "tab:green")):
        sub = [r for r in rows if r["task"] == f"{task}/{engine}" and r["method"].startswith("budget-")]
        labels = list(dict.fromkeys(r["method"] for r in sub))
        ratio = [next(r for r in sub if r["method"] == m and r["metric"] == "step_time_ratio") for m in labels]
        peak = [next(r["value"] for r in sub if r["method"] == m and r["metric"] == "peak_mb") for m in labels]
        xs = list(range(len(labels)))
        ax.errorbar(xs, [1 / r["value"] for r in ratio], yerr=[r["se"] / r["value"] ** 2 for r in ratio], fmt="o-", color=color,
                    label=f"{engine}: speed vs native-everywhere")
        ax2.plot(xs, peak, "s--", color=color, alpha=0.6, label=f"{engine}: step peak MB")
    ax.axhline(1.0, color="gray", lw=1, ls=":")
    ax.set_xticks(xs)
    ax.set_xticklabels([m.replace("budget-", "") for m in labels])
    ax.set_xlabel("per-layer workspace budget")
    ax.set_ylabel("relative speed (1 / step time ratio), +-1 se")
    ax2.set_ylabel("peak MB (meter), dashed")
    ax.legend(fontsize=7, loc="lower right")
    ax2.legend(fontsize=7, loc="center right")
    ax.set_title("training step under a workspace budget (Fig. 8.12 analogue)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
