"""Resume after kill -9: a real subprocess is killed mid-run and continued from its journal."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import nasagent
from nasagent.api import resume, search

HERE = Path(__file__).parent


def _cli(*args, wait=True):
    env = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cmd = [sys.executable, str(HERE / "_support.py"), *args]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _told(journal: Path) -> int:
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1)
        n = db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]
        db.close()
        return n
    except sqlite3.Error:
        return 0


def _counted_sequence(journal: Path):
    db = sqlite3.connect(journal)
    rows = db.execute("SELECT sample, key, score FROM trials WHERE counted=1 ORDER BY sample").fetchall()
    statuses = db.execute("SELECT status, COUNT(*) FROM trials GROUP BY status").fetchall()
    db.close()
    return rows, dict(statuses)


@pytest.mark.parametrize("strategy", ["evolution", "local-search"])
def test_kill_9_then_resume_gives_the_uninterrupted_result(tmp_path, strategy):
    args = ["search", "-b", "slow-nb201", "-s", strategy, "--budget", "120", "--seed", "5", "--quiet", "--opt", "population_size=10"] if strategy == "evolution" else ["search", "-b", "slow-nb201", "-s", strategy, "--budget", "120", "--seed", "5", "--quiet"]
    ref = tmp_path / "ref"
    done = _cli(*args, "--out", str(ref))
    assert done.returncode == 0, done.stderr

    run = tmp_path / "killed"
    proc = _cli(*args, "--out", str(run), wait=False)
    journal = run / "journal.db"
    deadline = time.time() + 120
    while _told(journal) < 45 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    told_at_kill = _told(journal)
    assert 45 <= told_at_kill < 150, "the run must be killed mid-way"
    assert not (run / "best.json").exists()

    out = _cli("search", "--resume", str(run), "--quiet")
    assert out.returncode == 0, out.stderr

    ref_rows, _ = _counted_sequence(ref / "journal.db")
    rows, statuses = _counted_sequence(journal)
    assert len(rows) == 120 and statuses.get("running", 0) == 0
    assert len({k for _, k, _ in rows}) == 120  # nothing counted twice
    assert rows == ref_rows  # exactly the uninterrupted run
    assert json.loads((run / "best.json").read_text())["best"] == json.loads((ref / "best.json").read_text())["best"]


def test_resume_with_a_larger_budget_continues(tmp_path):
    r1 = search("nb201", "evolution", budget=50, seed=2, out=tmp_path / "r", snapshot_every=7)
    r2 = resume(tmp_path / "r", budget=90)
    assert r1.samples == 50 and r2.samples == 90
    full = search("nb201", "evolution", budget=90, seed=2)
    assert [t[:2] for t in r2.trace] == [t[:2] for t in full.trace]


def test_a_resumed_run_reports_its_journaled_progress_first(tmp_path):
    search("nb201", "evolution", budget=20, seed=1, out=tmp_path / "r")
    seen = []
    resume(tmp_path / "r", budget=25, progress=lambda p: seen.append((p.samples, p.last_status)))
    assert seen[0] == (20, "resumed") and seen[-1][0] == 25 and len(seen) == 6
    seen.clear()
    resume(tmp_path / "r", progress=lambda p: seen.append(p.samples))  # finished: one report, the full count
    assert seen == [25]


def test_a_resumed_budget_only_grows_and_keeps_the_limits_not_given(tmp_path):
    search("nb201", "random", budget={"evaluations": 20, "seconds": 3600}, seed=0, out=tmp_path / "r")
    with pytest.raises(nasagent.NasagentError, match="may only grow.*evaluations=20, got 10"):
        resume(tmp_path / "r", budget=10)
    r = resume(tmp_path / "r" / "journal.db", budget=30)  # the journal file stands for its run directory
    assert r.samples == 30 and (tmp_path / "r" / "best.json").exists()
    config, journal = nasagent.api.load_config(tmp_path / "r")
    journal.close()
    assert config.budget == {"evaluations": 30, "seconds": 3600}


def test_one_process_at_a_time_writes_a_run_and_a_session_time_is_kept_before_the_end(tmp_path):
    from nasagent.runtime.journal import Journal

    search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    holder = Journal(tmp_path / "r" / "journal.db", create=False)
    holder.lock()  # as a search running in another process holds it
    try:
        with pytest.raises(nasagent.NasagentError, match=f"in use by pid {os.getpid()}"):
            resume(tmp_path / "r", budget=10)
    finally:
        holder.close()
    seen = []

    def kill_after_60(p):  # stand-in for kill -9: leave before the run's end writes anything
        seen.append(p.samples)
        if p.samples == 60:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search("nb201", "random", budget=100, seed=0, out=tmp_path / "k", progress=kill_after_60, snapshot_every=50)
    db = sqlite3.connect(tmp_path / "k" / "journal.db")
    (elapsed,) = db.execute("SELECT elapsed FROM sessions").fetchone()
    db.close()
    assert elapsed is not None and elapsed > 0  # written with the snapshot at 50 tells


def test_corrupt_or_foreign_journal_on_resume(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "journal.db").write_bytes(b"\x00" * 4096)
    with pytest.raises(nasagent.NasagentError, match="not a nasagent journal"):
        resume(d)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "journal.db")
    db.execute("CREATE TABLE users (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(nasagent.NasagentError, match="not a nasagent journal"):
        resume(foreign)
    with pytest.raises(nasagent.NasagentError, match="no journal"):
        resume(tmp_path / "nothing-here")


def test_existing_run_directory_is_not_overwritten(tmp_path):
    search("nb201", "random", budget=5, out=tmp_path / "r")
    with pytest.raises(nasagent.NasagentError, match="already holds a run"):
        search("nb201", "random", budget=5, out=tmp_path / "r")
    assert search("nb201", "random", budget=6, out=tmp_path / "r", overwrite=True).samples == 6


def test_a_run_on_a_read_only_disk_can_be_reported_but_not_resumed(tmp_path, monkeypatch):
    import nasagent.runtime.journal as journal_module
    from nasagent.api import load_run

    search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    monkeypatch.setattr(journal_module.os, "access", lambda path, mode: False)  # as on a read-only mount
    _, result = load_run(tmp_path / "r")
    assert result.samples == 5 and result.stop_reason == "budget exhausted"
    with pytest.raises(nasagent.NasagentError, match="cannot be written"):
        resume(tmp_path / "r", budget=10)
    (tmp_path / "empty.db").write_bytes(b"")
    with pytest.raises(nasagent.NasagentError, match="is empty"):
        load_run(tmp_path / "empty.db")
    assert (tmp_path / "empty.db").stat().st_size == 0  # left as it was


def test_overwrite_removes_the_old_runs_checkpoints_and_never_a_running_run(tmp_path):
    from nasagent.runtime.journal import claim_run

    search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    for folder in ("search", "checkpoints"):  # a supernet or a PARSEC search of the old run
        (tmp_path / "r" / folder).mkdir()
        (tmp_path / "r" / folder / "state.pt").write_bytes(b"old")
    held = claim_run(tmp_path / "r" / "journal.db")
    try:
        with pytest.raises(nasagent.NasagentError, match="in use"):
            search("nb201", "random", budget=5, seed=1, out=tmp_path / "r", overwrite=True)
        assert (tmp_path / "r" / "search" / "state.pt").exists()  # nothing deleted
    finally:
        held.close()
    r = search("nb201", "random", budget=5, seed=1, out=tmp_path / "r", overwrite=True)
    assert r.samples == 5 and not (tmp_path / "r" / "search").exists() and not (tmp_path / "r" / "checkpoints").exists()


def test_a_refused_resume_writes_nothing_and_old_or_lockless_runs_still_open(tmp_path, monkeypatch):
    import errno

    from nasagent.api import load_config, load_run
    from nasagent.runtime.journal import claim_run

    search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    held = claim_run(tmp_path / "r" / "journal.db")
    try:
        with pytest.raises(nasagent.NasagentError, match="in use"):
            resume(tmp_path / "r", budget=50)
    finally:
        held.close()
    config, journal = load_config(tmp_path / "r")
    assert config.budget == {"evaluations": 5} and journal.get_meta("stop_reason") == "budget exhausted"
    # a run stored with --mode beside --objective (accepted, and ignored, before that was refused) still reports
    raw = dataclasses.asdict(config) | {"objectives": ["accuracy:max", "analog_accuracy:max"], "mode": "max"}
    journal.set_meta("config", raw)
    journal.close()
    assert load_run(tmp_path / "r")[1].samples == 5
    # a file system without locks: a warning, not "in use"
    import fcntl

    def no_locks(f, how):
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert search("nb201", "random", budget=3, seed=0, out=tmp_path / "nolock").samples == 3
    # without locks, report goes by the pid the lock file names: a finished run, or one whose process is gone,
    # is not "still running"; one whose process lives is
    assert load_run(tmp_path / "nolock")[1].stop_reason == "budget exhausted"
    lock = tmp_path / "nolock" / "journal.db.lock"
    lock.write_text(f"pid {os.getpid()}")
    assert load_run(tmp_path / "nolock")[1].stop_reason.startswith("still running")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    import socket

    for text in (f"pid {gone.pid}", f"pid {gone.pid} on {socket.gethostname()}", "pid 99999999999999999999", "pid ²", "junk"):
        lock.write_text(text)
        assert load_run(tmp_path / "nolock")[1].stop_reason == "budget exhausted", text
    lock.write_text(f"pid {gone.pid} on another-host-{socket.gethostname()}")  # cannot be checked from here: held
    assert load_run(tmp_path / "nolock")[1].stop_reason.startswith("still running")
    # and a second writer is refused while the named process may be alive, accepted once it is gone
    with pytest.raises(nasagent.NasagentError, match="empty that file"):
        resume(tmp_path / "nolock", budget=5)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"pid {live.pid} on {socket.gethostname()}")
        with pytest.raises(nasagent.NasagentError, match=f"in use by pid {live.pid}"):
            resume(tmp_path / "nolock", budget=5)
        # with the start time the writer recorded: its own is held (and shown without it), a reused pid is not
        since = Path(f"/proc/{live.pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
        lock.write_text(f"pid {live.pid} on {socket.gethostname()} since {since}")
        assert load_run(tmp_path / "nolock")[1].stop_reason == f"still running (in use by pid {live.pid} on {socket.gethostname()})"
        lock.write_text(f"pid {live.pid} on {socket.gethostname()} since {int(since) - 1}")  # a process this pid had before
        assert load_run(tmp_path / "nolock")[1].stop_reason == "budget exhausted"
    finally:
        live.kill()
        live.wait()
    assert resume(tmp_path / "nolock", budget=5).samples == 5  # its writer is gone: the run goes on
    assert lock.read_text() == ""  # and is released when it ends
    # a second claim in this process is refused as flock would refuse it, with the caller's advice, until released
    from nasagent.runtime.journal import claim_run, release_run

    first = claim_run(tmp_path / "nolock" / "journal.db")
    with pytest.raises(nasagent.NasagentError, match="in use by pid .*, or try elsewhere"):
        claim_run(tmp_path / "nolock" / "journal.db", advice="or try elsewhere")
    release_run(first)
    release_run(claim_run(tmp_path / "nolock" / "journal.db"))
    # a writer killed but not yet reaped by its parent (a zombie) is gone
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{zombie.pid}/stat")
    for _ in range(200):
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.05)
    try:
        lock.write_text(f"pid {zombie.pid} on {socket.gethostname()}")
        assert resume(tmp_path / "nolock", budget=6).samples == 6
    finally:
        zombie.wait()


def test_ctrl_c_inside_a_tell_leaves_no_half_updated_snapshot(tmp_path, monkeypatch):
    from nasagent.strategies.evolution import RegularizedEvolution

    full = search("nb201", "evolution", budget=60, seed=4)
    real = RegularizedEvolution._observe
    calls = [0]

    def interrupted(self, trial, result):  # Ctrl-C lands in the middle of the strategy's update
        calls[0] += 1
        real(self, trial, result)
        if calls[0] == 37:
            self.rng.random()  # part of an update that never finished
            raise KeyboardInterrupt

    monkeypatch.setattr(RegularizedEvolution, "_observe", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search("nb201", "evolution", budget=60, seed=4, out=tmp_path / "r", snapshot_every=10)
    monkeypatch.setattr(RegularizedEvolution, "_observe", real)
    resumed = resume(tmp_path / "r")
    assert [t[:2] for t in resumed.trace] == [t[:2] for t in full.trace]


def test_resume_refuses_a_table_that_changed_since_the_run_started(tmp_path, nb201):
    table = tmp_path / "t.csv"
    keys = nb201.keys[:300]
    table.write_text("arch,val_acc\n" + "".join(f"{k},{nb201.value(k, 'accuracy')}\n" for k in keys))
    search("nb201-csv", "random", budget=10, seed=0, out=tmp_path / "r", benchmark_options={"table": str(table)}, metric="val_acc")
    table.write_text("arch,val_acc\n" + "".join(f"{k},{nb201.value(k, 'accuracy') - 50}\n" for k in keys))
    with pytest.raises(nasagent.NasagentError, match="changed since the run"):
        resume(tmp_path / "r", budget=20)


def test_a_search_refused_before_its_first_trial_leaves_no_run_behind(tmp_path, nb201):
    table = tmp_path / "nan.csv"
    table.write_text("arch,val,other\n" + "".join(f"{k},nan,{i}\n" for i, k in enumerate(nb201.keys[:30])))
    with pytest.raises(nasagent.NasagentError, match="no finite value"):
        search("nb201-csv", "random", budget=5, out=tmp_path / "r", benchmark_options={"table": str(table)}, metric="val")
    assert not (tmp_path / "r").exists()  # so the corrected command is not told the folder "already holds a run"


def test_without_os_locks_a_claim_in_progress_is_refused_and_a_dead_one_taken_over(tmp_path, monkeypatch):
    """Without OS locks, reading the lock file's pid and writing one is guarded by an exclusively created claim
    file: a claim in progress elsewhere (a fresh claim file) is refused; one left by a dead claimer (older than
    CLAIM_STALE_SECONDS) is taken over; a successful claim removes the claim file."""
    import errno
    import fcntl
    import socket

    from nasagent.runtime import journal as journal_module
    from nasagent.runtime.journal import claim_run, release_run

    def no_locks(f, how):
        raise OSError(errno.ENOLCK, "no locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    path = tmp_path / "j.db"
    guard = tmp_path / "j.db.lock.claim"
    guard.write_text("")
    with pytest.raises(nasagent.NasagentError, match=r"being claimed by another process right now .*, or try elsewhere"):
        claim_run(path, advice="or try elsewhere")
    assert (tmp_path / "j.db.lock").read_text() == "" and guard.exists()  # refused before anything was written
    old = time.time() - journal_module.CLAIM_STALE_SECONDS - 5
    os.utime(guard, (old, old))
    held = claim_run(path)
    assert (tmp_path / "j.db.lock").read_text().startswith(f"pid {os.getpid()} on ") and not guard.exists()
    release_run(held)
    # another claimer takes the stale file over between this one's look at it and its move: its claim stands
    guard.write_text("")
    os.utime(guard, (old, old))
    real_rename, replaced = os.rename, []

    def rename(src, dst):
        if str(src) == str(guard) and not replaced:
            guard.unlink()
            replaced.append(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY))  # the other claimer's fresh file
        return real_rename(src, dst)

    monkeypatch.setattr(journal_module.os, "rename", rename)
    with pytest.raises(nasagent.NasagentError, match="being claimed by another process right now"):
        claim_run(path)
    os.close(replaced[0])
    assert guard.exists() and time.time() - guard.stat().st_mtime < 5  # the fresh claim file is back in place
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("j.db.lock.claim.")] == []
    # a lock file from before start times were recorded, naming this process's pid: a leftover, not a live writer
    monkeypatch.undo()
    monkeypatch.setattr(fcntl, "flock", no_locks)
    guard.unlink()
    (tmp_path / "j.db.lock").write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    release_run(claim_run(path))
    # the refusal is one message, not chained to the file system's "no locks" error
    (tmp_path / "j.db.lock").write_text(f"pid {os.getppid()} on {socket.gethostname()}")
    with pytest.raises(nasagent.NasagentError, match="in use by") as refused:
        claim_run(path)
    assert refused.value.__suppress_context__


def test_release_run_empties_only_a_lock_file_that_names_this_process(tmp_path):
    from nasagent.runtime.journal import claim_run, release_run

    lock = tmp_path / "j.db.lock"
    held = claim_run(tmp_path / "j.db")
    assert lock.read_text().startswith(f"pid {os.getpid()} on ")
    if Path("/proc/self/stat").exists():  # and when this process started, so a later owner of the pid is not taken for it
        assert lock.read_text().split(" since ")[1] == Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19]
    release_run(held)
    assert lock.read_text() == ""
    held = claim_run(tmp_path / "j.db")
    lock.write_text("pid 12345 on elsewhere")  # a second writer on a file system without locks
    release_run(held)
    assert lock.read_text() == "pid 12345 on elsewhere"


def test_report_on_a_run_another_process_holds_says_it_is_running(tmp_path):
    import socket

    from nasagent.api import load_run
    from nasagent.runtime.journal import claim_run

    search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    held = claim_run(tmp_path / "r" / "journal.db")
    try:
        assert load_run(tmp_path / "r")[1].stop_reason == f"still running (in use by pid {os.getpid()} on {socket.gethostname()})"
    finally:
        held.close()
    assert load_run(tmp_path / "r")[1].stop_reason == "budget exhausted"


def test_report_on_a_run_whose_table_was_deleted_reads_the_journal_alone(tmp_path, nb201):
    from nasagent.api import load_run

    table = tmp_path / "t.csv"
    keys = nb201.keys[:300]
    table.write_text("arch,err\n" + "".join(f"{k},{100 - nb201.value(k, 'accuracy')}\n" for k in keys))
    run = search("nb201-csv", "random", budget=40, seed=1, out=tmp_path / "r", benchmark_options={"table": str(table)},
                 metric="err", mode="min")
    table.unlink()
    _, again = load_run(tmp_path / "r")
    assert again.best_value == run.best_value and again.best.key == run.best.key  # a minimised metric stays minimised
    assert again.optimum == run.optimum is not None and again.trace == run.trace
    assert again.stop_reason == "budget exhausted"


def test_a_benchmark_whose_optimum_is_a_numpy_float_still_runs(tmp_path, monkeypatch):
    from nasagent.benchmarks.base import TableBenchmark

    real = TableBenchmark.optimum
    monkeypatch.setattr(TableBenchmark, "optimum", lambda self, obj: (np.float32(real(self, obj)[0]), real(self, obj)[1]))
    run = search("nb201", "random", budget=5, seed=0, out=tmp_path / "r")
    assert run.samples == 5  # the stored objective for later reports may not stop a search
