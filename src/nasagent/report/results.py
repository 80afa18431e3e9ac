"""Writing benchmark results in the project's one format (docs/benchmarks-protocol.md).

Every script under ``benchmarks/`` ends with ``write_results(name, rows, ...)``, which adds the command,
commit, date and machine, and checks that each row has ``method``, ``metric`` and a finite ``value``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

RESULTS_DIR = Path("benchmarks/results")
CACHE_DIR = Path("benchmarks/cache")
#: the libraries whose versions move results (a GP fit, an optimiser's defaults, a table's loader); only those
#: installed are recorded
PACKAGES = ("numpy", "scipy", "scikit-learn", "botorch", "gpytorch", "cmaes", "nevergrad", "optuna", "gymnasium", "ray")


def machine_info(threads: int | None = None, device: str = "cpu") -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(), "device": device}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads() if threads is None else threads
    except ImportError:
        pass
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    info["packages"] = package_versions()
    return info


def package_versions() -> dict[str, str]:
    """Installed versions of ``PACKAGES``: only torch is pinned, so a rerun months later may resolve others anew."""
    from importlib import metadata

    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def git_commit() -> str:
    """HEAD's sha, with "+dirty" when tracked files other than results and docs differ from it: the figures then
    came from uncommitted code (a results file written by an earlier run, or an edited doc, does not count)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                  ":(top,exclude)benchmarks/results", ":(top,exclude)docs", ":(top,exclude,glob)**/*.md"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + "+dirty" if changed else sha


def write_results(name: str, rows: list[dict], extra: dict | None = None, machine: dict | None = None, results_dir: Path = RESULTS_DIR) -> Path:
    for r in rows:
        missing = {"method", "metric", "value"} - set(r)
        if missing:
            raise ValueError(f"result row {r} lacks {missing}")
        if r["value"] is None or not math.isfinite(float(r["value"])):
            raise ValueError(f"result row {r} has a non-finite value")
    doc = {
        "benchmark": name,
        "command": "python " + " ".join([sys.argv[0], *sys.argv[1:]]) if sys.argv and sys.argv[0] else name,
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine or machine_info(),
        "rows": rows,
    }
    if extra:
        doc.update(extra)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{name}.json"
    path.write_text(json.dumps(_strict(doc), indent=2, default=float, allow_nan=False) + "\n")
    return path


def _strict(obj):
    """The document with every NaN/inf (outside the checked rows) written as null: JSON has no NaN, and other
    tools refuse a file that contains one."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # a numpy scalar
        return _strict(obj.item())
    return obj


def mean_se(values) -> tuple[float, float]:
    import numpy as np

    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0


def beats(a, b, lower_is_better: bool = True) -> str:
    """'win', 'loss' or 'tie' of paired samples a vs b by the protocol's 2-standard-error rule; 'n/a' when a
    value is missing (NaN/inf: no claim either way). ``b`` may be one number (a fixed reference)."""
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if b.ndim == 0:
        b = np.full_like(a, float(b))
    if a.shape != b.shape:
        raise ValueError(f"paired samples must have the same length, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return "n/a"
    d = a - b
    if d.size < 2:
        return "tie"
    m, se = d.mean(), d.std(ddof=1) / math.sqrt(d.size)
    if abs(m) <= 2 * se or m == 0:
        return "tie"
    better = m < 0 if lower_is_better else m > 0
    return "win" if better else "loss"


def sample_efficiency_ratio(curve, reference, budget: int, lower_is_better: bool = True) -> float:
    """How many times fewer samples ``curve`` needs to reach what ``reference`` reaches at ``budget`` samples.

    Both are mean curves indexed by samples (entry k is the value after k + 1 samples), e.g. mean regret. The
    target is ``reference[budget - 1]``; the crossing is the first sample at which ``curve`` is at least as
    good, placed by linear interpolation between that sample and the one before it (the Neural Predictor
    paper's "12.4x faster" is this ratio; it does not say how it interpolated). Returns ``budget / crossing``,
    or ``nan`` when ``curve`` never gets there within its length.
    """
    import numpy as np

    a = np.asarray(curve, dtype=float)
    r = np.asarray(reference, dtype=float)
    if not 1 <= budget <= len(r):
        raise ValueError(f"budget must be within the reference curve (1..{len(r)}), got {budget}")
    sign = 1.0 if lower_is_better else -1.0
    a, target = sign * a, sign * r[budget - 1]
    hit = np.flatnonzero(a <= target)
    if hit.size == 0:
        return float("nan")
    k = int(hit[0])
    if k == 0 or a[k] == a[k - 1]:
        return budget / (k + 1.0)
    crossing = k + (a[k - 1] - target) / (a[k - 1] - a[k])  # between samples k and k + 1 (1-based), linear
    return float(budget / crossing)
