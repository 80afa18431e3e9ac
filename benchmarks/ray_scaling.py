"""How the Ray executor scales, what parallelism costs in samples, and whether faults lose anything.

Four parts, all on one local Ray cluster with 8 logical CPUs (this machine has 2 cores; the trials sleep,
so 8 of them fit):

1. start-up: ``ray.init`` and the first warm-up (every worker builds the evaluator), reported on their own;
2. throughput at 1, 2, 4, 8 workers with trials that sleep 0.5 s (random search on the NB201 table), the
   parallel efficiency ``throughput(w) / (w * throughput(1))`` and the dispatch overhead per trial, also
   measured with trials that do no work at all;
3. samples to the NB201 optimum with 8 workers vs 1 (evolution, local search, AlphaX when registered):
   each architecture's simulated duration is drawn once from a log-normal (median 20 ms) keyed by its
   string, so slow architectures straggle and results return out of order as on a real cluster. With one
   worker the order cannot change, so those runs use zero duration (same trace, tested in test_ray.py);
4. a fault run: about 10 % of trials SIGKILL their own worker mid-trial on the first attempt; with retries
   every budgeted trial must end journaled once (none lost, none duplicated); without retries they must
   end as failed trials and the search must still reach its budget.

Writes benchmarks/results/ray_scaling.json and .png. Part 3 caches each run in benchmarks/cache/ray_scaling.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from statistics import NormalDist

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, single-user cluster needs no token
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np
import ray

from nasagent.benchmarks.nb201 import nb201_benchmark
from nasagent.core import Budget
from nasagent.registry import STRATEGIES, make_strategy
from nasagent.report.plots import _plt
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, mean_se, write_results
from nasagent.runtime.journal import Journal
from nasagent.runtime.ray_executor import RayExecutor
from nasagent.runtime.runner import Runner

CLUSTER_CPUS = 8
TASK = "nb201/cifar10"
REGRET_AT = (50, 100, 200)


def _unit(key: str, salt: str) -> float:
    """A number in [0, 1) fixed by the key: per-architecture properties that do not depend on the run."""
    return int(hashlib.sha1(f"{salt}:{key}".encode()).hexdigest()[:12], 16) / 16**12


class Simulated:
    """The NB201 table with a simulated training time, and optionally a worker that dies mid-trial.

    ``seconds`` is a constant duration, or with ``lognormal_median`` each key gets
    ``median * exp(0.6 * z)`` with z a standard normal fixed by the key. ``kill_fraction`` of the keys
    SIGKILL their worker halfway through their first attempt (marker files in ``state_dir`` tell attempts
    apart; every worker runs on this machine).
    """

    def __init__(self, table, seconds=0.0, lognormal_median=None, kill_fraction=0.0, state_dir=None):
        self.table, self.space = table, table.space
        self.seconds, self.lognormal_median = seconds, lognormal_median
        self.kill_fraction, self.state_dir = kill_fraction, state_dir

    def optimum(self, objective):
        return self.table.optimum(objective)

    def duration(self, key: str) -> float:
        if self.lognormal_median is None:
            return self.seconds
        z = NormalDist().inv_cdf(min(max(_unit(key, "duration"), 1e-6), 1 - 1e-6))
        return self.lognormal_median * math.exp(0.6 * z)

    def doomed(self, key: str) -> bool:
        return _unit(key, "fault") < self.kill_fraction

    def __call__(self, arch, budget=None, hint=None):
        key = self.space.key(arch)
        d = self.duration(key)
        time.sleep(d / 2)
        if self.doomed(key):
            marker = Path(self.state_dir) / hashlib.sha1(key.encode()).hexdigest()
            try:
                marker.touch(exist_ok=False)
                os.kill(os.getpid(), signal.SIGKILL)
            except FileExistsError:
                pass  # a retry: evaluate normally
        time.sleep(d / 2)
        return self.table(arch, budget, hint)


def run_search(evaluator, strategy, workers, budget, seed=0, stop_at_optimum=False, **options):
    executor = RayExecutor(workers, **options)
    journal = Journal(":memory:")
    runner = Runner(evaluator.space, evaluator, make_strategy(strategy, evaluator.space, seed=seed),
                    evaluator.table.objective(), Budget(evaluations=budget), journal=journal, executor=executor,
                    stop_at_optimum=stop_at_optimum)
    t0 = time.perf_counter()
    result = runner.run()
    wall = time.perf_counter() - t0
    return result, journal, executor, wall - executor.startup_seconds


# -- part 2 -------------------------------------------------------------------------------------------------
def throughput(table, rows, args, extra):
    per_worker = {}
    for w in (1, 2, 4, 8):
        n = args.trials_per_worker * w
        rates, overheads = [], []
        for rep in range(args.repeats):
            res, journal, ex, wall = run_search(Simulated(table, seconds=args.duration), "random", w, n, seed=rep)
            assert res.samples == n
            rates.append(n / wall)
            overheads.append(wall * w / n - args.duration)  # time per trial per slot beyond the sleep
        per_worker[w] = (rates, overheads)
        print(f"workers {w}: {np.mean(rates):.3f} trials/s, overhead {1000 * np.mean(overheads):.1f} ms/trial",
              flush=True)
    base = np.mean(per_worker[1][0])
    for w, (rates, overheads) in per_worker.items():
        m, se = mean_se(rates)
        eff = [r / (w * base) for r in rates]
        common = {"workers": w, "n_seeds": args.repeats, "samples": args.trials_per_worker * w,
                  "task": f"sleep-{args.duration:g}s"}
        rows.append({"method": "ray", "metric": "trials_per_second", "value": m, "se": se, **common})
        rows.append({"method": "ray", "metric": "parallel_efficiency", "value": float(np.mean(eff)),
                     "se": mean_se(eff)[1], **common})
        rows.append({"method": "ray", "metric": "efficiency_vs_ideal", "value": m / (w / args.duration), **common})
        rows.append({"method": "ray", "metric": "dispatch_overhead_ms_per_trial",
                     "value": 1000 * float(np.mean(overheads)), "se": 1000 * mean_se(overheads)[1], **common})
    extra["throughput"] = {w: float(np.mean(r)) for w, (r, _) in per_worker.items()}

    # zero-work trials: the whole round trip (ask, journal, Ray dispatch, result, tell) per trial
    for w in (1, 8):
        n = args.zero_trials
        res, journal, ex, wall = run_search(Simulated(table, seconds=0.0), "random", w, n, seed=0)
        rows.append({"method": "ray", "metric": "round_trip_ms_per_trial_zero_work", "value": 1000 * wall / n,
                     "workers": w, "samples": n, "task": "no-work"})
        print(f"zero-work trials, {w} workers: {1000 * wall / n:.2f} ms per trial", flush=True)


# -- part 3 -------------------------------------------------------------------------------------------------
def samples_to_optimum(table, rows, args, extra):
    """Per method: (seeds, cap). AlphaX's Meta-DNN makes a run cost ~0.3 s per sample on this shared machine,
    so it gets fewer seeds (the first ones of the same list) and a lower cap, both reported in the rows."""
    plan = {"evolution": (args.seeds, args.cap), "local-search": (args.seeds, args.cap)}
    if "alphax" in STRATEGIES:
        plan["alphax"] = (args.alphax_seeds, args.alphax_cap)
    extra["samples_to_optimum_plan"] = {m: {"seeds": s, "cap": c} for m, (s, c) in plan.items()}
    cache = CACHE_DIR / "ray_scaling"
    cache.mkdir(parents=True, exist_ok=True)
    summary = {}
    for method, (n_seeds, cap) in plan.items():
        for w in (1, 8):
            values, censored, regrets = [], 0, {n: [] for n in REGRET_AT if n <= cap}
            for seed in range(n_seeds):
                path = cache / f"v2-{method}-w{w}-s{seed}-cap{cap}-m{args.median_ms:g}.json"
                if path.exists():
                    rec = json.loads(path.read_text())
                else:
                    ev = Simulated(table, lognormal_median=args.median_ms / 1000 if w > 1 else None)
                    res, journal, ex, wall = run_search(ev, method, w, cap, seed=seed, stop_at_optimum=True)
                    rec = {"samples_to_optimum": res.samples_to_optimum, "samples": res.samples, "wall": wall,
                           "regret": {str(n): res.regret_at(n) for n in REGRET_AT if n <= cap}}
                    path.write_text(json.dumps(rec))
                sto = rec["samples_to_optimum"]
                censored += sto is None
                values.append(cap if sto is None else sto)
                for n in regrets:
                    regrets[n].append(rec["regret"][str(n)])
            m, se = mean_se(values)
            summary[(method, w)] = values
            common = {"n_seeds": n_seeds, "workers": w, "budget": cap, "task": TASK}
            rows.append({"method": method, "metric": "samples_to_optimum_mean", "value": m, "se": se,
                         "median": float(np.median(values)), "censored": censored, **common})
            for n, vals in regrets.items():
                rm, rse = mean_se(vals)
                rows.append({"method": method, "metric": f"regret_at_{n}", "value": rm, "se": rse, **common})
            print(f"{method:14s} workers {w}: {m:7.1f} ± {se:5.1f} samples to optimum ({censored} censored), "
                  + ", ".join(f"regret@{n} {np.mean(v):.3f}" for n, v in regrets.items()), flush=True)
        one, eight = np.array(summary[(method, 1)], float), np.array(summary[(method, 8)], float)
        d = eight - one
        common = {"n_seeds": n_seeds, "task": TASK, "workers": 8, "budget": cap}
        rows.append({"method": method, "metric": "samples_to_optimum_ratio_8_vs_1",
                     "value": float(eight.mean() / one.mean()), **common})
        rows.append({"method": method, "metric": "samples_to_optimum_diff_8_minus_1", "value": float(d.mean()),
                     "se": float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0, **common})
        # 2-standard-error rule on the paired seeds: "loss" = 8 workers need more samples than 1
        extra.setdefault("samples_to_optimum_8_vs_1", {})[method] = beats(eight, one)
    return summary


# -- part 4 -------------------------------------------------------------------------------------------------
def fault_run(table, rows, args, extra):
    out = {}
    for retries in (2, 0):
        with tempfile.TemporaryDirectory() as state:
            ev = Simulated(table, seconds=args.fault_duration, kill_fraction=0.10, state_dir=state)
            res, journal, ex, wall = run_search(ev, "random", 8, args.fault_budget, seed=0, max_retries=retries)
            trials = journal.trials()
        counted = [r for r in trials if r.counted]
        doomed = [r for r in trials if r.status != "cached" and ev.doomed(r.key)]
        report = {
            "trials": len(trials),
            "killed": len(doomed),
            "killed_fraction": len(doomed) / max(1, len([r for r in trials if r.status != "cached"])),
            "retried": ex.n_retries,
            "failed": sum(r.status == "failed" for r in trials),
            "running_at_end": sum(r.status == "running" for r in trials),
            "counted": len(counted),
            "duplicated": len(counted) - len({r.key for r in counted}),
            "sample_gaps": int(sorted(r.sample for r in counted) != list(range(1, len(counted) + 1))),
            "all_killed_retried_once": all(r.attempts == 2 and r.status == "ok" for r in doomed) if retries else None,
            "all_killed_failed": all(r.status == "failed" for r in doomed) if not retries else None,
            "wall_seconds": wall,
        }
        lost = args.fault_budget - report["counted"] + report["running_at_end"]
        report["lost"] = lost
        out[f"max_retries={retries}"] = report
        method = f"ray-retries-{retries}"
        common = {"workers": 8, "budget": args.fault_budget, "task": f"sleep-{args.fault_duration:g}s-kill-10pct"}
        for metric in ("killed", "killed_fraction", "retried", "failed", "lost", "duplicated", "running_at_end"):
            rows.append({"method": method, "metric": metric, "value": float(report[metric]), **common})
        rows.append({"method": method, "metric": "trials_per_second", "value": args.fault_budget / wall, **common})
        print(f"fault run, max_retries={retries}: {json.dumps(report)}", flush=True)
    # the same run without faults, for the price of the kills
    clean = Simulated(table, seconds=args.fault_duration)
    res, journal, ex, wall = run_search(clean, "random", 8, args.fault_budget, seed=0)
    rows.append({"method": "ray-no-faults", "metric": "trials_per_second", "value": args.fault_budget / wall,
                 "workers": 8, "budget": args.fault_budget, "task": f"sleep-{args.fault_duration:g}s"})
    out["no_faults_wall_seconds"] = wall
    extra["fault_run"] = out


def plot(rows, sto, path, args):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), dpi=110)
    thr = {r["workers"]: r for r in rows if r["metric"] == "trials_per_second" and r["method"] == "ray"}
    ws = sorted(thr)
    ax = axes[0]
    ax.errorbar(ws, [thr[w]["value"] for w in ws], yerr=[thr[w].get("se", 0) for w in ws], marker="o", capsize=3,
                label="measured")
    ax.plot(ws, [w / args.duration for w in ws], "--", color="gray",
            label=f"ideal ({1 / args.duration:g}/s per worker)")
    ax.set(xlabel="workers", ylabel="trials per second", title=f"throughput, {args.duration:g} s trials", xticks=ws)
    ax.legend()
    ax.grid(alpha=0.3)
    eff = {r["workers"]: r["value"] for r in rows if r["metric"] == "parallel_efficiency"}
    ax = axes[1]
    ax.bar([str(w) for w in ws], [eff[w] for w in ws], color="tab:blue", alpha=0.8)
    ax.axhline(0.8, ls="--", color="tab:red", label="goal 0.8 at 8 workers")
    ax.set(xlabel="workers", ylabel="throughput(w) / (w x throughput(1))", title="parallel efficiency", ylim=(0, 1.1))
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    ax = axes[2]
    if sto:
        methods = list(dict.fromkeys(m for m, _ in sto))
        x = np.arange(len(methods))
        for i, w in enumerate((1, 8)):
            vals = [np.mean(sto[(m, w)]) for m in methods]
            errs = [np.std(sto[(m, w)], ddof=1) / math.sqrt(len(sto[(m, w)])) for m in methods]
            ax.bar(x + (i - 0.5) * 0.38, vals, 0.38, yerr=errs, capsize=3, label=f"{w} worker{'s' if w > 1 else ''}")
        ax.set_xticks(x, [f"{m}\n({len(sto[(m, 1)])} seeds)" for m in methods])
        ax.set(ylabel="samples to optimum (mean ± se)", title="NB201: the price of 8 workers in samples")
        ax.legend()
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=0.5, help="seconds each throughput trial sleeps")
    ap.add_argument("--trials-per-worker", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--zero-trials", type=int, default=300)
    ap.add_argument("--seeds", type=int, default=50, help="seeds for samples-to-optimum")
    ap.add_argument("--cap", type=int, default=3000, help="sample cap of a samples-to-optimum run (censored beyond)")
    ap.add_argument("--alphax-seeds", type=int, default=10, help="AlphaX seeds (the first of the same list)")
    ap.add_argument("--alphax-cap", type=int, default=500, help="AlphaX sample cap (censored beyond)")
    ap.add_argument("--median-ms", type=float, default=20.0, help="median simulated duration with 8 workers")
    ap.add_argument("--fault-budget", type=int, default=200)
    ap.add_argument("--fault-duration", type=float, default=0.2)
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: throughput, optimum, faults")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    table = nb201_benchmark()
    rows: list[dict] = []
    extra: dict = {"cluster_cpus": CLUSTER_CPUS, "ray": ray.__version__, "args": vars(args)}
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=CLUSTER_CPUS, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    start = time.perf_counter() - t0
    first = RayExecutor(CLUSTER_CPUS)  # the first warm-up starts all 8 worker processes
    first.start(Simulated(table))
    first.shutdown()
    rows.append({"method": "ray", "metric": "cluster_start_seconds", "value": start, "workers": CLUSTER_CPUS})
    rows.append({"method": "ray", "metric": "first_warm_up_seconds", "value": first.startup_seconds,
                 "workers": CLUSTER_CPUS})
    print(f"cluster start {start:.1f} s, first warm-up of {CLUSTER_CPUS} workers {first.startup_seconds:.1f} s",
          flush=True)

    sto = {}
    try:
        if "throughput" not in skip:
            throughput(table, rows, args, extra)
        if "optimum" not in skip:
            sto = samples_to_optimum(table, rows, args, extra)
        if "faults" not in skip:
            fault_run(table, rows, args, extra)
    finally:
        ray.shutdown()
    machine = machine_info(threads=1)
    machine["load_average_1min_at_end"] = os.getloadavg()[0]
    write_results("ray_scaling", rows, extra=extra, machine=machine)
    plot(rows, sto, RESULTS_DIR / "ray_scaling.png", args)
    print("written", RESULTS_DIR / "ray_scaling.json", file=sys.stderr)


if __name__ == "__main__":
    main()
