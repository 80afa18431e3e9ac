import base64
import json

import numpy as np
import pytest

from nasagent.benchmarks.base import TableBenchmark
from nasagent.benchmarks.functions import FUNCTIONS, FunctionBenchmark
from nasagent.benchmarks.nb101_tfrecord import encode_model_metrics, nb101_benchmark, write_records
from nasagent.benchmarks.nb201 import csv_benchmark
from nasagent.benchmarks.nbgraph import nbgraph_benchmark
from nasagent.core import NasagentError, Objective
from nasagent.registry import make_benchmark
from nasagent.spaces.nb101 import INPUT, OPS, OUTPUT, NB101Space
from nasagent.spaces.nb201 import NB201Space

BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_embedded_nb201_facts(nb201):
    assert len(nb201) == 15625
    value, keys = nb201.optimum(Objective("accuracy", "max"))
    assert value == pytest.approx(94.0664) and keys == {BEST}
    acc = nb201.values("accuracy")
    assert (acc == 10.0).sum() == 341  # cells with no input-output path: valid, at chance
    assert nb201.value("|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|", "accuracy") == pytest.approx(60.7836)
    r = nb201(NB201Space().parse(BEST))
    assert r.cost == 1.0 and {"ptq_accuracy", "analog_accuracy", "analog_drift_30d"} <= set(r.metrics)


def test_embedded_nb201_mapping_is_the_official_order(nb201):
    """Cells whose output is unreachable must be the 10 % cells (a check of the edge-position mapping)."""
    space = NB201Space()
    for key in nb201.keys[:3000]:
        ops = space.parse(key)
        to3 = [ops[3], ops[4], ops[5]]  # edges into the output from nodes 0, 1, 2
        reach1 = ops[0] != "none"
        reach2 = ops[1] != "none" or (reach1 and ops[2] != "none")
        reaches = to3[0] != "none" or (reach1 and to3[1] != "none") or (reach2 and to3[2] != "none")
        if not reaches:
            assert nb201.value(key, "accuracy") == 10.0


def _write_csv(path, rows, header=("arch", "val_acc", "train_time")):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")


def test_user_csv_table(tmp_path, rng):
    space = NB201Space()
    archs = {space.format(space.sample(rng)) for _ in range(50)}
    rows = [(a, float(i), 10 + i) for i, a in enumerate(sorted(archs))]
    p = tmp_path / "t.csv"
    _write_csv(p, rows)
    b = csv_benchmark(p, cost_column="train_time")
    assert b.default_metric == "val_acc" and b.metrics["train_time"].mode == "min"
    best_value, keys = b.optimum(b.objective())
    assert best_value == len(rows) - 1 and keys == {rows[-1][0]}
    r = b(space.parse(rows[3][0]))
    assert r.metrics["val_acc"] == 3.0 and r.cost == 13
    missing = next(a for a in space.enumerate() if space.format(a) not in archs)
    assert b(missing).status == "failed"


def test_user_csv_errors(tmp_path):
    p = tmp_path / "bad.csv"
    _write_csv(p, [("x", 1, 2)], header=("name", "acc", "t"))
    with pytest.raises(NasagentError, match="no column holds NB201 architecture strings"):
        csv_benchmark(p)
    with pytest.raises(NasagentError, match="has no column 'arch'"):
        csv_benchmark(p, arch_column="arch")
    p2 = tmp_path / "ok.csv"
    _write_csv(p2, [(BEST, 1, 2)])
    b = csv_benchmark(p2)
    with pytest.raises(NasagentError, match="has no metric 'accuracy'; it has: val_acc, train_time"):
        b.objective("accuracy")
    with pytest.raises(NasagentError, match="does not exist"):
        csv_benchmark(tmp_path / "nope.csv")
    p3 = tmp_path / "malformed.csv"
    _write_csv(p3, [(BEST, 1, 2), ("|nor_conv_3x3~0|+|bad~0|nor_conv_3x3~1|+|none~0|none~1|none~2|", 1, 2)])
    with pytest.raises(NasagentError, match="line 3.*unknown op 'bad'"):
        csv_benchmark(p3, arch_column="arch")
    with pytest.raises(NasagentError, match="line 3.*unknown op 'bad'"):  # a column named arch is taken as such
        csv_benchmark(p3)
    other = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|none~2|"
    spreadsheet = tmp_path / "excel.csv"  # a byte-order mark, a blank (missing) value and a text column
    spreadsheet.write_text(f"arch,val_acc,note\n{BEST},,first\n{other},50.5,second\n", encoding="utf-8-sig")
    b = csv_benchmark(spreadsheet)
    assert list(b.metrics) == ["val_acc"] and b(NB201Space().parse(other)).metrics["val_acc"] == 50.5
    assert b.optimum(b.objective())[0] == 50.5  # the blank one is missing, not a zero
    for text, fragment in [(f"arch,val_acc\n{BEST},1\n{other},n/a\n", "line 3: column 'val_acc' holds 'n/a'"),
                           (f"arch,val_acc,val_acc\n{BEST},1,2\n", "column 'val_acc' twice"),
                           (f"arch,val_acc,\n{BEST},1,2\n", "an empty column name")]:
        spreadsheet.write_text(text)
        with pytest.raises(NasagentError, match=fragment):
            csv_benchmark(spreadsheet)


def test_nbgraph_tables():
    b = nbgraph_benchmark("cora")
    assert len(b) == 26206 and b.default_metric == "valid_perf"
    assert b.metrics["valid_perf"].report == "test_perf"
    arch = b.space.sample(np.random.default_rng(1))
    r = b(arch)
    assert set(r.metrics) == {"valid_perf", "test_perf", "latency", "params"}
    assert len(nbgraph_benchmark("proteins")) == 2021
    with pytest.raises(NasagentError, match="unknown NAS-Bench-Graph dataset 'imdb'"):
        nbgraph_benchmark("imdb")


def _nb101_record(space, cell, epochs, val, test, t=100.0, params=1000):
    n = cell.n_nodes
    adj = "".join(str(v) for row in cell.matrix for v in row)
    ev = [{"epoch": 0.0, "training_time": 0.0, "train_accuracy": 0.1, "validation_accuracy": 0.1, "test_accuracy": 0.1},
          {"epoch": float(epochs), "training_time": t, "train_accuracy": 1.0, "validation_accuracy": val, "test_accuracy": test}]
    metrics = base64.b64encode(encode_model_metrics(ev, params, t)).decode()
    assert len(adj) == n * n
    return json.dumps([space.key(cell), epochs, adj, ",".join(cell.ops), metrics]).encode()


def test_nb101_tfrecord_reader(tmp_path, rng):
    space = NB101Space()
    cells = {space.key(c): c for c in (space.sample(rng) for _ in range(40))}
    cells = list(cells.values())
    payloads = []
    for i, c in enumerate(cells):
        for rep in range(3):  # three repeats, averaged by the reader
            payloads.append(_nb101_record(space, c, 108, 0.5 + i / 100 + rep / 1000, 0.4 + i / 100))
        payloads.append(_nb101_record(space, c, 36, 0.1, 0.1))
    path = tmp_path / "mini.tfrecord"
    write_records(path, payloads)
    b = nb101_benchmark(path, cache=False)
    assert len(b) == len(cells)
    r = b(cells[5])
    assert r.metrics["valid_accuracy"] == pytest.approx(0.5 + 5 / 100 + 0.001)
    assert r.metrics["test_accuracy"] == pytest.approx(0.45) and r.cost == pytest.approx(100.0)
    value, keys = b.optimum(b.objective())
    assert keys == {space.key(cells[-1])}
    # the parsed table is cached and the cache gives the same table
    b1 = nb101_benchmark(path)
    b2 = nb101_benchmark(path)
    assert b2.keys == b1.keys and np.allclose(b2.values("valid_accuracy"), b1.values("valid_accuracy"))
    # the <=6-node view keeps only small cells
    b6 = nb101_benchmark(path, max_nodes=6, cache=False)
    assert all(len(c.ops) <= 6 for c in cells if space.key(c) in b6.index)
    with pytest.raises(NasagentError, match="no results at 12 epochs; epochs present: \\[36, 108\\]"):
        nb101_benchmark(path, epochs=12, cache=False)


def test_nb101_tfrecord_rejects_foreign_and_corrupt_files(tmp_path):
    foreign = tmp_path / "x.tfrecord"
    foreign.write_bytes(b"this is not a tfrecord file at all")
    with pytest.raises(NasagentError, match="not a TFRecord"):
        nb101_benchmark(foreign, cache=False)
    wrong = tmp_path / "y.tfrecord"
    write_records(wrong, [b'{"not": "nb101"}'])
    with pytest.raises(NasagentError, match="not an NB101 record"):
        nb101_benchmark(wrong, cache=False)
    with pytest.raises(NasagentError, match="does not exist"):
        nb101_benchmark(tmp_path / "missing.tfrecord")


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_shifted_functions_have_their_minimum_at_the_shifted_point(name):
    b = FunctionBenchmark(name, 10, shift_seed=3)
    assert b.f(b.optimum_x) == pytest.approx(0.0, abs=1e-9)
    centre = (b.space.lower + b.space.upper) / 2
    assert b.f(centre) > 1e-3
    native = np.full(10, FUNCTIONS[name].native_optimum)
    assert b.f(native) > 1e-3  # the unshifted optimum is no longer optimal
    assert np.all(b.optimum_x >= b.space.lower) and np.all(b.optimum_x <= b.space.upper)
    other = FunctionBenchmark(name, 10, shift_seed=4)
    assert not np.allclose(other.optimum_x, b.optimum_x)
    assert b.optimum(b.objective()) == (0.0, frozenset())


def test_registry_builds_benchmarks_by_name():
    assert make_benchmark("ackley-7").space.dim == 7
    assert isinstance(make_benchmark("nbgraph/citeseer"), TableBenchmark)
    with pytest.raises(NasagentError, match="unknown benchmark 'nb999'"):
        make_benchmark("nb999")
    with pytest.raises(NasagentError, match="needs a table file"):
        make_benchmark("nb201-csv")
