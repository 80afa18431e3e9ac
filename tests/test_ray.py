"""The Ray executor on a real local cluster: streaming results, retries after real worker kills, trial
timeouts, and resume after the driver is killed with SIGKILL. One cluster serves the whole module."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from _ray_support import Scripted, pid_file  # noqa: E402

from nasagent.api import resume, search  # noqa: E402
from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.registry import make_strategy  # noqa: E402
from nasagent.runtime.journal import Journal  # noqa: E402
from nasagent.runtime.ray_executor import RayExecutor, _check_reachable  # noqa: E402
from nasagent.runtime.runner import Runner  # noqa: E402

HERE = Path(__file__).parent
CPUS = 4


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throw-away local cluster needs no token
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    # workers inherit the environment of the cluster's processes: let them import _ray_support
    old_path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), old_path) if p)
    try:
        ray.init(address="local", num_cpus=CPUS, include_dashboard=False, logging_level="WARNING")
    finally:
        os.environ.pop("PYTHONPATH") if old_path is None else os.environ.__setitem__("PYTHONPATH", old_path)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def first_keys(space, n, seed=0):
    """The first ``n`` proposals of seeded random search (its order does not depend on results)."""
    s = make_strategy("random", space, seed=seed)
    return [space.key(s.ask().arch) for _ in range(n)]


def run(evaluator, strategy="random", budget=30, workers=CPUS, seed=0, **executor_options):
    space = evaluator.space
    journal = Journal(":memory:")
    ex = RayExecutor(workers, **executor_options)
    runner = Runner(space, evaluator, make_strategy(strategy, space, seed=seed), evaluator.table.objective(),
                    Budget(evaluations=budget), journal=journal, executor=ex)
    return runner.run(), journal, ex


def check_complete(journal, budget):
    rows = journal.trials()
    counted = [r for r in rows if r.counted]
    assert len(counted) == budget
    assert sorted(r.sample for r in counted) == list(range(1, budget + 1))  # no gap, no double count
    assert len({r.key for r in counted}) == budget
    assert not [r for r in rows if r.status == "running"]
    return rows


def test_one_worker_on_ray_gives_the_inline_trace(cluster, nb201, tmp_path):
    ev = Scripted(nb201, tmp_path)
    ref = search("nb201", "evolution", budget=60, seed=3)
    res, journal, ex = run(ev, "evolution", budget=60, workers=1, seed=3)
    assert not ex.owns_cluster and ray.is_initialized()  # joined the running cluster and left it up
    assert [t[:2] for t in res.trace] == [t[:2] for t in ref.trace]
    check_complete(journal, 60)


def test_results_stream_back_out_of_order(cluster, nb201, tmp_path):
    keys = first_keys(nb201.space, 3)
    ev = Scripted(nb201, tmp_path, delay=0.05, delays={keys[0]: 2.0})
    t0 = time.monotonic()
    res, journal, ex = run(ev, budget=40)
    rows = check_complete(journal, 40)
    slow = next(r for r in rows if r.key == keys[0])
    # trial 0 was asked first but finished late; meanwhile the free slots kept asking for new trials
    assert slow.number == 0 and slow.sample > 10  # (~40 on an idle machine; 20 when another job loads the CPUs)
    assert sum(r.asked < slow.finished for r in rows) > 20
    assert time.monotonic() - t0 < 20
    assert len(ex.worker_processes) >= 2


def test_a_worker_killed_mid_trial_is_retried_once_and_journaled_once(cluster, nb201, tmp_path):
    keys = first_keys(nb201.space, 12)
    killed = {keys[2], keys[7]}
    ev = Scripted(nb201, tmp_path, delay=0.05, kill_once=killed)
    res, journal, ex = run(ev, budget=25, max_retries=2)
    rows = check_complete(journal, 25)
    assert all(r.status == "ok" for r in rows if r.status != "cached")
    assert {r.key: r.attempts for r in rows if r.key in killed} == dict.fromkeys(killed, 2)
    assert all(r.attempts == 1 for r in rows if r.key not in killed and r.status == "ok")
    assert ex.n_retries == 2 and res.n_failed == 0


def test_a_worker_killed_from_outside_is_retried(cluster, nb201, tmp_path):
    key = first_keys(nb201.space, 4)[1]
    ev = Scripted(nb201, tmp_path, delay=0.05, wait_kill={key})
    killed = []

    def killer():
        path = pid_file(tmp_path, key)
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        pid = int(path.read_text())
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    res, journal, ex = run(ev, budget=20)
    t.join(5)
    assert killed and ex.n_retries == 1
    rows = check_complete(journal, 20)
    row = next(r for r in rows if r.key == key)
    assert row.status == "ok" and row.attempts == 2
    assert row.metrics["accuracy"] == nb201.value(key, "accuracy")


def test_a_trial_whose_worker_keeps_dying_fails_and_the_search_goes_on(cluster, nb201, tmp_path):
    key = first_keys(nb201.space, 5)[3]
    ev = Scripted(nb201, tmp_path, delay=0.02, kill_always={key})
    res, journal, ex = run(ev, budget=15, max_retries=1)
    rows = check_complete(journal, 15)
    row = next(r for r in rows if r.key == key)
    assert row.status == "failed" and not row.counted and row.attempts == 2
    assert "died 2 time(s)" in row.error and "max_retries=1" in row.error
    assert res.n_failed == 1 and res.samples == 15


def test_trial_timeout_cancels_the_trial_and_kills_its_worker(cluster, nb201, tmp_path):
    key = first_keys(nb201.space, 3)[1]
    ev = Scripted(nb201, tmp_path, delay=0.05, hang={key})
    t0 = time.monotonic()
    res, journal, ex = run(ev, budget=20, trial_timeout=3.0)
    assert time.monotonic() - t0 < 30  # the hanging trial sleeps 60 s
    rows = check_complete(journal, 20)
    row = next(r for r in rows if r.key == key)
    assert row.status == "failed" and "timeout of 3 s" in row.error and row.attempts == 1
    # the hanging trial timed out; on a loaded machine the replacement worker's start-up (it counts against its first
    # trial) may time out one more
    assert 1 <= ex.n_timeouts <= 2
    pid = int(pid_file(tmp_path, key, "hang").read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), "the worker of a timed-out trial must be killed"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child of the raylet may linger as a zombie until it is reaped
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("strategy", ["random", "evolution", "local-search"])
def test_batch_ask_of_every_core_strategy_works_on_ray(cluster, nb201, tmp_path, strategy):
    ev = Scripted(nb201, tmp_path, delay=0.01)
    res, journal, ex = run(ev, strategy, budget=40, seed=1)
    check_complete(journal, 40)
    assert res.best_value == max(r.metrics["accuracy"] for r in journal.trials() if r.counted)


def test_alphax_two_phase_backprop_is_corrected_once_per_trial_on_ray(cluster, nb201, tmp_path):
    """With 4 trials in flight AlphaX backs up q-hat at ask and q - q-hat at tell; at the end the root's
    statistics must hold exactly one visit and the final q of every told trial, none pending."""
    if "alphax" not in __import__("nasagent.registry", fromlist=["STRATEGIES"]).STRATEGIES:
        pytest.skip("AlphaX is not registered")
    ev = Scripted(nb201, tmp_path, delay=0.02)
    journal = Journal(":memory:")
    strategy = make_strategy("alphax", nb201.space, seed=0, k=3, min_fit=8, refit_every=8)
    runner = Runner(nb201.space, ev, strategy, nb201.objective(), Budget(evaluations=40), journal=journal,
                    executor=RayExecutor(CPUS))
    runner.run()
    rows = check_complete(journal, 40)
    assert strategy.pending == {}
    qs = []
    for r in rows:
        qhat = r.info.get("qhat")
        qs.append(r.score if qhat is None else (r.score + qhat) / 2)
    assert sum(strategy.N[0]) == len(rows)
    assert sum(strategy.Q[0]) == pytest.approx(sum(qs), rel=1e-9, abs=1e-6)


def _nb201_strategies():
    from nasagent.registry import STRATEGIES

    return sorted(STRATEGIES)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", _nb201_strategies())
def test_every_registered_strategy_runs_unchanged_on_ray(cluster, nb201, tmp_path, strategy):
    try:
        make_strategy(strategy, nb201.space, seed=0)
    except NasagentError as e:
        pytest.skip(f"{strategy} does not search the NB201 space: {e}")
    ev = Scripted(nb201, tmp_path, delay=0.02)
    res, journal, ex = run(ev, strategy, budget=30, seed=2)
    check_complete(journal, 30)


def test_api_search_and_resume_with_the_ray_executor(cluster, tmp_path):
    res = search("nb201", "evolution", budget=30, seed=1, out=tmp_path / "r", workers=2, executor="ray",
                 executor_options={"address": cluster, "max_retries": 1})
    assert res.samples == 30
    res2 = resume(tmp_path / "r", budget=45)
    assert res2.samples == 45
    check_complete(Journal(tmp_path / "r" / "journal.db"), 45)


def test_bad_ray_options_are_one_clear_error(cluster):
    with pytest.raises(NasagentError, match="cpus_per_trial"):
        RayExecutor(2, cpus_per_trial=0, gpus_per_trial=0)
    with pytest.raises(NasagentError, match="max_retries"):
        RayExecutor(2, max_retries=-1)
    with pytest.raises(NasagentError, match="bad Ray executor option"):
        search("nb201", budget=5, executor="ray", executor_options={"retries": 3})
    with pytest.raises(NasagentError, match="GPU"):
        search("nb201", budget=5, executor="ray", executor_options={"gpus_per_trial": 1})
    with pytest.raises(NasagentError, match="no Ray cluster answers at 127.0.0.1:1"):
        _check_reachable("127.0.0.1:1")


# -- the driver dies -------------------------------------------------------------------------------------
def _cli(*args, wait=True):
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [sys.executable, str(HERE / "_support.py"), *args]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rows(journal: Path):
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
    rows = db.execute("SELECT number, key, status, score, counted, sample FROM trials ORDER BY number").fetchall()
    db.close()
    return rows


def test_driver_killed_with_sigkill_resumes_from_the_journal_on_ray(cluster, tmp_path):
    run_dir = tmp_path / "run"
    args = ["search", "-b", "slow-nb201", "-s", "evolution", "--budget", "120", "--seed", "4", "--quiet",
            "--executor", "ray", "--workers", "2", "--address", cluster, "--out", str(run_dir)]
    proc = _cli(*args, wait=False)
    journal = run_dir / "journal.db"
    deadline = time.time() + 120
    told = []
    while time.time() < deadline:
        try:
            told = [r for r in _rows(journal) if r[2] != "running"]
        except sqlite3.Error:  # not created yet
            told = []
        if len(told) >= 40:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = {r[0]: r for r in _rows(journal) if r[2] != "running"}
    assert 40 <= len(before) < 120, "the driver must be killed mid-run"

    import _support

    from nasagent import registry

    saved = list(registry.BENCHMARKS)
    _support.register()  # the resumed driver is this process: it needs the same plug-in benchmark
    try:
        res = resume(run_dir, plot=False)
    finally:
        registry.BENCHMARKS[:] = saved
    assert res.samples == 120
    after = {r[0]: r for r in _rows(journal)}
    assert all(after[n] == row for n, row in before.items())  # nothing told before the crash changed
    counted = [r for r in after.values() if r[4]]
    assert len(counted) == 120 and len({r[1] for r in counted}) == 120
    assert sorted(r[5] for r in counted) == list(range(1, 121))
    assert not [r for r in after.values() if r[2] == "running"]


def test_cli_ray_flags_need_the_ray_executor_and_are_checked(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    cli = CliRunner()
    cases = [
        (["search", "--trial-timeout", "3"], "--trial-timeout only applies to the Ray executor"),
        (["search", "--address", "h:1", "--max-retries", "1"], "--address, --max-retries only apply"),
        (["search", "--executor", "ray", "--trial-timeout", "-1"], "trial_timeout must be > 0"),
        (["search", "--executor", "ray", "--cpus-per-trial", "0"], "not both 0"),
    ]
    for args, fragment in cases:
        r = cli.invoke(app, [*args, "--out", str(tmp_path / "r"), "--quiet"])
        assert r.exit_code != 0 and fragment in r.output, (args, r.output)
        assert not (tmp_path / "r").exists()  # rejected before anything is written
