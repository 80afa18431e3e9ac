"""Helpers run in subprocesses by the tests: a slowed-down NB201 table registered as a benchmark."""

import dataclasses
import sys
import time

from nasagent.benchmarks.base import TableBenchmark


class SlowTable(TableBenchmark):
    delay = 0.02

    def __call__(self, arch, budget=None, hint=None):
        time.sleep(self.delay)
        return super().__call__(arch, budget, hint)


def build_slow(spec, **opts):
    from nasagent.benchmarks.nb201 import nb201_benchmark

    b = nb201_benchmark()
    return SlowTable(**{f.name: getattr(b, f.name) for f in dataclasses.fields(b)})


def register():
    from nasagent.registry import register_benchmark

    register_benchmark("slow-nb201", "NB201 with a 20 ms delay (tests)", lambda s: s == "slow-nb201", "_support:build_slow")


if __name__ == "__main__":
    register()
    from nasagent.cli import app

    sys.argv = ["nasagent", *sys.argv[1:]]
    app()
