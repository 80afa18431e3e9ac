"""Top-K selection, the last stage of a weight-sharing search.

A supernet ranks cells well on average but poorly among the best ones (``docs/training.md``: top-10 % Kendall
τ below 0 on NB201/digits16), so its single favourite is a weak answer. ``select_top_k`` trains the K
best-scored distinct architectures of a finished run from scratch, once each, and names the one with the best
validation accuracy. On NB201/digits16 this turned searches whose favourite was a median cell into answers
2–4 points above it (``benchmarks/fewshot_search.py``). The result is written to ``RUN_DIR/selection.json``.
"""

from __future__ import annotations

import json
import math
import os
import time

from nasagent.core import NasagentError, Result

#: the seed of the selection trainings: keep it apart from the seeds used to report the answer's accuracy
SELECTION_SEED = 100
#: options of a weight-sharing run that mean the same network and the same data splits when the candidates are
#: trained alone (another data_seed would select on images the supernet trained on)
_NETWORK_OPTIONS = ("C", "N", "layers", "data_seed")


def top_scored(run_dir, k: int) -> list[tuple[str, float]]:
    """The ``k`` distinct architectures of a run with the best scores, best first, as (text, score)."""
    from nasagent.api import load_config

    _, journal = load_config(run_dir)
    try:
        return _best_distinct(journal, k, run_dir)
    finally:
        journal.close()


def _best_distinct(journal, k: int, run_dir) -> list[tuple[str, float]]:
    if int(k) < 1:
        raise NasagentError(f"top-K selection needs k >= 1, got {k}")
    rows = [(t.score, t.arch) for t in journal.trials() if t.status in ("ok", "cached") and t.score is not None]
    out, seen = [], set()
    for score, arch in sorted(rows, key=lambda r: -r[0]):
        if arch not in seen:
            seen.add(arch)
            out.append((arch, float(score)))
            if len(out) == int(k):
                break
    if not out:
        raise NasagentError(f"run {run_dir} has no successful trial to select from")
    return out


def default_training_benchmark(benchmark: str) -> str:
    """``train:<data>`` for a run that scored candidates with a supernet on ``<data>``."""
    family, _, data = benchmark.partition(":")
    if family in ("oneshot", "fewshot", "train") and data:
        return f"train:{data}"
    raise NasagentError(f"cannot tell which data to train on for a {benchmark!r} run; pass benchmark='train:<data>'")


def select_top_k(run_dir, k: int = 10, benchmark: str | None = None, benchmark_options: dict | None = None,
                 seed: int = SELECTION_SEED, metric: str = "val_accuracy", progress=None) -> dict:
    """Train the run's ``k`` best-scored architectures once each and rank them by ``metric`` (higher is better).

    ``benchmark`` defaults to ``train:<data>`` of the run's supernet benchmark; a ``train:`` benchmark gets the
    run's network size (C, N, layers), space and ``seed``; ``benchmark_options`` add to or replace those
    (epochs, lr, ...). ``progress`` is called with (done, k) after each training. A candidate whose training
    fails is listed as failed and skipped. Returns, and writes to ``RUN_DIR/selection.json``, the chosen
    architecture and every candidate's supernet score, metrics and cost.
    """
    from nasagent.api import load_config, run_directory
    from nasagent.registry import make_benchmark

    config, journal = load_config(run_dir)
    run_dir = run_directory(run_dir)
    try:
        candidates = _best_distinct(journal, k, run_dir)
    finally:
        journal.close()
    target = run_dir / "selection.json"
    if target.is_dir() or not os.access(run_dir, os.W_OK):
        raise NasagentError(f"cannot write {target} (a folder there, or a read-only run directory); fix that before training")
    spec = benchmark or default_training_benchmark(config.benchmark)
    options = {}
    if spec.startswith("train:"):  # the run's network, trained alone with the selection seed
        options = {key: config.benchmark_options[key] for key in _NETWORK_OPTIONS if key in config.benchmark_options}
        run_space = config.benchmark_options.get("space") or config.space
        if run_space:
            options["space"] = run_space
        options["seed"] = int(seed)
    options.update(benchmark_options or {})
    bench = make_benchmark(spec, **options)
    known = getattr(bench, "metrics", None)
    if known and metric not in known:  # refuse before K trainings, not after them
        raise NasagentError(f"{spec!r} has no metric {metric!r}; its metrics: {', '.join(known)}")
    space = getattr(bench, "space", None)  # candidates are journaled as text; parse them in the benchmark's space
    rows = []
    t0 = time.perf_counter()
    if progress is not None:
        progress(0, len(candidates))  # everything is checked: training starts now
    for i, (arch, score) in enumerate(candidates):
        try:
            result = bench(space.parse(arch) if space is not None else arch)
        except NasagentError as e:  # e.g. a cell the benchmark's space cannot read: this candidate fails, not all
            result = Result.failed(str(e))
        good = result.status == "ok"  # (Result.ok also needs the runner's score, which a direct call has not)
        value = result.metrics.get(metric) if good else None
        value = float(value) if value is not None and math.isfinite(value) else None
        error = result.error
        if good and value is None:
            error = f"no finite {metric!r} among its metrics ({', '.join(result.metrics) or 'none'}); choose another metric"
        rows.append({"arch": arch, "supernet_score": score, "status": result.status if value is not None else "failed",
                     metric: value, "metrics": dict(result.metrics), "cost": result.cost, "error": error})
        if progress is not None:
            progress(i + 1, len(candidates))
    ok = [r for r in rows if r[metric] is not None]
    if not ok:
        raise NasagentError(f"every top-{len(candidates)} evaluation failed with {spec!r} (first: {rows[0]['error']})")
    best = max(ok, key=lambda r: r[metric])
    out = {"best": best["arch"], "metric": metric, "benchmark": spec, "options": options, "seed": int(options.get("seed", seed)),
           "seconds": time.perf_counter() - t0, "candidates": sorted(rows, key=lambda r: -(r[metric] if r[metric] is not None else -1e300))}
    target.write_text(json.dumps(out, indent=1, default=str))
    return out

