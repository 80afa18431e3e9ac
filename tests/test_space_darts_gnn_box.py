import numpy as np
import pytest

from nasagent.core import NasagentError
from nasagent.spaces.box import BoxSpace
from nasagent.spaces.darts import DartsSpace
from nasagent.spaces.gnn import NBGraphSpace

D = DartsSpace()
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)


def test_darts_genotype_round_trip(rng):
    g = D.parse(DARTS_V2)
    assert D.parse(D.format(g)) == g
    assert D.parse(DARTS_V2.replace("[2, 3, 4, 5]", "range(2, 6)")) == g
    for _ in range(20):
        a = D.sample(rng)
        assert D.parse(D.format(a)) == a


def test_darts_input_order_does_not_change_the_key():
    swapped = DARTS_V2.replace("('sep_conv_3x3', 1), ('skip_connect', 0)", "('skip_connect', 0), ('sep_conv_3x3', 1)")
    assert swapped != DARTS_V2
    assert D.key(D.parse(swapped)) == D.key(D.parse(DARTS_V2))


@pytest.mark.parametrize(
    "text, fragment",
    [
        (DARTS_V2.replace("dil_conv_3x3", "conv_7x7"), "unknown op 'conv_7x7'"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "input 5"),
        (DARTS_V2.replace("('sep_conv_3x3', 1), ('sep_conv_3x3', 0)", "('sep_conv_3x3', 0), ('sep_conv_3x3', 0)", 1), "twice"),
        ("normal=[]", "Genotype"),
    ],
)
def test_darts_errors(text, fragment):
    with pytest.raises(NasagentError, match=fragment):
        D.parse(text)


def test_darts_none_only_with_flag():
    text = DARTS_V2.replace("dil_conv_3x3", "none")
    with pytest.raises(NasagentError):
        D.parse(text)
    assert DartsSpace(include_none=True).parse(text)


def test_darts_sequential_and_neighbors(rng):
    state = D.root()
    while not D.is_terminal(state):
        acts = D.actions(state)
        if len(state) % 2 == 1:
            assert all(j != state[-1][1] for _, j in acts)  # the second input differs from the first
        state = D.step(state, acts[int(rng.integers(len(acts)))])
    g = D.to_arch(state)
    assert D.validate(g) == g
    nb = D.neighbors(g)
    assert nb and all(D.key(n) != D.key(g) for n in nb)
    assert D.encode(g).shape == (2 * 4 * 5 * 7,)


def test_gnn_space_matches_the_package_tables():
    import nas_bench_graph

    space = NBGraphSpace()
    assert space.size() == 26206
    assert {space.key(a) for a in space.enumerate()} == {str(k) for k in nas_bench_graph.light_read("cora")}
    prot = NBGraphSpace(proteins=True)
    assert {prot.key(a) for a in prot.enumerate()} == {str(k) for k in nas_bench_graph.light_read("proteins")}


def test_gnn_canonical_forms_and_errors(rng):
    space = NBGraphSpace()
    a = space.sample(rng)
    assert space.parse(space.format(a)) == a
    # a non-canonical wiring maps to the same architecture as its canonical twin
    twin = space.canonical((0, 0, 0, 2), ("gcn", "gat", "sage", "gin"))
    assert space.key(twin) == space.key(space.canonical((0, 0, 0, 1), ("gat", "gcn", "sage", "gin")))
    with pytest.raises(NasagentError, match="unknown NAS-Bench-Graph op"):
        space.parse("0,0,1,2|gcn,gcn,gcn,transformer")
    with pytest.raises(NasagentError, match="only 'skip'"):
        space.parse("0,0,1,2|skip,skip,skip,skip")
    for n in space.neighbors(a):
        assert space.key(n) != space.key(a)
    state = space.root()
    while not space.is_terminal(state):
        acts = space.actions(state)
        state = space.step(state, acts[int(rng.integers(len(acts)))])
    assert space.key(space.to_arch(state)) in {space.key(x) for x in space.enumerate()}


def test_box_validation_and_mutation(rng):
    with pytest.raises(NasagentError, match="low >= high in dimension 1"):
        BoxSpace([0, 2], [1, 1])
    b = BoxSpace([-1, 0], [1, 5])
    x = b.sample(rng)
    assert b.parse(b.format(x)) == x
    with pytest.raises(NasagentError, match="outside"):
        b.validate([2.0, 1.0])
    with pytest.raises(NasagentError, match="NaN"):
        b.validate([float("nan"), 1.0])
    for _ in range(20):
        y = b.mutate(x, rng)
        assert all(lo <= v <= hi for v, lo, hi in zip(y, b.lower, b.upper))
    assert np.allclose(b.decode(b.encode(x)), x)
    with pytest.raises(NasagentError, match="sequential"):
        b.root()


def test_every_space_refuses_what_is_not_an_architecture_in_one_line():
    from nasagent.registry import SPACES, make_space

    for name in [*SPACES, "box-3"]:
        sp = make_space(name)
        for bad in (None, 3, "???") + (() if name == "convnet" else ("",)):  # convnet's "" is its empty network
            with pytest.raises(NasagentError):
                sp.validate(bad)
        with pytest.raises(NasagentError):
            sp.parse("\u00b2")
        a = sp.sample(np.random.default_rng(0))
        assert sp.key(sp.validate(sp.format(a))) == sp.key(a), name  # the text form is accepted everywhere


def test_darts_refuses_a_boolean_input_and_mobilenet_edits_change_the_network():
    from nasagent.benchmarks.functions import FunctionBenchmark
    from nasagent.registry import make_space

    sp = DartsSpace()
    text = sp.format(sp.sample(np.random.default_rng(0)))
    with pytest.raises(NasagentError, match="input True"):
        sp.parse(text.replace(", 1)", ", True)", 1))
    mb = make_space("mobilenet-v3-like-tiny")
    rng = np.random.default_rng(1)
    for _ in range(5):
        a = mb.sample(rng)
        keys = [mb.key(n) for n in mb.neighbors(a)]
        assert len(keys) == len(set(keys)) and mb.key(a) not in keys
        assert all(mb.key(mb.mutate(a, rng)) != mb.key(a) for _ in range(50))
    state = mb.root()
    while not mb.is_terminal(state):
        state = mb.step(state, mb.actions(state)[0])
    assert mb.actions(state) == []
    with pytest.raises(NasagentError, match="not allowed"):
        mb.step(mb.root(), 99)
    with pytest.raises(NasagentError, match="shift_seed"):
        FunctionBenchmark("ackley", 3, shift_seed=-1)


def test_the_guard_leaves_static_parsers_alone_and_keeps_the_cause():
    import pickle

    from nasagent.registry import make_space
    from nasagent.spaces.nb201 import NB201Space

    class Plugin(BoxSpace):
        @staticmethod
        def parse(text):  # a plug-in space may write its parser as a static method
            return tuple(float(v) for v in text.split(","))

    sp = Plugin([0.0, 0.0], [1.0, 1.0])
    assert sp.parse("0.5,0.25") == (0.5, 0.25)
    with pytest.raises(NasagentError) as info:
        make_space("lanas-cell").parse("\u00b2")  # int() of a unicode digit raises ValueError inside
    assert isinstance(info.value.__cause__, ValueError)  # the original error stays attached for debugging
    assert NB201Space.parse.__wrapped__ is not None and pickle.loads(pickle.dumps(NB201Space.parse)) is NB201Space.parse
