"""SQLite journal: every trial, every ask/tell event and periodic strategy snapshots.

The journal is the single source of truth of a run. It is written in WAL mode and every write is one
atomic statement (or one transaction), so a process killed with ``kill -9`` loses nothing it had told the
journal. Resuming reads the latest snapshot, replays the events after it, and re-issues trials that were
still running.

Tables: ``meta`` (format version, run config), ``trials`` (one row per proposal; ``ask_seq``/``tell_seq``
place its ask and its answer in the run's single event order), ``snapshots`` (pickled strategy state at an
event), ``sessions`` (wall time of each sitting). Keeping the event order in the trial row instead of a
separate events table halves the statements per sample (the runner's overhead is mostly SQLite).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from nasagent.core import NasagentError, Result

FORMAT = "nasagent-journal/2"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    arch TEXT NOT NULL,
    hint TEXT,
    info TEXT,
    status TEXT NOT NULL,          -- running | ok | failed | cached
    metrics TEXT,
    score REAL,
    cost REAL,
    error TEXT,
    counted INTEGER NOT NULL DEFAULT 0,   -- 1 when the trial spent budget (a unique valid sample)
    sample INTEGER,                -- 1-based index among counted trials, in completion order
    source INTEGER,                -- for cached trials: the trial whose result was reused
    attempts INTEGER NOT NULL DEFAULT 0,
    asked REAL, started REAL, finished REAL,
    ask_seq INTEGER NOT NULL,      -- position of the ask in the run's event order
    tell_seq INTEGER               -- position of the answer (NULL while running)
);
CREATE INDEX IF NOT EXISTS trials_key ON trials(key);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_seq INTEGER NOT NULL, state BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, elapsed REAL NOT NULL DEFAULT 0);
"""


@dataclass
class TrialRow:
    number: int
    key: str
    arch: str
    hint: dict | None
    info: dict
    status: str
    metrics: dict
    score: float | None
    cost: float | None
    error: str | None
    counted: bool
    sample: int | None
    source: int | None
    attempts: int
    asked: float | None
    started: float | None
    finished: float | None

    def result(self) -> Result:
        status = "ok" if self.status in ("ok", "cached") and self.score is not None else "failed"
        return Result(metrics=dict(self.metrics), cost=self.cost or 0.0, status=status, error=self.error, score=self.score)


class Journal:
    """One run's store. ``path=":memory:"`` keeps it in memory (benchmarks, compare)."""

    def __init__(self, path: str | Path, create: bool = True):
        self.path = str(path)
        self.read_only = False
        if self.path != ":memory:":
            p = Path(self.path)
            if not create and not p.exists():
                raise NasagentError(f"no journal at {p}; is this a nasagent run directory?")
            if not create and p.is_file() and p.stat().st_size == 0:
                raise NasagentError(f"{p} is empty: not a nasagent journal")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise NasagentError(f"cannot create the folder of the journal {p} ({e.strerror}: {e.filename}); "
                                    "choose a path in a writable folder") from None
            writable = os.access(p.parent, os.W_OK) and os.access(p, os.W_OK)  # False for a file not there yet
            if create and p.exists() and not writable:
                raise NasagentError(f"{p} cannot be written (a read-only folder or file); copy it somewhere writable "
                                    "first")
            # a run on a read-only disk can still be reported and exported (SQLite's WAL needs a writable folder)
            self.read_only = not create and not writable
        try:
            if self.read_only:
                self.db = _open_read_only(Path(self.path))
            else:
                self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
            existing = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            raise NasagentError(f"{self.path} is not a nasagent journal (SQLite says: {e})") from None
        if existing and "meta" not in existing:
            raise NasagentError(f"{self.path} is an SQLite file but not a nasagent journal (tables: {', '.join(sorted(existing))})")
        if existing:
            fmt = self.get_meta("format")
            if fmt != FORMAT:
                raise NasagentError(f"{self.path} has journal format {fmt!r}, this nasagent reads {FORMAT!r}")
        elif not create:
            raise NasagentError(f"{self.path} is empty: not a nasagent journal")
        if self.read_only:
            self.session = None
            self._lock_file = None
            self._seq = None
            return
        self.db.executescript(_SCHEMA)
        if not existing:
            self.set_meta("format", FORMAT)
            self.set_meta("created", str(time.time()))
        self.session = None
        self._lock_file = None
        self._seq: int | None = None  # last event position handed out; read from the file on first use

    # -- meta ---------------------------------------------------------------------------------------
    def _check_writable(self) -> None:
        if self.read_only:
            raise NasagentError(f"{self.path} cannot be written (a read-only folder or file); copy the run somewhere "
                                "writable to resume it")

    def set_meta(self, key: str, value) -> None:
        self._check_writable()
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
        self._commit()

    def get_meta(self, key: str, default=None):
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        except sqlite3.DatabaseError as e:
            raise NasagentError(f"{self.path} is corrupt or not a nasagent journal ({e})") from None
        return default if row is None else json.loads(row[0])

    # -- sessions (wall-time budget across resumes) ---------------------------------------------------
    def start_session(self) -> None:
        self.session = self.db.execute("INSERT INTO sessions (started) VALUES (?)", (time.time(),)).lastrowid

    def update_session(self, elapsed: float, durable: bool = True) -> None:
        """This sitting's wall time so far; written at every snapshot too, so a killed run loses little of it."""
        if self.session is not None:
            self._write("UPDATE sessions SET elapsed=? WHERE id=?", (elapsed, self.session), durable)

    def lock(self, advice: str = "or search into another --out") -> None:
        """Claim the run for this process until ``close`` (two writers would evaluate trials twice and collide
        on trial numbers). The OS drops the lock when the process dies, so a killed run can be resumed.
        ``advice`` ends the message that refuses a run held by another process."""
        self._check_writable()
        if self.path == ":memory:" or self._lock_file is not None:
            return
        self._lock_file = claim_run(self.path, advice)

    def previous_elapsed(self) -> float:
        row = self.db.execute("SELECT COALESCE(SUM(elapsed), 0) FROM sessions WHERE id != ?", (self.session or -1,)).fetchone()
        return float(row[0])

    # -- trials and events -----------------------------------------------------------------------------
    # An ask is written once its fate is known (submitted, waiting on an identical running trial, or answered
    # at once from the cache); an answer is one UPDATE. Writes about evaluations are committed at once.
    # Answers that cost nothing to recompute (a re-proposal answered from the cache, a constraint rejected
    # before evaluation) ride in an open transaction that the next durable write commits: a crash can lose
    # only such answers at the very end, and resume re-derives them exactly (replay is deterministic).
    # Group-committing them is what keeps the runner's overhead per sample well under a millisecond.
    def _write(self, sql: str, params: tuple, durable: bool = True) -> None:
        if not durable:
            self._begin()
        self.db.execute(sql, params)
        if durable:
            self._commit()

    def _begin(self) -> None:
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def _commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def _last_seq(self) -> int:
        if self._seq is None:
            row = self.db.execute("SELECT COALESCE(MAX(ask_seq), 0), COALESCE(MAX(tell_seq), 0) FROM trials").fetchone()
            self._seq = int(max(row))
        return self._seq

    def _next_seq(self) -> int:
        self._seq = self._last_seq() + 1
        return self._seq

    def record_ask(self, number: int, key: str, arch: str, hint, info, started: bool = False) -> None:
        """A proposal that is now running (``started``: handed to an executor) or waiting on a twin."""
        now = time.time()
        self._write(
            "INSERT INTO trials (number, key, arch, hint, info, status, asked, started, attempts, ask_seq) "
            "VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?)",
            (number, key, arch, _dump(hint), _dump(info), now, now if started else None, int(started), self._next_seq()),
        )

    def record_start(self, number: int) -> None:
        self._write("UPDATE trials SET started=?, attempts=attempts+1 WHERE number=?", (time.time(), number))

    def record_tell(
        self, number: int, status: str, result: Result, counted: bool, sample: int | None, source: int | None = None
    ) -> None:
        self._write(
            "UPDATE trials SET status=?, metrics=?, score=?, cost=?, error=?, counted=?, sample=?, source=?, finished=?, "
            "tell_seq=? WHERE number=?",
            (
                status,
                json.dumps(result.metrics, allow_nan=True),
                result.score,
                result.cost,
                result.error,
                int(counted),
                sample,
                source,
                time.time(),
                self._next_seq(),
                number,
            ),
        )

    def record_answered(
        self, number: int, key: str, arch: str, hint, info, status: str, result: Result, counted: bool,
        sample: int | None, source: int | None = None,
    ) -> None:
        """A proposal answered the moment it was asked (a cached result, a rejected constraint): one row,
        group-committed with the next durable write (see above)."""
        now = time.time()
        ask_seq = self._next_seq()
        self._write(
            "INSERT INTO trials (number, key, arch, hint, info, status, metrics, score, cost, error, counted, sample, "
            "source, asked, finished, ask_seq, tell_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                number, key, arch, _dump(hint), _dump(info), status, json.dumps(result.metrics, allow_nan=True),
                result.score, result.cost, result.error, int(counted), sample, source, now, now, ask_seq,
                self._next_seq(),
            ),
            durable=False,
        )

    def record_snapshot(self, state: dict) -> None:
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        self._begin()
        seq = self._last_seq()
        self.db.execute("INSERT INTO snapshots (event_seq, state, created) VALUES (?, ?, ?)", (seq, blob, time.time()))
        # keep the two newest snapshots: the latest, and one to fall back on
        self.db.execute("DELETE FROM snapshots WHERE seq NOT IN (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT 2)")
        self._commit()

    def latest_snapshot(self) -> tuple[int, dict] | None:
        try:
            rows = self.db.execute("SELECT event_seq, state FROM snapshots ORDER BY seq DESC").fetchall()
        except sqlite3.DatabaseError as e:
            raise NasagentError(f"{self.path} is corrupt ({e}); its strategy snapshots cannot be read") from None
        for seq, blob in rows:
            try:
                return int(seq), pickle.loads(blob)
            except Exception:  # a damaged snapshot: fall back to the older one, or to a full replay
                continue
        return None

    def events_after(self, seq: int) -> list[tuple[int, str, int]]:
        """(seq, 'ask' | 'tell', trial number) after ``seq``, in the order they happened."""
        try:
            return list(
                self.db.execute(
                    "SELECT ask_seq, 'ask', number FROM trials WHERE ask_seq > ? "
                    "UNION ALL SELECT tell_seq, 'tell', number FROM trials WHERE tell_seq > ? ORDER BY 1",
                    (seq, seq),
                )
            )
        except sqlite3.DatabaseError as e:
            raise NasagentError(f"{self.path} is corrupt ({e}); its events cannot be replayed") from None

    def trials(self, where: str = "", params: tuple = ()) -> list[TrialRow]:
        q = "SELECT number, key, arch, hint, info, status, metrics, score, cost, error, counted, sample, source, attempts, asked, started, finished FROM trials"
        try:
            rows = self.db.execute(q + (" WHERE " + where if where else "") + " ORDER BY number", params).fetchall()
            return [
                TrialRow(
                    r[0], r[1], r[2], _load(r[3]), _load(r[4]) or {}, r[5], json.loads(r[6]) if r[6] else {}, r[7], r[8],
                    r[9], bool(r[10]), r[11], r[12], r[13], r[14], r[15], r[16],
                )
                for r in rows
            ]
        except (sqlite3.DatabaseError, ValueError, TypeError) as e:  # ValueError: a damaged JSON column
            raise NasagentError(f"{self.path} is corrupt or not a nasagent journal ({e}); its trials cannot be read") from None

    def trial(self, number: int) -> TrialRow | None:
        rows = self.trials("number=?", (number,))
        return rows[0] if rows else None

    def close(self) -> None:
        try:
            self._commit()
            self.db.close()
        except sqlite3.Error:
            pass
        if self._lock_file is not None:
            release_run(self._lock_file)
            self._lock_file = None


def _open_read_only(path: Path) -> sqlite3.Connection:
    """A journal on a read-only disk: read-only mode sees the trials still in the write-ahead log; where SQLite
    cannot open that way (no shared-memory file can be made), the main file alone, with a warning if a log exists."""
    uri = path.resolve().as_uri()
    try:
        db = sqlite3.connect(uri + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return db
    except sqlite3.DatabaseError:
        pass
    if Path(str(path) + "-wal").exists():
        import logging

        logging.getLogger("nasagent").warning("%s: reading without its write-ahead log (%s-wal); the last trials of a run "
                                              "that was killed may be missing; copy the run somewhere writable to see them",
                                              path, path.name)
    return sqlite3.connect(uri + "?mode=ro&immutable=1", uri=True, isolation_level=None, check_same_thread=False)


def _lock_holder(f) -> str | None:
    """Try the run's OS lock on the open lock file ``f`` without waiting: None when this process now holds it,
    else who does (the pid its holder wrote). Other errors (a file system without locks) propagate."""
    import errno
    import fcntl

    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
            raise
        f.seek(0)
        return _shown(f.read().strip()) or "another process"
    return None


def run_holder(journal_path: str | Path) -> str | None:
    """Who holds the run whose journal is ``journal_path`` (e.g. "pid 123 on HOST"), or None when nobody does."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = Path(str(journal_path) + ".lock")
    if not lock.exists():
        return None
    try:
        with open(lock, "a+") as f:
            try:
                holder = _lock_holder(f)
            except OSError:  # no lock to be had here: held while the process that wrote its pid is alive
                f.seek(0)
                return _live_writer(f.read().strip())
            if holder is None:
                fcntl.flock(f, fcntl.LOCK_UN)
            return holder
    except OSError:  # a read-only folder: nobody can be writing the run there
        return None


def claim_run(journal_path: str | Path, advice: str = "or search into another --out"):
    """Take the OS lock of the run whose journal is ``journal_path``; returns the open lock file (closing it
    releases the lock), or None where the OS has no such locks. A run held by another process is refused, the
    message ending with ``advice``."""
    try:
        import fcntl  # noqa: F401 - POSIX only
    except ImportError:  # not POSIX: no guard
        return None
    import logging

    f = open(str(journal_path) + ".lock", "a+")  # noqa: SIM115 - held open as the lock
    try:
        holder = _lock_holder(f)
    except OSError as e:  # e.g. a file system without locks: the pid the lock file names is the guard
        try:
            with _claiming(f, journal_path, advice):  # read, decide and write as one step among claimers
                f.seek(0)
                named = f.read().strip()
                # a file naming this pid on this host (whatever start time it gives) was written by this process or
                # by an earlier one that had its pid: a live writer only if this process holds the run
                mine = _shown(named) == _shown(_me())
                holder = _live_writer(named) if not mine or _lock_key(f) in _HELD_WITHOUT_OS_LOCK else None
                if holder is not None:
                    raise NasagentError(f"{Path(journal_path).parent} is in use by {holder} (this file system has no locks, "
                                        f"so {f.name} names the writer); wait for it to finish (if that process is gone, "
                                        f"empty that file), {advice}") from None
                _write_pid(f)  # so that ``run_holder`` and the next claim can tell a live run from a finished one
        except NasagentError:
            f.close()
            raise
        logging.getLogger("nasagent").warning("cannot lock %s (%s); the pid written in it is the only one-writer guard",
                                              f.name, e)
        _HELD_WITHOUT_OS_LOCK.add(_lock_key(f))
        return f
    if holder is not None:
        f.close()
        raise NasagentError(f"{Path(journal_path).parent} is in use by {holder}; wait for it to finish (or stop it) "
                            f"first, {advice}")
    _write_pid(f)
    return f


#: the lock files this process holds where the OS gives no lock (a second claim in this process is refused)
_HELD_WITHOUT_OS_LOCK: set[str] = set()

#: a claim file older than this is left over from a claimer that died between creating and removing it
CLAIM_STALE_SECONDS = 30.0


@contextlib.contextmanager
def _claiming(f, journal_path, advice: str):
    """Without OS locks, reading the lock file's pid and writing ours must not interleave with another claimer's:
    an exclusively created ``<lock>.claim`` file admits one claimer at a time (a leftover older than
    ``CLAIM_STALE_SECONDS`` is taken over). Where that file cannot be made at all, the claim goes on unguarded."""
    guard = f.name + ".claim"
    fd = None
    for _ in range(3):
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                seen = os.stat(guard)
            except OSError:
                continue  # removed meanwhile: try again
            busy = NasagentError(f"{Path(journal_path).parent} is being claimed by another process right now "
                                 f"({guard} exists); try again in a moment, {advice}")
            if time.time() - seen.st_mtime < CLAIM_STALE_SECONDS:
                raise busy from None
            # take the leftover over by moving it aside, and make sure the file moved is the one found stale (same
            # inode and time: a new file may reuse the inode): another claimer may have replaced it meanwhile, and
            # its claim must stand
            aside = f"{guard}.{os.getpid()}"
            try:
                os.rename(guard, aside)
            except OSError:
                continue
            moved = os.stat(aside)
            if (moved.st_ino, moved.st_dev, moved.st_mtime_ns) != (seen.st_ino, seen.st_dev, seen.st_mtime_ns):
                os.rename(aside, guard)
                raise busy from None
            with contextlib.suppress(OSError):
                os.unlink(aside)
        except OSError:
            break  # no exclusive create here either: as before, unguarded
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(guard)


def _lock_key(f) -> str:
    return os.path.realpath(f.name)


def release_run(f) -> None:
    """Close the lock file ``claim_run`` returned (which releases the lock), first emptying it if it still names
    this process: the run is over, and ``run_holder`` reads the file where there are no OS locks."""
    _HELD_WITHOUT_OS_LOCK.discard(_lock_key(f))
    try:
        f.seek(0)
        if _shown(f.read().strip()) == _shown(_me()):
            f.seek(0)
            f.truncate()
    except OSError:
        pass
    f.close()


def _me() -> str:
    """What this process writes in a lock file: "pid N on HOST since T", T its start time where /proc has it, so
    that a later process given the same pid does not read as the writer."""
    import socket

    pid = os.getpid()
    if pid not in _MY_START:  # read once per process (a fork has its own pid), so the text never changes
        _MY_START[pid] = _start_time(pid)
    since = _MY_START[pid]
    return f"pid {pid} on {socket.gethostname()}" + (f" since {since}" if since else "")


_MY_START: dict[int, str | None] = {}


def _shown(text: str) -> str:
    """A lock file's text as messages show it: the writer without its start time."""
    return text.split(" since ", 1)[0]


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first, field 3), or None where unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None


def _start_time(pid: int, fields: list[str] | None = None) -> str | None:
    """When process ``pid`` started (clock ticks after boot, field 22 of /proc/PID/stat), or None where unknown."""
    fields = _proc_stat(pid) if fields is None else fields
    return fields[19] if fields is not None and len(fields) > 19 else None


def _write_pid(f) -> None:
    f.seek(0)
    f.truncate()
    f.write(_me())
    f.flush()


def _live_writer(text: str) -> str | None:
    """Where no OS lock can be had: who the lock file names ("pid N on HOST") while that process may be alive;
    None (nobody) for an empty file or a process of this host that has ended, including one whose pid a later
    process now has (the start time written after "since" differs). A process on another host cannot be
    checked from here and counts as alive."""
    import socket

    parts = text.split()
    if len(parts) < 2 or parts[0] != "pid" or not (parts[1].isascii() and parts[1].isdigit()) or not 0 < int(parts[1]) < 2**31:
        return None  # not a pid this module wrote
    if len(parts) >= 4 and parts[2] == "on" and parts[3] != socket.gethostname():
        return _shown(text)
    try:
        os.kill(int(parts[1]), 0)
    except (ProcessLookupError, OverflowError):
        return None
    except OSError:  # alive, owned by another user
        pass
    fields = _proc_stat(int(parts[1]))
    if fields and fields[0] == "Z":  # a killed process its parent has not reaped yet (a zombie) writes nothing more
        return None
    if len(parts) >= 6 and parts[4] == "since":  # the pid now belongs to a process started later: the writer is gone
        now = _start_time(int(parts[1]), fields)
        if now is not None and now != parts[5]:
            return None
    return _shown(text)


def _dump(v) -> str | None:
    return None if v is None else json.dumps(v, default=str)


def _load(s):
    return None if s is None else json.loads(s)
