"""Plot of a multi-objective run: every sample, the Pareto front it found, infeasible samples greyed."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from nasagent.report.plots import _plt


def plot_front(rows, objective, front: list[dict], path: str | Path, title: str = "", true_front=None) -> Path:
    """One panel per pair of objectives (one panel for two). ``true_front``: optional maximise-value array."""
    plt = _plt()
    path = Path(path)
    objs = list(objective.objectives)
    pairs = list(itertools.combinations(range(len(objs)), 2)) or [(0, 0)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5.2 * len(pairs), 4.4), dpi=110, squeeze=False)
    samples = [r for r in rows if r.counted and r.score is not None and objective.scores(r.metrics) is not None]
    feasible = np.array([objective.violation(r.metrics) == 0 for r in samples], dtype=bool)
    raw = np.array([[r.metrics[o.metric] for o in objs] for r in samples], dtype=float).reshape(len(samples), len(objs))
    fr = np.array([[row[o.metric] for o in objs] for row in front], dtype=float).reshape(len(front), len(objs))
    for ax, (i, j) in zip(axes[0], pairs, strict=True):
        if len(raw):
            ax.scatter(raw[feasible, i], raw[feasible, j], s=8, alpha=0.35, color="tab:gray", label="sample")
            if (~feasible).any():
                ax.scatter(raw[~feasible, i], raw[~feasible, j], s=8, alpha=0.35, marker="x", color="tab:red", label="infeasible")
        if true_front is not None and len(true_front):
            tf = np.asarray(true_front, dtype=float)
            tf = np.stack([tf[:, k] if objs[k].mode == "max" else -tf[:, k] for k in range(len(objs))], axis=1)
            order = np.argsort(tf[:, i])
            ax.plot(tf[order, i], tf[order, j], "--", color="tab:green", lw=1, marker=".", label="true front")
        if len(fr):
            order = np.argsort(fr[:, i])
            ax.plot(fr[order, i], fr[order, j], "-o", color="tab:blue", ms=4, lw=1.5, label=f"found front ({len(fr)})")
        ax.set_xlabel(f"{objs[i].metric} ({objs[i].mode})")
        ax.set_ylabel(f"{objs[j].metric} ({objs[j].mode})")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
