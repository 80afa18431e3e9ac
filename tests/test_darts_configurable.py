"""DARTS cell spaces of another size or op list (PARSEC brief §9 item 1): ``DartsSpace(n_nodes=N, ops=[...])``.
The size formula against an exhaustive enumeration, the text form, networks and the graph encoding of such
cells, PARSEC searching one end to end, and the errors around them."""

import numpy as np
import pytest

from nasagent.core import Budget, NasagentError
from nasagent.spaces.darts import DartsGenotype, DartsSpace

torch = pytest.importorskip("torch")

from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402
from nasagent.evaluation.networks import build  # noqa: E402
from nasagent.evaluation.parsec_search import ParsecSearch  # noqa: E402
from nasagent.evaluation.predictors.graphs import darts_graph  # noqa: E402
from nasagent.evaluation.train import TrainingBenchmark  # noqa: E402

THREE = DartsSpace(n_nodes=3, ops=("skip_connect", "sep_conv_3x3", "max_pool_3x3"))


def _all_cells(space):
    """Every terminal state of the sequential interface, as distinct keys (the pair order of a node is free)."""
    keys = set()

    def walk(state):
        if space.is_terminal(state):
            keys.add(space.key(space.to_arch(state)))
            return
        for a in space.actions(state):
            walk(space.step(state, a))

    walk(space.root())
    return keys


def test_size_formula_matches_exhaustive_enumeration():
    small = DartsSpace(n_nodes=2, ops=("skip_connect", "avg_pool_3x3"))
    # per cell: node 0 picks {0, 1} with 2 x 2 ops = 4; node 1 picks 2 of 3 inputs with 4 op pairs = 12
    assert small.size() == (4 * 12) ** 2
    assert len(_all_cells(small)) == small.size()
    assert DartsSpace().size() == (1 * 49 * 3 * 49 * 6 * 49 * 10 * 49) ** 2  # DARTS' own count is unchanged


def test_text_round_trip_and_node_count_checks():
    rng = np.random.default_rng(0)
    for _ in range(20):
        arch = THREE.sample(rng)
        assert len(arch.normal) == 6 and {op for op, _ in arch.normal + arch.reduce} <= set(THREE.ops)
        text = THREE.format(arch)
        assert "normal_concat=[2, 3, 4]" in text and THREE.parse(text) == arch
        assert DartsSpace.for_genotype(text).n_nodes == 3 and DartsSpace.for_genotype(arch).n_nodes == 3
        assert len(THREE.encode(arch)) == 2 * 3 * 4 * 3
    assert THREE.parse(THREE.format(arch).replace("[2, 3, 4]", "range(2, 5)")) == arch
    four = DartsSpace().sample(rng)
    with pytest.raises(NasagentError, match=r"concat must be \[2, 3, 4\] for 3 nodes"):
        THREE.parse(DartsSpace().format(four))
    with pytest.raises(NasagentError, match="needs 6 .op, input. pairs"):
        THREE.validate(four)
    with pytest.raises(NasagentError, match="unknown op 'dil_conv_5x5'"):
        THREE.validate(DartsGenotype(normal=(("dil_conv_5x5", 0), ("skip_connect", 1)) * 3, reduce=four.reduce[:6]))


@pytest.mark.parametrize("bad", [{"n_nodes": 0}, {"n_nodes": 2.5}, {"ops": ["sep_conv_3x3", "conv_9x9"]}, {"ops": []},
                                 {"ops": ["skip_connect", "skip_connect"]}])
def test_bad_space_options_are_named(bad):
    with pytest.raises(NasagentError, match="n_nodes|ops"):
        DartsSpace(**bad)


def test_networks_and_graphs_follow_the_node_count():
    arch = THREE.sample(np.random.default_rng(3))
    net = build(arch, num_classes=10, input_shape=(1, 8, 8), C=4, layers=3)
    assert all(c.n_nodes == 3 for c in net.cells)
    assert net.classifier.in_features == 3 * 4 * 4  # 3 nodes concatenated, channels doubled twice
    assert net(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    adj, labels = darts_graph(arch)
    assert adj.shape == (2 * (2 + 6 + 3 + 1),) * 2 and labels.count("normal:add") == 3
    out = labels.index("normal:output")
    assert adj[:, out].sum() == 3 and all(labels[i] == "normal:add" for i in np.flatnonzero(adj[:, out]))


def test_parsec_searches_a_three_node_space_and_its_cells_train():
    data = subsample(load_dataset("digits"), 0.1)
    s = ParsecSearch(space=THREE, K=2, C=4, layers=3, batch_size=32, device="cpu")
    s.fit(data, Budget(evaluations=1))
    assert s.dist.P == 3 and s.dist.n_nodes == 3 and s.history[0]["entropy"] < s.dist.max_entropy()
    props = s.propose(3)
    assert all(len(p.normal) == 6 and {op for op, _ in p.normal + p.reduce} <= set(THREE.ops) for p in props)
    bench = TrainingBenchmark(data, space=THREE, epochs=1, batch_size=64, C=4, layers=3, measure=False)
    assert bench(props[0]).metrics["val_accuracy"] >= 0.0
    with pytest.raises(NasagentError, match="no 'none' op"):
        ParsecSearch(space=DartsSpace(include_none=True))


def test_the_darts_relaxation_refuses_other_node_counts_and_the_supernet_takes_them():
    from nasagent.evaluation.darts_search import DartsSearch
    from nasagent.evaluation.supernet import DartsRegions

    with pytest.raises(NasagentError, match="4-node cell, not 3 nodes"):
        DartsSearch(space=THREE)
    regions = DartsRegions(THREE)
    full = regions.full_region()
    assert len(full["normal"]) == 2 + 3 + 4  # compound edges of a 3-node cell
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = regions.sample(full, rng)
        assert THREE.validate(arch) == arch and regions.contains(full, arch)
