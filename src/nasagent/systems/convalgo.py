"""Memory-budgeted convolution algorithm selection (SuperNeurons, thesis §8.3.5), as a CPU analogue.

cuDNN offers several algorithms for each convolution pass (GEMM, FFT, Winograd ...) that trade a scratch
*workspace* for speed. SuperNeurons allocates the functional tensors first, looks at the bytes left free at
each step, benchmarks every algorithm whose workspace fits and runs the fastest. PyTorch exposes no such
choice on the CPU, so this module brings its own real, differentiable implementations of a 2-D convolution:

- ``native``: ``F.conv2d`` and ATen's convolution backward (whatever workspace they use is measured);
- ``im2col``: ``F.unfold`` of the whole batch and one matrix product (workspace: the column matrix);
- ``fft``: stride-1 convolution by ``torch.fft.rfft2`` of the padded input and kernel (big workspace);
- ``<algo>-chunked<k>``: any of them over batch chunks of ``k`` samples (workspace shrinks with ``k``,
  speed usually too).

Each runs as a ``torch.autograd.Function`` that saves only the input and weight - like a cuDNN call - so its
workspace is transient, and its backward is the algorithm's own data- and filter-gradient passes. A layer's
choice has two halves, as in cuDNN: the forward algorithm (run at the layer's forward step) and the backward
algorithm (its backward step), each with its own free-memory budget.

Workspace is *measured*, never assumed: the project's meter (``systems.meter.measure_peak``) runs the pass on
pre-allocated inputs, and the pass's results (output; input, weight and bias gradients) are subtracted: what is
left is the scratch memory the algorithm needed on top of what every algorithm must allocate.
``im2col_workspace_bytes`` gives the analytic figure of the im2col family as a cross-check.

Benchmarks run once per (layer geometry, input shape, dtype, device, threads, algorithm, pass) and are cached
in memory and, optionally, in a JSON file (the thesis leaves the frequency open, §6 item 23; we benchmark once).
A budget below every algorithm's workspace falls back to the smallest-workspace algorithm with a
``RuntimeWarning`` (``strict=True`` raises ``NasagentError`` instead).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from nasagent.core import NasagentError
from nasagent.systems.meter import measure_peak

PHASES = ("forward", "backward")
BASE_ALGORITHMS = ("native", "im2col", "fft")
DEFAULT_CHUNKS = (1, 4, 16)  # batch samples per chunk of the chunked variants
CHUNKED_BASES = ("native", "im2col")  # chunking barely shrinks fft's workspace (the kernel spectra stay) and slows it


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a convolution call except the tensors."""

    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1

    @classmethod
    def of(cls, conv: nn.Conv2d) -> ConvGeometry:
        padding = (0, 0) if conv.padding_mode != "zeros" else conv.padding  # non-zero padding is applied by F.pad
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:  # "same" (stride 1): PyTorch pads the extra pixel on the right/bottom, which a symmetric pad can't do
                pads = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
                if any(p % 2 for p in pads):
                    raise NasagentError(f"padding='same' with an even kernel extent {conv.kernel_size} is asymmetric; "
                                        "the conv algorithms need symmetric padding: pad explicitly instead")
                padding = tuple(p // 2 for p in pads)
        return cls(tuple(conv.stride), tuple(padding), tuple(conv.dilation), int(conv.groups))

    def output_hw(self, hw, kernel) -> tuple[int, int]:
        return tuple((h + 2 * p - d * (k - 1) - 1) // s + 1
                     for h, p, d, k, s in zip(hw, self.padding, self.dilation, kernel, self.stride))


# --------------------------------------------------------------------------------------------------- algorithms


class Native:
    """PyTorch's own kernels (oneDNN or its im2col fall-back on the CPU, cuDNN on a GPU)."""

    name = "native"

    def check(self, geom: ConvGeometry) -> None:
        pass

    def forward(self, x, w, geom):
        return F.conv2d(x, w, None, geom.stride, geom.padding, geom.dilation, geom.groups)

    def backward_input(self, g, w, x_shape, geom):
        return torch.nn.grad.conv2d_input(x_shape, w, g, geom.stride, geom.padding, geom.dilation, geom.groups)

    def backward_weight(self, g, x, w_shape, geom):
        return torch.nn.grad.conv2d_weight(x, w_shape, g, geom.stride, geom.padding, geom.dilation, geom.groups)


class Im2col:
    """Explicit GEMM: unfold the whole batch into its column matrix, one batched matrix product per pass."""

    name = "im2col"

    def check(self, geom: ConvGeometry) -> None:
        if geom.groups != 1:
            raise NasagentError(f"the {self.name} convolution handles groups=1 only, not groups={geom.groups}")

    def forward(self, x, w, geom):
        n, o, k = x.shape[0], w.shape[0], w.shape[2:]
        cols = F.unfold(x, k, geom.dilation, geom.padding, geom.stride)  # [N, C*kh*kw, L]
        out = torch.matmul(w.reshape(o, -1), cols)
        return out.view(n, o, *geom.output_hw(x.shape[2:], k))

    def backward_input(self, g, w, x_shape, geom):
        n, o = g.shape[:2]
        gcols = torch.matmul(w.reshape(o, -1).t(), g.reshape(n, o, -1))
        return F.fold(gcols, tuple(x_shape[2:]), w.shape[2:], geom.dilation, geom.padding, geom.stride)

    def backward_weight(self, g, x, w_shape, geom):
        n, o = g.shape[:2]
        cols = F.unfold(x, w_shape[2:], geom.dilation, geom.padding, geom.stride)  # recomputed, never saved
        return torch.matmul(g.reshape(n, o, -1), cols.transpose(1, 2)).sum(0).view(w_shape)


class FFTConv:
    """Stride-1 convolution in the frequency domain: products of the 2-D real FFTs of padded input and kernel.

    Circular correlation over the padded size reproduces every valid output exactly (no wrap-around reaches
    them), so no extra padding is needed; the data gradient is the full convolution of the output gradient
    with the kernel, the weight gradient the correlation of the input with the output gradient.
    """

    name = "fft"

    def check(self, geom: ConvGeometry) -> None:
        if geom.stride != (1, 1) or geom.dilation != (1, 1) or geom.groups != 1:
            raise NasagentError(f"the fft convolution needs stride 1, dilation 1 and groups 1, not stride={geom.stride}, "
                                f"dilation={geom.dilation}, groups={geom.groups}")

    @staticmethod
    def _padded(x, geom):
        ph, pw = geom.padding
        return F.pad(x, (pw, pw, ph, ph)) if ph or pw else x

    def forward(self, x, w, geom):
        xp = self._padded(x, geom)
        size = tuple(xp.shape[2:])
        spec = torch.einsum("nchw,ochw->nohw", torch.fft.rfft2(xp), torch.fft.rfft2(w, s=size).conj())
        ho, wo = geom.output_hw(x.shape[2:], w.shape[2:])
        return torch.fft.irfft2(spec, s=size)[..., :ho, :wo].contiguous()

    def backward_input(self, g, w, x_shape, geom):
        (ph, pw), (h, wd) = geom.padding, x_shape[2:]
        size = (h + 2 * ph, wd + 2 * pw)
        spec = torch.einsum("nohw,ochw->nchw", torch.fft.rfft2(g, s=size), torch.fft.rfft2(w, s=size))
        return torch.fft.irfft2(spec, s=size)[..., ph:ph + h, pw:pw + wd].contiguous()

    def backward_weight(self, g, x, w_shape, geom):
        xp = self._padded(x, geom)
        size = tuple(xp.shape[2:])
        spec = torch.einsum("nchw,nohw->ochw", torch.fft.rfft2(xp), torch.fft.rfft2(g, s=size).conj())
        return torch.fft.irfft2(spec, s=size)[..., :w_shape[2], :w_shape[3]].contiguous()


class Chunked:
    """Any algorithm over batch chunks of ``chunk`` samples: its workspace scales with the chunk, not the batch."""

    def __init__(self, base, chunk: int):
        if int(chunk) < 1:
            raise NasagentError(f"a chunked convolution needs chunk >= 1 samples, got {chunk}")
        self.base, self.chunk = base, int(chunk)
        self.name = f"{base.name}-chunked{self.chunk}"

    def check(self, geom: ConvGeometry) -> None:
        self.base.check(geom)

    def _spans(self, n):
        return [(s, min(s + self.chunk, n)) for s in range(0, n, self.chunk)]

    def forward(self, x, w, geom):
        spans = self._spans(x.shape[0])
        first = self.base.forward(x[spans[0][0]:spans[0][1]], w, geom)
        if len(spans) == 1:
            return first
        out = first.new_empty((x.shape[0], *first.shape[1:]))
        out[:spans[0][1]] = first
        del first
        for s, e in spans[1:]:
            out[s:e] = self.base.forward(x[s:e], w, geom)
        return out

    def backward_input(self, g, w, x_shape, geom):
        out = g.new_empty(x_shape)
        for s, e in self._spans(x_shape[0]):
            out[s:e] = self.base.backward_input(g[s:e], w, (e - s, *x_shape[1:]), geom)
        return out

    def backward_weight(self, g, x, w_shape, geom):
        out = None
        for s, e in self._spans(x.shape[0]):
            part = self.base.backward_weight(g[s:e], x[s:e], w_shape, geom)
            out = part if out is None else out.add_(part)
        return out


_BASES = {"native": Native(), "im2col": Im2col(), "fft": FFTConv()}


def get_algorithm(name: str):
    """The algorithm called ``name``: one of ``native``, ``im2col``, ``fft``, or ``<one of them>-chunked<k>``."""
    if name in _BASES:
        return _BASES[name]
    base, sep, chunk = name.partition("-chunked")
    if sep and base in _BASES and chunk.isdigit():
        return Chunked(_BASES[base], int(chunk))
    raise NasagentError(f"unknown convolution algorithm {name!r}; use one of {', '.join(_BASES)} or "
                        "'<algorithm>-chunked<samples>', e.g. 'im2col-chunked4'")


def algorithm_names(batch: int, chunks=DEFAULT_CHUNKS, chunked=CHUNKED_BASES) -> list[str]:
    """The default candidates for a batch: every base algorithm, and chunked variants with chunks below the batch."""
    names = list(BASE_ALGORITHMS)
    for base in chunked:
        names += [f"{base}-chunked{c}" for c in chunks if c < batch]
    return names


class _AlgoConv(torch.autograd.Function):
    """A convolution whose forward and backward passes run the chosen algorithms; saves input and weight only."""

    @staticmethod
    def forward(ctx, x, w, b, geom, fwd, bwd):
        ctx.save_for_backward(x, w)
        ctx.geom, ctx.bwd, ctx.has_bias = geom, bwd, b is not None
        y = fwd.forward(x, w, geom)
        if b is not None:
            y.add_(b.view(1, -1, 1, 1))
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        g = g.contiguous()
        gx = ctx.bwd.backward_input(g, w, x.shape, ctx.geom) if ctx.needs_input_grad[0] else None
        gw = ctx.bwd.backward_weight(g, x, w.shape, ctx.geom) if ctx.needs_input_grad[1] else None
        gb = g.sum((0, 2, 3)) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None, None, None


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1, forward="native", backward=None):
    """``F.conv2d`` computed by the named algorithms (``backward`` defaults to ``forward``); differentiable."""
    if isinstance(padding, str):
        raise NasagentError(f"conv2d takes numeric padding, not {padding!r}; an nn.Conv2d with padding='same' or "
                            "'valid' is handled by apply_algorithms")
    pair = lambda v: (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)  # noqa: E731
    geom = ConvGeometry(pair(stride), pair(padding), pair(dilation), int(groups))
    return _run(x, weight, bias, geom, forward, backward or forward)


def _run(x, weight, bias, geom, forward, backward):
    if x.dim() != 4 or weight.dim() != 4:
        raise NasagentError(f"conv algorithms take a 4-D input and weight (N, C, H, W), "
                            f"got {tuple(x.shape)} and {tuple(weight.shape)}")
    if x.shape[1] != weight.shape[1] * geom.groups:
        raise NasagentError(f"input has {x.shape[1]} channels but the weight expects {weight.shape[1] * geom.groups}")
    fwd, bwd = get_algorithm(forward), get_algorithm(backward)
    fwd.check(geom)
    bwd.check(geom)
    return _AlgoConv.apply(x.contiguous(), weight, bias, geom, fwd, bwd)


# ----------------------------------------------------------------------------------------- workspace and timing


def im2col_workspace_bytes(x_shape, w_shape, geom: ConvGeometry, element_size: int = 4, chunk: int | None = None) -> int:
    """Analytic size of the im2col column matrix (the GEMM family's workspace, before matmul temporaries)."""
    n = min(chunk or x_shape[0], x_shape[0])
    ho, wo = geom.output_hw(x_shape[2:], w_shape[2:])
    return n * x_shape[1] * w_shape[2] * w_shape[3] * ho * wo * element_size


@dataclass
class LayerProblem:
    """One convolution layer as the selector sees it: shapes, geometry, dtype, device."""

    x_shape: tuple
    w_shape: tuple
    bias: bool
    geom: ConvGeometry
    dtype: torch.dtype = torch.float32
    device: str = "cpu"

    def key(self, algorithm: str, phase: str) -> str:
        g = self.geom
        threads = torch.get_num_threads() if self.device == "cpu" else 0
        return (f"in={self.w_shape[1] * g.groups},out={self.w_shape[0]},k={tuple(self.w_shape[2:])},s={g.stride},p={g.padding},"
                f"d={g.dilation},g={g.groups},bias={self.bias},x={tuple(self.x_shape)},{str(self.dtype).replace('torch.', '')},"
                f"{self.device},threads={threads},{algorithm},{phase}")

    def tensors(self):
        gen = torch.Generator().manual_seed(0)
        make = lambda shape: torch.randn(shape, generator=gen, dtype=self.dtype).to(self.device)  # noqa: E731
        x, w = make(self.x_shape), make(self.w_shape)
        return x, w, make((self.x_shape[0], self.w_shape[0], *self.geom.output_hw(self.x_shape[2:], self.w_shape[2:])))


class BenchmarkCache:
    """(layer, algorithm, pass) -> measured workspace bytes and median seconds; optionally kept in a JSON file."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self.records: dict[str, dict] = {}
        if self.path is not None and self.path.exists():
            try:
                self.records = json.loads(self.path.read_text())["records"]
            except (ValueError, KeyError, TypeError) as e:
                raise NasagentError(f"conv benchmark cache {self.path} is not a cache file written by nasagent ({e}); "
                                    "delete it or pass another path") from None

    def get(self, key: str) -> dict | None:
        return self.records.get(key)

    def put(self, key: str, record: dict) -> None:
        self.records[key] = record
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"records": self.records}, indent=1, sort_keys=True))
            tmp.replace(self.path)


class Benchmarker:
    """Measures each algorithm's workspace (meter) and time (median of ``reps`` after one warm-up), once."""

    def __init__(self, cache: BenchmarkCache | None = None, reps: int = 3):
        if int(reps) < 1:
            raise NasagentError(f"reps must be >= 1, got {reps}")
        self.cache = cache if cache is not None else BenchmarkCache()
        self.reps = int(reps)
        self.runs = 0  # benchmarks actually executed (cache misses)

    def measure(self, problem: LayerProblem, algorithm: str, phase: str) -> dict:
        """{"workspace": bytes, "seconds": median, "supported": bool} for one algorithm and pass of a layer."""
        return self.measure_all(problem, [algorithm], phase)[algorithm]

    def measure_all(self, problem: LayerProblem, algorithms, phase: str) -> dict[str, dict]:
        """``measure`` for several algorithms; those not cached are timed in interleaved rounds, so a change in
        the machine's load hits them all alike (the thesis times candidates back to back in one step)."""
        if phase not in PHASES:
            raise NasagentError(f"phase must be one of {PHASES}, got {phase!r}")
        out, todo = {}, []
        for name in algorithms:
            hit = self.cache.get(problem.key(name, phase))
            if hit is not None:
                out[name] = hit
                continue
            algo = get_algorithm(name)
            try:
                algo.check(problem.geom)
            except NasagentError as e:
                out[name] = {"workspace": 0, "seconds": 0.0, "supported": False, "reason": str(e)}
                self._store(problem, name, phase, out[name])
                continue
            todo.append((name, algo))
        if todo:
            out.update(self._run(problem, todo, phase))
            for name, _ in todo:
                self._store(problem, name, phase, out[name])
        return out

    def _store(self, problem: LayerProblem, name: str, phase: str, record: dict) -> None:
        self.runs += 1
        self.cache.put(problem.key(name, phase), record)

    def _run(self, problem: LayerProblem, todo: list, phase: str) -> dict[str, dict]:
        x, w, g = problem.tensors()
        geom = problem.geom

        def call_of(algo):
            if phase == "forward":
                return lambda: algo.forward(x, w, geom)
            return lambda: (algo.backward_input(g, w, x.shape, geom), algo.backward_weight(g, x, w.shape, geom))

        calls = {name: call_of(algo) for name, algo in todo}
        workspace, times = {}, {name: [] for name in calls}
        with torch.no_grad():
            for name, call in calls.items():
                call()  # warm-up: lazily created kernels and plans
                meter = measure_peak(call, device=problem.device, rss=False)
                results = meter.result if isinstance(meter.result, tuple) else (meter.result,)
                workspace[name] = max(meter.peak_bytes - sum(t.untyped_storage().nbytes() for t in results), 0)
                del meter, results
            names = list(calls)
            for r in range(self.reps):
                for name in names[r % len(names):] + names[:r % len(names)]:  # rotate who goes first
                    t0 = time.perf_counter()
                    calls[name]()
                    if problem.device.startswith("cuda"):
                        torch.cuda.synchronize()
                    times[name].append(time.perf_counter() - t0)
        return {name: {"workspace": int(workspace[name]), "seconds": statistics.median(times[name]), "supported": True}
                for name in calls}


# ------------------------------------------------------------------------------------------------- selection


@dataclass
class AlgoChoice:
    """The algorithms chosen for one convolution layer, with what they were chosen from."""

    layer: str  # module path, as in ``model.named_modules()``
    problem: LayerProblem
    forward: str
    backward: str
    workspace: dict  # phase -> measured workspace bytes of the chosen algorithm
    seconds: dict  # phase -> its median seconds
    budget: dict  # phase -> free bytes it had to fit (None: unlimited)
    fallback: bool = False  # nothing fitted: the smallest-workspace algorithm was taken
    candidates: list = field(default_factory=list)  # {"algorithm", "phase", "workspace", "seconds", "feasible"}

    def as_dict(self) -> dict:
        d = asdict(self)
        d["problem"] = {"x_shape": list(self.problem.x_shape), "w_shape": list(self.problem.w_shape),
                        "geometry": asdict(self.problem.geom), "dtype": str(self.problem.dtype)}
        return d


def conv_layers(model: nn.Module) -> dict[str, nn.Conv2d]:
    """Every ``nn.Conv2d`` of the model by module path."""
    return {name: m for name, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def layer_problems(model: nn.Module, example_input: torch.Tensor) -> dict[str, LayerProblem]:
    """Each conv layer's real input shape (its first call) from one forward pass: on the meta device when the
    model allows, else on a CPU copy without gradients (the model itself, and its BN statistics, stay untouched)."""
    if not isinstance(example_input, torch.Tensor):
        raise NasagentError(f"example_input must be a tensor batch, got {type(example_input).__name__}")
    convs = conv_layers(model)
    if not convs:
        raise NasagentError(f"{type(model).__name__} has no nn.Conv2d layers to choose algorithms for")
    shapes: dict[str, tuple] = {}

    def run(net, x):
        def hook(name):
            def record(module, args):
                if name not in shapes:
                    s = tuple(args[0].shape)
                    if module.padding_mode != "zeros":
                        pads = module._reversed_padding_repeated_twice
                        s = (*s[:2], s[2] + pads[2] + pads[3], s[3] + pads[0] + pads[1])
                    shapes[name] = s
            return record

        mods = dict(net.named_modules())
        handles = [mods[name].register_forward_pre_hook(hook(name)) for name in convs]
        try:
            with torch.no_grad():
                net(x)
        finally:
            for h in handles:
                h.remove()

    try:
        run(copy.deepcopy(model).to("meta"), torch.empty(example_input.shape, dtype=example_input.dtype, device="meta"))
    except Exception:  # data-dependent forward: one real pass on a copy
        shapes.clear()
        try:
            run(copy.deepcopy(model), example_input)
        except Exception as e:
            raise NasagentError(f"cannot run {type(model).__name__} on an input of shape {tuple(example_input.shape)} "
                                f"to find its conv layers' shapes ({type(e).__name__}: {e})") from None
    out = {}
    for name, conv in convs.items():
        if name not in shapes:
            continue  # a conv the forward pass never calls needs no algorithm
        w = conv.weight
        out[name] = LayerProblem(shapes[name], tuple(w.shape), conv.bias is not None, ConvGeometry.of(conv),
                                 w.dtype, str(w.device))
    return out


_DEFAULT_BENCHMARKER = Benchmarker()


def _budgets(free_bytes, names) -> dict[str, dict]:
    def pair(v, where):
        if isinstance(v, dict):
            v = (v.get("forward"), v.get("backward"))
        vals = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
        if len(vals) != 2:
            raise NasagentError(f"free bytes for {where} must be one number or a (forward, backward) pair, got {v!r}")
        for b in vals:
            if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or b < 0):
                raise NasagentError(f"free bytes for {where} must be a non-negative number or None (unlimited), got {b!r}")
        return dict(zip(PHASES, vals))

    if isinstance(free_bytes, dict):
        missing = [n for n in names if n not in free_bytes]
        if missing:
            raise NasagentError(f"free_bytes has no budget for conv layer(s) {', '.join(missing)}; "
                                f"give one per layer ({', '.join(names)}) or one number for all")
        return {n: pair(free_bytes[n], f"layer {n!r}") for n in names}
    return {n: pair(free_bytes, "every layer") for n in names}


def select_algorithms(model: nn.Module, example_input: torch.Tensor, free_bytes=None, *, algorithms=None,
                      benchmarker: Benchmarker | None = None, cache_path: str | Path | None = None, reps: int = 3,
                      strict: bool = False) -> dict[str, AlgoChoice]:
    """For every conv layer and pass, the fastest algorithm whose measured workspace fits the free bytes.

    ``free_bytes``: one number for every layer, or a dict layer path -> number or (forward, backward) pair
    (e.g. ``free_bytes_per_step``); None is unlimited. ``algorithms``: candidate names (default: the base
    algorithms and their chunked variants, ``algorithm_names``). Benchmarks come from ``benchmarker``'s cache
    (a process-wide one by default; ``cache_path`` keeps them in a JSON file) and run only on a miss.
    When nothing fits, the smallest-workspace algorithm is taken with a ``RuntimeWarning``, or, with
    ``strict``, ``NasagentError`` is raised.
    """
    if benchmarker is None:
        benchmarker = Benchmarker(BenchmarkCache(cache_path), reps) if cache_path is not None else _DEFAULT_BENCHMARKER
    problems = layer_problems(model, example_input)
    budgets = _budgets(free_bytes, list(problems))
    if algorithms is not None:
        algorithms = list(algorithms)
        if not algorithms:
            raise NasagentError("algorithms must name at least one convolution algorithm")
        for a in algorithms:
            get_algorithm(a)  # unknown names fail here, before any benchmark
    choices = {}
    for name, problem in problems.items():
        names = algorithms or algorithm_names(problem.x_shape[0])
        picked, candidates, fallback = {}, [], False
        for phase in PHASES:
            budget = budgets[name][phase]
            rows = []
            for a, rec in benchmarker.measure_all(problem, names, phase).items():
                if not rec["supported"]:
                    continue
                fits = budget is None or rec["workspace"] <= budget
                rows.append({"algorithm": a, "phase": phase, "workspace": rec["workspace"], "seconds": rec["seconds"],
                             "feasible": fits})
            if not rows:
                raise NasagentError(f"no candidate algorithm supports conv layer {name!r} ({problem.geom}); include 'native'")
            feasible = [r for r in rows if r["feasible"]]
            if feasible:
                best = min(feasible, key=lambda r: r["seconds"])
            else:
                best = min(rows, key=lambda r: (r["workspace"], r["seconds"]))
                msg = (f"conv layer {name!r} {phase}: no algorithm's workspace fits {budget} free bytes; the smallest needs "
                       f"{best['workspace']} ({best['algorithm']})")
                if strict:
                    raise NasagentError(msg + "; raise the memory limit or free memory elsewhere (offload, recompute)")
                warnings.warn(msg + "; using it anyway", RuntimeWarning, stacklevel=2)
                fallback = True
            picked[phase] = best
            candidates += rows
        choices[name] = AlgoChoice(name, problem, picked["forward"]["algorithm"], picked["backward"]["algorithm"],
                                   {p: picked[p]["workspace"] for p in PHASES}, {p: picked[p]["seconds"] for p in PHASES},
                                   dict(budgets[name]), fallback, candidates)
    return choices


def _algo_forward(conv: nn.Conv2d, geom: ConvGeometry, forward: str, backward: str, x: torch.Tensor) -> torch.Tensor:
    if conv.padding_mode != "zeros":
        x = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode)
    return _run(x, conv.weight, conv.bias, geom, forward, backward)


def apply_algorithms(model: nn.Module, choices: dict, backward: dict | None = None) -> nn.Module:
    """Make each chosen conv layer run its algorithms; parameters, state dict and training are unchanged.

    ``choices``: ``select_algorithms``' result, or a dict layer path -> algorithm name (forward and backward
    the same unless ``backward`` names others). Returns the model (changed in place); ``remove_algorithms``
    undoes it.
    """
    convs = conv_layers(model)
    for name, choice in choices.items():
        if name not in convs:
            raise NasagentError(f"{name!r} is not an nn.Conv2d of {type(model).__name__}; "
                                f"its conv layers are {', '.join(convs) or 'none'}")
        if isinstance(choice, AlgoChoice):
            fwd, bwd = choice.forward, choice.backward
        else:
            fwd, bwd = choice, (backward or {}).get(name, choice)
        conv = convs[name]
        geom = ConvGeometry.of(conv)
        for a in (fwd, bwd):
            get_algorithm(a).check(geom)
        conv.forward = partial(_algo_forward, conv, geom, fwd, bwd)
        conv._conv_algorithms = (fwd, bwd)
    return model


def remove_algorithms(model: nn.Module) -> nn.Module:
    """Back to ``nn.Conv2d``'s own forward for every layer ``apply_algorithms`` changed."""
    for conv in conv_layers(model).values():
        if "_conv_algorithms" in conv.__dict__:
            del conv.forward, conv._conv_algorithms
    return model


def applied_algorithms(model: nn.Module) -> dict[str, tuple[str, str]]:
    """Layer path -> (forward, backward) algorithm of every conv layer running a chosen algorithm."""
    return {n: c._conv_algorithms for n, c in conv_layers(model).items() if "_conv_algorithms" in c.__dict__}


def free_bytes_per_step(model: nn.Module, example_input, limit_bytes: int, policy="liveness") -> dict[str, tuple[int, int]]:
    """Workspace each conv layer may use at its forward and backward step under a memory limit.

    SuperNeurons allocates the functional tensors first and gives convolutions what is left: here that is
    ``limit_bytes`` minus the weights, the input batch and what the memory runtime's ledger holds during the
    layer's step (a meta-device dry run of ``policy``: a stage name of the thesis' ladder or a ``MemoryPolicy``).
    Negative room is reported as 0 (the selector then falls back or, strictly, fails).
    """
    from nasagent.systems.memexec import MemoryPolicy
    from nasagent.systems.memplan import STAGES, DryRunner, ladder

    shape = tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else tuple(int(d) for d in example_input)
    if isinstance(limit_bytes, bool) or not isinstance(limit_bytes, (int, float)) or limit_bytes <= 0:
        raise NasagentError(f"limit_bytes must be a positive number of bytes, got {limit_bytes!r}")
    if isinstance(policy, str):
        if policy not in STAGES:
            raise NasagentError(f"unknown memory policy {policy!r}; use one of {', '.join(STAGES)} or a MemoryPolicy")
        policy = ladder(model, shape)[policy]
    elif not isinstance(policy, MemoryPolicy):
        raise NasagentError(f"policy must be a stage name or a MemoryPolicy, got {type(policy).__name__}")
    dry = DryRunner(model, shape)
    rt = dry(policy)
    held = {label: peak for label, peak, _ in rt.ledger.trace}
    fixed = sum(p.numel() * p.element_size() for p in model.parameters())
    fixed += (example_input.element_size() if isinstance(example_input, torch.Tensor) else 4) * int(torch.Size(shape).numel())
    out = {}
    for layer in dry.graph.layers:
        if layer.op == "call_module" and isinstance(layer.module, nn.Conv2d):
            fwd = held.get(f"F:{layer.name}")
            bwd = held.get(f"B:{layer.name}", fwd)
            out[layer.target] = tuple(max(int(limit_bytes - fixed - h), 0) for h in (fwd, bwd))
    return out
