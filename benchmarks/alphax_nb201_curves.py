"""Per-seed views of AlphaX and LaNAS on the embedded NB201 CIFAR-10 table (issue 4, brief §9: best-so-far
curves and samples-to-optimum box plots; issue 5, brief §5 item 16: regret curves with interquartile bands and
CDF plots), next to random search, regularized evolution and local search on the same seeds.

``alphax_nb201.py`` and ``lanas_nb201.py`` report means and medians; this script shows the spread behind them.
Runs share their caches (benchmarks/cache/alphax/ and benchmarks/cache/lanas_nb201/, same tags), so each script
reuses the others' runs. Every run stops at the global optimum (regret 0 from there on); AlphaX variants stop at
``--cap`` (censored, drawn at the cap; LaNAS and the baselines may use the whole table).

Writes benchmarks/results/alphax_nb201_curves.json (per method: samples to optimum as quartiles and the
per-seed values; regret at 50/100/200/500 as median and quartiles) and .png (left: median best-so-far regret
with the interquartile band; middle: box plots of samples to optimum, log scale; right: its empirical CDF, the
share of seeds that found the optimum within n samples).

    python benchmarks/alphax_nb201_curves.py --seeds 30
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alphax_common import set_threads  # noqa: E402
from alphax_nb201 import run  # noqa: E402
from lanas_nb201 import run as run_lanas  # noqa: E402

from nasagent.registry import make_benchmark  # noqa: E402
from nasagent.report.results import RESULTS_DIR, machine_info, write_results  # noqa: E402

METHODS = ("random", "evolution", "local-search", "alphax", "alphax-gp", "lanas-faithful", "lanas-gp-ei")
CHECKPOINTS = (50, 100, 200, 500)


def regret_curve(trace, optimum: float, horizon: int) -> np.ndarray:
    """Best-so-far regret after each of the first ``horizon`` samples (0 after the optimum was found)."""
    out = np.full(horizon, np.nan)
    for s, v in trace:  # the trace lists each new best, in order: later entries overwrite the tail
        if s <= horizon:
            out[s - 1 :] = optimum - v
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--cap", type=int, default=1000, help="sample cap of the AlphaX variants (the baselines run to the optimum)")
    ap.add_argument("--horizon", type=int, default=500, help="samples shown in the best-so-far panel")
    ap.add_argument("--methods", default=",".join(METHODS))
    args = ap.parse_args()
    set_threads()
    bench = make_benchmark("nb201")
    optimum, _ = bench.optimum(bench.objective())
    size = bench.space.size()
    rows, curves, sto = [], {}, {}
    length = max(args.horizon, *CHECKPOINTS)
    for m in args.methods.split(","):
        cap = args.cap if m.startswith("alphax") else size
        if m.startswith("lanas"):  # lanas_nb201's runs; their trace rows are (sample, evaluation, best so far)
            runs = [run_lanas(m, s, size) for s in range(args.seeds)]
            runs = [{**r, "trace": [(t[0], t[2]) for t in r["trace"]]} for r in runs]
        else:
            runs = [run("nb201", m, s, cap) for s in range(args.seeds)]
        values = np.array([r["samples_to_optimum"] or cap for r in runs], dtype=float)
        censored = int(sum(r["samples_to_optimum"] is None for r in runs))
        sto[m] = (values, censored, cap)
        q1, med, q3 = np.percentile(values, [25, 50, 75])
        common = {"task": "nb201/cifar10", "n_seeds": args.seeds, "budget": cap, "censored": censored}
        rows.append({"method": m, "metric": "samples_to_optimum_median", "value": float(med), "q1": float(q1), "q3": float(q3),
                     "per_seed": values.tolist(), **common})
        # best-so-far regret per sample; once a run finds the optimum its trace holds the optimum's score, so the
        # regret is 0 from there on (runs stop at the optimum)
        curve = np.array([regret_curve(r["trace"], optimum, length) for r in runs])
        for n in CHECKPOINTS:
            a, b, c = np.percentile(curve[:, n - 1], [25, 50, 75])
            rows.append({"method": m, "metric": f"regret_at_{n}", "value": float(b), "q1": float(a), "q3": float(c), **common})
        curves[m] = curve[:, : args.horizon]
        print(f"{m:14s} samples to optimum median {med:7.1f} [IQR {q1:.0f}-{q3:.0f}] censored {censored}; "
              f"regret@100 median {np.median(curve[:, 99]):.3f}", flush=True)
    write_results("alphax_nb201_curves", rows, machine=machine_info(threads=1),
                  extra={"note": "medians and quartiles over seeds 0..S-1; AlphaX variants capped at --cap (censored counted at the cap)",
                         "horizon": args.horizon})
    plot(curves, sto, RESULTS_DIR / "alphax_nb201_curves.png", args.horizon)


def plot(curves: dict, sto: dict, path: Path, horizon: int) -> None:
    from nasagent.report.plots import _plt

    plt = _plt()
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(17, 4.6), dpi=100)
    x = np.arange(1, horizon + 1)
    for m, c in curves.items():
        q1, med, q3 = np.nanpercentile(c, [25, 50, 75], axis=0)
        ax.plot(x, med, lw=1.6, label=m)
        ax.fill_between(x, q1, q3, alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1)  # linear near 0, where the late search happens
    ax.set_ylim(bottom=0)
    ax.set_xlabel("samples")
    ax.set_ylabel("best-so-far regret (accuracy points)")
    ax.set_title("NB201 CIFAR-10: median regret, interquartile band")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    names = list(sto)
    bx.boxplot([sto[m][0] for m in names], showfliers=True)
    bx.set_xticks(range(1, len(names) + 1), [f"{m}\n({sto[m][1]} censored)" if sto[m][1] else m for m in names], fontsize=8,
                  rotation=20)
    bx.set_yscale("log")
    bx.set_ylabel("samples to the global optimum")
    bx.set_title(f"per seed ({len(next(iter(sto.values()))[0])} seeds)")
    bx.grid(alpha=0.3, axis="y")
    for m in names:  # empirical CDF; a censored seed never counts as found, so its curve stays below 1
        values, censored, _ = sto[m]
        found = np.sort(values)[: len(values) - censored]  # censored seeds sit at the cap, the largest values
        cx.step(np.concatenate([[1], found]), np.arange(len(found) + 1) / len(values), where="post", label=m)
    cx.set_xscale("log")
    cx.set_xlabel("samples")
    cx.set_ylabel("share of seeds that found the optimum")
    cx.set_title("empirical CDF of samples to the optimum")
    cx.grid(alpha=0.3)
    cx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
