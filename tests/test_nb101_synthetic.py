"""The synthetic NB101 table (``nb101-synthetic``): complete, deterministic per seed, clustered, one optimum.

The full table is built once for the module (about 10 s of enumeration and hashing) into a temporary cache
directory, which ``NASAGENT_CACHE_DIR`` then points at for the registry-level tests.
"""

import numpy as np
import pytest

from nasagent.api import search
from nasagent.benchmarks import nb101_synthetic as syn
from nasagent.core import Budget, NasagentError
from nasagent.registry import make_benchmark, make_strategy
from nasagent.runtime.runner import Runner
from nasagent.spaces.nb101 import NB101Space


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("nb101-cache"))


@pytest.fixture(scope="module")
def bench(cache_dir):
    return syn.nb101_synthetic_benchmark(seed=0, directory=cache_dir)


@pytest.fixture
def use_cache(cache_dir, monkeypatch):
    monkeypatch.setenv("NASAGENT_CACHE_DIR", cache_dir)


def test_every_cell_of_at_most_six_nodes_has_one_row(bench):
    assert len(bench) == syn.N_CELLS == 64_542 == NB101Space(max_nodes=6).size()
    assert len(set(bench.keys)) == len(bench)
    assert bench.space.max_nodes == 6 and bench.default_metric == "val_accuracy"


def test_the_cache_reloads_the_same_cells_and_a_damaged_file_is_ignored(bench, cache_dir, tmp_path):
    keys, codes = syn.load_cells(True, cache_dir)  # memoised: the same objects the fixture used
    syn.load_cells.cache_clear()
    keys2, codes2 = syn.load_cells(True, cache_dir)  # now read from the .npz
    assert keys2 == keys and np.array_equal(codes2, codes)
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    assert syn._read_cache(bad, NB101Space(max_nodes=6)) is None


def test_cell_codes_round_trip(bench):
    space = NB101Space(max_nodes=6)
    for cell in list(space.enumerate())[::4999]:
        assert syn.decode_cell(*syn.encode_cell(cell)) == cell


def test_same_seed_same_table_other_seed_other_table(bench, cache_dir):
    _, a = syn.synthetic_table(0, directory=cache_dir)
    _, b = syn.synthetic_table(0, directory=cache_dir)
    _, c = syn.synthetic_table(1, directory=cache_dir)
    assert np.array_equal(a["val_accuracy"], bench.values("val_accuracy"))
    assert np.array_equal(a["val_accuracy"], b["val_accuracy"]) and np.array_equal(a["test_accuracy"], b["test_accuracy"])
    assert np.mean(a["val_accuracy"] != c["val_accuracy"]) > 0.99
    # the noise is a pure function of (seed, column, key): pinned so a change to it shows up here
    assert syn.hash_normal(["abc"], 0, "val")[0] == pytest.approx(1.665047237208427, abs=1e-12)
    assert syn.hash_normal(["abc"], 0, "val")[0] != syn.hash_normal(["abc"], 1, "val")[0]
    z = syn.hash_normal([str(i) for i in range(20_000)], 0, "val")
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.03


def test_exactly_one_global_optimum(bench):
    for metric in ("val_accuracy", "test_accuracy"):
        best, keys = bench.optimum(bench.objective(metric))
        col = bench.values(metric)
        assert len(keys) == 1 and np.sum(col == best) == 1
        assert best > np.sort(col)[-2]
    # the tie-break itself: the smallest key among tied maxima is raised
    out = syn.unique_max(np.array([0.5, 0.9, 0.9, 0.1]), ["d", "c", "b", "a"])
    assert out[2] > out[1] == 0.9 and np.sum(out == out.max()) == 1


def test_accuracies_are_clustered_with_a_long_low_tail(bench):
    v = bench.values("val_accuracy")
    q01, q05, q25, q50, q75 = np.quantile(v, [0.01, 0.05, 0.25, 0.5, 0.75])
    assert 0.90 <= q50 <= 0.94  # the dense band
    assert q75 - q25 < 0.04  # most cells close together
    assert q05 > 0.80 and q01 < 0.70 and v.min() < 0.30  # a thin, long tail
    assert 0.93 < v.max() < 0.96
    t = bench.values("test_accuracy")
    assert np.corrcoef(v, t)[0, 1] > 0.8 and np.median(t) < np.median(v)


def test_features_drive_the_accuracy(bench, cache_dir):
    _, cols = syn.synthetic_table(0, directory=cache_dir)
    s = syn.quality_logit(cols)
    v = cols["val_accuracy"]
    no_conv = (cols["n_conv3x3"] + cols["n_conv1x1"]) == 0
    assert np.median(v[no_conv]) < 0.6 < np.median(v[~no_conv])
    top = s >= np.quantile(s, 0.9)
    assert np.median(v[top]) > np.quantile(v, 0.9) - 0.005  # the best feature levels hold the best cells
    space = NB101Space(max_nodes=6)
    chain = space.parse("input|conv3x3|conv3x3|conv3x3|output;01001,00100,00010,00001,00000")
    assert syn.cell_features(chain) == (3, 0, 0, 4, 3, 1, 1, 5)


def test_lookup_of_a_parsed_string(bench):
    space = bench.space
    text = "input|conv3x3|maxpool|conv1x1|output;01100,00010,00010,00001,00000"
    arch = space.parse(text)
    res = bench(arch)
    i = bench.keys.index(space.key(arch))
    assert res.status == "ok" and res.cost == 1.0
    assert set(res.metrics) == {"val_accuracy", "test_accuracy"}
    assert res.metrics["val_accuracy"] == bench.values("val_accuracy")[i]
    # the same cell with its two parallel middle nodes written in the other order is the same row
    swapped = space.parse("input|maxpool|conv3x3|conv1x1|output;01100,00010,00010,00001,00000")
    assert swapped != arch and bench(swapped).metrics == res.metrics
    with pytest.raises(NasagentError, match="6"):
        space.parse("input|conv3x3|conv3x3|conv3x3|conv3x3|conv3x3|output;0100000,0010000,0001000,0000100,0000010,0000001,0000000")


def test_runs_through_the_ask_tell_runner(bench):
    objective = bench.objective()
    for name in ("evolution", "random"):
        strat = make_strategy(name, bench.space, seed=3)
        res = Runner(bench.space, bench, strat, objective, Budget(evaluations=40)).run()
        assert res.samples == 40 and res.optimum == bench.optimum(objective)[0]
        assert 0.1 < res.best_value <= res.optimum
        assert "test_accuracy" in str(res.report)


def test_registry_builds_it_on_nb101_6_and_rejects_other_spaces(use_cache, bench):
    b = make_benchmark("nb101-synthetic", seed=0)
    assert np.array_equal(b.values("val_accuracy"), bench.values("val_accuracy"))
    assert make_benchmark("nb101-synthetic", seed=2).optimum(b.objective())[0] != bench.optimum(bench.objective())[0]
    run = search("nb101-synthetic", "evolution", budget=25, seed=0, space="nb101-6", plot=False)
    assert run.samples == 25 and run.optimum == bench.optimum(bench.objective())[0]
    for wrong in ("nb101", "nb201"):
        with pytest.raises(NasagentError, match="defined on space 'nb101-6'.*--space nb101-6"):
            search("nb101-synthetic", "evolution", budget=5, space=wrong, plot=False)
    with pytest.raises(NasagentError, match="no option"):
        make_benchmark("nb101-synthetic", epochs=3)
