import itertools

import numpy as np
import pytest

from nasagent.core import NasagentError
from nasagent.spaces.nb201 import OPS, NB201Space

S = NB201Space()
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


def test_round_trip_every_cell():
    seen = set()
    for ops in itertools.product(OPS, repeat=6):
        s = S.format(ops)
        assert S.parse(s) == ops
        seen.add(s)
    assert len(seen) == 15625 == S.size()


def test_official_string_layout():
    arch = S.parse(BEST)
    # official edge order (1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2)
    assert arch == ("nor_conv_3x3", "nor_conv_3x3", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "3 node groups"),
        ("|conv~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|", "edge 1<-0 has unknown op 'conv'"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~2|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|", "edge 2<-1"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|", "node 2 needs 2"),
    ],
)
def test_malformed_strings_name_the_problem(bad, fragment):
    with pytest.raises(NasagentError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        S.parse(bad)


def test_neighbors_are_all_one_edit_away(rng):
    a = S.sample(rng)
    nbrs = S.neighbors(a)
    assert len(nbrs) == 24 == len(set(nbrs))
    for n in nbrs:
        assert sum(x != y for x, y in zip(a, n)) == 1
    for _ in range(50):
        m = S.mutate(a, rng)
        assert sum(x != y for x, y in zip(a, m)) == 1


def test_sequential_construction_reaches_every_op_choice(rng):
    state = S.root()
    while not S.is_terminal(state):
        acts = S.actions(state)
        assert acts == list(OPS)
        state = S.step(state, acts[int(rng.integers(len(acts)))])
    assert len(S.to_arch(state)) == 6 and S.actions(state) == []


def test_encoding_is_one_hot_per_edge(rng):
    v = S.encode(S.sample(rng))
    assert v.shape == (30,)
    assert np.all(v.reshape(6, 5).sum(1) == 1)


def test_iso_key_merges_equivalent_cells_only():
    # a 'none' edge into a node that feeds nothing is irrelevant: both cells compute conv3x3(x) at the output
    a = ("none", "none", "none", "nor_conv_3x3", "none", "none")
    b = ("nor_conv_1x1", "none", "none", "nor_conv_3x3", "none", "none")  # node 1 is a dead end
    c = ("none", "none", "none", "nor_conv_1x1", "none", "none")
    assert S.iso_key(a) == S.iso_key(b)
    assert S.iso_key(a) != S.iso_key(c)
    # every cell with no input-output path is one function (zero)
    assert S.iso_key(("none",) * 6) == S.iso_key(("nor_conv_3x3", "none", "none", "none", "none", "none"))
    # the 15,625 strings collapse to fewer labelled-graph classes (NB201 counts 6,466 when it also merges skips)
    keys = {S.iso_key(ops) for ops in itertools.product(OPS, repeat=6)}
    assert 5000 < len(keys) < 15625
