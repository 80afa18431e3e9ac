"""AlphaX transfer learning on the derived task: accuracy vs training epochs with and without weight inheritance.

For ``--pairs`` (parent, child) pairs of NB201 cells (the child is one edit from its parent, as AlphaX's tree
proposes): the parent trains the full schedule (``TASK["epochs"]``) from scratch; the child then trains for
E in ``--epochs`` epochs either from scratch or inheriting the parent's weights through the training
evaluator's ``hint={"parent": ...}`` (same layers copied, the rest initialised). Thesis Fig. 3.8: with
transfer, 17 of 70 epochs reached the from-scratch accuracy, hence AlphaX's 20 instead of 70.
Writes ``benchmarks/results/alphax_transfer_training.json`` and ``.png``; runs are cached per (pair, E, mode).

    python benchmarks/alphax_transfer_training.py --pairs 4
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nb201_ground_truth import TASK, config_tag  # noqa: E402

from nasagent.report.results import CACHE_DIR, RESULTS_DIR, machine_info, mean_se, write_results  # noqa: E402


def pairs(n: int) -> list[tuple[str, str]]:
    """Seeded (parent, child) pairs; parents hold at least one convolution and a live input-output path."""
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    rng = np.random.default_rng(31)
    out = []
    while len(out) < n:
        p = sp.sample(rng)
        if sp.iso_key(p) == "disconnected" or not any(op.startswith("nor_conv") for op in p):
            continue
        c = sp.mutate(p, rng)
        if sp.iso_key(c) == "disconnected":
            continue
        out.append((sp.format(p), sp.format(c)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--epochs", default="1,2,3,5,10")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from nasagent.evaluation.datasets import load_dataset
    from nasagent.evaluation.train import TrainingBenchmark

    data = load_dataset(TASK["data"], seed=TASK["data_seed"])
    budgets = [int(e) for e in args.epochs.split(",")]
    cache = CACHE_DIR / "alphax_transfer_training" / config_tag(TASK)
    cache.mkdir(parents=True, exist_ok=True)
    common = {"lr": TASK["lr"], "batch_size": TASK["batch_size"], "C": TASK["C"], "N": TASK["N"], "measure": False,
              "checkpoint_dir": cache / "weights"}
    results: dict = {}
    for i, (parent, child) in enumerate(pairs(args.pairs)):
        parent_bench = TrainingBenchmark(data, epochs=TASK["epochs"], **common)
        if parent_bench.store.get(parent_bench.space.key(parent_bench.space.parse(parent))) is None:
            parent_bench(parent)
        for e in budgets:
            for mode in ("from-scratch", "inherited"):
                path = cache / f"pair{i}-e{e}-{mode}.json"
                if path.exists():
                    rec = json.loads(path.read_text())
                else:
                    bench = TrainingBenchmark(data, epochs=e, inherit_epochs=e, inherit="hint" if mode == "inherited" else "none",
                                              **common)
                    r = bench(child, hint={"parent": parent})
                    rec = {"pair": i, "parent": parent, "child": child, "epochs": e, "mode": mode, **r.metrics}
                    path.write_text(json.dumps(rec))
                results[(i, e, mode)] = rec
                print(f"pair {i} E={e} {mode}: test {rec['test_accuracy']:.1f} (inherited {rec['inherited_fraction']:.2f})", flush=True)

    rows = []
    curves = {}
    for mode in ("from-scratch", "inherited"):
        means, ses = [], []
        for e in budgets:
            vals = [results[(i, e, mode)]["test_accuracy"] for i in range(args.pairs)]
            m, se = mean_se(vals)
            means.append(m)
            ses.append(se)
            rows.append({"method": mode, "metric": f"test_accuracy_at_{e}_epochs", "value": m, "se": se, "n_seeds": args.pairs,
                         "task": "nb201/digits16", "budget": e})
            vm, vse = mean_se([results[(i, e, mode)]["val_accuracy"] for i in range(args.pairs)])
            rows.append({"method": mode, "metric": f"val_accuracy_at_{e}_epochs", "value": vm, "se": vse, "n_seeds": args.pairs,
                         "task": "nb201/digits16", "budget": e})
        curves[mode] = (np.array(means), np.array(ses))
    full = curves["from-scratch"][0][-1]
    reach = next((e for e, v in zip(budgets, curves["inherited"][0], strict=True) if v >= full), None)
    rows.append({"method": "inherited", "metric": "epochs_to_reach_from_scratch_full_schedule",
                 "value": float(reach if reach is not None else budgets[-1] + 1), "censored": int(reach is None),
                 "task": "nb201/digits16", "budget": budgets[-1]})
    inh = np.mean([results[(i, budgets[0], "inherited")]["inherited_fraction"] for i in range(args.pairs)])
    rows.append({"method": "inherited", "metric": "inherited_parameter_fraction", "value": float(inh), "n_seeds": args.pairs})
    write_results("alphax_transfer_training", rows, machine=machine_info(threads=1),
                  extra={"task": TASK, "pairs": pairs(args.pairs), "epochs": budgets,
                         "note": "child = parent with one edge changed; parent trained the full schedule from scratch"})
    _plot(budgets, curves, RESULTS_DIR / "alphax_transfer_training.png")
    print(json.dumps(rows, indent=1))


def _plot(budgets, curves, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, (m, se) in curves.items():
        ax.errorbar(budgets, m, yerr=2 * se, marker="o", capsize=3, label=mode)
    ax.set_xlabel("training epochs of the child")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("weight inheritance from the parent (±2 SE over pairs)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
