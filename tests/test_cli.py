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
