"""One-shot supernets, few-shot splitting and DARTS as OneShotSearches (tiny networks on a slice of digits)."""

import itertools
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nasagent.core import Budget, NasagentError  # noqa: E402
from nasagent.evaluation.datasets import load_dataset, subsample  # noqa: E402

TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.1)


# -- regions and splits (no training) ------------------------------------------------------------------------------
def test_nb201_split_partitions_the_space():
    from nasagent.evaluation.supernet import NB201Regions

    ad = NB201Regions()
    full = ad.full_region()
    level1 = [r for _, r in ad.split(full, 2)]
    level2 = [r for parent in level1 for _, r in ad.split(parent, 4)]
    assert len(level1) == 5 and len(level2) == 25
    partial = [r for _, r in ad.split(full, 0, groups=[["nor_conv_3x3", "nor_conv_1x1"], ["skip_connect", "avg_pool_3x3", "none"]])]
    assert len(partial) == 2
    for arch in itertools.islice(ad.space.enumerate(), 0, None, 7):  # every 7th of the 15,625 cells
        assert sum(ad.contains(r, arch) for r in level1) == 1
        assert sum(ad.contains(r, arch) for r in level2) == 1
        assert sum(ad.contains(r, arch) for r in partial) == 1
    with pytest.raises(NasagentError, match="partition"):
        ad.split(full, 0, groups=[["nor_conv_3x3"], ["skip_connect"]])


def test_darts_split_partitions_the_space_and_sampling_stays_inside():
    from nasagent.evaluation.supernet import DartsRegions

    ad = DartsRegions()
    rng = np.random.default_rng(0)
    children = [r for _, r in ad.split(ad.full_region(), ("normal", (0, 1)))]
    assert len(children) == 7  # the thesis' 7 sub-supernets for the DARTS space
    for _ in range(300):
        g = ad.space.sample(rng)
        assert sum(ad.contains(r, g) for r in children) == 1
    for r in children:
        for _ in range(20):
            assert ad.contains(r, ad.sample(r, rng))
    with pytest.raises(NasagentError, match="cannot be split"):
        from nasagent.evaluation.fewshot import FewShot

        FewShot("darts", subsample(load_dataset("digits"), 0.05), epochs=0, edges=[("normal", (3, 2))], C=2, layers=1)


def test_uniform_sampling_resamples_dead_nodes_and_respects_regions():
    from nasagent.evaluation.supernet import NB201Regions
    from nasagent.spaces.nb201 import EDGES

    ad = NB201Regions()
    rng = np.random.default_rng(0)
    region = ad.split(ad.full_region(), 0)[3][1]
    for _ in range(300):
        a = ad.sample(region, rng)
        assert ad.contains(region, a) and a[0] == region[0][0]
        assert all(any(a[e] != "none" for e, (t, _) in enumerate(EDGES) if t == node) for node in (1, 2, 3))


# -- supernets ---------------------------------------------------------------------------------------------------------
def test_children_inherit_parent_tensors_bitwise(small):
    from nasagent.evaluation.supernet import Supernet, supernet_settings

    parent = Supernet("nb201", small, settings=supernet_settings(1), device="cpu", **TINY)
    parent.train(1)
    region = parent.adapter.split(parent.region, 3)[2][1]  # edge 3<-0 fixed to nor_conv_1x1
    child = Supernet("nb201", small, region=region, seed=7, settings=supernet_settings(1), device="cpu", **TINY)
    n = child.inherit(parent)
    cs, ps = child.net.state_dict(), parent.net.state_dict()
    assert n == len(cs) < len(ps)
    assert all(torch.equal(cs[k], ps[k]) for k in cs)
    assert not any(".edges.3.nor_conv_3x3" in k for k in cs) and any(".edges.3.nor_conv_3x3" in k for k in ps)
    arch = child.adapter.sample(region, np.random.default_rng(1))
    assert child.score(arch) == parent.score(arch)  # identical weights on the path, identical recalibration
    with pytest.raises(NasagentError, match="outside"):
        child.score(("nor_conv_3x3",) * 6)


def test_bn_recalibration_sets_path_statistics(small):
    from nasagent.evaluation.supernet import Supernet, recalibrate_bn, supernet_settings

    s = Supernet("nb201", small, settings=supernet_settings(1), device="cpu", **TINY)
    bn = s.net.stem[1]
    recalibrate_bn(s.net, small.x_train, ("nor_conv_3x3",) * 6, s.device, batches=2)
    first = bn.running_mean.clone()
    assert not torch.allclose(first, torch.zeros_like(first))
    recalibrate_bn(s.net, small.x_train, ("skip_connect",) * 6, s.device, batches=2)
    assert torch.allclose(bn.running_mean, first)  # the stem sees the same images whatever the path
    assert not s.net.training


def test_fewshot_fit_resumes_and_routes(small, tmp_path):
    from nasagent.evaluation.fewshot import FewShot

    fs = FewShot("nb201", small, epochs=2, child_epochs=1, splits=1, seed=3, device="cpu", **TINY)
    fs.fit(tmp_path)
    assert len(fs.children) == 5 and fs.epochs_trained == 2 + 5 * 1
    assert (tmp_path / "split_tree.json").exists()
    again = FewShot("nb201", small, epochs=2, child_epochs=1, splits=1, seed=3, device="cpu", **TINY)
    again.fit(tmp_path)  # everything is loaded from the checkpoints: no further training
    arch = fs.space.sample(np.random.default_rng(0))
    assert again.route(arch) == fs.route(arch) and again.score(arch) == fs.score(arch)
    assert again.children[fs.route(arch)].seconds == fs.children[fs.route(arch)].seconds


def test_fewshot_time_budget_aborts_but_keeps_a_cover(small):
    from nasagent.evaluation.fewshot import FewShot

    fs = FewShot("nb201", small, epochs=3, child_epochs=2, splits=2, seed=0, device="cpu", max_seconds=1e-9, **TINY)
    fs.fit(None)
    # the budget is checked between epochs: the root's first epoch exceeds it, so no child trains
    assert fs.root.epoch == 1 and all(c.epoch == 0 for c in fs.children) and len(fs.children) == 25
    arch = fs.space.sample(np.random.default_rng(0))
    assert fs.children[fs.route(arch)].contains(arch)


def test_supernet_benchmarks_in_a_search():
    import nasagent

    res = nasagent.search("fewshot:digits", "evolution", budget=3, space="nb201",
                          benchmark_options={"epochs": 1, "child_epochs": 1, "C": 2, "N": 1, "device": "cpu"})
    assert res.samples == 3 and res.best is not None
    assert res.cost > 0
    res = nasagent.search("oneshot:digits", "random", budget=2, benchmark_options={"epochs": 1, "C": 2, "N": 1})
    assert res.samples == 2
    with pytest.raises(NasagentError, match="no option"):
        nasagent.search("fewshot:digits", "random", budget=1, benchmark_options={"split": 2})


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["lanas", "alphax"])
def test_fewshot_evaluator_serves_lanas_and_alphax(strategy):
    import nasagent

    res = nasagent.search("fewshot:digits", strategy, budget=4, space="nb201", seed=0, plot=False,
                          benchmark_options={"epochs": 1, "child_epochs": 1, "C": 2, "N": 1, "device": "cpu"})
    assert res.samples == 4 and res.best is not None


# -- DARTS as a OneShotSearch ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [1, 2])
def test_darts_search_resumes_exactly(small, tmp_path, order):
    from nasagent.evaluation.darts_search import DartsSearch

    a = DartsSearch("nb201", order=order, batch_size=32, device="cpu", **TINY)
    a.fit(small, Budget(evaluations=2), None)
    b = DartsSearch("nb201", order=order, batch_size=32, device="cpu", **TINY)
    b.fit(small, Budget(evaluations=2, seconds=1e-9), tmp_path)  # "interrupted" after its first step ...
    assert (b.epoch, b.epoch_step) == (0, 1) and b.history[-1]["partial"]
    c = DartsSearch("nb201", order=order, batch_size=32, device="cpu", **TINY)
    c.fit(small, Budget(evaluations=2), tmp_path)  # ... and continued by a new object
    assert c.epoch == 2 and len(c.history) == 3  # the cut epoch's record, the one that completes it, the second
    assert torch.equal(a.alpha["cell"], c.alpha["cell"])
    assert not torch.allclose(a.alpha["cell"], torch.zeros_like(a.alpha["cell"]), atol=1e-3)
    props = a.propose(3)
    assert props[0] == a.derive() and len({a.space.key(p) for p in props}) == 3


def test_second_order_differs_from_first_order(small):
    from nasagent.evaluation.darts_search import DartsSearch

    alphas = []
    for order in (1, 2):
        s = DartsSearch("nb201", order=order, batch_size=32, device="cpu", **TINY)
        s.fit(small, 1, None)
        alphas.append(s.alpha["cell"].detach().clone())
    assert not torch.allclose(alphas[0], alphas[1])


def test_darts_space_relaxation_derives_valid_genotypes(small):
    from nasagent.evaluation.darts_search import DartsSearch

    s = DartsSearch("darts", batch_size=64, device="cpu", C=2, layers=2)
    s.fit(subsample(small, 0.5), 1, None)
    for g in s.propose(2):
        assert s.space.validate(g) == g
        assert all(op != "none" for k in ("normal", "reduce") for op, _ in g.cell(k))


def test_fewshot_darts_time_budget_leaves_the_rest_untrained_but_covered(small, tmp_path):
    from nasagent.evaluation.darts_search import FewShotDarts

    f = FewShotDarts("nb201", edges=[1], batch_size=32, device="cpu", **TINY)
    f.fit(small, Budget(evaluations=2, seconds=1e-9), tmp_path)  # T is spent after the root's first step
    assert (f.root.epoch, f.root.epoch_step) == (0, 1) and len(f.children) == 5 and f.untrained == 5
    for child in f.children:  # untrained children carry their parent's α on every edge they keep
        assert child.epoch == 0 and child.seconds == 0
        for k in child.alpha:
            assert torch.equal(child.alpha[k], f.root.alpha[k])
    assert json.loads((tmp_path / "fewshot_darts.json").read_text())["untrained_children"] == 5
    assert f.propose(1)[0][1] == f.children[f.chosen].relax.region[1][0]
    g = FewShotDarts("nb201", edges=[1], batch_size=32, device="cpu", **TINY)
    g.fit(small, Budget(evaluations=2, seconds=1e6), None)  # ample time: every child trains its epoch
    assert g.untrained == 0 and all(c.epoch == 1 for c in g.children)


def test_fewshot_darts_transfers_alpha_and_picks_lowest_validation_loss(small, tmp_path):
    from nasagent.evaluation.darts_search import FewShotDarts
    from nasagent.evaluation.oneshot import OneShotSearch, run_oneshot

    f = FewShotDarts("nb201", edges=[1], batch_size=32, device="cpu", **TINY)
    assert isinstance(f, OneShotSearch)
    f.fit(small, 2, tmp_path)
    assert len(f.children) == 5 and f.chosen == int(np.argmin(f.val_losses))
    best = f.propose(1)[0]
    assert best[1] == f.children[f.chosen].relax.region[1][0]  # the proposal lies in the chosen child's region
    from nasagent.benchmarks.nb201 import nb201_benchmark

    res = run_oneshot(f, small, 2, tmp_path, nb201_benchmark(), n=3)  # resumes: no more training
    assert res.samples == 3 and res.best is not None


# -- DARTS / few-shot DARTS as a runner strategy ------------------------------------------------------------------------
def test_cli_search_fewshot_darts_end_to_end_and_resume(tmp_path):
    from typer.testing import CliRunner

    from nasagent.cli import app

    out = tmp_path / "run"
    args = ["search", "--strategy", "darts", "--space", "nb201", "--data", "digits", "--budget", "2", "--out", str(out),
            "--quiet", "--opt", "epochs=1", "--opt", "splits=1", "--opt", "edges=[2]", "--opt", "C=4", "--opt", "N=1",
            "--opt", "batch_size=64", "--opt", "device=cpu", "--bopt", "epochs=1", "--bopt", "C=4", "--bopt", "N=1",
            "--bopt", "measure=false"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "best.json").read_text())
    assert doc["samples"] == 2
    split = json.loads((out / "search" / "fewshot_darts.json").read_text())
    chosen_op = split["proposal"].split("|")[3].split("~")[0]  # NB201 edge 2 is the first edge into node 2
    from nasagent.api import load_config

    _, journal = load_config(out)
    first = sorted(journal.trials(), key=lambda t: t.number)[0].arch
    journal.close()
    assert first == split["proposal"] and chosen_op in first  # the chosen child's derived cell is asked first
    again = CliRunner().invoke(app, ["search", "--resume", str(out), "--budget", "3", "--quiet"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "best.json").read_text())["samples"] == 3


def test_darts_strategy_bad_input():
    from nasagent.registry import make_space, make_strategy

    with pytest.raises(NasagentError, match="needs data"):
        make_strategy("darts", make_space("nb201"))
    with pytest.raises(NasagentError, match="not the 'nb101' space"):
        make_strategy("darts", make_space("nb101"), data="digits")
    with pytest.raises(NasagentError, match="bad DARTS option"):
        make_strategy("darts", make_space("nb201"), data="digits", nonsense=1)
    with pytest.raises(NasagentError, match="cannot be split"):
        make_strategy("darts", make_space("nb201"), data="digits", edges=[9])
    for bad, fragment in [({"splits": 7}, "splits must be in 0..6"), ({"C": 0}, "C must be an integer >= 1"),
                          ({"arch_lr": -1.0}, "arch_lr")]:
        with pytest.raises(NasagentError, match=fragment):
            make_strategy("darts", make_space("nb201"), data="digits", **bad)


def test_a_growing_proposal_list_never_repeats_or_skips_a_cell():
    from nasagent.registry import make_space
    from nasagent.strategies.weight_sharing import WeightSharingStrategy

    space = make_space("nb201")
    cells = [space.sample(np.random.default_rng(i)) for i in range(40)]

    class Shifting(WeightSharingStrategy):  # as DARTS: a longer list need not start with the shorter one
        def _fit(self):
            return None

        def _cells(self, search, n):
            return cells[: n // 2][::-1] + cells[n // 2 : n]

    s = Shifting(space, 0, "digits", 0, None, None)
    asked = [space.key(s.ask().arch) for _ in range(20)]
    assert len(set(asked)) == 20 and set(asked) == {space.key(c) for c in cells[:20]}  # the first 20, each once


def test_a_supernet_that_cannot_train_is_not_retrained_for_every_trial():
    from nasagent.evaluation.supernet import SupernetBenchmark
    from nasagent.registry import make_space

    class Failing:
        space, train_seconds, calls = make_space("nb201"), 0.0, 0

        def fit(self, checkpoint_dir):
            Failing.calls += 1
            raise NasagentError("training diverged")

    bench = SupernetBenchmark(Failing(), "oneshot:test")
    arch = bench.space.sample(np.random.default_rng(0))
    for _ in range(3):
        with pytest.raises(NasagentError, match="training diverged"):
            bench(arch)
    assert Failing.calls == 1
