"""Evaluators for the Ray tests: a table whose chosen architectures sleep, hang or kill their own worker.

They live in a module (not in the test file) so that Ray workers can unpickle them: Ray gives its workers
the driver's ``sys.path``, which holds this directory under pytest.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path


def _tag(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:16]


class Scripted:
    """Wraps a table benchmark. Per architecture key:

    - ``delays[key]`` seconds of sleep (``delay`` for the others);
    - ``kill_once``: the first attempt SIGKILLs its own worker process mid-trial, later attempts succeed;
    - ``kill_always``: every attempt SIGKILLs its worker;
    - ``wait_kill``: the first attempt writes its pid to ``state_dir/<tag>.pid`` and sleeps until someone
      kills it; later attempts succeed;
    - ``hang``: writes its pid to ``state_dir/<tag>.hang`` and sleeps for a minute (for timeouts).
    Attempts are told apart by marker files in ``state_dir`` (all workers share this machine's disk).
    """

    def __init__(self, table, state_dir, delay=0.0, delays=None, kill_once=(), kill_always=(), wait_kill=(), hang=()):
        self.table = table
        self.space = table.space
        self.state_dir = str(state_dir)
        self.delay = delay
        self.delays = dict(delays or {})
        self.kill_once, self.kill_always = set(kill_once), set(kill_always)
        self.wait_kill, self.hang = set(wait_kill), set(hang)

    def optimum(self, objective):
        return self.table.optimum(objective)

    def _first_attempt(self, key: str) -> bool:
        marker = Path(self.state_dir) / f"{_tag(key)}.seen"
        try:
            marker.touch(exist_ok=False)
            return True
        except FileExistsError:
            return False

    def __call__(self, arch, budget=None, hint=None):
        key = self.space.key(arch)
        time.sleep(self.delays.get(key, self.delay) / 2)
        if key in self.kill_always or (key in self.kill_once and self._first_attempt(key)):
            os.kill(os.getpid(), signal.SIGKILL)
        if key in self.wait_kill and self._first_attempt(key):
            (Path(self.state_dir) / f"{_tag(key)}.pid").write_text(str(os.getpid()))
            time.sleep(60)
        if key in self.hang:
            (Path(self.state_dir) / f"{_tag(key)}.hang").write_text(str(os.getpid()))
            time.sleep(60)
        time.sleep(self.delays.get(key, self.delay) / 2)
        return self.table(arch, budget, hint)


def pid_file(state_dir, key: str, suffix: str = "pid") -> Path:
    return Path(state_dir) / f"{_tag(key)}.{suffix}"
