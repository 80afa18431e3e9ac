import pickle

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError, Objective, Result
from nasagent.registry import STRATEGIES, make_strategy
from nasagent.runtime.runner import Runner
from nasagent.spaces.box import BoxSpace
from nasagent.spaces.nb201 import NB201Space

S = NB201Space()
CORE = ["random", "evolution", "local-search"]


def _samples_to_optimum(name, nb201, seed, cap=3000, **opts):
    strat = make_strategy(name, S, seed=seed, **opts)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=cap), stop_at_optimum=True).run()
    return res.samples_to_optimum or cap


def test_random_search_visits_every_cell_once(nb201):
    strat = make_strategy("random", S, seed=3)
    keys = []
    for _ in range(S.size()):
        keys.append(S.key(strat.ask().arch))
    assert len(set(keys)) == S.size()
    from nasagent.core import SpaceExhausted

    with pytest.raises(SpaceExhausted):
        strat.ask()


def test_random_search_ends_cleanly_when_the_space_is_exhausted(nb201):
    strat = make_strategy("random", S, seed=0)
    res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=20000)).run()
    assert res.samples == 15625 and "exhausted" in res.stop_reason and res.samples_to_optimum is not None


@pytest.mark.parametrize("name", ["evolution", "local-search"])
def test_guided_strategies_beat_random_on_nb201(name, nb201):
    # random needs (N+1)/2 = 7,813 samples on average to hit the single optimum
    sto = [_samples_to_optimum(name, nb201, seed) for seed in range(8)]
    assert np.mean(sto) < 1000, sto


@pytest.mark.parametrize("name", CORE)
def test_state_dict_round_trip_continues_identically(name, nb201):
    def drive(strat, n, start=0):
        out = []
        for i in range(n):
            t = strat.ask()
            out.append(S.key(t.arch))
            strat.tell(t, Result(metrics=nb201(t.arch).metrics, score=nb201(t.arch).metrics["accuracy"]))
        return out

    a = make_strategy(name, S, seed=11)
    drive(a, 40)
    snap = pickle.loads(pickle.dumps(a.state_dict()))
    tail_a = drive(a, 40)
    b = make_strategy(name, S, seed=999)  # a different seed: the snapshot must override everything
    b.load_state_dict(snap)
    assert drive(b, 40) == tail_a


def test_evolution_keeps_the_newest_members_and_mutates_a_tournament_winner(nb201):
    strat = make_strategy("evolution", S, seed=4, population_size=5, sample_size=5)
    told = []
    for _ in range(12):
        t = strat.ask()
        score = nb201(t.arch).metrics["accuracy"]
        strat.tell(t, Result(metrics={"accuracy": score}, score=score))
        told.append((S.key(t.arch), score))
        # ageing: the population is exactly the last 5 evaluated, oldest first
        assert [(S.key(a), v) for a, v in strat.population] == told[-5:]
    # with the tournament = the whole population, every child is one edit from the best member
    best = max(strat.population, key=lambda m: m[1])[0]
    child = strat.ask().arch
    assert S.key(child) in {S.key(n) for n in S.neighbors(best)}
    failed = make_strategy("evolution", S, seed=4, population_size=3, sample_size=2)
    t = failed.ask()
    failed.tell(t, Result(metrics={}, status="failed", error="boom"))
    assert len(failed.population) == 0 and failed.n_random == 0  # a failed initial member is drawn again


def test_the_two_standard_error_rule():
    from nasagent.report.results import beats

    a, b = [10.0, 11.0, 12.0, 13.0], [20.0, 20.5, 22.0, 23.5]  # differences -10, -9.5, -10, -10.5: a clear win
    assert beats(a, b) == "win" and beats(b, a) == "loss" and beats(a, b, lower_is_better=False) == "loss"
    assert beats([1.0, 2.0, 3.0], [2.0, 1.0, 3.0]) == "tie"  # mean difference 0
    assert beats([1.0, 5.0, 1.0, 5.0], [2.0, 2.0, 2.0, 2.0]) == "tie"  # mean +1, se 1: within 2 se
    assert beats([1.0, 2.0], 5.0) == "win"  # one number is a fixed reference
    assert beats([1.0, float("nan"), 3.0], [0.0, 0.0, 0.0]) == "n/a"  # no claim on missing values
    with pytest.raises(ValueError, match="same length"):
        beats([1.0, 2.0, 3.0], [1.0, 2.0])


def test_sample_efficiency_ratio_interpolates_the_crossing():
    from nasagent.report.results import sample_efficiency_ratio

    reference = np.linspace(1.0, 0.1, 100)  # mean regret 0.1 after 100 samples
    fast = 1.0 - 0.05 * np.arange(30)  # 0.1 after exactly 19 samples
    assert sample_efficiency_ratio(fast, reference, 100) == pytest.approx(100 / 19)
    halfway = np.array([1.0, 0.3, 0.0])  # 0.1 lies 2/3 of the way from sample 2 to 3
    assert sample_efficiency_ratio(halfway, reference, 100) == pytest.approx(100 / (2 + 2 / 3))
    assert np.isnan(sample_efficiency_ratio(np.ones(50), reference, 100))  # never gets there
    assert sample_efficiency_ratio(-reference, -reference, 40, lower_is_better=False) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="budget"):
        sample_efficiency_ratio(fast, reference, 101)


def test_local_search_needs_neighbours():
    with pytest.raises(NasagentError, match="needs one-edit neighbours"):
        make_strategy("local-search", BoxSpace([0, 0], [1, 1]))


def test_evolution_options_validated():
    with pytest.raises(NasagentError, match="sample_size <= population_size"):
        make_strategy("evolution", S, population_size=5, sample_size=10)
    with pytest.raises(NasagentError, match="has no option 'popsize'"):
        make_strategy("evolution", S, popsize=5)


def test_every_registered_strategy_runs_a_short_search(nb201):
    for name in STRATEGIES:
        try:
            strat = make_strategy(name, S, seed=0)
        except NasagentError:
            continue  # a strategy for another kind of space
        res = Runner(S, nb201, strat, Objective("accuracy"), Budget(evaluations=15)).run()
        assert res.samples == 15, name


@pytest.mark.parametrize("name", ["q-learning", "reinforce", "alphax"])
def test_sequential_strategies_on_a_box_name_the_spaces_that_work(name):
    with pytest.raises(NasagentError, match="spaces that have one: nb201"):
        make_strategy(name, BoxSpace([0.0] * 3, [1.0] * 3), seed=0)


@pytest.mark.parametrize("name", ["reinforce", "q-learning", "lanas", "evolution"])
def test_a_nan_score_told_directly_counts_as_a_failure(name, nb201):
    """The runner turns a NaN objective into a failed trial; a result told without the runner must not poison
    a strategy either (REINFORCE's policy became NaN and every later ask raised)."""
    assert not Result(metrics={}, score=float("nan")).ok and not Result(metrics={}, score=float("inf")).ok
    strat = make_strategy(name, nb201.space, seed=0)
    for i in range(30):
        t = strat.ask()
        acc = nb201(t.arch).metrics["accuracy"]
        strat.tell(t, Result(metrics={"accuracy": acc}, score=float("nan") if i % 3 == 1 else acc))
    assert nb201.space.validate(strat.ask().arch) is not None


def test_evolution_keeps_going_on_a_partial_table(tmp_path, nb201):
    import nasagent

    table = tmp_path / "part.csv"  # 2,000 random cells of 15,625: most mutations leave the table or repeat a cell
    keys = [nb201.keys[i] for i in np.random.default_rng(1).choice(len(nb201.keys), 2000, replace=False)]
    table.write_text("arch,val\n" + "".join(f"{k},{nb201.value(k, 'accuracy')}\n" for k in keys))
    r = nasagent.search("nb201-csv", "evolution", budget=100, seed=0, benchmark_options={"table": str(table)}, metric="val")
    assert r.samples == 100, r.stop_reason  # it stopped at 24 with "the space may be nearly exhausted"


def test_evolution_long_after_its_optimum_journals_few_free_repeats(tmp_path):
    import sqlite3

    import nasagent

    r = nasagent.search("nb201", "evolution", budget=1500, seed=0, out=tmp_path / "r")
    assert r.samples == 1500 and r.samples_to_optimum == 115  # (the fallback never fires before the optimum)
    with sqlite3.connect(tmp_path / "r" / "journal.db") as db:
        cached = db.execute("select count(*) from trials where status='cached'").fetchone()[0]
    assert cached < 70_000  # ~44,000 now; ~105,000 when every fallback waited for 1,000 repeats (and growing faster)


def test_results_record_a_dirty_working_tree(tmp_path, monkeypatch):
    """A results file names the commit it came from, marked "+dirty" when tracked code was changed since."""
    import shutil
    import subprocess

    from nasagent.report.results import git_commit

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    files = {"a.py": "1", "benchmarks/results/r.json": "{}", "docs/d.md": "x", "README.md": "x"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    for cmd in (["git", "init", "-q"], ["git", "add", *files], ["git", "commit", "-q", "-m", "x"]):
        subprocess.run(cmd, check=True, capture_output=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (tmp_path / "untracked.py").write_text("not part of the code")
    for name in ("benchmarks/results/r.json", "docs/d.md", "README.md"):  # results and docs are not code
        (tmp_path / name).write_text("changed")
    assert git_commit() == sha
    (tmp_path / "a.py").write_text("2")
    assert git_commit() == sha + "+dirty"
    monkeypatch.chdir(tmp_path / "docs")  # the whole repository counts, wherever the script runs from
    assert git_commit() == sha + "+dirty"


def test_results_record_the_library_versions():
    """A results file records the versions of the libraries that move results (only torch is pinned)."""
    import numpy
    import scipy

    from nasagent.report.results import machine_info

    packages = machine_info()["packages"]
    assert packages["numpy"] == numpy.__version__ and packages["scipy"] == scipy.__version__
    assert "not-a-package" not in packages
