import json

from typer.testing import CliRunner

from nasagent.cli import app

runner = CliRunner()


def test_search_prints_the_best_and_writes_files(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["search", "--budget", "60", "--seed", "1", "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "best architecture" in r.output and "|+|" in r.output
    doc = json.loads((out / "best.json").read_text())
    assert doc["samples"] == 60 and doc["best"]["arch"] in r.output
    assert (out / "curve.png").stat().st_size > 10_000
    assert (out / "journal.db").exists()
    rep = runner.invoke(app, ["report", str(out)])
    assert rep.exit_code == 0 and doc["best"]["arch"] in rep.output
    assert json.loads((out / "best.json").read_text())["stop_reason"] == doc["stop_reason"] == "budget exhausted"
    (tmp_path / "afile").write_text("")
    for args, fragment in [(["export", str(out), "--out", str(tmp_path / "afile")], "cannot write the export"),
                           (["report", str(out / "journal.db")], "budget exhausted")]:
        r = runner.invoke(app, args)
        assert fragment in r.output and "Traceback" not in r.output, (args, r.output)
    box = tmp_path / "box"
    assert runner.invoke(app, ["search", "-b", "ackley-2", "-s", "random", "--budget", "5", "--out", str(box), "-q"]).exit_code == 0
    r = runner.invoke(app, ["export", str(box)])
    assert r.exit_code == 2 and "cannot build as a network" in r.output, r.output


def test_bad_input_gives_one_line_and_nonzero_exit(tmp_path):
    cases = [
        (["search", "-b", "nope"], "unknown benchmark 'nope'"),
        (["search", "-s", "nope"], "unknown strategy 'nope'; strategies: random"),
        (["search", "--space", "nope"], "space"),
        (["search", "--budget", "0"], "must be > 0"),
        (["search", "--metric", "latency"], "has no metric 'latency'"),
        (["search", "--opt", "bad"], "key=value"),
        (["search", "-b", "nb201-csv"], "needs a table file"),
        (["search", "--resume", str(tmp_path / "none")], "no journal"),
        (["report", str(tmp_path)], "no journal"),
        (["list", "things"], "cannot list"),
    ]
    for args, fragment in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert fragment in r.output, (args, r.output)
        assert "Traceback" not in r.output


def test_wrong_option_values_and_resume_conflicts_are_refused(tmp_path):
    """Text where a number or flag belongs, impossible network sizes, a seed passed as an option, compare's
    malformed requests and options that a resumed run cannot change: one line each, nothing run."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "text.npz").write_text("not an archive")
    cases = [
        (["search", "-s", "evolution", "--opt", "population_size=abc"], "option 'population_size' must be an integer, got 'abc'"),
        (["search", "-s", "alphax", "--opt", "c=abc"], "option 'c' must be a number"),
        (["search", "-s", "random", "--opt", "seed=1"], "the seed is not a strategy option"),
        (["search", "-b", "train:digits", "--bopt", "curve_stop=maybe"], "'curve_stop' must be true or false"),
        (["search", "-b", "train:digits", "--bopt", "C=-4"], "network size C must be an integer >= 1, got -4"),
        (["search", "-b", "train:digits", "--space", "darts", "--bopt", "layers=0"], "network size layers must be"),
        (["search", "-b", "train:" + str(tmp_path / "text.npz")], "is not a .npz archive"),
        (["search", "-b", "nb201-csv", "--table", str(tmp_path / "folder")], "is a folder"),
        (["compare", "--seeds", "0", "--budget", "5", "--at", "3"], "at least one seed"),
        (["compare", "--strategies", "random,random", "--seeds", "1", "--budget", "5", "--at", "3"], "appears twice"),
        (["compare", "--strategies", "random", "--seeds", "1", "--budget", "5", "--at", "3", "--opt", "evo.population_size=3"],
         "not among the strategies"),
        (["compare", "--strategies", "random,nope", "--seeds", "1", "--budget", "5", "--at", "3"], "unknown strategy 'nope'"),
        (["compare", "--at", "abc"], "--at takes comma-separated sample counts"),
    ]
    for args, fragment in cases:
        r = runner.invoke(app, args)
        assert r.exit_code != 0, args
        assert fragment in r.output, (args, r.output)
        assert "Traceback" not in r.output
    out = tmp_path / "run"
    assert runner.invoke(app, ["search", "-s", "random", "--budget", "5", "--out", str(out), "-q"]).exit_code == 0
    for args, fragment in [(["-b", "nbgraph/cora"], "--benchmark cannot change on --resume"),
                           (["--seed", "3"], "--seed cannot change"), (["--opt", "x=1"], "--opt cannot be given with --resume"),
                           (["--count-repeats"], "--count-repeats cannot be given"), (["--overwrite"], "--overwrite cannot be given")]:
        r = runner.invoke(app, ["search", "--resume", str(out), "-q", *args])
        assert r.exit_code != 0 and fragment in r.output, (args, r.output)
    r = runner.invoke(app, ["search", "--resume", str(out), "-b", "nb201", "--budget", "8", "-q"])
    assert r.exit_code == 0, r.output  # repeating the run's own values is fine
    assert json.loads((out / "config.json").read_text())["budget"] == {"evaluations": 8}  # the readable copy follows


def test_user_files_are_stored_by_absolute_path(tmp_path, monkeypatch, nb201):
    """A run started with relative paths must stay readable from any other directory (report, export, resume)."""
    import numpy as np

    from nasagent.api import make_config

    monkeypatch.chdir(tmp_path)
    np.savez("data.npz", x=np.zeros((40, 1, 8, 8), np.float32), y=np.arange(40) % 2)
    with open("table.csv", "w") as f:
        f.write("architecture,val\n" + "".join(f"{k},{nb201.value(k, 'accuracy')}\n" for k in nb201.keys[:50]))
    assert make_config("train:data.npz", "random", 5).benchmark == f"train:{tmp_path / 'data.npz'}"
    config = make_config("nb201-csv", "random", 5, benchmark_options={"table": "table.csv"})
    assert config.benchmark_options["table"] == str(tmp_path / "table.csv")
    assert make_config("train:digits", "random", 5).benchmark == "train:digits"  # built-in names stay names


def test_a_table_metric_without_values_and_a_search_where_everything_fails(tmp_path, nb201, monkeypatch):
    p = tmp_path / "nan.csv"
    p.write_text("architecture,val,other\n" + "".join(f"{k},nan,{i}\n" for i, k in enumerate(nb201.keys[:30])))
    r = runner.invoke(app, ["search", "-b", "nb201-csv", "--table", str(p), "--metric", "val", "-q"])
    assert r.exit_code == 2 and "has no finite value" in r.output and "Traceback" not in r.output
    # a search in which every trial failed says so and exits 1, so that a script notices
    import types

    import nasagent.api

    failed = types.SimpleNamespace(best=None, stop_reason="the last 100 trials failed (pip install 'nasagent[control]')",
                                   n_failed=100)
    monkeypatch.setattr(nasagent.api, "search", lambda *a, **k: failed)
    r = runner.invoke(app, ["search", "-s", "random", "--budget", "5", "--out", str(tmp_path / "r"), "-q"])
    assert r.exit_code == 1 and "no successful trial" in r.output and "the last 100 trials failed" in r.output
    assert "'nasagent[control]'" in r.output  # brackets in a message are text, not rich markup


def test_an_error_message_keeps_its_brackets(tmp_path, monkeypatch):
    import nasagent.api
    from nasagent.core import NasagentError

    def refuse(*a, **k):
        raise NasagentError("the Ray executor is not available; install it with pip install 'nasagent[ray]'")

    monkeypatch.setattr(nasagent.api, "search", refuse)
    r = runner.invoke(app, ["search", "-s", "random", "--budget", "5", "--out", str(tmp_path / "r"), "-q"])
    assert r.exit_code == 2 and "pip install 'nasagent[ray]'" in r.output


def test_list_shows_names_and_metrics():
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0 and "nb201" in r.output and "local-search" in r.output
    r = runner.invoke(app, ["list", "-b", "nbgraph/cora"])
    assert r.exit_code == 0 and "valid_perf" in r.output and "latency" in r.output


def test_compare_writes_table_and_plot(tmp_path):
    out = tmp_path / "cmp"
    r = runner.invoke(app, ["compare", "--strategies", "evolution,ls=local-search", "--seeds", "3", "--budget", "300", "--at", "50,100", "--out", str(out), "--opt", "ls.n_init=5"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "compare.json").read_text())
    methods = {row["method"] for row in doc["rows"]}
    assert methods == {"evolution", "ls"}
    for row in doc["rows"]:
        assert row["n_seeds"] == 3 and row["regret_at_100"] <= row["regret_at_50"]
    assert (out / "regret.png").exists() and (out / "compare.csv").exists()
    # a label with a dash takes options; random rarely finds the optimum in 40 samples: its mean is a lower bound
    r = runner.invoke(app, ["compare", "--strategies", "random,local-search", "--seeds", "2", "--budget", "40", "--at", "20",
                            "--out", str(tmp_path / "c2"), "--opt", "local-search.n_init=3"])
    assert r.exit_code == 0, r.output
    rows = {row["method"]: row for row in json.loads((tmp_path / "c2" / "compare.json").read_text())["rows"]}
    assert rows["random"]["censored"] == 2 and "≥" in r.output
    r = runner.invoke(app, ["compare", "--strategies", "random,evolution", "--seeds", "2", "--budget", "40", "--at", "20",
                            "--out", str(tmp_path / "c3"), "--opt", "evolution.population_size=0"])
    assert r.exit_code == 2 and "population_size" in r.output and not (tmp_path / "c3").exists()  # refused before any run


def test_user_csv_end_to_end(tmp_path, nb201):
    p = tmp_path / "mine.csv"
    keys = nb201.keys[:400]
    with open(p, "w") as f:
        f.write("architecture,val,test\n")
        for k in keys:
            f.write(f"{k},{nb201.value(k, 'accuracy')},{nb201.value(k, 'ptq_accuracy')}\n")
    r = runner.invoke(app, ["search", "-b", "nb201-csv", "--table", str(p), "--metric", "val", "--budget", "30", "--out", str(tmp_path / "r"), "--quiet"])
    assert r.exit_code == 0, r.output
    doc = json.loads((tmp_path / "r" / "best.json").read_text())
    assert doc["best"]["key"] in keys and doc["objective"] == "val:max"


def test_report_exports_every_trial_as_csv(tmp_path):
    import csv

    out = tmp_path / "run"
    assert runner.invoke(app, ["search", "--budget", "40", "--out", str(out), "--quiet"]).exit_code == 0
    r = runner.invoke(app, ["report", str(out), "--csv"])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(open(out / "trials.csv")))
    assert sum(row["status"] == "ok" for row in rows) == 40
    assert all(row["accuracy"] for row in rows if row["status"] in ("ok", "cached"))
    cached = [row for row in rows if row["status"] == "cached"]
    for row in cached:  # a re-proposal points at the trial whose answer it reused
        src = next(x for x in rows if x["number"] == row["source"])
        assert src["key"] == row["key"] and src["accuracy"] == row["accuracy"]


def test_api_progress_takes_a_function_none_or_false():
    import pytest

    import nasagent
    from nasagent.core import NasagentError

    seen = []
    assert nasagent.search("nb201", "random", budget=5, progress=seen.append, plot=False).samples == 5 and seen
    assert nasagent.search("nb201", "random", budget=5, progress=False, plot=False).samples == 5
    with pytest.raises(NasagentError, match="progress must be a function"):
        nasagent.search("nb201", "random", budget=5, progress=True, plot=False)


def test_report_reads_a_minimize_journal(tmp_path):
    """`nasagent report` on a minimize(..., journal=) file prints its best point and draws its curve, and a search's
    journal given the same way still reports as a search."""
    import numpy as np

    from nasagent.strategies.lamcts import minimize, read_minimize_journal

    path = tmp_path / "f.db"
    r = minimize(lambda x: None if x[0] > 1.5 else float(np.sum(x**2)), [(-2, 2)] * 3, budget=30, seed=0,
                 solver="random", n_init=10, leaf_size=8, journal=path)
    back = read_minimize_journal(path)
    assert back.fun == r.fun and back.nfev == 30 and back.nfail == r.nfail and np.array_equal(back.x, r.x)
    rep = runner.invoke(app, ["report", str(path)])
    assert rep.exit_code == 0, rep.output
    assert f"{r.fun:.6g}" in rep.output and f"30 evaluations, {r.nfail} failed" in rep.output
    assert (tmp_path / "f_curve.png").stat().st_size > 5_000
    out = tmp_path / "run"
    assert runner.invoke(app, ["search", "--budget", "5", "--out", str(out), "-q"]).exit_code == 0
    assert read_minimize_journal(out / "journal.db") is None
    assert "best architecture" in runner.invoke(app, ["report", str(out / "journal.db")]).output
