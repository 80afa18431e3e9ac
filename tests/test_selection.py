"""Top-K selection after a weight-sharing search (evaluation/selection.py, `nasagent select`)."""

import json

import pytest

import nasagent
from nasagent.core import NasagentError
from nasagent.evaluation.selection import default_training_benchmark, select_top_k, top_scored

TINY = {"epochs": 1, "child_epochs": 1, "C": 2, "N": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def fewshot_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("fs") / "run"
    nasagent.search("fewshot:digits", "random", budget=6, space="nb201", seed=0, plot=False,
                    benchmark_options=TINY, out=run_dir)
    return run_dir


def test_top_scored_is_distinct_and_best_first(fewshot_run):
    from nasagent.api import load_config

    _, journal = load_config(fewshot_run)
    scores = {t.arch: t.score for t in journal.trials() if t.score is not None}
    journal.close()
    top = top_scored(fewshot_run, 4)
    assert [a for a, _ in top] == sorted(scores, key=lambda a: -scores[a])[:4]
    assert len({a for a, _ in top}) == 4 and [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    assert len(top_scored(fewshot_run, 100)) == len(scores)  # asks for more than exist: all of them
    with pytest.raises(NasagentError, match="k >= 1"):
        top_scored(fewshot_run, 0)


def test_select_trains_the_top_k_with_the_runs_network_and_keeps_the_best(fewshot_run):
    out = select_top_k(fewshot_run, 3, benchmark_options={"epochs": 1})
    assert out["benchmark"] == "train:digits"
    assert out["options"]["C"] == 2 and out["options"]["N"] == 1 and out["options"]["space"] == "nb201"
    assert out["seed"] == 100 and out["options"]["seed"] == 100
    cands = out["candidates"]
    assert {c["arch"] for c in cands} == {a for a, _ in top_scored(fewshot_run, 3)}
    vals = [c["val_accuracy"] for c in cands]
    assert vals == sorted(vals, reverse=True) and out["best"] == cands[0]["arch"]
    assert all(c["metrics"]["epochs_trained"] == 1 for c in cands)
    saved = json.loads((fewshot_run / "selection.json").read_text())
    assert saved["best"] == out["best"] and len(saved["candidates"]) == 3


def test_selection_needs_a_data_set_it_can_name():
    assert default_training_benchmark("fewshot:digits16") == "train:digits16"
    assert default_training_benchmark("oneshot:x.npz") == "train:x.npz"
    with pytest.raises(NasagentError, match="train:<data>"):
        default_training_benchmark("nb201")


def test_cli_select_prints_the_choice(fewshot_run):
    from typer.testing import CliRunner

    from nasagent.cli import app

    res = CliRunner().invoke(app, ["select", str(fewshot_run), "-k", "2", "--bopt", "epochs=1", "-q"])
    assert res.exit_code == 0, res.output
    best = json.loads((fewshot_run / "selection.json").read_text())["best"]
    assert "selected:" in res.output and best in res.output.replace("\n", "")
    bad = CliRunner().invoke(app, ["select", str(fewshot_run / "nope")])
    assert bad.exit_code == 2 and "error" in bad.output


def test_select_with_a_table_benchmark_names_a_missing_metric(fewshot_run):
    with pytest.raises(NasagentError, match="has no metric 'val_accuracy'; its metrics: accuracy"):  # before training
        select_top_k(fewshot_run, 2, benchmark="nb201")
    out = select_top_k(fewshot_run, 3, benchmark="nb201", metric="accuracy")
    from nasagent.benchmarks.nb201 import nb201_benchmark
    from nasagent.spaces.nb201 import NB201Space

    sp, table = NB201Space(), nb201_benchmark()
    truth = {a: table.value(sp.key(sp.parse(a)), "accuracy") for a, _ in top_scored(fewshot_run, 3)}
    assert out["best"] == max(truth, key=truth.get) and "seed" not in out["options"]


def test_a_candidate_the_benchmark_cannot_read_fails_alone(fewshot_run):
    with pytest.raises(NasagentError, match="every top-2 evaluation failed.*malformed"):
        select_top_k(fewshot_run, 2, benchmark="nbgraph/cora", metric="valid_perf")  # NB201 cells are not graph cells


def test_select_and_export_keep_a_supernet_runs_data_split(tmp_path):
    from nasagent.evaluation.export import export_run

    run_dir = tmp_path / "os"
    nasagent.search("oneshot:digits", "random", budget=3, space="nb201", seed=0, plot=False, out=run_dir,
                    benchmark_options={"epochs": 1, "C": 2, "N": 1, "data_seed": 5})
    out = select_top_k(run_dir / "journal.db", 1, benchmark_options={"epochs": 1})  # the journal names its run
    assert out["options"]["data_seed"] == 5  # another split would select on the supernet's training images
    facts = json.loads(export_run(run_dir)["info"].read_text())
    assert facts["input_shape"] == [1, 8, 8] and facts["num_classes"] == 10  # the run's digits, not 3x32x32
    norm = facts["input_normalisation"]
    assert len(norm["mean"]) == 1 and norm["std"][0] > 0 and "16" in norm["pixels"]
    (run_dir / "selection.json").unlink()
    (run_dir / "selection.json").mkdir()
    with pytest.raises(NasagentError, match="cannot write .*selection.json"):  # refused before training
        select_top_k(run_dir, 1, benchmark_options={"epochs": 1})
