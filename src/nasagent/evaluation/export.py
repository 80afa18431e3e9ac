"""Hand the user the model they searched for: ``torch.export`` of the best architecture of a run.

``export_run(run_dir)`` reads the run's best architecture and writes, into ``run_dir/export`` by default:

- ``model.pt2``: a ``torch.export`` ``ExportedProgram`` (load it with ``torch.export.load``; TorchScript is
  deprecated in this torch), for one batch of images of the run's input shape;
- ``arch.txt``: the architecture string (rebuild with ``nasagent.build(arch, ...)``);
- ``export.json``: space, sizes, input shape, classes, whether the weights are trained and, for a run with
  data, how inputs must be normalised (the training split's per-channel mean and std).

When the run trained its candidates (``train:<data>``) and kept their weights, the exported network carries
the best architecture's trained weights; otherwise it is freshly initialised (train it yourself).
"""

from __future__ import annotations

import json
from pathlib import Path

from nasagent.core import NasagentError
from nasagent.evaluation.networks import _torch, build, buildable


def export_model(model, input_shape, path: Path, batch: int = 1) -> Path:
    """Write ``model`` (eval mode) as an ExportedProgram for ``batch`` images of ``input_shape``."""
    torch = _torch()
    model = model.cpu().eval()
    example = torch.zeros(batch, *input_shape)
    try:
        program = torch.export.export(model, (example,))
    except Exception as e:  # noqa: BLE001 - torch.export raises many types; the user needs one message
        raise NasagentError(f"torch.export could not trace this network: {type(e).__name__}: {str(e).splitlines()[0]}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(path))
    return path


def export_run(run_dir, out=None, num_classes: int | None = None, input_shape=None) -> dict:
    """Export the best architecture of the run in ``run_dir``; returns the written paths and facts."""
    from nasagent.api import load_run, run_directory
    from nasagent.registry import make_benchmark

    config, result = load_run(run_dir)
    run_dir = run_directory(run_dir)
    if result.best is None:
        raise NasagentError(f"run {run_dir} has no successful trial to export")
    arch_text = result.best.arch
    bench_opts = dict(config.benchmark_options)
    sizes = {k: bench_opts[k] for k in ("C", "N", "layers") if k in bench_opts}
    trained_state, classes, data = None, None, None
    family, _, data_spec = config.benchmark.partition(":")
    if family == "train":
        from nasagent.evaluation.train import training_benchmark

        bench = training_benchmark(config.benchmark, **bench_opts)
        data = bench.data
        trained_state = bench.store.get(result.best.key)
        space = bench.space
        sizes = bench.sizes
    else:
        space = make_benchmark(config.benchmark, **bench_opts).space  # the space only: no strategy to build
        if not buildable(space):
            raise NasagentError(f"run {run_dir} searched the {space.name!r} space, which nasagent cannot build as a "
                                "network: there is nothing to export (networks: nb201, darts-style cells, nasnet, mobilenet)")
        if family in ("oneshot", "fewshot") and data_spec:  # a supernet's data fixes the network's input and classes
            from nasagent.evaluation.datasets import load_dataset

            data = load_dataset(data_spec, seed=int(bench_opts.get("data_seed", 0)))
    if data is not None:
        shape, n_cls, classes = data.input_shape, data.num_classes, list(data.classes)
    else:
        shape, n_cls = (3, 32, 32), 10
    if input_shape is not None:
        if trained_state is not None and tuple(input_shape) != tuple(shape):
            raise NasagentError(f"this run trained on {tuple(shape)} images; its trained network cannot be exported for {tuple(input_shape)}")
        shape = tuple(int(d) for d in input_shape)
    if num_classes is not None:
        if trained_state is not None and int(num_classes) != n_cls:
            raise NasagentError(f"this run trained a {n_cls}-class network; omit --num-classes or use {n_cls}")
        n_cls = int(num_classes)
    model = build(arch_text, n_cls, shape, space=space, **sizes)
    if trained_state is not None:
        model.load_state_dict(trained_state)
    out = Path(out) if out else run_dir / "export"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NasagentError(f"cannot write the export to {out}: {e.strerror or e}; choose another --out") from None
    if (out / "model.pt2").is_dir():
        raise NasagentError(f"{out / 'model.pt2'} is a folder; remove it or choose another --out")
    model_path = export_model(model, shape, out / "model.pt2")
    (out / "arch.txt").write_text(arch_text + "\n")
    facts = {
        "arch": arch_text,
        "space": getattr(space, "name", space) or model.space_name,
        "sizes": sizes,
        "input_shape": list(shape),
        "num_classes": n_cls,
        "classes": classes,
        "trained_weights": trained_state is not None,
        # a trained network expects images prepared as its training data was: pixels scaled to [0, 1] by the
        # loader, then standardised per channel with the training split's statistics
        "input_normalisation": None if data is None else {"mean": list(data.mean), "std": list(data.std),
                                                          "pixels": data.pixels},
        "metrics": result.best.metrics,
        "model": str(model_path),
    }
    (out / "export.json").write_text(json.dumps(facts, indent=2, default=float))
    return {"model": model_path, "arch": out / "arch.txt", "info": out / "export.json", "trained": trained_state is not None}
