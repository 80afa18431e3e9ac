import numpy as np
import pytest

from nasagent.core import NasagentError
from nasagent.spaces.nb101 import (
    INPUT,
    OPS,
    OUTPUT,
    NB101Space,
    count_cells,
    enumerate_cells,
    graph_hash,
    hash_labels,
    prune,
)

S = NB101Space()


def _permute(matrix, ops, perm):
    """Relabel nodes: node v becomes perm[v] (input and output stay put)."""
    m = np.asarray(matrix)
    n = len(ops)
    out = np.zeros_like(m)
    new_ops = [None] * n
    for v in range(n):
        new_ops[perm[v]] = ops[v]
        for w in range(n):
            out[perm[v], perm[w]] = m[v, w]
    return out, new_ops


def test_counts_match_the_nb101_oracles():
    assert count_cells(6) == 64542  # the AlphaX subspace (<= 6 nodes)
    assert count_cells(7) == 423624  # the full NB101 space
    assert S.size() == 423624
    assert NB101Space(max_nodes=2).size() == 1


def test_enumerated_cells_are_valid_and_pairwise_non_isomorphic():
    cells = list(enumerate_cells(6))
    assert len(cells) == 64542
    keys = {S.key(c) for c in cells}
    assert len(keys) == len(cells)  # no two enumerated cells share the NB101 hash
    for c in cells[::997]:
        assert S.make(c.matrix, c.ops) == c  # already pruned and within limits
        assert c.n_edges <= 9 and c.n_nodes <= 6


@pytest.mark.slow
def test_full_space_hashes_are_unique():
    seen = set()
    n = 0
    for c in enumerate_cells(7):
        seen.add(S.key(c))
        n += 1
    assert n == len(seen) == 423624


def test_isomorphic_cells_share_a_key(rng):
    for _ in range(20):
        c = S.sample(rng)
        n = c.n_nodes
        interior = list(range(1, n - 1))
        perm = [0] + list(rng.permutation(interior)) + [n - 1]
        m2, ops2 = _permute(c.matrix, c.ops, perm)
        assert graph_hash(m2, hash_labels(tuple(ops2))) == S.key(c)


def test_different_ops_give_different_keys():
    m = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    a = S.make(m, [INPUT, OPS[0], OUTPUT])
    b = S.make(m, [INPUT, OPS[1], OUTPUT])
    assert S.key(a) != S.key(b)


def test_pruning_drops_nodes_off_the_path():
    m = np.zeros((5, 5), int)
    m[0, 1] = m[1, 4] = 1  # path through node 1
    m[0, 2] = 1  # node 2: dead end (no way to the output)
    m[3, 4] = 1  # node 3: unreachable from the input
    cell = S.make(m, [INPUT, "conv3x3", "conv1x1", "maxpool", OUTPUT])
    assert cell.ops == (INPUT, OPS[0], OUTPUT)
    assert cell.matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert prune(np.zeros((3, 3), int), [INPUT, OPS[0], OUTPUT]) is None


@pytest.mark.parametrize(
    "matrix, ops, fragment",
    [
        ([[0, 0], [0, 0]], [INPUT, OUTPUT], "no path"),
        ([[0, 1], [1, 0]], [INPUT, OUTPUT], "upper-triangular"),
        ([[0, 1, 0], [0, 0, 1], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT], "unknown NB101 op 'conv5x5'"),
        ([[0, 1], [0, 0]], ["conv3x3", OUTPUT], "start with 'input'"),
    ],
)
def test_bad_cells_are_rejected_with_a_reason(matrix, ops, fragment):
    with pytest.raises(NasagentError, match=fragment):
        S.make(matrix, ops)


def test_too_many_edges_rejected():
    n = 7
    m = np.triu(np.ones((n, n), int), 1)  # 21 edges
    with pytest.raises(NasagentError, match="21 edges"):
        S.make(m, [INPUT] + ["conv3x3"] * 5 + [OUTPUT])


def test_text_round_trip_and_errors(rng):
    for _ in range(30):
        c = S.sample(rng)
        assert S.parse(S.format(c)) == c
    with pytest.raises(NasagentError, match="expected 'input"):
        S.parse("garbage")
    with pytest.raises(NasagentError, match="rows must be"):
        S.parse("input|output;01,0")


def test_sampler_and_neighbors_stay_in_space(rng):
    small = NB101Space(max_nodes=5, max_edges=6)
    for _ in range(30):
        c = small.sample(rng)
        assert c.n_nodes <= 5 and c.n_edges <= 6
        nbrs = small.neighbors(c)
        assert nbrs, "every cell has neighbours"
        keys = {small.key(x) for x in nbrs}
        assert len(keys) == len(nbrs) and small.key(c) not in keys
        for x in nbrs:
            assert x.n_nodes <= 5 and x.n_edges <= 6


def test_encoding_fixed_length(rng):
    v = S.encode(S.sample(rng))
    assert v.shape == (21 + 15,)


def test_alphax_digits_are_adjacency_then_node_list():
    m = [[0, 1, 1], [0, 0, 1], [0, 0, 0]]
    a = S.make(m, [INPUT, OPS[2], OUTPUT])
    d = S.encode_digits(a)
    assert d.shape == (56,)
    adj = d[:49].reshape(7, 7)
    assert adj[0, 1] == 1 and adj[0, 6] == 1 and adj[1, 6] == 1 and adj.sum() == 3  # output moved to the last node
    assert list(d[49:]) == [1, 4, 0, 0, 0, 0, 5]
    b = S.make(m, [INPUT, OPS[0], OUTPUT])
    assert (S.encode_digits(b) != d).sum() == 1  # one op changed: one digit changed


def test_sequential_actions_build_valid_cells(rng):
    for _ in range(20):
        state = S.root()
        assert ("term",) not in S.actions(state)  # the empty cell has no path yet
        steps = 0
        while not S.is_terminal(state):
            acts = S.actions(state)
            # prefer edges so walks terminate with a path
            state = S.step(state, acts[int(rng.integers(len(acts)))])
            steps += 1
            assert steps < 200
        cell = S.to_arch(state)
        assert cell.n_nodes <= 7 and cell.n_edges <= 9


def test_random_playouts_are_never_stranded():
    """A uniformly random construction always ends: the last edge allowed must leave an input -> output path.
    (Without that rule 10 of these 3,000 seeded playouts on nb101-6 reached both limits with no path and no action.)"""
    space = NB101Space(max_nodes=6)
    rng = np.random.default_rng(7)
    for _ in range(3000):
        state = space.root()
        while not space.is_terminal(state):
            acts = space.actions(state)
            assert acts, f"no action in the non-terminal state {state}"
            state = space.step(state, acts[int(rng.integers(len(acts)))])
        cell = space.to_arch(state)
        assert cell.n_nodes <= 6 and cell.n_edges <= 9


def test_the_last_edge_must_make_a_path():
    space = NB101Space(max_nodes=6)
    # six nodes, eight edges, none reaching the output: 0->1->2->3->4 plus 0->2, 0->3, 1->3, 1->4
    m = np.zeros((6, 6), dtype=int)
    for i, j in ((0, 1), (1, 2), (2, 3), (3, 4), (0, 2), (0, 3), (1, 3), (1, 4)):
        m[i, j] = 1
    state = (tuple(map(tuple, m.tolist())), ("input", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3", "conv3x3-bn-relu", "output"), False)
    edges = {a[1:] for a in space.actions(state) if a[0] == "edge"}
    assert edges == {(i, 5) for i in range(5)}  # only edges into the output complete a path (node 4 is reached)
    assert ("term",) not in space.actions(state) and not any(a[0] == "node" for a in space.actions(state))
    m[1, 4], m[4, 5] = 0, 1  # still eight edges, now with a path: every free slot is offered again
    state = (tuple(map(tuple, m.tolist())), state[1], False)
    assert len([a for a in space.actions(state) if a[0] == "edge"]) == 15 - 8 and ("term",) in space.actions(state)
