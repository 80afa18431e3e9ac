"""FFT gradient sparsification + range-based quantization (thesis Ch. 7) against top-k, PowerSGD and none.

Part 1, codecs on real gradients (a small CNN on digits16, gradients taken at initialisation and after
some training): true payload bytes (values, bitmap or indices, every header), compression ratio,
reconstruction error alpha = ||g - g_hat|| / ||g||, encode/decode time per MB of gradient (on 2**20 values),
and the Eq. 7.4 break-even ratio from this CPU's primitive throughputs.

Part 2, convergence: the same CNN trained by 2 DDP workers (gloo, localhost) on the derived digits task
(digits16, ``evaluation.datasets``) with the same steps and seeds for every exchange: uncompressed
all-reduce, FFT (theta 0.85, 10-bit, the thesis setting) with and without error feedback, top-k at
*equal true bytes* with and without error feedback, a second, tighter byte budget (FFT theta 0.95 vs top-k),
and PyTorch's PowerSGD hook. Bytes are those handed to the process group, counted by instrumenting the
collectives. Results are cached per (method, seed) under benchmarks/cache/compression/.

    python benchmarks/compression.py --seeds 3      # ~1 h on a busy 2-core machine
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasagent.evaluation.datasets import load_dataset
from nasagent.report.plots import _plt
from nasagent.report.results import CACHE_DIR, RESULTS_DIR, beats, machine_info, mean_se, write_results
from nasagent.systems.compression import (FFTCodec, NoCompression, QSGDCodec, TernGradCodec, TopKCodec, error_cdf,
                                          gradient_histogram, min_useful_ratio, pack_bool, relative_error, theta_for_bytes)
from nasagent.systems.data_parallel import DPConfig, train_data_parallel

MB = 2**20
CACHE = CACHE_DIR / "compression"


def digits_cnn(width: int = 16, classes: int = 10) -> nn.Module:
    """The small network every run trains: two conv-ReLU-pool stages and two dense layers (~38k weights)."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(2 * width * 16, 64), nn.ReLU(), nn.Linear(64, classes))


def n_params() -> int:
    return sum(p.numel() for p in digits_cnn().parameters())


# -- part 1: codecs ----------------------------------------------------------------------------------------
def real_gradients(data, steps: int = 200, lr: float = 0.02) -> list[torch.Tensor]:
    """Flattened full-batch-of-64 gradients of the CNN at initialisation and after ``steps`` SGD steps."""
    torch.manual_seed(0)
    model = digits_cnn()
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    grads = []
    rng = np.random.default_rng(0)
    for step in range(steps + 1):
        idx = torch.from_numpy(rng.choice(len(y), 64, replace=False))
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        if step in (0, steps // 2, steps):
            grads.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]).clone())
        opt.step()
    return grads


def codec_table(grads: list[torch.Tensor], fft_theta: float) -> tuple[list[dict], dict]:
    n = grads[0].numel()
    fft = FFTCodec(fft_theta)
    budget = fft.payload_bytes(n)
    codecs = {
        "none": NoCompression(),
        f"fft-{fft_theta}-q10": fft,
        f"fft-{fft_theta}-fp32": FFTCodec(fft_theta, bits=None),
        f"topk-{fft_theta}": TopKCodec(fft_theta),
        "topk-eqbytes": TopKCodec(theta_for_bytes(lambda t: TopKCodec(t), n, budget)),
        "topk-q10-eqbytes": TopKCodec(theta_for_bytes(lambda t: TopKCodec(t, bits=10), n, budget), bits=10),
        "qsgd-7": QSGDCodec(7),
        "terngrad": TernGradCodec(),
        # TernGrad's exemption: the classifier (the last Linear, flattened last) goes as float32
        "terngrad-exempt-last": TernGradCodec(exempt_tail=sum(p.numel() for p in digits_cnn()[-1].parameters())),
    }
    rows = []
    timing_vec = torch.randn(2**20) * 1e-2
    mid = grads[len(grads) // 2]  # a gradient from the middle of training, for the error CDF (Fig. 7.15)
    cdfs = {}
    for name, codec in codecs.items():
        errs = [relative_error(g, codec.decode(codec.encode(g), n)) for g in grads]
        enc, dec = _time_codec(codec, timing_vec)
        cdfs[name] = error_cdf(mid, codec.decode(codec.encode(mid), n))
        row = {"method": name, "task": "digits16-cnn-gradients", "dim": n}
        rows += [
            {**row, "metric": "payload_bytes", "value": codec.payload_bytes(n)},
            {**row, "metric": "compression_ratio", "value": codec.ratio(n)},
            {**row, "metric": "relative_error", "value": float(np.mean(errs)), "sd": float(np.std(errs)), "samples": len(errs)},
            {**row, "metric": "encode_ms_per_mb", "value": enc},
            {**row, "metric": "decode_ms_per_mb", "value": dec},
        ]
        err, frac = cdfs[name]
        for q in (0.5, 0.9, 0.99):  # per-value error |g - g_hat| / max|g| at these quantiles
            rows.append({**row, "metric": f"value_error_p{round(q * 100)}", "value": float(np.interp(q, frac, err))})
        if hasattr(codec, "theta"):
            rows.append({**row, "metric": "theta", "value": codec.theta})
    return rows, {"budget_bytes": budget, "error_cdf": cdfs, "gradient_histogram": gradient_histogram(mid)}


def _time_codec(codec, vec: torch.Tensor, reps: int = 3) -> tuple[float, float]:
    codec.encode(vec)
    enc = dec = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        p = codec.encode(vec)
        t1 = time.perf_counter()
        codec.decode(p, vec.numel())
        t2 = time.perf_counter()
        enc, dec = min(enc, t1 - t0), min(dec, t2 - t1)
    mb = vec.numel() * 4 / MB
    return 1e3 * enc / mb, 1e3 * dec / mb


def primitive_throughputs(n: int = 2**20) -> dict:
    """Bytes/s of the sender's primitives on this CPU (Table 7.1): T_m, T_f, T_p, T_s."""
    x = torch.randn(n) * 1e-2
    q = FFTCodec().values.quantizer
    q.calibrate(x / x.abs().max())
    coef = torch.fft.rfft(x, norm="ortho")
    status = torch.rand(coef.numel()) < 0.15

    def rate(fn):
        fn()
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return 4 * n / best

    return {
        "t_m": rate(lambda: (x.half().float(), q.encode(x / x.abs().max()))),
        "t_f": rate(lambda: torch.fft.rfft(x, norm="ortho")),
        "t_p": rate(lambda: (pack_bool(status), coef[status])),
        "t_s": rate(lambda: torch.topk(coef.abs(), int(0.15 * coef.numel()), sorted=False)),
    }


# -- part 2: convergence ------------------------------------------------------------------------------------
def methods(fft_theta: float, tight_theta: float) -> dict[str, dict]:
    n = n_params()
    budget = FFTCodec(fft_theta).payload_bytes(n)
    tight = FFTCodec(tight_theta).payload_bytes(n)
    topk_theta = theta_for_bytes(lambda t: TopKCodec(t), n, budget)
    topk_tight = theta_for_bytes(lambda t: TopKCodec(t), n, tight)
    return {
        "none": {"method": "none"},
        "fft": {"method": "fft", "codec_options": {"theta": fft_theta}},
        "fft-ef": {"method": "fft", "codec_options": {"theta": fft_theta}, "error_feedback": True},
        "topk-eqbytes": {"method": "topk", "codec_options": {"theta": topk_theta}},
        "topk-eqbytes-ef": {"method": "topk", "codec_options": {"theta": topk_theta}, "error_feedback": True},
        "fft-tight-ef": {"method": "fft", "codec_options": {"theta": tight_theta}, "error_feedback": True},
        "topk-tight-ef": {"method": "topk", "codec_options": {"theta": topk_tight}, "error_feedback": True},
        "powersgd": {"method": "powersgd", "powersgd_rank": 1},
    }


def run_convergence(data, names: list[str], seeds: int, steps: int, lr: float, fft_theta: float, tight_theta: float) -> dict:
    CACHE.mkdir(parents=True, exist_ok=True)
    specs = methods(fft_theta, tight_theta)
    out: dict[str, list[dict]] = {}
    for seed in range(seeds):
        for name in names:
            spec = specs[name]
            key = f"{name}-s{seed}-steps{steps}-lr{lr}-{json.dumps(spec, sort_keys=True)}"
            path = CACHE / f"{name}-s{seed}-{_digest(key)}.json"
            if path.exists():
                res = json.loads(path.read_text())
            else:
                t0 = time.time()
                cfg = DPConfig(seed=seed, steps=steps, lr=lr, eval_every=max(steps // 10, 1), track_error=spec["method"] in ("fft", "topk"), **spec)
                res = train_data_parallel(functools.partial(digits_cnn), data, cfg)
                res["wall_seconds"] = time.time() - t0
                path.write_text(json.dumps(res))
                print(f"{name:18s} seed {seed}: test {res['test_acc']:.4f} ratio {res['uncompressed_bytes_per_step'] / res['bytes_per_step']:.1f}x "
                      f"({res['wall_seconds']:.0f}s)", flush=True)
            out.setdefault(name, []).append(res)
    return out


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha1(text.encode()).hexdigest()[:10]


def convergence_rows(results: dict, steps: int) -> list[dict]:
    rows = []
    base = [r["test_acc"] for r in results["none"]]
    for name, runs in results.items():
        acc = [r["test_acc"] for r in runs]
        m, se = mean_se(acc)
        ratio = [r["uncompressed_bytes_per_step"] / r["bytes_per_step"] for r in runs]
        row = {"method": name, "task": "digits16/2-workers", "n_seeds": len(runs), "budget": steps, "workers": 2}
        rows += [
            {**row, "metric": "test_accuracy", "value": m, "se": se},
            {**row, "metric": "val_accuracy", "value": mean_se([r["val_acc"] for r in runs])[0]},
            {**row, "metric": "accuracy_drop_points", "value": 100 * (statistics.mean(base) - m),
             "se": 100 * mean_se(np.array(base) - np.array(acc))[1]},
            {**row, "metric": "true_bytes_per_step", "value": statistics.mean(r["bytes_per_step"] for r in runs)},
            {**row, "metric": "true_compression_ratio", "value": statistics.mean(ratio)},
            {**row, "metric": "step_seconds", "value": statistics.mean(r["step_seconds"] for r in runs)},
            {**row, "metric": "workers_identical", "value": float(all(r["params_identical"] for r in runs))},
        ]
        alphas = [r["mean_alpha"] for r in runs if r.get("mean_alpha") is not None]
        if alphas:
            rows.append({**row, "metric": "mean_alpha", "value": statistics.mean(alphas)})
    return rows


def verdicts(results: dict) -> dict:
    """Paired comparisons over the shared seeds by the 2-standard-error rule (higher accuracy is better)."""
    acc = {k: [r["test_acc"] for r in v] for k, v in results.items()}
    pairs = [("fft", "topk-eqbytes"), ("fft-ef", "topk-eqbytes-ef"), ("fft-tight-ef", "topk-tight-ef"), ("fft-ef", "none"), ("fft", "none")]
    return {f"{a} vs {b}": beats(acc[a], acc[b], lower_is_better=False) for a, b in pairs if a in acc and b in acc}


def plot(results: dict, codec_rows: list, path: Path, cdfs: dict, histogram) -> None:
    plt = _plt()
    fig, axes = plt.subplots(2, 2, figsize=(13, 9), dpi=110)
    (a1, a2), (a3, a4) = axes
    for name, runs in results.items():
        curves = [r["curve"] for r in runs if r["curve"]]
        if not curves:
            continue
        steps = [s for s, _ in curves[0]]
        acc = np.array([[a for _, a in c] for c in curves]) * 100
        m, se = acc.mean(0), acc.std(0) / np.sqrt(len(curves))
        ratio = statistics.mean(r["uncompressed_bytes_per_step"] / r["bytes_per_step"] for r in runs)
        a1.plot(steps, m, label=f"{name} ({ratio:.0f}x fewer bytes)")
        a1.fill_between(steps, m - 2 * se, m + 2 * se, alpha=0.15)
    a1.set_xlabel("step (2 workers)")
    a1.set_ylabel("test accuracy %")
    a1.set_title("digits16 CNN, 2 DDP workers: convergence by gradient exchange")
    a1.legend(fontsize=7)
    a1.grid(alpha=0.3)
    errs = {r["method"]: r["value"] for r in codec_rows if r["metric"] == "relative_error"}
    ratios = {r["method"]: r["value"] for r in codec_rows if r["metric"] == "compression_ratio"}
    for name in errs:
        a2.scatter(ratios[name], errs[name])
        a2.annotate(name, (ratios[name], errs[name]), fontsize=7)
    a2.set_xscale("log")
    a2.set_xlabel("true compression ratio (bytes)")
    a2.set_ylabel("relative L2 error on real gradients")
    a2.set_title("codecs on the CNN's gradients")
    a2.grid(alpha=0.3)
    for name, (err, frac) in cdfs.items():  # thesis Fig. 7.15: where each codec's per-value error lies
        if name != "none":
            a3.plot(np.maximum(err, 1e-6), frac, label=name)
    a3.set_xscale("log")
    a3.set_xlabel("per-value error |g - g_hat| / max|g| (floored at 1e-6)")
    a3.set_ylabel("fraction of values")
    a3.set_title("error CDF, gradient from mid-training")
    a3.legend(fontsize=7)
    a3.grid(alpha=0.3)
    edges, counts = histogram
    nz = np.asarray(counts) > 0  # a log axis cannot show empty bins: leave them blank
    a4.bar(np.array(edges[:-1])[nz], np.asarray(counts)[nz], width=np.diff(edges)[nz], align="edge")
    a4.set_yscale("log")
    a4.set_xlabel("gradient value")
    a4.set_ylabel("count (log)")
    a4.set_title("gradient histogram, mid-training: most values sit near zero")
    a4.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=900)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--theta", type=float, default=0.85)
    ap.add_argument("--tight-theta", type=float, default=0.95)
    ap.add_argument("--methods", nargs="+", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits16", seed=0, copies=2)
    codec_rows, info = codec_table(real_gradients(data), args.theta)
    cdfs = info.pop("error_cdf")  # the plot's curves; their quantiles are rows
    thr = primitive_throughputs()
    eq74 = {f"{g}gbps": min_useful_ratio(g * 1e9 / 8, **thr) for g in (1, 10, 56)}
    for k, v in eq74.items():
        codec_rows.append({"method": "fft", "metric": f"min_useful_ratio_{k}", "value": v if np.isfinite(v) else -1.0,
                           "note": "-1: no ratio helps (compression slower than the link)"})
    names = args.methods or list(methods(args.theta, args.tight_theta))
    results = run_convergence(data, names, args.seeds, args.steps, args.lr, args.theta, args.tight_theta)
    rows = codec_rows + convergence_rows(results, args.steps)
    extra = {"data": data.describe(), "params": n_params(), "primitive_throughput_bytes_per_s": thr, "verdicts": verdicts(results),
             "goal": ">= 10x fewer true bytes than uncompressed with final accuracy within 1 point", **info}
    write_results("compression", rows, extra=extra, machine=machine_info(threads=1))
    plot(results, codec_rows, RESULTS_DIR / "compression.png", cdfs, info["gradient_histogram"])
    for r in rows:
        if r["metric"] in ("test_accuracy", "accuracy_drop_points", "true_compression_ratio", "relative_error", "compression_ratio"):
            print(f"{r['method']:22s} {r['metric']:24s} {r['value']:.4f} {('± %.4f' % r['se']) if 'se' in r else ''}")
    print(json.dumps(extra["verdicts"], indent=1))


if __name__ == "__main__":
    main()
