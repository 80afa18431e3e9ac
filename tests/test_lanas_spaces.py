"""LaNAS' own spaces: the supernet cells (thesis 4.2.3: 30 integers, the 20 x 4 mask, the masked supernet) and ConvNet-60K."""

import itertools
import math

import numpy as np
import pytest

from nasagent.core import NasagentError
from nasagent.registry import make_space
from nasagent.spaces.darts import DartsGenotype, _canonical
from nasagent.spaces.lanas_cell import EDGE_ROW, EDGES, LANAS_OPS, PAIRS, LaNASCellSpace

SEP3, SEP5, MAX3, SKIP = LANAS_OPS


def _cell(nodes):
    """A cell from five ((op, input), (op, input)) pairs."""
    return _canonical(tuple(e for pair in nodes for e in pair))


#: node 0 takes input 0 twice with two ops, node 1 input 1 twice with the same op, the rest distinct inputs
NORMAL = _cell([((SEP3, 0), (MAX3, 0)), ((SKIP, 1), (SKIP, 1)), ((SEP5, 0), (SEP3, 3)), ((MAX3, 2), (SKIP, 4)), ((SEP3, 1), (SEP5, 5))])
REDUCE = _cell([((SEP3, 0), (SEP5, 1)), ((MAX3, 0), (SKIP, 2)), ((SEP3, 1), (SEP3, 2)), ((SKIP, 0), (SKIP, 0)), ((MAX3, 3), (SEP5, 4))])
ARCH = DartsGenotype(NORMAL, REDUCE)


def test_integer_encoding_has_the_thesis_ranges_and_round_trips():
    sp = make_space("lanas-cell")
    assert [len(p) for p in PAIRS] == [3, 6, 10, 15, 21]  # C(k+1, 1) + C(k+1, 2) for nodes k = 1..5
    assert len(EDGES) == 20
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = sp.sample(rng)
        v = sp.to_integers(a)
        assert v.shape == (30,)
        for c in range(2):
            conn, ops = v[15 * c : 15 * c + 5], v[15 * c + 5 : 15 * c + 15]
            assert all(1 <= conn[i] <= len(PAIRS[i]) for i in range(5))
            assert ops.min() >= 1 and ops.max() <= 4
        assert sp.from_integers(v) == a
        assert sp.parse(" ".join(map(str, v))) == a and sp.parse(str(v.tolist())) == a
        assert sp.parse(sp.format(a)) == a
        assert np.array_equal(sp.encode(a), v)
    # the hand-made cell: node 0 takes input 0 twice (pair 1), node 2's pair (0, 3) is distinct pair index 4 + 2
    v = sp.to_integers(ARCH)
    assert v[0] == 1 and v[1] == 2 and v[2] == 4 + 2 + 1


def test_mask_rows_count_ops_per_compound_edge():
    sp = LaNASCellSpace()
    m = sp.to_mask(ARCH)
    assert m.shape == (2, 20, 4) and m[0].sum() == 10 and m[1].sum() == 10
    row = m[0, EDGE_ROW[(0, 0)]]
    assert row.tolist() == [1, 0, 1, 0]  # input 0 twice, sep_conv_3x3 and max_pool_3x3: two ones on one row
    assert m[0, EDGE_ROW[(0, 1)]].sum() == 0  # the unused edge of node 0 is all zeros
    assert m[0, EDGE_ROW[(1, 1)]].tolist() == [0, 0, 0, 2]  # skip_connect twice on the same input
    assert m[0, EDGE_ROW[(2, 3)]].tolist() == [1, 0, 0, 0]  # a distinct input: a one-hot row (the thesis' case)
    assert (m[0].sum(axis=1) > 0).sum() == 8  # 10 choices on 8 distinct edges
    assert np.array_equal(LaNASCellSpace(encoding="mask").encode(ARCH), m.ravel())
    # a distinct-input cell's mask has exactly 10 one-hot rows, as the thesis describes it
    distinct = _cell([((SEP3, 0), (SEP5, 1)), ((MAX3, 0), (SKIP, 2)), ((SEP3, 1), (SEP3, 2)), ((SKIP, 0), (SKIP, 4)), ((MAX3, 3), (SEP5, 5))])
    md = sp.to_mask(DartsGenotype(distinct, distinct))[0]
    assert sorted(md.sum(axis=1).tolist()) == [0] * 10 + [1] * 10 and md.max() == 1


def test_size_counts_distinct_cells_and_the_thesis_counts_encodings():
    sp = LaNASCellSpace()
    per_cell = 1
    for node in range(5):  # brute force: the distinct canonical (op, input) pairs a node can hold
        choices = {_canonical(((o1, a), (o2, b))) for a, b in PAIRS[node] for o1, o2 in itertools.product(LANAS_OPS, repeat=2)}
        per_cell *= len(choices)
    assert sp.size() == per_cell**2
    encodings = (math.prod(len(p) for p in PAIRS) * 4**10) ** 2
    assert f"{encodings:.2e}" == "3.53e+21"  # the thesis' |Omega|
    assert sp.size() < encodings  # two op orders on a repeated input are the same network


def test_sampling_is_uniform_over_the_integers():
    sp = LaNASCellSpace()
    rng = np.random.default_rng(1)
    conn = np.array([sp.to_integers(sp.sample(rng))[4] for _ in range(4200)])  # node 5's integer, 21 values
    counts = np.bincount(conn, minlength=22)[1:]
    assert counts.min() > 200 - 4 * math.sqrt(200) and counts.max() < 200 + 4 * math.sqrt(200)
    assert counts[:6].sum() > 0  # repeated inputs (integers 1..6) are drawn


def test_neighbors_are_one_edit_away_and_valid():
    sp = LaNASCellSpace()
    nb = sp.neighbors(ARCH)
    assert len(nb) == len(set(nb)) > 0 and ARCH not in nb
    assert all(sp.edit_distance(ARCH, b) == 1 and sp.validate(b) == b for b in nb)
    # changing an input of node 0 to make it take input 0 twice is a neighbour (repetition is allowed)
    twice = DartsGenotype(NORMAL, _cell([((SEP3, 0), (SEP5, 0)), ((MAX3, 0), (SKIP, 2)), ((SEP3, 1), (SEP3, 2)),
                                         ((SKIP, 0), (SKIP, 0)), ((MAX3, 3), (SEP5, 4))]))
    assert twice in nb
    state = sp.step(sp.root(), (SEP3, 0))  # the sequential interface lets the second slot take input 0 again
    assert (MAX3, 0) in sp.actions(state) and len(sp.actions(state)) == 2 * 4


def test_bad_input_is_named():
    sp = LaNASCellSpace()
    v = sp.to_integers(ARCH)
    bad = v.copy()
    bad[4] = 22
    with pytest.raises(NasagentError, match="connectivity integer 22 is outside 1..21"):
        sp.from_integers(bad)
    bad = v.copy()
    bad[20] = 5
    with pytest.raises(NasagentError, match="op integer 5 is outside 1..4"):
        sp.from_integers(bad)
    with pytest.raises(NasagentError, match="30 integers"):
        sp.from_integers(v[:15])
    with pytest.raises(NasagentError, match="expected a Genotype"):
        sp.parse("three, one")
    with pytest.raises(NasagentError, match="unknown op 'dil_conv_3x3'"):
        sp.validate(DartsGenotype(((("dil_conv_3x3", 0),) + NORMAL[1:]), REDUCE))
    with pytest.raises(NasagentError, match="encoding must be one of"):
        LaNASCellSpace(encoding="onehot")


def test_lanas_searches_the_space_with_valid_distinct_proposals():
    from nasagent.core import Result
    from nasagent.registry import make_strategy

    sp = make_space("lanas-cell")
    w = np.random.default_rng(5).normal(size=160)  # a linear objective on the mask
    s = make_strategy("lanas", sp, seed=0, n_init=10, n_select=5, height=3)
    assert s.sampler == "rejection"  # 5.8e20 cells: no enumerated pool
    seen = set()
    for _ in range(40):
        t = s.ask()
        a = sp.validate(t.arch)
        seen.add(sp.key(a))
        s.tell(t, Result(metrics={"v": 0.0}, score=float(sp.to_mask(a).ravel() @ w)))
    assert len(seen) == 40 and s.learned and s.split[0]


# -- networks and the masked supernet --------------------------------------------------------------------------------
def test_a_repeated_input_runs_both_ops_in_the_network():
    pytest.importorskip("torch")
    from nasagent.evaluation.networks import build
    from nasagent.evaluation.networks.darts import genotype_region

    region = genotype_region(ARCH)["normal"]
    assert sorted(region[(0, 0)]) == [MAX3, SEP3] and region[(1, 1)] == (SKIP,)
    net = build(ARCH, num_classes=10, input_shape=(1, 16, 16), space="lanas-cell", C=4, layers=2)
    names = {n for n, _ in net.named_parameters()}
    assert any(".edges.0_0.sep_conv_3x3." in n for n in names)
    with pytest.raises(NasagentError, match="unknown DARTS stem"):  # DARTS' own option checks apply to this space
        build(ARCH, num_classes=10, input_shape=(1, 16, 16), space="lanas-cell", C=4, layers=2, stem="nope")


def test_masked_supernet_equals_the_standalone_network_with_its_weights():
    """The supernet masked to a cell computes what the cell's own network computes with the same weights: both
    ops of a repeated input summed, unused edges skipped."""
    torch = pytest.importorskip("torch")
    from nasagent.evaluation.networks.darts import DartsGenotypeNetwork
    from nasagent.evaluation.supernet import LaNASCellRegions, region_adapter

    ad = region_adapter(LaNASCellSpace())
    assert isinstance(ad, LaNASCellRegions)
    torch.manual_seed(0)
    supernet = ad.network(ad.full_region(), num_classes=10, in_channels=1, C=4, layers=2)
    single = DartsGenotypeNetwork(ARCH, C=4, layers=2, num_classes=10, in_channels=1, affine=False, search=True)
    own = single.state_dict()
    single.load_state_dict({k: supernet.state_dict()[k] for k in own})
    supernet.eval()
    single.eval()
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(supernet(x, ARCH), single(x), atol=1e-5)
    with pytest.raises(NasagentError, match="few-shot"):
        ad.split_edges()


def test_random_mask_training_draws_repeated_inputs_and_scores():
    pytest.importorskip("torch")
    from nasagent.evaluation.datasets import load_dataset, subsample
    from nasagent.evaluation.supernet import Supernet, supernet_settings

    data = subsample(load_dataset("digits"), 0.1)
    s = Supernet("lanas-cell", data, settings=supernet_settings(1, batch_size=32), device="cpu", C=2, layers=2)
    drawn = []
    sample = s.adapter.sample
    s.adapter.sample = lambda region, rng: drawn.append(sample(region, rng)) or drawn[-1]
    s.train(1)
    assert len(drawn) == s.steps > 1
    assert any(a.normal[2 * i][1] == a.normal[2 * i + 1][1] for a in drawn for i in range(5))  # a repeated input
    score = s.score(ARCH)
    assert 0.0 <= score <= 100.0
    with pytest.raises(NasagentError, match="'N' does not apply to the lanas-cell space"):
        Supernet("lanas-cell", data, device="cpu", C=2, N=2)  # an NB201 size option: named, not a TypeError


# -- ConvNet-60K ----------------------------------------------------------------------------------------------------
def test_convnet60k_is_ten_ternary_variables():
    from nasagent.spaces.convnet60k import ConvNet60KSpace

    sp = make_space("convnet60k")
    assert isinstance(sp, ConvNet60KSpace)
    archs = list(sp.enumerate())
    assert sp.size() == len(archs) == len({sp.key(a) for a in archs}) == 59_049
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = sp.sample(rng)
        assert sp.parse(sp.format(a)) == a and sp.validate(list(a)) == a
        e = sp.encode(a)
        assert e.shape == (10,) and set(e.tolist()) <= {0.0, 1.0, 2.0}
    a = sp.parse("32-64-96-32-32-64-96-96-64-32")
    assert a == (0, 1, 2, 0, 0, 1, 2, 2, 1, 0)
    nb = sp.neighbors(a)
    assert len(nb) == len(set(nb)) == 20 and all(sp.edit_distance(a, b) == 1 for b in nb)
    state = sp.root()
    for c in a:
        assert not sp.is_terminal(state)
        state = sp.step(state, c)
    assert sp.is_terminal(state) and sp.to_arch(state) == a and sp.actions(state) == []
    from nasagent.registry import make_strategy

    s = make_strategy("lanas", sp, seed=0)
    assert s.sampler == "pool"  # 59,049 networks: LaNAS draws exactly from the enumerated space


def test_convnet60k_bad_input_and_network():
    sp = make_space("convnet60k")
    with pytest.raises(NasagentError, match="layer 3 has 48 filters"):
        sp.parse("32-64-48-32-32-64-96-96-64-32")
    with pytest.raises(NasagentError, match="10 filter counts"):
        sp.parse("32-64")
    with pytest.raises(NasagentError, match="10 ternary codes"):
        sp.validate((0, 1, 3, 0, 0, 0, 0, 0, 0, 0))
    with pytest.raises(NasagentError, match="illegal convnet60k action"):
        sp.step((), 3)
    torch = pytest.importorskip("torch")
    from nasagent.evaluation.networks import build

    a = sp.parse("32-64-96-32-32-64-96-96-64-32")
    net = build(a, num_classes=10, input_shape=(1, 16, 16), space=sp, width=0.25)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16, 24, 8, 8, 16, 24, 24, 16, 8]  # the filters x 0.25
    assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == 2
    assert net(torch.zeros(2, 1, 16, 16)).shape == (2, 10)
    with pytest.raises(NasagentError, match="unknown for space 'convnet60k'"):
        build(a, num_classes=10, input_shape=(1, 16, 16), space=sp, C=4)


# -- LaNAS on a continuous box (the brief's baseline runner, section 5 item 16) ----------------------------------------
def test_lanas_on_a_box_moves_its_samples_to_the_good_side():
    from nasagent.core import Result
    from nasagent.registry import make_strategy
    from nasagent.spaces.box import BoxSpace

    sp = BoxSpace([-1.0] * 5, [2.0] * 5)
    s = make_strategy("lanas", sp, seed=3, n_init=20, n_select=10, height=4)
    assert s.sampler == "rejection"
    xs = []
    for _ in range(80):
        t = s.ask()
        x = np.asarray(sp.validate(t.arch))
        xs.append(x)
        s.tell(t, Result(metrics={"f": 0.0}, score=float(x.sum())))  # linear: one split of the tree can capture it
    sums = np.array([x.sum() for x in xs])
    assert sums[-30:].mean() > sums[:20].mean() + 2.0  # the leaves UCB picks lie on the high side of sum(x)


def test_oneshot_preset_relearns_the_tree_after_every_sample():
    from nasagent.core import Result
    from nasagent.strategies.lanas import LaNAS

    sp = LaNASCellSpace()
    s = LaNAS(sp, seed=0, preset="oneshot")
    assert (s.height, s.n_init, s.n_select, s.cp) == (5, 10, 1, 10.0)
    w = np.random.default_rng(2).normal(size=30)
    for _ in range(16):
        t = s.ask()
        s.tell(t, Result(metrics={"v": 0.0}, score=float(sp.to_integers(t.arch) @ w)))
    assert len(s.history) == 6  # one learning phase before each of the 6 proposals after the 10 initial ones
