"""PNG plots of runs and comparisons (matplotlib, headless)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_run(trace, objective, path: str | Path, title: str = "", optimum: float | None = None,
             xlabel: str = "samples (unique architectures evaluated)") -> Path:
    """Best-so-far value against samples, with every sample's value as dots and the optimum as a line."""
    plt = _plt()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if trace:
        s = np.array([t[0] for t in trace])
        v = np.array([np.nan if t[1] is None else t[1] for t in trace], dtype=float)
        b = np.array([np.nan if t[2] is None else t[2] for t in trace], dtype=float)
        ax.scatter(s, v, s=6, alpha=0.35, color="tab:gray", label="sample")
        ax.step(s, b, where="post", color="tab:blue", lw=2, label="best so far")
        finite = v[np.isfinite(v)]
        if finite.size > 10:  # keep the interesting range visible when a few samples are very poor
            lo, hi = np.percentile(finite, [5, 100])
            pad = 0.05 * (hi - lo or 1.0)
            if objective.mode == "max":
                ax.set_ylim(lo - pad, max(hi, optimum or hi) + pad)
    if optimum is not None:
        ax.axhline(optimum, color="tab:green", ls="--", lw=1, label=f"global optimum {optimum:.4g}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{objective.metric} ({objective.mode})")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[1]:  # nothing to label when every trial failed
        ax.legend(loc="lower right" if objective.mode == "max" else "upper right", fontsize=8)
    else:
        ax.text(0.5, 0.5, "no successful trial", transform=ax.transAxes, ha="center", color="tab:red")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def regret_matrix(traces, optimum: float, n: int) -> np.ndarray:
    """Seeds x n array of regret after each of the first n samples (runs that ended early keep their last value)."""
    out = np.full((len(traces), n), np.nan)
    for i, trace in enumerate(traces):
        best = np.nan
        j = 0
        for k in range(n):
            while j < len(trace) and trace[j][0] <= k + 1:
                best = trace[j][2]
                j += 1
            out[i, k] = abs(optimum - best) if best == best else np.nan
    return out


def plot_regret_curves(
    curves: dict[str, np.ndarray], path: str | Path, title: str = "", ylabel: str = "regret", log_x: bool = True, band: str = "ci95"
) -> Path:
    """Regret against samples per method: the mean with a 95 % confidence band (``band="ci95"``), or the
    median with the interquartile range (``band="iqr"``)."""
    plt = _plt()
    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    if len(curves) > 10:  # the default cycle repeats after 10: give every curve its own colour
        ax.set_prop_cycle(color=[plt.get_cmap("tab20")(i) for i in [*range(0, 20, 2), *range(1, 20, 2)]])  # dark first
    for name, m in curves.items():
        x = np.arange(1, m.shape[1] + 1)
        if band == "iqr":
            centre = np.nanmedian(m, axis=0)
            lo, hi = np.nanpercentile(m, 25, axis=0), np.nanpercentile(m, 75, axis=0)
        else:
            from scipy import stats

            centre = np.nanmean(m, axis=0)
            n = np.sum(np.isfinite(m), axis=0)
            # a 95 % confidence interval of the mean: sample standard deviation, Student's t (few seeds)
            with warnings.catch_warnings():  # a sample count with a single finite run has no spread
                warnings.simplefilter("ignore", RuntimeWarning)
                se = np.nanstd(m, axis=0, ddof=1) / np.sqrt(n.clip(min=1)) if m.shape[0] > 1 else np.zeros(m.shape[1])
            half = stats.t.ppf(0.975, (n - 1).clip(min=1)) * np.nan_to_num(se)
            lo, hi = np.maximum(centre - half, 0.0), centre + half
        ax.plot(x, centre, lw=1.8, label=f"{name} (n={m.shape[0]})")
        ax.fill_between(x, lo, hi, alpha=0.2)
    if log_x:
        ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.01)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("samples")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def grouped_bars(ax, groups: list[str], series: dict[str, tuple[list[float], list[float]]], **tick_kw) -> None:
    """On ``ax``: one group of bars per label in ``groups``, one bar (mean, se error bar) per series in each."""
    width = 0.8 / max(len(series), 1)
    for j, (label, (means, errs)) in enumerate(series.items()):
        ax.bar(np.arange(len(groups)) + (j - (len(series) - 1) / 2) * width, means, width, yerr=errs, capsize=3, label=label)
    ax.set_xticks(range(len(groups)), groups, **tick_kw)
    ax.grid(alpha=0.3, axis="y")


def plot_bars(rows: dict[str, tuple[float, float]], path: str | Path, title: str = "", ylabel: str = "", log_y: bool = False) -> Path:
    """Bars of mean with error bars (standard error) per method."""
    plt = _plt()
    path = Path(path)
    names = list(rows)
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(names) + 2), 4.2), dpi=110)
    means = [rows[n][0] for n in names]
    errs = [rows[n][1] for n in names]
    ax.bar(names, means, yerr=errs, capsize=4, color="tab:blue", alpha=0.8)
    if log_y:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
