"""The training path: datasets, networks from architectures, the train-from-scratch evaluator, export."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import NasagentError  # noqa: E402
from nasagent.evaluation.datasets import _split_and_pack, load_dataset, subsample  # noqa: E402

CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
POOL = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|skip_connect~2|"
TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.15)


# -- datasets ------------------------------------------------------------------------------------------------
def test_digits_splits_are_seeded_stratified_and_disjoint():
    a, b, c = load_dataset("digits", seed=0), load_dataset("digits", seed=0), load_dataset("digits", seed=1)
    assert a.input_shape == (1, 8, 8) and a.num_classes == 10
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.y_val, c.y_val)
    counts = np.bincount(a.y_val, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~20 % of each class
    rows = {r.tobytes() for r in a.x_train.reshape(len(a.x_train), -1)}
    assert not any(r.tobytes() in rows for r in a.x_test.reshape(len(a.x_test), -1))
    assert abs(float(a.x_train.mean())) < 1e-4 and abs(float(a.x_train.std()) - 1) < 1e-3


def test_digits16_is_16x16_and_deterministic():
    a, b = load_dataset("digits16"), load_dataset("digits16")
    assert a.input_shape == (1, 16, 16)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.fingerprint() != load_dataset("digits16", noise=0.3).fingerprint()


def test_copies_of_one_source_stay_in_one_split():
    n, copies = 60, 3
    x = np.repeat(np.arange(n, dtype=np.float32), copies)[:, None, None, None] * np.ones((1, 1, 2, 2), np.float32)
    y = np.repeat(np.arange(n) % 3, copies)
    d = _split_and_pack("toy", x, y, np.repeat(np.arange(n), copies), 0, 0.2, 0.2, ("a", "b", "c"))
    ids = [set(np.round(s[:, 0, 0, 0], 4)) for s in (d.x_train, d.x_val, d.x_test)]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert len(d.y_train) % copies == 0


def test_npz_layouts_labels_and_given_splits(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((40, 6, 6, 3)).astype(np.float32)  # NHWC
    y = np.array(["cat", "dog"] * 20)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = load_dataset(str(tmp_path / "d.npz"))
    assert d.input_shape == (3, 6, 6) and d.classes == ("cat", "dog") and d.num_classes == 2
    np.savez(tmp_path / "e.npz", x=x[:30], y=y[:30], x_val=x[30:], y_val=y[30:])
    e = load_dataset(str(tmp_path / "e.npz"))
    assert len(e.y_val) == 10 and len(e.y_train) + len(e.y_test) == 30


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.zeros((10, 4, 4)), "y": np.zeros(10)}, "single class"),
        ({"x": np.zeros((10, 4, 4)), "y": np.arange(9) % 2}, "same length"),
        ({"x": np.zeros((10, 4, 4))}, "lacks array"),
        ({"x": np.full((10, 4, 4), np.nan), "y": np.arange(10) % 2}, "NaN"),
        ({"x": np.zeros((10, 4)), "y": np.arange(10) % 2}, "shape"),
    ],
)
def test_npz_bad_input_gives_one_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NasagentError, match=message):
        load_dataset(str(tmp_path / "bad.npz"))


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i in range(5):
            Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / cls / f"{i}.png")
    d = load_dataset(str(tmp_path))
    assert d.input_shape == (1, 8, 8) and d.classes == ("a", "b")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "b" / "odd.png")
    with pytest.raises(NasagentError, match="odd.png"):
        load_dataset(str(tmp_path))
    assert load_dataset(str(tmp_path), resize=(8, 8)).input_shape == (1, 8, 8)


def test_unknown_dataset():
    with pytest.raises(NasagentError, match="digits16"):
        load_dataset("cifar-100")


# -- networks ----------------------------------------------------------------------------------------------------
def test_build_nb201_and_darts_networks():
    import nasagent
    from nasagent.evaluation.networks.metrics import count_flops, count_params, measure_latency
    from nasagent.spaces.darts import DartsSpace

    conv = nasagent.build(CONV, num_classes=7, input_shape=(1, 8, 8), **TINY)
    pool = nasagent.build(POOL, num_classes=7, input_shape=(1, 8, 8), **TINY)
    assert conv(torch.zeros(2, 1, 8, 8)).shape == (2, 7)
    assert count_params(conv) > count_params(pool)
    assert count_flops(conv, (1, 8, 8)) > count_flops(pool, (1, 8, 8)) > 0
    assert measure_latency(conv, (1, 8, 8), repeats=3, warmup=1) > 0
    g = DartsSpace().sample(np.random.default_rng(0))
    net = nasagent.build(DartsSpace().format(g), num_classes=3, input_shape=(3, 8, 8), C=4, layers=3)
    assert net(torch.zeros(2, 3, 8, 8)).shape == (2, 3)
    # the published default size of the NB201 network (C=16, N=5, CIFAR-10 input) has ~1.29 M parameters for this cell
    assert 1.2e6 < count_params(nasagent.build(CONV, 10, (3, 32, 32))) < 1.4e6
    with pytest.raises(NasagentError, match="input_shape"):
        nasagent.build(CONV, 10, (8, 8))
    with pytest.raises(NasagentError, match="space"):
        nasagent.build("not an architecture", 10, (1, 8, 8))


def test_build_nasnet_networks_and_inherit_between_neighbours():
    import nasagent
    from nasagent.evaluation.networks.metrics import count_flops, count_params
    from nasagent.evaluation.train import edit_distance, inherit_weights
    from nasagent.spaces.nasnet import NASNetSpace

    sp = NASNetSpace()
    rng = np.random.default_rng(3)
    arch = sp.sample(rng)
    net = nasagent.build(sp.format(arch), num_classes=5, input_shape=(1, 8, 8), C=4, N=1)  # the string is recognised
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 5)
    assert count_params(net) > 0 and count_flops(net, (1, 8, 8)) > 0
    # a reduction cell halves the resolution: identity on a cell input needs a strided layer there
    ident = sp.parse("normal: identity@0/identity@1 | reduce: identity@0/identity@1")
    assert any(".0_identity." in k for k in nasagent.build(ident, 10, (1, 8, 8), C=4, N=1).state_dict())
    child = sp.neighbors(arch)[0]
    d = edit_distance(sp, arch, child)
    assert d >= 1
    torch.manual_seed(1)
    kid = nasagent.build(child, 5, (1, 8, 8), C=4, N=1)
    frac = inherit_weights(kid, net.state_dict())
    assert 0.0 < frac <= 1.0
    shared = [k for k in kid.state_dict() if k in net.state_dict() and kid.state_dict()[k].shape == net.state_dict()[k].shape]
    assert shared and all(torch.equal(kid.state_dict()[k], net.state_dict()[k]) for k in shared)
    with pytest.raises(NasagentError, match="layers"):
        nasagent.build(arch, 10, (1, 8, 8), C=4, layers=3)


def test_weight_inheritance_copies_exactly_the_shared_layers():
    from nasagent.evaluation.networks import build
    from nasagent.evaluation.train import edit_distance, inherit_weights
    from nasagent.spaces.nb201 import NB201Space

    sp = NB201Space()
    parent = build(CONV, 10, (1, 8, 8), **TINY)
    child_arch = sp.parse(CONV)[:5] + ("nor_conv_1x1",)
    assert edit_distance(sp, sp.parse(CONV), child_arch) == 1
    torch.manual_seed(1)
    child = build(child_arch, 10, (1, 8, 8), **TINY)
    frac = inherit_weights(child, parent.state_dict())
    assert 0.5 < frac < 1.0
    ps, cs = parent.state_dict(), child.state_dict()
    shared = "cells.0.edges.0.nor_conv_3x3.op.1.weight"
    assert torch.equal(ps[shared], cs[shared])
    assert "cells.0.edges.5.nor_conv_1x1.op.1.weight" in cs and "cells.0.edges.5.nor_conv_1x1.op.1.weight" not in ps


# -- the evaluator -------------------------------------------------------------------------------------------------
def test_training_benchmark_metrics_and_determinism(small):
    from nasagent.evaluation.train import TrainingBenchmark

    b = TrainingBenchmark(small, epochs=2, **TINY)
    r1, r2 = b(CONV), TrainingBenchmark(small, epochs=2, **TINY)(CONV)
    assert r1.status == "ok" and r1.error is None
    m = r1.metrics
    assert 10 < m["val_accuracy"] <= 100 and 0 <= m["test_accuracy"] <= 100
    assert m["params"] > 0 and m["flops"] > 0 and m["latency_ms"] > 0 and r1.cost > 0
    assert m["val_accuracy"] == r2.metrics["val_accuracy"] and m["train_loss"] == r2.metrics["train_loss"]
    assert b.objective().metric == "val_accuracy" and b.metrics["val_accuracy"].report == "test_accuracy"


def test_divergence_is_a_failed_trial(small):
    from nasagent.evaluation.train import TrainingBenchmark

    r = TrainingBenchmark(small, epochs=1, lr=1e12, grad_clip=None, **TINY)(CONV)
    assert r.status == "failed" and "diverged" in r.error and "lr" in r.error


def test_hint_parent_weights_are_inherited_with_fewer_epochs(small):
    from nasagent.evaluation.train import TrainingBenchmark

    b = TrainingBenchmark(small, epochs=7, **TINY)
    b(CONV)
    child = CONV.replace("skip_connect~0", "nor_conv_1x1~0")
    r = b(child, hint={"parent": CONV})
    assert r.metrics["inherited_fraction"] > 0.5 and r.metrics["epochs_trained"] == 2  # 7 * 20/70
    assert r.metrics["parent_distance"] == 1
    fresh = TrainingBenchmark(small, epochs=7, inherit="none", **TINY)(child, hint={"parent": CONV})
    assert fresh.metrics["inherited_fraction"] == 0 and fresh.metrics["epochs_trained"] == 7
    nearest = TrainingBenchmark(small, epochs=7, inherit="nearest", **TINY)
    nearest(CONV)
    assert nearest(child).metrics["parent_distance"] == 1


def test_interrupted_training_resumes_to_the_same_result(small, tmp_path):
    from nasagent.evaluation.networks import build
    from nasagent.evaluation.train import TrainSettings, train_model

    def run(settings, ck):
        torch.manual_seed(0)
        model = build(CONV, 10, small.input_shape, **TINY)
        return train_model(model, small, settings, 0, torch.device("cpu"), checkpoint=ck)[0]

    full = run(TrainSettings(epochs=3), None)
    cut = run(TrainSettings(epochs=3, max_seconds=1e-9), tmp_path / "ck.pt")
    assert cut.epochs_trained == 1 and cut.stopped_early and (tmp_path / "ck.pt").exists()
    resumed = run(TrainSettings(epochs=3), tmp_path / "ck.pt")
    assert resumed.curve == full.curve and resumed.train_loss == full.train_loss
    # drop-path draws from torch's generator: a checkpoint carries its state, or the resumed epochs drop other paths
    darts = ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
             "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
             "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
             "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")

    def run_darts(settings, ck, torch_seed=0):
        torch.manual_seed(torch_seed)
        model = build(darts, 10, small.input_shape, space="darts", C=4, layers=3)
        return train_model(model, small, settings, 0, torch.device("cpu"), checkpoint=ck)[0]

    full = run_darts(TrainSettings(epochs=3, drop_path=0.3), None)
    run_darts(TrainSettings(epochs=3, drop_path=0.3, max_seconds=1e-9), tmp_path / "dp.pt")
    # a fresh process starts from another generator state (the checkpoint replaces the weights it builds)
    resumed = run_darts(TrainSettings(epochs=3, drop_path=0.3), tmp_path / "dp.pt", torch_seed=123)
    assert resumed.curve == full.curve and resumed.train_loss == full.train_loss


def test_learning_curve_early_stopping(small):
    from nasagent.evaluation.train import TrainSettings, predict_final, train_model
    from nasagent.evaluation.networks import build

    assert predict_final([10.0, 20.0, 30.0], 9) > 30.0
    assert predict_final([50.0, 40.0], 9) == 40.0
    torch.manual_seed(0)
    model = build(POOL, 10, small.input_shape, **TINY)
    out, _ = train_model(model, small, TrainSettings(epochs=8, curve_stop=True, min_epochs=2), 0, torch.device("cpu"), reference=101.0)
    assert out.stopped_early and out.epochs_trained == 2 and "learning curve" in out.stop_reason


def test_curve_stop_reference_is_shared_through_the_checkpoint_directory(small, tmp_path):
    """Worker processes (here: two evaluators) of one search, and a resumed search, compare learning curves
    against every finished run of the configuration, not only their own; without a directory, their own."""
    from nasagent.evaluation.train import TrainingBenchmark

    opts = dict(epochs=2, curve_stop=True, checkpoint_dir=tmp_path, **TINY)
    first, second = TrainingBenchmark(small, **opts), TrainingBenchmark(small, **opts)
    assert first._reference() is None
    acc = first(CONV).metrics["val_accuracy"]
    assert second._reference() == acc and TrainingBenchmark(small, **opts)._reference() == acc
    other = TrainingBenchmark(small, **{**opts, "epochs": 3})  # another configuration keeps its own ledger
    assert other._reference() is None
    alone = TrainingBenchmark(small, **{**opts, "checkpoint_dir": None})
    assert alone._reference() is None
    acc2 = alone(POOL).metrics["val_accuracy"]
    assert alone._reference() == acc2 and second._reference() == acc


def test_finetune_top_k(small):
    from nasagent.evaluation.train import TrainingBenchmark, finetune_top

    b = TrainingBenchmark(small, epochs=1, **TINY)
    rows = [(a, b(a).metrics["val_accuracy"]) for a in (CONV, POOL)]
    out = finetune_top(b, rows, k=1, epochs=2)
    assert len(out) == 1 and out[0][1].metrics["epochs_trained"] == 2
    with pytest.raises(NasagentError, match="evaluate it first"):
        b.finetune(CONV.replace("skip_connect~0", "none~0"), 1)


# -- registry, API, CLI, export -----------------------------------------------------------------------------------------
def test_search_train_benchmark_on_a_chosen_space(tmp_path):
    import nasagent

    opts = {"epochs": 1, "C": 4, "N": 1}
    res = nasagent.search("train:digits", "random", budget=2, space="nb201", benchmark_options=opts, out=tmp_path / "run")
    assert res.samples == 2 and res.best is not None and "test_accuracy" in res.report
    assert any((tmp_path / "run" / "checkpoints").rglob("*.pt"))  # trained weights kept in the run directory
    res = nasagent.search("train:digits", "random", budget=1, space="darts", benchmark_options={"epochs": 1, "C": 2, "layers": 2})
    assert res.best.arch.startswith("Genotype(")
    with pytest.raises(NasagentError, match="no option"):
        nasagent.search("train:digits", "random", budget=1, benchmark_options={"epochz": 1})


def test_one_class_npz_fails_before_the_search(tmp_path):
    import nasagent

    np.savez(tmp_path / "one.npz", x=np.zeros((12, 4, 4)), y=np.zeros(12))
    with pytest.raises(NasagentError, match="single class"):
        nasagent.search(f"train:{tmp_path / 'one.npz'}", "random", budget=1)


def test_cli_search_and_export(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    run = tmp_path / "run"
    r = CliRunner().invoke(app, ["search", "--benchmark", "train:digits", "--space", "nb201", "--strategy", "random", "--budget", "2",
                                 "--bopt", "epochs=1", "--bopt", "C=4", "--bopt", "N=1", "--out", str(run), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["export", str(run)])
    assert r.exit_code == 0, r.output
    assert "trained weights" in r.output
    info = json.loads((run / "export" / "export.json").read_text())
    best = json.loads((run / "best.json").read_text())
    assert (run / "export" / "arch.txt").read_text().strip() == best["best"]["arch"] == info["arch"]
    program = torch.export.load(str(run / "export" / "model.pt2"))
    x = torch.from_numpy(load_dataset("digits").x_val[:1])
    out = program.module()(x)
    assert out.shape == (1, 10)
    r = CliRunner().invoke(app, ["export", str(run), "--num-classes", "3"])
    assert r.exit_code != 0 and "10-class" in r.output
    moved = tmp_path / "moved"
    run.rename(moved)  # a moved run still finds its trained weights (its config names the old checkpoint folder)
    r = CliRunner().invoke(app, ["export", str(moved / "journal.db"), "--out", str(tmp_path / "ex")])
    assert r.exit_code == 0 and "with trained weights" in r.output, r.output
    assert not run.exists()  # and nothing was recreated where the run used to be
    assert torch.equal(torch.export.load(str(tmp_path / "ex" / "model.pt2")).module()(x), out)


def test_darts_edit_distance_counts_slots_not_sets():
    from nasagent.evaluation.train import edit_distance
    from nasagent.spaces.darts import DartsSpace

    sp = DartsSpace()
    parent = sp.sample(np.random.default_rng(0))
    for child in sp.neighbors(parent)[:20]:  # one changed (op, input) slot each
        assert edit_distance(sp, parent, child) >= 1 and edit_distance(sp, child, parent) >= 1
    assert edit_distance(sp, parent, parent) == 0
