import os

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def nb201():
    from nasagent.benchmarks.nb201 import nb201_benchmark

    return nb201_benchmark()


@pytest.fixture
def rng():
    return np.random.default_rng(0)
