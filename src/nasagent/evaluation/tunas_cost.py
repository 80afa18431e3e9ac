"""Cost models T(α) for TuNAS' rewards: parameters, FLOPs, or a latency look-up table measured on this device.

The seed's code uses a per-layer table conditioned on the layer's op and its input/output widths (the
Kronecker-feature linear model) with weights measured on a Pixel-1 phone. We cannot measure a phone, so
``LatencyTable`` measures *this* device: each distinct layer configuration (kind, kernel, widths, SE, stride,
activation, input resolution) is built alone and timed at batch 1 with a fixed thread count, after warm-up,
as the median of repeated runs. A network's predicted latency is the sum over its active layers. Entries are
measured lazily the first time a configuration is seen and can be saved to, and loaded from, a JSON file
that records the device and the space, so a table is never silently reused on another machine or space.

Every cost model answers ``cost(arch)`` in its ``unit`` and ``achievable()`` = (cheapest, dearest) cost in the
space: the smallest and the largest architecture, as every cost here grows with each choice.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from nasagent.core import NasagentError
from nasagent.spaces.mobilenet import MobileNetSpace, Resolved


STATISTICS = ("median", "min", "p10")


def time_forward(module, x, repeats: int = 25, warmup: int = 5, threads: int = 1, statistic: str = "median") -> float:
    """Milliseconds of one forward pass: ``statistic`` over ``repeats`` timed runs after ``warmup`` runs.

    "median" is the usual choice; on a machine shared with other busy processes, preemption inflates the
    median many-fold, and "min" (or "p10") measures the network rather than the neighbours."""
    if statistic not in STATISTICS:
        raise NasagentError(f"unknown latency statistic {statistic!r}; statistics: {', '.join(STATISTICS)}")
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(threads)))
    was = module.training
    module.eval()
    try:
        times = []
        with torch.no_grad():
            for i in range(int(warmup) + int(repeats)):
                t0 = time.perf_counter()
                module(x)
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
        module.train(was)
    if statistic == "min":
        value = min(times)
    elif statistic == "p10":
        value = sorted(times)[len(times) // 10]
    else:
        value = statistics.median(times)
    return 1000.0 * value


def _spatial(size: int, stride: int) -> int:
    return (size - 1) // stride + 1 if stride > 1 else size


class CostModel:
    unit = ""
    name = ""

    def __init__(self, space: MobileNetSpace, input_shape=(3, 32, 32)):
        self.space = space
        self.input_shape = tuple(int(d) for d in input_shape)

    def layer_cost(self, r: Resolved, size: int) -> float:
        raise NotImplementedError

    def cost(self, arch) -> float:
        size = self.input_shape[1]
        total = 0.0
        for r in self.space.resolve(arch, self.input_shape[0]):
            if r.active:
                total += self.layer_cost(r, size)
            size = _spatial(size, r.stride) if r.active or r.kind in ("stem", "head") else size
        return total

    __call__ = cost

    def achievable(self) -> tuple[float, float]:
        return self.cost(self.space.smallest()), self.cost(self.space.largest())

    def check_target(self, target: float, what: str = "target") -> None:
        lo, hi = self.achievable()
        if not (lo <= float(target) <= hi):
            raise NasagentError(
                f"{what} {target:g} {self.unit} cannot be met in {self.space.name}: its {self.name} spans "
                f"{lo:.4g}..{hi:.4g} {self.unit} (smallest..largest architecture); pick a target in that range"
            )


def _layer_macs(r: Resolved, size: int, divisor: int, head_extra: int | None, num_classes: int) -> tuple[int, int]:
    """(multiply-adds, parameters) of one layer at input resolution ``size``."""
    out_size = _spatial(size, r.stride)
    k2 = r.kernel * r.kernel
    if r.kind == "stem":
        p = r.cin * r.out * k2 + 2 * r.out
        return p * out_size * out_size, p
    if r.kind == "head":
        p = r.cin * r.out + 2 * r.out
        macs = r.cin * r.out * size * size
        width = r.out
        if head_extra:
            p += r.out * head_extra + head_extra
            macs += r.out * head_extra
            width = head_extra
        p += width * num_classes + num_classes
        return macs + width * num_classes, p
    if r.kind == "sepconv":
        p_dw, p_pw = r.cin * k2, r.cin * r.out
        return p_dw * out_size**2 + p_pw * out_size**2, p_dw + p_pw + 2 * (r.cin + r.out)
    from nasagent.evaluation.tunas_models import se_hidden

    p_exp, p_dw, p_proj = r.cin * r.mid, r.mid * k2, r.mid * r.out
    macs = p_exp * size * size + (p_dw + p_proj) * out_size**2
    p = p_exp + p_dw + p_proj + 2 * (2 * r.mid + r.out)
    if r.se:
        h = se_hidden(r.mid, divisor)
        p += 2 * r.mid * h + r.mid + h
        macs += 2 * r.mid * h
    return macs, p


class FlopsCost(CostModel):
    """FLOPs (2 per multiply-add) of one image; fast and device-free, but a poor latency proxy at tiny scale."""

    unit = "MFLOPs"
    name = "flops"

    def __init__(self, space, input_shape=(3, 32, 32), num_classes: int = 10):
        super().__init__(space, input_shape)
        self.num_classes = int(num_classes)

    def layer_cost(self, r, size):
        return 2e-6 * _layer_macs(r, size, self.space.divisor, self.space.head_extra, self.num_classes)[0]


class ParamsCost(FlopsCost):
    unit = "k params"
    name = "params"

    def layer_cost(self, r, size):
        return 1e-3 * _layer_macs(r, size, self.space.divisor, self.space.head_extra, self.num_classes)[1]


def device_fingerprint(threads: int) -> dict:
    """What a latency depends on besides the network: CPU model, torch version, threads, device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "machine": platform.machine(), "torch": torch.__version__.split("+")[0], "threads": int(threads), "device": "cpu"}


class LatencyTable(CostModel):
    """Per-layer latency look-up table (ms), measured on this CPU, summed over active layers."""

    unit = "ms"
    name = "latency"

    def __init__(self, space, input_shape=(3, 32, 32), num_classes: int = 10, threads: int = 1, repeats: int = 25,
                 warmup: int = 5, statistic: str = "median", path: str | Path | None = None, allow_foreign: bool = False):
        super().__init__(space, input_shape)
        if statistic not in STATISTICS:
            raise NasagentError(f"unknown latency statistic {statistic!r}; statistics: {', '.join(STATISTICS)}")
        self.statistic = statistic
        self.num_classes, self.threads, self.repeats, self.warmup = int(num_classes), int(threads), int(repeats), int(warmup)
        self.entries: dict[str, float] = {}
        self.measured = 0
        self.path = Path(path) if path else None
        if self.path is not None and self.path.exists():
            self.load(self.path, allow_foreign=allow_foreign)

    def signature(self) -> dict:
        return {"space": self.space.name, "config": self.space.config(), "input_shape": list(self.input_shape),
                "num_classes": self.num_classes, "statistic": self.statistic}

    @staticmethod
    def _key(r: Resolved, size: int) -> str:
        return f"{r.kind}|k{r.kernel}|{r.cin}-{r.mid}-{r.out}|se{int(r.se)}|s{r.stride}|{r.act}|res{int(r.residual)}|{size}"

    def layer_cost(self, r, size):
        key = self._key(r, size)
        hit = self.entries.get(key)
        if hit is None:
            hit = self.entries[key] = self._measure(r, size)
            self.measured += 1
        return hit

    def _module(self, r: Resolved):
        from torch import nn

        from nasagent.evaluation import tunas_models as tm

        if r.kind == "stem":
            return tm._Stem(r.cin, r.out, r.kernel, r.act)
        if r.kind == "sepconv":
            return tm._SepConv(r)
        if r.kind == "ib":
            return tm._IB(r, self.space.divisor)
        sp = self.space

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(r.cin, r.out, 1, bias=False)
                self.bn = nn.BatchNorm2d(r.out)
                self.extra = nn.Conv2d(r.out, sp.head_extra, 1) if sp.head_extra else None
                self.fc = nn.Linear(sp.head_extra or r.out, self_classes)

            def forward(self, x):
                x = tm.activation(r.act, self.bn(self.conv(x))).mean((2, 3), keepdim=True)
                if self.extra is not None:
                    x = tm.activation(r.act, self.extra(x))
                return self.fc(x.flatten(1))

        self_classes = self.num_classes
        return Head()

    def achievable(self) -> tuple[float, float]:
        """Measured entries are not perfectly monotone in every choice (small layers are overhead-bound), so
        the extremes of 200 seeded random architectures widen the smallest/largest range."""
        lo, hi = super().achievable()
        rng = np.random.default_rng(12345)
        costs = [self.cost(self.space.sample(rng)) for _ in range(200)]
        return min(lo, *costs), max(hi, *costs)

    def _measure(self, r: Resolved, size: int) -> float:
        x = torch.zeros(1, r.cin, size, size)
        return time_forward(self._module(r), x, self.repeats, self.warmup, self.threads, self.statistic)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, path: str | Path | None = None) -> Path:
        path = Path(path or self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"device": device_fingerprint(self.threads), "signature": self.signature(), "repeats": self.repeats,
               "entries": self.entries}
        tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, path)
        return path

    def load(self, path: str | Path, allow_foreign: bool = False) -> None:
        try:
            doc = json.loads(Path(path).read_text())
            device, signature, entries = doc["device"], doc["signature"], doc["entries"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise NasagentError(f"cannot read latency table {path}: {e}; delete it to measure a new one") from None
        if signature != self.signature():
            raise NasagentError(
                f"latency table {path} was measured for {signature.get('space')} at input {signature.get('input_shape')} "
                f"({signature.get('statistic', 'median')}), not {self.space.name} at {list(self.input_shape)} ({self.statistic}); "
                "use a table of this space or delete it to re-measure"
            )
        here = device_fingerprint(self.threads)
        if device != here and not allow_foreign:
            raise NasagentError(
                f"latency table {path} was measured on another device ({device.get('cpu')}, torch {device.get('torch')}, "
                f"{device.get('threads')} thread(s)); this is {here['cpu']}, torch {here['torch']}, {here['threads']} thread(s). "
                "Latencies do not transfer: delete it to re-measure here, or pass allow_foreign=True"
            )
        self.entries.update({str(k): float(v) for k, v in entries.items()})


def make_cost_model(kind, space, input_shape, num_classes: int = 10, **options) -> CostModel:
    if isinstance(kind, CostModel):
        return kind
    models = {"latency": LatencyTable, "flops": FlopsCost, "params": ParamsCost}
    if kind not in models:
        raise NasagentError(f"unknown cost model {kind!r}; cost models: {', '.join(models)}")
    if kind != "latency" and options:
        raise NasagentError(f"cost model {kind!r} takes no option(s) {', '.join(options)}")
    return models[kind](space, input_shape, num_classes=num_classes, **options)


def measure_network(model, input_shape, threads: int = 1, repeats: int = 30, warmup: int = 5, statistic: str = "median") -> float:
    """End-to-end latency (ms) of a stand-alone network at batch 1 (for validating the table)."""
    return time_forward(model, torch.zeros(1, *tuple(input_shape)), repeats, warmup, threads, statistic)
