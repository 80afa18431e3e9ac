"""Runner overhead: the full runner (SQLite journal on disk, snapshots, dedup, budget) minus a bare
ask/lookup/tell loop over the same table, for the same evolution run of 10,000 samples.

Evolution re-proposes architectures it has seen more and more often as it converges (10,000 *unique*
NB201 samples would take hundreds of thousands of proposals), so both loops count every proposal as a
sample (the runner's ``count_repeats``): each one is still journaled, deduplicated and told.
overhead_ms_per_sample = (runner seconds - bare seconds) / samples, median of repeats (both include the
same strategy work, which cancels). Writes benchmarks/results/runner_overhead.json and .png.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from nasagent.core import Budget, Result
from nasagent.registry import make_benchmark, make_strategy
from nasagent.report.plots import plot_bars
from nasagent.report.results import RESULTS_DIR, write_results
from nasagent.runtime.journal import Journal
from nasagent.runtime.runner import Runner


def bare_loop(bench, samples: int, seed: int) -> tuple[float, int]:
    """The least a search needs: ask, dedup by key, look up, tell."""
    space = bench.space
    objective = bench.objective()
    strat = make_strategy("evolution", space, seed=seed)
    seen: dict[str, Result] = {}
    n = 0
    t0 = time.perf_counter()
    while n < samples:
        trial = strat.ask()
        key = space.key(trial.arch)
        res = seen.get(key)
        if res is None:
            res = bench(trial.arch)
            res.score = objective.score(res.metrics)
            seen[key] = res
        n += 1
        strat.tell(trial, res)
    return time.perf_counter() - t0, n


def full_runner(bench, samples: int, seed: int, journal_path: str) -> tuple[float, int]:
    strat = make_strategy("evolution", bench.space, seed=seed)
    journal = Journal(journal_path)
    t0 = time.perf_counter()
    res = Runner(bench.space, bench, strat, bench.objective(), Budget(evaluations=samples), journal=journal, count_repeats=True).run()
    dt = time.perf_counter() - t0
    journal.close()
    return dt, res.samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    bench = make_benchmark("nb201")
    bare, disk, mem = [], [], []
    for rep in range(args.repeats):
        b, nb = bare_loop(bench, args.samples, seed=rep)
        with tempfile.TemporaryDirectory() as d:
            f, nf = full_runner(bench, args.samples, rep, str(Path(d) / "journal.db"))
        m, nm = full_runner(bench, args.samples, rep, ":memory:")
        assert nb == nf == nm == args.samples
        bare.append(b)
        disk.append(f)
        mem.append(m)
        print(f"repeat {rep}: bare {b:.2f}s  runner+disk journal {f:.2f}s  runner+memory journal {m:.2f}s")
    med = statistics.median
    over_disk = (med(disk) - med(bare)) / args.samples * 1000
    over_mem = (med(mem) - med(bare)) / args.samples * 1000
    common = {"task": "nb201/cifar10", "samples": args.samples, "n_seeds": args.repeats}
    rows = [
        {"method": "runner-sqlite-disk", "metric": "overhead_ms_per_sample", "value": over_disk, **common},
        {"method": "runner-sqlite-memory", "metric": "overhead_ms_per_sample", "value": over_mem, **common},
        {"method": "bare-loop", "metric": "ms_per_sample", "value": med(bare) / args.samples * 1000, **common},
        {"method": "runner-sqlite-disk", "metric": "ms_per_sample", "value": med(disk) / args.samples * 1000, **common},
        {"method": "runner-sqlite-disk", "metric": "ratio_to_bare_loop", "value": med(disk) / med(bare), **common},
    ]
    load = os.getloadavg()[0]
    write_results(
        "runner_overhead", rows,
        extra={"goal": "overhead_ms_per_sample <= 1.0", "met": over_disk <= 1.0, "load_average_1min_at_end": load,
               "note": "absolute times depend on the machine's load; repeats are interleaved and the median taken"},
    )
    plot_bars(
        {"bare loop": (med(bare) / args.samples * 1000, 0.0), "runner, journal in memory": (med(mem) / args.samples * 1000, 0.0),
         "runner, journal on disk": (med(disk) / args.samples * 1000, 0.0)},
        RESULTS_DIR / "runner_overhead.png", title=f"ms per sample, evolution, {args.samples} unique NB201 samples (median of {args.repeats})", ylabel="ms / sample",
    )
    print(f"overhead: {over_disk:.3f} ms/sample (disk journal), {over_mem:.3f} ms/sample (in-memory journal)")


if __name__ == "__main__":
    main()
