"""The learned (gradient-matching) split-edge strategy of few-shot NAS, on tiny supernets over a slice of digits."""

import json

import numpy as np
import pytest

from nasagent.core import NasagentError
from nasagent.evaluation.datasets import load_dataset, subsample
from nasagent.evaluation.fewshot import FewShot, gradient_disagreement, lowest_scoring

torch = pytest.importorskip("torch")  # the modules above import torch lazily

TINY = {"C": 4, "N": 1}


@pytest.fixture(scope="module")
def small():
    return subsample(load_dataset("digits"), 0.1)


def gradient_fewshot(data, **kw):
    cfg = {"epochs": 1, "child_epochs": 1, "splits": 1, "seed": 3, "device": "cpu", "edge_strategy": "gradient",
           "probe_batches": 2, **TINY, **kw}
    return FewShot("nb201", data, **cfg)


# -- the pure scoring ------------------------------------------------------------------------------------------------
def test_scores_are_mean_pairwise_cosines_and_the_lowest_split_first():
    agree = [np.array([1.0, 0.0]), np.array([2.0, 0.0]), np.array([0.5, 0.0])]  # same direction, any length
    orthogonal = [np.array([1.0, 0.0]), np.array([0.0, 3.0])]
    opposite = [np.array([1.0, 0.0]), np.array([-4.0, 0.0])]
    mixed = [np.array([1.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])]  # cosines 1/√2, 1/√2, 0
    scored = [(name, gradient_disagreement(g)) for name, g in
              (("agree", agree), ("orthogonal", orthogonal), ("opposite", opposite), ("mixed", mixed))]
    assert [s for _, s in scored] == pytest.approx([1.0, 0.0, -1.0, np.sqrt(2) / 3])
    assert lowest_scoring(scored, 1) == ["opposite"]
    assert lowest_scoring(scored, 3) == ["opposite", "orthogonal", "mixed"]
    assert lowest_scoring([("a", 0.5), ("b", 0.5), ("c", 0.9)], 1) == ["a"]  # ties: the earlier edge
    assert gradient_disagreement([np.zeros(3), np.ones(3)]) == 0.0  # a zero gradient counts as orthogonal
    assert gradient_disagreement([np.ones(3)]) == 1.0  # one child cannot disagree


# -- the strategy in a fit -------------------------------------------------------------------------------------------
def test_gradient_fit_records_distinct_edges_and_scores_and_still_partitions(small, tmp_path):
    fs = gradient_fewshot(small, splits=2)
    assert fs.edges is None  # decided by fit, after the root trains
    fs.fit(tmp_path)
    assert len(fs.edges) == 2 and len(set(fs.edges)) == 2 and set(fs.edges) <= set(fs.candidates)
    assert len(fs.children) == 25 and fs.probe_seconds > 0
    tree = json.loads((tmp_path / "split_tree.json").read_text())
    assert tree["edge_strategy"] == "gradient" and tree["split_edges"] == fs.edges
    scores = tree["edge_scores"]
    assert set(scores) == {fs.adapter.describe_edge(e) for e in fs.candidates}
    assert all(-1.0 <= s <= 1.0 for s in scores.values())
    assert tree["edges"] == sorted(scores, key=scores.get)[:2]  # the two most-disagreeing edges, lowest first
    assert fs.describe()["edge_scores"] == scores
    for arch in list(fs.space.enumerate())[::97]:  # a sample of the 15,625 cells: each in exactly one child
        assert sum(c.contains(arch) for c in fs.children) == 1
        assert fs.children[fs.route(arch)].contains(arch)


def test_probe_leaves_the_root_untouched(small):
    fs = gradient_fewshot(small, epochs=0)
    before = {k: v.clone() for k, v in fs.root.net.state_dict().items()}
    scored = fs.probe_edges()
    assert [e for e, _ in scored] == fs.candidates
    after = fs.root.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN statistics


def test_same_seed_same_edges(small):
    runs = []
    for seed in (3, 3, 4):
        fs = gradient_fewshot(small, seed=seed, child_epochs=0)
        fs.fit(None)
        runs.append((fs.edges, fs.edge_scores))
    assert runs[0] == runs[1]
    assert runs[0][1] != runs[2][1]  # another seed: another root, other scores


def test_resume_reuses_the_recorded_edges_without_probing(small, tmp_path, monkeypatch):
    from nasagent.evaluation.supernet import Supernet

    whole = gradient_fewshot(small)
    whole.fit(tmp_path / "whole")

    # interrupted right after the probe, before any child is built: the choice is already on disk
    ck = tmp_path / "interrupted"
    first = gradient_fewshot(small)
    class Interrupted(Exception):
        pass

    def interrupt(self, parent):
        raise Interrupted

    with monkeypatch.context() as m:
        m.setattr(Supernet, "inherit", interrupt)
        with pytest.raises(Interrupted):
            first.fit(ck)
    tree = json.loads((ck / "split_tree.json").read_text())
    assert tree["split_edges"] == whole.edges and tree["nodes"] == []

    def no_probe(self):
        raise AssertionError("a resumed fit must not probe again")

    monkeypatch.setattr(FewShot, "probe_edges", no_probe)
    resumed = gradient_fewshot(small)
    resumed.fit(ck)
    assert resumed.edges == whole.edges and resumed.edge_scores == whole.edge_scores
    assert resumed.probe_seconds == first.probe_seconds > 0
    arch = whole.space.sample(np.random.default_rng(0))
    assert resumed.route(arch) == whole.route(arch) and resumed.score(arch) == whole.score(arch)
    again = gradient_fewshot(small)
    again.fit(ck)  # complete: everything loads, nothing probes or trains
    assert again.edges == whole.edges and again.children[0].seconds == resumed.children[0].seconds
    with pytest.raises(NasagentError, match="another checkpoint_dir"):
        gradient_fewshot(small, splits=2).fit(ck)


def test_darts_cells_are_supported(small):
    fs = FewShot("darts", subsample(small, 0.5), epochs=0, child_epochs=0, splits=1, edge_strategy="gradient",
                 probe_batches=1, device="cpu", C=2, layers=1, batch_size=64)
    names = fs._edge_parameter_names(("normal", (0, 1)))
    assert names and all(".edges.0_1." in n for n in names)
    fs.fit(None)
    assert len(fs.edges) == 1 and fs.edges[0] in fs.candidates and len(fs.children) == 7


# -- bad input ---------------------------------------------------------------------------------------------------------
def test_unknown_strategy_and_bad_options_are_clear_errors(small):
    from nasagent.evaluation.fewshot import fewshot_benchmark

    with pytest.raises(NasagentError, match=r"unknown edge_strategy 'learned'; valid: random, gradient"):
        FewShot("nb201", small, edge_strategy="learned", **TINY)
    with pytest.raises(NasagentError, match="probe_batches"):
        FewShot("nb201", small, edge_strategy="gradient", probe_batches=0, **TINY)
    with pytest.raises(NasagentError, match="edge_strategy"):
        fewshot_benchmark("fewshot:digits", edge_strategy="nope", epochs=0, **TINY)
    b = fewshot_benchmark("fewshot:digits", edge_strategy="gradient", probe_batches=2, epochs=0, device="cpu", **TINY)
    assert b.estimator.edge_strategy == "gradient" and b.estimator.probe_batches == 2
    explicit = FewShot("nb201", small, edges=[2], edge_strategy="gradient", **TINY)  # explicit edges win
    assert explicit.edges == [2] and explicit.describe()["edge_strategy"] == "explicit"
    default = FewShot("nb201", small, seed=3, **TINY)  # random stays the default, decided before fit
    assert default.edge_strategy == "random" and len(default.edges) == 1
