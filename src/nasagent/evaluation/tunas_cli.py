"""``nasagent tunas ...``: search, latency-matched random sampling, latency profiling and analysis.

Kept out of ``cli.py`` so the shared file only mounts this group (``app.add_typer``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape

from nasagent.core import Budget, NasagentError

tunas_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="TuNAS: REINFORCE with weight sharing over MobileNet-like spaces, to a cost target.")
console = Console()

SpaceOpt = Annotated[str, typer.Option("--space", help="proxylessnas | proxylessnas-enlarged | mobilenet-v3-like (+ -tiny)")]
DataOpt = Annotated[str, typer.Option("--data", help="digits | digits16 | FILE.npz | FOLDER")]
CostOpt = Annotated[str, typer.Option("--cost", help="latency (measured table, ms) | flops (MFLOPs) | params (k)")]


TargetOpt = Annotated[str, typer.Option("--target", help="T0 in the cost model's unit, or relative to random architectures: "
                                        "median, or pNN (their NN-th percentile, e.g. p25)")]


def resolve_target(text: str, space, model, seed: int = 0, samples: int = 200) -> float:
    """A number, or a percentile of the costs of ``samples`` seeded random architectures: a latency target in ms
    only means something on the machine that measured the table, a percentile means the same everywhere."""
    text = str(text).strip().lower()
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if not np.isfinite(value) or value <= 0:
            raise NasagentError(f"--target must be a positive number, median or pNN; got {text!r}")
        return value
    q = 50.0 if text == "median" else None
    if q is None and text.startswith("p"):
        try:
            q = float(text[1:])
        except ValueError:
            q = None
    if q is None or not 0 < q < 100:
        raise NasagentError(f"--target must be a positive number, median or pNN with 0 < NN < 100 (e.g. p25); got {text!r}")
    target = float(np.percentile(_random_costs(space, model, seed, samples), q))
    console.print(f"target {text}: {target:.4g} {model.unit} ({q:g}th percentile of {samples} random architectures)")
    return target


def _random_costs(space, model, seed: int, n: int) -> list[float]:
    """The costs of ``n`` seeded random architectures (profile-latency measures their layers; a relative
    --target is a percentile of them)."""
    rng = np.random.default_rng(seed)
    return [model(space.sample(rng)) for _ in range(int(n))]


def _guard(fn):
    try:
        return fn()
    except NasagentError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _setup(space: str, data: str, data_seed: int, cost: str, table: Path | None, threads: int = 1):
    import torch

    from nasagent.evaluation.datasets import load_dataset
    from nasagent.evaluation.tunas_cost import make_cost_model
    from nasagent.registry import make_space

    threads = max(1, int(threads))
    torch.set_num_threads(threads)
    sp = make_space(space)
    dataset = load_dataset(data, seed=data_seed)
    options = {"threads": threads} if cost == "latency" else {}  # the table is measured at this thread count
    if cost == "latency" and table:
        options["path"] = table
    if table and cost != "latency":
        raise NasagentError("--table is the latency table; it only applies with --cost latency")
    return sp, dataset, make_cost_model(cost, sp, dataset.input_shape, dataset.num_classes, **options)


@tunas_app.command("search")
def search_cmd(
    target: TargetOpt,
    space: SpaceOpt = "mobilenet-v3-like-tiny",
    data: DataOpt = "digits16",
    data_seed: int = 0,
    cost: CostOpt = "latency",
    table: Annotated[Path | None, typer.Option(help="latency table JSON (created if missing)")] = None,
    reward: Annotated[str, typer.Option(help="abs | mnas-soft | mnas-hard")] = "abs",
    beta: Annotated[float | None, typer.Option(help="cost exponent (default: abs -0.10, MnasNet -0.07)")] = None,
    epochs: int = 10,
    seed: int = 0,
    rl_lr: Annotated[float, typer.Option(help="controller learning rate at the end of the RL delay (rises x10)")] = 0.0048,
    out: Annotated[Path, typer.Option(help="checkpoint and result folder (resumable)")] = Path("tunas-run"),
    retrain_epochs: Annotated[int, typer.Option(help="retrain the final architecture from scratch for this many epochs (0: skip)")] = 0,
):
    """Run a (resumable) TuNAS search and print the final (argmax) architecture and its cost."""

    def body():
        from nasagent.strategies.tunas import TunasSearch

        if epochs < 1 or retrain_epochs < 0:
            raise NasagentError(f"--epochs must be >= 1 and --retrain-epochs >= 0; got {epochs} and {retrain_epochs}")
        sp, dataset, model = _setup(space, data, data_seed, cost, table)
        t0 = resolve_target(target, sp, model, seed)
        search = TunasSearch(sp, target=t0, cost=model, reward=reward, beta=beta, seed=seed, rl_lr=rl_lr)
        out.mkdir(parents=True, exist_ok=True)
        search.fit(dataset, Budget(evaluations=epochs), out)
        rep = search.report()
        console.print(f"final architecture {rep['arch']}: {rep['cost']:.4g} {rep['unit']} (target {t0:.4g}, "
                      f"{100 * rep['relative_error']:+.1f} %)")
        console.print(sp.summary(sp.parse(rep["arch"])))
        if retrain_epochs > 0:
            from nasagent.evaluation.oneshot import run_oneshot
            from nasagent.evaluation.train import TrainingBenchmark

            bench = TrainingBenchmark(dataset, space=sp, epochs=retrain_epochs, seed=seed, measure=True)
            run = run_oneshot(search, dataset, Budget(evaluations=epochs), out, bench, n=1)
            rep["retrained"] = run.best.metrics if run.best else None
            console.print(f"retrained: {json.dumps(rep['retrained'])}")
        (out / "tunas.json").write_text(json.dumps(rep, indent=1))
        if hasattr(model, "save") and model.path is not None:
            model.save()
        console.print(f"written: {out}/tunas.json")

    _guard(body)


@tunas_app.command("sample-random")
def sample_random_cmd(
    target: TargetOpt,
    n: Annotated[int, typer.Option("--n", help="architectures to accept")] = 10,
    tolerance: Annotated[float, typer.Option(help="relative window around the target")] = 0.05,
    space: SpaceOpt = "mobilenet-v3-like-tiny",
    data: DataOpt = "digits16",
    data_seed: int = 0,
    cost: CostOpt = "latency",
    table: Annotated[Path | None, typer.Option()] = None,
    seed: int = 0,
):
    """Rejection-sampled random architectures whose cost is within target x (1 +- tolerance)."""

    def body():
        from nasagent.strategies.tunas import rejection_sample

        sp, _, model = _setup(space, data, data_seed, cost, table)
        archs, stats = rejection_sample(sp, model, resolve_target(target, sp, model, seed), n, tolerance=tolerance, seed=seed)
        for a in archs:
            console.print(f"{sp.format(a)}  {model(a):.4g} {model.unit}")
        console.print(f"accepted {stats['accepted']} of {stats['tries']} ({100 * stats['accept_rate']:.2f} %)")
        if hasattr(model, "save") and model.path is not None:
            model.save()

    _guard(body)


@tunas_app.command("profile-latency")
def profile_cmd(
    table: Annotated[Path, typer.Option(help="where to write the latency table JSON")],
    space: SpaceOpt = "mobilenet-v3-like-tiny",
    data: DataOpt = "digits16",
    samples: Annotated[int, typer.Option(help="random architectures whose layers to measure")] = 200,
    threads: int = 1,
    seed: int = 0,
):
    """Measure the per-layer latency table of random architectures on this CPU and print the space's range."""

    def body():
        sp, _, model = _setup(space, data, 0, "latency", table, threads)
        costs = _random_costs(sp, model, seed, samples)
        lo, hi = model.achievable()
        model.save()
        console.print(f"{len(model.entries)} layer entries; achievable {lo:.4g}..{hi:.4g} ms; random median {np.median(costs):.4g} ms")
        console.print(f"written: {table}")

    _guard(body)


@tunas_app.command("analyze")
def analyze_cmd(
    arch: Annotated[str, typer.Argument(help="an architecture: colon-separated choice indices")],
    space: SpaceOpt = "mobilenet-v3-like-tiny",
    data: DataOpt = "digits16",
    cost: CostOpt = "latency",
    table: Annotated[Path | None, typer.Option()] = None,
):
    """Print an architecture layer by layer with its estimated cost."""

    def body():
        sp, _, model = _setup(space, data, 0, cost, table)
        a = sp.parse(arch)
        console.print(sp.summary(a))
        console.print(f"estimated {model.name}: {model(a):.4g} {model.unit}")

    _guard(body)
