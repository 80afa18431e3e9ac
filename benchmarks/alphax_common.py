"""Shared pieces of the AlphaX benchmark scripts: a cached ask/tell driver with W trials in flight.

``drive`` keeps ``workers`` trials asked and not yet told, and finishes a seeded-random one of them each step,
so results come back out of order as they do from a pool of workers (one worker is the sequential loop).
It counts unique architectures as samples (the protocol's definition), stops at the global optimum or at
the cap, and times ``ask`` + ``tell`` (the strategy's overhead, model fitting included). Each run is cached
as JSON under benchmarks/cache/alphax/ so an interrupted script resumes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from nasagent.core import SpaceExhausted
from nasagent.report.results import CACHE_DIR

CACHE = CACHE_DIR / "alphax"


def cached(tag: str, fn) -> dict:
    path = CACHE / f"{tag}.json"
    if path.exists():
        return json.loads(path.read_text())
    out = fn()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return out


def drive(strategy, bench, objective, cap: int, opt_keys=frozenset(), workers: int = 1, seed: int = 0, stop: bool = True) -> dict:
    """Run ``strategy`` against ``bench``; returns samples_to_optimum (None if the cap came first), the
    best-so-far trace [(sample, value)], and the overhead in ms per sample."""
    space = strategy.space
    rng = np.random.default_rng(10_000 + seed)
    inflight, seen, trace = [], set(), []
    best = -np.inf
    overhead = 0.0
    sto = None
    asks = 0
    while len(seen) < cap and asks < 50 * cap:  # a strategy that only re-proposes known architectures ends too
        asks += 1
        try:
            while len(inflight) < workers:
                t0 = time.perf_counter()
                inflight.append(strategy.ask())
                overhead += time.perf_counter() - t0
        except SpaceExhausted:  # nothing left to propose: finish what is in flight
            if not inflight:
                break
        trial = inflight.pop(int(rng.integers(len(inflight))))
        res = bench(trial.arch)
        res.score = objective.score(res.metrics) if res.status == "ok" else None
        t0 = time.perf_counter()
        strategy.tell(trial, res)
        overhead += time.perf_counter() - t0
        key = space.key(trial.arch)
        if key in seen or not res.ok:
            continue
        seen.add(key)
        if res.score > best:
            best = res.score
            trace.append((len(seen), float(best)))
        if sto is None and key in opt_keys:
            sto = len(seen)
            if stop:
                break
    n = max(len(seen), 1)
    return {"samples_to_optimum": sto, "samples": len(seen), "trace": trace, "overhead_ms_per_sample": 1000 * overhead / n}


def regret_at(trace, optimum: float, n: int) -> float:
    """Regret (optimum - best) after the first n samples; objective scores are maximised."""
    vals = [v for s, v in trace if s <= n]
    return float(optimum - max(vals)) if vals else float("nan")


def summary(runs: list[dict], cap: int) -> dict:
    sto = np.array([r["samples_to_optimum"] or cap for r in runs], dtype=float)
    return {
        "mean": float(sto.mean()),
        "se": float(sto.std(ddof=1) / np.sqrt(len(sto))) if len(sto) > 1 else 0.0,
        "median": float(np.median(sto)),
        "censored": int(sum(r["samples_to_optimum"] is None for r in runs)),
        "values": sto.tolist(),
    }


def set_threads() -> None:
    import torch

    torch.set_num_threads(1)


def out_dir() -> Path:
    return Path("benchmarks/results")
